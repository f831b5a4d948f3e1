//! Bad input: each case is one line on stderr naming the problem and the
//! remedy, a non-zero exit, and no panic.

use std::{
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Command, Output},
};

use crate::{skip_unless, support::*};

fn assert_one_line_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "expected failure, got {}; stderr: {stderr}",
        out.status
    );
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {stderr}");
    assert!(lines[0].starts_with("tracer: error: "), "{stderr}");
    assert!(
        lines[0].contains(needle),
        "expected `{needle}` in: {stderr}"
    );
}

#[test]
fn nonexistent_pid() {
    let out = tracer()
        .args(["attach", "-p", "99999999"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "no process with PID 99999999");
}

fn kernel_thread_pid() -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let flags: u64 = stat[stat.rfind(')')? + 2..]
                .split_whitespace()
                .nth(6)?
                .parse()
                .ok()?;
            (flags & 0x0020_0000 != 0).then_some(pid)
        })
}

#[test]
fn kernel_thread() {
    let Some(pid) = kernel_thread_pid() else {
        eprintln!("skipped: no kernel thread visible in this PID namespace");
        return;
    };
    let out = tracer()
        .args(["attach", "-p", &pid.to_string()])
        .output()
        .unwrap();
    assert_one_line_error(&out, "is a kernel thread");
}

#[test]
fn command_that_cannot_be_executed() {
    let out = tracer()
        .args(["run", "--", "/nonexistent/command"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "cannot execute `/nonexistent/command`");
    let out = tracer()
        .args(["run", "--", "/etc/passwd"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "not executable");
}

#[test]
fn output_in_a_missing_directory() {
    let out = tracer()
        .args(["attach", "-p", "1", "-o", "/nonexistent/dir/r.json"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "does not exist");
}

/// A copy of the tracer that an unprivileged user can execute (the build
/// tree may sit under a private home directory).
fn world_executable_tracer(dir: &tempfile::TempDir) -> PathBuf {
    let copy = dir.path().join("tracer");
    std::fs::copy(env!("CARGO_BIN_EXE_tracer"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

#[test]
fn no_privileges() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let run_as_nobody = |args: &[&str]| -> Output {
        if is_root() {
            // Drop to the unprivileged `nobody` user with no capabilities.
            Command::new("setpriv")
                .args([
                    "--reuid=65534",
                    "--regid=65534",
                    "--clear-groups",
                    "--inh-caps=-all",
                    "--",
                ])
                .arg(world_executable_tracer(&dir))
                .args(args)
                .output()
                .unwrap()
        } else {
            tracer().args(args).output().unwrap()
        }
    };
    let attach = run_as_nobody(&["attach", "-p", &pid]);
    let run = run_as_nobody(&["run", "--", "true"]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    assert_one_line_error(&attach, "needs root");
    assert_one_line_error(&run, "needs root");
}

/// Runs the tracer as `nobody` holding only `caps` (ambient capabilities,
/// as systemd's AmbientCapabilities or `setpriv` give them).
fn run_as_nobody_with(dir: &tempfile::TempDir, caps: &str, args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(format!("--inh-caps=-all,{caps}"))
        .arg(format!("--ambient-caps={caps}"))
        .arg("--")
        .arg(world_executable_tracer(dir))
        .args(args)
        .current_dir(dir.path())
        .output()
        .unwrap()
}

/// CAP_BPF and CAP_PERFMON alone: tracefs is mounted but root-only, and the
/// error says that (not "not mounted") and what to add.
#[test]
fn capabilities_without_tracefs_access_say_what_is_missing() {
    skip_unless!(cannot_trace());
    let dir = tempfile::tempdir().unwrap();
    let out = run_as_nobody_with(&dir, "+bpf,+perfmon", &["run", "--", "true"]);
    assert_one_line_error(&out, "cannot read it");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CAP_DAC_READ_SEARCH"));
}

/// The minimum this kernel needs for a full trace by a non-root user (the
/// README's list), and the launched command inherits none of them.
#[test]
fn the_least_capabilities_trace_and_the_command_gets_none() {
    skip_unless!(cannot_trace());
    let dir = tempfile::tempdir().unwrap();
    let _guard = PROBES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let caps = "+bpf,+perfmon,+dac_read_search,+sys_admin";
    // A directory `nobody` may write the report in.
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_as_nobody_with(
        &dir,
        caps,
        &[
            "run",
            "--json",
            "-o",
            "out/r.json",
            "--",
            "sh",
            "-c",
            "grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let sets: Vec<(&str, &str)> = stdout
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    assert_eq!(sets.len(), 4, "{stdout}");
    for (set, value) in &sets {
        assert_eq!(
            u64::from_str_radix(value, 16).unwrap(),
            0,
            "{set} of the traced command: {stdout}"
        );
    }
    let text = std::fs::read_to_string(out_dir.join("r.json")).unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    crate::report_check::check(&report);
    assert_eq!(report["target"]["exit_code"], 0, "{stderr}");
}

#[test]
fn tracefs_missing_and_unmountable() {
    skip_unless!(cannot_trace());
    // In a private mount namespace, cover /sys/kernel with a read-only
    // tmpfs: tracefs is gone and its mount point cannot be created.
    let script = "mount -t tmpfs -o ro,size=16k none /sys/kernel && exec \"$0\" run -- true";
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(env!("CARGO_BIN_EXE_tracer"))
        .output()
        .unwrap();
    assert_one_line_error(&out, "tracefs is not mounted");
}

#[test]
fn inspecting_a_non_go_binary() {
    let out = tracer().args(["inspect", "/bin/sh"]).output().unwrap();
    assert_one_line_error(&out, "not a Go binary");
    let out = tracer().args(["inspect", "/nonexistent"]).output().unwrap();
    assert_one_line_error(&out, "cannot read /nonexistent");
}

#[test]
fn output_to_a_fifo_is_written_in_place() {
    skip_unless!(cannot_trace());
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("report.fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let _guard = PROBES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tracer()
        .args(["run", "--json", "-o"])
        .arg(&fifo)
        .args(["--", "true"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = reader.join().unwrap();
    let report: serde_json::Value = serde_json::from_str(&text).expect("JSON through the FIFO");
    crate::report_check::check(&report);
    assert_eq!(report["schema"], "gotracer.report/2");
    use std::os::unix::fs::FileTypeExt as _;
    assert!(
        std::fs::metadata(&fifo).unwrap().file_type().is_fifo(),
        "the FIFO was replaced by a file"
    );
}

#[test]
fn live_modes_refuse_what_they_cannot_do() {
    // `top` draws in a terminal; a pipe gets a pointer to the line modes.
    let out = tracer().args(["top", "-p", "1"]).output().unwrap();
    assert_one_line_error(&out, "tracer threads");
    let out = tracer()
        .args(["threads", "-p", "4194304"])
        .output()
        .unwrap();
    assert_one_line_error(&out, "4194304");
}
