//! The report: one value built from the model (what happened) and the
//! analysis (what it means), rendered by several sinks (`text`, `json`);
//! beside them, `perfetto` draws a recording as a timeline.
//! Every sink renders the same [`Report`], so what the text shows and what
//! the JSON holds cannot drift apart. Nothing here infers anything.
//!
//! The JSON form is documented by `schema.json` (JSON Schema, draft
//! 2020-12) beside this file; the tests validate every report against it.

pub mod diff;
pub mod flame;
pub mod hdrlog;
pub mod json;
pub mod perfetto;
pub mod processes;
#[cfg(test)]
mod schema_tests;
pub mod text;

use std::io;

use serde::Serialize;
use tracer_common::Counter;

use crate::{
    analysis::{
        Analysis, handoffs::Handoffs, leaks::Leaks, sites::BlockingRow, sites::ErrnoCount,
        sites::errno_counts, spawns::SpawnCauses, vdso::VdsoSection, verdicts::Verdict,
    },
    facts::Facts,
    gobin::{SymbolsSource, symbolize::Symbolizer},
    model::{
        Model,
        runtime::SlowExits,
        syscalls::{SyscallStats, Waiter},
    },
    syscall_names,
};

/// Version of the JSON schema (see `schema.json`); bumped on incompatible
/// changes.
pub const SCHEMA: &str = "gotracer.report/2";

/// The JSON Schema of the report, for consumers and tests.
pub const SCHEMA_JSON: &str = include_str!("schema.json");

/// How many syscalls get a latency histogram drawn in the text report.
const TOP_HISTOGRAMS: usize = 3;

/// How the tracer met the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Run,
    Attach,
    Threads,
    Top,
}

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct TargetInfo {
    pub pid: u32,
    pub command: String,
    pub mode: Mode,
    /// Whether the process exited while traced.
    pub exited: bool,
    /// Exit code (or 128 + signal) when it exited and it was our child.
    pub exit_code: Option<i32>,
    /// Programs the process executed while traced (past the launch itself
    /// in `run` mode).
    pub execs: u64,
    /// Their paths, in order (the first 16).
    pub executed: Vec<String>,
    /// `-f`: the target's child processes (and theirs) were followed
    /// (false in recordings of formats 1 and 2, which predate it).
    #[serde(default)]
    pub follow_forks: bool,
}

