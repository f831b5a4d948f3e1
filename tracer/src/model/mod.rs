//! The aggregator: consumes decoded [`Event`]s and keeps per-syscall
//! HdrHistograms and thread counts. Pure: it never touches the kernel, so it
//! can be fed from a live session, a recording, or a test.

pub mod event;

use std::collections::{BTreeMap, HashMap, HashSet};

pub use event::{Event, PHandoff};
use hdrhistogram::Histogram;
use tracer_common::buckets;

/// Highest duration the histograms resolve (about 18 minutes); longer calls
/// saturate at it (the exact maximum is kept separately).
const HIST_MAX_NS: u64 = 1 << 40;
/// Significant figures of the HdrHistograms: 0.1% resolution.
const HIST_SIGFIG: u8 = 3;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// Everything known about one syscall number.
#[derive(Clone, Debug)]
pub struct SyscallStats {
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub histogram: Histogram<u64>,
}

impl SyscallStats {
    fn new() -> Self {
        Self {
            calls: 0,
            errors: 0,
            total_ns: 0,
            max_ns: 0,
            histogram: new_histogram(),
        }
    }
}

/// Thread lifecycle counts of the target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ThreadStats {
    /// Threads alive when tracing began.
    pub at_start: u64,
    /// Threads spawned while traced.
    pub spawned: u64,
    /// Threads that exited while the process kept running.
    pub exited: u64,
    /// Threads that ended in the process's own teardown (after `exit_group`).
    pub exited_at_process_exit: u64,
    /// Most threads alive at once (given the count at start).
    pub peak: u64,
    live: i64,
}

/// Counts of everything the kernel side could not handle normally.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LossCounters {
    /// Records the kernel could not put in the full ring buffer.
    pub ringbuf_full: u64,
    /// Syscalls not timed because two threads shared an in-flight slot.
    pub inflight_collisions: u64,
    /// Ring-buffer records userspace could not decode.
    pub undecodable: u64,
    /// Exits whose entry predates the probes (attach mode): not losses.
    pub unmatched_exits: u64,
    /// Syscall numbers beyond the tracked table.
    pub unknown_syscalls: u64,
    /// vDSO-fallback calls not counted (call-site map full).
    pub vdso_map_full: u64,
}

impl LossCounters {
    /// Events lost in total: every one of them is a call or a thread change
    /// missing from the report.
    pub fn lost(&self) -> u64 {
        self.ringbuf_full
            + self.inflight_collisions
            + self.undecodable
            + self.unknown_syscalls
            + self.vdso_map_full
    }
}

/// Frames kept per call site key: enough to tell call sites apart.
const SITE_FRAMES: usize = 12;

/// A syscall made from one user stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SiteKey {
    pub sysno: u32,
    /// Program counters, innermost first (frame 0 is the syscall
    /// instruction's function, later ones are return addresses).
    pub frames: Vec<u64>,
}

/// Slow or P-losing calls from one call site.
#[derive(Clone, Debug)]
pub struct SiteStats {
    pub calls: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Calls during which the goroutine's P was taken.
    pub p_lost: u64,
    /// Calls that then exited on the slow path (no P: queued, thread parked).
    pub slow_exits: u64,
    /// Made by C code inside cgo calls.
    pub cgo: bool,
    pub goroutines: HashSet<u64>,
    pub histogram: Histogram<u64>,
}

/// A stop-the-world, from the stop to the restart.
#[derive(Clone, Debug)]
pub struct StwWindow {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Bit i: P i was in a syscall as the world stopped (when read).
    pub syscall_ps: Option<u64>,
}

/// One `runtime.handoffp` call.
#[derive(Clone, Debug)]
pub struct Handoff {
    pub ts_ns: u64,
    pub p_id: Option<u32>,
    /// Return address into the caller: who handed the P off.
    pub caller: u64,
}

/// Where a vDSO-served call became a real syscall.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VdsoSite {
    pub sysno: u32,
    /// `clock_gettime`'s clock id (0 for the other syscalls).
    pub clock: i32,
    /// The user stack, innermost first (frame 0: the syscall's address).
    pub frames: Vec<u64>,
}

/// Caps on the per-event lists kept for thread-cause matching.
const MAX_SPAWNS: usize = 100_000;
const MAX_LOST_CALLS: usize = 200_000;

/// A thread the target spawned, with the runtime's reason if it was an M.
#[derive(Clone, Debug)]
pub struct Spawn {
    pub tid: u32,
    pub ts_ns: u64,
    /// The `newm1` entry (time, stack) that preceded it on the same thread.
    pub newm: Option<(u64, Vec<u64>)>,
}

