//! Go binary inspection against ground truth: for every installed Go
//! toolchain and build flavour (default, stripped `-s -w`, PIE, cgo), the
//! version read from the binary equals `go version`'s, and every function the
//! pclntab reader finds sits at the address the ELF symbol table gives for it
//! (checked on the unstripped build; the stripped build must agree with it).

use std::sync::PoisonError;
use std::{
    collections::HashMap,
    fs,
    os::unix::fs::FileExt as _,
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use tracer::gobin::{
    GoBinary, VDSO_CLOCK_GETTIME_SYM, rip_relative_load,
    symbolize::{Frame, Symbolizer},
};

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
/// (default, stripped, pie, cgo; `dwarf` and `cgo-dwarf` are the default
/// and cgo builds with uncompressed DWARF).
pub fn build_go_with(go: &PathBuf, version: &str, file: &str, flavour: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("gobin")
        .join(version);
    std::fs::create_dir_all(&dir).unwrap();
    let stem = file.trim_end_matches(".go").replace('/', "-");
    let out = dir.join(format!("{stem}-{flavour}"));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/workloads");
    // Built beside `out` under a name of its own, then renamed over it:
    // tests running in parallel build the same workloads, and a rename
    // never touches a binary another test is running (writing over it
    // would fail with ETXTBSY).
    let tmp = dir.join(format!(
        ".{stem}-{flavour}.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&tmp);
    match flavour {
        "stripped" => drop(cmd.args(["-ldflags=-s -w"])),
        "pie" => drop(cmd.arg("-buildmode=pie")),
        "dwarf" | "cgo-dwarf" => drop(cmd.arg("-ldflags=-compressdwarf=false")),
        _ => {}
    }
    cmd.arg(src.join(file))
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "")
        .env(
            "CGO_ENABLED",
            if flavour.starts_with("cgo") { "1" } else { "0" },
        );
    let status = cmd.status().unwrap();
    assert!(status.success(), "go {version} build {flavour} failed");
    std::fs::rename(&tmp, &out).unwrap();
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
/// 1.19): addresses found by disassembling it and confirmed by uprobes that
/// fired at these offsets.
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
    // The vDSO clock_gettime pointer, from nanotime1's code: a variable.
    let data = fs::read(&restic).unwrap();
    let bin = GoBinary::parse(&data).unwrap();
    let clock = bin.data_symbol(VDSO_CLOCK_GETTIME_SYM).unwrap();
    assert_eq!(section_of(&data, clock).as_deref(), Some(".noptrbss"));
    assert_eq!(bin.data_symbol("runtime.sched"), None);
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
        // 20 µs, the shortest call the kernel side reports: restic's
        // mkdirat calls take 20-500 µs, and at 100 µs as few as none of
        // them were listed on a quiet machine.
        .args(["run", "--slow", "20us", "--json", "-o"])
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
        .find(|r| site_fn(r).starts_with("github.com/restic/restic/"))
        .unwrap_or_else(|| panic!("no mkdirat row in restic's code: {rows:#?}"));
    assert!(site(mkdir)["file"].as_str().unwrap().ends_with(".go"));
    assert!(u64_at(site(mkdir), "line") > 0);
    // The launch's own execve (the tracer's child exec'ing restic, some
    // 600 µs, over the 20 µs threshold) is no call of restic's: counted,
    // never listed (restic init executes nothing).
    let execve = report["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "execve")
        .unwrap_or_else(|| panic!("the launch's execve is not counted"));
    assert_eq!(u64_at(execve, "calls"), 1, "{execve}");
    let listed: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["syscall"] == "execve").collect();
    assert!(listed.is_empty(), "the launch listed as a call: {listed:?}");
}

/// name → (address, section name) of the variables in `.symtab`.
fn data_symtab(data: &[u8]) -> HashMap<String, (u64, String)> {
    let file = object::File::parse(data).unwrap();
    file.symbols()
        .filter(|s| s.kind() == object::SymbolKind::Data)
        .filter_map(|s| {
            let section = file.section_by_index(s.section_index()?).ok()?;
            let section = section.name().ok()?.to_owned();
            Some((s.name().ok()?.to_owned(), (s.address(), section)))
        })
        .collect()
}

/// The name of the section holding `addr`.
fn section_of(data: &[u8], addr: u64) -> Option<String> {
    let file = object::File::parse(data).unwrap();
    file.sections()
        .find(|s| (s.address()..s.address() + s.size()).contains(&addr))
        .and_then(|s| s.name().ok().map(str::to_owned))
}

/// `runtime.vdsoClockgettimeSym` decoded from `runtime.nanotime1`'s code is
/// the address `.symtab` gives it, in every version and flavour that has a
/// symbol table; stripped builds still find it (in the same section as the
/// default build's), and lose the other runtime variables.
#[test]
fn runtime_variables_from_symtab_and_from_code() {
    let chains = toolchains();
    if chains.is_empty() {
        eprintln!("skipped: no Go toolchain (run `cargo xtask setup`)");
        return;
    }
    let cc = Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    const OTHERS: [&str; 4] = [
        "runtime.gomaxprocs",
        "runtime.ncpu",
        "runtime.sched",
        "runtime.allm",
    ];
    for (version, go) in &chains {
        let mut flavours = vec!["default", "stripped", "pie"];
        if cc {
            flavours.push("cgo");
        }
        let mut default_section = None;
        for flavour in flavours {
            let context = format!("go {version} {flavour}");
            let path = build(go, version, flavour);
            let data = fs::read(&path).unwrap();
            let bin = GoBinary::parse(&data).unwrap_or_else(|e| panic!("{context}: {e}"));
            let file = object::File::parse(&*data).unwrap();
            let decoded = rip_relative_load(&file, &bin.pclntab, "runtime.nanotime1", 0)
                .unwrap_or_else(|| panic!("{context}: no RIP-relative load in nanotime1"));
            let section = section_of(&data, decoded);
            eprintln!("{context}: vdsoClockgettimeSym at {decoded:#x} in {section:?}");
            assert_eq!(
                bin.data_symbol(VDSO_CLOCK_GETTIME_SYM),
                Some(decoded),
                "{context}"
            );
            let symtab = data_symtab(&data);
            if flavour == "stripped" {
                assert!(symtab.is_empty(), "{context}: has a symbol table");
                assert_eq!(section, default_section, "{context}");
                for name in OTHERS {
                    assert_eq!(bin.data_symbol(name), None, "{context}: {name}");
                }
                continue;
            }
            let (addr, sym_section) = &symtab[VDSO_CLOCK_GETTIME_SYM];
            assert_eq!(decoded, *addr, "{context}: decoded vs .symtab");
            assert_eq!(section.as_ref(), Some(sym_section), "{context}");
            if flavour == "default" {
                default_section = section;
            }
            for name in OTHERS {
                // Go 1.25 renamed ncpu.
                let in_symtab = match name {
                    "runtime.ncpu" if bin.build.version.minor >= 25 => "runtime.numCPUStartup",
                    _ => name,
                };
                let (addr, _) = symtab
                    .get(in_symtab)
                    .unwrap_or_else(|| panic!("{context}: no {in_symtab} in .symtab"));
                assert_eq!(bin.data_symbol(name), Some(*addr), "{context}: {name}");
            }
            assert_eq!(bin.data_symbol("runtime.noSuchVariable"), None);
        }
    }
}

/// The pcsp table of every function starts at its entry, where SP is where
/// the call left it (delta 0), and most functions open a frame (the
/// tables end at the function's code, before the padding up to the next
/// function, which `end` includes); and the runtime's own
/// flags mark where its traceback stops: TOPFRAME on the first frames of
/// goroutines and threads, SPWRITE on the stack switches (the flag byte
/// moved in Go 1.20).
#[test]
fn frame_sizes_and_stack_boundaries() {
    use tracer::gobin::pclntab::{FLAG_SPWRITE, FLAG_TOPFRAME};
    let chains = toolchains();
    if chains.is_empty() {
        eprintln!("skipped: no Go toolchain (run `cargo xtask setup`)");
        return;
    }
    for (version, go) in &chains {
        for flavour in ["default", "pie"] {
            let context = format!("go {version} {flavour}");
            let bin = GoBinary::open(&build(go, version, flavour)).unwrap();
            let tab = &bin.pclntab;
            for f in &tab.functions {
                // Only linker markers (`go:textfipsstart`, 1.24+) have none.
                match tab.sp_delta(f.entry) {
                    None => assert!(f.name.starts_with("go:text"), "{context}: {}", f.name),
                    delta => assert_eq!(delta, Some(0), "{context}: {}", f.name),
                }
            }
            // Most functions open a frame: the table is not all zeros.
            let framed = tab
                .functions
                .iter()
                .filter(|f| (f.entry..f.end).any(|pc| tab.sp_delta(pc).unwrap_or(0) > 0))
                .count();
            assert!(
                framed * 2 > tab.functions.len(),
                "{context}: {framed} framed"
            );
            // Of all functions of that name (ABI wrappers share it).
            let flag = |name: &str| {
                let named = tab.functions.iter().filter(|f| f.name == name);
                named
                    .fold(None, |acc, f| Some(acc.unwrap_or(0) | f.flag))
                    .unwrap_or_else(|| panic!("{context}: no {name}"))
            };
            for name in ["runtime.goexit", "runtime.mstart", "runtime.rt0_go"] {
                assert_ne!(flag(name) & FLAG_TOPFRAME, 0, "{context}: {name}");
            }
            for name in ["runtime.systemstack", "runtime.mcall", "runtime.morestack"] {
                assert_ne!(flag(name) & FLAG_SPWRITE, 0, "{context}: {name}");
            }
            assert_eq!(flag("main.main"), 0, "{context}");
        }
    }
}

/// Kills the workload when the test ends, passed or not.
struct Workload(Child);

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `(syscall number, SP, PC)` of a thread blocked in a system call, from
/// `/proc/PID/task/TID/syscall` (`nr arg1..arg6 sp pc`; `running` or
/// `-1 sp pc` otherwise).
fn in_syscall(pid: u32, tid: u32) -> Option<(i64, u64, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [nr, .., sp, pc] = fields.as_slice() else {
        return None;
    };
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    (fields.len() == 9).then_some((nr.parse().ok()?, hex(sp)?, hex(pc)?))
}

fn threads(pid: u32) -> Vec<u32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads `len` bytes (up to 8) of `pid`'s memory at `addr`, little-endian.
fn read_mem(pid: u32, addr: u64, len: usize) -> u64 {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut word = [0u8; 8];
    mem.read_exact_at(&mut word[..len], addr)
        .unwrap_or_else(|e| panic!("read {len} bytes at {addr:#x}: {e}"));
    u64::from_le_bytes(word)
}

/// The address range of `pid`'s `[vdso]` mapping.
fn vdso_range(pid: u32) -> std::ops::Range<u64> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let line = maps
        .lines()
        .find(|l| l.ends_with("[vdso]"))
        .expect("a [vdso] mapping");
    let range = line.split_whitespace().next().unwrap();
    let (lo, hi) = range.split_once('-').unwrap();
    u64::from_str_radix(lo, 16).unwrap()..u64::from_str_radix(hi, 16).unwrap()
}

/// How many CPUs `pid` may run on (what the Go runtime's ncpu counts).
fn cpus_allowed(pid: u32) -> u64 {
    // SAFETY: cpu_set_t is plain bits; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe {
        libc::sched_getaffinity(
            libc::pid_t::try_from(pid).unwrap(),
            size_of::<libc::cpu_set_t>(),
            &raw mut set,
        )
    };
    assert_eq!(rc, 0, "sched_getaffinity");
    // SAFETY: `set` was filled in by the kernel.
    u64::try_from(unsafe { libc::CPU_COUNT(&set) }).unwrap()
}

