//! Reading the Go runtime's state from inside the syscall exit program, for
//! the few calls that are long enough to matter (no uprobe on any
//! per-syscall path): the goroutine (g from R14 in the saved user
//! registers, checked against `g.m.procid == tid`), its id, and whether its
//! P was taken while it was in the kernel. Offsets come from userspace per
//! Go version (`GO_OFFSETS`); this file has no version branches.

use aya_ebpf::{
    EbpfContext as _,
    bindings::BPF_F_USER_STACK,
    helpers::{bpf_get_stack, bpf_probe_read_kernel, bpf_probe_read_user},
    macros::uprobe,
    programs::{ProbeContext, RawTracePointContext},
};
use tracer_common::{
    EventHeader, EventKind, GoOffsets, HandoffEvent, LOCK_FRAMES, MAX_FRAMES, NewMEvent, PState,
    SLOW_CALL_CGO, SlowCallEvent, StwEvent, ThreadEvent,
};

use crate::{
    maps::{EVENTS, LOCK_SCRATCH, LOCK_SITES, NEW_M, TID_M, count, output},
    target_tid,
};

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

/// Uprobe on `runtime.newm1` (runs once per thread the runtime creates):
/// the stack tells why the thread is wanted (sysmon's retake of a P from a
/// syscall, a blocking syscall's handoff, a locked goroutine, new runnable
/// work, the template thread...). The spawn that follows on this thread is
/// that M.
#[uprobe]
pub fn gt_newm1(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    // newm1(mp *m): the M the next thread spawned here will run, so its
    // tid → m is known before its first call (which may be from C code).
    let mp = unsafe { (*ctx.regs).rax };
    let _ = NEW_M.insert(tid, mp, 0);
    let Some(mut entry) = EVENTS.reserve::<NewMEvent>(0) else {
        count(tracer_common::Counter::RingBufFull);
        return 0;
    };
    let event = entry.as_mut_ptr();
    let regs = unsafe { &*ctx.regs };
    let ret: u64 = unsafe { bpf_probe_read_user(regs.rsp as *const u64) }.unwrap_or(0);
    unsafe {
        (*event).header = EventHeader {
            kind: EventKind::NewM as u32,
            tid,
            ts_ns: aya_ebpf::helpers::bpf_ktime_get_ns(),
        };
        (*event)._pad = 0;
        (*event).nframes = entry_stack(&ctx, ret, &mut (*event).frames);
    }
    entry.submit(0);
    0
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
        header: EventHeader {
            kind: EventKind::SlowExit as u32,
            tid,
            ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        },
        tid,
        during_group_exit: 0,
    };
    output(&event);
    0
}

/// Uprobe on `runtime.handoffp` (once per P handoff, a rare path): who
/// handed the P off, from the caller's return address.
#[uprobe]
pub fn gt_handoffp(ctx: ProbeContext) -> u32 {
    // handoffp(pp *p): pp in RAX (register ABI).
    let regs = unsafe { &*ctx.regs };
    p_changed_hands(regs, EventKind::Handoff, regs.rax, 0);
    0
}

/// Uprobe on `runtime.syscallingThread.releaseP` (Go 1.26+, once per P
/// taken from a thread in a syscall): the receiver is passed in registers
/// (RAX gp, RBX mp, RCX pp, RDI status) and RSI is the P's new state (3:
/// `_Pgcstop`, a stop-the-world); the caller says who took it (sysmon's
/// retake, a goroutine stealing it back on exit, the GC's forEachP).
#[uprobe]
pub fn gt_release_p(ctx: ProbeContext) -> u32 {
    let regs = unsafe { &*ctx.regs };
    p_changed_hands(regs, EventKind::PTaken, regs.rcx, regs.rsi as u32);
    0
}

/// Reports P `pp` changing hands at a function entry, with the caller (the
/// return address on top of the stack).
#[inline(always)]
fn p_changed_hands(regs: &aya_ebpf::bindings::pt_regs, kind: EventKind, pp: u64, new_state: u32) {
    let Some(tid) = target_tid() else {
        return;
    };
    let caller: u64 = unsafe { bpf_probe_read_user(regs.rsp as *const u64) }.unwrap_or(0);
    let event = HandoffEvent {
        header: EventHeader {
            kind: kind as u32,
            tid,
            ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        },
        caller,
        p_id_plus1: id_plus1_of(pp),
        new_state,
    };
    output(&event);
}

