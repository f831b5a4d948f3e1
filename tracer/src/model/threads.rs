//! Thread lifecycle: counts, every spawn with the runtime's own record of
//! why it wanted the thread (`newm`, `newm1`, and the P handoff that led to
//! it), and the syscall exits whose entry was not seen.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use super::{
    Capped,
    event::{MState, ThreadEnd},
};

/// Threads kept with their origin (past it, spawns are only counted).
const MAX_SPAWNS: usize = 100_000;
/// M requests deferred to the template thread and not yet started.
const MAX_DEFERRED: usize = 10_000;

/// `newm` or `newm1` as the runtime entered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMRecord {
    pub tid: u32,
    pub ts_ns: u64,
    pub m: MState,
    /// The probed function's caller first, then its callers.
    pub frames: Vec<u64>,
    /// The P handoff made on the same thread just before (the
    /// `handoffp → startm → newm` chain), as an index into
    /// `RuntimeEvents::handoffs`.
    pub handoff: Option<usize>,
}

/// Why the runtime started a thread, as far as the probes saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpawnOrigin {
    /// The runtime started it (`newm1` on the spawning thread); `wanted` is
    /// the `newm` that asked for it: on the same thread, or, for a request
    /// deferred to the template thread, the oldest waiting request.
    Runtime {
        start: NewMRecord,
        wanted: Option<NewMRecord>,
    },
    /// No `newm1` preceded the spawn: not the Go runtime (C code calling
    /// pthread_create), or a Go target without runtime probes.
    NoRuntimeRecord,
}

/// A thread the target spawned.
#[derive(Clone, Debug)]
pub struct Spawn {
    pub tid: u32,
    pub parent_tid: u32,
    pub ts_ns: u64,
    pub origin: SpawnOrigin,
}

impl Spawn {
    /// The runtime's record of why it wanted this thread: the `newm` that
    /// asked for it, else the `newm1` that started it; `None` without a
    /// runtime record.
    pub fn request(&self) -> Option<&NewMRecord> {
        match &self.origin {
            SpawnOrigin::Runtime { start, wanted } => Some(wanted.as_ref().unwrap_or(start)),
            SpawnOrigin::NoRuntimeRecord => None,
        }
    }
}

/// Thread lifecycle counts and origins.
#[derive(Clone, Debug, Default)]
pub struct Threads {
    /// Threads alive when tracing began.
    pub at_start: u64,
    pub spawned: u64,
    /// Threads that called exit(2) while the process went on.
    pub exited_itself: u64,
    /// Threads that ended with the process (its exit_group, a fatal signal,
    /// an exec).
    pub ended_with_process: u64,
    /// Most threads alive at once (given the count at start).
    pub peak: u64,
    live: i64,
    pub spawns: Capped<Spawn>,
    /// tid → spawned while traced (and not exited): a clone return on it
    /// is that thread's first exit, not a call in progress at attach.
    spawned_live: HashSet<u32>,
    /// `newm` calls not yet followed by a `newm1` on their thread.
    wanted: HashMap<u32, NewMRecord>,
    /// `newm` calls deferred to the template thread (the calling M was
    /// locked or in C), oldest first.
    deferred: VecDeque<NewMRecord>,
    pub deferred_dropped: u64,
    /// `newm1` calls not yet followed by a spawn on their thread.
    starting: HashMap<u32, (NewMRecord, Option<NewMRecord>)>,
    pub unmatched: UnmatchedExits,
}

/// Syscall exits without an entry, by why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnmatchedExits {
    /// Calls in progress when the probes attached: one per thread at most;
    /// their duration is unknown. By syscall number.
    pub in_progress_at_attach: BTreeMap<u32, u64>,
    /// A new thread's return from clone (its entry was its parent's).
    pub clone_returns: u64,
    /// The entry was dropped in an in-flight slot collision (counted
    /// among the losses too).
    pub collided: u64,
    /// Exits of the tracer's own launcher, before the launch exec (run
    /// mode): not the target's.
    pub launcher: u64,
    /// Threads that already had an unmatched exit.
    threads_seen: HashSet<u32>,
    /// A second unmatched exit on one thread (should not happen).
    pub repeated: u64,
}

/// x86_64 `clone` and `clone3`.
const SYS_CLONE: u32 = 56;
const SYS_CLONE3: u32 = 435;

impl Threads {
    pub fn new(at_start: u64) -> Self {
        Self {
            at_start,
            peak: at_start,
            live: at_start as i64,
            spawns: Capped::new(MAX_SPAWNS),
            ..Self::default()
        }
    }

    /// Threads alive by the model's count (start + spawned - ended).
    pub fn live(&self) -> u64 {
        self.live.max(0) as u64
    }

    pub fn spawn(&mut self, parent_tid: u32, tid: u32, ts_ns: u64) {
        if !self.spawned_live.insert(tid) {
            return; // one spawn per tid lifetime
        }
        let origin = match self.starting.remove(&parent_tid) {
            Some((start, wanted)) => SpawnOrigin::Runtime { start, wanted },
            None => SpawnOrigin::NoRuntimeRecord,
        };
        self.spawns.push(Spawn {
            tid,
            parent_tid,
            ts_ns,
            origin,
        });
        self.spawned += 1;
        self.live += 1;
        self.peak = self.peak.max(self.live());
    }

