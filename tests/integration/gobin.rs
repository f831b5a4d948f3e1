//! Go binary inspection against ground truth: for every installed Go
//! toolchain and build flavour (default, stripped `-s -w`, PIE, cgo), the
//! version read from the binary equals `go version`'s, and every function the
//! pclntab reader finds sits at the address the ELF symbol table gives for it
//! (checked on the unstripped build; the stripped build must agree with it).

use std::sync::PoisonError;
use std::{collections::HashMap, path::PathBuf, process::Command};

use object::{Object as _, ObjectSymbol as _};
use tracer::gobin::GoBinary;

use crate::support::*;

/// `(version, go binary)` from `$TRACER_GO_TOOLCHAINS` (set by xtask), else
/// the one `go` this test run uses.
pub fn toolchains() -> Vec<(String, PathBuf)> {
    if let Some(list) = std::env::var_os("TRACER_GO_TOOLCHAINS") {
        let list = list.to_string_lossy().into_owned();
        let parsed: Vec<_> = list
            .split(',')
            .filter_map(|e| e.split_once('='))
            .map(|(v, p)| (v.to_owned(), PathBuf::from(p)))
            .collect();
        if !parsed.is_empty() {
            return parsed;
        }
    }
    go().map(|g| {
        let out = Command::new(&g).arg("version").output().unwrap();
        let v = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .trim_start_matches("go")
            .to_owned();
        (v, g)
    })
    .into_iter()
    .collect()
}

fn build(go: &PathBuf, version: &str, flavour: &str) -> PathBuf {
    let file = if flavour == "cgo" {
        "cgo/sleep.go"
    } else {
        "threads.go"
    };
    build_go_with(go, version, file, flavour)
}

/// Builds `tests/workloads/<file>` with one toolchain in one flavour
/// (default, stripped, pie, cgo).
pub fn build_go_with(go: &PathBuf, version: &str, file: &str, flavour: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("gobin")
        .join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let stem = file.trim_end_matches(".go").replace('/', "-");
    let out = dir.join(format!("{stem}-{flavour}"));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/workloads");
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&out);
    match flavour {
        "stripped" => drop(cmd.args(["-ldflags=-s -w"])),
        "pie" => drop(cmd.arg("-buildmode=pie")),
        _ => {}
    }
    cmd.arg(src.join(file))
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", if flavour == "cgo" { "1" } else { "0" });
    let status = cmd.status().unwrap();
    assert!(status.success(), "go {version} build {flavour} failed");
    out
}

/// name → address from `.symtab`, with Go's `.abi0` suffix dropped.
fn symtab(path: &PathBuf) -> HashMap<String, Vec<u64>> {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let mut map: HashMap<String, Vec<u64>> = HashMap::new();
    for s in file.symbols() {
        if s.kind() == object::SymbolKind::Text
            && let Ok(name) = s.name()
        {
            map.entry(name.trim_end_matches(".abi0").to_owned())
                .or_default()
                .push(s.address());
        }
    }
    map
}

#[test]
fn versions_and_functions_match_the_symbol_table() {
    let chains = toolchains();
    if chains.is_empty() {
        eprintln!("skipped: no Go toolchain (run `cargo xtask setup`)");
        return;
    }
    let cc = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    for (version, go) in &chains {
        let mut flavours = vec!["default", "stripped", "pie"];
        if cc {
            flavours.push("cgo");
        }
        let mut reference: Option<u64> = None;
        for flavour in flavours {
            let path = build(go, version, flavour);
            let bin = GoBinary::open(&path).unwrap_or_else(|e| panic!("{version} {flavour}: {e}"));
            let context = format!("go {version} {flavour}");
            assert_eq!(
                bin.build.version.to_string(),
                format!("go{version}"),
                "{context}"
            );
            assert_eq!(bin.cgo, flavour == "cgo", "{context}");
            let newm = bin
                .pclntab
                .entry("runtime.newm")
                .unwrap_or_else(|| panic!("{context}: no runtime.newm"));
            assert!(
                bin.file_offset(newm).is_some(),
                "{context}: newm outside the text segment"
            );
            if flavour == "stripped" {
                assert_eq!(
                    bin.symbols,
                    tracer::gobin::SymbolsSource::Pclntab,
                    "{context}"
                );
                // -s -w does not move code: same address as the default build.
                assert_eq!(Some(newm), reference, "{context}: runtime.newm moved");
                continue;
            }
            assert_eq!(
                bin.symbols,
                tracer::gobin::SymbolsSource::Symtab,
                "{context}"
            );
            if flavour == "default" {
                reference = Some(newm);
            }
            let syms = symtab(&path);
            let addresses: std::collections::HashSet<u64> =
                syms.values().flatten().copied().collect();
            let (mut exact, mut renamed) = (0, 0);
            for f in &bin.pclntab.functions {
                match syms.get(&f.name) {
                    Some(addrs) => {
                        assert!(
                            addrs.contains(&f.entry),
                            "{context}: {} at {:#x}, symtab {addrs:x?}",
                            f.name,
                            f.entry
                        );
                        exact += 1;
                    }
                    // Generated names differ in spelling between the two
                    // tables (`[...]` elisions, `·N` suffixes): the
                    // address must still be a symbol's.
                    None => {
                        assert!(
                            addresses.contains(&f.entry),
                            "{context}: {} at {:#x} is no symbol",
                            f.name,
                            f.entry
                        );
                        renamed += 1;
                    }
                }
            }
            assert!(exact > 1000, "{context}: only {exact} functions");
            assert!(
                renamed * 100 < exact,
                "{context}: {renamed} names differ from .symtab"
            );
            // Symbolization of a PC inside main.main: its file and a line.
            let main = bin.pclntab.entry("main.main").unwrap();
            let (file, line) = bin
                .pclntab
                .file_line(main)
                .unwrap_or_else(|| panic!("{context}: no line"));
            assert!(file.ends_with(".go"), "{context}: {file}");
            assert!(line > 1, "{context}: line {line}");
        }
    }
}