/// The id + 1 of the P at `p` (p.id is its first field); 0 for no P or an
/// unreadable one.
#[inline(always)]
fn id_plus1_of(p: u64) -> u32 {
    if p == 0 {
        return 0;
    }
    user32(p).map_or(0, |id| id.wrapping_add(1))
}

/// Uprobe on `runtime.stopTheWorldWithSema` (a few times per GC cycle):
/// from here until the world restarts, every P left in a syscall is taken.
/// On ≤1.25 those are the Ps in `_Psyscall` now: list them.
#[uprobe]
pub fn gt_stw_start(ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let o = GO_OFFSETS.load();
    let (syscall_ps, read) = if o.enabled != 0 && o.allp_link != 0 && o.p_stays_wired == 0 {
        // The probed address minus its link address is the load bias (a
        // page multiple; the trap may leave the IP a byte further).
        let rip = unsafe { (*ctx.regs).rip };
        let bias = rip.wrapping_sub(o.stw_fn_link) & !0xfff;
        syscall_ps(o.allp_link.wrapping_add(bias), o.p_status)
    } else {
        (0, 0)
    };
    let event = StwEvent {
        header: EventHeader {
            kind: EventKind::StwStart as u32,
            tid,
            ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        },
        syscall_ps,
        read,
        _pad: 0,
    };
    output(&event);
    0
}

/// Bit mask of the Ps of `allp` (a `[]*p` at address `allp`, indexed by P
/// id) whose status is `_Psyscall`, and 1; `(0, 0)` when unreadable.
#[inline(always)]
fn syscall_ps(allp: u64, p_status: u32) -> (u64, u32) {
    let (Ok(ptr), Ok(len)) = (user(allp), user(allp + 8)) else {
        return (0, 0);
    };
    let mut mask = 0u64;
    for i in 0..64u64 {
        if i >= len {
            break;
        }
        let Ok(p) = user(ptr + 8 * i) else {
            return (0, 0);
        };
        if p != 0 && user32(p + u64::from(p_status)) == Ok(P_SYSCALL) {
            mask |= 1 << i;
        }
    }
    (mask, 1)
}

/// Uprobe on `runtime.startTheWorldWithSema`: the end of a stop-the-world.
#[uprobe]
pub fn gt_stw_end(_ctx: ProbeContext) -> u32 {
    let Some(tid) = target_tid() else {
        return 0;
    };
    let header = EventHeader {
        kind: EventKind::StwEnd as u32,
        tid,
        ts_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
    };
    output(&header);
    0
}

/// Uprobe on `runtime.LockOSThread` (a rare path): remember where this
/// thread was locked, with the goroutine, so that its exit can be reported
/// as a LockOSThread leak at the locking call site.
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
    let ret: u64 = unsafe { bpf_probe_read_user(regs.rsp as *const u64) }.unwrap_or(0);
    let offsets = GO_OFFSETS.load();
    site.goid = if offsets.enabled != 0 {
        unsafe { bpf_probe_read_user((regs.r14 + u64::from(offsets.g_goid)) as *const u64) }
            .unwrap_or(0)
    } else {
        0
    };
    site._pad = 0;
    site.nframes = entry_stack(&ctx, ret, &mut site.frames);
    let _ = LOCK_SITES.insert(tid, site, 0);
    0
}

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
    _pad: 0,
    allp_link: 0,
    stw_fn_link: 0,
});

/// `_Gsyscall` and `_Psyscall` in every supported release.
const G_SYSCALL: u32 = 3;
const P_SYSCALL: u32 = 2;
/// Offset of `r14` in the x86_64 `struct pt_regs` (r15, r14, ...).
const PT_REGS_R14: usize = 8;

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
    let o = GO_OFFSETS.load();
    if o.enabled == 0 {
        return UNKNOWN;
    }
    read_state(ctx, tid, &o).unwrap_or(UNKNOWN)
}

#[inline(always)]
fn user(addr: u64) -> Result<u64, i32> {
    unsafe { bpf_probe_read_user(addr as *const u64) }
}

