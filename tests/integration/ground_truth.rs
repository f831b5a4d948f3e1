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

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::Command,
};

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

/// What Go's own trace says.
struct TraceCounts {
    handoffs: u64,
    /// Handoffs by sysmon's retake (old format: a `GoSysBlock` followed by
    /// `ProcStop` on the same P, which also counts rare GC takeovers; v2: the
    /// `ProcSteal`s written by the sysmon thread, the M that never starts a
    /// goroutine).
    by_sysmon: u64,
    slow_exits: u64,
}

fn trace_counts(go: &Path, minor: u32, trace: &Path) -> TraceCounts {
    if minor <= 21 {
        let text = go_tool_trace(go, "-d", trace);
        let mut handoffs = 0;
        let mut by_sysmon = 0;
        let mut slow_exits = 0;
        let mut last_on_p: HashMap<String, String> = HashMap::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(&name), Some(&p)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            match name {
                "GoSysBlock" => handoffs += 1,
                "GoSysExit" if fields.last() != Some(&"ts=0") => slow_exits += 1,
                "ProcStop" if last_on_p.get(p).is_some_and(|l| l == "GoSysBlock") => by_sysmon += 1,
                _ => {}
            }
            last_on_p.insert(p.to_owned(), name.to_owned());
        }
        TraceCounts {
            handoffs,
            by_sysmon,
            slow_exits,
        }
    } else {
        let wire = go_tool_trace(go, "-d=wire", trace);
        let mut m = String::new();
        let mut steals: HashMap<String, u64> = HashMap::new();
        let mut starts: HashSet<String> = HashSet::new();
        for line in wire.lines() {
            if line.starts_with("EventBatch ") {
                m = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("m="))
                    .unwrap_or("")
                    .to_owned();
            } else if line.starts_with("ProcSteal ") {
                *steals.entry(m.clone()).or_default() += 1;
            } else if line.starts_with("GoStart ") {
                starts.insert(m.clone());
            }
        }
        let handoffs = steals.values().sum();
        let by_sysmon = steals
            .iter()
            .filter(|(m, _)| !starts.contains(*m))
            .map(|(_, n)| n)
            .sum();
        let parsed = go_tool_trace(go, "-d=parsed", trace);
        let slow_exits = parsed
            .lines()
            .filter(|l| l.contains("Syscall->Runnable"))
            .filter(|l| l.split_whitespace().nth(1) == Some("P=-1"))
            .count() as u64;
        TraceCounts {
            handoffs,
            by_sysmon,
            slow_exits,
        }
    }
}

/// Within 5%, or within 2 for small counts.
fn within_5_percent(ours: u64, truth: u64) -> bool {
    ours.abs_diff(truth) * 20 <= truth.max(40)
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
        let (report, _) =
            trace_run_exclusive(&bin, &[trace.to_str().unwrap()], &[("GOMAXPROCS", "2")]);
        let ours_handoffs: u64 = report["go"]["p_handoffs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| u64_at(h, "p_handoffs"))
            .sum();
        let ours_slow = u64_at(&report["go"], "slow_exits");
        let ours_sysmon: u64 = report["go"]["handoff_causes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["cause"] == "sysmon retake")
            .map(|c| u64_at(c, "handoffs"))
            .sum();
        let t = trace_counts(&go, minor, &trace);
        let context = format!(
            "go {version}: tracer {ours_handoffs} handoffs ({ours_sysmon} by sysmon) / {ours_slow} slow exits, \
             trace {} ({} by sysmon) / {}",
            t.handoffs, t.by_sysmon, t.slow_exits
        );
        eprintln!("{context}");
        assert!(t.handoffs > 20, "{context}: too few handoffs to compare");
        assert!(within_5_percent(ours_handoffs, t.handoffs), "{context}");
        assert!(within_5_percent(ours_sysmon, t.by_sysmon), "{context}");
        // The rest: steal-backs by exiting goroutines (and stop-the-world).
        // A small category; a steal-back can hit a call shorter than the
        // 20 µs below which the tracer does not read the runtime's state,
        // so it is held to 5% of all handoffs.
        let (ours_rest, trace_rest) = (ours_handoffs - ours_sysmon, t.handoffs - t.by_sysmon);
        assert!(
            ours_rest.abs_diff(trace_rest) * 20 <= t.handoffs.max(40),
            "{context}"
        );
        assert!(within_5_percent(ours_slow, t.slow_exits), "{context}");
    }
}
