//! The fault matrix: a target that crashes, that executes another program,
//! that dies while its PID goes to another process, that runs into Go's
//! 10 000-thread limit. Each time the tracer ends cleanly, says what
//! happened, and counts nothing that did not happen in the target.
//! (SIGKILL of the tracer: `clean_exit`; a full ring buffer: `stress`.)

use std::{
    process::{Command, Stdio},
    sync::PoisonError,
    thread::sleep,
    time::Duration,
};

use serde_json::Value;

use crate::{report_check, skip_unless, support::*};

/// `tracer run --json` of the fault workload: (report, tracer's status).
fn run_faults(args: &[&str], env: &[(&str, &str)]) -> (Value, std::process::ExitStatus) {
    let bin = go_workload("faults");
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let out = tracer()
        .args(["run", "--json", "-o"])
        .arg(&path)
        .arg("--")
        .arg(&bin)
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let report = read_report(&path);
    report_check::check(&report);
    (report, out.status)
}

/// What every report of a target that ended says of its threads: all of
/// them ended with the process, none leaked.
fn assert_all_threads_ended_with_the_process(r: &Value, context: &str) {
    let t = &r["threads"];
    assert_eq!(r["target"]["exited"], true, "{context}");
    assert_eq!(u64_at(t, "exited_itself"), 0, "{context}: {t}");
    assert_eq!(
        u64_at(t, "ended_with_process"),
        u64_at(t, "at_start") + u64_at(t, "spawned"),
        "{context}: {t}"
    );
    assert!(
        !verdict_kinds(r).iter().any(|k| k.contains("leak")),
        "{context}: {:?}",
        verdict_kinds(r)
    );
}

/// A Go program that crashes (a panic, a nil dereference, a panic with
/// GOTRACEBACK=crash, which aborts): `run` reports the status the shell
/// would see and exits with it; every thread ended with the process.
#[test]
fn a_crashing_target_is_reported_with_its_status() {
    skip_unless!(cannot_trace_go());
    type Env = &'static [(&'static str, &'static str)];
    let cases: [(&str, Env, i32); 3] = [
        ("panic", &[], 2),
        ("nil", &[], 2),
        ("panic", &[("GOTRACEBACK", "crash")], 128 + libc::SIGABRT),
    ];
    for (then, env, status) in cases {
        let context = format!("-then {then} {env:?}");
        let (r, tracer_status) = run_faults(&["-g", "4", "-then", then], env);
        assert_eq!(r["target"]["exit_code"], status, "{context}");
        assert_eq!(tracer_status.code(), Some(status), "{context}");
        assert_all_threads_ended_with_the_process(&r, &context);
        // The four goroutines were in their minute-long nanosleep when it
        // crashed: none finished one. A call a signal interrupts leaves the
        // kernel (ERESTART_RESTARTBLOCK, then restart_syscall), so some
        // may show as such errors; never as a completed sleep.
        for row in r["syscalls"].as_array().unwrap() {
            if row["name"] == "nanosleep" {
                assert_eq!(row["calls"], row["errors"], "{context}: {row}");
            }
        }
    }
}