#[cfg(test)]
impl TargetInfo {
    /// A program `run` traced to its exit with status 0 (for tests).
    pub fn finished_run(pid: u32, command: &str) -> Self {
        Self {
            pid,
            command: command.into(),
            mode: Mode::Run,
            exited: true,
            exit_code: Some(0),
            execs: 0,
            executed: Vec::new(),
            follow_forks: false,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub target: TargetInfo,
    /// Wall-clock time the probes were live, in seconds.
    pub traced_seconds: f64,
    /// The calls the program made (its goroutines, or a non-Go program's
    /// threads), by total time, largest first. The Go runtime's idle waits
    /// are in `idle_waits`.
    pub syscalls: Vec<SyscallRow>,
    /// The Go runtime's idle waits (parked threads, the netpoller, sysmon,
    /// the os/signal receiver): no goroutine waits on these.
    pub idle_waits: Vec<IdleRow>,
    /// Every call: `program` + `idle` = `all`.
    pub totals: Totals,
    pub threads: ThreadRow,
    pub events: EventsRow,
    /// Present when the target is a Go program.
    pub go: Option<GoRow>,
    /// Calls reported one by one (slow, P-losing), by call site, most
    /// total time first.
    pub blocking: Vec<BlockingRow>,
    /// Spawned threads by the reason the runtime created them.
    pub threads_by_cause: SpawnCauses,
    pub lockosthread_leaks: Leaks,
    /// Real syscalls of calls the vDSO normally serves.
    pub vdso: VdsoSection,
    /// What was read about the process outside the probes.
    pub facts: Facts,
    /// The diagnosis, most severe first.
    pub verdicts: Vec<Verdict>,
    /// Present when the report is of a recording (`tracer report`): whether
    /// it is whole, and what it lacks when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recording: Option<RecordingStatus>,
    /// Present with `-f`, or when the target forked children that were not
    /// followed: a section per process and program, and their total.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub processes: Option<processes::Processes>,
}

/// What a report of a recording rests on.
#[derive(Clone, Debug, Serialize)]
pub struct RecordingStatus {
    pub format_version: u32,
    /// The tracer that recorded it.
    pub recorded_by: String,
    pub state: RecordingState,
    /// Where the readable part ends (cut or corrupt recordings).
    pub cut_at_byte: Option<u64>,
    /// Why a corrupt recording could not be read further.
    pub why: Option<String>,
    /// `--max-size` stopped the events `at_seconds` into the trace; the
    /// syscall tables are whole (the kernel's last reading was recorded)
    /// but for `calls_not_recorded`.
    pub size_limit: Option<SizeLimitStatus>,
}

impl std::fmt::Display for SizeLimitStatus {
    /// What a report of a recording that reached its bound lacks.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let events = self
            .events_not_recorded
            .map_or_else(|| "the".to_owned(), |n| n.to_string());
        write!(
            f,
            "the recording reached its --max-size ({} bytes) {:.1} s into the trace: {events} \
             events after that were not recorded; ",
            self.max_bytes, self.at_seconds
        )?;
        match self.calls_not_recorded {
            Some(0) => write!(
                f,
                "the syscall tables are whole (the kernel's last reading was)"
            ),
            Some(n) => write!(
                f,
                "the syscall tables lack {n} calls among them (streamed one by one before their \
                 syscall had an in-kernel histogram), the rest is whole"
            ),
            None => write!(
                f,
                "the syscall tables may lack calls streamed before their syscall had an \
                 in-kernel histogram"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Read to its end frame.
    Complete,
    /// No end frame: the recorder was killed or stopped mid-trace. The
    /// report holds the trace up to its last interval (`traced_seconds`).
    Truncated,
    /// A frame could not be decoded; what came before it is reported.
    Corrupt,
}

#[derive(Clone, Debug, Serialize)]
pub struct SizeLimitStatus {
    pub at_seconds: f64,
    pub max_bytes: u64,
    /// Events not recorded after the limit (`None`: unknown, the recording
    /// has no end frame).
    pub events_not_recorded: Option<u64>,
    /// Of them, syscalls streamed one by one (before their syscall had an
    /// in-kernel histogram): the syscall tables lack these calls.
    pub calls_not_recorded: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SyscallRow {
    pub name: String,
    pub number: u32,
    pub calls: u64,
    pub errors: u64,
    /// Failed calls by errno (`errors` is their sum).
    pub errors_by_errno: Vec<ErrnoCount>,
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

#[derive(Clone, Debug, Serialize)]
pub struct IdleRow {
    pub syscall: String,
    /// What waits in it: "parked threads (idle Ms)", "the netpoller"...
    pub what: &'static str,
    pub calls: u64,
    /// Failed waits (a futex woken before it slept, EAGAIN; a timed wait
    /// that timed out, ETIMEDOUT; a wait a signal interrupted, EINTR).
    pub errors: u64,
    /// Failed waits by errno (`errors` is their sum).
    pub errors_by_errno: Vec<ErrnoCount>,
    pub total_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Totals {
    pub program: Total,
    pub idle: Total,
    pub all: Total,
    /// Calls under 20 µs are not classified: the runtime's short waits are
    /// counted with the program's (sched_yield excepted: in a Go program it
    /// is always the runtime's).
    pub idle_classified_from_ns: u64,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Total {
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
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
    /// Threads alive when tracing ended: `at_start` + `spawned` −
    /// `exited_itself` − `ended_with_process`. When the tracer detached
    /// from a process still running, these threads are alive (detached
    /// from, not exited); 0 when the process exited.
    pub at_end: u64,
    /// The count /proc gave right after tracing ended, when the process
    /// still ran (`None`: it exited). It can differ from `at_end` by the
    /// threads started or ended between the probes' detach and the read.
    pub at_end_read: Option<u64>,
    /// The most threads alive at once (the probes' count, or a sample's
    /// when higher).
    pub peak: u64,
    pub spawned: u64,
    /// Threads that ended themselves while the process ran (for Go: a
    /// goroutine exited locked to them).
    pub exited_itself: u64,
    /// Threads that ended with the process (exit_group, a fatal signal,
    /// an exec).
    pub ended_with_process: u64,
    /// Calls in progress when the probes attached, by syscall: their exit
    /// was seen, their duration is unknown, and they are not in the
    /// tables. At most one per thread alive at attach.
    pub in_progress_at_attach: Vec<CountRow>,
    pub in_progress_at_attach_total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CountRow {
    pub name: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct EventsRow {
    /// Calls or events missing from this report: the sum of the causes
    /// below.
    pub lost: u64,
    pub ringbuf_full: u64,
    /// `ringbuf_full` by the kind of record lost (they add up to it). A
    /// lost `syscall` record is a call missing from the tables (a syscall
    /// not yet given an in-kernel histogram is streamed per call); the
    /// other kinds are events, and the aggregates stay exact.
    pub ringbuf_full_by_kind: Vec<CountRow>,
    pub inflight_collisions: u64,
    pub undecodable: u64,
    pub unknown_syscalls: u64,
    pub vdso_map_full: u64,
    /// What the kernel programs could not do, for anything above (not
    /// losses of calls; each explained in `tracer_common::Counter`).
    pub hist_missing: u64,
    pub vdso_stack_missing: u64,
    pub go_read_failed: u64,
    /// Not a failure: slow calls made outside any goroutine's context,
    /// reported without Go state: on threads the Go runtime had not set up
    /// yet (the process's start before the runtime's first `g`, a new
    /// thread before `minit`, a thread C created), or in C code the runtime
    /// called itself outside a cgo call (a cgo binary's `_cgo_init`, its
    /// thread creation).
    pub no_go_context: u64,
    pub go_map_full: u64,
    pub victim_scan_limit: u64,
    pub fd_read_failed: u64,
    pub stack_missing: u64,
    /// Syscall exits whose entry was not seen, in all (the kernel's count)
    /// and why: the calls in progress at attach (`threads.
    /// in_progress_at_attach_total`), new threads returning from clone,
    /// entries lost in a collision, and any other (`unexplained`: should
    /// be 0); in run mode, the launcher's own exit before the launch.
    pub exits_without_entry: u64,
    pub launcher_exits: u64,
    pub clone_returns: u64,
    pub collided_entries: u64,
    pub unexplained_exits: u64,
    /// Items the tracer's bounded lists did not keep (counted in their
    /// totals, without detail).
    pub not_kept: NotKept,
}

#[derive(Clone, Debug, Serialize)]
pub struct NotKept {
    pub call_sites: u64,
    pub spawns: u64,
    pub handoffs: u64,
    pub stop_the_worlds: u64,
    pub deferred_m_requests: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct GoRow {
    pub version: String,
    pub symbols: SymbolsSource,
    pub cgo: bool,
    /// Ps seen in use (the highest P id seen + 1): GOMAXPROCS is at least
    /// this; `None` when no call long enough to read it was seen.
    pub ps_seen: Option<u64>,
    /// Whether goroutines and P handoffs are read (a known Go release).
    pub attribution: bool,
    /// Calls at least this long are listed by call site (as are calls that
    /// lost their P).
    pub slow_threshold_ns: u64,
    /// `main.main` began while traced (run mode: the runtime's start-up is
    /// over; spawns before it are start-up).
    pub main_started: bool,
    /// The P takeovers, reconciled (absent without attribution).
    pub handoffs: Option<Handoffs>,
    pub slow_exits: SlowExits,
}

/// What the report needs to know about a Go target.
pub struct GoContext<'a> {
    pub symbolizer: &'a Symbolizer,
    pub attribution: bool,
    pub slow_ns: u64,
}

impl SyscallRow {
    fn new(number: u32, s: &SyscallStats) -> Self {
        Self {
            name: syscall_names::name(number),
            number,
            calls: s.calls,
            errors: s.errors,
            errors_by_errno: errno_counts(&s.errnos),
            total_ns: s.total_ns,
            mean_ns: s.total_ns.checked_div(s.calls).unwrap_or(0),
            p50_ns: quantile(s, 0.50),
            p90_ns: quantile(s, 0.90),
            p99_ns: quantile(s, 0.99),
            p999_ns: quantile(s, 0.999),
            max_ns: s.max_ns,
            histogram: log2_buckets(&s.histogram),
        }
    }
}

/// A percentile; bucketed values can sit a hair above the exact maximum,
/// so it is clamped.
pub fn quantile(s: &SyscallStats, q: f64) -> u64 {
    if s.histogram.is_empty() {
        0
    } else {
        s.histogram.value_at_quantile(q).min(s.max_ns.max(1))
    }
}

/// What waits in an idle runtime call, by syscall.
fn idle_what(name: &str) -> &'static str {
    match name {
        "futex" => "parked threads (idle Ms) and runtime waits (os/signal receiver)",
        "epoll_wait" | "epoll_pwait" | "epoll_pwait2" => "the netpoller (waiting for I/O)",
        "nanosleep" | "clock_nanosleep" => "sysmon and spinning threads sleeping",
        "sched_yield" => {
            "the runtime spinning (osyield: waiting for a P at a syscall's exit, locks, work search)"
        }
        _ => "the runtime, idle",
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

/// The JSON name of a ring-buffer record's kind.
fn event_kind_name(kind: tracer_common::EventKind) -> &'static str {
    use tracer_common::EventKind as K;
    match kind {
        K::Syscall => "syscall",
        K::ThreadSpawn => "thread_spawn",
        K::ThreadExit => "thread_exit",
        K::SlowCall => "slow_call",
        K::NewM => "new_m",
        K::SlowExit => "slow_exit",
        K::Handoff => "handoff",
        K::StwStart => "stw_start",
        K::StwEnd => "stw_end",
        K::PTaken => "p_taken",
        K::Mexit => "mexit",
        K::MainStart => "main_start",
        K::Exec => "exec",
        K::UnmatchedExit => "unmatched_exit",
        K::Proc => "followed_process",
    }
}

impl EventsRow {
    fn new(model: &Model) -> Self {
        let c = &model.counters;
        Self {
            lost: c.lost(),
            ringbuf_full: c.get(Counter::RingBufFull),
            ringbuf_full_by_kind: c
                .ringbuf_full_by_kind()
                .into_iter()
                .map(|(kind, count)| CountRow {
                    name: kind.map_or("unknown", event_kind_name).to_owned(),
                    count,
                })
                .collect(),
            inflight_collisions: c.get(Counter::InFlightCollision),
            undecodable: c.undecodable,
            unknown_syscalls: c.get(Counter::UnknownSyscall),
            vdso_map_full: c.get(Counter::VdsoMapFull),
            hist_missing: c.get(Counter::HistMissing),
            vdso_stack_missing: c.get(Counter::VdsoStackMissing),
            go_read_failed: c.get(Counter::GoReadFailed),
            no_go_context: c.get(Counter::NoGoContext),
            go_map_full: c.get(Counter::GoMapFull),
            victim_scan_limit: c.get(Counter::VictimScanLimit),
            fd_read_failed: c.get(Counter::FdReadFailed),
            stack_missing: c.get(Counter::StackMissing),
            exits_without_entry: c.get(Counter::UnmatchedExit),
            clone_returns: model.threads.unmatched.clone_returns,
            collided_entries: model.threads.unmatched.collided,
            unexplained_exits: model.threads.unmatched.repeated,
            launcher_exits: model.threads.unmatched.launcher,
            not_kept: NotKept {
                call_sites: model.calls.dropped,
                spawns: model.threads.spawns.dropped,
                handoffs: model.runtime.handoffs.dropped,
                stop_the_worlds: model.runtime.stw.dropped,
                deferred_m_requests: model.threads.deferred_dropped,
            },
        }
    }
}

impl Report {
    /// `threads_at_end`: from /proc when the process still runs (`None`:
    /// it exited).
    pub fn build(
        model: &Model,
        analysis: &Analysis,
        target: TargetInfo,
        traced_seconds: f64,
        threads_at_end: Option<u64>,
        go: Option<GoContext<'_>>,
        facts: &Facts,
    ) -> Self {
        let mut syscalls: Vec<SyscallRow> = model
            .syscalls
            .by_syscall(Waiter::Program)
            .iter()
            .map(|(&n, s)| SyscallRow::new(n, s))
            .collect();
        syscalls.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(b.calls.cmp(&a.calls)));
        let mut idle_waits: Vec<IdleRow> = model
            .syscalls
            .by_syscall(Waiter::RuntimeIdle)
            .iter()
            .map(|(&n, s)| {
                let syscall = syscall_names::name(n);
                IdleRow {
                    what: idle_what(&syscall),
                    syscall,
                    calls: s.calls,
                    errors: s.errors,
                    errors_by_errno: errno_counts(&s.errnos),
                    total_ns: s.total_ns,
                    p50_ns: quantile(s, 0.5),
                    p99_ns: quantile(s, 0.99),
                    max_ns: s.max_ns,
                }
            })
            .collect();
        idle_waits.sort_by_key(|w| std::cmp::Reverse(w.total_ns));
        let total = |w: Option<Waiter>| {
            let (calls, errors, total_ns) = model.syscalls.totals(w);
            Total {
                calls,
                errors,
                total_ns,
            }
        };
        let t = &model.threads;
        let u = &t.unmatched;
        let threads = ThreadRow {
            at_start: t.at_start,
            at_end: (t.at_start + t.spawned).saturating_sub(t.exited_itself + t.ended_with_process),
            at_end_read: threads_at_end,
            peak: analysis.peak_threads,
            spawned: t.spawned,
            exited_itself: t.exited_itself,
            ended_with_process: t.ended_with_process,
            in_progress_at_attach: u
                .in_progress_at_attach
                .iter()
                .map(|(&n, &count)| CountRow {
                    name: syscall_names::name(n),
                    count,
                })
                .collect(),
            in_progress_at_attach_total: u.in_progress_total(),
        };
        let go = go.map(|g| {
            let sym = g.symbolizer;
            GoRow {
                version: sym.build.raw_version.clone(),
                symbols: sym.symbols,
                cgo: sym.cgo,
                ps_seen: crate::analysis::ps_seen(model),
                attribution: g.attribution,
                slow_threshold_ns: g.slow_ns,
                main_started: model.runtime.main_started_ns.is_some(),
                handoffs: analysis.handoffs.clone(),
                slow_exits: model.runtime.slow_exits,
            }
        });
        let mut target = target;
        target.execs = model.runtime.execs_after_launch();
        target.executed = model.runtime.programs_after_launch();
        let processes = processes::Processes::build(model, &target, &threads);
        Self {
            schema: SCHEMA,
            target,
            traced_seconds,
            syscalls,
            idle_waits,
            totals: Totals {
                program: total(Some(Waiter::Program)),
                idle: total(Some(Waiter::RuntimeIdle)),
                all: total(None),
                idle_classified_from_ns: tracer_common::HANDOFF_MIN_NS,
            },
            threads,
            events: EventsRow::new(model),
            go,
            blocking: analysis.blocking.clone(),
            threads_by_cause: analysis.spawns.clone(),
            lockosthread_leaks: analysis.leaks.clone(),
            vdso: analysis.vdso.clone(),
            facts: facts.clone(),
            verdicts: analysis.verdicts.clone(),
            recording: None,
            processes,
        }
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
    use crate::{analysis, model::Event};

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
                idle: false,
            });
        }
        model.apply(&Event::Syscall {
            tid: 1,
            ts_ns: 9,
            sysno: 257,
            ret: -2,
            duration_ns: 4_000,
            idle: false,
        });
        model.apply(&Event::Syscall {
            tid: 2,
            ts_ns: 9,
            sysno: 202,
            ret: 0,
            duration_ns: 40_000_000,
            idle: true,
        });
        model.apply(&Event::Syscall {
            tid: 2,
            ts_ns: 10,
            sysno: 202,
            ret: -110,
            duration_ns: 30_000_000,
            idle: true,
        });
        model.apply(&Event::ThreadSpawn {
            parent_tid: 1,
            tid: 2,
            ts_ns: 1,
        });
        // The process exits: both threads end with it.
        for tid in [1, 2] {
            model.apply(&Event::ThreadExit {
                tid,
                ts_ns: 20,
                how: crate::model::ThreadEnd::ExitGroup,
            });
        }
        let target = TargetInfo {
            pid: 42,
            command: "demo".into(),
            mode: Mode::Run,
            exited: true,
            exit_code: Some(0),
            execs: 0,
            executed: Vec::new(),
            follow_forks: false,
        };
        let facts = Facts::default();
        let cx = analysis::Context {
            sym: None,
            attribution: false,
            fops: None,
            facts: &facts,
            traced_seconds: 1.5,
        };
        let a = analysis::analyze(&model, &cx);
        Report::build(&model, &a, target, 1.5, None, None, &facts)
    }

    #[test]
    fn rows_are_sorted_by_total_time_and_carry_percentiles() {
        let r = sample();
        assert_eq!(r.syscalls[0].name, "pread64");
        assert_eq!(r.syscalls[0].calls, 4);
        assert_eq!(r.syscalls[0].mean_ns, 14_000);
        // Within the histograms' resolution: 1/128 of the value.
        assert!(r.syscalls[0].p50_ns.abs_diff(2_000) <= 2_000 / 128);
        assert!(r.syscalls[0].max_ns == 50_000);
        assert_eq!(r.syscalls[1].name, "openat");
        assert_eq!(r.syscalls[1].errors, 1);
        assert_eq!(r.syscalls[1].errors_by_errno[0].errno, "ENOENT");
        let total: u64 = r.syscalls[0].histogram.iter().map(|b| b.count).sum();
        assert_eq!(total, 4);
        assert_eq!(r.threads.spawned, 1);
        // The idle futex is kept apart, and the totals add up.
        assert_eq!(r.idle_waits[0].syscall, "futex");
        // The idle waits have the same errno breakdown as the program's.
        assert_eq!(r.idle_waits[0].errors, 1);
        assert_eq!(r.idle_waits[0].errors_by_errno[0].errno, "ETIMEDOUT");
        assert_eq!(r.totals.idle.errors, 1);
        assert_eq!(r.totals.program.calls, 5);
        assert_eq!(r.totals.idle.calls, 2);
        assert_eq!(r.totals.all.calls, 7);
    }
}
