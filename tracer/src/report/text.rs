//! The human-readable report: a `strace -c`-like table with percentiles, a
//! latency histogram for the syscalls that took the most time, thread counts
//! and the loss line (always printed, so a clean run says "0 lost").

use std::io::{self, Write};

use super::{Report, Sink, TOP_HISTOGRAMS};

pub struct TextSink<W: Write> {
    out: W,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

/// A duration in the unit that keeps 3 significant digits readable.
pub fn human_ns(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.2}µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", ns_f / 1e6)
    } else {
        format!("{:.2}s", ns_f / 1e9)
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn write(&mut self, r: &Report) -> io::Result<()> {
        let o = &mut self.out;
        let t = &r.target;
        let ending = match (t.exited, t.exit_code) {
            (true, Some(code)) => format!(", process exited with code {code}"),
            (true, None) => ", process exited".to_owned(),
            (false, _) => ", detached (process still running)".to_owned(),
        };
        writeln!(
            o,
            "tracer: {} pid {} ({}) for {:.2}s{ending}",
            t.mode, t.pid, t.command, r.traced_seconds
        )?;
        write_verdicts(o, r)?;
        writeln!(o)?;
        writeln!(
            o,
            "{:<18} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            "syscall", "calls", "errors", "total", "mean", "p50", "p90", "p99", "p99.9", "max"
        )?;
        for s in &r.syscalls {
            writeln!(
                o,
                "{:<18} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
                s.name,
                s.calls,
                s.errors,
                human_ns(s.total_ns),
                human_ns(s.mean_ns),
                human_ns(s.p50_ns),
                human_ns(s.p90_ns),
                human_ns(s.p99_ns),
                human_ns(s.p999_ns),
                human_ns(s.max_ns),
            )?;
        }
        let calls: u64 = r.syscalls.iter().map(|s| s.calls).sum();
        let errors: u64 = r.syscalls.iter().map(|s| s.errors).sum();
        let total: u64 = r.syscalls.iter().map(|s| s.total_ns).sum();
        writeln!(
            o,
            "{:<18} {:>10} {:>8} {:>10}",
            "total",
            calls,
            errors,
            human_ns(total)
        )?;

        for s in r.syscalls.iter().take(TOP_HISTOGRAMS) {
            writeln!(o)?;
            writeln!(o, "{} latency ({} calls):", s.name, s.calls)?;
            let most = s
                .histogram
                .iter()
                .map(|b| b.count)
                .max()
                .unwrap_or(1)
                .max(1);
            for b in &s.histogram {
                let bar = (b.count * 40).div_ceil(most) as usize;
                writeln!(
                    o,
                    "  [{:>8}, {:>8}) {:>10} |{:<40}|",
                    human_ns(b.low_ns),
                    human_ns(b.high_ns),
                    b.count,
                    "@".repeat(bar)
                )?;
            }
        }

        if let Some(go) = &r.go {
            writeln!(o)?;
            let symbols = match go.symbols {
                crate::gobin::SymbolsSource::Symtab => "symtab",
                crate::gobin::SymbolsSource::Pclntab => "pclntab (stripped)",
            };
            writeln!(
                o,
                "Go runtime: {}, symbols from {symbols}, {}{}; goroutine attribution {}",
                go.version,
                if go.cgo { "cgo" } else { "no cgo" },
                match (r.facts.cpu.gomaxprocs, go.ps_seen) {
                    (Some(n), seen) if seen > 0 =>
                        format!(", GOMAXPROCS {n} ({seen} Ps seen in use)"),
                    (Some(n), _) => format!(", GOMAXPROCS {n}"),
                    (None, seen) if seen > 0 => {
                        format!(", {seen} Ps seen in use (GOMAXPROCS is at least that)")
                    }
                    _ => String::new(),
                },
                if go.attribution {
                    "on"
                } else {
                    "off (no offsets for this release)"
                }
            )?;
            let handoffs: Vec<String> = go
                .p_handoffs
                .iter()
                .map(|h| format!("{} {}", h.syscall, h.p_handoffs))
                .collect();
            if !handoffs.is_empty() {
                writeln!(
                    o,
                    "P handoffs (P taken during the call): {}",
                    handoffs.join(", ")
                )?;
            }
            let causes: Vec<String> = go
                .handoff_causes
                .iter()
                .map(|c| format!("{} {}", c.cause, c.handoffs))
                .collect();
            if !causes.is_empty() {
                writeln!(o, "  taken by: {}", causes.join(", "))?;
            }
            if go.slow_exits > 0 {
                writeln!(
                    o,
                    "slow syscall exits (no P free: goroutine queued, thread parked): {}",
                    go.slow_exits
                )?;
            }
            let runtime: Vec<String> = go
                .runtime_slow
                .iter()
                .map(|r| format!("{} {} ({})", r.syscall, r.calls, human_ns(r.total_ns)))
                .collect();
            if !runtime.is_empty() {
                writeln!(
                    o,
                    "runtime's own slow calls (sysmon, idle threads; no goroutine waits): {}",
                    runtime.join(", ")
                )?;
            }
            if !r.blocking.is_empty() {
                writeln!(o)?;
                writeln!(
                    o,
                    "Blocking by call site (calls >= {} or that lost their P):",
                    human_ns(go.slow_threshold_ns)
                )?;
                writeln!(
                    o,
                    "{:<16} {:>8} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10}  call site",
                    "syscall", "calls", "gors", "total", "p99", "max", "handoffs", "slow exits"
                )?;
                for b in r.blocking.iter().take(15) {
                    let site = b
                        .call_site
                        .as_ref()
                        .map_or_else(|| "?".to_owned(), ToString::to_string);
                    writeln!(
                        o,
                        "{:<16} {:>8} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10}  {site}",
                        if b.cgo {
                            format!("{} [cgo]", b.syscall)
                        } else {
                            b.syscall.clone()
                        },
                        b.calls,
                        b.goroutines,
                        human_ns(b.total_ns),
                        human_ns(b.p99_ns),
                        human_ns(b.max_ns),
                        b.p_handoffs,
                        b.slow_exits
                    )?;
                }
            }
        }

        if !r.threads_by_cause.is_empty() {
            let total: u64 = r.threads_by_cause.iter().map(|c| c.threads).sum();
            writeln!(o)?;
            let top = &r.threads_by_cause[0];
            let site = |c: &super::CauseRow| match (&c.syscall, &c.call_site) {
                (Some(sc), Some(f)) => format!(" from {sc} in {f}"),
                (Some(sc), None) => format!(" from {sc}"),
                _ => String::new(),
            };
            writeln!(
                o,
                "{total} threads spawned: {} {}{}",
                top.threads,
                top.cause,
                site(top)
            )?;
            for c in &r.threads_by_cause {
                writeln!(o, "  {:>6}  {}{}", c.threads, c.cause, site(c))?;
            }
        }

        if !r.lockosthread_leaks.is_empty() {
            let total: u64 = r.lockosthread_leaks.iter().map(|l| l.threads).sum();
            writeln!(o)?;
            writeln!(
                o,
                "LockOSThread leaks: {total} threads ended because a goroutine exited while locked \
                 to its thread (unlock with `defer runtime.UnlockOSThread()`):"
            )?;
            for l in &r.lockosthread_leaks {
                let site = l
                    .call_site
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), ToString::to_string);
                writeln!(
                    o,
                    "  {:>6} threads, {:>6} goroutines, locked at {site}",
                    l.threads, l.goroutines
                )?;
            }
        }

        write_vdso(o, &r.vdso)?;

        let th = &r.threads;
        writeln!(o)?;
        writeln!(
            o,
            "threads: {} at start, {} at end, peak {}; {} spawned, {} exited while running, \
             {} ended with the process",
            th.at_start, th.at_end, th.peak, th.spawned, th.exited, th.exited_at_process_exit
        )?;
        let e = &r.events;
        writeln!(
            o,
            "events: {} lost (ring buffer full {}, in-flight collisions {}, undecodable {}, \
             unknown syscalls {}); {} calls already in progress at attach were not timed",
            e.lost,
            e.ringbuf_full,
            e.inflight_collisions,
            e.undecodable,
            e.unknown_syscalls,
            e.unmatched_exits
        )?;
        o.flush()
    }
}

