//! Harness for real programs: Debian's
//! etcd, the httpserver workload under wrk, the DNS sandbox, restic. Each
//! helper returns a handle that cleans up on Drop (kills and reaps the
//! process, removes its temp dirs). Everything listens and sends on
//! loopback only; the DNS sandbox is a private network namespace with only
//! `lo`.
//!
//! Helpers that can run a program under a wrapper (`tracer run ... --`)
//! take the wrapper as a `Command` and append the program and its
//! arguments to it ([`wrap`]).
//!
//! The smoke tests at the end run each helper for real once; they skip,
//! printing why, when a program is missing or root is needed.

// Helpers for tests still to be written: not all are called yet.
#![allow(dead_code)]

use std::{
    ffi::OsStr,
    io::{BufRead, BufReader, Read as _},
    net::TcpListener,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Output, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::{skip_unless, support};

/// Why a program from PATH cannot be used here, if it cannot.
pub fn missing(program: &str) -> Option<String> {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()));
    (!found).then(|| format!("{program} is not installed (run `cargo xtask setup`)"))
}

/// `prefix` with `program args...` appended (program and arguments of
/// `inner`), keeping `inner`'s environment and working directory: runs
/// `inner` under a wrapper such as `tracer run --json -o F --`.
pub fn wrap(mut prefix: Command, inner: &Command) -> Command {
    prefix.arg(inner.get_program()).args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => drop(prefix.env(k, v)),
            None => drop(prefix.env_remove(k)),
        }
    }
    if let Some(dir) = inner.get_current_dir() {
        prefix.current_dir(dir);
    }
    prefix
}

