//! The human-readable report: the diagnosis first, then a `strace -c`-like
//! table of the program's calls with percentiles and errors by errno, the
//! runtime's idle waits apart, latency histograms, the Go runtime section
//! (P handoffs reconciled, slow exits), blocking by call site with the top
//! frames, thread spawns by cause, leaks, vDSO fallbacks, and the thread
//! and loss lines (always printed, so a clean run says "0 lost"). One
//! function per section; every figure comes from the [`Report`].

use std::io::{self, Write};

use super::{RecordingState, Report, Sink, TOP_HISTOGRAMS};
use crate::{analysis::verdicts::Severity, units::human_ns};

pub struct TextSink<W: Write> {
    out: W,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn write(&mut self, r: &Report) -> io::Result<()> {
        let o = &mut self.out;
        header(o, r)?;
        verdicts(o, r)?;
        syscalls(o, r)?;
        idle(o, r)?;
        histograms(o, r)?;
        go_runtime(o, r)?;
        blocking(o, r)?;
        spawns(o, r)?;
        leaks(o, r)?;
        vdso(o, r)?;
        threads_and_events(o, r)?;
        processes(o, r)?;
        o.flush()
    }
}

fn header(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let t = &r.target;
    let ending = match (t.exited, t.exit_code) {
        (true, Some(code)) => format!(", process exited with code {code}"),
        (true, None) => ", process exited".to_owned(),
        (false, _) => ", detached (process still running)".to_owned(),
    };
    let mode = serde_json::to_value(t.mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    writeln!(
        o,
        "tracer: {mode} pid {} ({}) for {:.2}s{ending}",
        t.pid, t.command, r.traced_seconds
    )?;
    recording(o, r)
}

/// A report of a recording that is not whole says so under its header.
fn recording(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let Some(rec) = &r.recording else {
        return Ok(());
    };
    let at = rec.cut_at_byte.unwrap_or(0);
    match rec.state {
        RecordingState::Complete => {}
        RecordingState::Truncated => writeln!(
            o,
            "recording cut short at byte {at} (the recorder was killed or stopped mid-trace): \
             this report holds its first {:.2}s, how the process ended is unknown",
            r.traced_seconds
        )?,
        RecordingState::Corrupt => writeln!(
            o,
            "recording corrupt from byte {at} ({}): this report holds what came before it",
            rec.why.as_deref().unwrap_or("undecodable")
        )?,
    }
    if let Some(limit) = &rec.size_limit {
        writeln!(o, "{limit}")?;
    }
    Ok(())
}

/// The diagnosis first: what a reader needs in seconds.
fn verdicts(o: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(o)?;
    writeln!(o, "Diagnosis:")?;
    if r.verdicts.is_empty() {
        writeln!(
            o,
            "  - no verdict: nothing traced reached a verdict's threshold"
        )?;
    } else {
        for v in &r.verdicts {
            let mark = match v.severity {
                Severity::Problem => "!",
                Severity::Warning => "!",
                Severity::Ok => "✓",
                Severity::Info => "-",
            };
            writeln!(o, "  {mark} {}", v.summary)?;
            if let Some(fix) = &v.fix {
                writeln!(o, "      fix: {fix}")?;
            }
        }
    }
    let c = &r.facts.cpu;
    if let Some(g) = c.gomaxprocs.value() {
        let source = match &c.gomaxprocs {
            crate::facts::Fact::Known { source, .. } => source.as_str(),
            crate::facts::Fact::Unknown { .. } => "",
        };
        let quota = c.quota_cpus.map_or_else(
            || "no CPU quota".to_owned(),
            |q| format!("CPU quota {q:.2}"),
        );
        writeln!(
            o,
            "  GOMAXPROCS {g} ({source}); {quota}; {} CPUs; default here: {}",
            c.affinity_cpus
                .map_or_else(|| "unknown".to_owned(), |n| n.to_string()),
            c.default_rule.as_deref().unwrap_or("unknown")
        )?;
    }
    Ok(())
}

const SYSCALL_HEADER: [&str; 10] = [
    "syscall", "calls", "errors", "total", "mean", "p50", "p90", "p99", "p99.9", "max",
];

fn syscalls(o: &mut impl Write, r: &Report) -> io::Result<()> {
    writeln!(o)?;
    let h = SYSCALL_HEADER;
    writeln!(
        o,
        "{:<18} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  errors by errno",
        h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]
    )?;
    for s in &r.syscalls {
        let errnos: Vec<String> = s
            .errors_by_errno
            .iter()
            .take(4)
            .map(|e| format!("{} {}", e.errno, e.calls))
            .collect();
        writeln!(
            o,
            "{:<18} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}",
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
            errnos.join(", ")
        )?;
    }
    let t = &r.totals;
    writeln!(
        o,
        "{:<18} {:>10} {:>8} {:>10}",
        "total",
        t.program.calls,
        t.program.errors,
        human_ns(t.program.total_ns)
    )
}

