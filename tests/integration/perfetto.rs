//! `tracer report FILE --format perfetto`: the timeline of a recording of
//! sleeper.go, 8 goroutines x 10 sleeps of 20 ms (80 nanosleep calls,
//! each above `--slow 5ms`), read back as JSON and checked against the
//! workload, the recording's events and its report: a slice per slow
//! call on the thread that made it, named tracks, spawn instants with the
//! report's causes, counters that add up to the report's totals.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::PoisonError,
};

use serde_json::Value;

use crate::{
    record::{replayed_json, report_file, sleeper_row, succeeded},
    skip_unless,
    support::*,
};

const GOROUTINES: u64 = 8;
const SLEEPS_EACH: u64 = 10;
const SLEEP_MS: u64 = 20;
const SLEEPS: u64 = GOROUTINES * SLEEPS_EACH;
/// A 20 ms sleep that ends later than this is late even on a loaded
/// machine (the workload runs niced, beside other builds).
const LATE_MS: u64 = 200;

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// `(ts, value)` of one counter track, in the order written.
fn counter(events: &[Value], name: &str, series: &str) -> Vec<(f64, f64)> {
    events
        .iter()
        .filter(|e| e["ph"] == "C" && e["name"] == name)
        .map(|e| (number(e, "ts"), number(&e["args"], series)))
        .collect()
}

/// Σ rate × the time until the next point (the last point ends the
/// series): the events the rate stands for.
fn integral(points: &[(f64, f64)]) -> f64 {
    points
        .windows(2)
        .map(|w| w[0].1 * (w[1].0 - w[0].0) / 1e6)
        .sum()
}

/// Whether a slice is one of the workload's sleeps (the runtime's own
/// sleeps are sysmon's).
fn at_sleeper(slice: &Value) -> bool {
    slice["name"] == "nanosleep"
        && slice["args"]["call_site"]
            .as_str()
            .is_some_and(|s| s.starts_with("main.sleeper (sleeper.go:"))
}

#[test]
fn a_recording_is_a_perfetto_timeline_of_its_slow_calls_and_threads() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("sleeper.rec");
    let args = [
        "-g".to_owned(),
        GOROUTINES.to_string(),
        "-n".to_owned(),
        SLEEPS_EACH.to_string(),
        "-ms".to_owned(),
        SLEEP_MS.to_string(),
    ];
    let out = tracer()
        .args(["record", "--slow", "5ms", "-o"])
        .arg(&recording)
        .arg("--")
        .arg(go_workload("sleeper"))
        .args(&args)
        .output()
        .expect("run tracer record");
    succeeded(&out, "tracer record");

    let trace_path = dir.path().join("trace.json");
    let (text, stderr) = report_file(&recording, "perfetto", &trace_path);
    eprintln!("{stderr}");
    let trace: Value = serde_json::from_str(&text).expect("the timeline is JSON");
    let (report, _) = replayed_json(&recording, dir.path());
    let pid = u64_at(&report["target"], "pid");
    let events = check_trace_object(&trace, pid);
    let (events_text, _) = report_file(&recording, "events", &dir.path().join("events.jsonl"));
    let recorded: Vec<Value> = events_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    check_slices(events, &report, &recorded);
    check_thread_names(events, pid);
    check_spawns(events, &report);
    let window_start = number(&trace["otherData"], "window_start_us");
    check_counters(events, &report, window_start);
    // sysmon retakes the P of a goroutine 10 ms into its sleep.
    let retakes = events
        .iter()
        .filter(|e| e["ph"] == "i" && e["args"]["cause"] == "sysmon retake")
        .count();
    assert!(retakes > 0, "no sysmon retake among the instants");
    let slices = events.iter().filter(|e| e["ph"] == "X").count();
    eprintln!(
        "{} trace events ({slices} slices) in {} bytes: {} bytes per event",
        events.len(),
        text.len(),
        text.len() / events.len().max(1)
    );
}

/// The JSON Object Format: `traceEvents` and `displayTimeUnit`; every
/// event of a known phase, on the target's pid, at a time from 0.
fn check_trace_object(trace: &Value, pid: u64) -> &[Value] {
    assert_eq!(trace["displayTimeUnit"], "ns");
    assert_eq!(trace["otherData"]["pid"], pid);
    let events = rows(&trace["traceEvents"], "traceEvents");
    assert!(!events.is_empty());
    for e in events {
        assert!(e["name"].is_string(), "{e}");
        assert_eq!(e["pid"], pid, "{e}");
        assert!(e["tid"].is_u64(), "{e}");
        assert!(number(e, "ts") >= 0.0, "{e}");
        match e["ph"].as_str() {
            Some("X") => assert!(number(e, "dur") >= 0.0, "{e}"),
            Some("i") => assert_eq!(e["s"], "t", "{e}"),
            Some("C" | "M") => assert!(e["args"].is_object(), "{e}"),
            _ => panic!("unknown phase: {e}"),
        }
    }
    events
}

