//! Syscall entry and exit (raw tracepoints `sys_enter`/`sys_exit`): filter by
//! tgid, remember the start of the call per thread, and on exit add its
//! duration and errno to the syscall's per-CPU histogram, or stream it to
//! userspace when the syscall has no histogram slot yet.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    macros::raw_tracepoint,
    programs::RawTracePointContext,
};
use tracer_common::{
    Counter, EventHeader, EventKind, HANDOFF_MIN_NS, InFlight, MAX_SYSCALLS, PState,
    SYS_RT_SIGRETURN, SYS_SCHED_YIELD, SyscallEvent, UnmatchedExitEvent, buckets, class,
    errno_slot, is_vdso_syscall,
};

use crate::{
    TARGET_TGID, follow, goruntime,
    maps::{HIST_SLOT, HISTS, INFLIGHT, SYSCALL_CLASS, count, output},
    regs, vdso, window_open,
};

/// Calls at least this long are reported with their stack (u64::MAX: never).
#[unsafe(no_mangle)]
static SLOW_NS: aya_ebpf::Global<u64> = aya_ebpf::Global::new(u64::MAX);

/// Histogram slots per half of `HISTS` (the idle waits' half follows).
#[unsafe(no_mangle)]
static HIST_SLOTS: aya_ebpf::Global<u32> = aya_ebpf::Global::new(tracer_common::DEFAULT_HIST_SLOTS);