fn idle(o: &mut impl Write, r: &Report) -> io::Result<()> {
    if r.idle_waits.is_empty() {
        return Ok(());
    }
    let t = &r.totals;
    writeln!(o)?;
    writeln!(
        o,
        "The Go runtime's idle waits (no goroutine waits on these; calls of {} or more, sched_yield all): {} calls, {}",
        human_ns(t.idle_classified_from_ns),
        t.idle.calls,
        human_ns(t.idle.total_ns)
    )?;
    for w in &r.idle_waits {
        let errors = if w.errors == 0 {
            String::new()
        } else {
            let by: Vec<String> = w
                .errors_by_errno
                .iter()
                .map(|e| format!("{} {}", e.errno, e.calls))
                .collect();
            format!("  errors {} ({})", w.errors, by.join(", "))
        };
        writeln!(
            o,
            "  {:<16} {:>10} calls {:>10} total  p50 {:>10}  p99 {:>10}  max {:>10}  {}{errors}",
            w.syscall,
            w.calls,
            human_ns(w.total_ns),
            human_ns(w.p50_ns),
            human_ns(w.p99_ns),
            human_ns(w.max_ns),
            w.what
        )?;
    }
    writeln!(
        o,
        "  all calls: {} = {} by the program + {} idle waits",
        t.all.calls, t.program.calls, t.idle.calls
    )
}

fn histograms(o: &mut impl Write, r: &Report) -> io::Result<()> {
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
    Ok(())
}

fn counts<K>(v: &[crate::analysis::handoffs::Count<K>], label: impl Fn(&K) -> String) -> String {
    v.iter()
        .map(|c| format!("{} {}", label(&c.key), c.count))
        .collect::<Vec<_>>()
        .join(", ")
}

