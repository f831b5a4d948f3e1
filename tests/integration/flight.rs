//! `tracer serve --flight-recorder`, end to end: a process found by
//! `--comm` after the agent started explodes its threads; a recording of
//! the window appears in the directory within seconds, `tracer report`
//! reads it and names the call site that held the threads, and a second
//! explosion within the cooldown writes nothing more. And a bad directory
//! is refused before any probe.

use std::{
    path::{Path, PathBuf},
    sync::PoisonError,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    report_check,
    serve::{Agent, Sample},
    skip_unless,
    support::{
        PROBES, Waiting, assert_threads_held_at, cannot_trace_go, go_workload, tracer, u64_at,
    },
};

/// The explosion: goroutines each holding a thread in nanosleep.
const HOLDERS: &str = "200";
/// Long enough that the first wave still holds its threads when the second
/// comes (Go would reuse them otherwise).
const HOLD_MS: &str = "15000";

/// The recordings in `dir` (dot files are dumps still being written).
fn recordings(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "rec"))
        .collect();
    out.sort();
    out
}

fn leftovers(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|x| x != "rec"))
        .collect()
}

#[test]
fn a_thread_explosion_is_dumped_once_and_reported() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let bin = go_workload("faults");
    // A name no other process has (comm keeps 15 bytes).
    let name = format!("gtflight{}", std::process::id() % 100_000);
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join(&name);
    std::fs::copy(&bin, &copy).unwrap();
    let dumps = tempfile::tempdir().unwrap();
    let dir = dumps.path().to_str().unwrap();
    let mut agent = Agent::start(&["--comm", &name, "--flight-recorder", dir]);
    let mut w = Waiting::spawn(&copy, &["-g", HOLDERS, "-ms", HOLD_MS, "-waves"]);
    let pid = w.child.id();
    let up = Sample {
        name: "gotracer_target_up",
        labels: vec![("pid", pid.to_string()), ("comm", name.clone())],
    };
    agent.wait_value(&up, 1.0);
    // A few quiet seconds in the window first: nothing fires on them.
    std::thread::sleep(Duration::from_secs(2));
    assert!(recordings(dumps.path()).is_empty());
    let flight_lines = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("gotracer_flight") || l.starts_with("gotracer_agent"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    eprintln!("flight: before: {}", flight_lines(&agent.metrics()));
    let exploded = Instant::now();
    w.go();
    let line = agent.wait_line_within(
        "tracer: flight recorder: threads in",
        Duration::from_secs(20),
    );
    let took = exploded.elapsed();
    let files = recordings(dumps.path());
    let [file] = files.as_slice() else {
        panic!("not one recording in {dir}: {files:?}");
    };
    let file_name = file.file_name().unwrap().to_str().unwrap();
    assert!(
        file_name.starts_with(&format!("{name}-{pid}-")) && file_name.ends_with("-threads.rec"),
        "{file_name}"
    );
    assert!(
        line.contains(&format!("in {name} (pid {pid}): wrote {}", file.display())),
        "{line}"
    );
    assert!(
        leftovers(dumps.path()).is_empty(),
        "{:?}",
        leftovers(dumps.path())
    );
    let size = std::fs::metadata(file).unwrap().len();
    eprintln!(
        "flight: {file_name}: {} KB, written {} ms after the explosion began ({line})",
        size.div_ceil(1024),
        took.as_millis()
    );
    eprintln!("flight: after the dump: {}", flight_lines(&agent.metrics()));

    // A second explosion within the cooldown: counted, not dumped.
    w.go();
    let suppressed = Sample {
        name: "gotracer_flight_suppressed_total",
        labels: vec![("trigger", "threads".into())],
    };
    let body = agent.wait_value(&suppressed, 1.0);
    let dumped = Sample {
        name: "gotracer_flight_dumps_total",
        labels: vec![("trigger", "threads".into())],
    };
    assert_eq!(dumped.value(&body), Some(1.0), "{body}");
    assert_eq!(recordings(dumps.path()), files);
    eprintln!("flight: after the second wave: {}", flight_lines(&body));

    // The dump reads as a recording: the explosion, its call site.
    let out = tracer()
        .arg("report")
        .arg(file)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tracer report: {err}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    report_check::check(&r);
    assert_eq!(r["recording"]["state"], "complete", "{}", r["recording"]);
    let gomaxprocs = r["facts"]["cpu"]["gomaxprocs"]["value"]
        .as_u64()
        .unwrap_or_else(|| panic!("no GOMAXPROCS: {}", r["facts"]["cpu"]));
    let peak = u64_at(&r["threads"], "peak");
    assert!(
        peak > gomaxprocs + 32,
        "peak {peak}, GOMAXPROCS {gomaxprocs}"
    );
    assert_threads_held_at(&r, "main.holder");
    let held_bpf = agent.held();
    agent.stop(&held_bpf);
    drop(w);
    // Stopping writes nothing more.
    assert_eq!(recordings(dumps.path()), files);
}

/// `--flight-recorder` must name a writable directory: said before any
/// probe (no root needed to see it).
#[test]
fn a_bad_flight_directory_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    for (given, why) in [
        (dir.path().join("missing"), "No such file"),
        (file, "not a directory"),
    ] {
        let out = tracer()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--all-go",
                "--flight-recorder",
            ])
            .arg(&given)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("--flight-recorder {}", given.display()))
                && err.contains("give an existing directory")
                && err.contains(why),
            "{err}"
        );
        assert!(!err.contains("probes live"), "{err}");
    }
}
