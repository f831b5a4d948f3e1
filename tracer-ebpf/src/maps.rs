//! Every map of the kernel side, with the reason for its type and size.
//! Sizes are defaults: the loader may resize them before load.

use aya_ebpf::{
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap, RingBuf},
};
use tracer_common::{
    CgroupSelector, CommSelector, DEFAULT_HIST_SLOTS, INFLIGHT_SLOTS, InFlight, LockSite,
    MAX_SELECTORS, MAX_SYSCALLS, NUM_COUNTERS, SyscallHist, VdsoKey,
};

/// Syscalls in progress, indexed by `tid & (len - 1)` and tagged with the
/// tid. An array, not a hash: a lookup is an address computation, which keeps
/// the per-syscall cost near the floor of the attach.
#[map]
pub static INFLIGHT: Array<InFlight> = Array::with_max_entries(INFLIGHT_SLOTS, 0);

/// Syscall number → histogram slot + 1 (0: no slot yet). Written by
/// userspace the first time it sees a syscall number in the ring buffer.
#[map]
pub static HIST_SLOT: Array<u32> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// Per-CPU histograms: slots `0..HIST_SLOTS` for the calls goroutines (and
/// non-Go programs) make, `HIST_SLOTS..2*HIST_SLOTS` for the Go runtime's
/// idle waits, so neither blurs the other. Per-CPU: no atomics and no
/// shared cache lines on the hot path; userspace sums the CPUs when it
/// reads.
#[map]
pub static HISTS: PerCpuArray<SyscallHist> =
    PerCpuArray::with_max_entries(2 * DEFAULT_HIST_SLOTS, 0);

/// Per-CPU loss and anomaly counters (see `tracer_common::Counter`).
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(NUM_COUNTERS, 0);

/// Syscall number → `tracer_common::class` bits (which argument is the
/// descriptor, whether it is one of the runtime's idle waits). Read only on
/// the slow path.
#[map]
pub static SYSCALL_CLASS: Array<u8> = Array::with_max_entries(MAX_SYSCALLS, 0);

/// Index 0: how many times the target executed a new program. After an
/// unexpected exec the Go offsets describe a program that is gone, so the
/// slow path stops reading Go state.
#[map]
pub static EXECS: Array<u32> = Array::with_max_entries(1, 0);

/// Index 0: non-zero once the traced window is closed (`tracer_common::
/// WINDOW_*`): by userspace at its stop, before the detach (which the
/// kernel may complete a while later), or by the target's last thread as it
/// exits. Every program ignores the target from then on, so what is counted
/// is what happened in the window the report states, and never a call of
/// another process that reuses the PID.
#[map]
pub static WINDOW_CLOSED: Array<u32> = Array::with_max_entries(1, 0);

/// Index 0: when the target's last thread closed the window
/// (`bpf_ktime_get_ns`). Threads of the ended process that pass their exit
/// tracepoint after it are still reported; a thread created later belongs
/// to a process that reuses the PID.
#[map]
pub static WINDOW_CLOSED_AT: Array<u64> = Array::with_max_entries(1, 0);

/// Per-event records: syscalls without a slot, slow calls, thread spawns
/// and exits, the rare runtime events. 4 MiB holds about 100 000 records, a
/// burst of several milliseconds even at millions of unslotted syscalls per
/// second.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// tid → the last `runtime.LockOSThread` call on that thread. Bounded by
/// the runtime's own 10 000-thread limit; removed when the thread exits.
#[map]
pub static LOCK_SITES: HashMap<u32, LockSite> = HashMap::with_max_entries(16_384, 0);

/// tid → the Go `m` running on that thread, learned whenever R14 holds a
/// valid g, so calls from C code (cgo, where R14 is arbitrary) can still
/// find their goroutine. Ms never change threads.
#[map]
pub static TID_M: HashMap<u32, u64> = HashMap::with_max_entries(16_384, 0);

