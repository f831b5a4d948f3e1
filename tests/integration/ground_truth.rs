//! Ground truth from Go itself: a workload runs with `runtime/trace` on for
//! its whole blocking phase while the tracer watches it. The P handoffs the
//! tracer reports (calls during which the goroutine's P was taken) must
//! match the trace's own handoff events, and its slow syscall exits (no P
//! free at exit) the trace's "syscall ended after blocking without a P"
//! events, within 5%, for every installed Go release.
//!
//! Trace events (shared/reference/go-runtime.md §10):
//! - old format (Go ≤ 1.21, `go tool trace -d`): every handoff writes
//!   `GoSysBlock`; a slow-path exit writes `GoSysExit` with a non-zero `ts=`;
//! - v2 format (Go ≥ 1.22, `-d=wire` / `-d=parsed`): every P taken from a
//!   syscalling M is a `ProcSteal`; a slow exit is a `Syscall->Runnable`
//!   transition written by an M without a P (`P=-1`).

use std::{path::Path, process::Command};

use crate::{
    gobin::{build_go_with, toolchains},
    skip_unless,
    support::*,
};

fn go_tool_trace(go: &Path, mode: &str, trace: &Path) -> String {
    let out = Command::new(go)
        .args(["tool", "trace", mode])
        .arg(trace)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("go tool trace");
    // The old tool prints its events and exits 0; stderr has progress noise.
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `(handoffs, slow exits)` counted from Go's own trace.
fn trace_counts(go: &Path, minor: u32, trace: &Path) -> (u64, u64) {
    if minor <= 21 {
        let text = go_tool_trace(go, "-d", trace);
        let mut handoffs = 0;
        let mut slow = 0;
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.get(1) {
                Some(&"GoSysBlock") => handoffs += 1,
                Some(&"GoSysExit") if fields.last() != Some(&"ts=0") => slow += 1,
                _ => {}
            }
        }
        (handoffs, slow)
    } else {
        let wire = go_tool_trace(go, "-d=wire", trace);
        let handoffs = wire.lines().filter(|l| l.starts_with("ProcSteal ")).count() as u64;
        let parsed = go_tool_trace(go, "-d=parsed", trace);
        let slow = parsed
            .lines()
            .filter(|l| l.contains("Syscall->Runnable"))
            .filter(|l| l.split_whitespace().nth(1) == Some("P=-1"))
            .count() as u64;
        (handoffs, slow)
    }
}

fn within_5_percent(ours: u64, truth: u64) -> bool {
    ours.abs_diff(truth) * 20 <= truth.max(20)
}

#[test]
fn handoffs_and_slow_exits_match_go_execution_trace() {
    skip_unless!(cannot_trace_go());
    for (version, go) in toolchains() {
        let minor: u32 = version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .unwrap();
        let bin = build_go_with(&go, &version, "tracegt.go", "default");
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace.out");
        let (report, _) = trace_run_env(&bin, &[trace.to_str().unwrap()], &[("GOMAXPROCS", "2")]);
        let ours_handoffs: u64 = report["go"]["p_handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| u64_at(h, "p_handoffs"))
            .sum();
        let ours_slow = u64_at(&report["go"], "slow_exits");
        let (handoffs, slow) = trace_counts(&go, minor, &trace);
        let context = format!(
            "go {version}: tracer {ours_handoffs} handoffs / {ours_slow} slow exits, trace {handoffs} / {slow}"
        );
        eprintln!("{context}");
        assert!(handoffs > 20, "{context}: too few handoffs to compare");
        assert!(within_5_percent(ours_handoffs, handoffs), "{context}");
        assert!(within_5_percent(ours_slow, slow), "{context}");
    }
}
