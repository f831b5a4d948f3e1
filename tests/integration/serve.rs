//! `tracer serve`, end to end on loopback: a workload making an exact
//! number of pread calls, the agent's /metrics (checked by `promtool check
//! metrics`), and a real Prometheus scraping it, queried over its HTTP API
//! until it holds the exact count; then `--comm` finding a process that
//! starts after the agent, `--cgroup` a process started in (or moved into)
//! a cgroup of the test's own; and the agent leaving no probe behind on
//! SIGTERM.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{PoisonError, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    skip_unless,
    support::{
        BpfIds, PROBES, Waiting, assert_released, cannot_trace_go, go_workload, signal, tracer,
        wait_timeout,
    },
};

/// The workload's pread calls: odd, so no runtime habit makes it up.
const PREADS: u64 = 12_345;
/// Goroutines locked to their threads at once (new threads).
const LOCKED: &str = "6";

/// `prometheus` and `promtool` (Debian's package, installed by setup).
fn prometheus_tools() -> Option<(PathBuf, PathBuf)> {
    Some((on_path("prometheus")?, on_path("promtool")?))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn cannot_run() -> Option<String> {
    cannot_trace_go().or_else(|| {
        let missing = prometheus_tools().is_none();
        assert!(
            !(missing && std::env::var_os("TRACER_REQUIRE_EBPF").is_some()),
            "no prometheus/promtool under `cargo xtask test` (setup installs them)"
        );
        missing.then(|| "no prometheus and promtool (run `cargo xtask setup`)".into())
    })
}

/// A running `tracer serve`, its stderr read line by line.
pub(crate) struct Agent {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    pub(crate) addr: SocketAddr,
}

impl Agent {
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut child = tracer()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tracer serve");
        let (tx, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[serve] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut agent = Self {
            child,
            lines,
            seen: Vec::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
        };
        let line = agent.wait_line("metrics at http://");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("no address in {line}"));
        agent.addr = addr.parse().unwrap();
        assert!(agent.addr.ip().is_loopback());
        agent
    }

    /// Waits (10 s) for a stderr line containing `what`.
    pub(crate) fn wait_line(&mut self, what: &str) -> String {
        self.wait_line_within(what, Duration::from_secs(10))
    }

    /// Waits up to `within` for a stderr line containing `what`.
    pub(crate) fn wait_line_within(&mut self, what: &str, within: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(what) {
                        return line;
                    }
                }
                Err(_) => panic!("tracer serve never said `{what}`; said {:?}", self.seen),
            }
        }
    }

    pub(crate) fn metrics(&self) -> String {
        let (head, body) = http_get(self.addr, "/metrics", "HTTP/1.1");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        body
    }

    /// Polls /metrics (15 s) until `sample`'s value is `want`.
    pub(crate) fn wait_value(&self, sample: &Sample<'_>, want: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let body = self.metrics();
            let got = sample.value(&body);
            if got == Some(want) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{} is {got:?}, never {want}:\n{body}",
                sample.name
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The BPF programs, maps and links the agent holds now.
    pub(crate) fn held(&self) -> BpfIds {
        BpfIds::held_by(self.child.id())
    }

    /// SIGTERM; the agent exits 0, saying so, and every program, map and
    /// link in `held` is released.
    pub(crate) fn stop(mut self, held: &BpfIds) {
        signal(self.child.id(), libc::SIGTERM);
        let status = wait_timeout(&mut self.child, Duration::from_secs(15));
        assert!(status.success(), "tracer serve exited with {status}");
        self.wait_line("stopped by SIGTERM");
        assert_released(held, "after tracer serve's SIGTERM");
    }
}

impl Drop for Agent {
    /// A failed test leaves no agent (and no probe) behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One series of the exposition: a name and label pairs it must have.
pub(crate) struct Sample<'a> {
    pub(crate) name: &'a str,
    pub(crate) labels: Vec<(&'a str, String)>,
}

impl Sample<'_> {
    pub(crate) fn value(&self, body: &str) -> Option<f64> {
        body.lines().find_map(|line| {
            let rest = line.strip_prefix(self.name)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once("} ")?;
            self.labels
                .iter()
                .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
                .then(|| value.trim().parse().ok())?
        })
    }
}

