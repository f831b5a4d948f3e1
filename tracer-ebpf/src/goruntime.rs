//! Reading the Go runtime's state: inside the syscall exit program for the
//! few calls long enough to matter (no uprobe on any per-syscall path): the
//! goroutine (g from R14 in the saved user registers, checked against
//! `g.m.procid == tid`), its id, and whether its P was taken while it was
//! in the kernel; and the uprobes on rare runtime paths (a new M, a P
//! handoff, a stop-the-world, LockOSThread, a locked goroutine's exit, the
//! start of `main.main`). Offsets come from userspace per Go version
//! (`GO_OFFSETS`); this file has no version branches beyond the two
//! syscall designs (`_Psyscall` up to 1.25, the P wired to the M from
//! 1.26). What fails is counted (`COUNTERS`) and, on rare paths, logged.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_F_USER_STACK, pt_regs},
    helpers::{bpf_get_stack, bpf_ktime_get_ns, bpf_probe_read_kernel, bpf_probe_read_user},
    macros::uprobe,
    programs::{ProbeContext, RawTracePointContext},
};
use aya_log_ebpf::{debug, warn};
use tracer_common::{
    Counter, EventHeader, EventKind, FdInfo, GoOffsets, HandoffEvent, INFLIGHT_TAKEN_HANDOFF,
    INFLIGHT_TAKEN_STW, LOCK_FRAMES, MAIN_READ_GOMAXPROCS, MAIN_READ_MAXMCOUNT, MAIN_READ_VDSO,
    MAX_FRAMES, MainStartEvent, MexitEvent, NEWM_START, NEWM_WANTED, NewMEvent, PState,
    SLOW_CALL_CGO, SYS_SCHED_YIELD, SlowCallEvent, StwEvent, ThreadEvent, VICTIM_IN_C,
    VICTIM_IN_SYSCALL, VICTIM_NOT_FOUND, VICTIM_NOT_IN_SYSCALL, VICTIM_NOT_SEARCHED,
    VICTIM_SCAN_LIMIT, class,
    gostate::{G_SYSCALL, P_GCSTOP, P_SYSCALL},
};

use crate::{
    fd,
    maps::{EVENTS, LOCK_SCRATCH, LOCK_SITES, NEW_M, TID_M, count, execed_away, output},
    regs,
    syscalls::inflight_slot,
    target_tid,
};

#[unsafe(no_mangle)]
static GO_OFFSETS: aya_ebpf::Global<GoOffsets> = aya_ebpf::Global::new(GoOffsets {
    enabled: 0,
    p_stays_wired: 0,
    g_m: 0,
    g_goid: 0,
    g_atomicstatus: 0,
    m_procid: 0,
    m_p: 0,
    m_oldp: 0,
    p_status: 0,
    m_syscalltick: 0,
    p_syscalltick: 0,
    m_curg: 0,
    m_incgo: 0,
    g_sched_pc: 0,
    g_sched_bp: 0,
    m_id: 0,
    m_alllink: 0,
    m_locked_ext: 0,
    m_locked_int: 0,
    m_g0: 0,
    p_id: 0,
    execs_expected: 0,
    allp_link: 0,
    allm_link: 0,
    stw_fn_link: 0,
    handoffp_link: 0,
    main_link: 0,
    vdso_sym_link: 0,
    gomaxprocs_link: 0,
    maxmcount_link: 0,
});

/// Ms visited when looking for the thread whose P was taken: past this
/// (a process with more threads), the handoff is reported without it.
const MAX_MS: u32 = 2048;

#[inline(always)]
fn user(addr: u64) -> Result<u64, i32> {
    unsafe { bpf_probe_read_user(addr as *const u64) }
}

#[inline(always)]
fn user32(addr: u64) -> Result<u32, i32> {
    unsafe { bpf_probe_read_user(addr as *const u32) }
}

/// The target runs a known Go release (and has not exec'd away).
#[inline(always)]
pub fn is_go() -> bool {
    offsets().is_some()
}

/// The Go offsets when Go state may be read now: a known release, and the
/// program the loader described still runs (no exec since).
#[inline(always)]
fn offsets() -> Option<GoOffsets> {
    let o = GO_OFFSETS.load();
    (o.enabled != 0 && !execed_away(o.execs_expected)).then_some(o)
}

// ---------------------------------------------------------------------------
// The state of a call, read at its exit.

