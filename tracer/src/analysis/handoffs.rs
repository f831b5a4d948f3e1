//! P handoffs, reconciled: every P taken from a thread in a syscall is
//! counted once, by who took it and by the syscall it was taken from, and
//! tied to the reported call (and so its call site) when there is one;
//! what cannot be tied is counted with the reason. Each breakdown sums to
//! the same total.
//!
//! Where the takeovers come from:
//! - Go 1.26+: the runtime records each one (`syscallingThread.releaseP`,
//!   probed): the taker (its caller; a new P state of `_Pgcstop` is a
//!   stop-the-world) and the thread (its M).
//! - Go ≤1.25: `handoffp` from `retake` (sysmon) or `forEachP` (the GC)
//!   names the P; the kernel finds the thread whose syscall held it (the M
//!   with that P as `oldp`, through `runtime.allm`) and flags its call. A
//!   stop-the-world takes Ps without handoffp: the kernel flags the calls
//!   holding a `_Psyscall` P as the world stops, and their exits say whether
//!   they lost it. A call that lost its P with no taker seen had it stolen
//!   back by another goroutine leaving its syscall (`exitsyscallfast`).
//!   Stripped binaries have no `runtime.allm`: handoffs are matched to the
//!   lost call on the same P by time.
//!
//! `handoffp` is also called for Ps that were not in a syscall (a locked
//! goroutine blocking, a locked goroutine exiting, the runtime's own
//! blocking waits handing off first): those are listed apart.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::{
    gobin::symbolize::Symbolizer,
    model::{
        Model, PHandoff, Victim,
        calls::CallRef,
        runtime::{Handoff, HandoffProbe},
    },
    syscall_names,
};

/// Who took a P from a thread in a syscall.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Taker {
    /// sysmon's `retake`: the call was in its syscall for a whole sysmon
    /// tick (20 µs to 10 ms) while other work waited.
    SysmonRetake,
    /// The GC's `forEachP` (a safe point) took it.
    GcForEachP,
    /// A stop-the-world took it.
    StopTheWorld,
    /// The syscall began while the world was stopped: its goroutine gave
    /// the P to the stop itself on the way in (`entersyscall_gcwait`).
    EnteredDuringStopTheWorld,
    /// Another goroutine leaving its own syscall took it back
    /// (`exitsyscall`): the P had been given to this thread after a retake.
    StealBack,
    /// A runtime function this tracer does not name.
    Other(String),
}

impl Taker {
    pub fn label(&self) -> String {
        match self {
            Self::SysmonRetake => "sysmon retake".into(),
            Self::GcForEachP => "GC (forEachP)".into(),
            Self::StopTheWorld => "stop-the-world".into(),
            Self::EnteredDuringStopTheWorld => "stop-the-world (syscall entered during it)".into(),
            Self::StealBack => "steal-back by an exiting goroutine".into(),
            Self::Other(f) => format!("other ({f})"),
        }
    }
}

/// A P handoff that did not come from a syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnHandoff {
    /// The runtime's own blocking wait (`notetsleepg`: the os/signal
    /// receiver, the CPU-profile reader) handed its P off before blocking.
    RuntimeWait,
    /// A goroutine locked to its thread (LockOSThread) blocked: its thread
    /// gave its P away (`stoplockedm`).
    LockedGoroutineBlocked,
    /// A goroutine exited while locked: its thread gave its P away
    /// (`mexit`).
    LockedGoroutineExited,
    Other,
}

impl OwnHandoff {
    pub fn label(self) -> &'static str {
        match self {
            Self::RuntimeWait => "the runtime's own blocking waits (os/signal, profiler)",
            Self::LockedGoroutineBlocked => "locked goroutines blocking (stoplockedm)",
            Self::LockedGoroutineExited => "locked goroutines exiting (mexit)",
            Self::Other => "other runtime paths",
        }
    }
}

/// Own handoffs of one kind, split by when they happened: before
/// `main.main` began (the runtime's start-up: package init runs with the
/// main goroutine locked to the main thread, so a blocking init goes
/// through `stoplockedm`) or after. `count` = `before_main` +
/// `after_main` + `phase_unknown`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnCount {
    pub key: OwnHandoff,
    pub count: u64,
    /// Before `main.main` began (start-up, not the program's own code).
    pub before_main: u64,
    /// At or after `main.main` began, or in a session attached to a
    /// process already running (its start-up was over before the probes).
    pub after_main: u64,
    /// The tracer launched the process and saw no start of `main.main`:
    /// when each happened relative to it is not known.
    pub phase_unknown: u64,
}

