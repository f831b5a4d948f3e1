//! One pair of syscall programs for many targets (`tracer serve`): each
//! target's object is loaded as for one process, but its `sys_enter` and
//! `sys_exit` programs are not attached; they sit in a slot of the
//! dispatcher's program arrays, and the dispatcher, the only programs
//! attached to the syscall tracepoints, tail-calls the slot of the
//! current task's tgid. So a syscall of a process that is not a target
//! pays one array lookup, whatever the number of targets, where one pair
//! of programs per target cost every syscall on the host one program run
//! per target.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid,
    macros::{map, raw_tracepoint},
    maps::{Array, ProgramArray},
    programs::RawTracePointContext,
};

/// tgid → its target's slot + 1 (0: not a target). Indexed by PID (an
/// address computation, not a hash): the loader sizes it to `pid_max` in
/// the dispatcher's object, to 1 in the targets' (unused there).
#[map]
static DISPATCH_SLOT: Array<u32> = Array::with_max_entries(1, 0);

/// Slot → the target's `gt_sys_enter` / `gt_sys_exit`.
#[map]
static DISPATCH_ENTER: ProgramArray = ProgramArray::with_max_entries(1, 0);
#[map]
static DISPATCH_EXIT: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The slot of the current task's process, when it is a target.
#[inline(always)]
fn slot() -> Option<u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    match DISPATCH_SLOT.get(tgid) {
        Some(&s) if s != 0 => Some(s - 1),
        _ => None,
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn gt_dispatch_enter(ctx: RawTracePointContext) -> i32 {
    if let Some(slot) = slot() {
        // SAFETY: the slot holds a raw tracepoint program of this
        // tracepoint; on failure (an empty slot) control comes back here.
        unsafe { DISPATCH_ENTER.tail_call(&ctx, slot) };
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn gt_dispatch_exit(ctx: RawTracePointContext) -> i32 {
    if let Some(slot) = slot() {
        // SAFETY: as in `gt_dispatch_enter`.
        unsafe { DISPATCH_EXIT.tail_call(&ctx, slot) };
    }
    0
}