/// What the runtime state says about the current call.
#[derive(Clone, Copy)]
pub struct GoState {
    pub goid: u64,
    pub p_state: PState,
    /// The goroutine, when the call is made by C code inside a cgo call
    /// (its Go stack is then walked from the frame `entersyscall` saved).
    pub cgo_g: u64,
    /// The id + 1 of the P the call started with (0: unknown).
    pub p_id_plus1: u32,
}

const UNKNOWN: GoState = GoState {
    goid: 0,
    p_state: PState::Unknown,
    cgo_g: 0,
    p_id_plus1: 0,
};

#[inline(always)]
pub fn inspect(ctx: &RawTracePointContext, tid: u32) -> GoState {
    let Some(o) = offsets() else {
        return UNKNOWN;
    };
    match read_state(ctx, tid, &o) {
        Ok(state) => state,
        Err(NO_GO_CONTEXT) => {
            count(Counter::NoGoContext);
            UNKNOWN
        }
        Err(e) => {
            // A read of the runtime's structures failed, or R14 named a g
            // of another M.
            count(Counter::GoReadFailed);
            debug!(
                ctx,
                "tid {}: no Go state readable at a slow call's exit ({})", tid, e
            );
            UNKNOWN
        }
    }
}

/// [`read_state`]'s error when no goroutine's context is there to read:
/// the thread has no M yet, or it runs C code outside a cgo call (never a
/// helper's error code, which are negative).
const NO_GO_CONTEXT: i32 = 1;

/// The M of this thread: from R14 when it holds a valid g (Go code), else
/// the M this thread was last seen running (C code keeps anything in R14);
/// `Err(NO_GO_CONTEXT)` when neither (the runtime has not set the thread
/// up). The flag: R14 is a g of this M.
#[inline(always)]
fn current_m(r14: u64, tid: u32, o: &GoOffsets) -> Result<(u64, bool), i32> {
    if r14 != 0
        && let Ok(m) = user(r14 + u64::from(o.g_m))
        && m != 0
        && user(m + u64::from(o.m_procid)).is_ok_and(|id| id as u32 == tid)
    {
        if TID_M.insert(tid, m, 0).is_err() {
            count(Counter::GoMapFull);
        }
        return Ok((m, true));
    }
    unsafe { TID_M.get(tid) }
        .copied()
        .map(|m| (m, false))
        .ok_or(NO_GO_CONTEXT)
}

/// The id + 1 of the P at `p`; 0 for no P or an unreadable one.
#[inline(always)]
fn id_plus1_of(p: u64, o: &GoOffsets) -> u32 {
    if p == 0 {
        return 0;
    }
    user32(p + u64::from(o.p_id)).map_or(0, |id| id.wrapping_add(1))
}

#[inline(always)]
fn read_state(ctx: &RawTracePointContext, tid: u32, o: &GoOffsets) -> Result<GoState, i32> {
    // TP_PROTO(struct pt_regs *regs, long ret): the user registers at entry.
    let user_regs: *const u8 = ctx.arg(0);
    let r14: u64 = unsafe { bpf_probe_read_kernel(user_regs.add(regs::R14).cast())? };
    let (m, r14_is_g) = current_m(r14, tid, o)?;
    let in_c = unsafe { bpf_probe_read_user((m + u64::from(o.m_incgo)) as *const u8)? } != 0;
    let g = if in_c {
        // A cgo call: the goroutine that made it is the M's current one.
        user(m + u64::from(o.m_curg))?
    } else if !r14_is_g {
        // C code outside a cgo call: the runtime's own C calls in a cgo
        // binary (asmcgocall: _cgo_init, _cgo_thread_start's
        // pthread_create), R14 anything.
        return Err(NO_GO_CONTEXT);
    } else {
        // On the system stack (g0) no goroutine is making the call: the
        // runtime is (sysmon, idle Ms, the netpoller, scheduler work).
        if user(m + u64::from(o.m_g0))? == r14 {
            // An M on its system stack may hold a P (spinning, scheduling).
            let p = user(m + u64::from(o.m_p))?;
            return Ok(GoState {
                goid: 0,
                p_state: PState::Runtime,
                cgo_g: 0,
                p_id_plus1: id_plus1_of(p, o),
            });
        }
        r14
    };
    if g == 0 || (!in_c && user(g + u64::from(o.g_m))? != m) {
        return Err(0);
    }
    let goid = user(g + u64::from(o.g_goid))?;
    let cgo_g = if in_c { g } else { 0 };
    if user32(g + u64::from(o.g_atomicstatus))? != G_SYSCALL {
        // No entersyscall: a raw syscall, the P was held throughout.
        let p = user(m + u64::from(o.m_p))?;
        return Ok(GoState {
            goid,
            p_state: PState::Raw,
            cgo_g,
            p_id_plus1: id_plus1_of(p, o),
        });
    }
    let p = user(m + u64::from(o.m_p))?;
    // entersyscall records the P in m.oldp (exitsyscall clears it);
    // entersyscallblock hands the P off first and records none.
    let oldp = user(m + u64::from(o.m_oldp))?;
    // A P taken during the call is no longer in m.p; m.oldp still names
    // the P the call entered with (both runtime generations set it).
    let p_id_plus1 = id_plus1_of(if p == 0 { oldp } else { p }, o);
    let p_state = if p == 0 && oldp == 0 {
        PState::RuntimeBlocked
    } else if o.p_stays_wired != 0 {
        // 1.26+: the P stays wired during the syscall unless taken.
        if p == 0 { PState::Lost } else { PState::Kept }
    } else {
        // ≤1.25: entersyscall parks the P in m.oldp with status _Psyscall;
        // a taker changes that status. The status alone can mislead: the P
        // may have been taken, used, and put in a syscall again by another
        // goroutine; the syscall ticks (what exitsyscallfast_reacquired
        // compares) tell.
        if p == 0
            && user32(oldp + u64::from(o.p_status))? == P_SYSCALL
            && user32(m + u64::from(o.m_syscalltick))? == user32(oldp + u64::from(o.p_syscalltick))?
        {
            PState::Kept
        } else {
            PState::Lost
        }
    };
    Ok(GoState {
        goid,
        p_state,
        cgo_g,
        p_id_plus1,
    })
}

