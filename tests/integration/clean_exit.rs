//! However the tracer ends (target exit, Ctrl-C, SIGTERM, --duration, even
//! SIGKILL), none of its BPF programs, maps or links stays loaded (checked
//! by the IDs it held), and a process it was attached to keeps running
//! unharmed.

use std::sync::PoisonError;
use std::{
    path::Path,
    process::Child,
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{skip_unless, support::*};

enum Ending {
    Signal(i32),
    Deadline,
}

fn heartbeat_count(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// The heartbeat workload is alive and still making progress.
fn assert_alive_and_beating(workload: &mut Child, file: &Path, context: &str) {
    assert!(
        workload.try_wait().unwrap().is_none(),
        "{context}: target died"
    );
    let before = heartbeat_count(file);
    let start = Instant::now();
    while heartbeat_count(file) <= before {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{context}: target stopped beating"
        );
        sleep(Duration::from_millis(20));
    }
}

fn attach_and_end(ending: Ending, context: &str) {
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let beat = dir.path().join("beat");
    let heartbeat = go_workload("heartbeat");
    let mut workload = spawn_ready(&heartbeat, &["-file", beat.to_str().unwrap()]);
    let report = report_path(&dir);
    let extra: &[&str] = match ending {
        Ending::Deadline => &["--duration", "500ms"],
        Ending::Signal(_) => &[],
    };
    let mut tracer = spawn_attach(workload.id(), extra, &report);
    assert!(
        !our_programs().is_empty(),
        "{context}: no program of ours loaded while tracing"
    );
    sleep(Duration::from_millis(200));
    // What the tracer holds, by ID: once it is gone, none may remain.
    let held = BpfIds::held_by(tracer.id());
    assert!(
        !held.programs.is_empty() && !held.maps.is_empty(),
        "{context}: the tracer holds no BPF program or map: {held:?}"
    );
    if let Ending::Signal(sig) = ending {
        signal(tracer.id(), sig);
    }
    let status = wait_timeout(&mut tracer, Duration::from_secs(20));
    if matches!(ending, Ending::Signal(libc::SIGKILL)) {
        assert!(!status.success());
        // Killed before it could write: no report, and no partial one.
        assert!(!report.exists(), "{context}: a report appeared");
    } else {
        assert!(status.success(), "{context}: tracer exited with {status}");
        let r = read_report(&report);
        assert_eq!(r["target"]["exited"], false, "{context}");
        assert!(u64_at(syscall(&r, "nanosleep"), "calls") > 0, "{context}");
    }
    assert_programs_unloaded(context);
    assert_released(&held, context);
    assert_alive_and_beating(&mut workload, &beat, context);
    workload.kill().unwrap();
    workload.wait().unwrap();
}

#[test]
fn ctrl_c_detaches_cleanly() {
    skip_unless!(cannot_trace_go());
    attach_and_end(Ending::Signal(libc::SIGINT), "SIGINT");
}

#[test]
fn sigterm_detaches_cleanly() {
    skip_unless!(cannot_trace_go());
    attach_and_end(Ending::Signal(libc::SIGTERM), "SIGTERM");
}

#[test]
fn duration_detaches_cleanly() {
    skip_unless!(cannot_trace_go());
    attach_and_end(Ending::Deadline, "--duration");
}

#[test]
fn sigkill_of_the_tracer_leaves_nothing_behind() {
    skip_unless!(cannot_trace_go());
    attach_and_end(Ending::Signal(libc::SIGKILL), "SIGKILL");
}

#[test]
fn target_exit_ends_the_trace_cleanly() {
    skip_unless!(cannot_trace_go());
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let heartbeat = go_workload("heartbeat");
    let mut workload = spawn_ready(&heartbeat, &[]);
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir);
    let mut attached = spawn_attach(workload.id(), &[], &report);
    sleep(Duration::from_millis(100));
    workload.kill().unwrap();
    workload.wait().unwrap();
    assert!(wait_timeout(&mut attached, Duration::from_secs(20)).success());
    assert_eq!(read_report(&report)["target"]["exited"], true);
    assert_programs_unloaded("attach, target exit");

    // And in run mode, when the command finishes.
    drop(_exclusive);
    let openfirst = go_workload("openfirst");
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let out = tracer()
        .args(["run", "--"])
        .arg(&openfirst)
        .arg("/nonexistent")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_programs_unloaded("run, command exit");
}
