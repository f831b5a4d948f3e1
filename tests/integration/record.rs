//! Recordings (`tracer record`, `--record`) and their reports (`tracer
//! report FILE`): the same report as the live run, after the workload's
//! binary is gone, from a recorder killed mid-trace, and as JSON Lines.
//! The workload is sleeper.go with 64 goroutines x 10 sleeps of 20 ms:
//! exactly 640 nanosleep, each slow.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Output, Stdio},
    sync::PoisonError,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{skip_unless, support::*};

const SLEEPER_ARGS: [&str; 4] = ["-g", "64", "-n", "10"];
const SLEEPS: u64 = 640;

/// The nanosleep calls of the syscall table: the workload's 640, and on a
/// busy host a few more of the runtime's own — a spinning thread's
/// `usleep(3)` is a nanosleep too short (< 20 µs) to be told from the
/// program's — or a sleep a signal interrupted, restarted by the kernel.
pub(crate) fn assert_sleeps_counted(report: &Value) {
    let calls = u64_at(syscall(report, "nanosleep"), "calls");
    assert!(
        (SLEEPS..=SLEEPS + 4).contains(&calls),
        "{calls} nanosleep for the workload's {SLEEPS}"
    );
}

/// The sleeper workload copied into `dir` (so the test can delete it).
/// `tracer record -o RECORDING -- BIN ARGS...`.
fn record(recording: &Path, bin: &Path, args: &[&str]) -> std::process::Command {
    let mut cmd = tracer();
    cmd.args(["record", "-o"])
        .arg(recording)
        .arg("--")
        .arg(bin)
        .args(args);
    cmd
}

/// `tracer record` of a copy of the sleeper in `dir`, which succeeded:
/// the recording's path and the recorder's output.
fn record_sleeper(dir: &Path) -> (PathBuf, Output) {
    let bin = sleeper_copy(dir);
    let recording = dir.join("sleeper.rec");
    let out = record(&recording, &bin, &SLEEPER_ARGS)
        .output()
        .expect("run tracer record");
    succeeded(&out, "tracer record");
    (recording, out)
}

fn sleeper_copy(dir: &Path) -> PathBuf {
    let bin = dir.join("sleeper");
    std::fs::copy(go_workload("sleeper"), &bin).unwrap();
    bin
}

