//! One pair of syscall programs for many targets (`tracer serve`): each
//! target's object is loaded as for one process, but its `sys_enter` and
//! `sys_exit` programs are not attached; they sit in a slot of the
//! dispatcher's program arrays, and the dispatcher, the only programs
//! attached to the syscall tracepoints, tail-calls the slot of the
//! current task's tgid. So a syscall of a process that is not a target
//! pays one array lookup, whatever the number of targets, where one pair
//! of programs per target cost every syscall on the host one program run
//! per target. The task tracepoints (thread creation and exit, exec) are
//! dispatched the same way: their programs run on every thread created or
//! ended on the host, and each attach or detach of a tracepoint costs the
//! kernel a grace period (serve stopped 20 targets in 23 s).

use aya_ebpf::{
    EbpfContext,
    helpers::bpf_get_current_pid_tgid,
    macros::{map, raw_tracepoint, tracepoint},
    maps::{Array, ProgramArray},
    programs::{RawTracePointContext, TracePointContext},
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
/// Slot → the target's `gt_task_newtask`, `gt_task_exit`, `gt_exec`.
#[map]
static DISPATCH_NEWTASK: ProgramArray = ProgramArray::with_max_entries(1, 0);
#[map]
static DISPATCH_TASK_EXIT: ProgramArray = ProgramArray::with_max_entries(1, 0);
#[map]
static DISPATCH_EXEC: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// The slot of the current task's process, when it is a target.
#[inline(always)]
fn slot() -> Option<u32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    match DISPATCH_SLOT.get(tgid) {
        Some(&s) if s != 0 => Some(s - 1),
        _ => None,
    }
}

/// Tail-calls the current process's program in `programs`, if it is a
/// target; returns when it is not (or its slot is empty).
#[inline(always)]
fn dispatch<C: EbpfContext>(ctx: &C, programs: &ProgramArray) {
    if let Some(slot) = slot() {
        // SAFETY: the slot holds a program of this tracepoint's type; on
        // failure (an empty slot) control comes back here.
        unsafe { programs.tail_call(ctx, slot) };
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn gt_dispatch_enter(ctx: RawTracePointContext) -> i32 {
    dispatch(&ctx, &DISPATCH_ENTER);
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn gt_dispatch_exit(ctx: RawTracePointContext) -> i32 {
    dispatch(&ctx, &DISPATCH_EXIT);
    0
}

#[tracepoint]
pub fn gt_dispatch_newtask(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, &DISPATCH_NEWTASK);
    0
}

#[tracepoint]
pub fn gt_dispatch_task_exit(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, &DISPATCH_TASK_EXIT);
    0
}

#[tracepoint]
pub fn gt_dispatch_exec(ctx: TracePointContext) -> u32 {
    dispatch(&ctx, &DISPATCH_EXEC);
    0
}