/// A free TCP port on 127.0.0.1 (bound once and released: another
/// program could take it before it is used; callers retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// SIGTERM to the child's process group (harness children lead their own
/// group, so a wrapper's child is reached too: `tracer run` leaves its
/// command running when it is stopped by a signal), up to `grace` for the
/// child to exit, then SIGKILL to the group; reaps the child.
fn stop(child: &mut Child, grace: Duration) -> Option<std::process::ExitStatus> {
    let group = -(child.id() as i32);
    if let Ok(Some(status)) = child.try_wait() {
        // SAFETY: kill(2) on the group this process created (what is left of it).
        unsafe { libc::kill(group, libc::SIGKILL) };
        return Some(status);
    }
    // SAFETY: as above; the leader is our unreaped child, so the id is ours.
    unsafe { libc::kill(group, libc::SIGTERM) };
    let start = Instant::now();
    while start.elapsed() < grace {
        if let Ok(Some(status)) = child.try_wait() {
            // SAFETY: as above.
            unsafe { libc::kill(group, libc::SIGKILL) };
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above.
    unsafe { libc::kill(group, libc::SIGKILL) };
    child.wait().ok()
}

fn scratch(name: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("harness");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .unwrap()
}

// ---------------------------------------------------------------- etcd

/// Debian's etcd (3.4, Go 1.19, stripped, cgo) on 127.0.0.1 with free
/// client and peer ports and a temp data dir; killed and removed on Drop.
pub struct Etcd {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    data: tempfile::TempDir,
}

impl Etcd {
    /// Why etcd cannot run here, if it cannot.
    pub fn unavailable() -> Option<String> {
        missing("etcd").or_else(|| missing("etcdctl"))
    }

    /// Starts etcd and waits (up to 15 s) until `etcdctl endpoint health`
    /// succeeds. Retries with new ports if etcd dies at start (a port
    /// taken meanwhile).
    pub fn start() -> Self {
        Self::start_inner(None)
    }

    /// [`Etcd::start`] with etcd run under `prefix` (e.g. `tracer run
    /// --json -o F --`); [`Etcd::pid`] is then the wrapper's.
    pub fn start_wrapped(prefix: Command) -> Self {
        Self::start_inner(Some(prefix))
    }

    fn start_inner(mut prefix: Option<Command>) -> Self {
        for attempt in 0.. {
            let data = scratch("etcd");
            let (client, peer) = (free_port(), free_port());
            let curl = format!("http://127.0.0.1:{client}");
            let purl = format!("http://127.0.0.1:{peer}");
            let mut etcd = Command::new("etcd");
            etcd.args(["--name", "t", "--data-dir"])
                .arg(data.path().join("data"))
                .args(["--listen-client-urls", &curl])
                .args(["--advertise-client-urls", &curl])
                .args(["--listen-peer-urls", &purl])
                .args(["--initial-advertise-peer-urls", &purl])
                .args(["--initial-cluster", &format!("t={purl}")])
                .args(["--log-outputs", "stderr", "--logger", "zap"]);
            let mut cmd = match prefix.take() {
                Some(p) => wrap(p, &etcd),
                None => etcd,
            };
            let log = std::fs::File::create(data.path().join("etcd.log")).unwrap();
            let child = cmd
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn etcd");
            let mut etcd = Etcd {
                child,
                endpoint: curl,
                data,
            };
            match etcd.wait_healthy(Duration::from_secs(15)) {
                Ok(()) => return etcd,
                Err(why) if attempt < 2 => eprintln!("etcd did not start ({why}); retrying"),
                Err(why) => panic!("etcd did not start: {why}\n{}", etcd.log()),
            }
        }
        unreachable!()
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("etcd exited: {status}"));
            }
            let ok = self
                .etcdctl()
                .args(["endpoint", "health"])
                .output()
                .is_ok_and(|o| o.status.success());
            if ok {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(format!("not healthy after {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The etcd log (stderr, zap JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("etcd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `etcdctl` (API v3) pointed at this etcd.
    pub fn etcdctl(&self) -> Command {
        let mut cmd = Command::new("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint));
        cmd
    }

    /// `etcdctl put k<i> v` for i in 1..=n, one process each (in etcd
    /// every put is a WAL fdatasync). Returns the time taken.
    pub fn put_many(&self, n: usize) -> Duration {
        let start = Instant::now();
        for i in 1..=n {
            let out = self
                .etcdctl()
                .args(["put", &format!("k{i}"), "v"])
                .output()
                .expect("run etcdctl");
            assert!(
                out.status.success(),
                "etcdctl put k{i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        start.elapsed()
    }

    /// Number of keys starting with `prefix`.
    pub fn count(&self, prefix: &str) -> u64 {
        let out = self
            .etcdctl()
            .args([
                "get",
                "--prefix",
                "--keys-only",
                "--write-out=fields",
                prefix,
            ])
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "etcdctl get: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("\"Count\" : "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no Count in {out:?}"))
    }

    /// `etcdctl check perf --load=LOAD` (s, m, l, xl): runs ~60 s whatever
    /// the load. Returns its output; `status.success()` means PASS.
    pub fn check_perf(&self, load: &str) -> Output {
        self.etcdctl()
            .args(["check", "perf", &format!("--load={load}")])
            .output()
            .expect("run etcdctl check perf")
    }
}

impl Etcd {
    /// Stops etcd now (SIGTERM to its group, SIGKILL after 5 s) and
    /// returns the leader's exit status; Drop does the same.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        stop(&mut self.child, Duration::from_secs(5))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.terminate();
    }
}

// ---------------------------------------------------------- httpserver

/// The httpserver workload (tests/workloads/httpserver.go) on 127.0.0.1,
/// an ephemeral port; SIGTERM (it removes its temp dir), then SIGKILL, on Drop.
pub struct HttpServer {
    child: Child,
    pub port: u16,
    _stdout: BufReader<ChildStdout>,
}

impl HttpServer {
    /// Spawns `bin` (a build of httpserver.go) and reads its `ready PORT`.
    pub fn start(bin: &Path) -> Self {
        Self::spawn(Command::new(bin))
    }

    /// [`HttpServer::start`] under a wrapper `prefix` that passes stdout
    /// through (e.g. `tracer run --json -o F --`).
    pub fn start_wrapped(prefix: Command, bin: &Path) -> Self {
        Self::spawn(wrap(prefix, &Command::new(bin)))
    }

    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .process_group(0)
            // Go 1.25+ would poll cgroup limits with pread every second.
            .env("GODEBUG", "updatemaxprocs=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn httpserver");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("httpserver did not print `ready PORT`: {line:?}")
            });
        HttpServer {
            child,
            port,
            _stdout: stdout,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `http://127.0.0.1:PORT/PATH` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl HttpServer {
    /// Stops the server now (SIGTERM to its group: it removes its temp dir
    /// and exits 0; SIGKILL after 5 s) and returns the leader's exit
    /// status; Drop does the same.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        stop(&mut self.child, Duration::from_secs(5))
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// What `wrk --latency` reported.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkResult {
    /// "N requests in ..."
    pub requests: u64,
    /// "Requests/sec:"
    pub rps: f64,
    /// The 99% line of the latency distribution.
    pub p99: Duration,
    /// "Non-2xx or 3xx responses:" (0 if absent)
    pub non_2xx: u64,
    /// Sum of "Socket errors:" connect/read/write/timeout (0 if absent)
    pub socket_errors: u64,
}

/// Runs `wrk -tT -cC -dD --latency URL` (loopback URLs only) and parses it.
/// wrk takes whole seconds: `duration` is rounded up (at least 1 s).
pub fn wrk(url: &str, threads: u32, conns: u32, duration: Duration) -> WrkResult {
    let host = url
        .strip_prefix("http://")
        .and_then(|r| r.split(['/', ':']).next())
        .unwrap_or("");
    assert!(
        host.starts_with("127.") || host == "localhost" || url.starts_with("http://[::1]"),
        "wrk only against loopback, not {url}"
    );
    let out = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{conns}"))
        .arg(format!(
            "-d{}s",
            duration.as_secs_f64().ceil().max(1.0) as u64
        ))
        .arg("--latency")
        .arg(url)
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wrk failed: {out:?}");
    parse_wrk(&text).unwrap_or_else(|| panic!("cannot read wrk's output:\n{text}"))
}

/// wrk's durations: `231.00us`, `1.20ms`, `2.00s`, `1.00m`.
fn wrk_duration(s: &str) -> Option<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let v: f64 = num.parse().ok()?;
    let secs = match unit {
        "us" => v / 1e6,
        "ms" => v / 1e3,
        "s" => v,
        "m" => v * 60.0,
        "h" => v * 3600.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

pub fn parse_wrk(text: &str) -> Option<WrkResult> {
    let mut requests = None;
    let mut rps = None;
    let mut p99 = None;
    let mut non_2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rps = rest.trim().parse().ok();
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = wrk_duration(rest.trim());
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest.trim().parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            socket_errors = rest
                .split(',')
                .filter_map(|f| f.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.trim().parse().ok();
        }
    }
    Some(WrkResult {
        requests: requests?,
        rps: rps?,
        p99: p99?,
        non_2xx,
        socket_errors,
    })
}

// --------------------------------------------------------- DNS sandbox

/// tests/workloads/dns-sandbox.sh
pub fn dns_sandbox_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/workloads/dns-sandbox.sh")
}

/// Why the DNS sandbox cannot run here, if it cannot (needs root, unshare,
/// ip and mount).
pub fn dns_sandbox_unavailable() -> Option<String> {
    if !support::is_root() {
        return Some("the DNS sandbox needs root (network and mount namespaces)".into());
    }
    ["unshare", "ip", "mount"]
        .iter()
        .find_map(|p| missing(p).or_else(|| missing_sbin(p)))
}

fn missing_sbin(program: &str) -> Option<String> {
    let found = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(program).is_file());
    (!found).then(|| format!("{program} is not installed"))
}

/// `cmd` run inside the DNS sandbox (tests/workloads/dns-sandbox.sh): its
/// own network namespace with only `lo` up, a bind-mounted resolv.conf
/// naming only 127.0.0.1 (`options timeout:3 attempts:1`), nsswitch
/// `hosts: files dns`, host name `gtsandbox`. Keeps `cmd`'s environment and
/// working directory; stdio is set on the returned command as usual.
/// E.g. `dns_sandbox(&wrap(tracer_run, &dnscgo))` traces inside it.
pub fn dns_sandbox(cmd: &Command) -> Command {
    let mut sh = Command::new("/bin/sh");
    sh.arg(dns_sandbox_script());
    wrap(sh, cmd)
}

/// Builds `tests/workloads/<name>.go` with cgo (CGO_ENABLED=1) once per
/// test run, with the toolchain of [`support::go`].
pub fn go_workload_cgo(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<Vec<(String, PathBuf)>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some((_, p)) = built.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("workloads-cgo");
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join(name);
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/workloads")
        .join(format!("{name}.go"));
    let status = Command::new(support::go().expect("go toolchain"))
        .args(["build", "-o"])
        .arg(&out)
        .arg(src)
        .env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "")
        .env("CGO_ENABLED", "1")
        .status()
        .expect("run go build");
    assert!(status.success(), "go build (cgo) {name} failed");
    built.push((name.to_owned(), out.clone()));
    out
}

/// dnscgo's last line: `lookups N failed F elapsed S queries Q (A a AAAA b)
/// threads T [peak P]`, as (key, value) pairs.
pub fn dnscgo_summary(stdout: &str) -> Vec<(String, f64)> {
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("lookups ") || l.starts_with("queries "))
        .unwrap_or("");
    let words: Vec<&str> = line
        .split_whitespace()
        .map(|w| w.trim_matches(|c| c == '(' || c == ')'))
        .collect();
    words
        .chunks(2)
        .filter_map(|c| Some((c[0].to_owned(), c.get(1)?.parse().ok()?)))
        .collect()
}

pub fn summary_value(summary: &[(String, f64)], key: &str) -> f64 {
    summary
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no {key} in {summary:?}"))
}

// -------------------------------------------------------------- restic

/// A restic repository in a temp dir (password in RESTIC_PASSWORD),
/// removed on Drop.
pub struct ResticRepo {
    dir: tempfile::TempDir,
}

impl ResticRepo {
    pub fn unavailable() -> Option<String> {
        missing("restic")
    }

    /// `restic init` of a new repository.
    pub fn init() -> Self {
        let repo = ResticRepo {
            dir: scratch("restic"),
        };
        let out = repo
            .command()
            .arg("init")
            .output()
            .expect("run restic init");
        assert!(out.status.success(), "restic init: {out:?}");
        repo
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// `restic -r REPO` with its password and cache in the temp dir.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("restic");
        cmd.arg("-r")
            .arg(self.path())
            .env("RESTIC_PASSWORD", "gotracer")
            .env("RESTIC_CACHE_DIR", self.dir.path().join("cache"))
            .env_remove("RESTIC_REPOSITORY");
        cmd
    }

    /// `restic backup --json PATH`: wrap it to trace it.
    pub fn backup_command(&self, path: &Path) -> Command {
        let mut cmd = self.command();
        cmd.args(["backup", "--json"]).arg(path);
        cmd
    }
}

/// What a `restic backup --json` run reported (its "summary" message).
#[derive(Debug)]
pub struct ResticBackup {
    pub repo: ResticRepo,
    pub files_new: u64,
    pub files_processed: u64,
    pub bytes_processed: u64,
    pub elapsed: Duration,
}

pub fn restic_summary(stdout: &str) -> Option<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
}

/// Backs `dir` up into a new temp repository.
pub fn restic_backup(dir: &Path) -> ResticBackup {
    let repo = ResticRepo::init();
    let start = Instant::now();
    let out = repo
        .backup_command(dir)
        .output()
        .expect("run restic backup");
    let elapsed = start.elapsed();
    assert!(out.status.success(), "restic backup: {out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let s = restic_summary(&stdout).unwrap_or_else(|| panic!("no summary: {stdout}"));
    ResticBackup {
        files_new: s["files_new"].as_u64().unwrap(),
        files_processed: s["total_files_processed"].as_u64().unwrap(),
        bytes_processed: s["total_bytes_processed"].as_u64().unwrap(),
        elapsed,
        repo,
    }
}

impl std::fmt::Debug for ResticRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ResticRepo({})", self.path().display())
    }
}

