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
    /// `u32`: byte offset of the `filename` `__data_loc` word in the
    /// `sched:sched_process_exec` record.
    pub const EXEC_FILENAME_OFFSET: &str = "EXEC_FILENAME_OFFSET";
    /// `u32`: histogram slots per half of `HISTS` (goroutine calls first,
    /// then the runtime's idle waits).
    pub const HIST_SLOTS: &str = "HIST_SLOTS";
    /// `u64`: calls at least this long (ns) are reported with a user stack.
    pub const SLOW_NS: &str = "SLOW_NS";
    /// [`crate::GoOffsets`]: where to find the goroutine state (Go targets).
    pub const GO_OFFSETS: &str = "GO_OFFSETS";
    /// [`crate::KernelOffsets`]: where to find a descriptor's file in the
    /// running kernel's structures (from its BTF).
    pub const KERNEL_OFFSETS: &str = "KERNEL_OFFSETS";
    /// `u32`: 1 when the target's child processes (and theirs) are
    /// followed (`-f`): the kernel adds them to `FOLLOWED` as they fork.
    pub const FOLLOW_FORKS: &str = "FOLLOW_FORKS";
    /// `u32`: 1 when `FOLLOWED` is in use at all (`-f`, or targets beside
    /// the first: more `-p`, `--comm`, `--cgroup`); 0 spares every other
    /// process's syscalls the lookup.
    pub const FOLLOW_ANY: &str = "FOLLOW_ANY";
    /// `u32`: entries of `SELECT_CGROUPS` in use (`--cgroup`).
    pub const SELECT_CGROUP_COUNT: &str = "SELECT_CGROUP_COUNT";
    /// `u32`: entries of `SELECT_COMMS` in use (`--comm`).
    pub const SELECT_COMM_COUNT: &str = "SELECT_COMM_COUNT";
    /// `u32`: the tracer's own tgid, never a target (it may sit in a
    /// selected cgroup).
    pub const SELF_TGID: &str = "SELF_TGID";
}

/// Names of the maps, shared so a rename breaks the build, not the run.
pub mod maps {
    pub const INFLIGHT: &str = "INFLIGHT";
    pub const HIST_SLOT: &str = "HIST_SLOT";
    pub const HISTS: &str = "HISTS";
    pub const COUNTERS: &str = "COUNTERS";
    pub const EVENTS: &str = "EVENTS";
    pub const LOCK_SITES: &str = "LOCK_SITES";
    pub const VDSO_CALLS: &str = "VDSO_CALLS";
    pub const SYSCALL_CLASS: &str = "SYSCALL_CLASS";
    pub const WINDOW_CLOSED: &str = "WINDOW_CLOSED";
    pub const FOLLOWED: &str = "FOLLOWED";
    pub const SELECT_CGROUPS: &str = "SELECT_CGROUPS";
    pub const SELECT_COMMS: &str = "SELECT_COMMS";
    pub const DISPATCH_SLOT: &str = "DISPATCH_SLOT";
    pub const DISPATCH_ENTER: &str = "DISPATCH_ENTER";
    pub const DISPATCH_EXIT: &str = "DISPATCH_EXIT";
    pub const DISPATCH_NEWTASK: &str = "DISPATCH_NEWTASK";
    pub const DISPATCH_TASK_EXIT: &str = "DISPATCH_TASK_EXIT";
    pub const DISPATCH_EXEC: &str = "DISPATCH_EXEC";
}

/// The most targets one dispatcher serves (`tracer serve`): slots of its
/// program arrays.
pub const MAX_DISPATCH_SLOTS: u32 = 4096;

/// `FOLLOWED` values: not followed.
pub const FOLLOWED_NO: u32 = 0;
/// ... followed (a child seen forking, or announced already).
pub const FOLLOWED_YES: u32 = 1;
/// ... a target given by `-p` (or running with a `--comm` name at the
/// start) whose joining is announced ([`PROC_JOIN`]) with its first event.
pub const FOLLOWED_GIVEN: u32 = 2;
/// ... as [`FOLLOWED_GIVEN`], found by its `--comm` name.
pub const FOLLOWED_GIVEN_COMM: u32 = 3;

/// The most `--cgroup` and `--comm` selectors one tracer takes (the kernel
/// compares each on the paths that look for new targets).
pub const MAX_SELECTORS: u32 = 8;

/// A `--cgroup` selector: a process is in it when its cgroup v2 ancestor at
/// `level` has the id `id` (the directory's inode number).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupSelector {
    pub id: u64,
    pub level: u32,
    pub _pad: u32,
}

/// A `--comm` selector: the name, NUL-padded, as the kernel keeps a comm.
pub type CommSelector = [u8; 16];

/// The most entries of the `FOLLOWED` array (`-f`), one per PID: the
/// kernel's own limit of PIDs on 64-bit (`PID_MAX_LIMIT`). The loader sizes
/// it to the running kernel's `pid_max`; a child whose PID is past it (the
/// limit raised since) is counted ([`FOLLOW_MAP_FULL_SLOT`]) and not
/// followed.
pub const FOLLOWED_PID_LIMIT: u32 = 1 << 22;

