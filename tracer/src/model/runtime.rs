//! The Go runtime's rare events: P handoffs with the thread that lost the
//! P, stop-the-world windows, slow syscall exits, locked goroutines that
//! exited (LockOSThread leaks), the start of `main.main`, and execs.

use std::collections::{BTreeMap, HashMap};

use super::{Capped, event::Victim};

/// Handoffs and windows kept (past it, counted as dropped).
const MAX_HANDOFFS: usize = 200_000;
const MAX_STW: usize = 100_000;
const MAX_LEAK_SITES: usize = 1_000;

/// Which probe saw a P change hands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HandoffProbe {
    /// `runtime.handoffp`.
    Handoffp,
    /// Go 1.26+ `syscallingThread.releaseP`, with the P's new state.
    ReleaseP { new_state: u32 },
}

/// One P changing hands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub ts_ns: u64,
    /// The thread that took the P (sysmon, the GC, an exiting goroutine).
    pub tid: u32,
    pub probe: HandoffProbe,
    /// Return address into the caller: who took the P.
    pub caller: u64,
    pub p_id: Option<u32>,
    pub victim: Victim,
}

/// A stop-the-world, from the stop to the restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StwWindow {
    pub start_ns: u64,
    pub end_ns: u64,
    /// Bit i: P i was in a syscall as the world stopped (when read).
    pub syscall_ps: Option<u64>,
    /// Calls the stop flagged as holding a P it takes.
    pub victims: u32,
}

/// Where the slow exits went: `total` = `attributed` +
/// `in_cgo_outside_syscall` + `outside_kernel` + `no_call`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SlowExits {
    pub total: u64,
    /// Tied to the reported call that lost its P on that thread.
    pub attributed: u64,
    /// The thread's P was taken while it ran C code outside any syscall
    /// (a cgo call), so no syscall lost it.
    pub in_cgo_outside_syscall: u64,
    /// The thread's P was taken while it was in Go's syscall path outside
    /// the kernel (entering or leaving a call).
    pub outside_kernel: u64,
    /// No reported call on that thread lost its P (a call the ring buffer
    /// dropped, or one that began before tracing).
    pub no_call: u64,
}

/// LockOSThread leaks from one locking call stack.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeakSite {
    pub threads: u64,
    pub goroutines: u64,
    /// Of them, the main thread (m0), which the runtime wedges instead of
    /// ending: it stays blocked for the life of the process.
    pub main_thread: u64,
}

#[derive(Clone, Debug, Default)]
pub struct RuntimeEvents {
    pub handoffs: Capped<Handoff>,
    /// The last P-taking event per taker thread, to link a following
    /// `newm` on that thread (`handoffp → startm → newm`) and a Go 1.26+
    /// `handoffp` to the `releaseP` just before it.
    pub last_handoff_on: HashMap<u32, usize>,
    pub stw: Capped<StwWindow>,
    stw_open: Option<(u64, Option<u64>, u32)>,
    pub slow_exits: SlowExits,
    /// The P taken from a thread that was not in the kernel, and whether
    /// it was in C: its slow exit belongs to that handoff, not to a call.
    pub taken_outside_syscall: HashMap<u32, (u64, bool)>,
    /// Locked goroutine exits by the LockOSThread stack that locked them
    /// (`None`: locked before tracing began).
    pub leaks: BTreeMap<Option<Vec<u64>>, LeakSite>,
    pub leak_sites_dropped: u64,
    pub main_started_ns: Option<u64>,
    /// The runtime's variables as `main.main` began.
    pub values_at_main: Option<super::event::RuntimeValues>,
    /// Programs executed while traced (the launch included), in order;
    /// the first few kept.
    pub execs: Capped<ExecRecord>,
    /// The tracer launched the process: its first exec is the launch.
    pub launched_by_exec: bool,
    /// The launch's own exec exit was seen as a slow call (and left out of
    /// the reported calls).
    pub launch_exec_listed: bool,
}

/// One program the target executed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRecord {
    pub ts_ns: u64,
    pub program: String,
}

/// Execs kept with their program (the count is exact past this).
const MAX_EXECS: usize = 16;

impl RuntimeEvents {
    /// Programs the process executed while traced, past the launch itself.
    pub fn execs_after_launch(&self) -> u64 {
        self.execs
            .seen()
            .saturating_sub(u64::from(self.launched_by_exec))
    }

    /// The programs executed past the launch (those kept).
    pub fn programs_after_launch(&self) -> Vec<String> {
        self.execs
            .iter()
            .skip(usize::from(self.launched_by_exec))
            .map(|e| e.program.clone())
            .collect()
    }

    pub fn new() -> Self {
        Self {
            handoffs: Capped::new(MAX_HANDOFFS),
            stw: Capped::new(MAX_STW),
            execs: Capped::new(MAX_EXECS),
            ..Self::default()
        }
    }

    /// A P changed hands. A Go 1.26+ `handoffp` that follows a `releaseP`
    /// of the same P on the same thread is that handoff's second half: it
    /// inherits the victim.
    pub fn handoff(&mut self, h: Handoff) {
        if h.victim == Victim::NotSearched
            && h.probe == HandoffProbe::Handoffp
            && let Some(&i) = self.last_handoff_on.get(&h.tid)
            && let Some(prev) = self.handoffs.get(i)
            && matches!(prev.probe, HandoffProbe::ReleaseP { .. })
            && prev.p_id == h.p_id
        {
            // Already counted by releaseP: keep it as the link for newm.
            return;
        }
        match h.victim {
            Victim::NotInSyscall { tid } => {
                self.taken_outside_syscall.insert(tid, (h.ts_ns, false));
            }
            Victim::InC { tid } => {
                self.taken_outside_syscall.insert(tid, (h.ts_ns, true));
            }
            _ => {}
        }
        let tid = h.tid;
        if let Some(i) = self.handoffs.push(h) {
            self.last_handoff_on.insert(tid, i);
        }
    }

    pub fn stw_start(&mut self, ts_ns: u64, syscall_ps: Option<u64>, victims: u32) {
        self.stw_open = Some((ts_ns, syscall_ps, victims));
    }

    pub fn stw_end(&mut self, ts_ns: u64) {
        if let Some((start_ns, syscall_ps, victims)) = self.stw_open.take() {
            self.stw.push(StwWindow {
                start_ns,
                end_ns: ts_ns,
                syscall_ps,
                victims,
            });
        }
    }

    pub fn leak(&mut self, frames: Option<Vec<u64>>, goid: Option<u64>, main_thread: bool) {
        if !self.leaks.contains_key(&frames) && self.leaks.len() >= MAX_LEAK_SITES {
            self.leak_sites_dropped += 1;
            return;
        }
        let site = self.leaks.entry(frames).or_default();
        site.threads += 1;
        site.goroutines += u64::from(goid.is_some());
        site.main_thread += u64::from(main_thread);
    }
}
