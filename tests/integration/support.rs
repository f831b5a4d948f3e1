//! Shared helpers: skip reasons, building workloads, running the tracer and
//! reading its JSON report.

use std::sync::PoisonError;
use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Mutex, OnceLock, RwLock},
    time::{Duration, Instant},
};

use serde_json::Value;

/// Tests that check "no program of ours is left loaded" take this for
/// writing; every other test that runs the tracer takes it for reading.
pub static PROBES: RwLock<()> = RwLock::new(());

/// `cargo xtask test --long`: the long variants (the soak for ten minutes,
/// the stress matrix for many rounds on every toolchain installed) instead
/// of the sizes CI runs.
pub fn long_variant() -> bool {
    std::env::var_os("TRACER_TEST_LONG").is_some_and(|v| v == "1")
}

/// Returns from the test, printing why, when it cannot run here.
#[macro_export]
macro_rules! skip_unless {
    ($reason:expr) => {
        if let Some(reason) = $reason {
            eprintln!("skipped: {reason}");
            return;
        }
    };
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Why a test that loads eBPF programs cannot run here, if it cannot.
pub fn cannot_trace() -> Option<String> {
    if !is_root() {
        return Some("needs root to load eBPF programs (run `cargo xtask test` as root)".into());
    }
    if !tracer::probes::programs_built() {
        // Under `cargo xtask test` this must not be skipped quietly.
        assert!(
            std::env::var_os("TRACER_REQUIRE_EBPF").is_none(),
            "tracer was built without its eBPF programs under TRACER_REQUIRE_EBPF"
        );
        return Some("tracer was built without its eBPF programs (run `cargo xtask setup`)".into());
    }
    None
}

/// Why a test that traces a Go workload cannot run here, if it cannot.
pub fn cannot_trace_go() -> Option<String> {
    cannot_trace().or_else(|| {
        let missing = go().is_none();
        assert!(
            !(missing && std::env::var_os("TRACER_REQUIRE_EBPF").is_some()),
            "no Go toolchain under `cargo xtask test`"
        );
        missing.then(|| "no Go toolchain (run `cargo xtask setup`)".into())
    })
}

/// The Go toolchain for workloads: `$TRACER_GO` (set by `cargo xtask test`),
/// else `go` on PATH.
pub fn go() -> Option<PathBuf> {
    if let Some(go) = std::env::var_os("TRACER_GO") {
        return Some(PathBuf::from(go));
    }
    let ok = Command::new("go")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then(|| PathBuf::from("go"))
}

fn work_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("workloads")
}

fn workload_source(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/workloads")
        .join(file)
}

/// Builds `tests/workloads/<name>.go` (once per test run) and returns the binary.
pub fn go_workload(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(path) = built.get(name) {
        return path.clone();
    }
    let dir = work_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let status = Command::new(go().expect("go toolchain"))
        .args(["build", "-o"])
        .arg(&out)
        .arg(workload_source(&format!("{name}.go")))
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "")
        .status()
        .expect("run go build");
    assert!(status.success(), "go build {name} failed");
    built.insert(name.to_owned(), out.clone());
    out
}

/// Builds `tests/workloads/<name>.c` with cc and returns the binary.
pub fn c_workload(name: &str) -> PathBuf {
    let dir = work_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(format!("{name}-c"));
    let status = Command::new("cc")
        .args(["-O2", "-pthread", "-o"])
        .arg(&out)
        .arg(workload_source(&format!("{name}.c")))
        .status()
        .expect("run cc");
    assert!(status.success(), "cc {name} failed");
    out
}

pub fn tracer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tracer"))
}

/// A temporary file path for a JSON report.
pub fn report_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("report.json")
}

/// Reads a JSON report and checks it: it must validate against the schema
/// and add up (`report_check`), whatever the test then asserts.
pub fn read_report(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no report at {}: {e}", path.display()));
    let report = serde_json::from_str(&text).expect("report is JSON");
    crate::report_check::check(&report);
    report
}

/// Runs `tracer run --json -o FILE -- <cmd>` and returns (report, output).
pub fn trace_run(program: &Path, args: &[&str]) -> (Value, Output) {
    trace_run_env(program, args, &[])
}

