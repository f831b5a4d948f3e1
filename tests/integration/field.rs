//! Field diagnostics (issue 4): each scenario of the seed, run for real, must
//! come out of the report as a verdict in plain words with the numbers, and
//! the numbers must match what the workload did.

use std::sync::PoisonError;
use std::{
    fs,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{skip_unless, support::*};

fn kinds(report: &Value) -> Vec<String> {
    verdict_kinds(report)
}

/// The verdict that blocking calls of `class` hold threads (`holds`) or
/// are bounded.
fn blocking_verdict<'a>(report: &'a Value, holds: bool, class: &str) -> Option<&'a Value> {
    let kind = if holds {
        "blocking_holds_threads"
    } else {
        "blocking_bounded"
    };
    rows(&report["verdicts"], "verdicts")
        .iter()
        .find(|v| v["kind"] == kind && v["wait"]["class"] == class)
}

fn gomaxprocs(report: &Value) -> u64 {
    let g = &report["facts"]["cpu"]["gomaxprocs"];
    assert_eq!(g["state"], "known", "GOMAXPROCS unknown: {g}");
    u64_at(g, "value")
}

#[test]
fn unbounded_file_reads_are_diagnosed_and_the_bounded_fix_is_recognised() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("fileread");
    let dir = files_dir("fileread-files");
    let dir = dir.to_str().unwrap();
    // 1 000 files of 1 MiB, dropped from the page cache (fsync, fadvise
    // DONTNEED) before the reads, so every os.ReadFile waits for the disk.
    let (report, _) = trace_run_exclusive(&bin, &["-dir", dir, "-files", "1000"], &[]);
    let g = gomaxprocs(&report);
    let peak = u64_at(&report["threads"], "peak");
    let v = blocking_verdict(&report, true, "file")
        .unwrap_or_else(|| panic!("no file I/O verdict: {:?}, peak {peak}", kinds(&report)));
    let summary = v["summary"].as_str().unwrap();
    assert!(summary.contains("main.reader (fileread.go:"), "{summary}");
    assert!(
        summary.contains(&format!("peak {peak} threads")),
        "{summary}"
    );
    assert!(v["fix"].as_str().unwrap().contains("semaphore"));
    assert!(peak > g + 32, "an explosion: peak {peak}, GOMAXPROCS {g}");

    let (bounded, _) =
        trace_run_exclusive(&bin, &["-dir", dir, "-files", "1000", "-sem", "8"], &[]);
    let peak = u64_at(&bounded["threads"], "peak");
    let g = gomaxprocs(&bounded);
    assert!(
        blocking_verdict(&bounded, true, "file").is_none(),
        "{:?}",
        kinds(&bounded)
    );
    let v = blocking_verdict(&bounded, false, "file")
        .unwrap_or_else(|| panic!("no bounded verdict: {:?}", kinds(&bounded)));
    // GOMAXPROCS + 8 readers + the runtime's own few (sysmon, template,
    // an idle M).
    assert!(peak <= g + 8 + 4, "bounded peak {peak}, GOMAXPROCS {g}");
    assert!(
        v["summary"].as_str().unwrap().contains("bounded"),
        "{}",
        v["summary"]
    );
}

#[test]
fn idle_connections_stay_in_the_netpoller() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("netidle");
    let (report, _) = trace_run_exclusive(&bin, &["-conns", "2000", "-bursts", "3"], &[]);
    let g = gomaxprocs(&report);
    let peak = u64_at(&report["threads"], "peak");
    assert!(peak <= g + 8, "peak {peak} threads, GOMAXPROCS {g}");
    let v = verdict(&report, "netpoller_parked")
        .unwrap_or_else(|| panic!("no netpoller verdict: {:?}", kinds(&report)));
    assert!(v["summary"].as_str().unwrap().contains("netpoller"));
    let sockets = u64_at(&report["facts"]["sockets"], "sockets");
    assert!(sockets >= 4000, "2000 connections, both ends: {sockets}");
    assert!(
        rows(&report["verdicts"], "verdicts")
            .iter()
            .all(|v| v["kind"] != "blocking_holds_threads"),
        "{:?}",
        kinds(&report)
    );
}

fn rows_at<'a>(report: &'a Value, function: &str) -> Vec<&'a Value> {
    report["vdso"]["fallbacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| site_fn(r) == function)
        .collect()
}

