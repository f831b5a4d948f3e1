//! The report: one value built from the model, rendered by several sinks
//! (`text`, `json`). Every sink renders the same [`Report`], so what the text
//! shows and what the JSON holds cannot drift apart.

pub mod diagnosis;
pub mod json;
pub mod text;
pub mod vdso;

use std::io;

use serde::Serialize;

use crate::{
    facts::Facts,
    gobin::{
        SymbolsSource,
        symbolize::{Frame, Symbolizer, call_site as call_site_of},
    },
    model::{LossCounters, Model, SyscallStats},
    syscall_names,
};

/// Version of the JSON schema (see [`json`]); bumped on incompatible changes.
pub const SCHEMA: &str = "gotracer.report/1";

/// How many syscalls get a latency histogram drawn in the text report.
const TOP_HISTOGRAMS: usize = 3;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub target: TargetInfo,
    /// Wall-clock time the probes were live, in seconds.
    pub traced_seconds: f64,
    /// Sorted by total time in the syscall, largest first.
    pub syscalls: Vec<SyscallRow>,
    pub threads: ThreadRow,
    pub events: EventsRow,
    /// Present when the target is a Go program.
    pub go: Option<GoRow>,
    /// Slow or P-losing calls by call site, most total time first.
    pub blocking: Vec<BlockingRow>,
    /// Threads ended because a goroutine exited while locked to them, by
    /// the `runtime.LockOSThread` call that locked them.
    pub lockosthread_leaks: Vec<LeakRow>,
    /// Spawned threads by the reason the runtime created them.
    pub threads_by_cause: Vec<CauseRow>,
    /// Real syscalls of calls the vDSO normally serves.
    pub vdso: vdso::VdsoSection,
    /// What was read about the process outside the probes: limits, CPU
    /// quota and GOMAXPROCS, sockets, thread samples.
    pub facts: Facts,
    /// The diagnosis in plain words, with the fix.
    pub verdicts: Vec<diagnosis::Verdict>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CauseRow {
    /// e.g. "syscall handoff (sysmon retake)", "LockOSThread (template thread)".
    pub cause: String,
    pub threads: u64,
    /// For syscall handoffs: the syscall whose P was handed off, and where
    /// it was made (matched by time: the call that was in progress, and lost
    /// its P, when the runtime decided to start the thread).
    pub syscall: Option<String>,
    pub call_site: Option<Frame>,
}

/// Why the runtime wanted a new M, from the symbolized `newm1` stack.
fn classify(stack: &[Frame]) -> String {
    let has = |prefix: &str| stack.iter().any(|f| f.function.starts_with(prefix));
    let cause = if has("runtime.retake") {
        "syscall handoff (sysmon retake)"
    } else if has("runtime.entersyscallblock") {
        "syscall handoff (blocking syscall)"
    } else if has("runtime.stoplockedm") {
        "locked goroutine blocked (LockOSThread)"
    } else if has("runtime.templateThread") || has("runtime.startTemplateThread") {
        "LockOSThread (template thread)"
    } else if has("runtime.forEachP") || has("runtime.startTheWorld") || has("runtime.gc") {
        "garbage collector"
    } else if has("runtime.wakep") {
        "runnable work (spinning M)"
    } else if has("runtime.main") || has("runtime.rt0_go") {
        "start-up (sysmon, first workers)"
    } else {
        return format!(
            "other runtime path ({})",
            stack.first().map_or("?", |f| f.function.as_str())
        );
    };
    cause.to_owned()
}

fn cause_rows(model: &Model, sym: &Symbolizer) -> Vec<CauseRow> {
    cause_rows_since(model, sym, 0)
}