/// Attached to a process that then crashes: the trace ends at once, the
/// report says it exited, and the probes are gone.
#[test]
fn an_attached_target_that_crashes_ends_the_trace_cleanly() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("faults");
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let mut target = Waiting::spawn(
        &bin,
        &["-g", "8", "-ms", "20", "-wait", "-1", "-then", "nil"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let mut tracer = spawn_attach(target.child.id(), &[], &path);
    target.go();
    assert_eq!(target.child.wait().unwrap().code(), Some(2));
    assert!(wait_timeout(&mut tracer, Duration::from_secs(20)).success());
    let r = read_report(&path);
    report_check::check(&r);
    assert_all_threads_ended_with_the_process(&r, "attach, nil dereference");
    assert_programs_unloaded("attach, nil dereference");
}

/// Attached to a Go program that executes a non-Go one (`dd`, 2 000 reads
/// of one byte): the same process goes on, so its calls go on being
/// counted; the report names the exec, and no Go state is read from a
/// program that is gone.
#[test]
fn an_exec_in_an_attached_target_is_followed_and_named() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("faults");
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let mut target = Waiting::spawn(
        &bin,
        &[
            "-g",
            "4",
            "-ms",
            "5",
            "-wait",
            "-1",
            "-then",
            "exec",
            "-exec",
            "/bin/dd",
            "-args",
            "if=/dev/zero of=/dev/null bs=1 count=2000 status=none",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let mut tracer = spawn_attach(target.child.id(), &[], &path);
    target.go();
    assert!(target.child.wait().unwrap().success());
    assert!(wait_timeout(&mut tracer, Duration::from_secs(20)).success());
    let r = read_report(&path);
    report_check::check(&r);
    assert_eq!(u64_at(&r["target"], "execs"), 1, "{}", r["target"]);
    assert_eq!(r["target"]["executed"], serde_json::json!(["/bin/dd"]));
    assert_eq!(verdict_kinds(&r).iter().filter(|k| *k == "exec").count(), 1);
    // dd's 2 000 reads of /dev/zero, and the one read of libc's ELF header
    // by the dynamic loader (the Go program read nothing).
    let reads = u64_at(syscall(&r, "read"), "calls");
    assert!((2000..=2004).contains(&reads), "read calls: {reads}");
    assert!(u64_at(syscall(&r, "write"), "calls") >= 2000);
    assert_all_threads_ended_with_the_process(&r, "attach, exec");
}

/// The PID of the next process `fork` makes: `/proc/sys/kernel/ns_last_pid`
/// is the last one given.
fn spawn_with_pid(pid: u32, cmd: &mut Command) -> Option<std::process::Child> {
    for _ in 0..200 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).ok()?;
        let mut child = cmd.spawn().unwrap();
        if child.id() == pid {
            return Some(child);
        }
        // Another process took it first (the suite runs in parallel).
        let _ = child.kill();
        let _ = child.wait();
    }
    None
}

/// The target dies while the tracer is stopped (SIGSTOP: it cannot react),
/// and another process gets its PID at once and makes 3 000 reads: the
/// kernel programs closed the window when the target's last thread exited,
/// so none of them is counted. The probes filter by PID number; the
/// process is what the report is about.
#[test]
fn a_process_that_takes_the_targets_pid_is_never_counted() {
    skip_unless!(cannot_trace_go());
    let heartbeat = go_workload("heartbeat");
    let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
    let mut target = spawn_ready(&heartbeat, &[]);
    let pid = target.id();
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let mut tracer = spawn_attach(pid, &[], &path);
    sleep(Duration::from_millis(200));
    signal(tracer.id(), libc::SIGSTOP);
    target.kill().unwrap();
    target.wait().unwrap();
    let impostor = spawn_with_pid(
        pid,
        Command::new("dd")
            .args(["if=/dev/zero", "of=/dev/null", "bs=1", "count=3000"])
            .stderr(Stdio::null()),
    );
    let reused = impostor.map(|mut dd| dd.wait().unwrap().success());
    signal(tracer.id(), libc::SIGCONT);
    assert!(wait_timeout(&mut tracer, Duration::from_secs(20)).success());
    assert_eq!(reused, Some(true), "PID {pid} was never given again");
    let r = read_report(&path);
    report_check::check(&r);
    assert_eq!(r["target"]["exited"], true);
    // The heartbeat reads nothing; dd's 3 000 reads are another process's.
    let reads = r["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["name"] == "read")
        .map(|row| u64_at(row, "calls"))
        .sum::<u64>();
    assert_eq!(reads, 0, "{}", r["syscalls"]);
    assert!(u64_at(syscall(&r, "nanosleep"), "calls") > 0);
}

/// Goroutines blocked in nanosleep past Go's 10 000-thread limit: the
/// runtime kills the program ("program exceeds 10000-thread limit"). The
/// tracer follows all 10 000 threads, reports the exit status, the limit it
/// read from the runtime, and the call site that held the threads.
#[test]
fn ten_thousand_threads_up_to_the_runtimes_limit() {
    skip_unless!(cannot_trace_go());
    let (r, status) = run_faults(&["-g", "10500", "-ms", "60000", "-wait", "30000"], &[]);
    assert_eq!(r["target"]["exit_code"], 2);
    assert_eq!(status.code(), Some(2));
    let t = &r["threads"];
    // The limit counts Ms; the runtime dies on the 10 001st.
    let peak = u64_at(t, "peak");
    assert!((10_000..=10_002).contains(&peak), "{t}");
    assert_eq!(u64_at(&r["events"], "lost"), 0, "{}", r["events"]);
    assert_all_threads_ended_with_the_process(&r, "10 000 threads");
    assert_threads_held_at(&r, "main.holder");
}