/// The Go frames of a goroutine that is in a cgo call: `entersyscall`
/// saved its pc and frame pointer in `g.sched`; follow the frame pointers.
#[inline(always)]
fn go_frames(g: u64, frames: &mut [u64; MAX_FRAMES]) -> u32 {
    let o = GO_OFFSETS.load();
    let Ok(pc) = user(g + u64::from(o.g_sched_pc)) else {
        return 0;
    };
    frames[0] = pc;
    let Ok(mut bp) = user(g + u64::from(o.g_sched_bp)) else {
        return 1;
    };
    let mut n = 1u32;
    for slot in frames.iter_mut().skip(1) {
        if bp == 0 {
            break;
        }
        let (Ok(ret), Ok(next)) = (user(bp + 8), user(bp)) else {
            break;
        };
        if ret == 0 {
            break;
        }
        *slot = ret;
        n += 1;
        if next <= bp {
            break;
        }
        bp = next;
    }
    n
}

/// The descriptor a call waits on, by its class: an argument, or (for
/// calls that open one) its return value.
#[inline(always)]
fn call_fd(ctx: &RawTracePointContext, class: u8, ret: i64) -> Option<i64> {
    let arg = |offset: usize| -> Option<i64> {
        let user_regs: *const u8 = ctx.arg(0);
        unsafe { bpf_probe_read_kernel(user_regs.add(offset).cast::<i64>()) }.ok()
    };
    if class & class::FD_ARG0 != 0 {
        arg(regs::DI)
    } else if class & class::FD_ARG1 != 0 {
        arg(regs::SI)
    } else if class & class::FD_RET != 0 && ret >= 0 {
        Some(ret)
    } else {
        None
    }
}

/// Sends a slow, P-losing or flagged call to userspace with its
/// descriptor and user stack.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub fn report(
    ctx: &RawTracePointContext,
    tid: u32,
    now: u64,
    sysno: u32,
    ret: i64,
    duration_ns: u64,
    state: GoState,
    inflight_flags: u16,
    class: u8,
) {
    let fd = match call_fd(ctx, class, ret) {
        Some(n) => fd::describe(n),
        None => FdInfo {
            fd: -1,
            ..FdInfo::default()
        },
    };
    if fd.state == tracer_common::FD_FAILED {
        count(Counter::FdReadFailed);
    }
    let Some(mut entry) = EVENTS.reserve::<SlowCallEvent>(0) else {
        crate::maps::ringbuf_full(EventKind::SlowCall as u32);
        return;
    };
    let event = entry.as_mut_ptr();
    unsafe {
        (*event).header = EventHeader {
            kind: EventKind::SlowCall as u32,
            tid,
            ts_ns: now,
        };
        (*event).sysno = sysno;
        (*event).p_state = state.p_state as u32;
        (*event).ret = ret;
        (*event).duration_ns = duration_ns;
        (*event).goid = state.goid;
        (*event).p_id_plus1 = state.p_id_plus1;
        (*event)._pad = 0;
        (*event).fd = fd;
        let taken = u32::from(inflight_flags) << 8;
        if state.cgo_g != 0 {
            // C frames have no frame pointers: report the Go stack that
            // made the cgo call instead.
            (*event).flags = SLOW_CALL_CGO | taken;
            (*event).nframes = go_frames(state.cgo_g, &mut (*event).frames);
        } else {
            (*event).flags = taken;
            let frames = (&raw mut (*event).frames).cast();
            let size = (MAX_FRAMES * 8) as u32;
            let n = bpf_get_stack(ctx.as_ptr(), frames, size, u64::from(BPF_F_USER_STACK));
            (*event).nframes = if n > 0 { (n / 8) as u32 } else { 0 };
            if n <= 0 {
                count(Counter::StackMissing);
            }
        }
    }
    entry.submit(crate::maps::wakeup());
}