/// When a handoff happened relative to `main.main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    BeforeMain,
    AfterMain,
    Unknown,
}

fn phase(model: &Model, ts_ns: u64) -> Phase {
    match model.runtime.main_started_ns {
        Some(main) if ts_ns < main => Phase::BeforeMain,
        Some(_) => Phase::AfterMain,
        None if model.runtime.launched_by_exec => Phase::Unknown,
        None => Phase::AfterMain,
    }
}

/// Why a takeover is not tied to a reported call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unattributed {
    /// The thread was in Go's syscall path outside the kernel, entering or
    /// leaving the call (the runtime counts that as in the syscall); with
    /// short calls this means the thread was off-CPU there: the CPUs were
    /// busy, not the syscall slow.
    OutsideKernel,
    /// The thread was running C code (a cgo call), not in a syscall.
    InC,
    /// The call ended as its P was taken, before the kernel could flag it
    /// (its syscall is known, its stack is not).
    CallEndedAsTaken,
    /// No thread held this P in a syscall when the taker ran, or the list
    /// of Ms could not be read.
    ThreadNotFound,
    /// More threads than the kernel's search visits (2048).
    TooManyThreads,
    /// A stripped binary (no `runtime.allm`) whose takeover matched no
    /// reported call on the same P: the call was shorter than the 20 µs
    /// below which the kernel does not read the runtime's state.
    ShortCallStripped,
    /// The tracer's bounded lists were full (a very long trace).
    ListFull,
}

