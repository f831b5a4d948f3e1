//! The decoded event model: what the kernel side reports, in plain Rust
//! types that do not depend on the kernel. The aggregator consumes only
//! these, so a stream of them can be recorded and replayed, and tests can
//! feed it without a kernel.

use serde::{Deserialize, Serialize};
use tracer_common::{
    ERRNO_SLOTS, EventHeader, EventKind, ExecEvent, FD_NAME_LEN, FdInfo, HandoffEvent,
    INFLIGHT_TAKEN_HANDOFF, INFLIGHT_TAKEN_STW, JOIN_CGROUP, JOIN_COMM, JOIN_PID,
    MAIN_READ_GOMAXPROCS, MAIN_READ_MAXMCOUNT, MAIN_READ_VDSO, MainStartEvent, MexitEvent,
    NEWM_START, NewMEvent, PROC_EXEC, PROC_EXIT, PROC_FORK, PROC_JOIN, PROC_SYSCALL,
    PROC_THREAD_EXIT, PROC_THREAD_SPAWN, PState, ProcSyscallEvent, ProcTaskEvent, SlowCallEvent,
    StwEvent, SyscallEvent, SyscallHist, THREAD_EXIT_GROUP, THREAD_EXIT_SELF, ThreadEvent,
    UnmatchedExitEvent, VICTIM_IN_C, VICTIM_IN_SYSCALL, VICTIM_NOT_FOUND, VICTIM_NOT_IN_SYSCALL,
    VICTIM_SCAN_LIMIT, VdsoKey, errno_of_slot,
};

/// What happened to the goroutine's P during a call (see `tracer_common::PState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The runtime blocked on a goroutine's behalf after handing its P off
    /// itself (`entersyscallblock`).
    RuntimeBlocked,
}

impl From<PState> for PHandoff {
    fn from(s: PState) -> Self {
        match s {
            PState::Unknown => Self::Unknown,
            PState::Kept => Self::Kept,
            PState::Lost => Self::Lost,
            PState::Raw => Self::Raw,
            PState::Runtime => Self::Runtime,
            PState::RuntimeBlocked => Self::RuntimeBlocked,
        }
    }
}

/// How a thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadEnd {
    /// It called exit(2) itself while the process went on (for Go: a
    /// goroutine exited while locked to it).
    ExitedItself,
    /// It called exit_group(2): the process ends.
    ExitGroup,
    /// Killed with its process (another thread's exit_group, a fatal
    /// signal, an exec).
    KilledWithProcess,
}

/// Which probe flagged a call as the one whose P was taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TakenFlags {
    /// A P handoff (handoffp, or Go 1.26+ releaseP) named this call.
    pub handoff: bool,
    /// A stop-the-world began while this call held its P in a syscall.
    pub stw: bool,
}

impl TakenFlags {
    fn from_bits(bits: u16) -> Self {
        Self {
            handoff: bits & INFLIGHT_TAKEN_HANDOFF != 0,
            stw: bits & INFLIGHT_TAKEN_STW != 0,
        }
    }

    pub fn any(self) -> bool {
        self.handoff || self.stw
    }
}

/// A descriptor as the kernel saw it at a call's exit (raw fields; see
/// `analysis::fd` for what they mean).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RawFd {
    pub fd: i32,
    /// `tracer_common::FD_*`.
    pub state: u32,
    pub i_mode: u32,
    pub f_flags: u32,
    pub f_op: u64,
    pub sb_magic: u64,
    /// An anonymous inode's dentry name (`[eventfd]`), NUL-padded.
    pub name: [u8; FD_NAME_LEN],
    pub sock_family: u16,
    pub sock_type: u16,
    pub sock_protocol: u16,
}

impl RawFd {
    /// The same descriptor kind with what varies between calls removed
    /// (the number, the flags other than `O_NONBLOCK`, the permission
    /// bits): a key to count calls by kind.
    pub fn kind_key(&self) -> Self {
        const S_IFMT: u32 = 0o170_000;
        const O_NONBLOCK: u32 = 0o4000;
        Self {
            fd: 0,
            i_mode: self.i_mode & S_IFMT,
            f_flags: self.f_flags & O_NONBLOCK,
            ..*self
        }
    }
}

impl From<&FdInfo> for RawFd {
    fn from(f: &FdInfo) -> Self {
        Self {
            fd: f.fd,
            state: f.state,
            i_mode: f.i_mode,
            f_flags: f.f_flags,
            f_op: f.f_op,
            sb_magic: f.sb_magic,
            name: f.name,
            sock_family: f.sock_family,
            sock_type: f.sock_type,
            sock_protocol: f.sock_protocol,
        }
    }
}