/// Thread causes of the spawns from index `first` on (a live view's latest
/// interval).
pub fn cause_rows_since(model: &Model, sym: &Symbolizer, first: usize) -> Vec<CauseRow> {
    let mut used = vec![false; model.lost_calls.len()];
    let mut rows: Vec<CauseRow> = Vec::new();
    for spawn in model.spawns.iter().skip(first) {
        let (cause, syscall, call_site) = match &spawn.newm {
            Some((ts, frames)) => {
                let stack = sym.entry_stack(frames);
                let mut cause = classify(&stack);
                let mut syscall = None;
                let mut call_site = None;
                if cause.starts_with("syscall handoff") {
                    // The call in progress when the runtime decided to
                    // start the thread; failing that (a cgo call loses its
                    // P while in C, maybe between two syscalls), the
                    // nearest P-losing call within 5 ms.
                    let distance = |c: &crate::model::LostCall| {
                        if *ts < c.start_ns {
                            c.start_ns - *ts
                        } else {
                            ts.saturating_sub(c.end_ns)
                        }
                    };
                    let found = model
                        .lost_calls
                        .iter()
                        .enumerate()
                        .filter(|(i, c)| !used[*i] && distance(c) <= 5_000_000)
                        .min_by_key(|(_, c)| distance(c));
                    if let Some((i, call)) = found {
                        used[i] = true;
                        if call.cgo {
                            cause = cause.replace("syscall handoff", "cgo call handoff");
                        }
                        syscall = Some(syscall_names::name(call.site.sysno));
                        call_site = call_site_of(&sym.syscall_stack(&call.site.frames));
                    }
                }
                (cause, syscall, call_site)
            }
            None if sym.binary.cgo => (
                "C code (pthread_create outside the Go runtime)".to_owned(),
                None,
                None,
            ),
            None => ("unknown (no runtime newm seen)".to_owned(), None, None),
        };
        match rows
            .iter_mut()
            .find(|r| r.cause == cause && r.syscall == syscall && r.call_site == call_site)
        {
            Some(row) => row.threads += 1,
            None => rows.push(CauseRow {
                cause,
                threads: 1,
                syscall,
                call_site,
            }),
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.threads));
    rows
}

#[derive(Clone, Debug, Serialize)]
pub struct LeakRow {
    /// The function that called `runtime.LockOSThread` (the first frame
    /// outside the runtime).
    pub call_site: Option<Frame>,
    pub threads: u64,
    pub goroutines: u64,
    pub stack: Vec<Frame>,
}

fn leak_rows(model: &Model, sym: &Symbolizer) -> Vec<LeakRow> {
    let mut rows: Vec<LeakRow> = Vec::new();
    for (frames, (threads, goroutines)) in &model.lock_leaks {
        let stack = sym.entry_stack(frames);
        let call_site = call_site_of(&stack);
        match rows.iter_mut().find(|r| r.call_site == call_site) {
            Some(row) => {
                row.threads += threads;
                row.goroutines += goroutines.len() as u64;
            }
            None => rows.push(LeakRow {
                call_site,
                threads: *threads,
                goroutines: goroutines.len() as u64,
                stack,
            }),
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.threads));
    rows
}