/// The diagnosis first: what a reader needs in seconds.
fn write_verdicts(o: &mut impl Write, r: &Report) -> io::Result<()> {
    if r.verdicts.is_empty() {
        return Ok(());
    }
    writeln!(o)?;
    writeln!(o, "Diagnosis:")?;
    for v in &r.verdicts {
        let mark = match v.severity {
            "problem" => "!",
            "ok" => "✓",
            _ => "-",
        };
        writeln!(o, "  {mark} {}", v.summary)?;
        if let Some(fix) = &v.fix {
            writeln!(o, "      fix: {fix}")?;
        }
    }
    let c = &r.facts.cpu;
    if let (Some(g), Some(source)) = (c.gomaxprocs, &c.gomaxprocs_source) {
        let quota = c.quota_cpus.map_or_else(
            || "no CPU quota".to_owned(),
            |q| format!("CPU quota {q:.2}"),
        );
        writeln!(
            o,
            "  GOMAXPROCS {g} ({source}); {quota}; {} CPUs; default here: {}",
            c.affinity_cpus
                .map_or_else(|| "?".to_owned(), |n| n.to_string()),
            c.default_rule.as_deref().unwrap_or("?")
        )?;
    }
    Ok(())
}

/// vDSO fallbacks: only printed when there are some, or when the process
/// facts show a setup that forces them.
fn write_vdso(o: &mut impl Write, v: &super::vdso::VdsoSection) -> io::Result<()> {
    let f = &v.facts;
    let runtime_off = f.runtime_clock_gettime_sym == Some(0);
    let clocksource_bad = f.clocksource_vdso_capable == Some(false);
    if v.fallbacks.is_empty() && !runtime_off && !clocksource_bad {
        return Ok(());
    }
    writeln!(o)?;
    writeln!(
        o,
        "vDSO fallbacks: {} real syscalls of calls the vDSO serves (≈{} per second in the kernel)",
        v.total_calls,
        human_ns(v.est_cost_ns_per_second as u64)
    )?;
    let mapping = match f.mapping {
        Some((start, end)) => format!("[vdso] at {start:#x}-{end:#x}"),
        None => "no [vdso] mapping".to_owned(),
    };
    let clocksource = match (&f.clocksource, f.clocksource_vdso_capable) {
        (Some(c), Some(true)) => format!("clocksource {c} (readable by the vDSO)"),
        (Some(c), Some(false)) => {
            format!("clocksource {c} (NOT readable by the vDSO: every clock read is a syscall)")
        }
        (Some(c), None) => format!("clocksource {c}"),
        (None, _) => "clocksource unknown".to_owned(),
    };
    let runtime = match f.runtime_clock_gettime_sym {
        Some(0) => "; runtime.vdsoClockgettimeSym = 0: the Go runtime has no vDSO".to_owned(),
        Some(addr) => format!("; runtime.vdsoClockgettimeSym = {addr:#x}"),
        None => String::new(),
    };
    writeln!(o, "  {mapping}, {clocksource}{runtime}")?;
    for row in v.fallbacks.iter().take(10) {
        let what = match &row.clock {
            Some(clock) => format!("{}({clock})", row.syscall),
            None => row.syscall.clone(),
        };
        let site = row
            .call_site
            .as_ref()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        writeln!(
            o,
            "  {:>10} {:<40} {:>9.0}/s at {site}: {}",
            row.calls, what, row.calls_per_second, row.why
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_ns(999), "999ns");
        assert_eq!(human_ns(1_500), "1.50µs");
        assert_eq!(human_ns(20_100_000), "20.10ms");
        assert_eq!(human_ns(3_000_000_000), "3.00s");
    }

    #[test]
    fn renders_table_histogram_threads_and_losses() {
        let mut out = Vec::new();
        TextSink::new(&mut out)
            .write(&crate::report::tests::sample())
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("run pid 42 (demo)"), "{text}");
        let row = text.lines().find(|l| l.starts_with("pread64")).unwrap();
        assert!(row.split_whitespace().nth(1) == Some("4"), "{row}");
        assert!(text.contains("pread64 latency (4 calls):"));
        assert!(text.contains("1 spawned"));
        assert!(text.contains("events: 0 lost"));
    }
}