/// A GET over a fresh connection: (status line and headers, body).
fn http_get(addr: SocketAddr, path: &str, version: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} {version}\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_owned(), body.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn threads_of(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count() as u64
}

/// `promtool check metrics` on an exposition: it must report nothing.
fn promtool_check(promtool: &Path, body: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}: {said}",
        out.status
    );
}

/// The Grafana dashboard shipped in deploy/: every panel's query is valid
/// PromQL to the real Prometheus (its variables given their "All"
/// values), names only families the agent exposes, and the panels on
/// what every target has (threads, syscalls, latency, lost events, the
/// agent) return series.
fn dashboard_answers(prom: &Prometheus, body: &str) {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/grafana/gotracer-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let families: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut answered = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap();
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("gotracer_"))
            {
                // A histogram's series, and a counter's in OpenMetrics,
                // are named after their family plus a suffix.
                let family = ["_bucket", "_sum", "_count", "_total"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                assert!(
                    families.contains(&name) || families.contains(&family),
                    "{title}: {name} is not exposed"
                );
            }
            let promql = expr
                .replace("$__rate_interval", "1m")
                .replace("$instance", ".*")
                .replace("$comm", ".*")
                .replace("$cgroup", ".*");
            // `query` asserts Prometheus accepted it. A rate needs two
            // scrapes in its window: wait for them (1 s apart).
            let always = [
                "Threads",
                "Syscalls per",
                "latency p99",
                "Lost events",
                "Agent",
            ];
            let required = always.iter().any(|a| title.contains(a));
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut result = prom.query(&promql);
            while required && result.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                result = prom.query(&promql);
            }
            assert!(
                !required || !result.is_empty(),
                "{title}: {promql} has no series"
            );
            answered += 1;
        }
    }
    assert!(answered >= 10, "only {answered} dashboard queries");
}