// ---------------------------------------------------------------------------
// Uprobes on rare runtime paths.

/// The user stack at a function entry: the caller (return address `ret`)
/// first, since at entry the frame pointer still belongs to the caller and a
/// frame-pointer walk would skip it; then the walk, minus its first frame
/// (the probed instruction). Returns the number of frames.
#[inline(always)]
fn entry_stack(ctx: &ProbeContext, ret: u64, frames: &mut [u64; LOCK_FRAMES]) -> u32 {
    frames[0] = ret;
    let walked = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            (&raw mut frames[1]).cast(),
            ((LOCK_FRAMES - 1) * 8) as u32,
            u64::from(BPF_F_USER_STACK) | 1,
        )
    };
    1 + if walked > 0 { (walked / 8) as u32 } else { 0 }
}

/// The return address on top of the stack at a function entry.
#[inline(always)]
fn caller(regs: &pt_regs) -> u64 {
    user(regs.rsp).unwrap_or(0)
}

#[inline(always)]
fn header(kind: EventKind, tid: u32) -> EventHeader {
    EventHeader {
        kind: kind as u32,
        tid,
        ts_ns: unsafe { bpf_ktime_get_ns() },
    }
}

/// The M running this thread at a runtime function's entry (R14 is the
/// current g, g0 on the system stack), checked against the thread id. An
/// M on its way out has `procid` 0 (`unminit` clears it before `mexit`
/// hands its P off).
#[inline(always)]
fn probe_m(regs: &pt_regs, tid: u32, o: &GoOffsets) -> Option<u64> {
    let m = user(regs.r14 + u64::from(o.g_m)).ok()?;
    let procid = user32(m + u64::from(o.m_procid)).ok()?;
    (m != 0 && (procid == tid || procid == 0)).then_some(m)
}

/// Uprobe on `runtime.newm` (once per M the runtime wants): the stack says
/// why (sysmon's retake of a P from a syscall, a blocking syscall's
/// handoff, a locked goroutine blocking, new runnable work, the template
/// thread...), and the current M's lock and cgo state says whether the
/// thread is started here or deferred to the template thread.
#[uprobe]
pub fn gt_newm(ctx: ProbeContext) -> u32 {
    newm_event(&ctx, NEWM_WANTED);
    0
}

/// Uprobe on `runtime.newm1` (once per thread the runtime starts): the
/// spawn that follows on this thread is that M; `newm1(mp *m)` names it,
/// so the new thread's tid → m is known before its first call (which may
/// be from C code).
#[uprobe]
pub fn gt_newm1(ctx: ProbeContext) -> u32 {
    if let Some(tid) = target_tid() {
        let mp = unsafe { (*ctx.regs).rax };
        if NEW_M.insert(tid, mp, 0).is_err() {
            count(Counter::GoMapFull);
        }
    }
    newm_event(&ctx, NEWM_START);
    0
}

