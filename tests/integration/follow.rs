//! `-f/--follow-forks`: child processes (and theirs) traced from their
//! first syscall, a report section per process and program, against
//! workloads whose calls are known exactly.

use std::{path::Path, process::Output, sync::PoisonError, time::Duration};

use serde_json::Value;

use crate::{
    record::{replayed_json, report_file},
    skip_unless,
    support::*,
};

/// The C workload's calls: exactly 200 nanosleeps on 4 threads it starts.
const SLEEPS: u64 = 200;
const SLEEPER_THREADS: u64 = 4;

fn sections(report: &Value) -> &[Value] {
    rows(&report["processes"]["sections"], "processes.sections")
}

/// The sections that run `program` (an exec of it).
fn sections_of<'a>(report: &'a Value, program: &str) -> Vec<&'a Value> {
    sections(report)
        .iter()
        .filter(|s| s["began"] == "exec" && s["program"] == program)
        .collect()
}

/// The row of `name` in a section's table (`None`: no call of it).
fn section_row<'a>(section: &'a Value, name: &str) -> Option<&'a Value> {
    rows(&section["syscalls"], "section syscalls")
        .iter()
        .find(|r| r["name"] == name)
}

fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_f_gives_each_child_of_a_shell_its_section() {
    skip_unless!(cannot_trace());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let sleeper = c_workload("nanosleep");
    let w = sleeper.display().to_string();
    // `true` last: a shell may exec its last command instead of forking it.
    let script = format!("{w}; {w}; true");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("followed.json");
    let recording = dir.path().join("followed.rec");
    let out = tracer()
        .args(["run", "-f", "--json", "-o"])
        .arg(&path)
        .arg("--record")
        .arg(&recording)
        .args(["--", "/bin/sh", "-c", &script])
        .output()
        .expect("run tracer");
    succeeded(&out, "tracer run -f");
    let report = read_report(&path);
    assert_eq!(report["target"]["follow_forks"], true);
    let target_pid = u64_at(&report["target"], "pid");
    let all = sections(&report);
    assert_eq!(all[0]["began"], "target");
    assert_eq!(all[0]["command"], "/bin/sh");
    // The shell forked twice; each child executed the workload.
    let forks: Vec<&Value> = all.iter().filter(|s| s["began"] == "fork").collect();
    assert_eq!(forks.len(), 2, "{:#}", report["processes"]);
    let runs = sections_of(&report, &w);
    assert_eq!(runs.len(), 2, "{:#}", report["processes"]);
    for (fork, run) in forks.iter().zip(&runs) {
        assert_eq!(fork["end"]["state"], "executed");
        assert_eq!(fork["pid"], run["pid"]);
        assert_eq!(u64_at(run, "parent_pid"), target_pid);
        assert_eq!(run["command"], "nanosleep-c");
        let row = section_row(run, "nanosleep").expect("the workload's nanosleeps");
        assert_eq!(u64_at(row, "calls"), SLEEPS, "{run:#}");
        assert!(u64_at(row, "p50_ns") >= 20_000_000, "{row}");
        assert_eq!(u64_at(&run["threads"], "spawned"), SLEEPER_THREADS);
        assert_eq!(u64_at(&run["threads"], "peak"), SLEEPER_THREADS + 1);
        assert_eq!(run["end"]["state"], "exited");
        assert_eq!(run["end"]["how"], "exit_group");
    }
    assert_ne!(runs[0]["pid"], runs[1]["pid"]);
    // The shell itself made no nanosleep: its children's calls are theirs.
    assert!(section_row(&all[0], "nanosleep").is_none());
    let total = u64_at(&report["processes"]["total"], "calls");
    let parts: u64 = all.iter().map(|s| u64_at(&s["totals"], "calls")).sum();
    assert_eq!(total, parts);
    assert!(total >= 2 * SLEEPS + u64_at(&report["totals"]["all"], "calls"));
    assert_eq!(u64_at(&report["processes"], "children_not_followed"), 0);
    eprintln!(
        "sections: {}",
        all.iter()
            .map(|s| format!(
                "{} {} {} calls",
                s["pid"],
                s["command"].as_str().unwrap_or("?"),
                s["totals"]["calls"]
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    // A recording of it reports the same processes.
    let (replayed, _) = replayed_json(&recording, dir.path());
    assert_eq!(replayed["processes"], report["processes"]);

    // Without -f: the children are counted, not traced.
    let plain = dir.path().join("plain.json");
    let plain_rec = dir.path().join("plain.rec");
    let out = tracer()
        .args(["run", "--json", "-o"])
        .arg(&plain)
        .arg("--record")
        .arg(&plain_rec)
        .args(["--", "/bin/sh", "-c", &script])
        .output()
        .expect("run tracer");
    succeeded(&out, "tracer run");
    let report = read_report(&plain);
    assert_eq!(u64_at(&report["processes"], "children_not_followed"), 2);
    assert_eq!(sections(&report).len(), 1);
    assert!(
        !rows(&report["syscalls"], "syscalls")
            .iter()
            .any(|r| r["name"] == "nanosleep"),
        "the workload's calls are not the shell's"
    );
    let (text, _) = report_file(&plain_rec, "text", &dir.path().join("plain.txt"));
    assert!(
        text.contains("2 child processes not followed (use -f)"),
        "{text}"
    );
}

/// Writes a module with one test that fails to open a file it names.
fn test_module(dir: &Path) {
    std::fs::write(
        dir.join("go.mod"),
        "module example.com/followme\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("followme_test.go"),
        r#"package followme

import (
	"os"
	"testing"
)

func TestFollowMe(t *testing.T) {
	if _, err := os.Open("/nonexistent/followme-marker"); err == nil {
		t.Fatal("the marker exists")
	}
}
"#,
    )
    .unwrap();
}

#[test]
fn run_f_names_the_tools_and_test_binary_of_go_test() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("followme");
    std::fs::create_dir(&module).unwrap();
    test_module(&module);
    let path = dir.path().join("gotest.json");
    let out = tracer()
        .args(["run", "-f", "--ring-buffer-kb", "65536", "--json", "-o"])
        .arg(&path)
        .arg("--")
        .arg(go().expect("go toolchain"))
        .args(["test", "./..."])
        .current_dir(&module)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-count=1")
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOPATH", dir.path().join("gopath"))
        .output()
        .expect("run tracer");
    succeeded(&out, "tracer run -f -- go test");
    let report = read_report(&path);
    let all = sections(&report);
    let commands: Vec<&str> = all.iter().filter_map(|s| s["command"].as_str()).collect();
    for tool in ["compile", "link", "followme.test"] {
        assert!(commands.contains(&tool), "no {tool} section: {commands:?}");
    }
    // The test binary's own call: the marker it failed to open.
    let test = all
        .iter()
        .find(|s| s["command"] == "followme.test")
        .unwrap();
    let opens = section_row(test, "openat").expect("the test's openat");
    assert!(u64_at(opens, "errors") >= 1, "{opens}");
    assert_eq!(test["end"]["state"], "exited");
    let mut counted: Vec<(&str, u64)> = Vec::new();
    for s in all {
        let name = s["command"].as_str().unwrap_or("?");
        let calls = u64_at(&s["totals"], "calls");
        match counted.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += calls,
            None => counted.push((name, calls)),
        }
    }
    eprintln!(
        "{} sections, {} calls in all, lost {}: {counted:?}",
        all.len(),
        report["processes"]["total"]["calls"],
        report["events"]["lost"]
    );
}

#[test]
fn attach_f_follows_a_child_forked_after_attach() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    const BYTES: u64 = 2000;
    let forker = go_workload("forker");
    let mut workload = Waiting::spawn(&forker, &["-n", &BYTES.to_string()]);
    let pid = workload.child.id();
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let mut tracer = spawn_attach(pid, &["-f"], &path);
    workload.go_and_wait_done();
    signal(tracer.id(), libc::SIGINT);
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    let report = read_report(&path);
    assert_eq!(report["target"]["mode"], "attach");
    let dd = sections_of(&report, "/bin/dd");
    assert_eq!(dd.len(), 1, "{:#}", report["processes"]);
    let dd = dd[0];
    assert_eq!(u64_at(dd, "parent_pid"), u64::from(pid));
    let reads = u64_at(section_row(dd, "read").expect("dd's reads"), "calls");
    assert!(
        (BYTES..=BYTES + 4).contains(&reads),
        "dd made {reads} reads for {BYTES} bytes"
    );
    assert_eq!(dd["end"]["state"], "exited");
    eprintln!("dd: {reads} reads, {} calls", dd["totals"]["calls"]);
}
