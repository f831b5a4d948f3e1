//! `cargo xtask bench`: the syscall storm (2 goroutines x N 64-byte preads
//! on a cached file, timed by the workload itself) side by side in one run:
//! untraced, under the tracer, under the empty-probe floor, and under
//! bpftrace's per-syscall latency histogram, and untraced while the tracer
//! watches another process (the syscall tracepoints fire for every process
//! on the host: the cost of the tgid filter). Rounds alternate the modes so
//! drift on this shared machine hits all of them alike; medians and ratios
//! to untraced are printed. The storm also runs under `tracer serve`
//! (`--comm`, and `--all-go` watching the whole host): a fresh agent each
//! round, the storm held until the agent exposes it as a target, so only
//! its traced loop is timed. Each round also times the tracer's start-up,
//! from its launch to "probes live", on the largest Go binary at hand.
//! Once per run, the agent's CPU and memory over 1 and 20 idle Go targets.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::{go, setup::Tools, util};

const BPFTRACE_HIST: &str = "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @start[tid] = nsecs; } \
tracepoint:raw_syscalls:sys_exit /@start[tid]/ { @lat[args->id] = hist(nsecs - @start[tid]); delete(@start[tid]); }";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Untraced,
    Tracer,
    Floor,
    /// The floor plus the timing of each call (`--probes timed-floor`).
    TimedFloor,
    /// `tracer record`: the tracer, writing a recording as it goes.
    Record,
    Bpftrace,
    /// Untraced, while the tracer is attached to another process.
    Bystander,
    /// `tracer serve --comm`, which found the storm by its name.
    Serve,
    /// `tracer serve --all-go`: every Go program on the host traced.
    ServeAllGo,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Untraced => "untraced",
            Self::Tracer => "tracer",
            Self::Floor => "floor (empty probes)",
            Self::TimedFloor => "floor + timing each call",
            Self::Record => "tracer record",
            Self::Bpftrace => "bpftrace hist()",
            Self::Bystander => "untraced, tracer on another",
            Self::Serve => "serve --comm",
            Self::ServeAllGo => "serve --all-go",
        }
    }
}