/// Highest syscall number (exclusive) tracked per syscall. x86_64 numbers are
/// below 512 today; anything above is counted in `Counter::UnknownSyscall`.
pub const MAX_SYSCALLS: u32 = 512;

/// Default number of syscalls that get an in-kernel histogram. Syscalls past
/// this many distinct ones are streamed per call through the ring buffer
/// (exact, but costlier).
pub const DEFAULT_HIST_SLOTS: u32 = 96;

/// log2 of the size of the per-thread in-flight table.
pub const INFLIGHT_BITS: u32 = 16;
/// Size of the per-thread in-flight table (slots are tagged with their tid).
pub const INFLIGHT_SLOTS: u32 = 1 << INFLIGHT_BITS;

/// The in-flight slot of thread `tid`: its low [`INFLIGHT_BITS`] bits
/// rotated left by 2. A rotation is a bijection, so any
/// [`INFLIGHT_SLOTS`] consecutive tids get distinct slots (as `tid & mask`
/// would); the rotation puts consecutive tids 4 slots (64 bytes, a cache
/// line of 16-byte slots) apart, so the threads of one process, which
/// usually have neighbouring tids, do not write the same cache line from
/// different CPUs on every syscall.
#[inline(always)]
pub const fn inflight_index(tid: u32) -> u32 {
    let t = tid & (INFLIGHT_SLOTS - 1);
    ((t << 2) | (t >> (INFLIGHT_BITS - 2))) & (INFLIGHT_SLOTS - 1)
}

/// Linux `exit` on x86_64: a thread ending itself (the process goes on).
pub const SYS_EXIT: u16 = 60;
/// Linux `exit_group` on x86_64: the process ending.
pub const SYS_EXIT_GROUP: u16 = 231;
/// Linux `rt_sigreturn`: its return value is the restored register, not a
/// result, so it is never counted as an error.
pub const SYS_RT_SIGRETURN: u32 = 15;

/// Linux `sched_yield` on x86_64. A Go program never makes it itself: the
/// runtime's `osyield` spins with it (in `exitsyscall`, in lock and
/// scheduler loops), so in a Go target it is always the runtime's wait.
pub const SYS_SCHED_YIELD: u32 = 24;

/// Linux `CLONE_THREAD`: a new task that joins its parent's thread group.
pub const CLONE_THREAD: u64 = 0x0001_0000;

/// A syscall in progress on one thread, kept from `sys_enter` to `sys_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InFlight {
    /// Owner of the slot; 0 when the slot is free.
    pub tid: u32,
    pub sysno: u16,
    /// [`INFLIGHT_TAKEN_HANDOFF`], [`INFLIGHT_TAKEN_STW`]: set by the probes
    /// that take Ps from syscalls, so the call is checked and reported at
    /// its exit however short it was.
    pub flags: u16,
    pub start_ns: u64,
}

/// [`InFlight::flags`]: a P handoff (`handoffp`, Go 1.26+ `releaseP`) named
/// this call's thread as the one whose P was taken.
pub const INFLIGHT_TAKEN_HANDOFF: u16 = 1;
/// [`InFlight::flags`]: a stop-the-world began while this call held a P in
/// `_Psyscall`: the stop takes it unless the call returns first.
pub const INFLIGHT_TAKEN_STW: u16 = 2;

/// Error numbers counted one by one per syscall: 1..=133 are the Linux
/// errnos; 134..=139 are the kernel's restart codes (ERESTARTSYS 512 ..
/// ERESTART_RESTARTBLOCK 516, and 517), which a traced exit can show for a
/// call a signal interrupted; slot 0 counts anything else.
pub const ERRNO_SLOTS: usize = 140;
const ERRNO_LINUX_MAX: u64 = 133;
const ERRNO_RESTART_FIRST: u64 = 512;

/// The [`SyscallHist::errnos`] slot of an error number (a positive errno).
#[inline(always)]
pub fn errno_slot(errno: u64) -> usize {
    if (1..=ERRNO_LINUX_MAX).contains(&errno) {
        errno as usize
    } else if (ERRNO_RESTART_FIRST..ERRNO_RESTART_FIRST + 6).contains(&errno) {
        (ERRNO_LINUX_MAX + 1 + errno - ERRNO_RESTART_FIRST) as usize
    } else {
        0
    }
}

/// The error number counted in a [`SyscallHist::errnos`] slot (0: other).
pub fn errno_of_slot(slot: usize) -> u32 {
    let slot = slot as u64;
    if (1..=ERRNO_LINUX_MAX).contains(&slot) {
        slot as u32
    } else if slot > ERRNO_LINUX_MAX && slot < ERRNO_SLOTS as u64 {
        (ERRNO_RESTART_FIRST + slot - ERRNO_LINUX_MAX - 1) as u32
    } else {
        0
    }
}

