//! The target is never harmed: the runtime paths a tracer could disturb
//! (GC churn, stacks growing by copying while the probes fire, 100 000
//! short goroutines, recovered panics, signals, a cgo call) give the same
//! output and exit status traced as untraced, on the Go releases where the
//! runtime's layout changed, with and without cgo.

use std::process::Command;

use crate::{
    gobin::{build_go_with, toolchains},
    report_check, skip_unless,
    support::*,
};

/// Go 1.19, 1.21, 1.25 and 1.27 where installed (else whatever is); every
/// one installed in the long variant.
fn releases() -> Vec<(String, std::path::PathBuf)> {
    let all = toolchains();
    if long_variant() {
        return all;
    }
    let wanted: Vec<_> = all
        .iter()
        .filter(|(v, _)| {
            ["1.19", "1.21", "1.25", "1.27"]
                .iter()
                .any(|m| v.starts_with(m))
        })
        .cloned()
        .collect();
    if wanted.is_empty() { all } else { wanted }
}

#[test]
fn traced_runs_match_untraced_ones() {
    skip_unless!(cannot_trace_go());
    let mut compared = 0;
    let rounds: u64 = if long_variant() { 20 } else { 1 };
    let args = ["-rounds".to_owned(), rounds.to_string()];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for (version, go) in releases() {
        for flavour in ["default", "cgo"] {
            let bin = build_go_with(&go, &version, "stress.go", flavour);
            let context = format!("go {version} {flavour}");
            let untraced = Command::new(&bin).args(&args).output().unwrap();
            assert!(
                untraced.status.success(),
                "{context}: untraced run failed: {}",
                String::from_utf8_lossy(&untraced.stderr)
            );
            let (report, traced) = trace_run(&bin, &args);
            report_check::check(&report);
            assert_eq!(
                String::from_utf8_lossy(&traced.stdout),
                String::from_utf8_lossy(&untraced.stdout),
                "{context}: the traced program's output differs"
            );
            assert_eq!(report["target"]["exit_code"], 0, "{context}");
            // It ran under the probes: its 1 000 signals to itself a round
            // are exactly 1 000 `kill` calls, and nothing was lost.
            assert_eq!(
                u64_at(syscall(&report, "kill"), "calls"),
                1000 * rounds,
                "{context}"
            );
            assert_eq!(u64_at(&report["events"], "lost"), 0, "{context}");
            compared += 1;
        }
    }
    assert!(compared >= 2, "compared {compared} builds");
}

/// A ring buffer too small for the events (4 KiB): the records that found
/// it full are counted by kind and add up to the total; the syscall tables
/// stay right for what was seen (a call is missing from them only when a
/// streamed `syscall` record was lost, so the count is within that many of
/// the truth), and the probes' own aggregates stay exact.
#[test]
fn a_full_ring_buffer_is_counted_by_kind_and_the_tables_stay_right() {
    skip_unless!(cannot_trace_go());
    let (version, go) = releases().pop().expect("a toolchain");
    let bin = build_go_with(&go, &version, "sleeper.go", "default");
    let dir = tempfile::tempdir().unwrap();
    let path = report_path(&dir);
    let _guard = PROBES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let out = tracer()
        .args(["run", "--ring-buffer-kb", "4", "--json", "-o"])
        .arg(&path)
        .arg("--")
        .arg(&bin)
        .args(["-g", "64", "-n", "10"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = read_report(&path);
    report_check::check(&report);
    let e = &report["events"];
    let full = u64_at(e, "ringbuf_full");
    assert!(full > 0, "a 4 KiB ring buffer never filled: {e}");
    let lost_calls = e["ringbuf_full_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "syscall")
        .map(|k| u64_at(k, "count"))
        .sum::<u64>();
    // 64 goroutines x 10 sleeps: 640 nanosleep (exact untraced ground truth).
    let seen = u64_at(syscall(&report, "nanosleep"), "calls");
    assert!(
        seen <= 640 && seen + lost_calls >= 640,
        "nanosleep {seen} with {lost_calls} streamed calls lost: {e}"
    );
}
