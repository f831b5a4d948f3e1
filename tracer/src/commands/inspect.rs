//! `tracer inspect BINARY | -p PID`: what the tracer reads from a Go binary
//! without running it: Go version, module, build settings, whether it uses
//! cgo, where symbols come from, and the runtime functions the probe plans
//! need, with their addresses and file offsets.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{gobin::GoBinary, target::Process};

/// Runtime functions a probe plan may use, in the order a reader expects.
const RUNTIME_FUNCTIONS: &[&str] = &[
    "runtime.newm",
    "runtime.newosproc",
    "runtime.handoffp",
    "runtime.startm",
    "runtime.retake",
    "runtime.entersyscall",
    "runtime.exitsyscall",
    "runtime.entersyscallblock",
    "runtime.mexit",
    "runtime.cgocall",
    "runtime.needm",
];

pub fn execute(binary: Option<&Path>, pid: Option<u32>, json: bool) -> anyhow::Result<i32> {
    let path: PathBuf = match (binary, pid) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(pid)) => {
            Process::validate(pid)?;
            // /proc/PID/exe opens the running image even if the file on disk
            // was replaced or deleted.
            PathBuf::from(format!("/proc/{pid}/exe"))
        }
        (None, None) => anyhow::bail!("give a binary path or -p PID"),
    };
    let bin = GoBinary::open(&path).with_context(|| format!("inspecting {}", path.display()))?;
    let functions: Vec<(String, Option<u64>, Option<u64>)> = RUNTIME_FUNCTIONS
        .iter()
        .map(|name| {
            let entry = bin.pclntab.entry(name);
            (
                name.to_string(),
                entry,
                entry.and_then(|e| bin.file_offset(e)),
            )
        })
        .collect();
    if json {
        let value = serde_json::json!({
            "go_version": bin.build.raw_version,
            "path": bin.build.path,
            "main_module": bin.build.main_module,
            "settings": bin.build.settings,
            "cgo": bin.cgo,
            "symbols": bin.symbols,
            "functions": bin.pclntab.functions.len(),
            "runtime": functions.iter().map(|(n, e, o)| serde_json::json!({
                "name": n, "address": e.map(|a| format!("{a:#x}")), "file_offset": o.map(|a| format!("{a:#x}")),
            })).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!("{}: Go {}", path.display(), bin.build.raw_version);
    if let Some(p) = &bin.build.path {
        println!("  package:   {p}");
    }
    if let Some(m) = &bin.build.main_module {
        println!("  module:    {m}");
    }
    println!(
        "  cgo:       {}",
        if bin.cgo {
            "yes (C threads and callbacks possible)"
        } else {
            "no"
        }
    );
    let symbols = match bin.symbols {
        crate::gobin::SymbolsSource::Symtab => "symtab (not stripped)",
        crate::gobin::SymbolsSource::Pclntab => "pclntab (stripped binary)",
    };
    println!(
        "  symbols:   {symbols}, {} functions in pclntab",
        bin.pclntab.functions.len()
    );
    for (k, v) in &bin.build.settings {
        println!("  build:     {k}={v}");
    }
    println!("  runtime functions (address, file offset):");
    for (name, entry, offset) in functions {
        match (entry, offset) {
            (Some(e), Some(o)) => println!("    {name:<28} {e:#10x} {o:#10x}"),
            _ => println!("    {name:<28} (not in this version)"),
        }
    }
    Ok(0)
}
