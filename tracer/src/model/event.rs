//! The decoded event model: what the kernel side reports, in plain Rust
//! types that do not depend on the kernel. The aggregator consumes only these,
//! so a stream of them can be recorded and replayed, and tests can feed it
//! without a kernel.

use serde::{Deserialize, Serialize};
use tracer_common::{
    EventHeader, EventKind, HandoffEvent, NewMEvent, PState, SlowCallEvent, StwEvent, SyscallEvent,
    SyscallHist, ThreadEvent, VdsoKey,
};

/// What happened to the goroutine's P during a call (see `tracer_common::PState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PHandoff {
    Unknown,
    /// The M kept its P: fast exit.
    Kept,
    /// The P was taken while the goroutine was in the kernel.
    Lost,
    /// A raw syscall: the P was held throughout.
    Raw,
    /// The runtime's own call on a system stack (no goroutine).
    Runtime,
}

impl From<PState> for PHandoff {
    fn from(s: PState) -> Self {
        match s {
            PState::Unknown => Self::Unknown,
            PState::Kept => Self::Kept,
            PState::Lost => Self::Lost,
            PState::Raw => Self::Raw,
            PState::Runtime => Self::Runtime,
        }
    }
}

/// One thing that happened in (or was measured from) the traced process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A completed syscall, timed by the kernel.
    Syscall {
        tid: u32,
        ts_ns: u64,
        sysno: u32,
        ret: i64,
        duration_ns: u64,
    },
    /// A new thread in the target (`parent_tid` called clone).
    ThreadSpawn {
        parent_tid: u32,
        tid: u32,
        ts_ns: u64,
        during_group_exit: bool,
    },
    /// A thread of the target exited.
    ThreadExit {
        tid: u32,
        ts_ns: u64,
        during_group_exit: bool,
    },
    /// A call that was slow or lost its P, with the goroutine and the user
    /// stack (program counters, innermost first).
    SlowCall {
        tid: u32,
        ts_ns: u64,
        sysno: u32,
        ret: i64,
        duration_ns: u64,
        /// 0 when unknown (not Go, or the runtime state could not be read).
        goid: u64,
        p: PHandoff,
        /// Made by C code during a cgo call (frames: the Go stack that
        /// made the cgo call).
        cgo: bool,
        /// The id of the P the call started with, when read.
        p_id: Option<u32>,
        frames: Vec<u64>,
    },
    /// A goroutine on thread `tid` left its syscall on the slow path: no P
    /// was free, so it was queued and the thread parked.
    SlowExit { tid: u32, ts_ns: u64 },
    /// `runtime.handoffp` was called from `caller` (a return address).
    Handoff {
        tid: u32,
        ts_ns: u64,
        caller: u64,
        /// The P handed off, when read.
        p_id: Option<u32>,
    },
    /// Go 1.26+: a P was taken from a thread in a syscall
    /// (`syscallingThread.releaseP`), by `caller` (a return address).
    PTaken {
        tid: u32,
        ts_ns: u64,
        caller: u64,
        p_id: Option<u32>,
        /// The P's new state: 3 (`_Pgcstop`) when a stop-the-world took it.
        new_state: u32,
    },
    /// The runtime began stopping the world: every P still in a syscall
    /// is taken until the world restarts.
    StwStart {
        tid: u32,
        ts_ns: u64,
        /// Bit i: P i was in a syscall as the world stopped, so the stop
        /// takes it (≤1.25, when the runtime's P list could be read).
        syscall_ps: Option<u64>,
    },
    /// The world restarts.
    StwEnd { tid: u32, ts_ns: u64 },
    /// The runtime entered `newm1` on thread `tid`: the next thread it
    /// spawns is a new M, wanted for the reason the stack shows.
    NewM {
        tid: u32,
        ts_ns: u64,
        /// newm1's caller first, then its callers.
        frames: Vec<u64>,
    },
    /// A thread exited while the process ran, and the last
    /// `runtime.LockOSThread` on it is known: a goroutine ended while locked
    /// to it (Go ends threads for no other reason).
    LockedThreadExit {
        tid: u32,
        goid: u64,
        /// The LockOSThread call site first, then its callers.
        frames: Vec<u64>,
    },
    /// Real syscalls of a call the vDSO normally serves, from one user stack:
    /// the cumulative in-kernel count, summed over CPUs.
    VdsoCalls {
        sysno: u32,
        /// `clock_gettime`'s clock id (0 for the other syscalls).
        clock: i32,
        /// The user stack, innermost first; frame 0 is the syscall's address.
        frames: Vec<u64>,
        calls: u64,
    },
    /// The cumulative in-kernel aggregate of one syscall, summed over CPUs.
    /// Buckets are `(bucket index, count)` in the `tracer_common::buckets`
    /// scheme, zero counts left out.
    SyscallAggregate {
        sysno: u32,
        calls: u64,
        errors: u64,
        total_ns: u64,
        max_ns: u64,
        buckets: Vec<(u32, u64)>,
    },
}

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is too short for a {what}")]
    TooShort { what: &'static str, len: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
}