#[inline(always)]
fn user32(addr: u64) -> Result<u32, i32> {
    unsafe { bpf_probe_read_user(addr as *const u32) }
}

/// The M of this thread: from R14 when it holds a valid g (Go code), else
/// the M this thread was last seen running (C code keeps anything in R14).
#[inline(always)]
fn current_m(r14: u64, tid: u32, o: &GoOffsets) -> Result<u64, i32> {
    if r14 != 0
        && let Ok(m) = user(r14 + u64::from(o.g_m))
        && m != 0
        && user(m + u64::from(o.m_procid)).is_ok_and(|id| id as u32 == tid)
    {
        let _ = TID_M.insert(tid, m, 0);
        return Ok(m);
    }
    unsafe { TID_M.get(tid) }.copied().ok_or(0)
}

#[inline(always)]
fn read_state(ctx: &RawTracePointContext, tid: u32, o: &GoOffsets) -> Result<GoState, i32> {
    // TP_PROTO(struct pt_regs *regs, long ret): the user registers at entry.
    let regs: *const u8 = ctx.arg(0);
    let r14: u64 = unsafe { bpf_probe_read_kernel(regs.add(PT_REGS_R14).cast())? };
    let m = current_m(r14, tid, o)?;
    let in_c = unsafe { bpf_probe_read_user((m + u64::from(o.m_incgo)) as *const u8)? } != 0;
    let g = if in_c {
        // A cgo call: the goroutine that made it is the M's current one.
        user(m + u64::from(o.m_curg))?
    } else {
        // m.g0 is the first field of m: on the system stack no goroutine
        // is making the call, the runtime is (sysmon, idle Ms, scheduler).
        if user(m)? == r14 {
            // An M on its system stack may hold a P (spinning, scheduling).
            let p = user(m + u64::from(o.m_p))?;
            let p_id_plus1 = id_plus1_of(p);
            return Ok(GoState {
                goid: 0,
                p_state: PState::Runtime,
                cgo_g: 0,
                p_id_plus1,
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
        let p_id_plus1 = id_plus1_of(p);
        return Ok(GoState {
            goid,
            p_state: PState::Raw,
            cgo_g,
            p_id_plus1,
        });
    }
    let p = user(m + u64::from(o.m_p))?;
    let mut p_id_plus1 = id_plus1_of(p);
    let p_state = if o.p_stays_wired != 0 {
        // 1.26+: the P stays wired during the syscall unless retaken.
        if p == 0 { PState::Lost } else { PState::Kept }
    } else {
        // ≤1.25: entersyscall parks the P in m.oldp with status _Psyscall;
        // sysmon's retake (or entersyscallblock) changes that status. The
        // status alone can mislead: the P may have been taken, used, and
        // put in a syscall again by another goroutine; the syscall ticks
        // (what exitsyscallfast_reacquired compares) tell.
        let oldp = user(m + u64::from(o.m_oldp))?;
        if p == 0 && oldp != 0 {
            p_id_plus1 = id_plus1_of(oldp);
        }
        if p == 0
            && oldp != 0
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

/// Sends a slow or P-losing call to userspace with its user stack.
#[inline(always)]
pub fn report(
    ctx: &RawTracePointContext,
    tid: u32,
    now: u64,
    sysno: u32,
    ret: i64,
    duration_ns: u64,
    state: GoState,
) {
    let Some(mut entry) = EVENTS.reserve::<SlowCallEvent>(0) else {
        count(tracer_common::Counter::RingBufFull);
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
        // Bits 8..24: the P's id + 1.
        let p_bits = (state.p_id_plus1 & 0xffff) << 8;
        if state.cgo_g != 0 {
            // C frames have no frame pointers: report the Go stack that
            // made the cgo call instead.
            (*event).flags = SLOW_CALL_CGO | p_bits;
            (*event).nframes = go_frames(state.cgo_g, &mut (*event).frames);
        } else {
            (*event).flags = p_bits;
            let frames = (&raw mut (*event).frames).cast();
            let size = (MAX_FRAMES * 8) as u32;
            let n = bpf_get_stack(ctx.as_ptr(), frames, size, u64::from(BPF_F_USER_STACK));
            (*event).nframes = if n > 0 { (n / 8) as u32 } else { 0 };
        }
    }
    entry.submit(0);
}