// --------------------------------------------------------- smoke tests

#[test]
fn etcd_starts_and_a_put_succeeds() {
    skip_unless!(Etcd::unavailable());
    let etcd = Etcd::start();
    let took = etcd.put_many(5);
    assert_eq!(etcd.count("k"), 5, "{}", etcd.log());
    eprintln!("etcd {}: 5 puts in {took:?}", etcd.endpoint);
}

/// `etcdctl check perf` runs a minute whatever the load: run by hand with
/// `cargo test -- --ignored etcd_check_perf`.
#[test]
#[ignore = "etcdctl check perf takes 60 s"]
fn etcd_check_perf_passes() {
    skip_unless!(Etcd::unavailable());
    let etcd = Etcd::start();
    let out = etcd.check_perf("s");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PASS"), "{out:?}");
}

#[test]
fn wrk_against_httpserver_gives_requests() {
    skip_unless!(missing("wrk"));
    skip_unless!(support::go().is_none().then_some("no Go toolchain"));
    let server = HttpServer::start(&support::go_workload("httpserver"));
    for path in ["/file", "/copy", "/echo"] {
        let r = wrk(&server.url(path), 1, 4, Duration::from_secs(1));
        eprintln!("{path}: {r:?}");
        assert!(r.requests > 0 && r.rps > 0.0, "{path}: {r:?}");
        assert!(r.p99 > Duration::ZERO, "{path}: {r:?}");
        assert_eq!((r.non_2xx, r.socket_errors), (0, 0), "{path}: {r:?}");
    }
    // The body of /file is the 64 KiB file.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    std::io::Write::write_all(&mut s, b"GET /file HTTP/1.0\r\n\r\n").unwrap();
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).unwrap();
    let body = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(resp.len() - body, 64 << 10);
    let mut server = server;
    let status = server.terminate().expect("httpserver reaped");
    assert!(status.success(), "httpserver on SIGTERM: {status}");
}

