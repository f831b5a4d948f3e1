//! `tracer report FILE --format hdrlog` read back by an independent reader:
//! HdrHistogram_py's `HistogramLogReader`, in the venv `cargo xtask setup`
//! makes (`cargo xtask test` passes its python as `TRACER_HDR_PYTHON`).
//! Each syscall's interval histograms, added together by that reader, must
//! hold exactly the report's calls (and the workload's), and give the
//! report's percentiles within the histograms' precision.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::PoisonError,
    time::{SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use serde_json::Value;

use crate::{skip_unless, support::*};

/// Reads an interval log with HdrHistogram_py; prints, as JSON, the log's
/// StartTime, each interval's start (seconds since it) and, per tag, the
/// sum of its histograms: total count, lines, max and the values at the
/// percentiles given (argv[2], JSON).
const READER: &str = r#"
import json, sys
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

path, percentiles = sys.argv[1], json.loads(sys.argv[2])
reader = HistogramLogReader(path, HdrHistogram(1, 2**40, 2))
sums, lines, starts = {}, {}, set()
while True:
    h = reader.get_next_interval_histogram()
    if h is None:
        break
    tag = h.get_tag()
    starts.add(round(h.get_start_time_stamp() / 1000.0 - reader.get_start_time_sec(), 3))
    lines[tag] = lines.get(tag, 0) + 1
    if tag in sums:
        sums[tag].add(h)
    else:
        sums[tag] = h
tags = {}
for tag, h in sums.items():
    tags[tag] = {
        "count": h.get_total_count(),
        "lines": lines[tag],
        "max": h.get_max_value(),
        "at": {str(p): h.get_value_at_percentile(p) for p in percentiles},
    }
print(json.dumps({
    "start_time_sec": reader.get_start_time_sec(),
    "interval_starts": sorted(starts),
    "tags": tags,
}))
"#;

/// The report's percentiles: `(its quantile, the percentile asked of
/// HdrHistogram_py, the row's field)`.
const PERCENTILES: [(f64, f64, &str); 3] = [
    (0.5, 50.0, "p50_ns"),
    (0.99, 99.0, "p99_ns"),
    (0.999, 99.9, "p999_ns"),
];

#[derive(Debug, Deserialize)]
struct Read {
    start_time_sec: f64,
    interval_starts: Vec<f64>,
    tags: BTreeMap<String, TagRead>,
}

#[derive(Debug, Deserialize)]
struct TagRead {
    count: u64,
    lines: u64,
    max: u64,
    /// Value at each percentile (its decimal text: "50.0", "99.9").
    at: BTreeMap<String, u64>,
}

/// The venv's python: `$TRACER_HDR_PYTHON`. Without it the test is
/// skipped, except under `cargo xtask test`, whose setup makes it.
fn hdr_python() -> Result<PathBuf, String> {
    match std::env::var_os("TRACER_HDR_PYTHON") {
        Some(p) => {
            let python = PathBuf::from(p);
            let imports = Command::new(&python)
                .args(["-c", "import hdrh.log"])
                .status()
                .is_ok_and(|s| s.success());
            assert!(
                imports,
                "{} (TRACER_HDR_PYTHON) cannot import hdrh: run `cargo xtask setup`",
                python.display()
            );
            Ok(python)
        }
        None => {
            assert!(
                std::env::var_os("TRACER_REQUIRE_EBPF").is_none(),
                "no TRACER_HDR_PYTHON under `cargo xtask test`: its setup makes the venv"
            );
            Err(
                "no HdrHistogram_py venv (run `cargo xtask setup`, or set TRACER_HDR_PYTHON)"
                    .into(),
            )
        }
    }
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Records `program args` with an interval of `interval`, and reports the
/// recording as JSON and as an interval log: (report, log's path).
fn record_and_report(
    dir: &Path,
    program: &Path,
    args: &[&str],
    interval: &str,
) -> (Value, PathBuf) {
    let recording = dir.join("trace.rec");
    run_ok(
        tracer()
            .args(["record", "-i", interval, "-o"])
            .arg(&recording)
            .arg("--")
            .arg(program)
            .args(args),
        "tracer record",
    );
    let json = dir.join("report.json");
    let log = dir.join("trace.hlog");
    for (format, out) in [("json", &json), ("hdrlog", &log)] {
        run_ok(
            tracer()
                .arg("report")
                .arg(&recording)
                .args(["--format", format, "-o"])
                .arg(out),
            &format!("tracer report --format {format}"),
        );
    }
    (read_report(&json), log)
}

fn read_log(python: &Path, log: &Path) -> Read {
    let percentiles: Vec<f64> = PERCENTILES.iter().map(|&(_, p, _)| p).collect();
    let out = Command::new(python)
        .arg("-c")
        .arg(READER)
        .arg(log)
        .arg(serde_json::to_string(&percentiles).unwrap())
        .output()
        .expect("run the python reader");
    assert!(
        out.status.success(),
        "HdrHistogram_py could not read {}: {}",
        log.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "reader printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// The rank of the value at quantile `q` (percentile `p`) of `n` values as
/// the report takes it (the Rust crate: ceil(q n)) and as HdrHistogram_py
/// does (p n / 100, rounded half up); at least 1. Equal ranks read the
/// same bucket on both sides.
fn ranks(q: f64, p: f64, n: u64) -> (u64, u64) {
    let report = ((q * n as f64).ceil() as u64).max(1);
    let python = ((p * n as f64 / 100.0 + 0.5).floor() as u64).max(1);
    (report, python)
}

/// The report's rows of one kind, and their tags in the log.
struct Rows {
    /// The report's array.
    array: &'static str,
    /// The field naming a row's syscall.
    name: &'static str,
    tag_prefix: &'static str,
}

const PROGRAM_ROWS: Rows = Rows {
    array: "syscalls",
    name: "name",
    tag_prefix: "",
};
const IDLE_ROWS: Rows = Rows {
    array: "idle_waits",
    name: "syscall",
    tag_prefix: "idle.",
};

/// Checks every report row against the reader's sum of its tag: the same
/// calls, and the same percentiles within precision where both take the
/// same rank. Returns how many percentiles were compared.
fn check_rows(report: &Value, read: &Read, kind: &Rows) -> usize {
    let mut compared = 0;
    for row in rows(&report[kind.array], kind.array) {
        let name = row[kind.name].as_str().unwrap();
        let tag = format!("{}{name}", kind.tag_prefix);
        let calls = u64_at(row, "calls");
        let sum = read
            .tags
            .get(&tag)
            .unwrap_or_else(|| panic!("no Tag={tag} in the log: {:?}", read.tags.keys()));
        assert_eq!(
            sum.count, calls,
            "Tag={tag}: the log's calls vs the report's"
        );
        for &(q, p, field) in &PERCENTILES {
            let Some(reported) = row.get(field).and_then(Value::as_u64) else {
                continue;
            };
            let (rank, rank_py) = ranks(q, p, calls);
            if rank != rank_py {
                continue;
            }
            let python = sum.at[&format!("{p:?}")];
            assert_within_precision(&tag, field, reported, python);
            compared += 1;
        }
    }
    compared
}

/// Both values stand for the same rank's bucket. HdrHistogram_py gives the
/// bucket's highest value; the report gives the same, or the exact maximum
/// where that is lower (it clamps percentiles to it). The maximum lies in
/// the kernel's bucket whose midpoint was recorded: at most half a kernel
/// bucket (1/128 of the value, buckets being 1/64 wide) below that
/// midpoint, which is at most one HdrHistogram bucket (1/128 of the value
/// at 2 significant figures: 128 sub-buckets per power of two) below the
/// bucket's top. So the report is at most 2/128 below the reader, never
/// above.
fn assert_within_precision(tag: &str, field: &str, reported: u64, python: u64) {
    assert!(
        reported <= python && python - reported <= python / 64,
        "Tag={tag} {field}: report {reported} ns, HdrHistogram_py {python} ns (more than 1/64 apart)"
    );
}

/// The tags of the log are the report's rows (program and idle).
fn check_tags(report: &Value, read: &Read) {
    let mut expected: Vec<String> = Vec::new();
    for kind in [PROGRAM_ROWS, IDLE_ROWS] {
        for row in rows(&report[kind.array], kind.array) {
            let name = row[kind.name].as_str().unwrap();
            expected.push(format!("{}{name}", kind.tag_prefix));
        }
    }
    expected.sort();
    let found: Vec<String> = read.tags.keys().cloned().collect();
    assert_eq!(found, expected, "the log's tags vs the report's rows");
}

/// StartTime is the trace's start on this host's clock (minutes ago at
/// most), and the intervals start at 0 s after it, and before its end.
fn check_times(report: &Value, read: &Read) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        read.start_time_sec <= now && now - read.start_time_sec < 600.0,
        "StartTime {} is not within ten minutes before now ({now})",
        read.start_time_sec
    );
    assert_eq!(
        read.interval_starts.first(),
        Some(&0.0),
        "{:?}",
        read.interval_starts
    );
    let traced = report["traced_seconds"].as_f64().unwrap();
    let last = read.interval_starts.last().copied().unwrap_or_default();
    assert!(
        last < traced,
        "an interval starts at {last} s, after the trace's {traced} s"
    );
}

fn bytes_per_line(log: &Path, read: &Read) -> (u64, u64) {
    let bytes = std::fs::metadata(log).unwrap().len();
    let lines: u64 = read.tags.values().map(|t| t.lines).sum();
    let intervals = read.interval_starts.len() as u64;
    (bytes / lines.max(1), bytes / intervals.max(1))
}

/// C threads making exactly 200 nanosleep(20 ms) calls and nothing else
/// slow: every call, over about a second of 200 ms intervals, is in the
/// log, at 20 ms plus the timer slack.
#[test]
fn nanosleeps_read_back_by_hdrhistogram_py_match_the_report() {
    skip_unless!(cannot_trace());
    let python = hdr_python();
    skip_unless!(python.as_ref().err());
    let python = python.expect("checked above");
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    const CALLS: u64 = 200;
    const SLEEP_NS: u64 = 20_000_000;
    let dir = tempfile::tempdir().unwrap();
    let sleeper = c_workload("nanosleep");
    let (report, log) = record_and_report(dir.path(), &sleeper, &[], "200ms");
    let read = read_log(&python, &log);
    check_tags(&report, &read);
    check_times(&report, &read);

    let row = syscall(&report, "nanosleep");
    assert_eq!(u64_at(row, "calls"), CALLS, "the workload's nanosleeps");
    let nanosleep = &read.tags["nanosleep"];
    assert_eq!(nanosleep.count, CALLS, "nanosleeps in the log");
    // 50 sleeps of 20 ms in a row on each thread: a second or more, so
    // several 200 ms intervals hold some.
    assert!(
        nanosleep.lines >= 3,
        "nanosleep in {} intervals",
        nanosleep.lines
    );
    // The ranks the workload's percentiles take agree on both sides (so
    // they are compared below, not skipped).
    for (q, p, _) in PERCENTILES {
        let (a, b) = ranks(q, p, CALLS);
        assert_eq!(a, b, "rank at {q} of {CALLS}");
    }
    let compared = check_rows(&report, &read, &PROGRAM_ROWS);
    assert!(compared >= PERCENTILES.len());
    // The known distribution: 20 ms and the slack (well under 10 ms).
    let p50 = nanosleep.at["50.0"];
    assert!(
        (SLEEP_NS..SLEEP_NS + 10_000_000).contains(&p50),
        "nanosleep p50 {p50} ns"
    );
    assert!(nanosleep.max >= nanosleep.at["99.9"]);
    let (per_line, per_interval) = bytes_per_line(&log, &read);
    eprintln!(
        "nanosleep: {} calls in {} intervals; p50/p99/p99.9 report {}/{}/{} ns, \
         HdrHistogram_py {}/{}/{} ns; {per_line} bytes per line, {per_interval} per interval",
        nanosleep.count,
        nanosleep.lines,
        u64_at(row, "p50_ns"),
        u64_at(row, "p99_ns"),
        u64_at(row, "p999_ns"),
        nanosleep.at["50.0"],
        nanosleep.at["99.0"],
        nanosleep.at["99.9"],
    );
}

/// A Go program: 16 goroutines x 50 nanosleeps of 10 ms (exactly 800),
/// with the runtime's own syscalls and idle waits around them. Every row
/// of the report, program and idle, is a tag of the log with its calls.
#[test]
fn a_go_programs_syscalls_and_idle_waits_read_back_whole() {
    skip_unless!(cannot_trace_go());
    let python = hdr_python();
    skip_unless!(python.as_ref().err());
    let python = python.expect("checked above");
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    const CALLS: u64 = 16 * 50;
    let dir = tempfile::tempdir().unwrap();
    let sleeper = go_workload("sleeper");
    let (report, log) = record_and_report(
        dir.path(),
        &sleeper,
        &["-g", "16", "-n", "50", "-ms", "10"],
        "100ms",
    );
    let read = read_log(&python, &log);
    check_tags(&report, &read);
    check_times(&report, &read);
    assert_eq!(u64_at(syscall(&report, "nanosleep"), "calls"), CALLS);
    assert_eq!(read.tags["nanosleep"].count, CALLS);
    assert!(
        read.tags["nanosleep"].lines >= 3,
        "{:?}",
        read.tags["nanosleep"]
    );
    assert!(
        !rows(&report["idle_waits"], "idle_waits").is_empty(),
        "a Go program waits idle somewhere (futex, epoll)"
    );
    let compared =
        check_rows(&report, &read, &PROGRAM_ROWS) + check_rows(&report, &read, &IDLE_ROWS);
    assert!(
        compared >= PERCENTILES.len(),
        "{compared} percentiles compared"
    );
    let (per_line, per_interval) = bytes_per_line(&log, &read);
    eprintln!(
        "sleeper: {} tags, {} lines, {} intervals; {compared} percentiles compared; \
         {per_line} bytes per line, {per_interval} per interval",
        read.tags.len(),
        read.tags.values().map(|t| t.lines).sum::<u64>(),
        read.interval_starts.len(),
    );
}