/// Where the thread whose P was taken was, as the taking probe saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Victim {
    /// No search was made (Go 1.26+ handoffp, which follows a `PTaken`;
    /// or a stripped binary without the list of Ms).
    NotSearched,
    /// In a syscall: the call that began at `start_ns` on `tid`.
    InSyscall { tid: u32, sysno: u32, start_ns: u64 },
    /// Found, but not in the kernel: in Go's syscall path, entering or
    /// leaving the call (typically off-CPU while the CPUs were busy).
    NotInSyscall { tid: u32 },
    /// Found, not in the kernel, and running C code (a cgo call).
    InC { tid: u32 },
    /// No M had this P in a syscall (its own M gave it up), or the list of
    /// Ms could not be read.
    NotFound,
    /// More Ms than the search visits.
    ScanLimit,
}

impl Victim {
    fn decode(e: &HandoffEvent) -> Self {
        match e.victim_state {
            VICTIM_IN_SYSCALL => Self::InSyscall {
                tid: e.victim_tid,
                sysno: e.victim_sysno,
                start_ns: e.victim_start_ns,
            },
            VICTIM_NOT_IN_SYSCALL => Self::NotInSyscall { tid: e.victim_tid },
            VICTIM_IN_C => Self::InC { tid: e.victim_tid },
            VICTIM_NOT_FOUND => Self::NotFound,
            VICTIM_SCAN_LIMIT => Self::ScanLimit,
            _ => Self::NotSearched,
        }
    }
}

/// Runtime variables read by the kernel as `main.main` starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeValues {
    pub vdso_clock_gettime_sym: Option<u64>,
    pub gomaxprocs: Option<u32>,
    pub maxmcount: Option<u32>,
}

/// The current M's state at a `newm`/`newm1` probe (`None`: unread).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MState {
    /// LockOSThread calls by the program on this M.
    pub locked_ext: Option<u32>,
    /// Locks by the runtime itself (the main goroutine during init).
    pub locked_int: Option<u32>,
    pub incgo: Option<bool>,
    pub m_id: Option<u32>,
}

fn known(v: u32) -> Option<u32> {
    (v != u32::MAX).then_some(v)
}