/// A call that lost its P, as an interval: the P was taken during it.
#[derive(Clone, Debug)]
pub struct LostCall {
    pub start_ns: u64,
    pub end_ns: u64,
    /// The P the call started with, when read.
    pub p_id: Option<u32>,
    /// A cgo call (time in C) rather than a syscall.
    pub cgo: bool,
    pub site: SiteKey,
}

/// The aggregate state of one tracing session.
#[derive(Clone, Debug)]
pub struct Model {
    pub syscalls: BTreeMap<u32, SyscallStats>,
    pub threads: ThreadStats,
    pub losses: LossCounters,
    /// Slow or P-losing calls by call site.
    pub sites: HashMap<SiteKey, SiteStats>,
    /// Per syscall: calls during which the P was taken.
    pub p_lost: BTreeMap<u32, u64>,
    /// Every spawned thread (up to a cap), for thread causes.
    pub spawns: Vec<Spawn>,
    /// Calls that lost their P (up to a cap), to find which call's handoff
    /// a new thread served.
    pub lost_calls: Vec<LostCall>,
    /// Highest P id seen in a goroutine's call (GOMAXPROCS is above it).
    pub max_p_id: Option<u32>,
    /// `handoffp` calls by caller address (who handed a P off).
    pub handoffs_by_caller: HashMap<u64, u64>,
    /// Every `handoffp` call (up to a cap), to tell which call lost its P
    /// to which taker.
    pub handoffs: Vec<Handoff>,
    /// Go 1.26+: Ps taken from threads in syscalls, by (caller, new P
    /// state): the runtime's own record of who took each.
    pub p_taken: HashMap<(u64, u32), u64>,
    /// Stop-the-world windows: Ps in syscalls are taken.
    pub stw_windows: Vec<StwWindow>,
    stw_started: Option<(u64, Option<u64>)>,
    /// Slow-path exits in all, and those not tied to a reported call.
    pub slow_exits: u64,
    pub slow_exits_unattributed: u64,
    /// The last reported call per thread: where its slow exit belongs.
    last_call: HashMap<u32, (u64, SiteKey)>,
    /// `newm1` entries not yet followed by a spawn: creator tid → stacks.
    pending_newm: HashMap<u32, Vec<(u64, Vec<u64>)>>,
    /// LockOSThread leaks: locking call stack → (threads ended, goroutines).
    pub lock_leaks: HashMap<Vec<u64>, (u64, HashSet<u64>)>,
    /// Real syscalls of calls the vDSO normally serves, by call site.
    pub vdso_calls: HashMap<VdsoSite, u64>,
    /// Slow calls the runtime made on its system stack (sysmon, idle Ms):
    /// per syscall, (calls, total ns).
    pub runtime_slow: BTreeMap<u32, (u64, u64)>,
    seen_spawn: HashSet<u32>,
}