fn read<T: Copy>(bytes: &[u8], what: &'static str) -> Result<T, DecodeError> {
    if bytes.len() < size_of::<T>() {
        return Err(DecodeError::TooShort {
            what,
            len: bytes.len(),
        });
    }
    // SAFETY: length checked; T is a plain `#[repr(C)]` ABI type for which
    // any byte pattern is valid; read_unaligned copes with any alignment.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

impl Event {
    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let kind: u32 = read(bytes, "record header")?;
        match EventKind::from_u32(kind) {
            Some(EventKind::Syscall) => {
                let e: SyscallEvent = read(bytes, "syscall record")?;
                Ok(Self::Syscall {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    sysno: e.sysno,
                    ret: e.ret,
                    duration_ns: e.duration_ns,
                })
            }
            Some(EventKind::ThreadSpawn) => {
                let e: ThreadEvent = read(bytes, "thread record")?;
                Ok(Self::ThreadSpawn {
                    parent_tid: e.header.tid,
                    tid: e.tid,
                    ts_ns: e.header.ts_ns,
                    during_group_exit: e.during_group_exit != 0,
                })
            }
            Some(EventKind::ThreadExit) => {
                let e: ThreadEvent = read(bytes, "thread record")?;
                Ok(Self::ThreadExit {
                    tid: e.tid,
                    ts_ns: e.header.ts_ns,
                    during_group_exit: e.during_group_exit != 0,
                })
            }
            Some(EventKind::SlowCall) => {
                let e: SlowCallEvent = read(bytes, "slow-call record")?;
                let n = (e.nframes as usize).min(e.frames.len());
                Ok(Self::SlowCall {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    sysno: e.sysno,
                    ret: e.ret,
                    duration_ns: e.duration_ns,
                    goid: e.goid,
                    p: PState::from_u32(e.p_state).into(),
                    cgo: e.flags & tracer_common::SLOW_CALL_CGO != 0,
                    p_id: ((e.flags >> 8) & 0xffff).checked_sub(1),
                    frames: e.frames[..n].to_vec(),
                })
            }
            Some(EventKind::SlowExit) => {
                let e: ThreadEvent = read(bytes, "slow-exit record")?;
                Ok(Self::SlowExit {
                    tid: e.tid,
                    ts_ns: e.header.ts_ns,
                })
            }
            Some(EventKind::Handoff) => {
                let e: HandoffEvent = read(bytes, "handoff record")?;
                Ok(Self::Handoff {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    caller: e.caller,
                    p_id: e.p_id_plus1.checked_sub(1),
                })
            }
            Some(EventKind::PTaken) => {
                let e: HandoffEvent = read(bytes, "P-taken record")?;
                Ok(Self::PTaken {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    caller: e.caller,
                    p_id: e.p_id_plus1.checked_sub(1),
                    new_state: e.new_state,
                })
            }
            Some(EventKind::StwStart) => {
                let e: StwEvent = read(bytes, "stop-the-world record")?;
                Ok(Self::StwStart {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    syscall_ps: (e.read != 0).then_some(e.syscall_ps),
                })
            }
            Some(EventKind::StwEnd) => {
                let h: EventHeader = read(bytes, "stop-the-world record")?;
                Ok(Self::StwEnd {
                    tid: h.tid,
                    ts_ns: h.ts_ns,
                })
            }
            Some(EventKind::NewM) => {
                let e: NewMEvent = read(bytes, "new-M record")?;
                let n = (e.nframes as usize).min(e.frames.len());
                let mut frames = e.frames[..n].to_vec();
                // The kernel's entry fix-up may repeat the caller.
                if frames.len() > 1 && frames[0] == frames[1] {
                    frames.remove(1);
                }
                Ok(Self::NewM {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    frames,
                })
            }
            None => Err(DecodeError::UnknownKind(kind)),
        }
    }

    /// One vDSO-fallback call site from its in-kernel key and per-CPU counts.
    pub fn vdso_calls<'a>(key: &VdsoKey, per_cpu: impl IntoIterator<Item = &'a u64>) -> Self {
        let n = key
            .frames
            .iter()
            .position(|&f| f == 0)
            .unwrap_or(key.frames.len());
        Self::VdsoCalls {
            sysno: key.sysno,
            clock: key.clock as i32,
            frames: key.frames[..n].to_vec(),
            calls: per_cpu.into_iter().sum(),
        }
    }

    /// Sums per-CPU kernel histograms of one syscall into one aggregate event.
    pub fn aggregate<'a>(sysno: u32, per_cpu: impl IntoIterator<Item = &'a SyscallHist>) -> Self {
        let mut calls = 0;
        let mut errors = 0;
        let mut total_ns = 0u64;
        let mut max_ns = 0;
        let mut sums = vec![0u64; tracer_common::buckets::NUM_BUCKETS];
        for hist in per_cpu {
            calls += hist.calls;
            errors += hist.errors;
            total_ns = total_ns.saturating_add(hist.total_ns);
            max_ns = max_ns.max(hist.max_ns);
            for (sum, count) in sums.iter_mut().zip(hist.buckets.iter()) {
                *sum += count;
            }
        }
        let buckets = sums
            .into_iter()
            .enumerate()
            .filter(|&(_, count)| count != 0)
            .map(|(index, count)| (index as u32, count))
            .collect();
        Self::SyscallAggregate {
            sysno,
            calls,
            errors,
            total_ns,
            max_ns,
            buckets,
        }
    }
}

