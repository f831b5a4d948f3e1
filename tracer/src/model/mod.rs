//! The aggregator: consumes decoded [`Event`]s and keeps what happened —
//! per-syscall histograms and errors, threads and why the runtime started
//! them, the calls reported one by one, the Go runtime's rare events. Pure:
//! it never touches the kernel, so it can be fed from a live session, a
//! recording, or a test. It infers nothing: `analysis` does.
//!
//! Every list is bounded ([`Capped`]) and says how much it dropped, so a
//! session that runs for weeks keeps a flat memory.

pub mod calls;
pub mod event;
pub mod processes;
pub mod runtime;
pub mod syscalls;
pub mod threads;

use std::collections::HashMap;

pub use event::{Event, PHandoff, RawFd, RuntimeValues, TakenFlags, ThreadEnd, Victim};
use serde::{Deserialize, Serialize};
use tracer_common::Counter;

use self::{
    calls::{Calls, ReportedCall, SiteKey},
    processes::Processes,
    runtime::{Handoff, HandoffProbe, RuntimeEvents},
    syscalls::{SyscallTable, Waiter},
    threads::{NewMRecord, Threads},
};

/// A list that keeps its first `cap` items and counts the rest.
#[derive(Clone, Debug)]
pub struct Capped<T> {
    items: Vec<T>,
    cap: usize,
    /// Items not kept because the list was full.
    pub dropped: u64,
}

/// An empty list that keeps nothing until given a cap.
impl<T> Default for Capped<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

