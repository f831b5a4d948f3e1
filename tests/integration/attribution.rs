//! Go runtime attribution of long calls, for every installed Go release:
//! the goroutines, the call site (function, file and line read from the
//! binary's pclntab) and P handoffs of a workload whose blocking calls are
//! all made from one marked source line.

use std::path::PathBuf;

use crate::{
    gobin::{build_go_with, toolchains},
    skip_unless,
    support::*,
};

/// The line of `tests/workloads/<file>` that carries `marker`.
fn marked_line(file: &str, marker: &str) -> u64 {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/workloads")
        .join(file);
    let text = std::fs::read_to_string(src).unwrap();
    text.lines()
        .position(|l| l.contains(marker))
        .expect("marker") as u64
        + 1
}

#[test]
fn blocking_calls_are_attributed_to_goroutines_and_their_call_site() {
    skip_unless!(cannot_trace_go());
    let line = marked_line("sleeper.go", "// CALL SITE");
    for (version, go) in toolchains() {
        for flavour in ["default", "stripped"] {
            let bin = build_go_with(&go, &version, "sleeper.go", flavour);
            let (report, _) = trace_run(&bin, &["-g", "4", "-n", "25"]);
            let context = format!("go {version} {flavour}");
            let g = &report["go"];
            assert_eq!(g["attribution"], true, "{context}");
            assert_eq!(
                g["symbols"],
                if flavour == "stripped" {
                    "pclntab"
                } else {
                    "symtab"
                },
                "{context}"
            );
            let rows = report["blocking"].as_array().unwrap();
            let row = rows
                .iter()
                .find(|r| {
                    r["syscall"] == "nanosleep" && r["call_site"]["function"] == "main.sleeper"
                })
                .unwrap_or_else(|| {
                    panic!("{context}: no nanosleep row at main.sleeper: {rows:#?}")
                });
            // Every one of the 4 x 25 sleeps is slow (20 ms >= 1 ms) and made
            // there, by 4 distinct goroutines.
            assert_eq!(u64_at(row, "calls"), 100, "{context}");
            assert_eq!(u64_at(row, "goroutines"), 4, "{context}");
            assert_eq!(u64_at(&row["call_site"], "line"), line, "{context}");
            assert!(
                row["call_site"]["file"]
                    .as_str()
                    .unwrap()
                    .ends_with("sleeper.go"),
                "{context}"
            );
            // sysmon retakes the P of a goroutine in a syscall past 10 ms:
            // most of these calls lose it (the exact count is timing).
            let handoffs = u64_at(row, "p_handoffs");
            assert!(
                (1..=100).contains(&handoffs),
                "{context}: {handoffs} handoffs"
            );
            // No other row claims nanosleep calls from main.sleeper.
            let others: u64 = rows
                .iter()
                .filter(|r| {
                    r["syscall"] == "nanosleep" && r["call_site"]["function"] == "main.sleeper"
                })
                .map(|r| u64_at(r, "calls"))
                .sum();
            assert_eq!(others, 100, "{context}");
        }
    }
}