#[derive(Clone, Debug, Serialize)]
pub struct GoRow {
    pub version: String,
    pub symbols: SymbolsSource,
    pub cgo: bool,
    /// Ps seen in use (the highest P id seen + 1): GOMAXPROCS is at least
    /// this; 0 when no call long enough to read it was seen.
    pub ps_seen: u64,
    /// Whether goroutines and P handoffs are read (a known Go release).
    pub attribution: bool,
    /// Calls at least this long are listed by call site (as are calls that
    /// lost their P).
    pub slow_threshold_ns: u64,
    /// Calls during which the goroutine's P was taken, by syscall.
    pub p_handoffs: Vec<HandoffRow>,
    /// P handoffs from syscalls by who took the P: sysmon's retake, a
    /// blocking syscall handing off its own P, the GC's forEachP, and the
    /// rest (steal-back by an exiting goroutine, stop-the-world), which
    /// does not go through handoffp and is counted as the difference.
    pub handoff_causes: Vec<HandoffCauseRow>,
    /// Syscall exits on the slow path (no P), and those not tied to a
    /// reported call.
    pub slow_exits: u64,
    pub slow_exits_unattributed: u64,
    /// Slow calls the runtime made on its own system stack (sysmon's
    /// sleeps, idle threads parking): no goroutine waited on them.
    pub runtime_slow: Vec<RuntimeRow>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuntimeRow {
    pub syscall: String,
    pub calls: u64,
    pub total_ns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct HandoffCauseRow {
    pub cause: String,
    pub handoffs: u64,
}

/// Causes of P handoffs from syscalls, as named in the report.
pub const CAUSE_SYSMON: &str = "sysmon retake";
pub const CAUSE_BLOCKING: &str = "blocking syscall (entersyscallblock)";
pub const CAUSE_GC_FOREACHP: &str = "GC (forEachP)";
pub const CAUSE_STW: &str = "stop-the-world";
pub const CAUSE_STW_ENTERED: &str = "stop-the-world (syscall entered during it)";
pub const CAUSE_STEAL_BACK: &str = "steal-back by an exiting goroutine";

/// Splits the P handoffs from syscalls by who took the P (see
/// [`GoRow::handoff_causes`]): each `handoffp` from a taker of syscall Ps
/// claims the P-losing call in progress on that P (sysmon, a blocking
/// syscall, the GC's forEachP); an unclaimed call that spans a
/// stop-the-world lost its P to it; the rest were stolen back by another
/// goroutine leaving its syscall, which does not go through handoffp.
fn handoff_causes(model: &Model, sym: &Symbolizer) -> Vec<HandoffCauseRow> {
    if !model.p_taken.is_empty() {
        return handoff_causes_recorded(model, sym);
    }
    let total: u64 = model.p_lost.values().sum();
    let mut by_cause: Vec<HandoffCauseRow> = Vec::new();
    let mut add = |cause: &str, n: u64| match by_cause.iter_mut().find(|r| r.cause == cause) {
        Some(r) => r.handoffs += n,
        None if n > 0 => by_cause.push(HandoffCauseRow {
            cause: cause.to_owned(),
            handoffs: n,
        }),
        None => {}
    };
    let mut cause_of = std::collections::HashMap::new();
    let mut taker = |caller: u64| -> Option<&'static str> {
        *cause_of.entry(caller).or_insert_with(|| {
            let function = sym
                .frame(caller, true)
                .map(|f| f.function)
                .unwrap_or_default();
            if function == "runtime.retake" {
                Some(CAUSE_SYSMON)
            } else if function.starts_with("runtime.entersyscallblock") {
                Some(CAUSE_BLOCKING)
            } else if function.starts_with("runtime.forEachP") {
                Some(CAUSE_GC_FOREACHP)
            } else {
                None // not a syscall's P (stoplockedm, exitsyscall, ...)
            }
        })
    };
    let mut claimed = vec![false; model.lost_calls.len()];
    let mut handoffs: Vec<&crate::model::Handoff> = model.handoffs.iter().collect();
    handoffs.sort_by_key(|h| h.ts_ns);
    let mut explained = 0;
    for h in handoffs {
        let Some(cause) = taker(h.caller) else {
            continue;
        };
        add(cause, 1);
        explained += 1;
        // The call in progress on that P (any P when either id is unknown).
        let victim = model.lost_calls.iter().enumerate().position(|(i, c)| {
            !claimed[i]
                && c.start_ns <= h.ts_ns
                && h.ts_ns <= c.end_ns
                && (c.p_id.is_none() || h.p_id.is_none() || c.p_id == h.p_id)
        });
        if let Some(i) = victim {
            claimed[i] = true;
        }
    }
    // Handoffs past the kept list's cap are counted by caller only.
    let listed = model.handoffs.len() as u64;
    let all: u64 = model.handoffs_by_caller.values().sum();
    if all > listed {
        for (&caller, &n) in &model.handoffs_by_caller {
            if let Some(cause) = taker(caller) {
                let share = n * (all - listed) / all.max(1);
                add(cause, share);
                explained += share;
            }
        }
    }
    // Stop-the-worlds take every P still in a syscall. When the kernel
    // listed those Ps as the world stopped (binaries with symbols), that
    // count is exact; otherwise an unclaimed call in its syscall when the
    // world stopped is taken to have lost its P to it (of several on one P,
    // the latest to enter: the others lost that P before). A call that
    // entered its syscall during a stop gave its P up itself (gcwait).
    let ps_listed =
        !model.stw_windows.is_empty() && model.stw_windows.iter().all(|w| w.syscall_ps.is_some());
    let mut stw: u64 = if ps_listed {
        model
            .stw_windows
            .iter()
            .map(|w| u64::from(w.syscall_ps.unwrap_or(0).count_ones()))
            .sum()
    } else {
        0
    };
    let mut stw_entered = 0u64;
    let unclaimed = || {
        model
            .lost_calls
            .iter()
            .zip(&claimed)
            .filter(|(_, c)| !**c)
            .map(|(call, _)| call)
    };
    let mut victims: std::collections::HashSet<(usize, u32)> = std::collections::HashSet::new();
    for c in unclaimed() {
        for (w, win) in model.stw_windows.iter().enumerate() {
            let (start, end) = (win.start_ns, win.end_ns);
            if c.start_ns <= start && start <= c.end_ns {
                if !ps_listed {
                    let later_on_p = |p| {
                        unclaimed().any(|o| {
                            o.p_id == Some(p)
                                && o.start_ns > c.start_ns
                                && o.start_ns <= start
                                && start <= o.end_ns
                        })
                    };
                    let victim = match c.p_id {
                        Some(p) => !later_on_p(p) && victims.insert((w, p)),
                        None => true,
                    };
                    stw += u64::from(victim);
                }
                break;
            }
            if start < c.start_ns && c.start_ns <= end {
                stw_entered += 1;
                break;
            }
        }
    }
    let rest = total.saturating_sub(explained);
    let stw = stw.min(rest);
    let stw_entered = stw_entered.min(rest - stw);
    add(CAUSE_STW, stw);
    add(CAUSE_STW_ENTERED, stw_entered);
    add(CAUSE_STEAL_BACK, rest - stw - stw_entered);
    by_cause.sort_by_key(|r| std::cmp::Reverse(r.handoffs));
    by_cause
}

/// Go 1.26+: the causes as the runtime recorded them, one
/// `syscallingThread.releaseP` per P taken from a syscall (plus the
/// blocking syscalls that hand their own P off through handoffp).
fn handoff_causes_recorded(model: &Model, sym: &Symbolizer) -> Vec<HandoffCauseRow> {
    let mut rows: Vec<HandoffCauseRow> = Vec::new();
    let mut add = |cause: String, n: u64| match rows.iter_mut().find(|r| r.cause == cause) {
        Some(r) => r.handoffs += n,
        None => rows.push(HandoffCauseRow { cause, handoffs: n }),
    };
    let function = |caller: u64| {
        sym.frame(caller, true)
            .map(|f| f.function)
            .unwrap_or_default()
    };
    for (&(caller, new_state), &n) in &model.p_taken {
        let f = function(caller);
        let cause = if new_state == 3 || f.contains("gcstopP") {
            CAUSE_STW.to_owned()
        } else if f == "runtime.retake" {
            CAUSE_SYSMON.to_owned()
        } else if f.starts_with("runtime.exitsyscall") {
            CAUSE_STEAL_BACK.to_owned()
        } else if f.starts_with("runtime.forEachP") {
            CAUSE_GC_FOREACHP.to_owned()
        } else {
            format!("other ({f})")
        };
        add(cause, n);
    }
    for (&caller, &n) in &model.handoffs_by_caller {
        if function(caller).starts_with("runtime.entersyscallblock") {
            add(CAUSE_BLOCKING.to_owned(), n);
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.handoffs));
    rows
}

#[derive(Clone, Debug, Serialize)]
pub struct HandoffRow {
    pub syscall: String,
    pub p_handoffs: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BlockingRow {
    pub syscall: String,
    /// The first frame outside the runtime and syscall plumbing.
    pub call_site: Option<Frame>,
    pub calls: u64,
    pub goroutines: u64,
    pub total_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub p_handoffs: u64,
    /// Calls that exited on the slow path: no P was free, so the goroutine
    /// was queued and its thread parked.
    pub slow_exits: u64,
    /// A cgo call: the syscall was made by C code, and the call site is
    /// the Go code that called into C.
    pub cgo: bool,
    /// The symbolized user stack, innermost first.
    pub stack: Vec<Frame>,
}

/// What the report needs to know about a Go target.
pub struct GoContext<'a> {
    pub symbolizer: &'a Symbolizer,
    pub attribution: bool,
    pub slow_ns: u64,
}

/// Groups the model's call sites by symbolized call site and syscall.
fn blocking_rows(model: &Model, sym: &Symbolizer) -> Vec<BlockingRow> {
    use std::collections::HashMap;
    /// (syscall, cgo, call site) → the row and its merged histogram.
    type Rows = HashMap<(u32, bool, Option<Frame>), (BlockingRow, hdrhistogram::Histogram<u64>)>;
    let mut rows: Rows = HashMap::new();
    for (key, site) in &model.sites {
        let stack = sym.syscall_stack(&key.frames);
        let call_site = call_site_of(&stack);
        let entry = rows
            .entry((key.sysno, site.cgo, call_site.clone()))
            .or_insert_with(|| {
                let row = BlockingRow {
                    syscall: syscall_names::name(key.sysno),
                    call_site,
                    calls: 0,
                    goroutines: 0,
                    total_ns: 0,
                    p99_ns: 0,
                    max_ns: 0,
                    p_handoffs: 0,
                    slow_exits: 0,
                    cgo: site.cgo,
                    stack,
                };
                (row, site.histogram.clone())
            });
        let (row, hist) = entry;
        if row.calls > 0 {
            let _ = hist.add(&site.histogram);
        }
        row.calls += site.calls;
        row.goroutines += site.goroutines.len() as u64;
        row.total_ns += site.total_ns;
        row.max_ns = row.max_ns.max(site.max_ns);
        row.p_handoffs += site.p_lost;
        row.slow_exits += site.slow_exits;
    }
    let mut out: Vec<BlockingRow> = rows
        .into_values()
        .map(|(mut row, hist)| {
            row.p99_ns = hist.value_at_quantile(0.99).min(row.max_ns);
            row
        })
        .collect();
    out.sort_by_key(|r| std::cmp::Reverse(r.total_ns));
    out
}

#[derive(Clone, Debug, Serialize)]
pub struct TargetInfo {
    pub pid: u32,
    pub command: String,
    /// "run", "attach" or "threads".
    pub mode: &'static str,
    /// Whether the process exited while traced.
    pub exited: bool,
    /// Exit code (or 128 + signal) when it exited and it was our child.
    pub exit_code: Option<i32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SyscallRow {
    pub name: String,
    pub number: u32,
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub mean_ns: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub p999_ns: u64,
    pub max_ns: u64,
    /// Log2 latency buckets: `[low_ns, high_ns)` and a count, empty ones
    /// left out.
    pub histogram: Vec<HistogramBucket>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct HistogramBucket {
    pub low_ns: u64,
    pub high_ns: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThreadRow {
    pub at_start: u64,
    /// Threads alive at the end: read from /proc when the process still
    /// runs, 0 when it exited.
    pub at_end: u64,
    pub peak: u64,
    pub spawned: u64,
    pub exited: u64,
    pub exited_at_process_exit: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventsRow {
    /// Calls or thread changes missing from this report (sum of the causes
    /// below except `unmatched_exits`).
    pub lost: u64,
    pub ringbuf_full: u64,
    pub inflight_collisions: u64,
    pub undecodable: u64,
    pub unknown_syscalls: u64,
    /// Syscalls that began before the probes were attached: their exit was
    /// seen, their duration is unknown, and they are not in the counts.
    pub unmatched_exits: u64,
}

impl From<&LossCounters> for EventsRow {
    fn from(l: &LossCounters) -> Self {
        Self {
            lost: l.lost(),
            ringbuf_full: l.ringbuf_full,
            inflight_collisions: l.inflight_collisions,
            undecodable: l.undecodable,
            unknown_syscalls: l.unknown_syscalls,
            unmatched_exits: l.unmatched_exits,
        }
    }
}

impl SyscallRow {
    fn new(number: u32, s: &SyscallStats) -> Self {
        let h = &s.histogram;
        // Bucketed values can sit a hair above the exact maximum: clamp.
        let q = |q: f64| {
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q).min(s.max_ns.max(1))
            }
        };
        Self {
            name: syscall_names::name(number),
            number,
            calls: s.calls,
            errors: s.errors,
            total_ns: s.total_ns,
            mean_ns: s.total_ns.checked_div(s.calls).unwrap_or(0),
            p50_ns: q(0.50),
            p90_ns: q(0.90),
            p99_ns: q(0.99),
            p999_ns: q(0.999),
            max_ns: s.max_ns,
            histogram: log2_buckets(h),
        }
    }
}

/// Re-buckets an HdrHistogram into power-of-two buckets for display.
fn log2_buckets(h: &hdrhistogram::Histogram<u64>) -> Vec<HistogramBucket> {
    let mut out: Vec<HistogramBucket> = Vec::new();
    for v in h.iter_recorded() {
        let value = h.median_equivalent(v.value_iterated_to()).max(1);
        let exp = 63 - value.leading_zeros();
        let low = 1u64 << exp;
        let count = v.count_at_value();
        match out.last_mut() {
            Some(last) if last.low_ns == low => last.count += count,
            _ => out.push(HistogramBucket {
                low_ns: low,
                high_ns: low << 1,
                count,
            }),
        }
    }
    out
}

impl Report {
    pub fn build(
        model: &Model,
        target: TargetInfo,
        traced_seconds: f64,
        threads_at_end: u64,
        go: Option<GoContext<'_>>,
        facts: &Facts,
    ) -> Self {
        let mut syscalls: Vec<SyscallRow> = model
            .syscalls
            .iter()
            .filter(|(_, s)| s.calls > 0)
            .map(|(&n, s)| SyscallRow::new(n, s))
            .collect();
        syscalls.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(b.calls.cmp(&a.calls)));
        let t = &model.threads;
        let mut report = Self {
            schema: SCHEMA,
            target,
            traced_seconds,
            syscalls,
            threads: ThreadRow {
                at_start: t.at_start,
                at_end: threads_at_end,
                peak: t.peak,
                spawned: t.spawned,
                exited: t.exited,
                exited_at_process_exit: t.exited_at_process_exit,
            },
            events: EventsRow::from(&model.losses),
            blocking: go
                .as_ref()
                .map(|g| blocking_rows(model, g.symbolizer))
                .unwrap_or_default(),
            lockosthread_leaks: go
                .as_ref()
                .map(|g| leak_rows(model, g.symbolizer))
                .unwrap_or_default(),
            threads_by_cause: go
                .as_ref()
                .filter(|g| g.attribution)
                .map(|g| cause_rows(model, g.symbolizer))
                .unwrap_or_default(),
            vdso: vdso::VdsoSection::build(
                model,
                facts.vdso.clone(),
                go.as_ref().map(|g| g.symbolizer),
                traced_seconds,
            ),
            facts: facts.clone(),
            verdicts: Vec::new(),
            go: go.map(|g| {
                let bin = &g.symbolizer.binary;
                GoRow {
                    version: bin.build.raw_version.clone(),
                    symbols: bin.symbols,
                    cgo: bin.cgo,
                    ps_seen: model.max_p_id.map_or(0, |id| u64::from(id) + 1),
                    attribution: g.attribution,
                    slow_threshold_ns: g.slow_ns,
                    p_handoffs: model
                        .p_lost
                        .iter()
                        .map(|(&n, &c)| HandoffRow {
                            syscall: syscall_names::name(n),
                            p_handoffs: c,
                        })
                        .collect(),
                    handoff_causes: handoff_causes(model, g.symbolizer),
                    slow_exits: model.slow_exits,
                    slow_exits_unattributed: model.slow_exits_unattributed,
                    runtime_slow: model
                        .runtime_slow
                        .iter()
                        .map(|(&n, &(calls, total_ns))| RuntimeRow {
                            syscall: syscall_names::name(n),
                            calls,
                            total_ns,
                        })
                        .collect(),
                }
            }),
        };
        report.verdicts = diagnosis::diagnose(&report, facts);
        report
    }
}

/// Something that renders a report: the text table, JSON, and later flame
/// graphs, Perfetto timelines or Prometheus metrics.
pub trait Sink {
    fn write(&mut self, report: &Report) -> io::Result<()>;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::model::Event;