/// Per-CPU aggregate for one syscall slot: counts, time, errors by errno
/// and a log-linear duration histogram (see [`buckets`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct SyscallHist {
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Failed calls by [`errno_slot`].
    pub errnos: [u64; ERRNO_SLOTS],
    pub buckets: [u64; buckets::NUM_BUCKETS],
}

impl SyscallHist {
    pub const ZERO: Self = Self {
        calls: 0,
        errors: 0,
        total_ns: 0,
        max_ns: 0,
        errnos: [0; ERRNO_SLOTS],
        buckets: [0; buckets::NUM_BUCKETS],
    };
}

/// Per-syscall facts the slow path needs, one byte per syscall number in
/// the `SYSCALL_CLASS` map (filled by userspace from one table).
pub mod class {
    /// The descriptor the call waits on is its first argument.
    pub const FD_ARG0: u8 = 1;
    /// ... its second argument (e.g. `sendfile`'s input, `splice`'s).
    pub const FD_ARG1: u8 = 2;
    /// ... the descriptor it returns (`openat`, `accept4`): the kind of
    /// what was opened.
    pub const FD_RET: u8 = 4;
    /// A wait the Go runtime makes when it has nothing to do (futex,
    /// epoll_pwait, nanosleep...): made on the system stack it is an idle
    /// wait, not work.
    pub const IDLE_WAIT: u8 = 8;
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
    /// probes were attached, or a new thread returned from clone).
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
    /// Reading the Go runtime's state from user memory failed in a probe
    /// (the call is reported without it).
    GoReadFailed = 8,
    /// A map of the Go side (thread → M, LockOSThread sites) was full.
    GoMapFull = 9,
    /// The search for the thread whose P was taken stopped at its limit of
    /// Ms (a process with more threads than that).
    VictimScanLimit = 10,
    /// A slow call's descriptor could not be followed to its file.
    FdReadFailed = 11,
    /// A slow call's user stack could not be read.
    StackMissing = 12,
    /// Not a failure: a slow call made outside any goroutine's context, so
    /// reported without Go state: on a thread the Go runtime had not set up
    /// yet (no `g` in R14, no M known for it: the process's first
    /// instructions, the launch's exec and a cgo binary's dynamic loader
    /// among them; a new thread before `minit`; a thread C created), or in
    /// C code the runtime itself called outside a cgo call (a cgo binary's
    /// `_cgo_init`, its thread creation through `_cgo_thread_start`).
    NoGoContext = 13,
}

/// Named counters ([`Counter`]) in the `COUNTERS` array.
pub const NAMED_COUNTERS: u32 = 14;

/// Event kinds (by [`EventKind`] value, 0 unused) that have a
/// ring-buffer-full counter of their own.
pub const EVENT_KINDS: u32 = 16;

/// The `COUNTERS` slot counting the records of `kind` lost to a full ring
/// buffer (beside the total, [`Counter::RingBufFull`]); kinds past
/// [`EVENT_KINDS`] share the last slot.
#[inline(always)]
pub const fn ringbuf_full_slot(kind: u32) -> u32 {
    NAMED_COUNTERS
        + if kind < EVENT_KINDS {
            kind
        } else {
            EVENT_KINDS - 1
        }
}

/// The `COUNTERS` slot counting the child processes that could not be
/// followed because their PID was past the `FOLLOWED` array (sized to
/// `pid_max` at load). After the ring-buffer slots, so
/// the slots recordings of older versions hold keep their meaning.
pub const FOLLOW_MAP_FULL_SLOT: u32 = NAMED_COUNTERS + EVENT_KINDS;
/// The `COUNTERS` slot counting the target's child processes (forks
/// without `CLONE_THREAD`) while following is off.
pub const CHILDREN_NOT_FOLLOWED_SLOT: u32 = NAMED_COUNTERS + EVENT_KINDS + 1;

/// Number of entries in the `COUNTERS` array: the named counters, one
/// ring-buffer-full counter per event kind, then the follow counters.
pub const NUM_COUNTERS: u32 = NAMED_COUNTERS + EVENT_KINDS + 2;

/// Calls shorter than this cannot have lost their P: sysmon's shortest
/// sleep is 20 µs, and it retakes only Ps it saw in a syscall on an earlier
/// tick. Only longer calls pay for reading the Go runtime's state (and any
/// call a P-taking probe flagged).
pub const HANDOFF_MIN_NS: u64 = 20_000;

/// Frames of user stack captured per slow call.
pub const MAX_FRAMES: usize = 32;

