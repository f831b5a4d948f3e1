//! Several targets in one `attach` (`-p` again, `--comm`, `--cgroup`): the
//! first is the report's target, each other one a section of
//! `processes`, with exact counts from workloads told to go only once the
//! probes are live (or started after).

use std::{
    path::{Path, PathBuf},
    sync::PoisonError,
    time::Duration,
};

use serde_json::Value;

use crate::{record::replayed_json, skip_unless, support::*};

fn sections(report: &Value) -> &[Value] {
    rows(&report["processes"]["sections"], "processes.sections")
}

/// The sections of `pid`.
fn sections_of(report: &Value, pid: u32) -> Vec<&Value> {
    sections(report)
        .iter()
        .filter(|s| s["pid"] == pid)
        .collect()
}

fn preads_in(section: &Value) -> u64 {
    rows(&section["syscalls"], "section syscalls")
        .iter()
        .find(|r| r["name"] == "pread64")
        .map_or(0, |r| u64_at(r, "calls"))
}

/// The target's own pread64 count.
fn target_preads(report: &Value) -> u64 {
    u64_at(syscall(report, "pread64"), "calls")
}

/// Stops the tracer and reads its report.
fn stop(mut tracer: std::process::Child, path: &Path) -> Value {
    signal(tracer.id(), libc::SIGINT);
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    read_report(path)
}

/// The pread calls the workload's runtime makes as it starts, before
/// `main` (Go 1.25+ reads its cgroup's CPU limit so: one on this machine),
/// which a process traced from its exec adds to its own: the target's
/// count of a `tracer run` of it that makes no pread of its own, in
/// `cgroup` if given (the limit read depends on it), under the env
/// [`Waiting`] gives.
fn startup_preads(bin: &Path, cgroup: Option<&TestCgroup>) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    // The "go" line the workload waits for, then EOF, at which it exits 0.
    let go_line = dir.path().join("go");
    std::fs::write(&go_line, "go\n").unwrap();
    let enter = cgroup.map_or_else(String::new, |c| {
        format!("echo $$ > {}/cgroup.procs && ", c.dir.display())
    });
    // The shell only moves the tracer into the cgroup: the target is the
    // workload alone. Not `trace_run`: the caller holds the probes' lock.
    let script = format!(
        "{enter}exec {} run --json -o {} -- {} -n 0",
        env!("CARGO_BIN_EXE_tracer"),
        path.display(),
        bin.display()
    );
    let out = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .env("GODEBUG", "updatemaxprocs=0")
        .stdin(std::fs::File::open(&go_line).unwrap())
        .output()
        .expect("run tracer");
    assert!(out.status.success(), "{out:?}");
    let report = read_report(&path);
    rows(&report["syscalls"], "syscalls")
        .iter()
        .find(|r| r["name"] == "pread64")
        .map_or(0, |r| u64_at(r, "calls"))
}

/// The stdinpread workload under a name of its own (its comm), so no other
/// test's process has it.
fn named_workload(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy(go_workload("stdinpread"), &path).unwrap();
    path
}

#[test]
fn attach_gives_each_pid_after_the_first_a_section_with_its_exact_calls() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let bin = go_workload("stdinpread");
    let mut first = Waiting::spawn(&bin, &["-n", "3000"]);
    let mut second = Waiting::spawn(&bin, &["-n", "5000"]);
    let (a, b) = (first.child.id(), second.child.id());
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let recording = dir.path().join("two.rec");
    let args: Vec<String> = [
        "-p",
        &a.to_string(),
        "-p",
        &b.to_string(),
        "--record",
        recording.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let tracer = spawn_attach_with(&args, &path);
    first.go_and_wait_done();
    second.go_and_wait_done();
    let report = stop(tracer, &path);
    assert_eq!(u64_at(&report["target"], "pid"), u64::from(a));
    assert_eq!(target_preads(&report), 3000);
    let all = sections(&report);
    assert_eq!(all[0]["began"], "target");
    let b_sections = sections_of(&report, b);
    assert_eq!(b_sections.len(), 1, "{:#}", report["processes"]);
    let s = b_sections[0];
    assert_eq!(s["began"], "given_pid");
    assert_eq!(s["command"], "stdinpread");
    assert_eq!(preads_in(s), 5000, "{s:#}");
    assert_eq!(s["end"]["state"], "running");
    // The total is the sum of the sections.
    let parts: u64 = all.iter().map(|s| u64_at(&s["totals"], "calls")).sum();
    assert_eq!(u64_at(&report["processes"]["total"], "calls"), parts);
    // A recording of it reports the same processes.
    let (replayed, _) = replayed_json(&recording, dir.path());
    assert_eq!(replayed["processes"], report["processes"]);
    eprintln!(
        "first {a}: {} preads; second {b}: {} preads, {} calls",
        target_preads(&report),
        preads_in(s),
        s["totals"]["calls"]
    );
}