fn go_runtime(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let Some(go) = &r.go else {
        return Ok(());
    };
    writeln!(o)?;
    let symbols = match go.symbols {
        crate::gobin::SymbolsSource::Symtab => "symtab",
        crate::gobin::SymbolsSource::Pclntab => "pclntab (stripped)",
    };
    let gomaxprocs = match (r.facts.cpu.gomaxprocs.value(), go.ps_seen) {
        (Some(n), Some(seen)) => format!(", GOMAXPROCS {n} ({seen} Ps seen in use)"),
        (Some(n), None) => format!(", GOMAXPROCS {n}"),
        (None, Some(seen)) => format!(", GOMAXPROCS unknown ({seen} Ps seen in use)"),
        (None, None) => ", GOMAXPROCS unknown".to_owned(),
    };
    writeln!(
        o,
        "Go runtime: {}, symbols from {symbols}, {}{gomaxprocs}; goroutine attribution {}",
        go.version,
        if go.cgo { "cgo" } else { "no cgo" },
        if go.attribution {
            "on"
        } else {
            "off (no offsets for this release)"
        }
    )?;
    if let Some(h) = &go.handoffs {
        if h.total > 0 {
            writeln!(
                o,
                "P taken from threads in syscalls: {} (each breakdown sums to it)",
                h.total
            )?;
            writeln!(o, "  by taker:   {}", counts(&h.by_taker, |t| t.label()))?;
            writeln!(
                o,
                "  by syscall: {}",
                counts(&h.by_syscall, |s| s
                    .clone()
                    .unwrap_or_else(|| "not in a syscall / unknown".into()))
            )?;
            let mut tied = format!("{} tied to a reported call", h.attributed_to_calls);
            if !h.unattributed.is_empty() {
                tied.push_str(&format!(
                    "; not tied: {}",
                    counts(&h.unattributed, |u| u.label().to_owned())
                ));
            }
            writeln!(o, "  calls:      {tied}")?;
        }
        if !h.own.is_empty() {
            let own: Vec<String> = h
                .own
                .iter()
                .map(|c| {
                    let mut parts = Vec::new();
                    if c.before_main > 0 {
                        parts.push(format!("{} start-up, before main.main", c.before_main));
                    }
                    if c.after_main > 0 {
                        parts.push(format!("{} after main.main began", c.after_main));
                    }
                    if c.phase_unknown > 0 {
                        parts.push(format!(
                            "{} with main.main's start not seen",
                            c.phase_unknown
                        ));
                    }
                    format!("{} {} ({})", c.key.label(), c.count, parts.join(" + "))
                })
                .collect();
            writeln!(o, "P handoffs not from syscalls: {}", own.join(", "))?;
        }
    }
    let s = &go.slow_exits;
    if s.total > 0 {
        writeln!(
            o,
            "slow syscall exits (no P free: goroutine queued, thread parked): {} = {} after a \
             reported call + {} after a cgo call lost its P in C + {} after the P was taken \
             outside the kernel + {} with no call seen",
            s.total, s.attributed, s.in_cgo_outside_syscall, s.outside_kernel, s.no_call
        )?;
    }
    Ok(())
}