/// Go runtime status values the kernel side compares against (the same in
/// every supported release; `_Psyscall` exists up to Go 1.25).
pub mod gostate {
    pub const G_SYSCALL: u32 = 3;
    pub const P_SYSCALL: u32 = 2;
    pub const P_GCSTOP: u32 = 3;
}

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
    /// `m.id` (0 is m0, the main thread), `m.alllink` (the list of all Ms
    /// from `runtime.allm`), `m.lockedExt`/`m.lockedInt` (LockOSThread by
    /// the program / by the runtime itself).
    pub m_id: u32,
    pub m_alllink: u32,
    pub m_locked_ext: u32,
    pub m_locked_int: u32,
    /// `m.g0` and `p.id` (the first fields of their structs in every
    /// supported release).
    pub m_g0: u32,
    pub p_id: u32,
    /// Execs before the traced program runs: 1 when the tracer launched
    /// it (the launch is an exec), 0 when it attached. Past that, an exec
    /// replaced the program and its Go state is not read any more.
    pub execs_expected: u32,
    /// Link addresses of `runtime.allp` (a slice of `*p`) and
    /// `runtime.allm` (the first M), and of the functions whose probes read
    /// them (`stopTheWorldWithSema`, `handoffp`): the probed address minus
    /// the link address gives the load bias. 0 when unknown (stripped).
    pub allp_link: u64,
    pub allm_link: u64,
    pub stw_fn_link: u64,
    pub handoffp_link: u64,
    /// Link addresses of `main.main` (its probe gives the load bias) and of
    /// the runtime variables read as it starts (0: no symbol):
    /// `runtime.vdsoClockgettimeSym`, `runtime.gomaxprocs` and
    /// `runtime.sched.maxmcount`.
    pub main_link: u64,
    pub vdso_sym_link: u64,
    pub gomaxprocs_link: u64,
    pub maxmcount_link: u64,
}

/// `main.main` began: the runtime's variables as it starts (short-lived
/// programs may exit before userspace could read them).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MainStartEvent {
    pub header: EventHeader,
    pub vdso_sym: u64,
    pub gomaxprocs: u32,
    pub maxmcount: u32,
    /// [`MAIN_READ_VDSO`] | [`MAIN_READ_GOMAXPROCS`] | [`MAIN_READ_MAXMCOUNT`].
    pub read: u32,
    pub _pad: u32,
}

/// The target executed a program (`sched_process_exec`): its path, as
/// the kernel's tracepoint gives it, NUL-terminated and cut to fit.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    pub header: EventHeader,
    pub filename: [u8; EXEC_NAME_LEN],
}

pub const EXEC_NAME_LEN: usize = 128;

pub const MAIN_READ_VDSO: u32 = 1;
pub const MAIN_READ_GOMAXPROCS: u32 = 2;
pub const MAIN_READ_MAXMCOUNT: u32 = 4;

/// Byte offsets of kernel struct members, read from the running kernel's
/// BTF by userspace (the kernel programs have no CO-RE relocations). Each is
/// from the start of the struct named by the prefix (`file_f_inode`: `struct
/// file`'s `f_inode`). `enabled == 0` (the default) means "not read": the
/// kernel side then reads nothing.
///
/// Sizes the kernel side reads: pointers 8 bytes; `fdt_max_fds`,
/// `file_f_flags`, `file_f_mode`, `signal_live` 4; `task_start_time` 8; `inode_i_mode`,
/// `socket_type`, `sock_family`, `sock_type`, `sock_protocol` 2;
/// `sb_s_magic` 8 (userspace checks these against BTF).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub enabled: u32,
    /// `task_struct.files` → `files_struct.fdt` → `fdtable.fd` (a `struct
    /// file **`, `fdtable.max_fds` entries).
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_f_inode: u32,
    /// `O_NONBLOCK` and the other open flags.
    pub file_f_flags: u32,
    pub file_f_mode: u32,
    /// `const struct file_operations *`: identifies the file's kind when the
    /// address is known (`tracer::procinfo::kallsyms`).
    pub file_f_op: u32,
    /// For a socket: its `struct socket *`.
    pub file_private_data: u32,
    /// `file.f_path.dentry`, then `dentry.d_name.name` (a `const char *`):
    /// an anonymous inode's class, such as `[eventfd]`.
    pub file_f_path_dentry: u32,
    /// `umode_t` (`u16`): `S_IFMT` gives the file type (0 for anonymous
    /// inodes such as eventfd and epoll).
    pub inode_i_mode: u32,
    /// `inode.i_sb` → `super_block.s_magic` (`unsigned long`): the file
    /// system (anon_inodefs, pidfs, sockfs, pipefs...).
    pub inode_i_sb: u32,
    pub sb_s_magic: u32,
    pub dentry_d_name_name: u32,
    /// `socket.sk` → `sock`; `socket.type` is the `SOCK_*` type too.
    pub socket_sk: u32,
    pub socket_type: u32,
    /// `sock.__sk_common.skc_family`, `sock.sk_type`, `sock.sk_protocol`.
    pub sock_family: u32,
    pub sock_type: u32,
    pub sock_protocol: u32,
    /// `task_struct.signal` → `signal_struct`.
    pub task_signal: u32,
    /// `task_struct.start_time` (`u64`, CLOCK_MONOTONIC ns at creation).
    pub task_start_time: u32,
    /// Unused; keeps the struct a multiple of 8 bytes.
    pub _pad: u32,
    /// `signal_struct.live` (an `atomic_t`): the threads of the group not
    /// yet exiting. 0 at a thread's `sched_process_exit` means the whole
    /// process has ended, and its PID may soon name another process.
    pub signal_live: u32,
}