pub(crate) fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tracer report FILE --format FORMAT -o OUT`: its output and stderr.
pub(crate) fn report_file(recording: &Path, format: &str, out: &Path) -> (String, String) {
    let run = tracer()
        .arg("report")
        .arg(recording)
        .args(["--format", format, "-o"])
        .arg(out)
        .output()
        .expect("run tracer report");
    succeeded(&run, "tracer report");
    let written = std::fs::read_to_string(out).unwrap();
    (written, String::from_utf8_lossy(&run.stderr).into_owned())
}

/// The recording's JSON report, checked (schema and sums).
pub(crate) fn replayed_json(recording: &Path, dir: &Path) -> (Value, String) {
    let out = dir.join("replayed.json");
    let (_, stderr) = report_file(recording, "json", &out);
    (read_report(&out), stderr)
}

/// A replayed report without its `recording` status (which a live report
/// has not), after checking the recording was read whole.
fn as_live(mut replayed: Value) -> Value {
    let status = replayed
        .as_object_mut()
        .unwrap()
        .remove("recording")
        .expect("a replayed report states its recording");
    assert_eq!(status["state"], "complete", "{status}");
    assert_eq!(
        status["format_version"],
        tracer::record::FORMAT_VERSION,
        "{status}"
    );
    assert!(status["cut_at_byte"].is_null(), "{status}");
    replayed
}

/// Where two JSON values differ, by path (empty: equal).
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (l, r) = (&x.get(k), &y.get(k));
                match (l, r) {
                    (Some(l), Some(r)) => differences(l, r, &format!("{path}.{k}"), out),
                    _ => out.push(format!("{path}.{k}: {l:?} vs {r:?}")),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (l, r)) in x.iter().zip(y).enumerate() {
                differences(l, r, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: {a} vs {b}")),
        _ => {}
    }
}

/// The nanosleep row at main.sleeper's call site.
pub(crate) fn sleeper_row(report: &Value) -> &Value {
    rows(&report["blocking"], "blocking")
        .iter()
        .find(|r| r["syscall"] == "nanosleep" && site_fn(r) == "main.sleeper")
        .unwrap_or_else(|| panic!("no nanosleep row at main.sleeper: {:#}", report["blocking"]))
}

/// One run both reports live and records; the recording's report is the
/// live one, whole (same numbers, rows and verdicts), and stays so after
/// the workload's binary is deleted: it needs neither the binary nor the
/// process. No field differs: the recording holds the model's inputs, the
/// facts, how the run ended (`traced_seconds`, exit code, threads) and
/// the kernel's `file_operations` addresses the live report read.
#[test]
fn a_recording_reports_as_the_live_run_even_without_its_binary() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let bin = sleeper_copy(dir.path());
    let live_path = dir.path().join("live.json");
    let recording = dir.path().join("sleeper.rec");
    let out = tracer()
        .args(["run", "--json", "-o"])
        .arg(&live_path)
        .arg("--record")
        .arg(&recording)
        .arg("--")
        .arg(&bin)
        .args(SLEEPER_ARGS)
        .output()
        .expect("run tracer");
    succeeded(&out, "tracer run --record");
    let note = String::from_utf8_lossy(&out.stderr);
    eprintln!("{note}");
    assert!(note.contains("events and"), "no closing note: {note}");
    let live = read_report(&live_path);
    assert_sleeps_counted(&live);
    assert_eq!(u64_at(&live["events"], "lost"), 0);
    assert!(u64_at(sleeper_row(&live), "calls") > 0);

    let (replayed, stderr) = replayed_json(&recording, dir.path());
    assert!(!stderr.contains("cut short"), "{stderr}");
    let mut diff = Vec::new();
    differences(&live, &as_live(replayed.clone()), "", &mut diff);
    assert!(diff.is_empty(), "replayed report differs: {diff:#?}");

    std::fs::remove_file(&bin).unwrap();
    let (after, _) = replayed_json(&recording, dir.path());
    let mut diff = Vec::new();
    differences(&live, &as_live(after.clone()), "", &mut diff);
    assert!(diff.is_empty(), "without the binary: {diff:#?}");
    assert_sleeps_counted(&after);
    assert_eq!(after["go"]["attribution"], true);
    assert!(!rows(&after["verdicts"], "verdicts").is_empty());
}

/// `tracer record` writes the recording and no report; its exit status is
/// the command's; the text report of the recording names the call site.
#[test]
fn record_writes_only_the_recording() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let (recording, out) = record_sleeper(dir.path());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let (report, _) = replayed_json(&recording, dir.path());
    assert_sleeps_counted(&report);
    assert_eq!(report["target"]["exit_code"], 0);
    assert_eq!(report["target"]["mode"], "run");
    let (text, _) = report_file(&recording, "text", &dir.path().join("report.txt"));
    assert!(text.contains("nanosleep"), "{text}");
    assert!(text.contains("main.sleeper"), "{text}");
}

/// A recorder killed with SIGKILL mid-trace leaves a file whose report
/// says it was cut short and holds what was recorded: its intervals'
/// calls at main.sleeper, less than the whole run's.
#[test]
fn a_recording_cut_by_sigkill_still_reports() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let bin = sleeper_copy(dir.path());
    let recording = dir.path().join("cut.rec");
    // 8 goroutines x 250 sleeps of 20 ms: 5 s, killed after 2.5 s.
    let total = 8 * 250;
    let mut recorder = record(&recording, &bin, &["-g", "8", "-n", "250"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tracer record");
    let mut line = String::new();
    BufReader::new(recorder.stderr.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: u32 = line
        .split("pid ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    let live_since = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    recorder.kill().unwrap();
    recorder.wait().unwrap();
    // The workload outlives its tracer: end it too.
    // SAFETY: kill(2) on the workload this test launched.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(
        live_since.elapsed() < Duration::from_secs(5),
        "killed too late"
    );

    let (report, stderr) = replayed_json(&recording, dir.path());
    assert!(stderr.contains("cut short"), "{stderr}");
    // The report itself says so, and where.
    let status = &report["recording"];
    assert_eq!(status["state"], "truncated", "{status}");
    let cut_at = u64_at(status, "cut_at_byte");
    let size = std::fs::metadata(&recording).unwrap().len();
    assert!(
        cut_at > 12 && cut_at <= size,
        "cut at {cut_at} of {size} bytes"
    );
    let calls = u64_at(syscall(&report, "nanosleep"), "calls");
    assert!(calls > 0 && calls < total, "{calls} nanosleep of {total}");
    let at_site = u64_at(sleeper_row(&report), "calls");
    assert!(at_site > 0 && at_site < total, "{at_site} at main.sleeper");
    assert_eq!(report["target"]["exited"], false);
    let traced = report["traced_seconds"].as_f64().unwrap();
    assert!((1.0..3.0).contains(&traced), "traced {traced} s");
}

/// `--format events`: one JSON object per line; the slow calls at
/// main.sleeper are the 640 sleeps (less those a signal cut below 1 ms
/// before they lost their P), from 64 goroutines, as many as the report's
/// row counts.
#[test]
fn events_are_json_lines_with_the_slow_calls() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let (recording, _) = record_sleeper(dir.path());
    let (text, _) = report_file(&recording, "events", &dir.path().join("events.jsonl"));
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let at_sleeper = |e: &Value| {
        rows(&e["stack"], "stack")
            .iter()
            .any(|f| f["function"] == "main.sleeper")
    };
    // The runtime's own sleeps (sysmon) are not the workload's.
    let sleeps: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "slow_call" && e["syscall"] == "nanosleep" && at_sleeper(e))
        .collect();
    for e in &sleeps {
        // Slow, or cut short by a signal after losing its P (listed too).
        let slow = u64_at(e, "duration_ns") >= 1_000_000;
        assert!(slow || e["p"] == "lost", "{e}");
        assert_eq!(e["pid"], events[0]["pid"]);
    }
    let goroutines: BTreeSet<u64> = sleeps.iter().map(|e| u64_at(e, "goid")).collect();
    assert_eq!(goroutines.len(), 64);
    let (report, _) = replayed_json(&recording, dir.path());
    let interrupted = u64_at(syscall(&report, "nanosleep"), "errors");
    let n = sleeps.len() as u64;
    assert!(
        n <= SLEEPS && n + interrupted >= SLEEPS,
        "{n} slow nanosleep, {interrupted} EINTR"
    );
    assert_eq!(u64_at(sleeper_row(&report), "calls"), n);
    // Spawns are events too, with their parent thread.
    assert!(events.iter().any(|e| e["type"] == "thread_spawn"));
}

/// `attach --record`: the recording of an attached process reports as
/// the live run did, here 200 000 pread64 calls counted in the kernel.
#[test]
fn an_attached_recording_reports_as_the_live_run() {
    skip_unless!(cannot_trace_go());
    const N: u64 = 200_000;
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("pread.rec");
    let live_path = report_path(&dir);
    let pread = go_workload("pread");
    let mut workload = spawn_ready(&pread, &["-n", &N.to_string(), "-g", "4", "-wait"]);
    let record = ["--record", recording.to_str().unwrap()];
    let mut tracer = spawn_attach(workload.id(), &record, &live_path);
    signal(workload.id(), libc::SIGUSR1);
    assert!(wait_timeout(&mut workload, Duration::from_secs(60)).success());
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    let live = read_report(&live_path);
    assert_eq!(u64_at(syscall(&live, "pread64"), "calls"), N);
    // Recording costs the ring buffer nothing: none of it is lost.
    assert_eq!(u64_at(&live["events"], "lost"), 0, "{:#}", live["events"]);
    let (replayed, _) = replayed_json(&recording, dir.path());
    let mut diff = Vec::new();
    differences(&live, &as_live(replayed.clone()), "", &mut diff);
    assert!(diff.is_empty(), "replayed report differs: {diff:#?}");
    assert_eq!(replayed["target"]["mode"], "attach");
}

/// `--max-size`: a recording that reached its bound stops recording
/// events there, and its report says where and how many were left out;
/// the syscall tables keep the kernel's last reading (written after the
/// bound) and lack only the calls streamed one by one before their syscall
/// had an in-kernel histogram, which the report counts: with them, all 640
/// sleeps (all of them, when the run ends before nanosleep gets its
/// histogram).
#[test]
fn a_recording_bounded_by_max_size_says_what_it_left_out() {
    skip_unless!(cannot_trace_go());
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let bin = sleeper_copy(dir.path());
    let recording = dir.path().join("bounded.rec");
    let max = 16 * 1024;
    let out = tracer()
        .args(["record", "--max-size", &max.to_string(), "-o"])
        .arg(&recording)
        .arg("--")
        .arg(&bin)
        .args(SLEEPER_ARGS)
        .output()
        .expect("run tracer record");
    succeeded(&out, "tracer record --max-size");
    let size = std::fs::metadata(&recording).unwrap().len();
    // The bound, plus the last reading, facts and end written after it.
    assert!(size < max + 16 * 1024, "{size} bytes for a bound of {max}");
    let (report, stderr) = replayed_json(&recording, dir.path());
    assert!(stderr.contains("--max-size"), "{stderr}");
    let status = &report["recording"];
    assert_eq!(status["state"], "complete", "{status}");
    let limit = &status["size_limit"];
    assert_eq!(u64_at(limit, "max_bytes"), max, "{status}");
    assert!(u64_at(limit, "events_not_recorded") > 0, "{status}");
    // The calls left out are of any syscall: nanosleep's own are at
    // most all of them.
    let missing = u64_at(limit, "calls_not_recorded");
    let sleeps = u64_at(syscall(&report, "nanosleep"), "calls");
    assert!(
        sleeps <= SLEEPS + 4 && sleeps + missing >= SLEEPS,
        "{sleeps} nanosleep, {missing} calls not recorded"
    );
    // Fewer sleeps listed one by one than made: their events were not kept.
    let listed: u64 = rows(&report["blocking"], "blocking")
        .iter()
        .filter(|r| r["syscall"] == "nanosleep")
        .map(|r| u64_at(r, "calls"))
        .sum();
    assert!(listed < SLEEPS, "{listed} sleeps listed");
}
