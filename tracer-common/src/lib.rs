//! The kernel/user ABI of the tracer: every type that crosses the boundary
//! between `tracer-ebpf` (kernel programs) and `tracer` (userspace), and the
//! duration bucket scheme both sides must agree on.
//!
//! Rules (checked by the layout tests at the bottom): every type is
//! `#[repr(C)]`, `Copy`, has explicit padding and no `bool`/`enum`, so the
//! bytes the kernel writes are the bytes userspace reads.
#![no_std]

pub mod buckets;

/// Names of the load-time globals (`aya_ebpf::Global`) the loader overrides.
pub mod globals {
    /// `u32`: the thread-group id (process id) being traced.
    pub const TARGET_TGID: &str = "TARGET_TGID";
    /// `u32`: byte offset of `pid` in the `task:task_newtask` record.
    pub const NEWTASK_PID_OFFSET: &str = "NEWTASK_PID_OFFSET";
    /// `u32`: byte offset of `clone_flags` in the `task:task_newtask` record.
    pub const NEWTASK_FLAGS_OFFSET: &str = "NEWTASK_FLAGS_OFFSET";
    /// `u32`: size of the `INFLIGHT` map minus one (a power of two minus one).
    pub const INFLIGHT_MASK: &str = "INFLIGHT_MASK";
    /// `u64`: calls at least this long (ns) are reported with a user stack.
    pub const SLOW_NS: &str = "SLOW_NS";
    /// [`crate::GoOffsets`]: where to find the goroutine state (Go targets).
    pub const GO_OFFSETS: &str = "GO_OFFSETS";
}

/// Names of the maps, shared so a rename breaks the build, not the run.
pub mod maps {
    pub const INFLIGHT: &str = "INFLIGHT";
    pub const HIST_SLOT: &str = "HIST_SLOT";
    pub const HISTS: &str = "HISTS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const EVENTS: &str = "EVENTS";
    pub const GROUP_EXIT: &str = "GROUP_EXIT";
    pub const LOCK_SITES: &str = "LOCK_SITES";
    pub const VDSO_CALLS: &str = "VDSO_CALLS";
}

/// Highest syscall number (exclusive) tracked per syscall. x86_64 numbers are
/// below 512 today; anything above is counted in `Counter::UnknownSyscall`.
pub const MAX_SYSCALLS: u32 = 512;

/// Default number of syscalls that get an in-kernel histogram. Syscalls past
/// this many distinct ones are streamed per call through the ring buffer
/// (exact, but costlier).
pub const DEFAULT_HIST_SLOTS: u32 = 96;

/// Default size of the per-thread in-flight table (a power of two; threads are
/// placed at `tid & (size - 1)` and tagged with their tid).
pub const DEFAULT_INFLIGHT_SLOTS: u32 = 1 << 16;

/// Linux `exit_group` on x86_64: marks the start of process teardown.
pub const SYS_EXIT_GROUP: u64 = 231;

/// Linux `CLONE_THREAD`: a new task that joins its parent's thread group.
pub const CLONE_THREAD: u64 = 0x0001_0000;

/// A syscall in progress on one thread, kept from `sys_enter` to `sys_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Owner of the slot; 0 when the slot is free.
    pub tid: u32,
    pub sysno: u32,
    pub start_ns: u64,
}

/// Per-CPU aggregate for one syscall slot: counts, time and a log-linear
/// duration histogram (see [`buckets`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallHist {
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    pub buckets: [u64; buckets::NUM_BUCKETS],
}

impl SyscallHist {
    pub const ZERO: Self = Self {
        calls: 0,
        errors: 0,
        total_ns: 0,
        max_ns: 0,
        buckets: [0; buckets::NUM_BUCKETS],
    };
}

/// Indexes into the per-CPU `COUNTERS` array: everything the kernel side
/// could not handle normally is counted, so no report hides a loss.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// An event could not be reserved in the ring buffer (userspace too slow).
    RingBufFull = 0,
    /// Two in-flight threads hashed to the same `INFLIGHT` slot: the newer
    /// call was not timed.
    InFlightCollision = 1,
    /// A `sys_exit` without a matching `sys_enter` (the call began before the
    /// probes were attached): counted, not timed.
    UnmatchedExit = 2,
    /// A syscall number at or above [`MAX_SYSCALLS`].
    UnknownSyscall = 3,
    /// A histogram slot lookup failed (should never happen; counted anyway).
    HistMissing = 4,
    /// Floor programs only: syscall events that passed the tgid filter.
    FloorHits = 5,
    /// A vDSO-fallback syscall's user stack could not be read (counted
    /// with no frames).
    VdsoStackMissing = 6,
    /// The vDSO-fallback call-site map was full: calls not counted.
    VdsoMapFull = 7,
}

