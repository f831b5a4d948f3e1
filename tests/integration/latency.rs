//! Latency truth and early visibility.

use crate::{skip_unless, support::*};

#[test]
fn nanosleep_20ms_reports_p50_between_20_and_22_ms() {
    skip_unless!(cannot_trace());
    let sleeper = c_workload("nanosleep");
    let (report, _) = trace_run(&sleeper, &[]);
    let row = syscall(&report, "nanosleep");
    assert_eq!(u64_at(row, "calls"), 200);
    let p50 = u64_at(row, "p50_ns");
    assert!(
        (20_000_000..=22_000_000).contains(&p50),
        "nanosleep p50 {p50} ns"
    );
    assert!(u64_at(row, "max_ns") >= 20_000_000);
    assert!(u64_at(row, "p999_ns") <= u64_at(row, "max_ns"));
}

#[test]
fn run_sees_the_first_syscalls_after_exec() {
    skip_unless!(cannot_trace_go());
    let openfirst = go_workload("openfirst");
    let (report, _) = trace_run(&openfirst, &["/nonexistent/tracer-first-open"]);
    // The exec itself returns into the new image under the probes.
    assert_eq!(u64_at(syscall(&report, "execve"), "calls"), 1);
    // The Go runtime's very first syscall sets up thread-local storage.
    assert!(u64_at(syscall(&report, "arch_prctl"), "calls") >= 1);
    // main's first act: opening the named, missing file (ENOENT): the only
    // failing openat of the process.
    assert_eq!(u64_at(syscall(&report, "openat"), "errors"), 1);
    assert_eq!(report["target"]["exit_code"], 0);
}