/// `WINDOW_CLOSED[0]`: the traced window is open (0), closed by userspace
/// at its stop, or closed by the kernel when the target's last thread
/// exited (so a process that reuses the PID is never counted).
pub const WINDOW_OPEN: u32 = 0;
pub const WINDOW_CLOSED_BY_TRACER: u32 = 1;
pub const WINDOW_CLOSED_PROCESS_ENDED: u32 = 2;

/// What the kernel saw of the Go runtime at a syscall's exit.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PState {
    /// Not read (not Go, call too short, or the runtime state was invalid).
    Unknown = 0,
    /// The goroutine's M still owned its P: a fast exit.
    Kept = 1,
    /// The P was taken during the call (sysmon's retake, the GC, a
    /// stop-the-world, another goroutine stealing it back).
    Lost = 2,
    /// A raw syscall (no entersyscall): the P was held throughout.
    Raw = 3,
    /// The runtime's own call on a system stack (g0: sysmon, idle Ms
    /// parking, the netpoller, scheduler work): no goroutine made it.
    Runtime = 4,
    /// The runtime blocked on a goroutine's behalf after handing its P off
    /// itself (`entersyscallblock`, only from `notetsleepg`: the os/signal
    /// receiver, the CPU-profile reader): an idle wait.
    RuntimeBlocked = 5,
}

impl PState {
    pub fn from_u32(raw: u32) -> Self {
        match raw {
            1 => Self::Kept,
            2 => Self::Lost,
            3 => Self::Raw,
            4 => Self::Runtime,
            5 => Self::RuntimeBlocked,
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
    /// [`NewMEvent`]: the Go runtime wants a new M (`newm`) or starts its
    /// thread (`newm1`).
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
    /// [`MexitEvent`]: `runtime.mexit`: a goroutine exited while locked to
    /// its thread (LockOSThread), so the runtime ends the thread (or, on
    /// the main thread, wedges it).
    Mexit = 11,
    /// [`MainStartEvent`]: `main.main` began (the runtime's start-up is
    /// over).
    MainStart = 12,
    /// [`EventHeader`] only: the process executed a new program
    /// (`sched_process_exec`).
    Exec = 13,
    /// [`UnmatchedExitEvent`]: a syscall exit with no entry seen.
    UnmatchedExit = 14,
    /// A followed process (`-f`): [`ProcSyscallEvent`] (`what`
    /// [`PROC_SYSCALL`]) or [`ProcTaskEvent`] (the other `PROC_*`).
    Proc = 15,
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
            11 => Some(Self::Mexit),
            12 => Some(Self::MainStart),
            13 => Some(Self::Exec),
            14 => Some(Self::UnmatchedExit),
            15 => Some(Self::Proc),
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
    /// 1 when the call was one of the runtime's idle waits.
    pub idle: u32,
    /// The raw return value (negative errno on failure).
    pub ret: i64,
    pub duration_ns: u64,
}

/// [`ProcSyscallEvent::what`]: a completed syscall of a followed process.
pub const PROC_SYSCALL: u32 = 1;
/// [`ProcTaskEvent::what`]: a followed process forked a child process
/// (`pid`), now followed too; `tid` is the parent's tgid, `name` the
/// parent's comm (which the child inherits).
pub const PROC_FORK: u32 = 2;
/// ... a new thread (`tid`) in the followed process `pid`.
pub const PROC_THREAD_SPAWN: u32 = 3;
/// ... a thread (`tid`) of `pid` exited, `how` a `THREAD_EXIT_*`.
pub const PROC_THREAD_EXIT: u32 = 4;
/// ... the last thread (`tid`) of `pid` exited: the process ended
/// (`how` as for a thread).
pub const PROC_EXIT: u32 = 5;
/// ... `pid` executed a new program; `name` is its path.
pub const PROC_EXEC: u32 = 6;
/// ... `pid` became a target beside the first, by `how` (a `JOIN_*`);
/// `name` is its comm. Sent with the process's first event seen.
pub const PROC_JOIN: u32 = 7;

/// [`PROC_JOIN`]'s `how`: given with `-p`.
pub const JOIN_PID: u32 = 1;
/// ... its comm is a `--comm` name.
pub const JOIN_COMM: u32 = 2;
/// ... it is in a `--cgroup` (or below it).
pub const JOIN_CGROUP: u32 = 3;

/// A completed syscall of a followed process (streamed per call: their
/// calls have no in-kernel histograms).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcSyscallEvent {
    pub header: EventHeader,
    /// The followed process (its tgid).
    pub pid: u32,
    /// [`PROC_SYSCALL`]: at the same offset as [`ProcTaskEvent::what`].
    pub what: u32,
    pub sysno: u32,
    pub _pad: u32,
    /// The raw return value (negative errno on failure).
    pub ret: i64,
    pub duration_ns: u64,
}

/// A fork, thread spawn or exit, process exit or exec in a followed
/// process (see the `PROC_*` values for what each field holds).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ProcTaskEvent {
    pub header: EventHeader,
    pub pid: u32,
    pub what: u32,
    pub tid: u32,
    pub how: u32,
    /// NUL-terminated: the comm at a fork, the program's path at an exec.
    pub name: [u8; EXEC_NAME_LEN],
}