/// Processes whose process group is `pgid` (from /proc/*/stat).
fn group_members(pgid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
        let pgrp = after.split_whitespace().nth(2).and_then(|f| f.parse().ok());
        if pgrp == Some(pgid) {
            pids.push(pid);
        }
    }
    pids
}

/// Under a wrapper that does not exec (a shell that waits for it), the
/// server still prints its port through, and stopping the handle ends both.
#[test]
fn wrapped_httpserver_stops_with_its_wrapper() {
    skip_unless!(support::go().is_none().then_some("no Go toolchain"));
    let mut sh = Command::new("/bin/sh");
    sh.args(["-c", "\"$@\"; echo unreachable", "sh"]);
    let mut server = HttpServer::start_wrapped(sh, &support::go_workload("httpserver"));
    let pgid = server.pid();
    assert_eq!(group_members(pgid).len(), 2, "sh and httpserver");
    let r = std::net::TcpStream::connect(("127.0.0.1", server.port));
    assert!(r.is_ok(), "the wrapped server listens");
    server.terminate();
    let start = Instant::now();
    while !group_members(pgid).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "group {pgid} left running"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn parses_wrk_output() {
    let text = "Running 1s test @ http://127.0.0.1:38561/file
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   469.04us  657.45us   6.24ms   89.24%
    Req/Sec    13.35k     1.02k   15.13k    72.73%
  Latency Distribution
     50%  231.00us
     75%  502.00us
     90%    1.20ms
     99%    3.35ms
  29197 requests in 1.10s, 1.79GB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:  26548.06
Transfer/sec:      1.63GB
";
    let r = parse_wrk(text).unwrap();
    assert_eq!(r.requests, 29197);
    assert_eq!(r.rps, 26548.06);
    assert_eq!(r.p99, Duration::from_micros(3350));
    assert_eq!((r.non_2xx, r.socket_errors), (7, 3));
}

/// getaddrinfo (`getent ahosts`: A and AAAA at once) against the stub of
/// dnscgo -serve inside the sandbox: no answer, so it fails after the 3 s
/// timeout, and the stub saw exactly the two queries.
#[test]
fn dns_sandbox_makes_getent_time_out_at_the_stub() {
    skip_unless!(dns_sandbox_unavailable());
    skip_unless!(missing("getent"));
    skip_unless!(support::go().is_none().then_some("no Go toolchain"));
    skip_unless!(missing("gcc").map(|m| format!("{m} (cgo)")));
    let stub = go_workload_cgo("dnscgo");
    let dir = scratch("dns");
    let out_file = dir.path().join("stub.out");
    // In the sandbox: the stub in the background, getent once it is ready.
    let script = r#"
        "$1" -serve 4500ms > "$2" &
        until grep -q ready "$2" 2>/dev/null; do sleep 0.02; done
        start=$(date +%s%N)
        getent ahosts h1.gotracer.test; status=$?
        echo "getent $status $(( ($(date +%s%N) - start) / 1000000 ))"
        ip -o link show | awk -F': ' '{print "link " $2}'
        wait
        cat "$2"
    "#;
    let mut inner = Command::new("/bin/sh");
    inner.args(["-c", script, "sh"]).arg(&stub).arg(&out_file);
    let out = dns_sandbox(&inner).output().expect("run dns-sandbox.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let getent: Vec<u64> = text
        .lines()
        .find_map(|l| l.strip_prefix("getent "))
        .expect("getent line")
        .split_whitespace()
        .map(|w| w.parse().unwrap())
        .collect();
    // Exit 2: "key not found" (the lookup failed), after the 3 s timeout.
    assert_eq!(getent[0], 2, "{text}");
    assert!(
        (2900..4500).contains(&getent[1]),
        "getent took {} ms",
        getent[1]
    );
    let links: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("link "))
        .collect();
    assert_eq!(links, ["lo"], "the sandbox has only lo");
    let summary = dnscgo_summary(&text);
    assert_eq!(summary_value(&summary, "queries"), 2.0, "{text}");
    assert_eq!(summary_value(&summary, "A"), 1.0, "{text}");
    assert_eq!(summary_value(&summary, "AAAA"), 1.0, "{text}");
}

/// The cgo thread explosion in miniature: 50 lookups with netdns=cgo hold
/// 50 threads in getaddrinfo's poll; with netdns=go a handful of threads.
#[test]
fn dnscgo_in_the_sandbox_cgo_threads_vs_go() {
    skip_unless!(dns_sandbox_unavailable());
    skip_unless!(support::go().is_none().then_some("no Go toolchain"));
    skip_unless!(missing("gcc").map(|m| format!("{m} (cgo)")));
    let bin = go_workload_cgo("dnscgo");
    let run = |mode: &str| {
        let mut cmd = Command::new(&bin);
        cmd.args(["-n", "50"])
            .env("GODEBUG", format!("netdns={mode}"));
        let out = dns_sandbox(&cmd).output().expect("run dnscgo");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{mode}: {out:?}");
        eprintln!("netdns={mode}: {text}");
        dnscgo_summary(&text)
    };
    let (cgo, go) = std::thread::scope(|s| {
        let cgo = s.spawn(|| run("cgo"));
        let go = s.spawn(|| run("go"));
        (cgo.join().unwrap(), go.join().unwrap())
    });
    for s in [&cgo, &go] {
        assert_eq!(summary_value(s, "failed"), 50.0);
        assert_eq!(summary_value(s, "queries"), 100.0);
        let elapsed = summary_value(s, "elapsed");
        assert!((2.9..5.0).contains(&elapsed), "elapsed {elapsed}");
    }
    assert!(summary_value(&cgo, "threads") >= 50.0, "{cgo:?}");
    assert!(summary_value(&go, "threads") <= 12.0, "{go:?}");
}

#[test]
fn restic_backs_up_a_small_dir() {
    skip_unless!(ResticRepo::unavailable());
    let src = scratch("restic-src");
    for i in 0..20 {
        std::fs::write(src.path().join(format!("f{i}")), vec![i as u8; 1000 + i]).unwrap();
    }
    let backup = restic_backup(src.path());
    assert_eq!(backup.files_new, 20, "{backup:?}");
    assert_eq!(backup.files_processed, 20, "{backup:?}");
    assert_eq!(
        backup.bytes_processed,
        (0..20).map(|i| 1000 + i as u64).sum::<u64>()
    );
    eprintln!("restic: {backup:?}");
    // The handle is usable: the snapshot is listed.
    let out = backup
        .repo
        .command()
        .args(["snapshots", "--json"])
        .output()
        .unwrap();
    let snaps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snaps.as_array().map(Vec::len), Some(1));
}

#[test]
fn wrap_keeps_program_args_and_env() {
    let mut inner = Command::new("prog");
    inner.args(["-a", "b"]).env("X", "1").current_dir("/tmp");
    let mut prefix = Command::new("tracer");
    prefix.args(["run", "--"]);
    let w = wrap(prefix, &inner);
    assert_eq!(w.get_program(), OsStr::new("tracer"));
    let args: Vec<&OsStr> = w.get_args().collect();
    assert_eq!(args, ["run", "--", "prog", "-a", "b"]);
    assert!(
        w.get_envs()
            .any(|(k, v)| k == "X" && v == Some(OsStr::new("1")))
    );
    assert_eq!(w.get_current_dir(), Some(Path::new("/tmp")));
}