/// Number of entries in the `COUNTERS` array.
pub const NUM_COUNTERS: u32 = 8;

/// Calls shorter than this cannot have lost their P: sysmon's shortest
/// sleep is 20 µs, and it retakes only Ps it saw in a syscall on an earlier
/// tick. Only longer calls pay for reading the Go runtime's state.
pub const HANDOFF_MIN_NS: u64 = 20_000;

/// Frames of user stack captured per slow call.
pub const MAX_FRAMES: usize = 32;

/// Byte offsets into the Go runtime's `g`, `m` and `p` for the traced
/// binary's version (`tracer::goruntime` keeps the table). `enabled == 0`
/// means "not a Go program, or a version without a table": the kernel side
/// then reads nothing from user memory.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoOffsets {
    pub enabled: u32,
    /// 1 when the runtime keeps the P wired to the M during a syscall (Go
    /// 1.26+: the P is lost iff `m.p` was cleared); 0 for the `_Psyscall`
    /// design (≤1.25: the P is lost iff `m.oldp.status` left `_Psyscall`).
    pub p_stays_wired: u32,
    pub g_m: u32,
    pub g_goid: u32,
    pub g_atomicstatus: u32,
    pub m_procid: u32,
    pub m_p: u32,
    pub m_oldp: u32,
    pub p_status: u32,
    /// `m.syscalltick` and `p.syscalltick` (≤1.25): the runtime's own test
    /// for "my P was taken and used while I was in the syscall".
    pub m_syscalltick: u32,
    pub p_syscalltick: u32,
    /// For calls made from C code (cgo), where R14 is not `g`: the M's
    /// current goroutine, its in-C flag, and where `entersyscall` saved the
    /// goroutine's pc and frame pointer (the Go stack above the C call).
    pub m_curg: u32,
    pub m_incgo: u32,
    pub g_sched_pc: u32,
    pub g_sched_bp: u32,
    pub _pad: u32,
    /// Link addresses of `runtime.allp` (a slice of `*p`) and of
    /// `runtime.stopTheWorldWithSema`, whose probed address gives the load
    /// bias: as the world stops, the kernel lists the Ps still in a syscall
    /// (≤1.25), the ones the stop takes. 0 when unknown (stripped).
    pub allp_link: u64,
    pub stw_fn_link: u64,
}

/// What the kernel saw of the Go runtime at a syscall's exit.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PState {
    /// Not read (not Go, call too short, or the runtime state was invalid).
    Unknown = 0,
    /// The goroutine's M still owned its P: a fast exit.
    Kept = 1,
    /// The P was taken during the call (sysmon retake or entersyscallblock):
    /// the goroutine has to find a P again, or park.
    Lost = 2,
    /// A raw syscall (no entersyscall): the P was held throughout.
    Raw = 3,
    /// The runtime's own call on a system stack (g0: sysmon, idle Ms
    /// parking, scheduler work): no goroutine made it.
    Runtime = 4,
}

impl PState {
    pub fn from_u32(raw: u32) -> Self {
        match raw {
            1 => Self::Kept,
            2 => Self::Lost,
            3 => Self::Raw,
            4 => Self::Runtime,
            _ => Self::Unknown,
        }
    }
}

/// The kind of a ring-buffer record, its first field.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// [`SyscallEvent`]: one completed syscall without an in-kernel histogram.
    Syscall = 1,
    /// [`ThreadEvent`]: a thread joined the target's thread group.
    ThreadSpawn = 2,
    /// [`ThreadEvent`]: a thread of the target exited.
    ThreadExit = 3,
    /// [`SlowCallEvent`]: a call that was slow or lost its P, with its stack.
    SlowCall = 4,
    /// [`NewMEvent`]: the Go runtime is about to start a thread (`newm1`).
    NewM = 5,
    /// [`ThreadEvent`]: a goroutine left a syscall on the slow path (no P:
    /// `exitsyscall0` / `exitsyscallNoP`), so it is queued and its thread parks.
    SlowExit = 6,
    /// [`HandoffEvent`]: `runtime.handoffp` was called (a P changes hands).
    Handoff = 7,
    /// [`StwEvent`]: the runtime began stopping the world
    /// (`stopTheWorldWithSema`): every P in a syscall is taken.
    StwStart = 8,
    /// [`EventHeader`] only: the world restarts (`startTheWorldWithSema`).
    StwEnd = 9,
    /// [`HandoffEvent`]: Go 1.26+ `syscallingThread.releaseP`: a P really
    /// was taken from a thread in a syscall (`new_state` 3: by a
    /// stop-the-world).
    PTaken = 10,
}