#[test]
fn raw_clock_syscalls_are_counted_exactly_and_time_now_adds_none() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("vdso");
    let n = 5_000u64;
    let (report, _) = trace_run(&bin, &["-n", &n.to_string(), "-now", "200000"]);
    let raw = rows_at(&report, "main.rawClocks");
    let calls = |syscall: &str| -> u64 {
        raw.iter()
            .filter(|r| r["syscall"] == syscall)
            .map(|r| {
                assert_eq!(r["kind"], "direct_syscall", "{r}");
                u64_at(r, "calls")
            })
            .sum()
    };
    assert_eq!(calls("clock_gettime"), n);
    assert_eq!(calls("gettimeofday"), n);
    assert!(
        raw.iter()
            .any(|r| r["clock"] == "CLOCK_MONOTONIC" && r["syscall"] == "clock_gettime")
    );
    assert!(
        rows_at(&report, "main.nowLoop").is_empty(),
        "time.Now() went to the kernel: {}",
        report["vdso"]
    );
    let facts = &report["facts"]["vdso"];
    assert!(facts["mapping"].is_array(), "{facts}");
    // A typed fact: read, and not the zero of a runtime without vDSO.
    let sym = &facts["runtime_clock_gettime_sym"];
    assert_eq!(sym["state"], "known", "{sym}");
    assert_ne!(sym["value"], 0, "{sym}");
}

#[test]
fn a_runtime_without_vdso_is_classified() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("vdso");
    let binary = tracer::gobin::GoBinary::open(&bin).unwrap();
    let addr = binary
        .data_symbol("runtime.vdsoClockgettimeSym")
        .expect("symbol");
    let m = 20_000u64;
    let mut w = Waiting::spawn(&bin, &["-wait", "-n", "0", "-now", &m.to_string()]);
    let pid = w.child.id();
    // What a debugger would do: zero the runtime's vDSO pointer (the
    // workload is a non-PIE build, so the link address is the address).
    assert!(!binary.pie);
    let mem = fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/mem"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&mem, &[0u8; 8], addr).unwrap();
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let tmp = tempfile::tempdir().unwrap();
    let path = report_path(&tmp);
    let mut tracer = spawn_attach(pid, &[], &path);
    w.go_and_wait_done();
    signal(tracer.id(), libc::SIGINT);
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    let report = read_report(&path);
    let sym = &report["facts"]["vdso"]["runtime_clock_gettime_sym"];
    assert_eq!(sym["state"], "known", "{sym}");
    assert_eq!(sym["value"], 0, "{sym}");
    let rows = rows_at(&report, "main.nowLoop");
    let calls: u64 = rows
        .iter()
        .map(|r| {
            assert_eq!(r["kind"], "runtime_no_vdso", "{r}");
            u64_at(r, "calls")
        })
        .sum();
    // time.now reads CLOCK_REALTIME and CLOCK_MONOTONIC: two per call.
    assert_eq!(calls, 2 * m, "{}", report["vdso"]);
    assert!(
        verdict(&report, "vdso_fallback").is_some(),
        "{:?}",
        kinds(&report)
    );
}