/// A real stripped, externally linked cgo program from Debian (restic, Go
/// 1.19): the addresses the reference measured (go-runtime.md §9.6, checked
/// there by disassembly and by uprobes that fired at these offsets).
#[test]
fn reads_a_real_stripped_cgo_program() {
    let restic = PathBuf::from("/usr/bin/restic");
    let version = Command::new(&restic).arg("version").output();
    let Ok(version) = version else {
        eprintln!("skipped: restic is not installed (run `cargo xtask setup`)");
        return;
    };
    let version = String::from_utf8_lossy(&version.stdout);
    if !version.starts_with("restic 0.14.0 compiled with go1.19.8") {
        eprintln!("skipped: reference addresses are for restic 0.14.0/go1.19.8, this is {version}");
        return;
    }
    let out = tracer()
        .args(["inspect", "--json"])
        .arg(&restic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["go_version"], "go1.19.8");
    assert_eq!(v["cgo"], true);
    assert_eq!(v["symbols"], "pclntab");
    assert_eq!(v["functions"], 21538);
    let addr = |name: &str| -> String {
        v["runtime"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(addr("runtime.newm"), "0x43e6a0");
    assert_eq!(addr("runtime.handoffp"), "0x43ef40");
    assert_eq!(addr("runtime.retake"), "0x445ec0");
    assert_eq!(addr("runtime.entersyscall"), "0x464540");
    assert_eq!(addr("runtime.exitsyscall"), "0x464580");
}

/// `inspect -p PID` reads a running process's executable.
#[test]
fn inspects_a_running_process() {
    crate::skip_unless!(go().is_none().then_some("no Go toolchain"));
    let heartbeat = go_workload("heartbeat");
    let mut child = spawn_ready(&heartbeat, &[]);
    let out = tracer()
        .args(["inspect", "--json", "-p", &child.id().to_string()])
        .output()
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["go_version"].as_str().unwrap().starts_with("go1."));
    assert_eq!(v["cgo"], false);
}

/// The tracer symbolizes a real stripped, externally linked cgo program
/// from Debian while it runs: `restic init` (Go 1.19, pclntab only).
#[test]
fn symbolizes_restic_while_it_runs() {
    crate::skip_unless!(cannot_trace());
    let restic = PathBuf::from("/usr/bin/restic");
    if !restic.exists() {
        eprintln!("skipped: restic is not installed (run `cargo xtask setup`)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let report_file = dir.path().join("report.json");
    let out = tracer()
        .args(["run", "--slow", "100us", "--json", "-o"])
        .arg(&report_file)
        .arg("--")
        .arg(&restic)
        .args(["-r", repo.to_str().unwrap(), "init"])
        .env("RESTIC_PASSWORD", "tracer-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_report(&report_file);
    let go = &report["go"];
    assert_eq!(go["symbols"], "pclntab");
    assert_eq!(go["cgo"], true);
    assert!(go["version"].as_str().unwrap().starts_with("go1."));
    // Creating a repository makes hundreds of directories: those calls are
    // pinned on restic's own code, by function, file and line.
    let rows = report["blocking"].as_array().unwrap();
    let mkdir = rows
        .iter()
        .filter(|r| r["syscall"] == "mkdirat")
        .find(|r| {
            r["call_site"]["function"]
                .as_str()
                .is_some_and(|f| f.starts_with("github.com/restic/restic/"))
        })
        .unwrap_or_else(|| panic!("no mkdirat row in restic's code: {rows:#?}"));
    assert!(
        mkdir["call_site"]["file"]
            .as_str()
            .unwrap()
            .ends_with(".go")
    );
    assert!(u64_at(&mkdir["call_site"], "line") > 0);
}