#[cfg(test)]
mod tests {
    use tracer_common::EventHeader;

    use super::*;

    fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a padding-free repr(C) value.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
            .to_vec()
    }

    #[test]
    fn decodes_syscall_records() {
        let raw = SyscallEvent {
            header: EventHeader {
                kind: EventKind::Syscall as u32,
                tid: 7,
                ts_ns: 99,
            },
            sysno: 17,
            _pad: 0,
            ret: -2,
            duration_ns: 1234,
        };
        assert_eq!(
            Event::decode(&bytes_of(&raw)),
            Ok(Event::Syscall {
                tid: 7,
                ts_ns: 99,
                sysno: 17,
                ret: -2,
                duration_ns: 1234
            })
        );
    }

    #[test]
    fn decodes_thread_records() {
        let raw = ThreadEvent {
            header: EventHeader {
                kind: EventKind::ThreadSpawn as u32,
                tid: 10,
                ts_ns: 5,
            },
            tid: 11,
            during_group_exit: 0,
        };
        assert_eq!(
            Event::decode(&bytes_of(&raw)),
            Ok(Event::ThreadSpawn {
                parent_tid: 10,
                tid: 11,
                ts_ns: 5,
                during_group_exit: false
            })
        );
    }

    #[test]
    fn rejects_bad_records() {
        assert!(matches!(
            Event::decode(&[1, 0]),
            Err(DecodeError::TooShort { .. })
        ));
        assert_eq!(
            Event::decode(&[99, 0, 0, 0]),
            Err(DecodeError::UnknownKind(99))
        );
        let short = [1u8, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            Event::decode(&short),
            Err(DecodeError::TooShort { .. })
        ));
    }

    #[test]
    fn aggregates_cpus() {
        let mut a = SyscallHist::ZERO;
        a.calls = 2;
        a.total_ns = 30;
        a.max_ns = 20;
        a.buckets[10] = 1;
        a.buckets[20] = 1;
        let mut b = SyscallHist::ZERO;
        b.calls = 1;
        b.errors = 1;
        b.total_ns = 50;
        b.max_ns = 50;
        b.buckets[50] = 1;
        b.buckets[20] = 0;
        assert_eq!(
            Event::aggregate(3, [&a, &b]),
            Event::SyscallAggregate {
                sysno: 3,
                calls: 3,
                errors: 1,
                total_ns: 80,
                max_ns: 50,
                buckets: vec![(10, 1), (20, 1), (50, 1)],
            }
        );
    }
}