impl Unattributed {
    pub fn label(self) -> &'static str {
        match self {
            Self::OutsideKernel => {
                "thread outside the kernel in Go's syscall path (entering or leaving; likely \
                 off-CPU: CPUs busy)"
            }
            Self::InC => "thread in C code (a cgo call), not in a syscall",
            Self::CallEndedAsTaken => "the call ended as its P was taken (syscall known, no stack)",
            Self::ThreadNotFound => "no thread found holding the P",
            Self::TooManyThreads => "more threads than the search visits",
            Self::ShortCallStripped => "call under 20 µs (stripped binary: no thread search)",
            Self::ListFull => "tracer list full",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Count<K> {
    pub key: K,
    pub count: u64,
}

/// The reconciled takeovers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Handoffs {
    /// Ps taken from threads in syscalls (or in cgo calls).
    pub total: u64,
    pub by_taker: Vec<Count<Taker>>,
    /// By syscall name; `None`: not in a syscall or unknown.
    pub by_syscall: Vec<Count<Option<String>>>,
    /// Tied to a reported call (its call site is known).
    pub attributed_to_calls: u64,
    pub unattributed: Vec<Count<Unattributed>>,
    /// Per call site (index into `model.calls.sites`): takeovers.
    #[serde(skip)]
    pub by_site: BTreeMap<usize, u64>,
    /// P handoffs that did not come from a syscall, each split into
    /// before and after `main.main`.
    pub own: Vec<OwnCount>,
}

/// The taker and syscall-ness of a handoff from its caller's function.
enum CallerKind {
    Taker(Taker),
    Own(OwnHandoff),
}

fn caller_kind(function: &str, probe: HandoffProbe) -> CallerKind {
    if let HandoffProbe::ReleaseP { new_state } = probe
        && new_state == tracer_common::gostate::P_GCSTOP
    {
        return CallerKind::Taker(Taker::StopTheWorld);
    }
    let is = |prefix: &str| function.starts_with(prefix);
    if function == "runtime.retake" {
        CallerKind::Taker(Taker::SysmonRetake)
    } else if is("runtime.forEachP") {
        CallerKind::Taker(Taker::GcForEachP)
    } else if is("runtime.gcstopP") || is("runtime.stopTheWorld") {
        CallerKind::Taker(Taker::StopTheWorld)
    } else if is("runtime.exitsyscall") {
        CallerKind::Taker(Taker::StealBack)
    } else if is("runtime.entersyscallblock") {
        CallerKind::Own(OwnHandoff::RuntimeWait)
    } else if is("runtime.stoplockedm") {
        CallerKind::Own(OwnHandoff::LockedGoroutineBlocked)
    } else if is("runtime.mexit") {
        CallerKind::Own(OwnHandoff::LockedGoroutineExited)
    } else if probe == HandoffProbe::Handoffp {
        CallerKind::Own(OwnHandoff::Other)
    } else {
        CallerKind::Taker(Taker::Other(function.to_owned()))
    }
}

/// Why a P was handed off, from its caller's function, as the report's
/// breakdowns name it (a taker's label, or the runtime's own handoff's).
pub fn cause_label(function: &str, probe: HandoffProbe) -> String {
    match caller_kind(function, probe) {
        CallerKind::Taker(taker) => taker.label(),
        CallerKind::Own(own) => own.label().to_owned(),
    }
}

/// Accumulates the breakdowns so they cannot disagree: every takeover
/// goes through [`Tally::add`] once.
#[derive(Default)]
struct Tally {
    total: u64,
    by_taker: BTreeMap<Taker, u64>,
    by_syscall: BTreeMap<Option<String>, u64>,
    attributed: u64,
    unattributed: BTreeMap<Unattributed, u64>,
    by_site: BTreeMap<usize, u64>,
}

impl Tally {
    fn add(&mut self, taker: Taker, sysno: Option<u32>, tied: Result<usize, Unattributed>) {
        self.total += 1;
        *self.by_taker.entry(taker).or_default() += 1;
        *self
            .by_syscall
            .entry(sysno.map(syscall_names::name))
            .or_default() += 1;
        match tied {
            Ok(site) => {
                self.attributed += 1;
                *self.by_site.entry(site).or_default() += 1;
            }
            Err(why) => *self.unattributed.entry(why).or_default() += 1,
        }
    }
}

fn sorted<K: Ord>(map: BTreeMap<K, u64>) -> Vec<Count<K>> {
    let mut v: Vec<Count<K>> = map
        .into_iter()
        .map(|(key, count)| Count { key, count })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    v
}

/// Reconciles the takeovers of one session.
pub fn reconcile(model: &Model, sym: &Symbolizer) -> Handoffs {
    let mut tally = Tally::default();
    let mut own: BTreeMap<OwnHandoff, OwnCount> = BTreeMap::new();
    // Calls claimed by a taker (thread, start).
    let mut claimed: HashSet<(u32, u64)> = HashSet::new();
    let mut function_of = std::collections::HashMap::new();
    let mut by_time: Vec<&Handoff> = model.runtime.handoffs.iter().collect();
    by_time.sort_by_key(|h| h.ts_ns);
    // Handoffs that name no thread (stripped ≤1.25): matched by P and time
    // below, after every exact claim is made.
    let mut unnamed: Vec<(&Handoff, Taker)> = Vec::new();
    for h in by_time {
        // The physical function: Go 1.26+ inlines the helper that takes
        // a P (syscallingThread.takeP) into each taker.
        let function = function_of
            .entry(h.caller)
            .or_insert_with(|| {
                sym.function_name(h.caller, true)
                    .unwrap_or_default()
                    .to_owned()
            })
            .clone();
        let taker = match caller_kind(&function, h.probe) {
            CallerKind::Own(kind) => {
                let row = own.entry(kind).or_insert(OwnCount {
                    key: kind,
                    count: 0,
                    before_main: 0,
                    after_main: 0,
                    phase_unknown: 0,
                });
                row.count += 1;
                match phase(model, h.ts_ns) {
                    Phase::BeforeMain => row.before_main += 1,
                    Phase::AfterMain => row.after_main += 1,
                    Phase::Unknown => row.phase_unknown += 1,
                }
                continue;
            }
            CallerKind::Taker(t) => t,
        };
        match h.victim {
            Victim::InSyscall {
                tid,
                sysno,
                start_ns,
            } => {
                let tied = match model.calls.call(tid, start_ns) {
                    Some(call) => {
                        claimed.insert((tid, start_ns));
                        Ok(call.site)
                    }
                    None if model.calls.unindexed > 0 || model.calls.dropped > 0 => {
                        Err(Unattributed::ListFull)
                    }
                    None => Err(Unattributed::CallEndedAsTaken),
                };
                tally.add(taker, Some(sysno), tied);
            }
            Victim::NotInSyscall { .. } => tally.add(taker, None, Err(Unattributed::OutsideKernel)),
            Victim::InC { .. } => tally.add(taker, None, Err(Unattributed::InC)),
            Victim::ScanLimit => tally.add(taker, None, Err(Unattributed::TooManyThreads)),
            Victim::NotFound => tally.add(taker, None, Err(Unattributed::ThreadNotFound)),
            Victim::NotSearched => unnamed.push((h, taker)),
        }
    }
    // Handoffs past the list's cap: counted, by nothing else known.
    for _ in 0..model.runtime.handoffs.dropped {
        tally.add(
            Taker::Other("unknown (list full)".into()),
            None,
            Err(Unattributed::ListFull),
        );
    }
    // The calls that lost their P, in time order.
    let mut lost: Vec<(&(u32, u64), &CallRef)> = model
        .calls
        .indexed()
        .filter(|(k, c)| c.p == PHandoff::Lost && !claimed.contains(k))
        .collect();
    lost.sort_by_key(|((tid, start), _)| (*start, *tid));
    let mut used = vec![false; lost.len()];
    // Per P id, the indices of its calls (in start order), so a handoff
    // looks at the few calls around its time on its P, not all of them.
    let mut by_p: std::collections::HashMap<Option<u32>, Vec<usize>> = Default::default();
    for (i, (_, c)) in lost.iter().enumerate() {
        by_p.entry(c.p_id).or_default().push(i);
    }
    let all: Vec<usize> = (0..lost.len()).collect();
    for (h, taker) in unnamed {
        let lists: Vec<&Vec<usize>> = match h.p_id {
            Some(p) => [by_p.get(&Some(p)), by_p.get(&None)]
                .into_iter()
                .flatten()
                .collect(),
            None => vec![&all],
        };
        let found = lists.into_iter().find_map(|list| {
            // The calls that began by the handoff, latest first: the one in
            // progress on that P is among the last few.
            let upto = list.partition_point(|&i| lost[i].0.1 <= h.ts_ns);
            list[..upto]
                .iter()
                .rev()
                .take(16)
                .copied()
                .find(|&i| !used[i] && h.ts_ns <= lost[i].1.end_ns)
        });
        match found {
            Some(i) => {
                used[i] = true;
                let call = lost[i].1;
                let sysno = model.calls.sites[call.site].0.sysno;
                tally.add(taker, Some(sysno), Ok(call.site));
            }
            None => tally.add(taker, None, Err(Unattributed::ShortCallStripped)),
        }
    }
    // Calls that lost their P to no probed taker: a stop-the-world (the
    // kernel flagged them as the world stopped, or — stripped binaries —
    // they span a stop's start), a syscall entered during a stop, else a
    // steal-back. The windows are in time order and do not overlap.
    let stw: Vec<&crate::model::runtime::StwWindow> = model.runtime.stw.iter().collect();
    for (((_, start), call), _) in lost.iter().zip(&used).filter(|(_, u)| !**u) {
        let sysno = model.calls.sites[call.site].0.sysno;
        let first_after = stw.partition_point(|w| w.start_ns < *start);
        let spans_a_stop = call.taken.stw
            || stw[first_after..]
                .iter()
                .take_while(|w| w.start_ns <= call.end_ns)
                .any(|w| w.syscall_ps.is_none());
        let entered_during_a_stop = first_after
            .checked_sub(1)
            .is_some_and(|i| *start <= stw[i].end_ns);
        let taker = if spans_a_stop {
            Taker::StopTheWorld
        } else if entered_during_a_stop {
            Taker::EnteredDuringStopTheWorld
        } else {
            Taker::StealBack
        };
        tally.add(taker, Some(sysno), Ok(call.site));
    }
    Handoffs {
        total: tally.total,
        by_taker: sorted(tally.by_taker),
        by_syscall: sorted(tally.by_syscall),
        attributed_to_calls: tally.attributed,
        unattributed: sorted(tally.unattributed),
        by_site: tally.by_site,
        own: {
            let mut v: Vec<OwnCount> = own.into_values().collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
            v
        },
    }
}

impl Handoffs {
    /// The breakdowns each sum to the total (checked by the tests and by
    /// the report invariants).
    pub fn consistent(&self) -> bool {
        let unattributed: u64 = self.unattributed.iter().map(|c| c.count).sum();
        self.by_taker.iter().map(|c| c.count).sum::<u64>() == self.total
            && self.by_syscall.iter().map(|c| c.count).sum::<u64>() == self.total
            && self.attributed_to_calls + unattributed == self.total
            && self
                .own
                .iter()
                .all(|o| o.before_main + o.after_main + o.phase_unknown == o.count)
    }