/// The runtime variables, read in the live process at their link-time
/// address plus the load bias: the vDSO `clock_gettime` pointer (found from
/// code when stripped) points into `[vdso]`, and, with a symbol table,
/// `ncpu` is the affinity mask's CPU count and `gomaxprocs` is within it.
fn check_runtime_variables(context: &str, sym: &Symbolizer, pid: u32) {
    let bin = sym.binary().unwrap();
    let at = |name: &str| {
        bin.data_symbol(name)
            .map(|addr| addr.wrapping_add(sym.bias()))
    };
    let clock_gettime = read_mem(pid, at(VDSO_CLOCK_GETTIME_SYM).unwrap(), 8);
    let vdso = vdso_range(pid);
    assert!(
        vdso.contains(&clock_gettime),
        "{context}: vdsoClockgettimeSym = {clock_gettime:#x}, [vdso] is {vdso:x?}"
    );
    if bin.symbols == tracer::gobin::SymbolsSource::Pclntab {
        return;
    }
    let ncpu = read_mem(pid, at("runtime.ncpu").unwrap(), 4);
    let gomaxprocs = read_mem(pid, at("runtime.gomaxprocs").unwrap(), 4);
    eprintln!("{context}: ncpu {ncpu}, gomaxprocs {gomaxprocs}");
    assert_eq!(ncpu, cpus_allowed(pid), "{context}: ncpu");
    assert!((1..=ncpu).contains(&gomaxprocs), "{context}: gomaxprocs");
}

