//! The soak: `tracer attach` on a net/http server under wrk on loopback
//! (about 200 000 syscalls a second: netpolled socket reads and writes,
//! file reads with their slow calls and stacks, P handoffs), with a summary
//! every 5 s, for one minute (ten in the long variant, `cargo xtask test
//! --long`). The tracer's resident memory, sampled every 2 s past a
//! warm-up, must stay flat: every per-site, per-thread and per-goroutine
//! structure is bounded.

use std::{
    process::Stdio,
    thread::sleep,
    time::{Duration, Instant},
};

use crate::{
    harness::{HttpServer, missing, wrk},
    report_check, skip_unless,
    support::*,
};

/// The resident set of `pid` in kB (`VmRSS` in `/proc/PID/status`).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The least-squares slope of `(seconds, kB)` points, in kB per minute.
fn slope_kb_per_min(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let (num, den) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| {
        (a + (x - mx) * (y - my), b + (x - mx) * (x - mx))
    });
    num / den * 60.0
}

#[test]
fn memory_stays_flat_under_a_long_attach() {
    skip_unless!(cannot_trace_go());
    skip_unless!(missing("wrk"));
    let (total, warmup) = if long_variant() {
        (Duration::from_secs(600), Duration::from_secs(60))
    } else {
        (Duration::from_secs(60), Duration::from_secs(15))
    };
    let server = HttpServer::start(&go_workload("httpserver"));
    let dir = tempfile::tempdir().unwrap();
    let report = report_path(&dir);
    let _guard = PROBES
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut tracer = tracer()
        .args(["attach", "-p", &server.pid().to_string(), "--json"])
        .args(["--interval", "5s", "-o"])
        .arg(&report)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let tracer_pid = tracer.id();
    let start = Instant::now();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    std::thread::scope(|s| {
        let load = s.spawn(|| {
            let url = server.url("/copy");
            wrk(&url, 2, 32, total)
        });
        while !load.is_finished() {
            sleep(Duration::from_secs(2));
            let t = start.elapsed();
            if let Some(kb) = rss_kb(tracer_pid)
                && t > warmup
            {
                samples.push((t.as_secs_f64(), kb as f64));
            }
        }
        let load = load.join().unwrap();
        assert!(load.requests > 0, "wrk made no request");
    });
    signal(tracer_pid, libc::SIGINT);
    assert!(wait_timeout(&mut tracer, Duration::from_secs(30)).success());
    let r = read_report(&report);
    report_check::check(&r);
    let calls = u64_at(&r["totals"]["program"], "calls");
    let first = samples.first().map_or(0.0, |s| s.1);
    let peak = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let slope = slope_kb_per_min(&samples);
    eprintln!(
        "soak: {} s, {calls} calls traced ({:.0}/s); tracer RSS {first:.0} kB after the \
         warm-up, peak {peak:.0} kB, last {:.0} kB, slope {slope:+.1} kB/min over {} samples",
        total.as_secs(),
        calls as f64 / r["traced_seconds"].as_f64().unwrap(),
        samples.last().map_or(0.0, |s| s.1),
        samples.len()
    );
    assert!(samples.len() >= 10, "{} samples", samples.len());
    assert!(calls > 1_000_000, "only {calls} calls traced");
    // Flat: where it ended within 256 kB of where it settled (a page batch
    // or two of the allocator; the leak this replaced grew 2 MB a minute),
    // and never more than 1 MB above it.
    let last = samples.last().map_or(0.0, |s| s.1);
    assert!(
        last - first <= 256.0,
        "RSS grew {} kB ({slope:+.1} kB/min): {samples:?}",
        last - first
    );
    assert!(
        peak - first < 1024.0,
        "RSS rose {} kB: {samples:?}",
        peak - first
    );
}