/// [`trace_run`] with extra environment for the command.
pub fn trace_run_env(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (Value, Output) {
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    trace_run_unlocked(program, args, env)
}

/// [`trace_run`] with no other traced workload running at the same time:
/// for tests whose ground truth is timing (threads created while goroutines
/// block), which a loaded 2-core machine would blur.
pub fn trace_run_exclusive(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (Value, Output) {
    let _guard = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    trace_run_unlocked(program, args, env)
}

fn trace_run_unlocked(program: &Path, args: &[&str], env: &[(&str, &str)]) -> (Value, Output) {
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir);
    let out = tracer()
        .args(["run", "--json", "-o"])
        .arg(&report)
        .arg("--")
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run tracer");
    assert!(
        out.status.success(),
        "tracer run failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (read_report(&report), out)
}

/// The row of one syscall in a report (panics with the names seen if absent).
pub fn syscall<'a>(report: &'a Value, name: &str) -> &'a Value {
    let rows = report["syscalls"].as_array().expect("syscalls array");
    rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| {
        let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
        panic!("no {name} row; rows: {names:?}")
    })
}

pub fn u64_at(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no integer {key} in {v}"))
}

/// Spawns a workload with piped stdout and waits for it to print `ready`.
pub fn spawn_ready(program: &Path, args: &[&str]) -> Child {
    let mut child = Command::new(program)
        .args(args)
        // Go 1.25+ would poll cgroup limits with pread every second.
        .env("GODEBUG", "updatemaxprocs=0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn workload");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "workload did not get ready");
    child
}

/// Spawns `tracer attach -p PID ...` and waits for its "probes live" line.
pub fn spawn_attach(pid: u32, extra: &[&str], report: &Path) -> Child {
    let mut args = vec!["-p".to_owned(), pid.to_string()];
    args.extend(extra.iter().map(|&a| a.to_owned()));
    spawn_attach_with(&args, report)
}

/// Spawns `tracer attach ARGS... --json -o REPORT` and waits for its
/// "probes live" line.
pub fn spawn_attach_with(args: &[String], report: &Path) -> Child {
    let mut child = tracer()
        .arg("attach")
        .args(args)
        .args(["--json", "-o"])
        .arg(report)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracer attach");
    let mut line = String::new();
    BufReader::new(child.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.contains("probes live"),
        "tracer did not come up: {line}"
    );
    child
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) on a process this test started.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig})"
    );
}

/// Waits for a child with a timeout, killing it if it overruns.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// IDs of loaded BPF programs that are ours (names start with `gt_`).
pub fn our_programs() -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.name_as_str().is_some_and(|n| n.starts_with("gt_")))
        .map(|p| p.id())
        .collect()
}