/// One blocked thread's stack, symbolized.
struct Blocked {
    tid: u32,
    nr: i64,
    frames: Vec<Frame>,
}

impl Blocked {
    fn has(&self, function: &str) -> bool {
        self.frames.iter().any(|f| f.function == function)
    }

    /// The outermost frame is one where a stack legitimately ends.
    fn ends_at(&self, functions: &[&str]) -> bool {
        self.frames
            .last()
            .is_some_and(|f| functions.contains(&f.function.as_str()))
    }
}

impl std::fmt::Display for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tid {} syscall {}:", self.tid, self.nr)?;
        for frame in &self.frames {
            write!(f, "\n    {frame}")?;
        }
        Ok(())
    }
}

/// Every thread of `pid` blocked in a system call at a PC in Go code,
/// unwound twice: by the symbolizer's own `process_vm_readv` reader and by
/// a reader of `/proc/PID/mem` (the two must agree). A thread whose
/// syscall file changed meanwhile (it returned) is left out.
/// Waits (2 s at most) until `path` is mapped in process `pid`.
fn wait_mapped(pid: u32, path: &Path) {
    let name = path.to_str().unwrap();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
        if maps.lines().any(|l| l.ends_with(name)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn blocked_threads(sym: &Symbolizer, pid: u32) -> Vec<Blocked> {
    let mem = fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let read = |addr: u64| {
        let mut word = [0u8; 8];
        mem.read_exact_at(&mut word, addr).ok()?;
        Some(u64::from_le_bytes(word))
    };
    let mut out = Vec::new();
    for tid in threads(pid) {
        let Some(before @ (nr, sp, pc)) = in_syscall(pid, tid) else {
            continue;
        };
        if sym.frame(pc, false).is_none() {
            continue;
        }
        let live = sym.unwind_live(pid, pc, sp);
        let via_mem = sym.unwind(pc, sp, read);
        if in_syscall(pid, tid) != Some(before) {
            continue;
        }
        assert_eq!(live, via_mem, "tid {tid}: the two memory readers disagree");
        out.push(Blocked {
            tid,
            nr,
            frames: sym.syscall_stack(&live),
        });
    }
    out
}

/// The line of `tests/workloads/<file>` marked `// CALL SITE`.
fn call_site_line(file: &str) -> u32 {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/workloads")
        .join(file);
    let text = fs::read_to_string(src).unwrap();
    let index = text
        .lines()
        .position(|l| l.contains("// CALL SITE"))
        .expect("a CALL SITE line");
    u32::try_from(index + 1).unwrap()
}

const NANOSLEEP: i64 = 35;
const CLOCK_NANOSLEEP: i64 = 230;
const FUTEX: i64 = 202;

/// The stacks of threads blocked in system calls, unwound from nothing but
/// `/proc/PID/task/TID/syscall`'s SP and PC and the process's memory: a
/// goroutine sleeping in `syscall.Nanosleep` is traced back to the
/// workload's call site and on to `runtime.goexit`, and an idle M parked on
/// a futex back to the scheduler's `stopm`, for every toolchain in the
/// default, stripped and PIE builds.
#[test]
fn unwinds_threads_blocked_in_system_calls() {
    crate::skip_unless!((!is_root()).then_some("needs root to read another process's stack"));
    let chains = toolchains();
    crate::skip_unless!(
        chains
            .is_empty()
            .then_some("no Go toolchain (run `cargo xtask setup`)")
    );
    let line = call_site_line("sleeper.go");
    for (version, go) in &chains {
        for flavour in ["default", "stripped", "pie"] {
            let context = format!("go {version} {flavour}");
            let path = build_go_with(go, version, "sleeper.go", flavour);
            let child = Command::new(&path)
                .args(["-g", "4", "-n", "500"])
                .env("GODEBUG", "updatemaxprocs=0")
                .spawn()
                .unwrap();
            let workload = Workload(child);
            let pid = workload.0.id();
            let bin = GoBinary::open(&path).unwrap();
            // `spawn` returns once the child's exec has replaced its memory,
            // which can be before the kernel maps the executable into it:
            // the load address (a PIE's) is read once it is there.
            wait_mapped(pid, &path);
            let sym = Symbolizer::for_process(bin, pid);
            let (mut sleeper, mut idle_m) = (None, None);
            let start = Instant::now();
            while (sleeper.is_none() || idle_m.is_none())
                && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
                for t in blocked_threads(&sym, pid) {
                    let sleeping = t.nr == NANOSLEEP || t.nr == CLOCK_NANOSLEEP;
                    if sleeping {
                        // A goroutine ends at goexit, sysmon at mstart:
                        // nothing in between may stop the walk.
                        assert!(
                            t.ends_at(&["runtime.goexit", "runtime.mstart"]),
                            "{context}: stack cut short\n{t}"
                        );
                    }
                    let at_call_site = t
                        .frames
                        .iter()
                        .any(|f| f.function == "main.sleeper" && f.line == line);
                    if sleeping && at_call_site && sleeper.is_none() {
                        sleeper = Some(t);
                    } else if t.nr == FUTEX
                        && t.has("runtime.notesleep")
                        && (t.has("runtime.stopm") || t.has("runtime.mPark"))
                        && idle_m.is_none()
                    {
                        idle_m = Some(t);
                    }
                }
            }
            let sleeper =
                sleeper.unwrap_or_else(|| panic!("{context}: no thread at sleeper.go:{line}"));
            eprintln!("{context}: {sleeper}");
            let idle_m = idle_m.unwrap_or_else(|| {
                let all: Vec<String> = blocked_threads(&sym, pid)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                panic!("{context}: no idle M in futex:\n{}", all.join("\n"))
            });
            eprintln!("{context}: {idle_m}");
            check_runtime_variables(&context, &sym, pid);
            // An idle M's stack runs from the futex down to where the
            // scheduler was entered on g0: mstart for a new M, mcall for
            // an M whose goroutine blocked, morestack for one whose
            // goroutine was preempted at a stack check.
            assert_eq!(idle_m.frames[0].function, "runtime.futex", "{context}");
            assert!(
                idle_m.ends_at(&["runtime.mstart", "runtime.mcall", "runtime.morestack"]),
                "{context}: idle M's stack cut short\n{idle_m}"
            );
        }
    }
}
