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

/// Go 1.19, 1.21, 1.25 and 1.27 where installed (else whatever is).
fn releases() -> Vec<(String, std::path::PathBuf)> {
    let all = toolchains();
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
    for (version, go) in releases() {
        for flavour in ["default", "cgo"] {
            let bin = build_go_with(&go, &version, "stress.go", flavour);
            let context = format!("go {version} {flavour}");
            let untraced = Command::new(&bin).output().unwrap();
            assert!(
                untraced.status.success(),
                "{context}: untraced run failed: {}",
                String::from_utf8_lossy(&untraced.stderr)
            );
            let (report, traced) = trace_run(&bin, &[]);
            report_check::check(&report);
            assert_eq!(
                String::from_utf8_lossy(&traced.stdout),
                String::from_utf8_lossy(&untraced.stdout),
                "{context}: the traced program's output differs"
            );
            assert_eq!(report["target"]["exit_code"], 0, "{context}");
            // It ran under the probes: its 1 000 signals to itself are
            // exactly 1 000 `kill` calls, and nothing was lost.
            assert_eq!(u64_at(syscall(&report, "kill"), "calls"), 1000, "{context}");
            assert_eq!(u64_at(&report["events"], "lost"), 0, "{context}");
            compared += 1;
        }
    }
    assert!(compared >= 2, "compared {compared} builds");
}