    /// A small report from a synthetic event stream, shared by sink tests.
    pub fn sample() -> Report {
        let mut model = Model::new(1);
        for (i, d) in [1_000u64, 2_000, 3_000, 50_000].iter().enumerate() {
            model.apply(&Event::Syscall {
                tid: 1,
                ts_ns: i as u64,
                sysno: 17,
                ret: 64,
                duration_ns: *d,
            });
        }
        model.apply(&Event::Syscall {
            tid: 1,
            ts_ns: 9,
            sysno: 257,
            ret: -2,
            duration_ns: 4_000,
        });
        model.apply(&Event::ThreadSpawn {
            parent_tid: 1,
            tid: 2,
            ts_ns: 1,
            during_group_exit: false,
        });
        let target = TargetInfo {
            pid: 42,
            command: "demo".into(),
            mode: "run",
            exited: true,
            exit_code: Some(0),
        };
        Report::build(&model, target, 1.5, 0, None, &Facts::default())
    }

    #[test]
    fn rows_are_sorted_by_total_time_and_carry_percentiles() {
        let r = sample();
        assert_eq!(r.syscalls[0].name, "pread64");
        assert_eq!(r.syscalls[0].calls, 4);
        assert_eq!(r.syscalls[0].mean_ns, 14_000);
        assert!(r.syscalls[0].p50_ns.abs_diff(2_000) <= 2);
        assert!(r.syscalls[0].max_ns == 50_000);
        assert_eq!(r.syscalls[1].name, "openat");
        assert_eq!(r.syscalls[1].errors, 1);
        let total: u64 = r.syscalls[0].histogram.iter().map(|b| b.count).sum();
        assert_eq!(total, 4);
        assert_eq!(r.threads.spawned, 1);
    }
}