#[inline(always)]
fn newm_event(ctx: &ProbeContext, kind: u32) {
    let Some(tid) = target_tid() else {
        return;
    };
    let Some(o) = offsets() else {
        return;
    };
    let regs = unsafe { &*ctx.regs };
    let m = probe_m(regs, tid, &o);
    if m.is_none() {
        count(Counter::GoReadFailed);
    }
    let field = |offset: u32| -> u32 {
        m.and_then(|m| user32(m + u64::from(offset)).ok())
            .unwrap_or(u32::MAX)
    };
    let incgo = m
        .and_then(|m| unsafe { bpf_probe_read_user((m + u64::from(o.m_incgo)) as *const u8) }.ok())
        .map_or(u32::MAX, u32::from);
    let Some(mut entry) = EVENTS.reserve::<NewMEvent>(0) else {
        crate::maps::ringbuf_full(EventKind::NewM as u32);
        return;
    };
    let event = entry.as_mut_ptr();
    unsafe {
        (*event).header = header(EventKind::NewM, tid);
        (*event).kind = kind;
        (*event).locked_ext = field(o.m_locked_ext);
        (*event).locked_int = field(o.m_locked_int);
        (*event).incgo = incgo;
        (*event).m_id = field(o.m_id);
        (*event).nframes = entry_stack(ctx, caller(regs), &mut (*event).frames);
    }
    entry.submit(crate::maps::wakeup());
}

/// Uprobe on the slow syscall exit (`runtime.exitsyscall0` up to Go 1.25,
/// `runtime.exitsyscallNoP` from 1.26): the goroutine found no P, so it is
/// queued and this thread parks. Runs at most once per P-losing call.
#[uprobe]
pub fn gt_slow_exit(_ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let event = ThreadEvent {
        header: header(EventKind::SlowExit, tid),
        tid,
        how: 0,
    };
    output(&event);
    0
}

/// The thread whose P changed hands, as the handoff event reports it.
struct Victim {
    tid: u32,
    state: u32,
    sysno: u32,
    start_ns: u64,
}

const NO_VICTIM: Victim = Victim {
    tid: 0,
    state: VICTIM_NOT_SEARCHED,
    sysno: 0,
    start_ns: 0,
};

/// The victim thread `tid` of M `m`: if it is in a syscall, flag the call
/// so its exit is checked and reported however short it is; else say
/// whether it is in C code (a cgo call) or in Go's syscall path.
#[inline(always)]
fn flag_victim_m(tid: u32, m: u64, flag: u16) -> Victim {
    let v = flag_victim(tid, flag);
    if v.state == VICTIM_NOT_IN_SYSCALL {
        let o = GO_OFFSETS.load();
        let in_c = unsafe { bpf_probe_read_user((m + u64::from(o.m_incgo)) as *const u8) };
        if in_c.is_ok_and(|c| c != 0) {
            return Victim {
                state: VICTIM_IN_C,
                ..v
            };
        }
    }
    v
}

/// The victim thread `tid`: if it is in a syscall, flag the call so its
/// exit is checked and reported however short it is.
#[inline(always)]
fn flag_victim(tid: u32, flag: u16) -> Victim {
    if let Some(slot) = inflight_slot(tid) {
        let slot = unsafe { &mut *slot };
        // A thread spinning in sched_yield is in the runtime's own path
        // around a syscall (`exitsyscall` waiting for a P), not in the
        // program's call.
        if slot.tid == tid && u32::from(slot.sysno) != SYS_SCHED_YIELD {
            slot.flags |= flag;
            return Victim {
                tid,
                state: VICTIM_IN_SYSCALL,
                sysno: u32::from(slot.sysno),
                start_ns: slot.start_ns,
            };
        }
    }
    Victim {
        tid,
        state: VICTIM_NOT_IN_SYSCALL,
        sysno: 0,
        start_ns: 0,
    }
}

/// What the walk over `runtime.allm` is looking for.
const SCAN_HANDOFF: u32 = 0;
const SCAN_STW: u32 = 1;

/// The state of a walk over the list of Ms, shared with its `bpf_loop`
/// callback (a loop the verifier checks once, not once per M).
#[repr(C)]
struct MScan {
    /// The next M to look at (0: the list ended).
    m: u64,
    /// [`SCAN_HANDOFF`]: find the M whose syscall held P `pp` with the
    /// tick before `ptick`; [`SCAN_STW`]: flag every M holding a
    /// `_Psyscall` P with the same tick.
    mode: u32,
    ptick: u32,
    pp: u64,
    /// Results: the victim's M and tid (handoff), calls flagged (stop),
    /// whether the walk ended (the list's end, or the victim found) and
    /// whether a read failed.
    found_m: u64,
    tid: u32,
    flagged: u32,
    done: u32,
    failed: u32,
}

