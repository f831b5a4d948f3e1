//! `tracer diff BEFORE AFTER`: the file-I/O explosion and its fix (the
//! fileread workload unbounded, then with a semaphore of 8), each recorded;
//! the comparison shows the thread explosion gone, the verdict gone and the
//! bounded one appeared, and the p99 of the reads before and after, with
//! every figure equal to the one in each recording's own report. And two
//! recordings of the same exact workload: no change beyond noise in its
//! calls.

use std::{
    path::{Path, PathBuf},
    sync::PoisonError,
};

use serde_json::Value;

use crate::{skip_unless, support::*};

/// `tracer record -o DIR/NAME.rec -- BIN ARGS`, which must succeed.
fn record(dir: &Path, name: &str, bin: &Path, args: &[&str]) -> PathBuf {
    let recording = dir.join(format!("{name}.rec"));
    let out = tracer()
        .args(["record", "-o"])
        .arg(&recording)
        .arg("--")
        .arg(bin)
        .args(args)
        .output()
        .expect("run tracer record");
    assert!(
        out.status.success(),
        "tracer record {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    recording
}

/// The recording's own report (`tracer report --format json`), checked.
fn report_of(recording: &Path) -> Value {
    let out = recording.with_extension("json");
    let run = tracer()
        .arg("report")
        .arg(recording)
        .args(["--format", "json", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let r = read_report(&out);
    crate::report_check::check(&r);
    r
}

/// `tracer diff BEFORE AFTER --json`, and the text form (which must
/// succeed too).
fn diff(before: &Path, after: &Path) -> Value {
    let run = |json: bool| {
        let mut cmd = tracer();
        cmd.arg("diff").arg(before).arg(after);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let text = String::from_utf8(run(false)).unwrap();
    eprintln!("{text}");
    let d: Value = serde_json::from_slice(&run(true)).unwrap();
    assert_eq!(d["schema"], "gotracer.diff/1");
    d
}

fn row<'a>(d: &'a Value, name: &str) -> &'a Value {
    rows(&d["syscalls"], "diff syscalls")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no {name} row in the diff"))
}

fn kinds(list: &Value) -> Vec<String> {
    rows(list, "verdicts")
        .iter()
        .map(|v| format!("{}/{}", v["kind"], v["wait"]["class"]))
        .collect()
}

/// The diff's figures for one side equal that side's own report.
fn matches_report(d: &Value, side: &str, r: &Value) {
    let t = &d["threads"];
    assert_eq!(t["spawned"][side], r["threads"]["spawned"], "{side}");
    assert_eq!(t["peak"][side], r["threads"]["peak"], "{side}");
    for s in rows(&r["syscalls"], "syscalls") {
        let name = s["name"].as_str().unwrap();
        let d = row(d, name);
        assert_eq!(d["calls"][side], s["calls"], "{side} {name}");
        assert_eq!(d["errors"][side], s["errors"], "{side} {name}");
        for (q, field) in [("p50", "p50_ns"), ("p99", "p99_ns"), ("p999", "p999_ns")] {
            let band = &d[q][side];
            assert_eq!(band["ns"], s[field], "{side} {name} {q}");
            let ns = u64_at(band, "ns");
            assert!(u64_at(band, "low_ns") <= ns, "{side} {name} {q}: {band}");
            assert!(
                band["high_ns"].is_null() || ns <= u64_at(band, "high_ns"),
                "{side} {name} {q}: {band}"
            );
        }
    }
    let handoffs = &r["go"]["handoffs"]["total"];
    assert_eq!(&d["handoffs"][side], handoffs, "{side}");
}

/// A percentile change is beyond noise exactly when its bands are apart.
fn bands_decide(q: &Value) {
    let (b, a) = (&q["before"], &q["after"]);
    if b.is_null() || a.is_null() {
        assert_eq!(q["beyond_noise"], false, "{q}");
        return;
    }
    let below = |x: &Value, y: &Value| {
        !x["high_ns"].is_null() && u64_at(x, "high_ns") < u64_at(y, "low_ns")
    };
    let apart = below(b, a) || below(a, b);
    assert_eq!(q["beyond_noise"], apart, "{q}");
}

#[test]
fn the_fix_of_a_file_io_explosion_shows_in_the_diff() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("fileread");
    let files = files_dir("fileread-files");
    let files = files.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = {
        let _exclusive = PROBES.write().unwrap_or_else(PoisonError::into_inner);
        (
            record(
                dir.path(),
                "unbounded",
                &bin,
                &["-dir", files, "-files", "1000"],
            ),
            record(
                dir.path(),
                "bounded",
                &bin,
                &["-dir", files, "-files", "1000", "-sem", "8"],
            ),
        )
    };
    let (rb, ra) = (report_of(&before), report_of(&after));
    let d = diff(&before, &after);
    matches_report(&d, "before", &rb);
    matches_report(&d, "after", &ra);
    // Two whole runs of the same job: compared per run, however long
    // each took (the unbounded one is slower, more so on a busy host).
    assert_eq!(d["basis"], "per_run");

    // The explosion gone: spawns fell beyond noise, the peak with them.
    let spawned = &d["threads"]["spawned"];
    assert!(
        u64_at(spawned, "before") > 32 + u64_at(spawned, "after"),
        "{spawned}"
    );
    assert_eq!(spawned["beyond_noise"], true, "{spawned}");
    let peak = &d["threads"]["peak"];
    assert!(u64_at(peak, "before") > u64_at(peak, "after"), "{peak}");
    // By cause: the handoffs of the blocked reads went.
    let causes = rows(&d["threads"]["spawned_by_cause"], "causes");
    let handoff = causes
        .iter()
        .find(|c| c["cause"].as_str().unwrap().starts_with("syscall handoff"))
        .unwrap_or_else(|| panic!("no syscall handoff cause: {causes:?}"));
    assert!(
        u64_at(handoff, "before") > u64_at(handoff, "after"),
        "{handoff}"
    );
    assert_eq!(handoff["beyond_noise"], true, "{handoff}");
    let sum: u64 = causes.iter().map(|c| u64_at(c, "before")).sum();
    assert_eq!(
        sum,
        u64_at(spawned, "before"),
        "causes add up to the spawns"
    );

    // The verdicts: the explosion's gone, the bounded one appeared.
    let gone = kinds(&d["verdicts_gone"]);
    assert!(
        gone.contains(&"\"blocking_holds_threads\"/\"file\"".to_owned()),
        "{gone:?}"
    );
    let appeared = kinds(&d["verdicts_appeared"]);
    assert!(
        appeared.contains(&"\"blocking_bounded\"/\"file\"".to_owned()),
        "{appeared:?}"
    );

    // The reads: the same count on both sides (1 000 files), each
    // percentile's verdict decided by its bands.
    let read = row(&d, "read");
    for q in ["p50", "p99", "p999"] {
        bands_decide(&read[q]);
    }
    eprintln!("read p99: {}", read["p99"]);
}

#[test]
fn the_same_workload_twice_shows_no_change_in_its_calls() {
    skip_unless!(cannot_trace_go());
    let bin = go_workload("sleeper");
    let dir = tempfile::tempdir().unwrap();
    let args = ["-g", "64", "-n", "10"];
    let (one, two) = {
        let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
        (
            record(dir.path(), "one", &bin, &args),
            record(dir.path(), "two", &bin, &args),
        )
    };
    let d = diff(&one, &two);
    matches_report(&d, "before", &report_of(&one));
    matches_report(&d, "after", &report_of(&two));
    assert_eq!(d["basis"], "per_run");
    let sleeps = row(&d, "nanosleep");
    // 64 goroutines x 10 sleeps of 20 ms, on both sides (and at most a
    // few of the runtime's: see `record::assert_sleeps_counted`).
    for side in ["before", "after"] {
        let n = u64_at(&sleeps["calls"], side);
        assert!((640..=644).contains(&n), "{side}: {n} nanosleep");
    }
    assert_eq!(sleeps["calls"]["beyond_noise"], false, "{sleeps}");
    assert_eq!(sleeps["p50"]["beyond_noise"], false, "{sleeps}");
    for q in ["p50", "p99", "p999"] {
        bands_decide(&sleeps[q]);
    }
    assert!(
        rows(&d["verdicts_appeared"], "appeared").is_empty(),
        "{}",
        d["verdicts_appeared"]
    );
    assert!(
        rows(&d["verdicts_gone"], "gone").is_empty(),
        "{}",
        d["verdicts_gone"]
    );
}