impl EventKind {
    pub fn from_u32(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::Syscall),
            2 => Some(Self::ThreadSpawn),
            3 => Some(Self::ThreadExit),
            4 => Some(Self::SlowCall),
            5 => Some(Self::NewM),
            6 => Some(Self::SlowExit),
            7 => Some(Self::Handoff),
            8 => Some(Self::StwStart),
            9 => Some(Self::StwEnd),
            10 => Some(Self::PTaken),
            _ => None,
        }
    }
}

/// Common header of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventHeader {
    /// An [`EventKind`] as `u32`.
    pub kind: u32,
    /// The thread the event happened on (for spawns: the parent).
    pub tid: u32,
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) when the event was recorded.
    pub ts_ns: u64,
}

/// A completed syscall, sent when its number has no histogram slot yet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallEvent {
    pub header: EventHeader,
    pub sysno: u32,
    pub _pad: u32,
    /// The raw return value (negative errno on failure).
    pub ret: i64,
    pub duration_ns: u64,
}

/// A thread spawn or exit in the target.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadEvent {
    pub header: EventHeader,
    /// Spawn: the new thread's tid. Exit: the exiting tid (same as header).
    pub tid: u32,
    /// 1 when the process had already entered `exit_group` (teardown).
    pub during_group_exit: u32,
}

/// A syscall that was slow (`>= SLOW_NS`) or lost its P, with the
/// goroutine and the user stack (frame-pointer walk, innermost first).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SlowCallEvent {
    pub header: EventHeader,
    pub sysno: u32,
    /// A [`PState`] as `u32`.
    pub p_state: u32,
    pub ret: i64,
    pub duration_ns: u64,
    /// 0 when unknown.
    pub goid: u64,
    pub nframes: u32,
    /// Bit 0: the call was made by C code in a cgo call (frames are then
    /// the Go stack that made the cgo call).
    pub flags: u32,
    pub frames: [u64; MAX_FRAMES],
}

/// [`SlowCallEvent::flags`]: made from C code during a cgo call.
pub const SLOW_CALL_CGO: u32 = 1;

/// `runtime.newm1` was entered: the next thread this thread spawns is a
/// new M, and the stack says why the runtime wanted it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NewMEvent {
    pub header: EventHeader,
    pub nframes: u32,
    pub _pad: u32,
    /// The caller of newm1 first (return address), then its callers.
    pub frames: [u64; LOCK_FRAMES],
}

/// `runtime.handoffp` was entered; its caller says who took the P (sysmon's
/// retake, a blocking syscall, the GC's forEachP, a locked goroutine...).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HandoffEvent {
    pub header: EventHeader,
    /// Return address into the caller of handoffp.
    pub caller: u64,
    /// The handed-off P's id + 1 (0: not read).
    pub p_id_plus1: u32,
    /// [`EventKind::PTaken`]: the state the P is put in (0 idle, 3
    /// gcstop); 0 for handoffp.
    pub new_state: u32,
}

/// Syscalls the vDSO normally answers in user space (x86_64 numbers):
/// a real syscall of one of these is a vDSO fallback worth explaining.
pub const SYS_GETTIMEOFDAY: u32 = 96;
pub const SYS_TIME: u32 = 201;
pub const SYS_CLOCK_GETTIME: u32 = 228;
pub const SYS_GETCPU: u32 = 309;

/// Whether `sysno` is one the vDSO serves without entering the kernel.
#[inline(always)]
pub fn is_vdso_syscall(sysno: u64) -> bool {
    matches!(sysno, 96 | 201 | 228 | 309)
}

/// User frames kept per vDSO-fallback call site.
pub const VDSO_FRAMES: usize = 8;

/// Key of the in-kernel count of real syscalls the vDSO normally serves:
/// one entry per (syscall, clock, user stack).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VdsoKey {
    pub sysno: u32,
    /// `clock_gettime`'s clock id (an `i32`: dynamic clocks are negative);
    /// 0 for the other syscalls.
    pub clock: u32,
    /// The user stack at the syscall, innermost first (frame 0 is the
    /// syscall instruction's address); unused entries are 0.
    pub frames: [u64; VDSO_FRAMES],
}

/// A stop-the-world began.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StwEvent {
    pub header: EventHeader,
    /// Bit i: P i was in a syscall (`_Psyscall`) as the world stopped, so
    /// the stop takes it (≤1.25; P ids below 64).
    pub syscall_ps: u64,
    /// 1 when `syscall_ps` was read.
    pub read: u32,
    pub _pad: u32,
}