/// One step of the walk: looks at `scan.m` and moves to the next M.
/// Returns 1 to stop the loop.
#[inline(never)]
extern "C" fn scan_step(_index: u64, ctx: *mut core::ffi::c_void) -> i64 {
    // SAFETY: bpf_loop passes back the pointer it was given: an MScan on
    // the caller's stack.
    let scan = unsafe { &mut *ctx.cast::<MScan>() };
    match scan_m(scan) {
        Ok(stop) => i64::from(stop),
        Err(_) => {
            scan.failed = 1;
            1
        }
    }
}

#[inline(always)]
fn scan_m(scan: &mut MScan) -> Result<bool, i32> {
    let o = GO_OFFSETS.load();
    let m = scan.m;
    if m == 0 {
        scan.done = 1;
        return Ok(true);
    }
    let oldp = user(m + u64::from(o.m_oldp))?;
    if oldp != 0 && user(m + u64::from(o.m_p))? == 0 {
        let mtick = user32(m + u64::from(o.m_syscalltick))?;
        if scan.mode == SCAN_HANDOFF {
            if oldp == scan.pp && mtick.wrapping_add(1) == scan.ptick {
                scan.tid = user32(m + u64::from(o.m_procid))?;
                scan.found_m = m;
                scan.done = 1;
                return Ok(true);
            }
        } else if user32(oldp + u64::from(o.p_status))? == P_SYSCALL
            && user32(oldp + u64::from(o.p_syscalltick))? == mtick
        {
            let tid = user32(m + u64::from(o.m_procid))?;
            if flag_victim(tid, INFLIGHT_TAKEN_STW).state == VICTIM_IN_SYSCALL {
                scan.flagged += 1;
            }
        }
    }
    scan.m = user(m + u64::from(o.m_alllink))?;
    Ok(false)
}

/// Walks the Ms from `runtime.allm` (at `allm_link + bias`).
#[inline(always)]
fn walk_ms(scan: &mut MScan, allm: u64) -> Result<(), i32> {
    scan.m = user(allm)?;
    let ctx: *mut MScan = scan;
    // SAFETY: bpf_loop calls `scan_step` at most MAX_MS times with `ctx`,
    // which outlives the call.
    unsafe {
        aya_ebpf::helpers::generated::bpf_loop(
            MAX_MS,
            scan_step as *mut core::ffi::c_void,
            ctx.cast(),
            0,
        );
    }
    if scan.failed != 0 {
        return Err(0);
    }
    Ok(())
}

/// ≤1.25: the M whose syscall held `pp` until a taker set it idle and
/// bumped its tick: the one with `oldp == pp`, no P, and the tick before.
#[inline(always)]
fn find_victim(pp: u64, bias: u64, o: &GoOffsets) -> Result<Victim, i32> {
    if o.allm_link == 0 || o.p_stays_wired != 0 || pp == 0 {
        return Ok(NO_VICTIM);
    }
    let mut scan = MScan {
        m: 0,
        mode: SCAN_HANDOFF,
        ptick: user32(pp + u64::from(o.p_syscalltick))?,
        pp,
        found_m: 0,
        tid: 0,
        flagged: 0,
        done: 0,
        failed: 0,
    };
    walk_ms(&mut scan, o.allm_link.wrapping_add(bias))?;
    if scan.done == 0 {
        count(Counter::VictimScanLimit);
        return Ok(Victim {
            state: VICTIM_SCAN_LIMIT,
            ..NO_VICTIM
        });
    }
    if scan.tid == 0 {
        return Ok(Victim {
            state: VICTIM_NOT_FOUND,
            ..NO_VICTIM
        });
    }
    Ok(flag_victim_m(
        scan.tid,
        scan.found_m,
        INFLIGHT_TAKEN_HANDOFF,
    ))
}

/// Uprobe on `runtime.handoffp` (once per P handoff, a rare path): who
/// handed the P off (the caller), and on ≤1.25 which thread's syscall held
/// it (found through `runtime.allm`).
#[uprobe]
pub fn gt_handoffp(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let Some(o) = offsets() else {
        return 0;
    };
    // handoffp(pp *p): pp in RAX (register ABI).
    let regs = unsafe { &*ctx.regs };
    let pp = regs.rax;
    // The probed address minus its link address is the load bias (a page
    // multiple; the trap may leave the IP a byte further).
    let bias = regs.rip.wrapping_sub(o.handoffp_link) & !0xfff;
    let victim = match find_victim(pp, bias, &o) {
        Ok(v) => v,
        Err(_) => {
            count(Counter::GoReadFailed);
            warn!(&ctx, "handoffp: cannot read the Ms of P at {:x}", pp);
            Victim {
                state: VICTIM_NOT_FOUND,
                ..NO_VICTIM
            }
        }
    };
    p_changed_hands(tid, regs, EventKind::Handoff, pp, 0, victim, &o);
    0
}