impl Model {
    /// A model for a process that had `threads_at_start` threads.
    pub fn new(threads_at_start: u64) -> Self {
        Self {
            syscalls: BTreeMap::new(),
            threads: ThreadStats {
                at_start: threads_at_start,
                peak: threads_at_start,
                live: threads_at_start as i64,
                ..ThreadStats::default()
            },
            losses: LossCounters::default(),
            sites: HashMap::new(),
            p_lost: BTreeMap::new(),
            runtime_slow: BTreeMap::new(),
            vdso_calls: HashMap::new(),
            lock_leaks: HashMap::new(),
            spawns: Vec::new(),
            lost_calls: Vec::new(),
            pending_newm: HashMap::new(),
            slow_exits: 0,
            slow_exits_unattributed: 0,
            handoffs_by_caller: HashMap::new(),
            handoffs: Vec::new(),
            stw_windows: Vec::new(),
            p_taken: HashMap::new(),
            stw_started: None,
            max_p_id: None,
            last_call: HashMap::new(),
            seen_spawn: HashSet::new(),
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match *event {
            Event::Syscall {
                sysno,
                ret,
                duration_ns,
                ..
            } => {
                let stats = self.syscalls.entry(sysno).or_insert_with(SyscallStats::new);
                stats.calls += 1;
                stats.errors += u64::from((-4095..0).contains(&ret));
                stats.total_ns = stats.total_ns.saturating_add(duration_ns);
                stats.max_ns = stats.max_ns.max(duration_ns);
                stats.histogram.saturating_record(duration_ns.max(1));
            }
            Event::SyscallAggregate {
                sysno,
                calls,
                errors,
                total_ns,
                max_ns,
                ref buckets,
            } => {
                let stats = self.syscalls.entry(sysno).or_insert_with(SyscallStats::new);
                stats.calls += calls;
                stats.errors += errors;
                stats.total_ns = stats.total_ns.saturating_add(total_ns);
                stats.max_ns = stats.max_ns.max(max_ns);
                for &(index, count) in buckets {
                    let value = buckets::bucket_value(index as usize).max(1);
                    stats.histogram.saturating_record_n(value, count);
                }
            }
            Event::SlowCall {
                sysno,
                duration_ns,
                p: PHandoff::Runtime,
                p_id,
                ..
            } => {
                if let Some(id) = p_id {
                    self.max_p_id = Some(self.max_p_id.map_or(id, |m| m.max(id)));
                }
                let (calls, total) = self.runtime_slow.entry(sysno).or_default();
                *calls += 1;
                *total = total.saturating_add(duration_ns);
            }
            Event::Handoff {
                caller,
                ts_ns,
                p_id,
                ..
            } => {
                *self.handoffs_by_caller.entry(caller).or_default() += 1;
                if self.handoffs.len() < MAX_LOST_CALLS {
                    self.handoffs.push(Handoff {
                        ts_ns,
                        p_id,
                        caller,
                    });
                }
            }
            Event::PTaken {
                caller, new_state, ..
            } => {
                *self.p_taken.entry((caller, new_state)).or_default() += 1;
            }
            Event::StwStart {
                ts_ns, syscall_ps, ..
            } => self.stw_started = Some((ts_ns, syscall_ps)),
            Event::StwEnd { ts_ns, .. } => {
                if let Some((start, syscall_ps)) = self.stw_started.take()
                    && self.stw_windows.len() < MAX_LOST_CALLS
                {
                    self.stw_windows.push(StwWindow {
                        start_ns: start,
                        end_ns: ts_ns,
                        syscall_ps,
                    });
                }
            }
            Event::SlowExit { tid, ts_ns } => {
                self.slow_exits += 1;
                // exitsyscall runs right after the kernel returned: the call
                // reported last on this thread is the one exiting.
                let site = self
                    .last_call
                    .remove(&tid)
                    .filter(|(end, _)| ts_ns.saturating_sub(*end) < 100_000_000);
                match site.and_then(|(_, key)| self.sites.get_mut(&key)) {
                    Some(site) => site.slow_exits += 1,
                    None => self.slow_exits_unattributed += 1,
                }
            }
            Event::NewM {
                tid,
                ts_ns,
                ref frames,
            } => {
                self.pending_newm
                    .entry(tid)
                    .or_default()
                    .push((ts_ns, frames.clone()));
            }
            Event::SlowCall {
                tid,
                sysno,
                duration_ns,
                goid,
                p,
                cgo,
                p_id,
                ref frames,
                ts_ns,
                ..
            } => {
                let key = SiteKey {
                    sysno,
                    frames: frames.iter().take(SITE_FRAMES).copied().collect(),
                };
                self.last_call.insert(tid, (ts_ns, key.clone()));
                if let Some(id) = p_id {
                    self.max_p_id = Some(self.max_p_id.map_or(id, |m| m.max(id)));
                }
                if p == PHandoff::Lost && self.lost_calls.len() < MAX_LOST_CALLS {
                    self.lost_calls.push(LostCall {
                        start_ns: ts_ns.saturating_sub(duration_ns),
                        end_ns: ts_ns,
                        p_id,
                        cgo,
                        site: key.clone(),
                    });
                }
                let site = self.sites.entry(key).or_insert_with(|| SiteStats {
                    calls: 0,
                    total_ns: 0,
                    max_ns: 0,
                    p_lost: 0,
                    slow_exits: 0,
                    cgo,
                    goroutines: HashSet::new(),
                    histogram: new_histogram(),
                });
                site.calls += 1;
                site.total_ns = site.total_ns.saturating_add(duration_ns);
                site.max_ns = site.max_ns.max(duration_ns);
                site.histogram.saturating_record(duration_ns.max(1));
                if goid != 0 {
                    site.goroutines.insert(goid);
                }
                if p == PHandoff::Lost {
                    site.p_lost += 1;
                    *self.p_lost.entry(sysno).or_default() += 1;
                }
            }
            Event::VdsoCalls {
                sysno,
                clock,
                ref frames,
                calls,
            } => {
                let site = VdsoSite {
                    sysno,
                    clock,
                    frames: frames.clone(),
                };
                *self.vdso_calls.entry(site).or_default() += calls;
            }
            Event::LockedThreadExit {
                goid, ref frames, ..
            } => {
                let mut frames = frames.clone();
                // The kernel's own fix-up may already have put the caller
                // second: keep it once.
                if frames.len() > 1 && frames[0] == frames[1] {
                    frames.remove(1);
                }
                let (threads, goroutines) = self.lock_leaks.entry(frames).or_default();
                *threads += 1;
                if goid != 0 {
                    goroutines.insert(goid);
                }
            }
            Event::ThreadSpawn {
                tid,
                parent_tid,
                ts_ns,
                ..
            } => {
                // A tid is spawned once per lifetime; tids are reused only
                // after an exit, which clears it.
                if self.seen_spawn.insert(tid) {
                    // This thread is the M of the latest newm1 on the
                    // spawning thread, if the runtime made it.
                    let newm = self.pending_newm.get_mut(&parent_tid).and_then(Vec::pop);
                    if self.spawns.len() < MAX_SPAWNS {
                        self.spawns.push(Spawn { tid, ts_ns, newm });
                    }
                    self.threads.spawned += 1;
                    self.threads.live += 1;
                    self.threads.peak = self.threads.peak.max(self.threads.live.max(0) as u64);
                }
            }
            Event::ThreadExit {
                tid,
                during_group_exit,
                ..
            } => {
                self.seen_spawn.remove(&tid);
                self.threads.live -= 1;
                if during_group_exit {
                    self.threads.exited_at_process_exit += 1;
                } else {
                    self.threads.exited += 1;
                }
            }
        }
    }

    /// Threads alive by the model's count (start + spawned - exited).
    pub fn live_threads(&self) -> u64 {
        self.threads.live.max(0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(sysno: u32, ret: i64, duration_ns: u64) -> Event {
        Event::Syscall {
            tid: 1,
            ts_ns: 0,
            sysno,
            ret,
            duration_ns,
        }
    }

    #[test]
    fn streamed_and_aggregated_calls_merge() {
        let mut model = Model::new(1);
        model.apply(&call(17, 64, 1_000));
        model.apply(&call(17, -9, 3_000));
        model.apply(&Event::SyscallAggregate {
            sysno: 17,
            calls: 2,
            errors: 0,
            total_ns: 4_000,
            max_ns: 2_500,
            buckets: vec![
                (buckets::bucket_of(1_500) as u32, 1),
                (buckets::bucket_of(2_500) as u32, 1),
            ],
        });
        let s = &model.syscalls[&17];
        assert_eq!(
            (s.calls, s.errors, s.total_ns, s.max_ns),
            (4, 1, 8_000, 3_000)
        );
        assert_eq!(s.histogram.len(), 4);
        let p50 = s.histogram.value_at_quantile(0.5) as f64;
        assert!((p50 - 1_500.0).abs() / 1_500.0 < 0.01, "{p50}");
    }

    #[test]
    fn mmap_addresses_are_not_errors() {
        let mut model = Model::new(1);
        model.apply(&call(9, -4096, 10));
        model.apply(&call(9, -4095, 10));
        assert_eq!(model.syscalls[&9].errors, 1);
    }

    #[test]
    fn slow_calls_group_by_site_and_count_handoffs() {
        let mut model = Model::new(1);
        let slow = |goid, p, frames: &[u64]| Event::SlowCall {
            tid: 1,
            ts_ns: 0,
            sysno: 35,
            ret: 0,
            duration_ns: 20_000_000,
            goid,
            p,
            cgo: false,
            p_id: None,
            frames: frames.to_vec(),
        };
        model.apply(&slow(7, PHandoff::Lost, &[1, 2, 3]));
        model.apply(&slow(8, PHandoff::Kept, &[1, 2, 3]));
        model.apply(&slow(8, PHandoff::Lost, &[1, 2, 4]));
        assert_eq!(model.sites.len(), 2);
        let site = &model.sites[&SiteKey {
            sysno: 35,
            frames: vec![1, 2, 3],
        }];
        assert_eq!((site.calls, site.p_lost, site.goroutines.len()), (2, 1, 2));
        assert_eq!(model.p_lost[&35], 2);
    }

    #[test]
    fn threads_are_counted_by_lifecycle() {
        let mut model = Model::new(1);
        for tid in 2..=5 {
            model.apply(&Event::ThreadSpawn {
                parent_tid: 1,
                tid,
                ts_ns: 0,
                during_group_exit: false,
            });
        }
        model.apply(&Event::ThreadExit {
            tid: 2,
            ts_ns: 0,
            during_group_exit: false,
        });
        model.apply(&Event::ThreadExit {
            tid: 3,
            ts_ns: 0,
            during_group_exit: true,
        });
        assert_eq!(model.threads.spawned, 4);
        assert_eq!(model.threads.exited, 1);
        assert_eq!(model.threads.exited_at_process_exit, 1);
        assert_eq!(model.threads.peak, 5);
        assert_eq!(model.live_threads(), 3);
    }
}