/// The in-flight slot of thread `tid` (shared with the thread-exit program
/// and the probes that flag a call whose P was taken).
#[inline(always)]
pub fn inflight_slot(tid: u32) -> Option<*mut InFlight> {
    INFLIGHT.get_ptr_mut(tracer_common::inflight_index(tid))
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn gt_sys_enter(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == TARGET_TGID.load() {
        if window_open() {
            sys_enter(&ctx, pid_tgid as u32);
        }
    } else if let Some((_, tid)) = follow::followed(pid_tgid) {
        follow::sys_enter(&ctx, tid);
    }
    0
}

#[inline(always)]
fn sys_enter(ctx: &RawTracePointContext, tid: u32) {
    // TP_PROTO(struct pt_regs *regs, long id)
    let id: u64 = ctx.arg(1);
    if is_vdso_syscall(id) {
        vdso::count_fallback(ctx, id as u32);
    }
    start_call(tid, id);
}

/// Starts call `id` of thread `tid` in its in-flight slot (the target's
/// threads and followed processes' alike: tids are unique).
#[inline(always)]
pub fn start_call(tid: u32, id: u64) {
    let Some(slot) = inflight_slot(tid) else {
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
        // Numbers past the table are kept distinct (and counted at exit).
        sysno: id.min(u64::from(u16::MAX)) as u16,
        flags: 0,
        start_ns: unsafe { bpf_ktime_get_ns() },
    };
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn gt_sys_exit(ctx: RawTracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == TARGET_TGID.load() {
        if window_open() {
            sys_exit(&ctx, pid_tgid as u32);
        }
    } else if let Some((tgid, tid)) = follow::already_followed(pid_tgid) {
        follow::sys_exit(&ctx, tgid, tid);
    }
    0
}

#[inline(always)]
fn sys_exit(ctx: &RawTracePointContext, tid: u32) {
    let Some(slot) = inflight_slot(tid) else {
        return;
    };
    let slot = unsafe { &mut *slot };
    if slot.tid != tid {
        return unmatched(ctx, tid, slot.tid);
    }
    let call = *slot;
    slot.tid = 0;
    let now = unsafe { bpf_ktime_get_ns() };
    let duration = now.saturating_sub(call.start_ns);
    // TP_PROTO(struct pt_regs *regs, long ret)
    let ret: i64 = ctx.arg(1);
    let sysno = u32::from(call.sysno);
    if sysno >= MAX_SYSCALLS {
        count(Counter::UnknownSyscall);
        return;
    }
    // Only long calls (or ones a P-taking probe flagged) pay for reading
    // the Go runtime's state; it says whether this was an idle wait.
    let idle = if sysno == SYS_SCHED_YIELD && goruntime::is_go() {
        // The runtime's spin (osyield), however long: never the program's.
        true
    } else if duration >= HANDOFF_MIN_NS || call.flags != 0 {
        slow_path(ctx, tid, now, sysno, ret, duration, call.flags)
    } else {
        false
    };
    let slot_index = match HIST_SLOT.get(sysno) {
        Some(&n) if n != 0 => n - 1 + if idle { HIST_SLOTS.load() } else { 0 },
        _ => return stream(tid, now, sysno, ret, duration, idle),
    };
    let Some(hist) = HISTS.get_ptr_mut(slot_index) else {
        count(Counter::HistMissing);
        return stream(tid, now, sysno, ret, duration, idle);
    };
    // SAFETY: per-CPU value; no other writer on this CPU while we run.
    let hist = unsafe { &mut *hist };
    hist.calls += 1;
    hist.total_ns += duration;
    if duration > hist.max_ns {
        hist.max_ns = duration;
    }
    let bucket = buckets::bucket_of(duration);
    if let Some(b) = hist.buckets.get_mut(bucket) {
        *b += 1;
    }
    // Errors are -1..-4095; larger "negative" values are addresses (mmap).
    if (-4095..0).contains(&ret) && sysno != SYS_RT_SIGRETURN {
        hist.errors += 1;
        // Opaque to the optimizer, so the bounds check below stays in the
        // form the verifier follows.
        let slot = core::hint::black_box(errno_slot(ret.unsigned_abs()));
        if let Some(e) = hist.errnos.get_mut(slot) {
            *e += 1;
        }
    }
}

/// Long calls: find out whether the goroutine lost its P or the runtime was
/// idle, and report the call with its stack when it lost its P, was
/// flagged, or was slow work. Returns whether it was an idle wait.
#[inline(always)]
fn slow_path(
    ctx: &RawTracePointContext,
    tid: u32,
    now: u64,
    sysno: u32,
    ret: i64,
    duration: u64,
    flags: u16,
) -> bool {
    let class = SYSCALL_CLASS.get(sysno).copied().unwrap_or(0);
    let state = goruntime::inspect(ctx, tid);
    let idle = match state.p_state {
        // On the system stack, or under entersyscallblock (notetsleepg's
        // futex: timers, os/signal). The class check keeps other calls on
        // such threads out (a signal's rt_sigreturn).
        PState::Runtime | PState::RuntimeBlocked => class & class::IDLE_WAIT != 0,
        _ => false,
    };
    let slow = duration >= SLOW_NS.load();
    if (slow && !idle) || state.p_state == PState::Lost || flags != 0 {
        goruntime::report(ctx, tid, now, sysno, ret, duration, state, flags, class);
    }
    idle
}

/// A syscall exit whose entry was not seen: the call began before the
/// probes (attach), a new thread returns from clone, or its entry lost a
/// collision. Rare, so each one is reported with the syscall number.
#[inline(always)]
fn unmatched(ctx: &RawTracePointContext, tid: u32, slot_owner: u32) {
    count(Counter::UnmatchedExit);
    let user_regs: *const u8 = ctx.arg(0);
    let sysno: u64 =
        unsafe { bpf_probe_read_kernel(user_regs.add(regs::ORIG_AX).cast()) }.unwrap_or(u64::MAX);
    let event = UnmatchedExitEvent {
        header: EventHeader {
            kind: EventKind::UnmatchedExit as u32,
            tid,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        sysno: sysno as u32,
        slot_owner,
        ret: ctx.arg(1),
    };
    output(&event);
}

/// Sends one completed syscall to userspace (no histogram slot for it yet).
#[inline(always)]
fn stream(tid: u32, now: u64, sysno: u32, ret: i64, duration_ns: u64, idle: bool) {
    let event = SyscallEvent {
        header: EventHeader {
            kind: EventKind::Syscall as u32,
            tid,
            ts_ns: now,
        },
        sysno,
        idle: u32::from(idle),
        ret,
        duration_ns,
    };
    output(&event);
}