/// One thing that happened in (or was measured from) the traced process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// A completed syscall, timed by the kernel (streamed: no histogram
    /// slot yet).
    Syscall {
        tid: u32,
        ts_ns: u64,
        sysno: u32,
        ret: i64,
        duration_ns: u64,
        /// One of the Go runtime's idle waits.
        idle: bool,
    },
    /// A syscall exit whose entry was not seen (`sysno` from the kernel's
    /// saved registers; `collided`: its entry lost an in-flight slot).
    UnmatchedExit {
        tid: u32,
        ts_ns: u64,
        sysno: u32,
        ret: i64,
        collided: bool,
    },
    /// A new thread in the target (`parent_tid` called clone).
    ThreadSpawn {
        parent_tid: u32,
        tid: u32,
        ts_ns: u64,
    },
    /// A thread of the target exited.
    ThreadExit {
        tid: u32,
        ts_ns: u64,
        how: ThreadEnd,
    },
    /// A call that was slow, lost its P or was flagged by a P-taking
    /// probe, with the goroutine, its descriptor and the user stack
    /// (program counters, innermost first).
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
        taken: TakenFlags,
        /// The id of the P the call started with, when read.
        p_id: Option<u32>,
        fd: RawFd,
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
        victim: Victim,
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
        victim: Victim,
    },
    /// The runtime began stopping the world: every P still in a syscall
    /// is taken until the world restarts.
    StwStart {
        tid: u32,
        ts_ns: u64,
        /// Bit i: P i was in a syscall as the world stopped, so the stop
        /// takes it (≤1.25, when the runtime's P list could be read).
        syscall_ps: Option<u64>,
        /// Calls flagged as holding a P the stop takes.
        victims: u32,
    },
    /// The world restarts.
    StwEnd { tid: u32, ts_ns: u64 },
    /// The runtime wants a new M (`newm`, `start == false`) or starts its
    /// thread (`newm1`, `start == true`) on thread `tid`.
    NewM {
        tid: u32,
        ts_ns: u64,
        start: bool,
        m: MState,
        /// The probed function's caller first, then its callers.
        frames: Vec<u64>,
    },
    /// `runtime.mexit`: a goroutine exited while locked to thread `tid`;
    /// `m_id` 0 is the main thread (wedged, not ended).
    Mexit {
        tid: u32,
        ts_ns: u64,
        m_id: Option<u64>,
        /// The LockOSThread call that locked it (goroutine, stack), when
        /// it was seen.
        lock_goid: Option<u64>,
        lock_frames: Option<Vec<u64>>,
    },
    /// `main.main` began: the runtime's start-up is over; the runtime's
    /// variables as read then (`None`: no symbol, or unreadable).
    MainStart {
        tid: u32,
        ts_ns: u64,
        values: RuntimeValues,
    },
    /// The process executed a new program.
    /// `program`: the path the kernel gave (cut at 127 bytes).
    Exec {
        tid: u32,
        ts_ns: u64,
        program: String,
    },
    /// A followed process (`-f`) made a syscall (streamed per call).
    ProcSyscall {
        pid: u32,
        tid: u32,
        ts_ns: u64,
        sysno: u32,
        ret: i64,
        duration_ns: u64,
    },
    /// A followed process, or the target, forked the child process `pid`,
    /// now followed; `command`: the parent's comm, which the child
    /// inherits until it executes a program.
    ProcFork {
        parent_pid: u32,
        pid: u32,
        ts_ns: u64,
        command: String,
    },
    /// A new thread `tid` in the followed process `pid`.
    ProcThreadSpawn { pid: u32, tid: u32, ts_ns: u64 },
    /// A thread of the followed process `pid` exited; `last`: it was the
    /// last one, so the process ended.
    ProcThreadExit {
        pid: u32,
        tid: u32,
        ts_ns: u64,
        how: ThreadEnd,
        last: bool,
    },
    /// The followed process `pid` executed a new program (its path, cut at
    /// 127 bytes).
    ProcExec {
        pid: u32,
        tid: u32,
        ts_ns: u64,
        program: String,
    },
    /// `pid` became a target beside the first (its first event seen since
    /// it did); `command`: its comm then.
    ProcJoin {
        pid: u32,
        tid: u32,
        ts_ns: u64,
        by: JoinedBy,
        command: String,
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
    /// scheme, zero counts left out; errnos are `(errno, count)` (errno 0:
    /// an error number outside the counted range).
    SyscallAggregate {
        sysno: u32,
        idle: bool,
        calls: u64,
        errors: u64,
        total_ns: u64,
        max_ns: u64,
        errnos: Vec<(u32, u64)>,
        buckets: Vec<(u32, u64)>,
    },
}

/// What made a process a target beside the first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinedBy {
    /// Given with `-p`.
    Pid,
    /// Its comm is a `--comm` name.
    Comm,
    /// It is in a `--cgroup` (or below).
    Cgroup,
}

