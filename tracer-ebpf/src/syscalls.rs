//! Syscall entry and exit (raw tracepoints `sys_enter`/`sys_exit`): filter by
//! tgid, remember the start of the call per thread, and on exit add its
//! duration to the syscall's per-CPU histogram, or stream it to userspace
//! when the syscall has no histogram slot yet.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::{
    Counter, EventHeader, EventKind, HANDOFF_MIN_NS, InFlight, MAX_SYSCALLS, PState,
    SYS_EXIT_GROUP, SyscallEvent, buckets, is_vdso_syscall,
};

use crate::{
    goruntime,
    maps::{GROUP_EXIT, HIST_SLOT, HISTS, INFLIGHT, count, output},
    target_tid, vdso,
};

/// Calls at least this long are reported with their stack (u64::MAX: never).
#[unsafe(no_mangle)]
static SLOW_NS: aya_ebpf::Global<u64> = aya_ebpf::Global::new(u64::MAX);

/// Mask of the `INFLIGHT` table, set by the loader to its size - 1.
#[unsafe(no_mangle)]
static INFLIGHT_MASK: aya_ebpf::Global<u32> =
    aya_ebpf::Global::new(tracer_common::DEFAULT_INFLIGHT_SLOTS - 1);

/// The mask for indexing `INFLIGHT` (shared with the thread-exit program).
#[inline(always)]
pub fn inflight_mask() -> u32 {
    INFLIGHT_MASK.load()
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn gt_sys_enter(ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = target_tid() {
        sys_enter(&ctx, tid);
    }
    0
}

#[inline(always)]
fn sys_enter(ctx: &RawTracePointContext, tid: u32) {
    // TP_PROTO(struct pt_regs *regs, long id)
    let id: u64 = ctx.arg(1);
    let now = unsafe { bpf_ktime_get_ns() };
    if id == SYS_EXIT_GROUP
        && let Some(at) = GROUP_EXIT.get_ptr_mut(0)
    {
        unsafe { *at = now };
    }
    if is_vdso_syscall(id) {
        vdso::count_fallback(ctx, id as u32);
    }
    let Some(slot) = INFLIGHT.get_ptr_mut(tid & inflight_mask()) else {
        return;
    };
    // SAFETY: the slot belongs to this thread unless another in-flight thread
    // hashes to it, which is detected and counted below.
    let slot = unsafe { &mut *slot };
    if slot.tid != 0 && slot.tid != tid {
        count(Counter::InFlightCollision);
        return;
    }
    *slot = InFlight {
        tid,
        sysno: id as u32,
        start_ns: now,
    };
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn gt_sys_exit(ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = target_tid() {
        sys_exit(&ctx, tid);
    }
    0
}

#[inline(always)]
fn sys_exit(ctx: &RawTracePointContext, tid: u32) {
    let Some(slot) = INFLIGHT.get_ptr_mut(tid & inflight_mask()) else {
        return;
    };
    let slot = unsafe { &mut *slot };
    if slot.tid != tid {
        count(Counter::UnmatchedExit);
        return;
    }
    let call = *slot;
    slot.tid = 0;
    let now = unsafe { bpf_ktime_get_ns() };
    let duration = now.saturating_sub(call.start_ns);
    // TP_PROTO(struct pt_regs *regs, long ret)
    let ret: i64 = ctx.arg(1);
    // Errors are -1..-4095; larger "negative" values are addresses (mmap).
    let failed = (-4095..0).contains(&ret);

    if call.sysno >= MAX_SYSCALLS {
        count(Counter::UnknownSyscall);
        return;
    }
    // Before the histogram/stream split: a syscall seen for the first time
    // (streamed) can lose its P as well.
    if duration >= HANDOFF_MIN_NS {
        slow_path(ctx, tid, now, call.sysno, ret, duration);
    }
    let slot_index = match HIST_SLOT.get(call.sysno) {
        Some(&n) if n != 0 => n - 1,
        _ => return stream(tid, now, call.sysno, ret, duration),
    };
    let Some(hist) = HISTS.get_ptr_mut(slot_index) else {
        count(Counter::HistMissing);
        return stream(tid, now, call.sysno, ret, duration);
    };
    // SAFETY: per-CPU value; no other writer on this CPU while we run.
    let hist = unsafe { &mut *hist };
    hist.calls += 1;
    hist.errors += u64::from(failed);
    hist.total_ns += duration;
    if duration > hist.max_ns {
        hist.max_ns = duration;
    }
    let bucket = buckets::bucket_of(duration);
    if let Some(b) = hist.buckets.get_mut(bucket) {
        *b += 1;
    }
}

/// Long calls: find out whether the goroutine lost its P, and report the
/// call with its stack when it did or when it was slow.
#[inline(always)]
fn slow_path(ctx: &RawTracePointContext, tid: u32, now: u64, sysno: u32, ret: i64, duration: u64) {
    let state = goruntime::inspect(ctx, tid);
    if duration >= SLOW_NS.load() || state.p_state == PState::Lost {
        goruntime::report(ctx, tid, now, sysno, ret, duration, state);
    }
}

/// Sends one completed syscall to userspace (no histogram slot for it yet).
#[inline(always)]
fn stream(tid: u32, now: u64, sysno: u32, ret: i64, duration_ns: u64) {
    let event = SyscallEvent {
        header: EventHeader {
            kind: EventKind::Syscall as u32,
            tid,
            ts_ns: now,
        },
        sysno,
        _pad: 0,
        ret,
        duration_ns,
    };
    output(&event);
}