impl<T> Capped<T> {
    pub fn new(cap: usize) -> Self {
        Self {
            items: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    /// Adds an item; its index, or `None` when the list is full.
    pub fn push(&mut self, item: T) -> Option<usize> {
        if self.items.len() < self.cap {
            self.items.push(item);
            Some(self.items.len() - 1)
        } else {
            self.dropped += 1;
            None
        }
    }

    pub fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, T> {
        self.items.iter()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Items seen in all, kept or not.
    pub fn seen(&self) -> u64 {
        self.items.len() as u64 + self.dropped
    }
}

/// The kernel's counters (as last read) and userspace's own losses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Every kernel counter by `tracer_common::Counter` index.
    pub kernel: [u64; tracer_common::NUM_COUNTERS as usize],
    /// Ring-buffer records userspace could not decode.
    pub undecodable: u64,
}

impl Counters {
    pub fn get(&self, c: Counter) -> u64 {
        self.kernel[c as usize]
    }

    /// Records lost to a full ring buffer, by event kind (non-zero only;
    /// they add up to [`Counter::RingBufFull`]).
    pub fn ringbuf_full_by_kind(&self) -> Vec<(Option<tracer_common::EventKind>, u64)> {
        (0..tracer_common::EVENT_KINDS)
            .map(|k| {
                let n = self.kernel[tracer_common::ringbuf_full_slot(k) as usize];
                (tracer_common::EventKind::from_u32(k), n)
            })
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// The target's child processes not followed (following was off).
    pub fn children_not_followed(&self) -> u64 {
        self.kernel[tracer_common::CHILDREN_NOT_FOLLOWED_SLOT as usize]
    }

    /// Child processes not followed: their PID was past the kernel's array
    /// of followed processes (`pid_max` raised after the load).
    pub fn follow_map_full(&self) -> u64 {
        self.kernel[tracer_common::FOLLOW_MAP_FULL_SLOT as usize]
    }

    /// Calls or events missing from the report.
    pub fn lost(&self) -> u64 {
        self.get(Counter::RingBufFull)
            + self.get(Counter::InFlightCollision)
            + self.get(Counter::UnknownSyscall)
            + self.get(Counter::VdsoMapFull)
            + self.undecodable
    }
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

/// One thing the session feeds the model: all a model is made of, so a
/// recording of these replays into the same model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Input {
    /// A decoded ring-buffer record, or a kernel aggregate as last read.
    Event(Event),
    /// A ring-buffer record that could not be decoded.
    Undecodable,
    /// The kernel's counters as last read, by `tracer_common::Counter`
    /// index.
    KernelCounters(Vec<u64>),
}

/// The aggregate state of one tracing session.
#[derive(Clone, Debug)]
pub struct Model {
    pub syscalls: SyscallTable,
    pub threads: Threads,
    pub calls: Calls,
    pub runtime: RuntimeEvents,
    /// Real syscalls of calls the vDSO normally serves, by call site (the
    /// kernel's cumulative counts as last read).
    pub vdso_calls: HashMap<VdsoSite, u64>,
    pub counters: Counters,
    /// The processes followed with `-f` (the target's children and theirs).
    pub processes: Processes,
}

impl Model {
    /// A model for a process that had `threads_at_start` threads.
    pub fn new(threads_at_start: u64) -> Self {
        Self {
            syscalls: SyscallTable::default(),
            threads: Threads::new(threads_at_start),
            calls: Calls::default(),
            runtime: RuntimeEvents::new(),
            vdso_calls: HashMap::new(),
            counters: Counters::default(),
            processes: Processes::default(),
        }
    }

    /// Takes one input of the session (or of a recording).
    pub fn feed(&mut self, input: &Input) {
        match input {
            Input::Event(event) => self.apply(event),
            Input::Undecodable => self.counters.undecodable += 1,
            Input::KernelCounters(values) => {
                for (slot, &v) in self.counters.kernel.iter_mut().zip(values) {
                    *slot = v;
                }
            }
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match *event {
            Event::Syscall {
                sysno,
                ret,
                duration_ns,
                idle,
                ..
            } => self
                .syscalls
                .record(Waiter::from_idle(idle), sysno, ret, duration_ns),
            Event::SyscallAggregate {
                sysno,
                idle,
                calls,
                errors,
                total_ns,
                max_ns,
                ref errnos,
                ref buckets,
            } => self.syscalls.set_kernel(
                Waiter::from_idle(idle),
                sysno,
                calls,
                errors,
                total_ns,
                max_ns,
                errnos,
                buckets,
            ),
            Event::UnmatchedExit {
                tid,
                sysno,
                ret,
                collided,
                ..
            } => {
                let before_launch = self.runtime.launched_by_exec && self.runtime.execs.is_empty();
                self.threads
                    .unmatched_exit(tid, sysno, ret, collided, before_launch);
            }
            Event::ThreadSpawn {
                parent_tid,
                tid,
                ts_ns,
            } => self.threads.spawn(parent_tid, tid, ts_ns),
            Event::ThreadExit { tid, how, .. } => self.threads.exit(tid, how),
            Event::ProcSyscall {
                pid,
                ts_ns,
                sysno,
                ret,
                duration_ns,
                ..
            } => self.processes.syscall(pid, ts_ns, sysno, ret, duration_ns),
            Event::ProcFork {
                parent_pid,
                pid,
                ts_ns,
                ref command,
            } => self.processes.fork(parent_pid, pid, ts_ns, command),
            Event::ProcThreadSpawn { pid, ts_ns, .. } => self.processes.thread_spawn(pid, ts_ns),
            Event::ProcThreadExit {
                pid,
                ts_ns,
                how,
                last,
                ..
            } => self.processes.thread_exit(pid, ts_ns, how, last),
            Event::ProcExec {
                pid,
                ts_ns,
                ref program,
                ..
            } => self.processes.exec(pid, ts_ns, program),
            Event::ProcJoin {
                pid,
                ts_ns,
                by,
                ref command,
                ..
            } => self.processes.join(pid, ts_ns, by, command),
            // The launch itself (run mode: the tracer's child exec'ing the
            // target, timed from the launcher): counted with the calls,
            // never listed as a call of the program.
            Event::SlowCall { sysno, ret, .. } if self.is_launch_exec(sysno, ret) => {
                self.runtime.launch_exec_listed = true;
            }
            Event::SlowCall {
                tid,
                ts_ns,
                sysno,
                ret,
                duration_ns,
                goid,
                p,
                cgo,
                taken,
                p_id,
                ref fd,
                ref frames,
            } => self.calls.record(&ReportedCall {
                tid,
                ts_ns,
                sysno,
                ret,
                duration_ns,
                goid,
                p,
                cgo,
                taken,
                p_id,
                fd,
                frames,
                after_exec: self.after_exec(),
            }),
            Event::SlowExit { tid, ts_ns } => self.slow_exit(tid, ts_ns),
            Event::Handoff {
                tid,
                ts_ns,
                caller,
                p_id,
                victim,
            } => self.runtime.handoff(Handoff {
                ts_ns,
                tid,
                probe: HandoffProbe::Handoffp,
                caller,
                p_id,
                victim,
            }),
            Event::PTaken {
                tid,
                ts_ns,
                caller,
                p_id,
                new_state,
                victim,
            } => self.runtime.handoff(Handoff {
                ts_ns,
                tid,
                probe: HandoffProbe::ReleaseP { new_state },
                caller,
                p_id,
                victim,
            }),
            Event::StwStart {
                ts_ns,
                syscall_ps,
                victims,
                ..
            } => self.runtime.stw_start(ts_ns, syscall_ps, victims),
            Event::StwEnd { ts_ns, .. } => self.runtime.stw_end(ts_ns),
            Event::NewM {
                tid,
                ts_ns,
                start,
                m,
                ref frames,
            } => {
                // The handoff just before on this thread led here
                // (handoffp → startm → newm): use it once.
                let handoff = if start {
                    None
                } else {
                    self.runtime.last_handoff_on.remove(&tid)
                };
                let record = NewMRecord {
                    tid,
                    ts_ns,
                    m,
                    frames: frames.clone(),
                    handoff,
                };
                if start {
                    self.threads.newm_start(record);
                } else {
                    self.threads.newm_wanted(record);
                }
            }
            Event::Mexit {
                m_id,
                lock_goid,
                ref lock_frames,
                ..
            } => self
                .runtime
                .leak(lock_frames.clone(), lock_goid, m_id == Some(0)),
            Event::MainStart { ts_ns, values, .. } => {
                self.runtime.main_started_ns.get_or_insert(ts_ns);
                self.runtime.values_at_main = Some(values);
            }
            Event::Exec {
                ts_ns, ref program, ..
            } => {
                self.runtime.execs.push(runtime::ExecRecord {
                    ts_ns,
                    program: program.clone(),
                });
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
                self.vdso_calls.insert(site, calls);
            }
        }
    }

    /// Whether the report will list `event`, a slow call about to be
    /// applied (ask before applying it): not the launch's own exec (only
    /// counted), nor a call from a new call site past the cap (counted in
    /// `calls.dropped`). What a view that must add up to the report's
    /// `blocking` rows keeps.
    pub fn lists(&self, event: &Event) -> bool {
        match *event {
            Event::SlowCall { sysno, ret, .. } if self.is_launch_exec(sysno, ret) => false,
            Event::SlowCall {
                sysno,
                cgo,
                ref frames,
                ..
            } => self
                .calls
                .admits(&SiteKey::new(sysno, self.after_exec(), cgo, frames)),
            _ => false,
        }
    }

    /// Whether the process executed another program since the launch:
    /// stacks from now on are that program's, not the binary's read.
    pub fn after_exec(&self) -> bool {
        self.runtime.execs_after_launch() > 0
    }

    /// Whether a successful execve/execveat exit is the launch's own (run
    /// mode, the first exec, its exit not yet seen).
    pub fn is_launch_exec(&self, sysno: u32, ret: i64) -> bool {
        const EXECVE: u32 = 59;
        const EXECVEAT: u32 = 322;
        matches!(sysno, EXECVE | EXECVEAT)
            && ret == 0
            && self.runtime.launched_by_exec
            && self.runtime.execs.seen() == 1
            && !self.runtime.launch_exec_listed
    }

    /// A goroutine on `tid` left its syscall without a P: it belongs to
    /// the call that lost the P on that thread, reported just before.
    fn slow_exit(&mut self, tid: u32, ts_ns: u64) {
        /// exitsyscall runs right after the kernel returns.
        const WINDOW_NS: u64 = 100_000_000;
        let s = &mut self.runtime.slow_exits;
        s.total += 1;
        let call = self
            .calls
            .last_on_thread
            .remove(&tid)
            .filter(|(end, _)| ts_ns.saturating_sub(*end) < WINDOW_NS);
        let outside = self.runtime.taken_outside_syscall.remove(&tid);
        match (call, outside) {
            (Some((end, site)), taken) if taken.is_none_or(|(t, _)| t < end) => {
                s.attributed += 1;
                self.calls.sites[site].1.slow_exits += 1;
            }
            (_, Some((_, true))) => s.in_cgo_outside_syscall += 1,
            (_, Some((_, false))) => s.outside_kernel += 1,
            _ => s.no_call += 1,
        }
    }

    /// Threads alive by the model's count (start + spawned - ended).
    pub fn live_threads(&self) -> u64 {
        self.threads.live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slow_call(tid: u32, ts_ns: u64, duration_ns: u64, p: PHandoff) -> Event {
        Event::SlowCall {
            tid,
            ts_ns,
            sysno: 0,
            ret: 1,
            duration_ns,
            goid: 7,
            p,
            cgo: false,
            taken: TakenFlags::default(),
            p_id: Some(0),
            fd: RawFd::default(),
            frames: vec![0x401000, 0x402000],
        }
    }

    #[test]
    fn the_launch_exec_is_never_a_reported_call() {
        let exec = |m: &mut Model, ts_ns: u64| {
            m.apply(&Event::Exec {
                tid: 5,
                ts_ns,
                program: "/bin/x".into(),
            });
            let mut call = slow_call(5, ts_ns + 10, 3_000_000, PHandoff::Kept);
            if let Event::SlowCall { sysno, ret, .. } = &mut call {
                (*sysno, *ret) = (59, 0);
            }
            m.apply(&call);
        };
        let mut m = Model::new(1);
        m.runtime.launched_by_exec = true;
        exec(&mut m, 1_000_000);
        assert!(m.calls.sites.is_empty(), "{:?}", m.calls.sites);
        // The program exec'ing another program later: its call is listed.
        exec(&mut m, 9_000_000);
        assert_eq!(m.calls.sites.len(), 1);
        // Attached: every exec is the program's.
        let mut m = Model::new(1);
        exec(&mut m, 1_000_000);
        assert_eq!(m.calls.sites.len(), 1);
    }

    /// `lists` says beforehand which calls the model lists: the launch
    /// exec and calls from new sites past the cap are not.
    #[test]
    fn lists_says_which_calls_the_blocking_rows_hold() {
        let mut m = Model::new(1);
        m.runtime.launched_by_exec = true;
        m.apply(&Event::Exec {
            tid: 5,
            ts_ns: 1,
            program: "/bin/x".into(),
        });
        let mut launch = slow_call(5, 10, 3_000_000, PHandoff::Kept);
        if let Event::SlowCall { sysno, ret, .. } = &mut launch {
            (*sysno, *ret) = (59, 0);
        }
        assert!(!m.lists(&launch));
        m.apply(&launch);
        let (mut listed, mut listed_ns) = (0, 0);
        // Distinct stacks until the site list is full, and a few past it.
        let mut pc = 0x40_0000;
        while m.calls.dropped < 3 {
            pc += 8;
            let mut call = slow_call(6, pc, 1_000 + pc % 7, PHandoff::Kept);
            if let Event::SlowCall { frames, .. } = &mut call {
                frames[0] = pc;
            }
            let lists = m.lists(&call);
            let dropped = m.calls.dropped;
            m.apply(&call);
            assert_eq!(lists, m.calls.dropped == dropped, "at {pc:#x}");
            if let (true, Event::SlowCall { duration_ns, .. }) = (lists, &call) {
                listed += 1;
                listed_ns += duration_ns;
            }
        }
        // A known site is still listed when the list is full.
        let mut again = slow_call(6, 1, 5, PHandoff::Lost);
        if let Event::SlowCall { frames, .. } = &mut again {
            frames[0] = 0x40_0008;
        }
        assert!(m.lists(&again));
        let calls: u64 = m.calls.sites.iter().map(|(_, s)| s.calls).sum();
        let total: u64 = m.calls.sites.iter().map(|(_, s)| s.total_ns).sum();
        assert_eq!((calls, total), (listed, listed_ns));
        assert!(!m.lists(&Event::SlowExit { tid: 6, ts_ns: 2 }));
    }

    #[test]
    fn slow_exits_go_to_the_call_that_lost_the_p() {
        let mut m = Model::new(1);
        m.apply(&slow_call(5, 1_000_000, 500_000, PHandoff::Lost));
        m.apply(&Event::SlowExit {
            tid: 5,
            ts_ns: 1_000_100,
        });
        m.apply(&Event::SlowExit {
            tid: 6,
            ts_ns: 1_000_100,
        });
        // A P taken from a thread in C code: its slow exit is the cgo call's.
        m.apply(&Event::Handoff {
            tid: 1,
            ts_ns: 2_000_000,
            caller: 0,
            p_id: Some(1),
            victim: Victim::InC { tid: 8 },
        });
        m.apply(&Event::SlowExit {
            tid: 8,
            ts_ns: 2_500_000,
        });
        let s = m.runtime.slow_exits;
        assert_eq!(
            (s.total, s.attributed, s.no_call, s.in_cgo_outside_syscall),
            (3, 1, 1, 1)
        );
        assert_eq!(m.calls.sites[0].1.slow_exits, 1);
        assert_eq!(m.calls.p_lost[&0], 1);
    }

    #[test]
    fn a_newm_links_the_handoff_before_it_on_the_same_thread() {
        let mut m = Model::new(1);
        m.apply(&Event::Handoff {
            tid: 3,
            ts_ns: 10,
            caller: 0x1,
            p_id: Some(0),
            victim: Victim::InSyscall {
                tid: 5,
                sysno: 35,
                start_ns: 1,
            },
        });
        let newm = |start| Event::NewM {
            tid: 3,
            ts_ns: 11,
            start,
            m: event::MState::default(),
            frames: vec![1],
        };
        m.apply(&newm(false));
        m.apply(&newm(true));
        m.apply(&Event::ThreadSpawn {
            parent_tid: 3,
            tid: 9,
            ts_ns: 12,
        });
        let spawn = m.threads.spawns.get(0).unwrap();
        let threads::SpawnOrigin::Runtime {
            wanted: Some(w), ..
        } = &spawn.origin
        else {
            panic!("no runtime origin: {:?}", spawn.origin);
        };
        assert_eq!(w.handoff, Some(0));
    }

    #[test]
    fn capped_lists_count_what_they_drop() {
        let mut c = Capped::new(2);
        assert_eq!(c.push(1), Some(0));
        assert_eq!(c.push(2), Some(1));
        assert_eq!(c.push(3), None);
        assert_eq!((c.len(), c.dropped, c.seen()), (2, 1, 3));
    }
}