/// A syscall exit whose entry was not seen.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnmatchedExitEvent {
    pub header: EventHeader,
    /// The syscall number the kernel saved (`orig_ax`).
    pub sysno: u32,
    /// The thread that owns the in-flight slot (0: free): non-zero means
    /// the entry was dropped in a collision.
    pub slot_owner: u32,
    pub ret: i64,
}

/// [`ThreadEvent::how`] of a thread exit: it called `exit(2)` itself (a Go
/// thread only ends so when a goroutine exited locked to it).
pub const THREAD_EXIT_SELF: u32 = 1;
/// ... it called `exit_group(2)`: the process ends.
pub const THREAD_EXIT_GROUP: u32 = 2;
/// ... neither: it was killed with its process (another thread's
/// `exit_group`, a fatal signal, an `exec`).
pub const THREAD_EXIT_KILLED: u32 = 3;

/// A thread spawn or exit in the target.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadEvent {
    pub header: EventHeader,
    /// Spawn: the new thread's tid. Exit: the exiting tid (same as header).
    pub tid: u32,
    /// Exit: one of the `THREAD_EXIT_*` values; 0 for other events.
    pub how: u32,
}

/// What a slow call's descriptor refers to, read in the kernel at the
/// call's exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdInfo {
    /// The descriptor (-1: the call has none).
    pub fd: i32,
    /// One of the `FD_*` read states.
    pub state: u32,
    /// The inode's `i_mode` (file type in the `S_IFMT` bits).
    pub i_mode: u32,
    /// The open file's `f_flags` (`O_NONBLOCK`...).
    pub f_flags: u32,
    /// The open file's `f_op` (which kernel code serves it: eventfd,
    /// epoll, a socket...), an address in the kernel.
    pub f_op: u64,
    /// The file system's magic (`inode->i_sb->s_magic`): anon_inodefs,
    /// pidfs, sockfs, pipefs...
    pub sb_magic: u64,
    /// For anonymous inodes: the first bytes of the dentry name
    /// (`[eventfd]`, `[eventpoll]`...), NUL-padded.
    pub name: [u8; FD_NAME_LEN],
    pub sock_family: u16,
    pub sock_type: u16,
    pub sock_protocol: u16,
    pub _pad: u16,
}

/// Bytes of an anonymous inode's name kept in [`FdInfo::name`].
pub const FD_NAME_LEN: usize = 16;

/// [`FdInfo::state`]: the call has no descriptor, or it was not looked at.
pub const FD_NONE: u32 = 0;
/// ... read: the fields are valid.
pub const FD_READ: u32 = 1;
/// ... not open any more (closed by another thread before the exit).
pub const FD_CLOSED: u32 = 2;
/// ... the kernel structures could not be read.
pub const FD_FAILED: u32 = 3;

/// A syscall that was slow (`>= SLOW_NS`), lost its P, or was flagged by a
/// P-taking probe, with the goroutine, the descriptor and the user stack
/// (innermost first).
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
    /// [`SLOW_CALL_CGO`], and the in-flight flags (`INFLIGHT_TAKEN_*`)
    /// shifted by 8.
    pub flags: u32,
    /// The id + 1 of the P the call started with (0: unknown).
    pub p_id_plus1: u32,
    pub _pad: u32,
    pub fd: FdInfo,
    pub frames: [u64; MAX_FRAMES],
}

/// [`SlowCallEvent::flags`]: made from C code during a cgo call.
pub const SLOW_CALL_CGO: u32 = 1;

/// [`NewMEvent::kind`]: `runtime.newm`: the runtime wants a new M; the
/// stack says why.
pub const NEWM_WANTED: u32 = 1;
/// ... `runtime.newm1`: the thread is being started (on the wanting thread,
/// or on the template thread for a deferred request).
pub const NEWM_START: u32 = 2;

/// The Go runtime wants a new M or starts its thread.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct NewMEvent {
    pub header: EventHeader,
    /// [`NEWM_WANTED`] or [`NEWM_START`].
    pub kind: u32,
    pub nframes: u32,
    /// The current M's `lockedExt` (LockOSThread by the program),
    /// `lockedInt` (by the runtime), `incgo` and `id`; `u32::MAX` when
    /// unread.
    pub locked_ext: u32,
    pub locked_int: u32,
    pub incgo: u32,
    pub m_id: u32,
    /// The caller first (return address), then its callers.
    pub frames: [u64; LOCK_FRAMES],
}