    /// Own handoffs of `kind` (all, before `main.main`, after it).
    pub fn own_of(&self, kind: OwnHandoff) -> Option<&OwnCount> {
        self.own.iter().find(|o| o.key == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        gobin::symbolize::testing::{ret, symbolizer},
        model::{Event, RawFd, TakenFlags},
    };

    const RETAKE: usize = 0;
    const FOREACHP: usize = 1;
    const BLOCK: usize = 2;
    const STEAL: usize = 3;
    const SLEEPER: usize = 4;
    const LOCKED: usize = 5;
    const FUNCTIONS: &[&str] = &[
        "runtime.retake",
        "runtime.forEachP",
        "runtime.entersyscallblock",
        "runtime.exitsyscallTryGetP",
        "main.sleeper",
        "runtime.stoplockedm",
    ];

    fn call(model: &mut Model, tid: u32, start: u64, end: u64, p: PHandoff, taken: TakenFlags) {
        model.apply(&Event::SlowCall {
            tid,
            ts_ns: end,
            sysno: 35,
            ret: 0,
            duration_ns: end - start,
            goid: 1,
            p,
            cgo: false,
            taken,
            p_id: Some(0),
            fd: RawFd::default(),
            frames: vec![ret(SLEEPER), ret(SLEEPER)],
        });
    }

    fn handoff(model: &mut Model, ts: u64, caller: usize, victim: Victim) {
        model.apply(&Event::Handoff {
            tid: 99,
            ts_ns: ts,
            caller: ret(caller),
            p_id: Some(0),
            victim,
        });
    }

    fn count<K: PartialEq>(v: &[Count<K>], key: K) -> u64 {
        v.iter().filter(|c| c.key == key).map(|c| c.count).sum()
    }

    #[test]
    fn every_takeover_is_counted_once_and_each_breakdown_sums() {
        let sym = symbolizer(FUNCTIONS);
        let mut m = Model::new(1);
        let handoff_flag = TakenFlags {
            handoff: true,
            stw: false,
        };
        // Named by the kernel: a reported call, and a call that ended as
        // its P was taken (no report).
        call(&mut m, 10, 1_000, 50_000, PHandoff::Lost, handoff_flag);
        handoff(
            &mut m,
            30_000,
            RETAKE,
            Victim::InSyscall {
                tid: 10,
                sysno: 35,
                start_ns: 1_000,
            },
        );
        handoff(
            &mut m,
            40_000,
            FOREACHP,
            Victim::InSyscall {
                tid: 11,
                sysno: 0,
                start_ns: 2_000,
            },
        );
        // Outside the kernel, in C, not found.
        handoff(&mut m, 41_000, RETAKE, Victim::NotInSyscall { tid: 12 });
        handoff(&mut m, 42_000, RETAKE, Victim::InC { tid: 13 });
        handoff(&mut m, 43_000, RETAKE, Victim::NotFound);
        // The runtime's own wait handing its P off: not a syscall's P.
        handoff(&mut m, 44_000, BLOCK, Victim::NotFound);
        // A lost call no probe took: a steal-back.
        call(
            &mut m,
            14,
            60_000,
            90_000,
            PHandoff::Lost,
            TakenFlags::default(),
        );
        // A lost call flagged by a stop-the-world.
        call(
            &mut m,
            15,
            100_000,
            190_000,
            PHandoff::Lost,
            TakenFlags {
                handoff: false,
                stw: true,
            },
        );
        let h = reconcile(&m, &sym);
        assert!(h.consistent(), "{h:#?}");
        assert_eq!(h.total, 7);
        assert_eq!(count(&h.by_taker, Taker::SysmonRetake), 4);
        assert_eq!(count(&h.by_taker, Taker::GcForEachP), 1);
        assert_eq!(count(&h.by_taker, Taker::StealBack), 1);
        assert_eq!(count(&h.by_taker, Taker::StopTheWorld), 1);
        assert_eq!(h.attributed_to_calls, 3);
        assert_eq!(count(&h.unattributed, Unattributed::CallEndedAsTaken), 1);
        assert_eq!(count(&h.unattributed, Unattributed::OutsideKernel), 1);
        assert_eq!(count(&h.unattributed, Unattributed::InC), 1);
        assert_eq!(count(&h.unattributed, Unattributed::ThreadNotFound), 1);
        assert_eq!(count(&h.by_syscall, Some("nanosleep".into())), 3);
        assert_eq!(count(&h.by_syscall, Some("read".into())), 1);
        assert_eq!(count(&h.by_syscall, None), 3);
        let wait = h.own_of(OwnHandoff::RuntimeWait).unwrap();
        // Attached (no launch): after main.main.
        assert_eq!((wait.count, wait.after_main), (1, 1));
        assert_eq!(h.by_site.values().sum::<u64>(), 3);
    }

    #[test]
    fn stripped_binaries_match_handoffs_to_lost_calls_on_the_same_p_by_time() {
        let sym = symbolizer(FUNCTIONS);
        let mut m = Model::new(1);
        call(
            &mut m,
            10,
            1_000,
            50_000,
            PHandoff::Lost,
            TakenFlags::default(),
        );
        call(
            &mut m,
            11,
            60_000,
            70_000,
            PHandoff::Lost,
            TakenFlags::default(),
        );
        handoff(&mut m, 30_000, RETAKE, Victim::NotSearched);
        // No call in progress then: a call under the 20 µs threshold.
        handoff(&mut m, 55_000, RETAKE, Victim::NotSearched);
        // A steal-back on 1.26+ is the runtime's own record.
        m.apply(&Event::PTaken {
            tid: 98,
            ts_ns: 65_000,
            caller: ret(STEAL),
            p_id: Some(0),
            new_state: 0,
            victim: Victim::InSyscall {
                tid: 11,
                sysno: 35,
                start_ns: 60_000,
            },
        });
        let h = reconcile(&m, &sym);
        assert!(h.consistent(), "{h:#?}");
        assert_eq!(h.total, 3);
        assert_eq!(count(&h.by_taker, Taker::SysmonRetake), 2);
        assert_eq!(count(&h.by_taker, Taker::StealBack), 1);
        assert_eq!(count(&h.unattributed, Unattributed::ShortCallStripped), 1);
        assert_eq!(h.attributed_to_calls, 2);
    }

    #[test]
    fn locked_goroutine_handoffs_are_split_at_main_main() {
        let sym = symbolizer(FUNCTIONS);
        let locked = |m: &Model| {
            let h = reconcile(m, &sym);
            assert!(h.consistent(), "{h:#?}");
            let o = h
                .own_of(OwnHandoff::LockedGoroutineBlocked)
                .unwrap()
                .clone();
            (o.count, o.before_main, o.after_main, o.phase_unknown)
        };
        // Launched: package init blocks with the main goroutine locked
        // (three handoffs), then main.main, then one more.
        let mut m = Model::new(1);
        m.runtime.launched_by_exec = true;
        for ts in [10, 20, 30] {
            handoff(&mut m, ts, LOCKED, Victim::NotFound);
        }
        // Before main.main's start is seen: when they happened is unknown.
        assert_eq!(locked(&m), (3, 0, 0, 3));
        m.apply(&Event::MainStart {
            tid: 1,
            ts_ns: 40,
            values: Default::default(),
        });
        handoff(&mut m, 50, LOCKED, Victim::NotFound);
        assert_eq!(locked(&m), (4, 3, 1, 0));
        // Attached to a running process: all after main.main.
        let mut m = Model::new(1);
        handoff(&mut m, 10, LOCKED, Victim::NotFound);
        assert_eq!(locked(&m), (1, 0, 1, 0));
    }
}