/// A slice per reported call (the report's call-site rows add up to
/// them); the workload's sleeps each on the thread and goroutine the
/// recorded events give, lasting the sleep.
fn check_slices(events: &[Value], report: &Value, recorded: &[Value]) {
    let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let reported: u64 = rows(&report["blocking"], "blocking")
        .iter()
        .map(|r| u64_at(r, "calls"))
        .sum();
    assert_eq!(
        slices.len() as u64,
        reported,
        "slices vs the report's calls"
    );

    let sleeps: Vec<&Value> = slices.iter().copied().filter(|s| at_sleeper(s)).collect();
    let n = sleeps.len() as u64;
    assert_eq!(n, u64_at(sleeper_row(report), "calls"));
    // Every sleep, less any a signal cut short below --slow (the report
    // counts them as nanosleep errors).
    let interrupted = u64_at(syscall(report, "nanosleep"), "errors");
    assert!(
        n <= SLEEPS && n + interrupted >= SLEEPS,
        "{n} sleep slices, {interrupted} interrupted, of {SLEEPS}"
    );
    let goroutines: BTreeSet<u64> = sleeps
        .iter()
        .map(|s| u64_at(&s["args"], "goroutine"))
        .collect();
    assert_eq!(goroutines.len() as u64, GOROUTINES, "{goroutines:?}");
    let mut whole_ms = Vec::new();
    for s in &sleeps {
        let dur_ms = number(s, "dur") / 1e3;
        assert_eq!(
            (number(s, "dur") * 1e3).round() as u64,
            u64_at(&s["args"], "duration_ns"),
            "{s}"
        );
        if s["args"].get("errno").is_none() {
            assert!(
                (SLEEP_MS as f64..(SLEEP_MS + LATE_MS) as f64).contains(&dur_ms),
                "a {SLEEP_MS} ms sleep of {dur_ms} ms: {s}"
            );
            whole_ms.push(dur_ms);
        }
    }
    // Most wake on time; a few may wait for a CPU on a loaded machine.
    whole_ms.sort_by(f64::total_cmp);
    let median = whole_ms[whole_ms.len() / 2];
    assert!(
        (SLEEP_MS as f64..SLEEP_MS as f64 + 5.0).contains(&median),
        "median sleep {median} ms"
    );
    // The same calls as the recorded events: (thread, goroutine, length).
    let key = |tid: u64, goid: u64, ns: u64| (tid, goid, ns);
    let mut from_events: Vec<(u64, u64, u64)> = recorded
        .iter()
        .filter(|e| e["type"] == "slow_call" && e["syscall"] == "nanosleep")
        .filter(|e| {
            rows(&e["stack"], "stack")
                .iter()
                .any(|f| f["function"] == "main.sleeper")
        })
        .map(|e| {
            key(
                u64_at(e, "tid"),
                u64_at(e, "goid"),
                u64_at(e, "duration_ns"),
            )
        })
        .collect();
    let mut from_slices: Vec<(u64, u64, u64)> = sleeps
        .iter()
        .map(|s| {
            let a = &s["args"];
            key(
                u64_at(s, "tid"),
                u64_at(a, "goroutine"),
                u64_at(a, "duration_ns"),
            )
        })
        .collect();
    from_events.sort_unstable();
    from_slices.sort_unstable();
    assert_eq!(from_slices, from_events);
    // Each slice starts at its call's entry (the event's exit time less
    // its length), all on one axis: the same offset for every call. A
    // thread's goroutine can sleep the same length to the nanosecond more
    // than once (seen: 20 145 043 ns twice in a row), so calls of one key
    // are paired in time order.
    let mut entries: BTreeMap<(u64, u64, u64), Vec<u64>> = BTreeMap::new();
    for e in recorded.iter().filter(|e| e["type"] == "slow_call") {
        let (end, ns) = (u64_at(e, "ts_ns"), u64_at(e, "duration_ns"));
        entries
            .entry(key(u64_at(e, "tid"), u64_at(e, "goid"), ns))
            .or_default()
            .push(end - ns);
    }
    let mut starts: BTreeMap<(u64, u64, u64), Vec<f64>> = BTreeMap::new();
    for s in &sleeps {
        let a = &s["args"];
        let k = key(
            u64_at(s, "tid"),
            u64_at(a, "goroutine"),
            u64_at(a, "duration_ns"),
        );
        starts.entry(k).or_default().push(number(s, "ts") * 1e3);
    }
    let mut offsets: Vec<f64> = Vec::new();
    for (k, mut ts) in starts {
        let mut at = entries[&k].clone();
        at.sort_unstable();
        ts.sort_by(f64::total_cmp);
        offsets.extend(ts.iter().zip(&at).map(|(t, &e)| t - e as f64));
    }
    for o in &offsets {
        assert!((o - offsets[0]).abs() < 2.0, "{o} vs {}", offsets[0]);
    }
}