/// Uprobe on `runtime.syscallingThread.releaseP` (Go 1.26+, once per P
/// taken from a thread in a syscall): the receiver is passed in registers
/// (RAX gp, RBX mp, RCX pp, RDI status) and RSI is the P's new state (3:
/// `_Pgcstop`, a stop-the-world); the caller says who took it (sysmon's
/// retake, a goroutine stealing it back on exit, the GC's forEachP), and
/// mp is the thread in the syscall.
#[uprobe]
pub fn gt_release_p(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let Some(o) = offsets() else {
        return 0;
    };
    let regs = unsafe { &*ctx.regs };
    let new_state = regs.rsi as u32;
    let flag = if new_state == P_GCSTOP {
        INFLIGHT_TAKEN_STW
    } else {
        INFLIGHT_TAKEN_HANDOFF
    };
    let victim = match user32(regs.rbx + u64::from(o.m_procid)) {
        Ok(victim_tid) => flag_victim_m(victim_tid, regs.rbx, flag),
        Err(_) => {
            count(Counter::GoReadFailed);
            warn!(&ctx, "releaseP: cannot read the M at {:x}", regs.rbx);
            Victim {
                state: VICTIM_NOT_FOUND,
                ..NO_VICTIM
            }
        }
    };
    p_changed_hands(
        tid,
        regs,
        EventKind::PTaken,
        regs.rcx,
        new_state,
        victim,
        &o,
    );
    0
}

/// Reports P `pp` changing hands at a function entry, with the caller (the
/// return address on top of the stack) and the thread that had it.
#[inline(always)]
fn p_changed_hands(
    tid: u32,
    regs: &pt_regs,
    kind: EventKind,
    pp: u64,
    new_state: u32,
    victim: Victim,
    o: &GoOffsets,
) {
    let event = HandoffEvent {
        header: header(kind, tid),
        caller: caller(regs),
        p_id_plus1: id_plus1_of(pp, o),
        new_state,
        victim_tid: victim.tid,
        victim_state: victim.state,
        victim_sysno: victim.sysno,
        _pad: 0,
        victim_start_ns: victim.start_ns,
    };
    output(&event);
}

/// Uprobe on `runtime.stopTheWorldWithSema` (a few times per GC cycle):
/// from here until the world restarts, every P left in a syscall is taken.
/// On ≤1.25 those are the Ps in `_Psyscall` now: list them, and flag the
/// calls that hold them (their exits then say whether they lost the P).
#[uprobe]
pub fn gt_stw_start(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let mut event = StwEvent {
        header: header(EventKind::StwStart, tid),
        syscall_ps: 0,
        read: 0,
        victims: 0,
    };
    if let Some(o) = offsets()
        && o.p_stays_wired == 0
    {
        let rip = unsafe { (*ctx.regs).rip };
        let bias = rip.wrapping_sub(o.stw_fn_link) & !0xfff;
        if o.allp_link != 0
            && let Ok(mask) = syscall_ps(o.allp_link.wrapping_add(bias), &o)
        {
            event.syscall_ps = mask;
            event.read = 1;
        }
        match flag_stw_victims(bias, &o) {
            Ok(n) => event.victims = n,
            Err(_) => {
                count(Counter::GoReadFailed);
                warn!(&ctx, "stop-the-world: cannot read the Ms");
            }
        }
    }
    output(&event);
    0
}

/// Bit mask of the Ps of `allp` (a `[]*p` at address `allp`, indexed by P
/// id) whose status is `_Psyscall`.
#[inline(always)]
fn syscall_ps(allp: u64, o: &GoOffsets) -> Result<u64, i32> {
    let ptr = user(allp)?;
    let len = user(allp + 8)?;
    let mut mask = 0u64;
    for i in 0..64u64 {
        if i >= len {
            break;
        }
        let p = user(ptr + 8 * i)?;
        if p != 0 && user32(p + u64::from(o.p_status))? == P_SYSCALL {
            mask |= 1 << i;
        }
    }
    Ok(mask)
}