/// Why a ring-buffer record could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is too short for a {what}")]
    TooShort { what: &'static str, len: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u32),
    #[error("unknown followed-process record {0}")]
    UnknownProcRecord(u32),
    #[error("unknown reason {0} for a process to join the targets")]
    UnknownJoin(u32),
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

/// The frames a probe wrote, without a repeated caller (the kernel's entry
/// fix-up may add the caller a second time).
fn entry_frames(frames: &[u64], n: u32) -> Vec<u64> {
    let n = (n as usize).min(frames.len());
    let mut out = frames[..n].to_vec();
    if out.len() > 1 && out[0] == out[1] {
        out.remove(1);
    }
    out
}

impl Event {
    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let kind: u32 = read(bytes, "record header")?;
        let header = |what| read::<EventHeader>(bytes, what);
        match EventKind::from_u32(kind) {
            Some(EventKind::Syscall) => {
                let e: SyscallEvent = read(bytes, "syscall record")?;
                Ok(Self::Syscall {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    sysno: e.sysno,
                    ret: e.ret,
                    duration_ns: e.duration_ns,
                    idle: e.idle != 0,
                })
            }
            Some(EventKind::UnmatchedExit) => {
                let e: UnmatchedExitEvent = read(bytes, "unmatched-exit record")?;
                Ok(Self::UnmatchedExit {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    sysno: e.sysno,
                    ret: e.ret,
                    collided: e.slot_owner != 0,
                })
            }
            Some(EventKind::ThreadSpawn) => {
                let e: ThreadEvent = read(bytes, "thread record")?;
                Ok(Self::ThreadSpawn {
                    parent_tid: e.header.tid,
                    tid: e.tid,
                    ts_ns: e.header.ts_ns,
                })
            }
            Some(EventKind::ThreadExit) => {
                let e: ThreadEvent = read(bytes, "thread record")?;
                Ok(Self::ThreadExit {
                    tid: e.tid,
                    ts_ns: e.header.ts_ns,
                    how: match e.how {
                        THREAD_EXIT_SELF => ThreadEnd::ExitedItself,
                        THREAD_EXIT_GROUP => ThreadEnd::ExitGroup,
                        _ => ThreadEnd::KilledWithProcess,
                    },
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
                    taken: TakenFlags::from_bits((e.flags >> 8) as u16),
                    p_id: e.p_id_plus1.checked_sub(1),
                    fd: RawFd::from(&e.fd),
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
                    victim: Victim::decode(&e),
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
                    victim: Victim::decode(&e),
                })
            }
            Some(EventKind::StwStart) => {
                let e: StwEvent = read(bytes, "stop-the-world record")?;
                Ok(Self::StwStart {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    syscall_ps: (e.read != 0).then_some(e.syscall_ps),
                    victims: e.victims,
                })
            }
            Some(EventKind::StwEnd) => {
                let h = header("stop-the-world record")?;
                Ok(Self::StwEnd {
                    tid: h.tid,
                    ts_ns: h.ts_ns,
                })
            }
            Some(EventKind::NewM) => {
                let e: NewMEvent = read(bytes, "new-M record")?;
                Ok(Self::NewM {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    start: e.kind == NEWM_START,
                    m: MState {
                        locked_ext: known(e.locked_ext),
                        locked_int: known(e.locked_int),
                        incgo: known(e.incgo).map(|v| v != 0),
                        m_id: known(e.m_id),
                    },
                    frames: entry_frames(&e.frames, e.nframes),
                })
            }
            Some(EventKind::Mexit) => {
                let e: MexitEvent = read(bytes, "mexit record")?;
                let site = e.has_site != 0;
                Ok(Self::Mexit {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    m_id: (e.m_id != u64::MAX).then_some(e.m_id),
                    lock_goid: (site && e.site.goid != 0).then_some(e.site.goid),
                    lock_frames: site.then(|| entry_frames(&e.site.frames, e.site.nframes)),
                })
            }
            Some(EventKind::MainStart) => {
                let e: MainStartEvent = read(bytes, "main-start record")?;
                let has = |bit| e.read & bit != 0;
                Ok(Self::MainStart {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    values: RuntimeValues {
                        vdso_clock_gettime_sym: has(MAIN_READ_VDSO).then_some(e.vdso_sym),
                        gomaxprocs: has(MAIN_READ_GOMAXPROCS).then_some(e.gomaxprocs),
                        maxmcount: has(MAIN_READ_MAXMCOUNT).then_some(e.maxmcount),
                    },
                })
            }
            Some(EventKind::Exec) => {
                let e: ExecEvent = read(bytes, "exec record")?;
                let len = e
                    .filename
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(e.filename.len());
                Ok(Self::Exec {
                    tid: e.header.tid,
                    ts_ns: e.header.ts_ns,
                    program: String::from_utf8_lossy(&e.filename[..len]).into_owned(),
                })
            }
            Some(EventKind::Proc) => Self::decode_proc(bytes),
            None => Err(DecodeError::UnknownKind(kind)),
        }
    }

    /// A followed process's record: a syscall or a task event, told by
    /// `what` (at the same offset in both).
    fn decode_proc(bytes: &[u8]) -> Result<Self, DecodeError> {
        let what: u32 = bytes
            .get(20..24)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or(DecodeError::TooShort {
                what: "followed-process record",
                len: bytes.len(),
            })?;
        if what == PROC_SYSCALL {
            let e: ProcSyscallEvent = read(bytes, "followed-process syscall record")?;
            return Ok(Self::ProcSyscall {
                pid: e.pid,
                tid: e.header.tid,
                ts_ns: e.header.ts_ns,
                sysno: e.sysno,
                ret: e.ret,
                duration_ns: e.duration_ns,
            });
        }
        let e: ProcTaskEvent = read(bytes, "followed-process record")?;
        let name = || {
            let len = e.name.iter().position(|&b| b == 0).unwrap_or(e.name.len());
            String::from_utf8_lossy(&e.name[..len]).into_owned()
        };
        let how = || match e.how {
            THREAD_EXIT_SELF => ThreadEnd::ExitedItself,
            THREAD_EXIT_GROUP => ThreadEnd::ExitGroup,
            _ => ThreadEnd::KilledWithProcess,
        };
        let ts_ns = e.header.ts_ns;
        match e.what {
            PROC_FORK => Ok(Self::ProcFork {
                parent_pid: e.tid,
                pid: e.pid,
                ts_ns,
                command: name(),
            }),
            PROC_THREAD_SPAWN => Ok(Self::ProcThreadSpawn {
                pid: e.pid,
                tid: e.tid,
                ts_ns,
            }),
            PROC_THREAD_EXIT | PROC_EXIT => Ok(Self::ProcThreadExit {
                pid: e.pid,
                tid: e.tid,
                ts_ns,
                how: how(),
                last: e.what == PROC_EXIT,
            }),
            PROC_EXEC => Ok(Self::ProcExec {
                pid: e.pid,
                tid: e.tid,
                ts_ns,
                program: name(),
            }),
            PROC_JOIN => Ok(Self::ProcJoin {
                pid: e.pid,
                tid: e.tid,
                ts_ns,
                by: match e.how {
                    JOIN_PID => JoinedBy::Pid,
                    JOIN_COMM => JoinedBy::Comm,
                    JOIN_CGROUP => JoinedBy::Cgroup,
                    other => return Err(DecodeError::UnknownJoin(other)),
                },
                command: name(),
            }),
            other => Err(DecodeError::UnknownProcRecord(other)),
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
    pub fn aggregate<'a>(
        sysno: u32,
        idle: bool,
        per_cpu: impl IntoIterator<Item = &'a SyscallHist>,
    ) -> Self {
        let mut calls = 0;
        let mut errors = 0;
        let mut total_ns = 0u64;
        let mut max_ns = 0;
        let mut sums = vec![0u64; tracer_common::buckets::NUM_BUCKETS];
        let mut errno_sums = [0u64; ERRNO_SLOTS];
        for hist in per_cpu {
            calls += hist.calls;
            errors += hist.errors;
            total_ns = total_ns.saturating_add(hist.total_ns);
            max_ns = max_ns.max(hist.max_ns);
            for (sum, count) in sums.iter_mut().zip(hist.buckets.iter()) {
                *sum += count;
            }
            for (sum, count) in errno_sums.iter_mut().zip(hist.errnos.iter()) {
                *sum += count;
            }
        }
        let nonzero = |v: Vec<u64>| -> Vec<(u32, u64)> {
            v.into_iter()
                .enumerate()
                .filter(|&(_, count)| count != 0)
                .map(|(index, count)| (index as u32, count))
                .collect()
        };
        let errnos = nonzero(errno_sums.to_vec())
            .into_iter()
            .map(|(slot, n)| (errno_of_slot(slot as usize), n))
            .collect();
        Self::SyscallAggregate {
            sysno,
            idle,
            calls,
            errors,
            total_ns,
            max_ns,
            errnos,
            buckets: nonzero(sums),
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
            idle: 0,
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
                duration_ns: 1234,
                idle: false,
            })
        );
    }

    fn proc_task(what: u32, pid: u32, tid: u32, how: u32, name: &[u8]) -> ProcTaskEvent {
        let mut e = ProcTaskEvent {
            header: EventHeader {
                kind: EventKind::Proc as u32,
                tid: 3,
                ts_ns: 50,
            },
            pid,
            what,
            tid,
            how,
            name: [0; tracer_common::EXEC_NAME_LEN],
        };
        e.name[..name.len()].copy_from_slice(name);
        e
    }

    #[test]
    fn decodes_followed_process_records() {
        let call = ProcSyscallEvent {
            header: EventHeader {
                kind: EventKind::Proc as u32,
                tid: 8,
                ts_ns: 9,
            },
            pid: 6,
            what: PROC_SYSCALL,
            sysno: 17,
            _pad: 0,
            ret: -11,
            duration_ns: 77,
        };
        assert_eq!(
            Event::decode(&bytes_of(&call)),
            Ok(Event::ProcSyscall {
                pid: 6,
                tid: 8,
                ts_ns: 9,
                sysno: 17,
                ret: -11,
                duration_ns: 77,
            })
        );
        let fork = proc_task(PROC_FORK, 20, 10, 0, b"sh");
        assert_eq!(
            Event::decode(&bytes_of(&fork)),
            Ok(Event::ProcFork {
                parent_pid: 10,
                pid: 20,
                ts_ns: 50,
                command: "sh".into(),
            })
        );
        let exec = proc_task(PROC_EXEC, 20, 20, 0, b"/usr/bin/dd");
        assert_eq!(
            Event::decode(&bytes_of(&exec)),
            Ok(Event::ProcExec {
                pid: 20,
                tid: 20,
                ts_ns: 50,
                program: "/usr/bin/dd".into(),
            })
        );
        let join = proc_task(PROC_JOIN, 30, 31, JOIN_CGROUP, b"etcd");
        assert_eq!(
            Event::decode(&bytes_of(&join)),
            Ok(Event::ProcJoin {
                pid: 30,
                tid: 31,
                ts_ns: 50,
                by: JoinedBy::Cgroup,
                command: "etcd".into(),
            })
        );
        assert_eq!(
            Event::decode(&bytes_of(&proc_task(PROC_JOIN, 30, 31, 9, b""))),
            Err(DecodeError::UnknownJoin(9))
        );
        let spawn = proc_task(PROC_THREAD_SPAWN, 20, 21, 0, b"");
        assert_eq!(
            Event::decode(&bytes_of(&spawn)),
            Ok(Event::ProcThreadSpawn {
                pid: 20,
                tid: 21,
                ts_ns: 50,
            })
        );
        for (what, last) in [(PROC_THREAD_EXIT, false), (PROC_EXIT, true)] {
            let exit = proc_task(what, 20, 21, THREAD_EXIT_GROUP, b"");
            assert_eq!(
                Event::decode(&bytes_of(&exit)),
                Ok(Event::ProcThreadExit {
                    pid: 20,
                    tid: 21,
                    ts_ns: 50,
                    how: ThreadEnd::ExitGroup,
                    last,
                })
            );
        }
        // A record cut short, or of an unknown kind, is an error, not a panic.
        assert!(matches!(
            Event::decode(&bytes_of(&call)[..22]),
            Err(DecodeError::TooShort { .. })
        ));
        assert!(matches!(
            Event::decode(&bytes_of(&call)[..30]),
            Err(DecodeError::TooShort { .. })
        ));
        let odd = proc_task(99, 20, 21, 0, b"");
        assert_eq!(
            Event::decode(&bytes_of(&odd)),
            Err(DecodeError::UnknownProcRecord(99))
        );
    }

    #[test]
    fn decodes_thread_records() {
        let raw = ThreadEvent {
            header: EventHeader {
                kind: EventKind::ThreadExit as u32,
                tid: 11,
                ts_ns: 5,
            },
            tid: 11,
            how: THREAD_EXIT_SELF,
        };
        assert_eq!(
            Event::decode(&bytes_of(&raw)),
            Ok(Event::ThreadExit {
                tid: 11,
                ts_ns: 5,
                how: ThreadEnd::ExitedItself,
            })
        );
    }

    #[test]
    fn decodes_handoff_victims() {
        let raw = HandoffEvent {
            header: EventHeader {
                kind: EventKind::Handoff as u32,
                tid: 3,
                ts_ns: 10,
            },
            caller: 0x401000,
            p_id_plus1: 2,
            new_state: 0,
            victim_tid: 9,
            victim_state: VICTIM_IN_SYSCALL,
            victim_sysno: 0,
            _pad: 0,
            victim_start_ns: 7,
        };
        let Ok(Event::Handoff { p_id, victim, .. }) = Event::decode(&bytes_of(&raw)) else {
            panic!("not a handoff");
        };
        assert_eq!(p_id, Some(1));
        assert_eq!(
            victim,
            Victim::InSyscall {
                tid: 9,
                sysno: 0,
                start_ns: 7
            }
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
    fn aggregates_cpus_and_errnos() {
        let mut a = SyscallHist::ZERO;
        a.calls = 2;
        a.total_ns = 30;
        a.max_ns = 20;
        a.buckets[10] = 1;
        a.buckets[20] = 1;
        a.errors = 1;
        a.errnos[11] = 1;
        let mut b = SyscallHist::ZERO;
        b.calls = 1;
        b.errors = 1;
        b.total_ns = 50;
        b.max_ns = 50;
        b.buckets[50] = 1;
        b.errnos[11] = 1;
        assert_eq!(
            Event::aggregate(3, false, [&a, &b]),
            Event::SyscallAggregate {
                sysno: 3,
                idle: false,
                calls: 3,
                errors: 2,
                total_ns: 80,
                max_ns: 50,
                errnos: vec![(11, 2)],
                buckets: vec![(10, 1), (20, 1), (50, 1)],
            }
        );
    }
}