/// Frames kept for a `runtime.LockOSThread` call site.
pub const LOCK_FRAMES: usize = 16;

/// The last `runtime.LockOSThread` call on a thread (key: tid). A Go thread
/// only ever exits when a goroutine ends while locked to it, so when the
/// thread exits this is the call that leaked it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LockSite {
    pub goid: u64,
    pub nframes: u32,
    pub _pad: u32,
    /// The caller first (return address), then its callers.
    pub frames: [u64; LOCK_FRAMES],
}

#[cfg(feature = "user")]
mod pod {
    unsafe impl aya::Pod for super::LockSite {}
    unsafe impl aya::Pod for super::GoOffsets {}
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, and have no implicit
    // padding (checked by the layout tests), so any byte pattern is valid.
    unsafe impl aya::Pod for super::InFlight {}
    unsafe impl aya::Pod for super::SyscallHist {}
    unsafe impl aya::Pod for super::VdsoKey {}
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn inflight_layout() {
        assert_eq!(size_of::<InFlight>(), 16);
        assert_eq!(offset_of!(InFlight, sysno), 4);
        assert_eq!(offset_of!(InFlight, start_ns), 8);
    }

    #[test]
    fn hist_layout_fits_a_percpu_value() {
        assert_eq!(offset_of!(SyscallHist, buckets), 32);
        assert_eq!(size_of::<SyscallHist>(), 32 + 8 * buckets::NUM_BUCKETS);
        // The kernel refuses per-CPU values above PCPU_MIN_UNIT_SIZE (32 KiB).
        assert!(size_of::<SyscallHist>() <= 32 * 1024);
        assert_eq!(align_of::<SyscallHist>(), 8);
    }

    #[test]
    fn event_layouts() {
        assert_eq!(size_of::<EventHeader>(), 16);
        assert_eq!(size_of::<SyscallEvent>(), 40);
        assert_eq!(offset_of!(SyscallEvent, sysno), 16);
        assert_eq!(offset_of!(SyscallEvent, ret), 24);
        assert_eq!(offset_of!(SyscallEvent, duration_ns), 32);
        assert_eq!(size_of::<ThreadEvent>(), 24);
        assert_eq!(offset_of!(ThreadEvent, tid), 16);
    }

    #[test]
    fn go_layouts() {
        assert_eq!(size_of::<GoOffsets>(), 80);
        assert_eq!(offset_of!(GoOffsets, allp_link), 64);
        assert_eq!(size_of::<StwEvent>(), 32);
        assert_eq!(size_of::<SlowCallEvent>(), 56 + 8 * MAX_FRAMES);
        assert_eq!(offset_of!(SlowCallEvent, goid), 40);
        assert_eq!(offset_of!(SlowCallEvent, frames), 56);
        for s in [
            PState::Unknown,
            PState::Kept,
            PState::Lost,
            PState::Raw,
            PState::Runtime,
        ] {
            assert_eq!(PState::from_u32(s as u32), s);
        }
    }

    #[test]
    fn handoff_layout() {
        assert_eq!(size_of::<HandoffEvent>(), 32);
        assert_eq!(offset_of!(HandoffEvent, caller), 16);
        assert_eq!(offset_of!(HandoffEvent, p_id_plus1), 24);
    }

    #[test]
    fn vdso_key_layout() {
        assert_eq!(size_of::<VdsoKey>(), 8 + 8 * VDSO_FRAMES);
        assert_eq!(offset_of!(VdsoKey, clock), 4);
        assert_eq!(offset_of!(VdsoKey, frames), 8);
        for sysno in [SYS_GETTIMEOFDAY, SYS_TIME, SYS_CLOCK_GETTIME, SYS_GETCPU] {
            assert!(is_vdso_syscall(u64::from(sysno)));
        }
        assert!(!is_vdso_syscall(0) && !is_vdso_syscall(230));
    }

    #[test]
    fn event_kind_round_trips() {
        for kind in [
            EventKind::Syscall,
            EventKind::ThreadSpawn,
            EventKind::ThreadExit,
            EventKind::SlowCall,
            EventKind::NewM,
            EventKind::SlowExit,
            EventKind::Handoff,
            EventKind::StwStart,
            EventKind::StwEnd,
            EventKind::PTaken,
        ] {
            assert_eq!(EventKind::from_u32(kind as u32), Some(kind));
        }
        assert_eq!(EventKind::from_u32(0), None);
    }
}
