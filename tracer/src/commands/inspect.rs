//! `tracer inspect BINARY | -p PID`: what the tracer reads from a Go binary
//! without running it: Go version, module, build settings, whether it uses
//! cgo, where symbols come from, and the runtime functions the probe plans
//! need, with their addresses and file offsets.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::{
    gobin::GoBinary,
    goruntime::functions::{FUNCTIONS, RuntimeFunction},
    target::Process,
};

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
    let functions: Vec<(&RuntimeFunction, Option<u64>, Option<u64>)> = FUNCTIONS
        .iter()
        .map(|f| {
            let entry = bin.pclntab.entry(f.name);
            (f, entry, entry.and_then(|e| bin.file_offset(e)))
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
            "runtime": functions.iter().map(|(f, e, o)| serde_json::json!({
                "name": f.name,
                "present": e.is_some(),
                "address": e.map(|a| format!("{a:#x}")),
                "file_offset": o.map(|a| format!("{a:#x}")),
                "program": f.probe.program(),
                "versions": f.versions.to_string(),
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
    println!("  runtime functions (address, file offset, probe):");
    let minor = (bin.build.version.major == 1).then_some(bin.build.version.minor);
    for (f, entry, offset) in functions {
        let name = f.name;
        let program = f.probe.program().unwrap_or_default();
        let line = match (entry, offset) {
            (Some(e), Some(o)) => format!("{name:<36} {e:#10x} {o:#10x}  {program}"),
            (Some(e), None) => format!("{name:<36} {e:#10x} {:>10}  {program}", "?"),
            (None, _) if minor.is_some_and(|m| !f.versions.contains(m)) => {
                format!("{name:<36} (not in this version)")
            }
            (None, _) => format!("{name:<36} (absent: not linked into this program)"),
        };
        println!("    {}", line.trim_end());
    }
    Ok(0)
}