pub fn run(tools: &Tools, rounds: usize, calls: u64) -> anyhow::Result<()> {
    let dir = util::root().join("target/xtask/bench");
    // The anchor figures (bpftrace, the floor) were first measured with a
    // Go 1.19 build: keep the storm comparable.
    let go_bin = &tools.go.first().context("no Go toolchain")?.1;
    let storm = go::build(go_bin, "pread", &dir)?;
    // Under its own name, so that `serve --comm` picks this storm and
    // nothing else that runs `pread` on the host.
    let named_storm = dir.join(STORM_COMM);
    std::fs::copy(&storm, &named_storm)?;
    let tracer = util::root().join("target/release/tracer");
    let bpftrace = util::succeeds(Command::new("bpftrace").arg("--version"));
    let mut modes = vec![
        Mode::Untraced,
        Mode::Tracer,
        Mode::Record,
        Mode::Floor,
        Mode::TimedFloor,
        Mode::Bystander,
        Mode::Serve,
        Mode::ServeAllGo,
    ];
    if bpftrace {
        modes.push(Mode::Bpftrace);
    }
    let args = [
        "-n".to_owned(),
        (2 * calls).to_string(),
        "-g".into(),
        "2".into(),
        "-size".into(),
        "64".into(),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut lost = 0u64;
    let big = largest_go_binary(&storm);
    let mut startups = Vec::new();
    // Per serve mode: ms from the storm's "ready" to its series in /metrics.
    let mut found: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    // Per serve mode: the most targets the agent had when it found the storm.
    let mut served = vec![0.0f64; modes.len()];
    for round in 1..=rounds {
        for (i, &mode) in modes.iter().enumerate() {
            let ns = match mode {
                Mode::Serve | Mode::ServeAllGo => {
                    let (ns, ms, n) =
                        serve_once(mode == Mode::ServeAllGo, &tracer, &named_storm, &args)?;
                    found[i].push(ms);
                    served[i] = served[i].max(n);
                    ns
                }
                _ => {
                    let (ns, l) = once(mode, &tracer, &storm, &args, &dir)?;
                    lost += l;
                    ns
                }
            };
            times[i].push(ns as f64 / 1e6);
        }
        startups.push(startup_ms(&tracer, &big, &dir)?);
        util::step(&format!("bench round {round}/{rounds} done"));
    }
    let medians: Vec<f64> = times.iter_mut().map(|t| median(t)).collect();
    let base = medians[0];
    println!();
    println!(
        "syscall storm: 2 goroutines x {calls} pread(64 B), {rounds} alternating rounds, medians"
    );
    println!(
        "{:<28} {:>12} {:>8} {:>10}",
        "mode", "elapsed ms", "ratio", "overhead"
    );
    for (mode, m) in modes.iter().zip(&medians) {
        println!(
            "{:<28} {:>12.1} {:>7.2}x {:>9.1}%",
            mode.name(),
            m,
            m / base,
            (m / base - 1.0) * 100.0
        );
    }
    let over = |m: Mode| {
        modes
            .iter()
            .position(|&x| x == m)
            .map(|i| medians[i] / base - 1.0)
    };
    let (tracer_o, floor_o) = (
        over(Mode::Tracer).unwrap_or(0.0),
        over(Mode::Floor).unwrap_or(0.0),
    );
    println!(
        "tracer overhead / floor overhead: {:.2} (target <= 1.1)",
        tracer_o / floor_o.max(1e-9)
    );
    if let Some(r) = over(Mode::Record) {
        println!(
            "record overhead / tracer overhead: {:.3} (target <= 1.05)",
            r / tracer_o.max(1e-9)
        );
    }
    if let Some(t) = over(Mode::TimedFloor) {
        println!(
            "timed floor overhead / floor overhead: {:.2}; tracer / timed floor: {:.2}",
            t / floor_o.max(1e-9),
            tracer_o / t.max(1e-9)
        );
    }
    if let Some(b) = over(Mode::Bpftrace) {
        println!(
            "tracer overhead / bpftrace overhead: {:.2} (target <= 0.25)",
            tracer_o / b.max(1e-9)
        );
    } else {
        println!("bpftrace not installed: no bpftrace column");
    }
    if let Some(s) = over(Mode::Serve) {
        println!(
            "serve --comm overhead / tracer overhead: {:.2}; serve --all-go / serve --comm: {:.2}",
            s / tracer_o.max(1e-9),
            over(Mode::ServeAllGo).unwrap_or(0.0) / s.max(1e-9)
        );
    }
    for ((mode, ms), n) in modes.iter().zip(&mut found).zip(&served) {
        if !ms.is_empty() {
            println!(
                "{}: the storm a target in /metrics {:.0} ms after it was ready (median; \
                 min {:.0}, max {:.0}; a fresh agent each round, with {n} target(s) in all at most)",
                mode.name(),
                median(ms),
                ms[0],
                ms[ms.len() - 1],
            );
        }
    }
    println!("events lost by the tracer over all rounds: {lost}");
    // `wrk -v` exits 1 after printing its version: found when it runs at all.
    if Command::new("wrk")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
    {
        let server = go::build(go_bin, "httpserver", &dir)?;
        // Untraced, the tracer, and the floor (its attach points with empty
        // programs): what any syscall-tracepoint tracer costs here.
        let modes = [None, Some("full"), Some("floor")];
        let mut rps = [Vec::new(), Vec::new(), Vec::new()];
        let mut p99 = [Vec::new(), Vec::new(), Vec::new()];
        for round in 1..=rounds {
            for (i, probes) in modes.into_iter().enumerate() {
                let (r, p) = http_once(probes, &tracer, &server, &dir)?;
                rps[i].push(r);
                p99[i].push(p);
            }
            util::step(&format!("http round {round}/{rounds} done"));
        }
        let range = |v: &[f64]| {
            let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = v.iter().copied().fold(0.0, f64::max);
            format!("{lo:.0}-{hi:.0}")
        };
        let spread: Vec<String> = rps.iter().map(|v| range(v)).collect();
        let [r0, r1, r2] = rps.map(|mut v| median(&mut v));
        let [p0, p1, p2] = p99.map(|mut v| median(&mut v));
        println!(
            "net/http server under wrk (2 threads, 32 connections, 3 s, loopback), {rounds} \
             alternating rounds, medians: untraced {r0:.0} req/s ({}), p99 {p0:.0} µs; attached \
             {r1:.0} req/s ({}), p99 {p1:.0} µs; floor attached {r2:.0} req/s ({}), p99 {p2:.0} \
             µs; throughput ratio {:.3} (target >= 0.97; floor {:.3}), p99 ratio {:.3} (target \
             <= 1.05; floor {:.3})",
            spread[0],
            spread[1],
            spread[2],
            r1 / r0,
            r2 / r0,
            p1 / p0,
            p2 / p0
        );
    } else {
        println!("wrk not installed: no net/http row");
    }
    let sleeper = go::build(go_bin, "sleeper", &dir)?;
    for command in ["attach", "threads"] {
        let (cpu, rss_mb, threads) = many_threads(&tracer, &sleeper, command, &dir)?;
        println!(
            "`tracer {command}` for 10 s on a process of {threads} threads: {:.1}% of a core \
             (start-up included), max RSS {rss_mb:.1} MB",
            cpu * 100.0
        );
    }
    let ticker = dir.join(TICK_COMM);
    std::fs::copy(&storm, &ticker)?;
    agent_figures(&tracer, &ticker, &storm, &args, &dir)?;
    let size_mb = std::fs::metadata(&big).map_or(0.0, |m| m.len() as f64 / 1e6);
    println!(
        "start-up to \"probes live\" (run mode) on {} ({size_mb:.1} MB): median {:.0} ms \
         (min {:.0}, max {:.0})",
        big.display(),
        median(&mut startups.clone()),
        startups.iter().copied().fold(f64::INFINITY, f64::min),
        startups.iter().copied().fold(0.0, f64::max),
    );
    Ok(())
}

/// The largest Go binary installed for the tests (etcd, restic), else the
/// storm itself.
fn largest_go_binary(storm: &Path) -> std::path::PathBuf {
    ["/usr/bin/etcd", "/usr/bin/restic"]
        .iter()
        .map(Path::new)
        .filter_map(|p| Some((std::fs::metadata(p).ok()?.len(), p.to_path_buf())))
        .max()
        .map_or_else(|| storm.to_path_buf(), |(_, p)| p)
}

/// Milliseconds from launching `tracer run -- BINARY --version` to its
/// "probes live" line (the binary read, the programs loaded and attached).
fn startup_ms(tracer: &Path, binary: &Path, dir: &Path) -> anyhow::Result<f64> {
    use std::io::BufRead as _;
    let start = std::time::Instant::now();
    let mut child = Command::new(tracer)
        .args(["run", "-o"])
        .arg(dir.join("startup.txt"))
        .arg("--")
        .arg(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("no stderr")?;
    let mut lines = std::io::BufReader::new(stderr).lines();
    line_with(&mut lines, "probes live", "the tracer")?;
    let live = start.elapsed();
    lines.for_each(drop);
    child.wait()?;
    Ok(live.as_secs_f64() * 1e3)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One timed run; returns the workload's elapsed ns and the tracer's lost events.
fn once(
    mode: Mode,
    tracer: &Path,
    storm: &Path,
    args: &[String],
    dir: &Path,
) -> anyhow::Result<(u64, u64)> {
    let report = dir.join("report.json");
    let _watcher = if mode == Mode::Bystander {
        Some(Bystander::start(tracer, dir)?)
    } else {
        None
    };
    let mut cmd = match mode {
        Mode::Serve | Mode::ServeAllGo => bail!("{}: timed by serve_once", mode.name()),
        Mode::Untraced | Mode::Bystander => Command::new(storm),
        Mode::Tracer | Mode::Floor | Mode::TimedFloor => {
            let mut c = Command::new(tracer);
            c.args(["run", "--json", "-o"]).arg(&report);
            match mode {
                Mode::Floor => c.args(["--probes", "floor"]),
                Mode::TimedFloor => c.args(["--probes", "timed-floor"]),
                _ => &mut c,
            };
            c.arg("--").arg(storm);
            c
        }
        Mode::Record => {
            let mut c = Command::new(tracer);
            c.args(["record", "-o"])
                .arg(dir.join("storm.rec"))
                .arg("--")
                .arg(storm);
            c
        }
        Mode::Bpftrace => {
            let mut c = Command::new("bpftrace");
            c.arg("-e")
                .arg(BPFTRACE_HIST)
                .arg("-c")
                .arg(shell_join(storm, args));
            c
        }
    };
    if mode != Mode::Bpftrace {
        cmd.args(args);
    }
    let out = cmd.stdin(Stdio::null()).stderr(Stdio::null()).output()?;
    if !out.status.success() {
        bail!("{} run failed: {}", mode.name(), out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ns = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("elapsed_ns="))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("{}: the workload printed no elapsed_ns", mode.name()))?;
    let lost = if mode == Mode::Tracer {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report)?)?;
        r["events"]["lost"].as_u64().unwrap_or(0)
    } else {
        0
    };
    Ok((ns, lost))
}

/// `tracer attach -p PID`, from "probes live" until dropped (SIGINT: it
/// reports and detaches).
struct Attached {
    tracer: std::process::Child,
}

impl Attached {
    /// `extra`: more arguments (`--probes floor`).
    fn start(tracer: &Path, pid: u32, report: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut tracer = Command::new(tracer)
            .args(["attach", "-p", &pid.to_string(), "-o"])
            .arg(report)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = tracer.stderr.take().context("no stderr")?;
        let mut lines = std::io::BufReader::new(stderr).lines();
        let attached = Self { tracer };
        line_with(&mut lines, "probes live", "the tracer")?;
        // Keep draining its stderr, so it never writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(attached)
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.tracer.id().to_string()])
            .status();
        let _ = self.tracer.wait();
    }
}