/// Polls `left` until it finds nothing left; panics with what is left
/// after 5 s. Teardown in the kernel is deferred (RCU): give it a moment.
fn wait_until_gone<T: std::fmt::Debug>(context: &str, left: impl Fn() -> Option<T>) {
    let start = Instant::now();
    while let Some(left) = left() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{context}: still loaded: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until none of our programs is loaded; panics after 5 s.
pub fn assert_programs_unloaded(context: &str) {
    wait_until_gone(context, || Some(our_programs()).filter(|p| !p.is_empty()));
}

/// Waits until none of `held` is loaded any more; panics after 5 s.
pub fn assert_released(held: &BpfIds, context: &str) {
    wait_until_gone(context, || {
        Some(held.still_in(&BpfIds::loaded())).filter(|l| !l.is_empty())
    });
}

/// BPF objects by ID: programs, maps and links.
#[derive(Debug, Default)]
pub struct BpfIds {
    pub programs: std::collections::BTreeSet<u32>,
    pub maps: std::collections::BTreeSet<u32>,
    pub links: std::collections::BTreeSet<u32>,
}

impl BpfIds {
    /// What process `pid` holds open: each BPF descriptor's
    /// `/proc/PID/fdinfo` names its object (`link_id`, else `prog_id`, else
    /// `map_id`).
    pub fn held_by(pid: u32) -> Self {
        let mut ids = Self::default();
        let dir = format!("/proc/{pid}/fdinfo");
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse::<u32>().ok())
            };
            if let Some(id) = field("link_id:") {
                ids.links.insert(id);
            } else if let Some(id) = field("prog_id:") {
                ids.programs.insert(id);
            } else if let Some(id) = field("map_id:") {
                ids.maps.insert(id);
            }
        }
        ids
    }

    /// Every BPF object loaded in the kernel now.
    pub fn loaded() -> Self {
        Self {
            programs: aya::programs::loaded_programs()
                .filter_map(Result::ok)
                .map(|p| p.id())
                .collect(),
            maps: aya::maps::loaded_maps()
                .filter_map(Result::ok)
                .map(|m| m.id())
                .collect(),
            links: aya::programs::loaded_links()
                .filter_map(Result::ok)
                .map(|l| l.id())
                .collect(),
        }
    }

    /// The objects of `self` still in `other`.
    pub fn still_in(&self, other: &Self) -> Self {
        let both = |a: &std::collections::BTreeSet<u32>, b: &std::collections::BTreeSet<u32>| {
            a.intersection(b).copied().collect()
        };
        Self {
            programs: both(&self.programs, &other.programs),
            maps: both(&self.maps, &other.maps),
            links: both(&self.links, &other.links),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.programs.is_empty() && self.maps.is_empty() && self.links.is_empty()
    }
}

/// The call-site frame of a row (`call_site.frames[0]`), or null.
pub fn site(row: &Value) -> &Value {
    &row["call_site"]["frames"][0]
}

/// The function named as a row's call site, or "".
pub fn site_fn(row: &Value) -> &str {
    site(row)["function"].as_str().unwrap_or("")
}

/// Rows of an array field (panics with the report when absent).
pub fn rows<'a>(v: &'a Value, what: &str) -> &'a [Value] {
    v.as_array()
        .unwrap_or_else(|| panic!("no {what} array in {v}"))
        .as_slice()
}

/// A verdict of `kind`, if the report has one.
pub fn verdict<'a>(report: &'a Value, kind: &str) -> Option<&'a Value> {
    rows(&report["verdicts"], "verdicts")
        .iter()
        .find(|v| v["kind"] == kind)
}

/// Verdict kinds of a report.
pub fn verdict_kinds(report: &Value) -> Vec<String> {
    rows(&report["verdicts"], "verdicts")
        .iter()
        .map(|v| v["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A workload that printed "ready" and waits for a line on its stdin
/// before it goes on (and may then print "done").
pub struct Waiting {
    pub child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Waiting {
    pub fn spawn(program: &Path, args: &[&str]) -> Self {
        Self::spawn_with(program, args, |_| {})
    }

    /// [`Waiting::spawn`], with the command set up by `configure` first.
    pub fn spawn_with(program: &Path, args: &[&str], configure: impl FnOnce(&mut Command)) -> Self {
        let mut cmd = Command::new(program);
        configure(&mut cmd);
        let mut child = cmd
            .args(args)
            .env("GODEBUG", "updatemaxprocs=0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn workload");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        Self { child, out }
    }

    /// Tells it to go on.
    pub fn go(&mut self) {
        writeln!(self.child.stdin.as_mut().unwrap(), "go").unwrap();
    }

    pub fn go_and_wait_done(&mut self) {
        self.go();
        let mut line = String::new();
        self.out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "done");
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory kept between runs: the workload reuses its 1 GiB of files
/// (and drops them from the page cache before every run).
pub fn files_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The report's verdict that blocking calls hold threads names `function`
/// as their call site.
pub fn assert_threads_held_at(r: &Value, function: &str) {
    let held = rows(&r["verdicts"], "verdicts")
        .iter()
        .find(|v| v["kind"] == "blocking_holds_threads")
        .unwrap_or_else(|| panic!("no verdict on the held threads: {:?}", verdict_kinds(r)));
    assert_eq!(site_fn(held), function, "{}", held["call_site"]);
}
