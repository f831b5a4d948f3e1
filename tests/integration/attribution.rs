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
        for flavour in ["default", "stripped", "pie"] {
            let bin = build_go_with(&go, &version, "sleeper.go", flavour);
            let (report, _) = trace_run_exclusive(&bin, &["-g", "4", "-n", "25"], &[]);
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
                .find(|r| r["syscall"] == "nanosleep" && site_fn(r) == "main.sleeper")
                .unwrap_or_else(|| {
                    panic!("{context}: no nanosleep row at main.sleeper: {rows:#?}")
                });
            // Every one of the 4 x 25 sleeps is slow (20 ms >= 1 ms) and made
            // there, by 4 distinct goroutines; except that a signal (EINTR,
            // counted as an error) can cut a sleep short.
            let interrupted = u64_at(syscall(&report, "nanosleep"), "errors");
            let calls = u64_at(row, "calls");
            assert!(
                calls <= 100 && calls + interrupted >= 100,
                "{context}: {calls} calls, {interrupted} EINTR"
            );
            assert_eq!(u64_at(row, "goroutines"), 4, "{context}");
            assert_eq!(u64_at(site(row), "line"), line, "{context}");
            assert!(
                site(row)["file"].as_str().unwrap().ends_with("sleeper.go"),
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
                .filter(|r| r["syscall"] == "nanosleep" && site_fn(r) == "main.sleeper")
                .map(|r| u64_at(r, "calls"))
                .sum();
            assert_eq!(others, calls, "{context}");
        }
    }
}

#[test]
fn lockosthread_leaks_are_counted_at_the_locking_call() {
    skip_unless!(cannot_trace_go());
    const K: u64 = 12;
    let line = marked_line("threads.go", "// LOCK SITE");
    for (version, go) in toolchains() {
        let bin = build_go_with(&go, &version, "threads.go", "default");
        let context = format!("go {version}");
        let (report, _) = trace_run(&bin, &["-k", &K.to_string()]);
        let leaks = &report["lockosthread_leaks"];
        assert_eq!(u64_at(leaks, "total"), K, "{context}: {leaks:#}");
        let leaks = rows(&leaks["rows"], "leak rows");
        assert_eq!(leaks.len(), 1, "{context}: {leaks:#?}");
        assert_eq!(u64_at(&leaks[0], "threads"), K, "{context}");
        assert_eq!(u64_at(&leaks[0], "goroutines"), K, "{context}");
        let site = site(&leaks[0]);
        assert!(
            site["function"].as_str().unwrap().starts_with("main.main"),
            "{context}: {site}"
        );
        assert_eq!(u64_at(site, "line"), line, "{context}: {site}");
        assert_eq!(u64_at(&report["threads"], "exited_itself"), K, "{context}");

        // The fixed variant unlocks: no thread ends, no leak.
        let (fixed, _) = trace_run(&bin, &["-k", &K.to_string(), "-unlock"]);
        assert_eq!(
            u64_at(&fixed["lockosthread_leaks"], "total"),
            0,
            "{context} fixed"
        );
        assert_eq!(
            u64_at(&fixed["threads"], "exited_itself"),
            0,
            "{context} fixed"
        );
    }
}