fn blocking(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let Some(go) = &r.go else {
        return Ok(());
    };
    if r.blocking.is_empty() {
        return Ok(());
    }
    writeln!(o)?;
    writeln!(
        o,
        "Blocking by call site (calls >= {} or that lost their P):",
        human_ns(go.slow_threshold_ns)
    )?;
    writeln!(
        o,
        "{:<18} {:>8} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10}  waiting on",
        "syscall", "calls", "gors", "total", "p99", "max", "handoffs", "slow exits"
    )?;
    for b in r.blocking.iter().take(15) {
        let what = if b.fds.is_empty() {
            "-".to_owned()
        } else {
            b.fds
                .iter()
                .take(3)
                .map(|f| {
                    let mode = match f.netpolled {
                        Some(true) => "netpolled",
                        Some(false) if f.nonblocking => "non-blocking, not netpolled",
                        Some(false) => "blocking",
                        None => "",
                    };
                    format!("{} {} {}", f.calls, f.label, mode)
                        .trim_end()
                        .to_owned()
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let syscall = match (&b.cgo, b.cgo_unnamed) {
            (Some(_), _) | (None, true) => format!("{} [cgo]", b.syscall),
            _ => b.syscall.clone(),
        };
        writeln!(
            o,
            "{:<18} {:>8} {:>6} {:>10} {:>10} {:>10} {:>9} {:>10}  {what}",
            syscall,
            b.calls,
            b.goroutines,
            human_ns(b.total_ns),
            human_ns(b.p99_ns),
            human_ns(b.max_ns),
            b.p_handoffs,
            b.slow_exits
        )?;
        match &b.call_site {
            Some(site) => {
                for (i, f) in site.frames.iter().enumerate() {
                    let lead = if i == 0 { "at" } else { "←" };
                    writeln!(o, "    {lead} {f}")?;
                }
            }
            None => writeln!(
                o,
                "    call site unknown: {}",
                b.why_no_site.as_deref().unwrap_or("no stack")
            )?,
        }
        if let Some(c) = &b.cgo {
            let api = c
                .go_api
                .as_ref()
                .map_or_else(String::new, |a| format!(" via {a}"));
            let known = c
                .known
                .map_or_else(String::new, |k| format!(": {}", k.what()));
            writeln!(o, "    in C: {}(){api}{known}", c.c_function)?;
        }
        if !b.errors.is_empty() {
            let e: Vec<String> = b
                .errors
                .iter()
                .map(|e| format!("{} {}", e.errno, e.calls))
                .collect();
            writeln!(o, "    errors: {}", e.join(", "))?;
        }
    }
    if r.blocking.len() > 15 {
        writeln!(
            o,
            "  ... {} more call sites in the JSON report",
            r.blocking.len() - 15
        )?;
    }
    Ok(())
}

fn spawns(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let s = &r.threads_by_cause;
    if s.rows.is_empty() {
        return Ok(());
    }
    writeln!(o)?;
    writeln!(o, "{} threads spawned, by cause:", s.total)?;
    for c in &s.rows {
        let from = match (&c.syscall, &c.call_site) {
            (Some(sc), Some(site)) => format!(" from {sc} at {site}"),
            (Some(sc), None) => format!(
                " from {sc} (call site unknown: {})",
                c.why_no_site.as_deref().unwrap_or("no stack")
            ),
            (None, Some(site)) => format!(" at {site}"),
            (None, None) => String::new(),
        };
        writeln!(o, "  {:>6}  {}{from}", c.threads, c.label)?;
    }
    if s.not_kept > 0 {
        writeln!(
            o,
            "  {:>6}  not kept (list full): cause not recorded",
            s.not_kept
        )?;
    }
    Ok(())
}

fn leaks(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let l = &r.lockosthread_leaks;
    if l.total == 0 {
        return Ok(());
    }
    writeln!(o)?;
    writeln!(
        o,
        "LockOSThread leaks: {} goroutines exited while locked to their thread (unlock with \
         `defer runtime.UnlockOSThread()`):",
        l.total
    )?;
    for row in &l.rows {
        let site = match &row.call_site {
            Some(s) => format!("locked at {s}"),
            None => format!(
                "lock site unknown: {}",
                row.why_no_site.as_deref().unwrap_or("no stack")
            ),
        };
        let main = if row.main_thread > 0 {
            " (the main thread among them: wedged, not ended)"
        } else {
            ""
        };
        writeln!(
            o,
            "  {:>6} threads, {:>6} goroutines, {site}{main}",
            row.threads, row.goroutines
        )?;
    }
    Ok(())
}

/// vDSO fallbacks: only printed when there are some, or when the process
/// facts show a setup that forces them.
fn vdso(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let v = &r.vdso;
    let f = &v.facts;
    let runtime_off = f.runtime_clock_gettime_sym.value() == Some(0);
    let clocksource_bad = f.clocksource_vdso_capable == Some(false);
    if v.fallbacks.is_empty() && !runtime_off && !clocksource_bad {
        return Ok(());
    }
    writeln!(o)?;
    let never_served = v.total_calls - v.fallback_calls;
    let also = if never_served > 0 {
        format!("; {never_served} more of clocks the vDSO never serves")
    } else {
        String::new()
    };
    if v.fallback_calls > 0 {
        writeln!(
            o,
            "vDSO fallbacks: {} real syscalls of calls the vDSO serves (≈{} per second in the \
             kernel){also}",
            v.fallback_calls,
            human_ns(v.est_cost_ns_per_second as u64)
        )?;
    } else {
        writeln!(o, "vDSO fallbacks: none{also}")?;
    }
    // A rate over less than a second of tracing is no rate.
    let rates = r.traced_seconds >= 1.0;
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
    let runtime = match &f.runtime_clock_gettime_sym {
        crate::facts::Fact::Known { value: 0, .. } => {
            "; runtime.vdsoClockgettimeSym = 0: the Go runtime has no vDSO".to_owned()
        }
        crate::facts::Fact::Known { value, .. } => {
            format!("; runtime.vdsoClockgettimeSym = {value:#x}")
        }
        crate::facts::Fact::Unknown { why } => {
            format!("; runtime.vdsoClockgettimeSym unknown ({why})")
        }
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
            .map_or_else(|| "call site unknown".to_owned(), |s| format!("at {s}"));
        let rate = if rates {
            format!("{:>9.0}/s", row.calls_per_second)
        } else {
            format!("{:>11}", "")
        };
        writeln!(
            o,
            "  {:>10} {:<40} {rate} {site}: {}",
            row.calls, what, row.why
        )?;
    }
    Ok(())
}

fn threads_and_events(o: &mut impl Write, r: &Report) -> io::Result<()> {
    let th = &r.threads;
    writeln!(o)?;
    let end = match (r.target.exited, th.at_end_read) {
        (true, _) => "at end (process exited)".to_owned(),
        (false, Some(read)) => {
            format!("alive at end (the tracer detached; not exited; /proc read {read} right after)")
        }
        (false, None) => "alive at end (the tracer detached; not exited)".to_owned(),
    };
    writeln!(
        o,
        "threads: {} at start + {} spawned - {} exited while the process ran - {} ended with the \
         process = {} {end}; peak {}",
        th.at_start, th.spawned, th.exited_itself, th.ended_with_process, th.at_end, th.peak
    )?;
    let e = &r.events;
    let in_progress = if th.in_progress_at_attach_total > 0 {
        let calls: Vec<String> = th
            .in_progress_at_attach
            .iter()
            .map(|c| format!("{} {}", c.name, c.count))
            .collect();
        format!(
            "; {} calls were already in progress at attach (not timed, not in the tables: {})",
            th.in_progress_at_attach_total,
            calls.join(", ")
        )
    } else {
        String::new()
    };
    writeln!(
        o,
        "events: {} lost (ring buffer full {}, in-flight collisions {}, undecodable {}, \
         unknown syscalls {}, vDSO sites not counted {}){in_progress}",
        e.lost,
        e.ringbuf_full,
        e.inflight_collisions,
        e.undecodable,
        e.unknown_syscalls,
        e.vdso_map_full
    )?;
    if !e.ringbuf_full_by_kind.is_empty() {
        let kinds: Vec<String> = e
            .ringbuf_full_by_kind
            .iter()
            .map(|r| format!("{} {}", r.name, r.count))
            .collect();
        let lost = |name: &str| e.ringbuf_full_by_kind.iter().any(|r| r.name == name);
        let tables = if lost("syscall") {
            "some calls of syscalls without an in-kernel histogram are missing from the tables"
        } else {
            "the syscall tables are exact; these events are missing from the lists"
        };
        let threads = if lost("thread_spawn") || lost("thread_exit") {
            "; thread spawns and exits are short by the thread records"
        } else {
            ""
        };
        writeln!(
            o,
            "  ring buffer full, by record: {}: {tables}{threads}",
            kinds.join(", ")
        )?;
    }
    let problems: Vec<String> = [
        ("Go state unreadable", e.go_read_failed),
        ("Go maps full", e.go_map_full),
        ("thread searches stopped at the limit", e.victim_scan_limit),
        ("descriptors unreadable", e.fd_read_failed),
        ("stacks unreadable", e.stack_missing),
        ("vDSO stacks unreadable", e.vdso_stack_missing),
        ("histogram slots missing", e.hist_missing),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} {n}"))
    .collect();
    if !problems.is_empty() {
        writeln!(
            o,
            "kernel-side problems (details degraded, counts intact): {}",
            problems.join(", ")
        )?;
    }
    if e.no_go_context > 0 {
        writeln!(
            o,
            "slow calls outside any goroutine (no Go state to read, not a failure: threads the \
             runtime had not set up yet, the runtime's own C calls): {}",
            e.no_go_context
        )?;
    }
    Ok(())
}

/// Rows of a process's table shown in the text (the JSON has them all).
const SECTION_ROWS: usize = 6;

/// A compact section per process (`-f`), and the children not followed.
fn processes(o: &mut impl Write, r: &Report) -> io::Result<()> {
    use super::processes::{Began, SectionEndRow};
    let Some(p) = &r.processes else {
        return Ok(());
    };
    if p.children_not_followed > 0 {
        writeln!(
            o,
            "\n{} child processes not followed (use -f)",
            p.children_not_followed
        )?;
    }
    let selected = p
        .sections
        .iter()
        .any(|s| matches!(s.began, Began::GivenPid | Began::Comm | Began::Cgroup));
    if !r.target.follow_forks && !selected {
        return Ok(());
    }
    writeln!(
        o,
        "\nprocesses ({}; the Go runtime is read for the first target only): {} sections, \
         {} calls, {} errors, {} in all (the sum of the sections)",
        match (r.target.follow_forks, selected) {
            (true, true) => "-f and the targets beside the first",
            (true, false) => "-f",
            _ => "the targets beside the first",
        },
        p.sections.len(),
        p.total.calls,
        p.total.errors,
        human_ns(p.total.total_ns)
    )?;
    if p.not_followed_map_full > 0 {
        writeln!(
            o,
            "  {} child processes not followed: the kernel's map of followed processes was full",
            p.not_followed_map_full
        )?;
    }
    if p.calls_without_section.calls > 0 {
        writeln!(
            o,
            "  {} calls of processes past the sections kept",
            p.calls_without_section.calls
        )?;
    }
    for s in &p.sections {
        let began = match s.began {
            Began::Target => "the target".to_owned(),
            Began::Fork => format!("forked by {}", s.parent_pid.unwrap_or(0)),
            Began::Exec => format!(
                "exec {} (child of {})",
                s.program.as_deref().unwrap_or("?"),
                s.parent_pid
                    .map_or_else(|| "unknown".to_owned(), |p| p.to_string())
            ),
            Began::Unseen => "fork not seen".to_owned(),
            Began::GivenPid => "given with -p".to_owned(),
            Began::Comm => "by --comm".to_owned(),
            Began::Cgroup => "in --cgroup".to_owned(),
        };
        let end = match s.end {
            SectionEndRow::Exited { how: Some(how) } => format!(
                "exited ({})",
                serde_json::to_value(how)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            SectionEndRow::Exited { how: None } => "exited".to_owned(),
            SectionEndRow::Executed => "executed a new program".to_owned(),
            SectionEndRow::Running => "running at the end".to_owned(),
        };
        writeln!(
            o,
            "  pid {} {} ({began}): {} calls, {} errors, {}; threads {} spawned, peak {}; {end}",
            s.pid,
            s.command.as_deref().unwrap_or("?"),
            s.totals.calls,
            s.totals.errors,
            human_ns(s.totals.total_ns),
            s.threads.spawned,
            s.threads.peak,
        )?;
        for row in s.syscalls.iter().take(SECTION_ROWS) {
            writeln!(
                o,
                "    {:<16} {:>8} calls {:>6} errors {:>10} total {:>10} p99 {:>10} max",
                row.name,
                row.calls,
                row.errors,
                human_ns(row.total_ns),
                human_ns(row.p99_ns),
                human_ns(row.max_ns)
            )?;
        }
        if s.syscalls.len() > SECTION_ROWS {
            writeln!(
                o,
                "    ... {} more syscalls",
                s.syscalls.len() - SECTION_ROWS
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let open = text.lines().find(|l| l.starts_with("openat")).unwrap();
        assert!(open.ends_with("ENOENT 1"), "{open}");
        assert!(text.contains("pread64 latency (4 calls):"));
        assert!(text.contains("1 spawned"));
        assert!(text.contains("events: 0 lost"));
        assert!(
            text.contains("all calls: 7 = 5 by the program + 2 idle waits"),
            "{text}"
        );
    }

    #[test]
    fn threads_not_set_up_by_go_are_no_kernel_side_problem() {
        let mut r = crate::report::tests::sample();
        r.events.no_go_context = 8;
        let mut out = Vec::new();
        TextSink::new(&mut out).write(&r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("kernel-side problems"), "{text}");
        assert!(text.contains("slow calls outside any goroutine"), "{text}");
        r.events.go_read_failed = 2;
        let mut out = Vec::new();
        TextSink::new(&mut out).write(&r).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Go state unreadable 2"), "{text}");
    }
}
