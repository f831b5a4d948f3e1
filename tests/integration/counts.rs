//! Exact counts: syscalls a workload issues, and threads it creates and ends.

use std::sync::PoisonError;
use std::time::Duration;

use crate::{skip_unless, support::*};

const N: u64 = 200_000;

/// Go 1.25+ re-reads the cgroup CPU limit with pread every second
/// (GOMAXPROCS updates): turn that off so the only preads are ours.
const NO_CGROUP_POLL: (&str, &str) = ("GODEBUG", "updatemaxprocs=0");

#[test]
fn pread_count_is_exact_in_run_mode() {
    skip_unless!(cannot_trace_go());
    let pread = go_workload("pread");
    // The Go runtime itself may pread a few files at start-up (newer
    // releases read cgroup limits): measure that baseline with zero calls
    // of our own, then expect exactly N more.
    let (base, _) = trace_run_env(&pread, &["-n", "0", "-g", "4"], &[NO_CGROUP_POLL]);
    let baseline = base["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pread64")
        .map_or(0, |r| u64_at(r, "calls"));
    let (report, _) = trace_run_env(
        &pread,
        &["-n", &N.to_string(), "-g", "4"],
        &[NO_CGROUP_POLL],
    );
    let row = syscall(&report, "pread64");
    assert_eq!(
        u64_at(row, "calls"),
        N + baseline,
        "pread64 calls (runtime baseline {baseline})"
    );
    assert_eq!(u64_at(row, "errors"), 0);
    assert_eq!(u64_at(&report["events"], "lost"), 0);
    // Fast calls on a cached file: p99 well under 100 µs.
    assert!(
        u64_at(row, "p99_ns") < 100_000,
        "pread64 p99 {}",
        row["p99_ns"]
    );
    assert_eq!(report["target"]["exit_code"], 0);
}

#[test]
fn pread_count_is_exact_in_attach_mode() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let pread = go_workload("pread");
    let mut workload = spawn_ready(&pread, &["-n", &N.to_string(), "-g", "4", "-wait"]);
    let dir = tempfile::tempdir().unwrap();
    let report_file = report_path(&dir);
    let mut tracer = spawn_attach(workload.id(), &[], &report_file);
    // Probes are live: let the workload go.
    signal(workload.id(), libc::SIGUSR1);
    assert!(wait_timeout(&mut workload, Duration::from_secs(60)).success());
    // The tracer stops by itself when the target exits.
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    let report = read_report(&report_file);
    let row = syscall(&report, "pread64");
    assert_eq!(u64_at(row, "calls"), N);
    assert_eq!(u64_at(&report["events"], "lost"), 0);
    assert_eq!(report["target"]["exited"], true);
    assert_eq!(report["target"]["mode"], "attach");
}

#[test]
fn thread_spawns_and_exits_match_ground_truth() {
    skip_unless!(cannot_trace_go());
    const K: u64 = 16;
    let threads = go_workload("threads");
    let (report, out) = trace_run(&threads, &["-k", &K.to_string()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let threads_now: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("threads_now="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("workload printed no thread count: {stdout}"));
    let t = &report["threads"];
    // Exactly the K goroutines that exited while locked ended a thread.
    assert_eq!(u64_at(t, "exited_itself"), K, "threads: {t}");
    // Whatever the runtime spawned, the live count must match /proc.
    assert_eq!(
        1 + u64_at(t, "spawned") - u64_at(t, "exited_itself"),
        threads_now,
        "threads: {t}"
    );
    // At process exit every remaining thread ends.
    assert_eq!(u64_at(t, "ended_with_process"), threads_now, "threads: {t}");
    assert!(u64_at(t, "peak") > K);
    assert_eq!(u64_at(&report["events"], "lost"), 0);
}