#[test]
fn thread_explosion_is_attributed_to_the_blocking_call_site() {
    skip_unless!(cannot_trace_go());
    const N: u64 = 64;
    let line = marked_line("sleeper.go", "// CALL SITE");
    let gomaxprocs = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    for (version, go) in toolchains() {
        let bin = build_go_with(&go, &version, "sleeper.go", "default");
        let context = format!("go {version}");
        // 64 goroutines sleeping in the kernel at once, 10 times each: each
        // blocked goroutine ends up holding a thread.
        let (report, _) = trace_run_exclusive(&bin, &["-g", &N.to_string(), "-n", "10"], &[]);
        // Slow exits (no P free at exit) can only follow a lost P, and each
        // is tied to the call that just ended on its thread.
        let row = report["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| site_fn(r) == "main.sleeper")
            .unwrap_or_else(|| panic!("{context}: no main.sleeper row"));
        assert!(
            u64_at(row, "slow_exits") <= u64_at(row, "p_handoffs"),
            "{context}: {row}"
        );
        let slow = &report["go"]["slow_exits"];
        assert_eq!(
            u64_at(slow, "attributed"),
            u64_at(slow, "total"),
            "{context}: {slow}"
        );
        let spawned = u64_at(&report["threads"], "spawned");
        assert!(
            spawned.abs_diff(N) <= gomaxprocs + 3,
            "{context}: {spawned} threads for {N} blocked goroutines"
        );
        let at_site: u64 = rows(&report["threads_by_cause"]["rows"], "causes")
            .iter()
            .filter(|c| c["cause"]["kind"] == "syscall_handoff" && c["cause"]["cgo"] == false)
            .filter(|c| c["syscall"] == "nanosleep" && site_fn(c) == "main.sleeper")
            .filter(|c| site(c)["line"] == line)
            .map(|c| u64_at(c, "threads"))
            .sum();
        assert!(
            at_site * 10 >= spawned * 9,
            "{context}: {at_site} of {spawned} at the call site: {:#}",
            report["threads_by_cause"]
        );
    }
}

#[test]
fn cgo_thread_growth_is_attributed_to_the_cgo_call_site() {
    skip_unless!(cannot_trace_go());
    let cc = std::process::Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    skip_unless!((!cc).then_some("no C compiler for cgo"));
    const N: u64 = 64;
    const BOUND: u64 = 8;
    let line = marked_line("cgo/sleep.go", "// CGO CALL");
    let gomaxprocs = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    for (version, go) in toolchains() {
        let bin = build_go_with(&go, &version, "cgo/sleep.go", "cgo");
        let context = format!("go {version} cgo");
        let (report, _) = trace_run_exclusive(&bin, &["-n", &N.to_string(), "-calls", "20"], &[]);
        assert_eq!(report["go"]["cgo"], true, "{context}");
        // The C code's sleeps are cgo calls, made from the marked Go line
        // by all N goroutines.
        let row = report["blocking"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["cgo"].is_object() && site(r)["line"] == line)
            .unwrap_or_else(|| {
                panic!(
                    "{context}: no cgo row at line {line}: {:#}",
                    report["blocking"]
                )
            });
        assert!(site_fn(row).starts_with("main.main"), "{context}: {row}");
        assert_eq!(u64_at(row, "goroutines"), N, "{context}");
        assert!(u64_at(row, "calls") >= N * 20 * 9 / 10, "{context}: {row}");
        // The threads grew with the goroutines in C, and most of the growth
        // is pinned on that cgo call.
        let spawned = u64_at(&report["threads"], "spawned");
        assert!(spawned >= N / 3, "{context}: only {spawned} threads");
        let at_site: u64 = rows(&report["threads_by_cause"]["rows"], "causes")
            .iter()
            .filter(|c| c["cause"]["kind"] == "syscall_handoff" && c["cause"]["cgo"] == true)
            .filter(|c| site(c)["line"] == line)
            .map(|c| u64_at(c, "threads"))
            .sum();
        assert!(
            at_site * 2 >= spawned,
            "{context}: {at_site} of {spawned}: {:#}",
            report["threads_by_cause"]
        );

        // Bounded: at most BOUND goroutines in C at once, so threads stay
        // near BOUND + GOMAXPROCS.
        let (bounded, _) = trace_run(
            &bin,
            &[
                "-n",
                &N.to_string(),
                "-calls",
                "20",
                "-bound",
                &BOUND.to_string(),
            ],
        );
        let spawned = u64_at(&bounded["threads"], "spawned");
        assert!(
            spawned <= BOUND + gomaxprocs + 4,
            "{context} bounded: {spawned} threads"
        );
    }
}

/// A Go release this tracer has no runtime layout for degrades to
/// syscall-only tracing with one warning, never wrong numbers: simulated by
/// rewriting the version in a copy's build info (go1.27.3 → go1.99.3).
#[test]
fn unknown_go_release_degrades_to_syscall_tracing() {
    skip_unless!(cannot_trace_go());
    let Some((version, go)) = toolchains()
        .into_iter()
        .find(|(v, _)| v.starts_with("1.27"))
    else {
        eprintln!("skipped: needs Go 1.27 to make the binary");
        return;
    };
    let bin = build_go_with(&go, &version, "sleeper.go", "default");
    let mut data = std::fs::read(&bin).unwrap();
    let needle = format!("go{version}");
    let fake = needle.replacen("1.27", "1.99", 1);
    // Every copy of the string: the build info's and the runtime's.
    let mut replaced = 0;
    let mut at = 0;
    while let Some(i) = data[at..]
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
    {
        data[at + i..at + i + fake.len()].copy_from_slice(fake.as_bytes());
        at += i + fake.len();
        replaced += 1;
    }
    assert!(replaced > 0, "no version string in the binary");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("sleeper-future");
    std::fs::write(&copy, &data).unwrap();
    std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let (report, out) = trace_run(&copy, &["-g", "2", "-n", "5"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("go1.99.3") && warnings[0].contains("syscalls only"),
        "{stderr}"
    );
    assert_eq!(report["go"]["attribution"], false);
    // Slow calls are still listed by call site (frame pointers and pclntab
    // do not depend on the runtime's layout), but nothing is read from the
    // runtime's structures: no goroutines, no handoffs.
    for row in report["blocking"].as_array().unwrap() {
        assert_eq!(u64_at(row, "goroutines"), 0, "{row}");
        assert_eq!(u64_at(row, "p_handoffs"), 0, "{row}");
    }
    assert_eq!(
        rows(&report["threads_by_cause"]["rows"], "causes")
            .iter()
            .filter(|c| c["cause"]["kind"] != "unknown")
            .count(),
        0,
        "{:#}",
        report["threads_by_cause"]
    );
    // The syscall counts are untouched.
    assert!(u64_at(syscall(&report, "nanosleep"), "calls") >= 10);
}