/// `tracer attach` on an idle `sleep`, live until dropped.
struct Bystander {
    // The sleep is killed first (below); the tracer then ends with its
    // target, or on the SIGINT its own drop sends.
    _tracer: Attached,
    sleeper: std::process::Child,
}

impl Bystander {
    fn start(tracer: &Path, dir: &Path) -> anyhow::Result<Self> {
        let mut sleeper = Command::new("sleep").arg("600").spawn()?;
        match Attached::start(tracer, sleeper.id(), &dir.join("bystander.txt"), &[]) {
            Ok(t) => Ok(Self {
                _tracer: t,
                sleeper,
            }),
            Err(e) => {
                let _ = sleeper.kill();
                let _ = sleeper.wait();
                Err(e)
            }
        }
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.sleeper.kill();
        let _ = self.sleeper.wait();
    }
}

/// One `wrk` run against the net/http workload, untraced or with the
/// tracer attached: (requests per second, p99 latency in µs).
/// One wrk run on a fresh server, untraced (`probes` None) or with
/// `tracer attach --probes P`: (requests/s, p99 µs).
fn http_once(
    probes: Option<&str>,
    tracer: &Path,
    server: &Path,
    dir: &Path,
) -> anyhow::Result<(f64, f64)> {
    use std::io::BufRead as _;
    let mut srv = Command::new(server)
        .args(["-port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = srv.stdout.take().context("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    let ready = line_with(&mut lines, "ready ", "the server")?;
    let port = ready.trim().trim_start_matches("ready ").to_owned();
    let result = (|| {
        let _attached = match probes {
            Some(p) => Some(Attached::start(
                tracer,
                srv.id(),
                &dir.join("http-report.txt"),
                &["--probes", p],
            )?),
            None => None,
        };
        let out = Command::new("wrk")
            .args(["-t2", "-c32", "-d3s", "--latency"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .stdin(Stdio::null())
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let rps = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .context("wrk printed no Requests/sec")?;
        let p99 = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("99%"))
            .and_then(|v| micros(v.trim()))
            .context("wrk printed no 99% latency")?;
        Ok((rps, p99))
    })();
    let _ = Command::new("kill")
        .args(["-TERM", &srv.id().to_string()])
        .status();
    let _ = srv.wait();
    result
}

/// `tracer COMMAND -p PID -d 10s` on a process holding 9 500 threads in
/// nanosleep (under Go's 10 000-thread cap): the tracer's CPU (share of a
/// core over its whole run) and maximum RSS, from wait4's rusage, and the
/// thread count.
fn many_threads(
    tracer: &Path,
    sleeper: &Path,
    command: &str,
    dir: &Path,
) -> anyhow::Result<(f64, f64, u64)> {
    const THREADS: u64 = 9_500;
    let mut target = Command::new(sleeper)
        .args(["-g", &THREADS.to_string(), "-n", "1", "-ms", "120000"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let pid = target.id();
    let count = || std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count() as u64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count() < THREADS && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let threads = count();
    let result = (|| {
        let start = std::time::Instant::now();
        let child = Command::new(tracer)
            .args([command, "-p", &pid.to_string(), "-d", "10s", "-o"])
            .arg(dir.join("many-threads.txt"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid; wait4 on our own child.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(child.id() as i32, &raw mut status, 0, &raw mut usage) };
        if r < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        let wall = start.elapsed().as_secs_f64();
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let cpu = (secs(usage.ru_utime) + secs(usage.ru_stime)) / wall;
        Ok((cpu, usage.ru_maxrss as f64 / 1024.0, threads))
    })();
    let _ = target.kill();
    let _ = target.wait();
    result
}

/// The first line of a child's output that contains `needle` (the lines
/// before it are skipped); an error naming `who` if the output ends first.
fn line_with(
    lines: &mut std::io::Lines<impl std::io::BufRead>,
    needle: &str,
    who: &str,
) -> anyhow::Result<String> {
    for line in lines {
        let line = line?;
        if line.contains(needle) {
            return Ok(line);
        }
    }
    bail!("{who} ended before printing {needle:?}")
}

/// wrk's latency ("812.00us", "3.45ms", "1.02s") in microseconds.
fn micros(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * scale)
}

fn shell_join(program: &Path, args: &[String]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// The storm's name under `serve` (a comm: at most 15 bytes).
const STORM_COMM: &str = "benchstorm";
/// The idle targets' name for the agent's figures.
const TICK_COMM: &str = "benchtick";

/// A child killed and reaped when dropped, on error paths too.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `tracer serve --listen 127.0.0.1:0 SELECTION`, until dropped (SIGTERM:
/// it detaches every probe).
struct Serve {
    child: std::process::Child,
    /// `127.0.0.1:PORT`, the port it picked.
    addr: String,
}

impl Serve {
    fn start(tracer: &Path, selection: &[&str]) -> anyhow::Result<Self> {
        use std::io::BufRead as _;
        let mut child = Command::new(tracer)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(selection)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut serve = Self {
            child,
            addr: String::new(),
        };
        let mut lines = std::io::BufReader::new(stderr).lines();
        let line = line_with(&mut lines, "metrics at http://", "tracer serve")?;
        serve.addr = line
            .split("http://")
            .nth(1)
            .and_then(|a| a.strip_suffix("/metrics"))
            .with_context(|| format!("no address in {line:?}"))?
            .to_owned();
        // Keep draining its stderr (a line per target), so it never blocks.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(serve)
    }

    /// One scrape of /metrics: the body.
    fn metrics(&self) -> anyhow::Result<String> {
        use std::io::{Read as _, Write as _};
        let mut conn = std::net::TcpStream::connect(&self.addr)?;
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        // One request per connection: the agent closes it after the body.
        conn.read_to_string(&mut text)?;
        let (head, body) = text.split_once("\r\n\r\n").context("no HTTP head")?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("/metrics answered {:?}", head.lines().next());
        }
        Ok(body.to_owned())
    }

    /// Scrapes until every pid is a live target (`gotracer_target_up 1`,
    /// published once its probes are attached); returns that scrape.
    fn wait_targets(&self, pids: &[u32]) -> anyhow::Result<String> {
        self.wait_up(pids, 1)
    }

    /// Scrapes until every pid's `gotracer_target_up` is `up`.
    fn wait_up(&self, pids: &[u32], up: u8) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let body = self.metrics()?;
            let is_up = |pid: &u32| {
                let series = format!("gotracer_target_up{{pid=\"{pid}\",");
                let value = format!(" {up}");
                body.lines()
                    .any(|l| l.starts_with(&series) && l.ends_with(&value))
            };
            if pids.iter().all(is_up) {
                return Ok(body);
            }
            if std::time::Instant::now() > deadline {
                bail!("tracer serve: gotracer_target_up of {pids:?} not {up} within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        // Sessions stop at their next tick (1 s), and the kernel takes about
        // a second per target to release its probes (20 targets: 20-24 s,
        // as long with SIGKILL); only a stuck agent is killed.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The storm under a fresh `tracer serve` (`--comm`, or `--all-go`): the
/// storm starts held (`-wait`), the agent finds it by its /proc scan and
/// attaches, and only then is the storm let go, so its timed loop is
/// traced throughout. Returns the storm's elapsed ns, the ms from its
/// "ready" to its series in /metrics, and the agent's targets then.
fn serve_once(
    all_go: bool,
    tracer: &Path,
    storm: &Path,
    args: &[String],
) -> anyhow::Result<(u64, f64, f64)> {
    use std::io::BufRead as _;
    let selection: &[&str] = if all_go {
        &["--all-go"]
    } else {
        &["--comm", STORM_COMM]
    };
    let serve = Serve::start(tracer, selection)?;
    let mut storm = Reaped(
        Command::new(storm)
            .args(args)
            .arg("-wait")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let pid = storm.0.id();
    let stdout = storm.0.stdout.take().context("no stdout")?;
    let mut lines = std::io::BufReader::new(stdout).lines();
    line_with(&mut lines, "ready", "the storm")?;
    let ready = std::time::Instant::now();
    let body = serve.wait_targets(&[pid])?;
    let found_ms = ready.elapsed().as_secs_f64() * 1e3;
    let targets = metric(&body, "gotracer_agent_targets")?;
    // SAFETY: a signal to our own child, not yet reaped.
    unsafe { libc::kill(pid as i32, libc::SIGUSR1) };
    let line = line_with(&mut lines, "elapsed_ns=", "the storm")?;
    let ns = line
        .trim()
        .trim_start_matches("elapsed_ns=")
        .parse()
        .with_context(|| format!("the storm printed {line:?}"))?;
    let status = storm.0.wait()?;
    if !status.success() {
        bail!("the storm under serve failed: {status}");
    }
    // Its last figures, published as it exits, must hold every pread: the
    // whole timed loop was traced.
    let body = serve.wait_up(&[pid], 0)?;
    let series = format!("gotracer_syscalls_total{{pid=\"{pid}\",");
    let preads = body
        .lines()
        .filter(|l| l.starts_with(&series) && l.contains("syscall=\"pread64\""))
        .find_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    let want = args
        .iter()
        .position(|a| a == "-n")
        .and_then(|i| args.get(i + 1)?.parse::<u64>().ok())
        .context("no -n in the storm's arguments")?;
    if preads != want {
        bail!("serve counted {preads} preads of the storm, not its {want}");
    }
    Ok((ns, found_ms, targets))
}

/// What the agent costs over a set of targets, measured over one interval.
struct AgentSample {
    targets: usize,
    /// Share of one core, from /proc/PID/stat's utime + stime.
    cpu: f64,
    /// The same from its own `gotracer_agent_cpu_seconds_total`.
    cpu_metric: f64,
    rss_mb: f64,
    hwm_mb: f64,
    /// Anonymous memory alone: the rest of VmRSS is mostly each target's
    /// ring buffer, mapped from the kernel twice over (so counted twice).
    anon_mb: f64,
    /// Its own `gotracer_agent_resident_memory_bytes`, in MB.
    rss_metric_mb: f64,
    /// Its own `gotracer_agent_targets`.
    targets_metric: f64,
    /// Samples in /metrics labelled with a pid, per target.
    series_per_target: f64,
    body_kb: f64,
}

/// How long each agent sample lasts.
const AGENT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// `tracer serve --comm` over 1, then 20, Go programs each making one
/// pread every 10 ms (with the Go runtime's own timer and idle calls): the
/// agent's CPU and memory once every one is a target and a second has
/// passed (attach costs left out), over [`AGENT_INTERVAL`] each, printed.
/// With the 20, the storm runs beside them, not a target, and again once
/// the agent is gone (the 20 still running): what every other process on
/// a node pays for the agent (one syscall dispatcher, whatever the number
/// of targets).
fn agent_figures(
    tracer: &Path,
    ticker: &Path,
    storm: &Path,
    args: &[String],
    dir: &Path,
) -> anyhow::Result<()> {
    const TARGETS: usize = 20;
    const STORMS: usize = 5;
    util::step(&format!(
        "agent figures: serve --comm over 1 and {TARGETS} Go programs"
    ));
    let serve = Serve::start(tracer, &["--comm", TICK_COMM])?;
    let mut procs = Vec::new();
    let mut samples = Vec::new();
    for n in [1, TARGETS] {
        while procs.len() < n {
            procs.push(Reaped(
                Command::new(ticker)
                    .args(["-tick", "10ms"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            ));
        }
        let pids: Vec<u32> = procs.iter().map(|p| p.0.id()).collect();
        serve.wait_targets(&pids)?;
        std::thread::sleep(std::time::Duration::from_secs(1));
        samples.push(agent_sample(&serve, n)?);
    }
    let mut beside = Vec::new();
    for _ in 0..STORMS {
        beside.push(once(Mode::Untraced, tracer, storm, args, dir)?.0 as f64 / 1e6);
    }
    // The 20 go on (they compete for the CPUs too): only the agent goes.
    drop(serve);
    let mut alone = Vec::new();
    for _ in 0..STORMS {
        alone.push(once(Mode::Untraced, tracer, storm, args, dir)?.0 as f64 / 1e6);
    }
    drop(procs);
    println!(
        "tracer serve --comm over Go programs each making a pread every 10 ms, {} s after \
         all are targets (one scrape at each end):",
        AGENT_INTERVAL.as_secs()
    );
    println!(
        "{:>7} {:>9} {:>12} {:>9} {:>9} {:>10} {:>12} {:>10} {:>13} {:>11}",
        "targets",
        "CPU %",
        "CPU % (own)",
        "VmRSS MB",
        "VmHWM MB",
        "RssAnon MB",
        "RSS MB (own)",
        "targets()",
        "series/target",
        "/metrics KB"
    );
    for s in &samples {
        println!(
            "{:>7} {:>8.2}% {:>11.2}% {:>9.1} {:>9.1} {:>10.1} {:>12.1} {:>10.0} {:>13.1} {:>11.1}",
            s.targets,
            s.cpu * 100.0,
            s.cpu_metric * 100.0,
            s.rss_mb,
            s.hwm_mb,
            s.anon_mb,
            s.rss_metric_mb,
            s.targets_metric,
            s.series_per_target,
            s.body_kb
        );
    }
    if let [one, many] = &samples[..] {
        println!(
            "{TARGETS} targets / 1: CPU {:.2}x, VmRSS {:.2}x, /metrics {:.1}x",
            many.cpu / one.cpu.max(1e-9),
            many.rss_mb / one.rss_mb.max(1e-9),
            many.body_kb / one.body_kb.max(1e-9)
        );
    }
    let (b, a) = (median(&mut beside), median(&mut alone));
    println!(
        "the storm, not a target, beside the {TARGETS} served programs: {b:.1} ms, then with \
         the same programs and no agent {a:.1} ms: {:.2}x (medians of {STORMS})",
        b / a.max(1e-9)
    );
    Ok(())
}

fn agent_sample(serve: &Serve, targets: usize) -> anyhow::Result<AgentSample> {
    let pid = serve.child.id();
    let before = serve.metrics()?;
    let (cpu0, at0) = (cpu_seconds(pid)?, std::time::Instant::now());
    std::thread::sleep(AGENT_INTERVAL);
    let body = serve.metrics()?;
    let (cpu1, wall) = (cpu_seconds(pid)?, at0.elapsed().as_secs_f64());
    let own = "gotracer_agent_cpu_seconds_total";
    let labelled = body
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains("pid=\""))
        .count();
    Ok(AgentSample {
        targets,
        cpu: (cpu1 - cpu0) / wall,
        cpu_metric: (metric(&body, own)? - metric(&before, own)?) / wall,
        rss_mb: status_kb(pid, "VmRSS:")? / 1024.0,
        hwm_mb: status_kb(pid, "VmHWM:")? / 1024.0,
        anon_mb: status_kb(pid, "RssAnon:")? / 1024.0,
        rss_metric_mb: metric(&body, "gotracer_agent_resident_memory_bytes")? / (1024.0 * 1024.0),
        targets_metric: metric(&body, "gotracer_agent_targets")?,
        series_per_target: labelled as f64 / targets as f64,
        body_kb: body.len() as f64 / 1024.0,
    })
}

/// The value of an unlabelled series in a /metrics body.
fn metric(body: &str, name: &str) -> anyhow::Result<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("/metrics has no {name}"))
}

/// utime + stime of a process, in seconds.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the comm's closing parenthesis: state is the first,
    // utime and stime the 12th and 13th.
    let rest = stat.rsplit_once(')').context("no comm in stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields.get(i).context("short stat")?.parse::<f64>()?)
    };
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok((ticks(11)? + ticks(12)?) / hz)
}

/// A `kB` line of /proc/PID/status (`VmRSS:`, `VmHWM:`).
fn status_kb(pid: u32, key: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}