#[test]
fn attach_by_comm_takes_the_running_process_and_one_started_later() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let name = format!("gtcomm{}", std::process::id() % 1_000_000);
    let bin = named_workload(dir.path(), &name);
    let other = named_workload(dir.path(), "gtcommother");
    let mut running = Waiting::spawn(&bin, &["-n", "2000"]);
    let path = report_path(&dir);
    let tracer = spawn_attach_with(&["--comm".to_owned(), name.clone()], &path);
    // Started after the probes: it takes the name at its exec.
    let mut later = Waiting::spawn(&bin, &["-n", "4000"]);
    let mut unnamed = Waiting::spawn(&other, &["-n", "100"]);
    running.go_and_wait_done();
    later.go_and_wait_done();
    unnamed.go_and_wait_done();
    let report = stop(tracer, &path);
    let startup = startup_preads(&bin, None);
    // The only one running at the start is the first target.
    assert_eq!(
        u64_at(&report["target"], "pid"),
        u64::from(running.child.id())
    );
    assert_eq!(target_preads(&report), 2000);
    let s = sections_of(&report, later.child.id());
    assert_eq!(s.len(), 1, "{:#}", report["processes"]);
    assert_eq!(s[0]["began"], "comm");
    assert_eq!(s[0]["command"], name.as_str());
    assert_eq!(preads_in(s[0]), 4000 + startup, "{:#}", s[0]);
    assert!(
        sections_of(&report, unnamed.child.id()).is_empty(),
        "a process of another name was traced: {:#}",
        report["processes"]
    );
}

/// A cgroup of the test's own in the cgroup v2 hierarchy, removed at the
/// end (its processes killed first).
struct TestCgroup {
    dir: PathBuf,
}

impl TestCgroup {
    fn new(name: &str) -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        // The mount point is field 5; the file system type follows " - ".
        let root = mounts.lines().find_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let point = left.split(' ').nth(4)?;
            right.starts_with("cgroup2 ").then(|| PathBuf::from(point))
        })?;
        let dir = root.join(name);
        std::fs::create_dir(&dir).ok()?;
        Some(Self { dir })
    }

    /// Spawns `program ARGS` inside the cgroup (the shell moves itself in,
    /// then executes it) as a [`Waiting`] workload.
    fn spawn(&self, program: &Path, args: &str) -> Waiting {
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec {} {args}",
            self.dir.display(),
            program.display()
        );
        Waiting::spawn(Path::new("/bin/sh"), &["-c", &script])
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn attach_by_cgroup_takes_its_members_and_no_other_process() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let Some(cgroup) = TestCgroup::new(&format!("gotracer-targets-{}", std::process::id())) else {
        eprintln!("skipped: no cgroup v2 hierarchy to make a cgroup in");
        return;
    };
    let bin = go_workload("stdinpread");
    let mut member = cgroup.spawn(&bin, "-n 3000");
    let mut outside = Waiting::spawn(&bin, &["-n", "1000"]);
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let args = vec!["--cgroup".to_owned(), cgroup.dir.display().to_string()];
    let tracer = spawn_attach_with(&args, &path);
    let mut joiner = cgroup.spawn(&bin, "-n 6000");
    member.go_and_wait_done();
    joiner.go_and_wait_done();
    outside.go_and_wait_done();
    let report = stop(tracer, &path);
    let startup = startup_preads(&bin, Some(&cgroup));
    assert_eq!(
        u64_at(&report["target"], "pid"),
        u64::from(member.child.id())
    );
    assert_eq!(target_preads(&report), 3000);
    // The shell joined at its first call in the cgroup, then executed the
    // workload: a section for each program, the preads in the second.
    let joined = sections_of(&report, joiner.child.id());
    assert_eq!(joined.len(), 2, "{:#}", report["processes"]);
    assert_eq!(joined[0]["began"], "cgroup");
    assert_eq!(joined[1]["began"], "exec");
    assert_eq!(preads_in(joined[1]), 6000 + startup, "{:#}", joined[1]);
    assert!(
        sections_of(&report, outside.child.id()).is_empty(),
        "a process outside the cgroup was traced: {:#}",
        report["processes"]
    );
    eprintln!(
        "cgroup: member {} preads; joiner {} preads (6000 + {startup} at start-up)",
        target_preads(&report),
        preads_in(joined[1])
    );
}