    pub fn exit(&mut self, tid: u32, how: ThreadEnd) {
        self.spawned_live.remove(&tid);
        self.live -= 1;
        match how {
            ThreadEnd::ExitedItself => self.exited_itself += 1,
            ThreadEnd::ExitGroup | ThreadEnd::KilledWithProcess => self.ended_with_process += 1,
        }
    }

    /// `newm` (the runtime wants an M) on thread `tid`.
    pub fn newm_wanted(&mut self, record: NewMRecord) {
        // newm hands the M to the template thread when the calling M is
        // locked (LockOSThread) or in C; it starts it itself otherwise.
        let deferred =
            record.m.locked_ext.is_some_and(|n| n > 0) || record.m.incgo.unwrap_or(false);
        if deferred {
            if self.deferred.len() < MAX_DEFERRED {
                self.deferred.push_back(record);
            } else {
                self.deferred_dropped += 1;
            }
        } else {
            self.wanted.insert(record.tid, record);
        }
    }

    /// `newm1` (the runtime starts the M's thread) on thread `tid`: the
    /// request it serves is this thread's own `newm`, else the oldest one
    /// deferred to the template thread.
    pub fn newm_start(&mut self, record: NewMRecord) {
        let wanted = self
            .wanted
            .remove(&record.tid)
            .or_else(|| self.deferred.pop_front());
        self.starting.insert(record.tid, (record, wanted));
    }

    /// `before_launch`: the tracer launched the process and has not seen
    /// its launch exec yet (the exit is the launcher's).
    pub fn unmatched_exit(
        &mut self,
        tid: u32,
        sysno: u32,
        ret: i64,
        collided: bool,
        before_launch: bool,
    ) {
        let u = &mut self.unmatched;
        if before_launch {
            u.launcher += 1;
        } else if collided {
            u.collided += 1;
        } else if ret == 0
            && (sysno == SYS_CLONE || sysno == SYS_CLONE3)
            && self.spawned_live.contains(&tid)
        {
            u.clone_returns += 1;
        } else if u.threads_seen.insert(tid) {
            *u.in_progress_at_attach.entry(sysno).or_default() += 1;
        } else {
            log::debug!(
                "a second syscall exit without entry on thread {tid}: syscall {sysno}, returned {ret}"
            );
            u.repeated += 1;
        }
    }
}

impl UnmatchedExits {
    pub fn in_progress_total(&self) -> u64 {
        self.in_progress_at_attach.values().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(tid: u32, locked_ext: u32) -> NewMRecord {
        NewMRecord {
            tid,
            ts_ns: 0,
            m: MState {
                locked_ext: Some(locked_ext),
                locked_int: Some(0),
                incgo: Some(false),
                m_id: Some(1),
            },
            frames: vec![tid as u64],
            handoff: None,
        }
    }

    #[test]
    fn counts_and_peaks() {
        let mut t = Threads::new(1);
        for tid in 2..=5 {
            t.spawn(1, tid, 0);
        }
        t.exit(2, ThreadEnd::ExitedItself);
        t.exit(3, ThreadEnd::KilledWithProcess);
        assert_eq!(t.spawned, 4);
        assert_eq!(t.exited_itself, 1);
        assert_eq!(t.ended_with_process, 1);
        assert_eq!(t.peak, 5);
        assert_eq!(t.live(), 3);
    }

    #[test]
    fn direct_and_deferred_m_requests_reach_their_spawns() {
        let mut t = Threads::new(1);
        // A locked thread (10) wants an M: the template thread (20) starts it.
        t.newm_wanted(record(10, 1));
        // An unlocked thread (30) wants and starts its own.
        t.newm_wanted(record(30, 0));
        t.newm_start(record(30, 0));
        t.spawn(30, 31, 1);
        t.newm_start(record(20, 0));
        t.spawn(20, 21, 2);
        // A C thread spawns with no runtime record.
        t.spawn(40, 41, 3);
        let origins: Vec<_> = t.spawns.iter().map(|s| &s.origin).collect();
        let wanted_by = |o: &SpawnOrigin| match o {
            SpawnOrigin::Runtime { wanted, .. } => wanted.as_ref().map(|w| w.tid),
            SpawnOrigin::NoRuntimeRecord => None,
        };
        assert_eq!(wanted_by(origins[0]), Some(30));
        assert_eq!(wanted_by(origins[1]), Some(10));
        assert_eq!(*origins[2], SpawnOrigin::NoRuntimeRecord);
    }

    #[test]
    fn unmatched_exits_are_told_apart() {
        let mut t = Threads::new(3);
        t.spawn(1, 7, 0);
        t.unmatched_exit(7, SYS_CLONE, 0, false, false);
        t.unmatched_exit(1, 202, 0, false, false);
        t.unmatched_exit(2, 202, -4, false, false);
        t.unmatched_exit(2, 0, 0, false, false);
        t.unmatched_exit(3, 0, 0, true, false);
        t.unmatched_exit(4, 0, 0, false, true);
        let u = &t.unmatched;
        assert_eq!(u.clone_returns, 1);
        assert_eq!(u.in_progress_total(), 2);
        assert_eq!(u.repeated, 1);
        assert_eq!(u.collided, 1);
        assert_eq!(u.launcher, 1);
    }
}