/// ≤1.25: flags the syscall of every M whose P is still in `_Psyscall`
/// with the same tick (the stop takes it unless the call returns first).
#[inline(always)]
fn flag_stw_victims(bias: u64, o: &GoOffsets) -> Result<u32, i32> {
    if o.allm_link == 0 {
        return Ok(0);
    }
    let mut scan = MScan {
        m: 0,
        mode: SCAN_STW,
        ptick: 0,
        pp: 0,
        found_m: 0,
        tid: 0,
        flagged: 0,
        done: 0,
        failed: 0,
    };
    walk_ms(&mut scan, o.allm_link.wrapping_add(bias))?;
    if scan.done == 0 {
        count(Counter::VictimScanLimit);
    }
    Ok(scan.flagged)
}

/// Uprobe on `runtime.startTheWorldWithSema`: the end of a stop-the-world.
#[uprobe]
pub fn gt_stw_end(_ctx: ProbeContext) -> u32 {
    if let Some(tid) = target_tid() {
        output(&header(EventKind::StwEnd, tid));
    }
    0
}

/// Uprobe on `main.main`: the runtime's start-up is over (threads spawned
/// before this are the runtime's own), and its variables hold their
/// values: read them now, while the process surely lives.
#[uprobe]
pub fn gt_main_start(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let mut event = MainStartEvent {
        header: header(EventKind::MainStart, tid),
        vdso_sym: 0,
        gomaxprocs: 0,
        maxmcount: 0,
        read: 0,
        _pad: 0,
    };
    if let Some(o) = offsets()
        && o.main_link != 0
    {
        let rip = unsafe { (*ctx.regs).rip };
        let bias = rip.wrapping_sub(o.main_link) & !0xfff;
        if o.vdso_sym_link != 0
            && let Ok(v) = user(o.vdso_sym_link.wrapping_add(bias))
        {
            event.vdso_sym = v;
            event.read |= MAIN_READ_VDSO;
        }
        if o.gomaxprocs_link != 0
            && let Ok(v) = user32(o.gomaxprocs_link.wrapping_add(bias))
        {
            event.gomaxprocs = v;
            event.read |= MAIN_READ_GOMAXPROCS;
        }
        if o.maxmcount_link != 0
            && let Ok(v) = user32(o.maxmcount_link.wrapping_add(bias))
        {
            event.maxmcount = v;
            event.read |= MAIN_READ_MAXMCOUNT;
        }
    }
    output(&event);
    0
}

/// Uprobe on `runtime.LockOSThread` (a rare path): remember where this
/// thread was locked, with the goroutine, so that a locked goroutine's exit
/// (`mexit`) is reported at the locking call site.
#[uprobe]
pub fn gt_lock_os_thread(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let Some(site) = LOCK_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let site = unsafe { &mut *site };
    let regs = unsafe { &*ctx.regs };
    site.goid = match offsets() {
        Some(o) => user(regs.r14 + u64::from(o.g_goid)).unwrap_or_else(|_| {
            count(Counter::GoReadFailed);
            0
        }),
        None => 0,
    };
    site._pad = 0;
    site.nframes = entry_stack(&ctx, caller(regs), &mut site.frames);
    if LOCK_SITES.insert(tid, site, 0).is_err() {
        count(Counter::GoMapFull);
        warn!(&ctx, "LockOSThread: the lock-site map is full");
    }
    0
}

/// Uprobe on `runtime.mexit`: a goroutine exited while locked to this
/// thread (the runtime's only reason to end a thread): the thread ends,
/// or, when it is the main thread (m0), is wedged for good. Either way one
/// LockOSThread leak, reported with the call that locked it.
#[uprobe]
pub fn gt_mexit(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let regs = unsafe { &*ctx.regs };
    let m_id = offsets()
        .and_then(|o| {
            let m = probe_m(regs, tid, &o)?;
            user(m + u64::from(o.m_id)).ok()
        })
        .unwrap_or_else(|| {
            count(Counter::GoReadFailed);
            u64::MAX
        });
    let Some(mut entry) = EVENTS.reserve::<MexitEvent>(0) else {
        crate::maps::ringbuf_full(EventKind::Mexit as u32);
        return 0;
    };
    let event = entry.as_mut_ptr();
    unsafe {
        (*event).header = header(EventKind::Mexit, tid);
        (*event).m_id = m_id;
        (*event)._pad = 0;
        match LOCK_SITES.get(tid) {
            Some(site) => {
                (*event).site = *site;
                (*event).has_site = 1;
            }
            None => {
                (*event).site.goid = 0;
                (*event).site.nframes = 0;
                (*event).site._pad = 0;
                (*event).has_site = 0;
            }
        }
    }
    entry.submit(crate::maps::wakeup());
    let _ = LOCK_SITES.remove(tid);
    0
}