/// One `thread_name` per thread with events, before its first event.
fn check_thread_names(events: &[Value], pid: u64) {
    let mut names: BTreeMap<u64, (usize, String)> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        if e["ph"] == "M" && e["name"] == "thread_name" {
            let tid = u64_at(e, "tid");
            let name = e["args"]["name"].as_str().unwrap().to_owned();
            assert!(names.insert(tid, (i, name)).is_none(), "named twice: {e}");
        }
    }
    let mut with_events = BTreeSet::new();
    for (i, e) in events.iter().enumerate() {
        if e["ph"] == "X" || e["ph"] == "i" {
            let tid = u64_at(e, "tid");
            let (at, name) = names
                .get(&tid)
                .unwrap_or_else(|| panic!("thread {tid} has events, no name"));
            assert!(*at < i, "thread {tid} named after its event {e}");
            assert!(name.starts_with(&format!("tid {tid} (")), "{name}");
            with_events.insert(tid);
        }
    }
    assert!(with_events.len() > 1, "{with_events:?}");
    assert!(names[&pid].1.contains("main thread"), "{:?}", names[&pid]);
}

/// A spawn instant per spawned thread, on its track, with the report's
/// cause: as many of each cause as the report counts.
fn check_spawns(events: &[Value], report: &Value) {
    let spawns: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "i" && e["name"] == "thread spawn")
        .collect();
    let spawned = u64_at(&report["threads"], "spawned");
    assert!(spawned > 0);
    assert_eq!(spawns.len() as u64, spawned);
    let mut by_cause: BTreeMap<String, u64> = BTreeMap::new();
    for s in &spawns {
        assert!(s["args"]["parent_tid"].is_u64(), "{s}");
        *by_cause
            .entry(s["args"]["cause"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let mut in_report: BTreeMap<String, u64> = BTreeMap::new();
    for row in rows(&report["threads_by_cause"]["rows"], "threads_by_cause") {
        let label = row["label"].as_str().unwrap().to_owned();
        *in_report.entry(label).or_default() += u64_at(row, "threads");
    }
    assert_eq!(by_cause, in_report);
}

/// Threads alive from the count at start to the count at the end, never
/// above the peak; the rates over the intervals add up to the report's
/// calls and to the slices.
fn check_counters(events: &[Value], report: &Value, window_start: f64) {
    let threads = counter(events, "threads", "alive");
    let t = &report["threads"];
    assert_eq!(threads[0], (window_start, number(t, "at_start")));
    assert_eq!(threads.last().map(|p| p.1), Some(number(t, "at_end")));
    let top = threads.iter().map(|p| p.1).fold(0.0, f64::max);
    assert!(
        top <= number(t, "peak") && top > number(t, "at_start"),
        "{top}"
    );
    // One point per spawn and exit, and the one at start.
    let exits = u64_at(t, "exited_itself") + u64_at(t, "ended_with_process");
    assert_eq!(threads.len() as u64, 1 + u64_at(t, "spawned") + exits);

    let calls = counter(events, "syscalls", "per second");
    assert!(calls.len() >= 2, "{calls:?}");
    let all = number(&report["totals"]["all"], "calls");
    assert!(
        (integral(&calls) - all).abs() < 0.5,
        "{} vs {all}",
        integral(&calls)
    );
    let slow = counter(events, "slow calls", "per second");
    let slices = events.iter().filter(|e| e["ph"] == "X").count() as f64;
    assert!(
        (integral(&slow) - slices).abs() < 0.5,
        "{} vs {slices}",
        integral(&slow)
    );
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0), "{calls:?}");
    // The intervals and the events on one clock: the last interval ends
    // as the window closed, after every slice.
    let window_end = window_start + number(report, "traced_seconds") * 1e6;
    let last = calls.last().unwrap().0;
    assert!((last - window_end).abs() < 1.0, "{last} µs vs {window_end}");
    for s in events.iter().filter(|e| e["ph"] == "X") {
        assert!(number(s, "ts") + number(s, "dur") <= last + 1.0, "{s}");
    }
}