/// [`HandoffEvent::victim_state`]: no search was made (Go 1.26+ handoffp,
/// or no list of Ms: a stripped binary).
pub const VICTIM_NOT_SEARCHED: u32 = 0;
/// ... the thread whose P was taken was in a syscall (`victim_sysno`,
/// `victim_start_ns` are set).
pub const VICTIM_IN_SYSCALL: u32 = 1;
/// ... found, but not in the kernel: in Go's syscall path, entering or
/// leaving the call (the runtime counts that as in the syscall).
pub const VICTIM_NOT_IN_SYSCALL: u32 = 2;
/// ... no M had this P in a syscall (a P given up by its own M:
/// entersyscallblock, stoplockedm, mexit), or the M list was unreadable.
pub const VICTIM_NOT_FOUND: u32 = 3;
/// ... more Ms than the search visits.
pub const VICTIM_SCAN_LIMIT: u32 = 4;
/// ... found, not in the kernel, and in C code (a cgo call).
pub const VICTIM_IN_C: u32 = 5;

/// `runtime.handoffp` was entered, or (Go 1.26+) a P was taken from a
/// thread in a syscall; its caller says who took the P (sysmon's retake, a
/// blocking syscall, the GC's forEachP, a locked goroutine...), and the
/// victim is the thread that was in the syscall.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HandoffEvent {
    pub header: EventHeader,
    /// Return address into the caller of handoffp/releaseP.
    pub caller: u64,
    /// The handed-off P's id + 1 (0: not read).
    pub p_id_plus1: u32,
    /// [`EventKind::PTaken`]: the state the P is put in (0 idle, 3
    /// gcstop); 0 for handoffp.
    pub new_state: u32,
    pub victim_tid: u32,
    pub victim_state: u32,
    pub victim_sysno: u32,
    pub _pad: u32,
    /// When the victim's syscall began (its in-flight start): with the tid,
    /// it names the call.
    pub victim_start_ns: u64,
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
    /// Threads in a syscall whose call was flagged (the stop takes their
    /// P unless they return first).
    pub victims: u32,
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