/// A cgroup made for one test, removed (after its processes) on drop.
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    /// A new cgroup under the v1 hierarchy of `controller` or the v2 one
    /// (when the controller is enabled there); `None` when neither exists.
    fn new(controller: &str, probe_file: &str) -> Option<Self> {
        let name = format!("gotracer-test-{}-{controller}", std::process::id());
        let roots = [
            PathBuf::from("/sys/fs/cgroup").join(controller),
            PathBuf::from("/sys/fs/cgroup"),
        ];
        roots.iter().find_map(|root| {
            let dir = root.join(&name);
            fs::create_dir(&dir).ok()?;
            if dir.join(probe_file).exists() {
                Some(Self { dir })
            } else {
                let _ = fs::remove_dir(&dir);
                None
            }
        })
    }

    fn write(&self, file: &str, value: &str) {
        fs::write(self.dir.join(file), value)
            .unwrap_or_else(|e| panic!("write {value} to {file}: {e}"));
    }

    fn add(&self, pid: u32) {
        self.write("cgroup.procs", &pid.to_string());
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let start = Instant::now();
        while fs::remove_dir(&self.dir).is_err() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn thread_growth_warns_before_pids_max_is_hit() {
    skip_unless!(cannot_trace_go());
    let Some(cg) = TestCgroup::new("pids", "pids.max") else {
        eprintln!("skipped: no pids cgroup controller to set a limit in");
        return;
    };
    let limit = 60u64;
    cg.write("pids.max", &limit.to_string());
    let bin = go_workload("threadgrow");
    // 40 blocked goroutines, 10 per second: about 46 threads, under 60.
    let mut w = spawn_ready(&bin, &["-max", "40", "-every", "100ms", "-hold", "20s"]);
    let pid = w.id();
    cg.add(pid);
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let tmp = tempfile::tempdir().unwrap();
    let out = tracer()
        .args(["threads", "-p", &pid.to_string(), "--json", "-d", "5s"])
        .args(["-i", "500ms", "-o"])
        .arg(report_path(&tmp))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alive = w.try_wait().unwrap().is_none();
    let _ = w.kill();
    let _ = w.wait();
    let frames: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON frame per line"))
        .collect();
    assert!(frames.len() >= 5, "{} frames", frames.len());
    let warned = frames.iter().find_map(|f| {
        f["limits"]
            .as_array()?
            .iter()
            .find(|l| l["limit_name"] == "cgroup pids.max" && l["warning"] == true)
            .cloned()
    });
    let warned = warned.unwrap_or_else(|| panic!("no pids.max warning in {frames:?}"));
    assert_eq!(u64_at(&warned, "limit"), limit);
    assert!(u64_at(&warned, "used") < limit, "{warned}");
    assert!(alive, "the workload hit the limit and died");
    // The holders name the blocking call site.
    let last = frames.last().unwrap();
    assert!(
        last["sample"]["holders"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| site_fn(h) == "main.blocker"),
        "{last}"
    );
}

#[test]
fn gomaxprocs_above_the_cpu_quota_is_reported() {
    skip_unless!(cannot_trace_go());
    let Some(cg) =
        TestCgroup::new("cpu", "cpu.cfs_quota_us").or_else(|| TestCgroup::new("cpu", "cpu.max"))
    else {
        eprintln!("skipped: no cpu cgroup controller to set a quota in");
        return;
    };
    if cg.dir.join("cpu.max").exists() {
        cg.write("cpu.max", "50000 100000");
    } else {
        cg.write("cpu.cfs_period_us", "100000");
        cg.write("cpu.cfs_quota_us", "50000");
    }
    let bin = go_workload("heartbeat");
    let mut w = spawn_ready(&bin, &[]);
    let pid = w.id();
    cg.add(pid);
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let tmp = tempfile::tempdir().unwrap();
    let path = report_path(&tmp);
    let mut tracer = spawn_attach(pid, &["-d", "1s"], &path);
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    let _ = w.kill();
    let _ = w.wait();
    let report = read_report(&path);
    let cpu = &report["facts"]["cpu"];
    assert_eq!(cpu["quota_cpus"].as_f64(), Some(0.5), "{cpu}");
    let v = verdict(&report, "gomaxprocs_above_quota")
        .unwrap_or_else(|| panic!("no quota verdict: {:?} {cpu}", kinds(&report)));
    let summary = v["summary"].as_str().unwrap();
    assert!(
        summary.contains(&format!("GOMAXPROCS {}", gomaxprocs(&report))),
        "{summary}"
    );
    assert!(summary.contains("0.50 CPUs"), "{summary}");
}

#[test]
fn live_view_renders_in_a_terminal_and_quits_cleanly() {
    skip_unless!(cannot_trace_go());
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: no tmux");
        return;
    }
    let bin = go_workload("threadgrow");
    let mut w = spawn_ready(&bin, &["-max", "8", "-every", "20ms", "-hold", "30s"]);
    let pid = w.id();
    // Checks that no program of ours is left: no other tracer may run.
    let _guard = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let session = format!("gotracer-{}", std::process::id());
    let done = tempfile::tempdir().unwrap();
    let marker = done.path().join("exited");
    let command = format!(
        "{} top -p {pid} -i 300ms; echo $? > {}",
        env!("CARGO_BIN_EXE_tracer"),
        marker.display()
    );
    let tmux = |args: &[&str]| Command::new("tmux").args(args).output().unwrap();
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "150",
        "-y",
        "40",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let capture = || {
        String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", &session]).stdout).into_owned()
    };
    let start = Instant::now();
    let mut pane = String::new();
    while start.elapsed() < Duration::from_secs(15) {
        pane = capture();
        if pane.contains("main.blocker") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(pane.contains("tracer top"), "{pane}");
    assert!(pane.contains(&format!("pid {pid}")), "{pane}");
    assert!(pane.contains("main.blocker (threadgrow.go:"), "{pane}");
    assert!(pane.contains("GOMAXPROCS"), "{pane}");
    tmux(&["send-keys", "-t", &session, "q"]);
    let start = Instant::now();
    while !marker.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = tmux(&["kill-session", "-t", &session]);
    let code = fs::read_to_string(&marker).expect("tracer top did not exit on q");
    assert_eq!(code.trim(), "0");
    assert!(w.try_wait().unwrap().is_none(), "the target was harmed");
    let _ = w.kill();
    let _ = w.wait();
    assert_programs_unloaded("after tracer top quit");
}