/// Percent-encodes a query parameter.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus server scraping one target every second, with its data
/// in a temporary directory; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(binary: &Path, target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - \
                 job_name: gotracer\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn prometheus");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// An instant query's result vector (empty while it has nothing).
    fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", url_encode(promql));
        let Ok(mut s) = TcpStream::connect(self.addr) else {
            return Vec::new();
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        // HTTP/1.0: a plain body, never chunked.
        if write!(s, "GET {path} HTTP/1.0\r\n\r\n").is_err() {
            return Vec::new();
        }
        let mut out = String::new();
        if s.read_to_string(&mut out).is_err() {
            return Vec::new();
        }
        let Some((_, body)) = out.split_once("\r\n\r\n") else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_str::<Value>(body) else {
            return Vec::new();
        };
        assert_eq!(v["status"], "success", "{promql}: {body}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls (30 s) until `promql` gives one sample of value `want`.
    fn wait_value(&self, promql: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(promql);
            if let [one] = last.as_slice() {
                let v: Option<f64> = one["value"][1].as_str().and_then(|s| s.parse().ok());
                if v == Some(want) {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("Prometheus never had {promql} == {want}; last: {last:?}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_exact_counts() {
    skip_unless!(cannot_run());
    let (prometheus, promtool) = prometheus_tools().unwrap();
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let bin = go_workload("stdinpread");
    let mut w = Waiting::spawn(&bin, &["-n", &PREADS.to_string(), "-lock", LOCKED]);
    let pid = w.child.id();
    // Given twice, traced once.
    let mut agent = Agent::start(&["-p", &pid.to_string(), "-p", &pid.to_string()]);
    agent.wait_line(&format!("probes live on pid {pid}"));
    let threads_before = threads_of(pid);
    w.go_and_wait_done();
    let preads = Sample {
        name: "gotracer_syscalls_total",
        labels: vec![("pid", pid.to_string()), ("syscall", "pread64".into())],
    };
    let body = agent.wait_value(&preads, PREADS as f64);
    let threads_after = threads_of(pid);
    let spawned = threads_after - threads_before;
    assert!(spawned > 0, "the locked goroutines started no thread");
    promtool_check(&promtool, &body);
    let up_lines = body
        .lines()
        .filter(|l| l.starts_with("gotracer_target_up{") && l.contains(&format!("pid=\"{pid}\"")))
        .count();
    assert_eq!(up_lines, 1, "{body}");
    // The agent's other answers: 404 elsewhere, OpenMetrics when asked.
    let (head, _) = http_get(agent.addr, "/", "HTTP/1.1");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");

    let prom = Prometheus::start(&prometheus, agent.addr);
    let sel = format!("pid=\"{pid}\"");
    prom.wait_value(
        &format!("gotracer_syscalls_total{{syscall=\"pread64\",{sel}}}"),
        PREADS as f64,
    );
    // Threads: the spawns by cause add up to the threads /proc gained, and
    // the live count is /proc's.
    prom.wait_value(
        &format!("sum(gotracer_thread_spawns_total{{{sel}}})"),
        spawned as f64,
    );
    prom.wait_value(&format!("gotracer_threads{{{sel}}}"), threads_after as f64);
    prom.wait_value(&format!("gotracer_target_up{{{sel}}}"), 1.0);
    // The histogram's +Inf bucket and count are the exact calls.
    prom.wait_value(
        &format!(
            "gotracer_syscall_duration_seconds_bucket{{syscall=\"pread64\",le=\"+Inf\",{sel}}}"
        ),
        PREADS as f64,
    );
    prom.wait_value(
        &format!("gotracer_syscall_duration_seconds_count{{syscall=\"pread64\",{sel}}}"),
        PREADS as f64,
    );
    prom.wait_value("up{job=\"gotracer\"}", 1.0);
    dashboard_answers(&prom, &body);
    drop(prom);
    let held = agent.held();
    assert!(!held.programs.is_empty(), "the agent held no BPF program");
    drop(w);
    // The target exited: its last figures stay, down, and its probes go
    // while the agent runs on.
    let up = Sample {
        name: "gotracer_target_up",
        labels: vec![("pid", pid.to_string())],
    };
    let body = agent.wait_value(&up, 0.0);
    assert_eq!(preads.value(&body), Some(PREADS as f64));
    // What the agent keeps is the dispatcher alone (its five programs,
    // attached: syscall entry and exit, thread creation and exit, exec);
    // the rest the target had goes from the kernel, detached on a thread
    // of its own (a Go target's uprobes take the kernel about a second).
    let dispatcher_only = |ids: &BpfIds| {
        let names: Vec<String> = aya::programs::loaded_programs()
            .filter_map(Result::ok)
            .filter(|p| ids.programs.contains(&p.id()))
            .filter_map(|p| p.name_as_str().map(str::to_owned))
            .collect();
        let only = names.iter().all(|n| n.starts_with("gt_dispatch"))
            && (ids.programs.len(), ids.links.len()) == (5, 5);
        (only, names)
    };
    let start = Instant::now();
    let left = loop {
        let left = agent.held();
        let (only, names) = dispatcher_only(&left);
        if only {
            break left;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the agent still holds more than its dispatcher: {names:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let target_only = BpfIds {
        programs: held.programs.difference(&left.programs).copied().collect(),
        maps: held.maps.difference(&left.maps).copied().collect(),
        links: held.links.difference(&left.links).copied().collect(),
    };
    assert!(!target_only.programs.is_empty() && !target_only.maps.is_empty());
    assert_released(&target_only, "after its only target exited");
    agent.stop(&left);
}

#[test]
fn comm_finds_a_process_that_starts_later() {
    skip_unless!(cannot_run());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let bin = go_workload("stdinpread");
    // A name no other process has (comm keeps 15 bytes).
    let name = format!("gtserve{}", std::process::id() % 100_000);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(&name);
    std::fs::copy(&bin, &copy).unwrap();
    let mut agent = Agent::start(&["--comm", &name]);
    // Nothing of that name yet: no target.
    let body = agent.metrics();
    assert_eq!(
        body.lines()
            .find_map(|l| l.strip_prefix("gotracer_agent_targets "))
            .map(str::trim),
        Some("0"),
        "{body}"
    );
    let started = Instant::now();
    let n = 4_321u64;
    let mut w = Waiting::spawn(&copy, &["-n", &n.to_string()]);
    let pid = w.child.id();
    let up = Sample {
        name: "gotracer_target_up",
        labels: vec![("pid", pid.to_string()), ("comm", name.clone())],
    };
    agent.wait_value(&up, 1.0);
    eprintln!(
        "--comm: pid {pid} up in /metrics {} ms after it started",
        started.elapsed().as_millis()
    );
    counts_its_preads(&mut agent, &mut w, n);
    // The Go version label names a Go release.
    let body = agent.metrics();
    assert!(
        body.lines().any(|l| l.starts_with("gotracer_target_up{")
            && l.contains(&format!("pid=\"{pid}\""))
            && l.contains("go_version=\"go1.")),
        "{body}"
    );
    // SIGTERM while the target is traced: every probe goes with the agent.
    let held = agent.held();
    assert!(!held.programs.is_empty(), "the agent held no BPF program");
    agent.stop(&held);
    drop(w);
}

/// A discovered stdinpread target, once its probes are live, told to go:
/// /metrics counts its `n` preads over what it made before (found within
/// a scan of its start, it may have been traced while the Go runtime
/// started — Go 1.25+ reads its cgroup limits with pread — so what was
/// counted before "go", after a reading of the kernel's aggregates every
/// second, is the base). The /metrics body with the count.
fn counts_its_preads(agent: &mut Agent, w: &mut Waiting, n: u64) -> String {
    let pid = w.child.id();
    agent.wait_line(&format!("probes live on pid {pid}"));
    let preads = Sample {
        name: "gotracer_syscalls_total",
        labels: vec![("pid", pid.to_string()), ("syscall", "pread64".into())],
    };
    std::thread::sleep(Duration::from_millis(1500));
    let base = preads.value(&agent.metrics()).unwrap_or(0.0);
    w.go_and_wait_done();
    agent.wait_value(&preads, base + n as f64)
}

/// `--all-go`: a Go program started after the agent becomes a target with
/// its exact count; a program that is not Go (`sleep`) and the agent
/// itself never do. Exclusive: it attaches to every Go program on the host.
#[test]
fn all_go_finds_go_programs_and_only_them() {
    skip_unless!(cannot_run());
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let bin = go_workload("stdinpread");
    let mut agent = Agent::start(&["--all-go"]);
    let mut not_go = Command::new("sleep").arg("30").spawn().unwrap();
    let n = 2_468u64;
    let mut w = Waiting::spawn(&bin, &["-n", &n.to_string()]);
    let pid = w.child.id();
    let up = Sample {
        name: "gotracer_target_up",
        labels: vec![("pid", pid.to_string())],
    };
    agent.wait_value(&up, 1.0);
    let body = counts_its_preads(&mut agent, &mut w, n);
    for (what, other) in [("sleep", not_go.id()), ("the agent", agent.child.id())] {
        assert!(
            !body.contains(&format!("pid=\"{other}\"")),
            "{what} (pid {other}) is a target: {body}"
        );
    }
    let _ = not_go.kill();
    let _ = not_go.wait();
    let held = agent.held();
    agent.stop(&held);
    drop(w);
}

/// A cgroup v2 cgroup of the test's own under the hierarchy's root,
/// removed when dropped (even after a failure): what is still in it is
/// moved to the root first.
struct TestCgroup {
    dir: PathBuf,
    /// Its path as /proc/PID/cgroup shows it.
    path: String,
    root: PathBuf,
}

impl TestCgroup {
    /// `None` when no cgroup2 hierarchy is mounted from its root here.
    fn create() -> Option<Self> {
        use tracer::procinfo::cgroup::{CgroupVersion, cgroup_mounts};
        let mount = cgroup_mounts()
            .unwrap()
            .into_iter()
            .find(|m| m.version == CgroupVersion::V2 && m.root == "/")?;
        let name = format!("gotracer-test-{}", std::process::id());
        let dir = mount.mount_point.join(&name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Some(Self {
            dir,
            path: format!("/{name}"),
            root: mount.mount_point,
        })
    }

    /// Moves process `pid` into the cgroup.
    fn enter(&self, pid: u32) {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string()).unwrap();
    }

    /// Sets `cmd` up to start in the cgroup: its child joins it (writing
    /// 0, "myself", to cgroup.procs) between fork and exec, so the program
    /// runs there from its first instruction.
    fn start_in(&self, cmd: &mut Command) {
        use std::os::unix::{ffi::OsStrExt as _, process::CommandExt as _};
        let procs = self.dir.join("cgroup.procs");
        let procs = std::ffi::CString::new(procs.as_os_str().as_bytes()).unwrap();
        // SAFETY: the hook only makes async-signal-safe calls (open,
        // write, close) on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let wrote = libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if wrote { Ok(()) } else { Err(err) }
            });
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // A process that is exiting leaves the cgroup asynchronously: try
        // again for a while.
        for _ in 0..100 {
            let procs = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.split_whitespace() {
                let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
            }
            if std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("could not remove the test cgroup {}", self.dir.display());
    }
}

/// The cgroup v2 path of a process, from /proc/PID/cgroup.
fn cgroup_of(pid: u32) -> String {
    tracer::procinfo::cgroup::of_process(pid).expect("a cgroup v2 line")
}

/// `--cgroup`: a process started in the cgroup after the agent is a
/// target with its exact count and the cgroup's `cgroup` label; an
/// identical process outside it is not, until it is moved into it (then
/// it is, with its exact count too).
#[test]
fn cgroup_finds_processes_started_in_it_or_moved_into_it() {
    skip_unless!(cannot_run());
    let Some(cg) = TestCgroup::create() else {
        assert!(
            std::env::var_os("TRACER_REQUIRE_EBPF").is_none(),
            "no cgroup v2 hierarchy under `cargo xtask test`"
        );
        eprintln!("skipped: no cgroup v2 hierarchy mounted here");
        return;
    };
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let bin = go_workload("stdinpread");
    let mut agent = Agent::start(&["--cgroup", cg.dir.to_str().unwrap()]);
    let n = 3_579u64;
    let mut outside = Waiting::spawn(&bin, &["-n", &n.to_string()]);
    let mut inside = Waiting::spawn_with(&bin, &["-n", &n.to_string()], |c| cg.start_in(c));
    let (pid, other) = (inside.child.id(), outside.child.id());
    assert_eq!(cgroup_of(pid), cg.path);
    assert_ne!(cgroup_of(other), cg.path);
    let up = |pid: u32| Sample {
        name: "gotracer_target_up",
        labels: vec![("pid", pid.to_string()), ("cgroup", cg.path.clone())],
    };
    agent.wait_value(&up(pid), 1.0);
    let body = counts_its_preads(&mut agent, &mut inside, n);
    let labelled = |pid: u32| Sample {
        name: "gotracer_syscalls_total",
        labels: vec![
            ("pid", pid.to_string()),
            ("syscall", "pread64".into()),
            ("cgroup", cg.path.clone()),
        ],
    };
    let any_cgroup = Sample {
        name: "gotracer_syscalls_total",
        labels: vec![("pid", pid.to_string()), ("syscall", "pread64".into())],
    };
    assert_eq!(
        labelled(pid).value(&body),
        any_cgroup.value(&body),
        "{body}"
    );
    // Seconds of scans went by: the process outside was never taken.
    assert!(
        !body.contains(&format!("pid=\"{other}\"")),
        "pid {other}, outside the cgroup, is a target: {body}"
    );
    // Moved in, it is found at a later scan, labelled with the cgroup.
    cg.enter(other);
    agent.wait_value(&up(other), 1.0);
    let body = counts_its_preads(&mut agent, &mut outside, n);
    assert!(labelled(other).value(&body).is_some(), "{body}");
    let held = agent.held();
    agent.stop(&held);
    drop(inside);
    drop(outside);
}

/// A bad `--listen` and a port in use are refused at once, before any
/// probe (no root needed to see it).
#[test]
fn listen_errors_come_before_any_probe() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let out = tracer()
        .args(["serve", "--listen", &addr.to_string(), "--all-go"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("cannot listen on {addr}")) && err.contains("in use"),
        "{err}"
    );
    assert!(!err.contains("probes live"), "{err}");
    let out = tracer()
        .args(["serve", "--listen", "localhost:9464", "-p", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("give IP:PORT"), "{err}");
}