/// `runtime.mexit`: a goroutine exited while locked to this thread.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MexitEvent {
    pub header: EventHeader,
    /// The exiting M's id (0: m0, the main thread, which the runtime
    /// wedges instead of ending); `u64::MAX` when unread.
    pub m_id: u64,
    /// 1 when `site` holds the last LockOSThread call on this thread.
    pub has_site: u32,
    pub _pad: u32,
    pub site: LockSite,
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, and have no implicit
    // padding (checked by the layout tests), so any byte pattern is valid.
    unsafe impl aya::Pod for super::LockSite {}
    unsafe impl aya::Pod for super::GoOffsets {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::InFlight {}
    unsafe impl aya::Pod for super::SyscallHist {}
    unsafe impl aya::Pod for super::VdsoKey {}
    unsafe impl aya::Pod for super::CgroupSelector {}
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    #[test]
    fn inflight_index_is_a_bijection_spreading_neighbours() {
        let mut seen = [false; INFLIGHT_SLOTS as usize];
        // Any window of INFLIGHT_SLOTS consecutive tids, not only 0..SLOTS.
        for tid in 123_456..123_456 + INFLIGHT_SLOTS {
            let i = inflight_index(tid) as usize;
            assert!(!seen[i], "tid {tid} shares slot {i}");
            seen[i] = true;
        }
        // Neighbouring tids are a cache line (4 slots of 16 bytes) apart.
        for tid in 1000..1100 {
            let (a, b) = (inflight_index(tid), inflight_index(tid + 1));
            assert_ne!(
                a / 4,
                b / 4,
                "tids {tid} and {} share a cache line",
                tid + 1
            );
        }
    }

    #[test]
    fn inflight_layout() {
        assert_eq!(size_of::<InFlight>(), 16);
        assert_eq!(offset_of!(InFlight, sysno), 4);
        assert_eq!(offset_of!(InFlight, flags), 6);
        assert_eq!(offset_of!(InFlight, start_ns), 8);
    }

    #[test]
    fn hist_layout_fits_a_percpu_value() {
        assert_eq!(offset_of!(SyscallHist, errnos), 32);
        assert_eq!(offset_of!(SyscallHist, buckets), 32 + 8 * ERRNO_SLOTS);
        assert_eq!(
            size_of::<SyscallHist>(),
            32 + 8 * ERRNO_SLOTS + 8 * buckets::NUM_BUCKETS
        );
        // The kernel refuses per-CPU values above PCPU_MIN_UNIT_SIZE (32 KiB).
        assert!(size_of::<SyscallHist>() <= 32 * 1024);
        assert_eq!(align_of::<SyscallHist>(), 8);
    }

    #[test]
    fn errno_slots_round_trip() {
        for errno in 1..=133u64 {
            assert_eq!(errno_of_slot(errno_slot(errno)) as u64, errno);
        }
        for errno in 512..=517u64 {
            let slot = errno_slot(errno);
            assert!(slot > 133 && slot < ERRNO_SLOTS);
            assert_eq!(errno_of_slot(slot) as u64, errno);
        }
        assert_eq!(errno_slot(0), 0);
        assert_eq!(errno_slot(200), 0);
        assert_eq!(errno_slot(4095), 0);
        assert_eq!(errno_of_slot(0), 0);
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
        assert_eq!(size_of::<UnmatchedExitEvent>(), 32);
        assert_eq!(size_of::<ProcSyscallEvent>(), 48);
        assert_eq!(
            offset_of!(ProcSyscallEvent, what),
            offset_of!(ProcTaskEvent, what)
        );
        assert_eq!(offset_of!(ProcSyscallEvent, ret), 32);
        assert_eq!(size_of::<ProcTaskEvent>(), 32 + EXEC_NAME_LEN);
        assert_eq!(offset_of!(ProcTaskEvent, name), 32);
        assert_eq!(offset_of!(UnmatchedExitEvent, ret), 24);
    }

    #[test]
    fn go_layouts() {
        assert_eq!(size_of::<GoOffsets>(), 152);
        assert_eq!(size_of::<MainStartEvent>(), 40);
        assert_eq!(size_of::<ExecEvent>(), 16 + EXEC_NAME_LEN);
        assert_eq!(offset_of!(GoOffsets, allp_link), 88);
        assert_eq!(size_of::<StwEvent>(), 32);
        assert_eq!(size_of::<FdInfo>(), 56);
        assert_eq!(offset_of!(FdInfo, f_op), 16);
        assert_eq!(offset_of!(FdInfo, name), 32);
        assert_eq!(offset_of!(SlowCallEvent, goid), 40);
        assert_eq!(offset_of!(SlowCallEvent, p_id_plus1), 56);
        assert_eq!(offset_of!(SlowCallEvent, fd), 64);
        assert_eq!(offset_of!(SlowCallEvent, frames), 120);
        assert_eq!(size_of::<SlowCallEvent>(), 120 + 8 * MAX_FRAMES);
        assert_eq!(size_of::<NewMEvent>(), 40 + 8 * LOCK_FRAMES);
        assert_eq!(size_of::<LockSite>(), 16 + 8 * LOCK_FRAMES);
        assert_eq!(size_of::<MexitEvent>(), 32 + size_of::<LockSite>());
        for s in [
            PState::Unknown,
            PState::Kept,
            PState::Lost,
            PState::Raw,
            PState::Runtime,
            PState::RuntimeBlocked,
        ] {
            assert_eq!(PState::from_u32(s as u32), s);
        }
    }

    #[test]
    fn kernel_offsets_layout() {
        // 24 u32s: no implicit padding, and a multiple of 8 bytes.
        assert_eq!(size_of::<KernelOffsets>(), 96);
        assert_eq!(align_of::<KernelOffsets>(), 4);
        assert_eq!(offset_of!(KernelOffsets, enabled), 0);
        assert_eq!(offset_of!(KernelOffsets, task_files), 4);
        assert_eq!(offset_of!(KernelOffsets, file_f_inode), 20);
        assert_eq!(offset_of!(KernelOffsets, inode_i_mode), 44);
        assert_eq!(offset_of!(KernelOffsets, socket_sk), 60);
        assert_eq!(offset_of!(KernelOffsets, task_signal), 80);
        assert_eq!(offset_of!(KernelOffsets, task_start_time), 84);
        assert_eq!(offset_of!(KernelOffsets, signal_live), 92);
        assert_eq!(KernelOffsets::default().enabled, 0);
    }

    #[test]
    fn handoff_layout() {
        assert_eq!(size_of::<HandoffEvent>(), 56);
        assert_eq!(offset_of!(HandoffEvent, caller), 16);
        assert_eq!(offset_of!(HandoffEvent, p_id_plus1), 24);
        assert_eq!(offset_of!(HandoffEvent, victim_tid), 32);
        assert_eq!(offset_of!(HandoffEvent, victim_start_ns), 48);
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
        for raw in 1..=15 {
            assert_eq!(EventKind::from_u32(raw).map(|k| k as u32), Some(raw));
        }
        assert_eq!(EventKind::from_u32(0), None);
        assert_eq!(EventKind::from_u32(16), None);
        // Every kind has a ring-buffer-full slot of its own, before the
        // follow counters.
        assert!((EventKind::Proc as u32) < EVENT_KINDS);
        assert_eq!(FOLLOW_MAP_FULL_SLOT, ringbuf_full_slot(EVENT_KINDS - 1) + 1);
        assert_eq!(CHILDREN_NOT_FOLLOWED_SLOT + 1, NUM_COUNTERS);
    }
}