/// Followed processes (`-f`), indexed by tgid: non-zero while followed.
/// Set in the kernel as children fork, cleared when the process's last
/// thread exits. An array, not a hash: with `-f` every syscall of every
/// other process on the host looks its tgid up, and an index costs an
/// address computation where a hash lookup cost about 100 ns a call. The
/// loader sizes it to `pid_max` with `-f` (4 bytes a PID), to 1 without.
#[map]
pub static FOLLOWED: Array<u32> = Array::with_max_entries(1, 0);

/// `--cgroup` selectors (the first `SELECT_CGROUP_COUNT`), written by the
/// loader before the programs attach.
#[map]
pub static SELECT_CGROUPS: Array<CgroupSelector> = Array::with_max_entries(MAX_SELECTORS, 0);

/// `--comm` selectors (the first `SELECT_COMM_COUNT`).
#[map]
pub static SELECT_COMMS: Array<CommSelector> = Array::with_max_entries(MAX_SELECTORS, 0);

/// creator tid → the M its `newm1` is starting (until the spawn).
#[map]
pub static NEW_M: HashMap<u32, u64> = HashMap::with_max_entries(1_024, 0);

/// Real syscalls of calls the vDSO normally serves, counted per (syscall,
/// clock, user stack) in the kernel: exact counts at any rate, no record
/// per call. Per-CPU so a hot fallback loop needs no atomics.
#[map]
pub static VDSO_CALLS: PerCpuHashMap<VdsoKey, u64> = PerCpuHashMap::with_max_entries(4_096, 0);

/// Scratch space to build a `LockSite` (too big for the BPF stack).
#[map]
pub static LOCK_SCRATCH: PerCpuArray<LockSite> = PerCpuArray::with_max_entries(1, 0);

/// How a record submitted now notifies the reader: not at all while less
/// than an eighth of the ring is waiting (the reader drains at each of its
/// ticks, at most 250 ms apart), at once past that. A wakeup per record
/// (the default whenever the reader has caught up) is an interrupt and a
/// context switch each: hundreds a second on a busy server, charged to the
/// traced program's calls.
#[inline(always)]
pub fn wakeup() -> u64 {
    let waiting = EVENTS.query(u64::from(BPF_RB_AVAIL_DATA));
    let size = EVENTS.query(u64::from(BPF_RB_RING_SIZE));
    if waiting >= size / 8 {
        u64::from(BPF_RB_FORCE_WAKEUP)
    } else {
        u64::from(BPF_RB_NO_WAKEUP)
    }
}

/// Sends a fixed-size record to userspace, counting it when the ring
/// buffer is full (never lost silently).
#[inline(always)]
pub fn output<T>(record: &T) {
    if EVENTS.output::<T>(record, wakeup()).is_err() {
        // Every record starts with its `EventHeader`, whose first field is
        // the kind.
        // SAFETY: `T` is a `#[repr(C)]` record beginning with a u32 kind.
        ringbuf_full(unsafe { *(record as *const T).cast::<u32>() });
    }
}

/// A record of `kind` found the ring buffer full: counted in all and by kind.
#[inline(always)]
pub fn ringbuf_full(kind: u32) {
    count(tracer_common::Counter::RingBufFull);
    if let Some(slot) = COUNTERS.get_ptr_mut(tracer_common::ringbuf_full_slot(kind)) {
        // SAFETY: per-CPU value, as in `count`.
        unsafe { *slot += 1 };
    }
}

/// Adds one to a loss/anomaly counter.
#[inline(always)]
pub fn count(counter: tracer_common::Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU value, and BPF programs do not nest on one CPU for
        // the same tracepoint, so this is the only writer.
        unsafe { *slot += 1 };
    }
}

/// Whether the program the loader described is not the one running: the
/// launch has not happened yet (run mode: the tracer's own launcher is
/// waiting), or the target executed another program since.
#[inline(always)]
pub fn execed_away(expected: u32) -> bool {
    EXECS.get(0).is_none_or(|&n| n != expected)
}
