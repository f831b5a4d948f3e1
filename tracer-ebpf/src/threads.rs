//! Thread creation and exit in the target (`task:task_newtask`,
//! `sched:sched_process_exit`). Rare events: each one goes to userspace.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::tracepoint,
    programs::TracePointContext,
};
use tracer_common::{CLONE_THREAD, EventHeader, EventKind, ThreadEvent};

use crate::{
    maps::{GROUP_EXIT, INFLIGHT, NEW_M, TID_M, output},
    syscalls::inflight_mask,
    target_tid,
};

/// Field offsets in the `task_newtask` record, read from tracefs by the loader.
#[unsafe(no_mangle)]
static NEWTASK_PID_OFFSET: aya_ebpf::Global<u32> = aya_ebpf::Global::new(8);
#[unsafe(no_mangle)]
static NEWTASK_FLAGS_OFFSET: aya_ebpf::Global<u32> = aya_ebpf::Global::new(32);

#[tracepoint]
pub fn gt_task_newtask(ctx: TracePointContext) -> u32 {
    if target_tid().is_none() {
        return 0;
    }
    match try_task_newtask(&ctx) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn try_task_newtask(ctx: &TracePointContext) -> Result<(), i32> {
    // Runs in the context of the parent (the caller of clone).
    let flags: u64 = unsafe { ctx.read_at(NEWTASK_FLAGS_OFFSET.load() as usize)? };
    if flags & CLONE_THREAD == 0 {
        return Ok(()); // a child process, not a thread of the target
    }
    let new_tid: i32 = unsafe { ctx.read_at(NEWTASK_PID_OFFSET.load() as usize)? };
    // The runtime's newm1 on this thread said which M the new thread runs.
    let parent = aya_ebpf::helpers::bpf_get_current_pid_tgid() as u32;
    if let Some(&m) = unsafe { NEW_M.get(parent) } {
        let _ = TID_M.insert(new_tid as u32, m, 0);
        let _ = NEW_M.remove(parent);
    }
    emit(EventKind::ThreadSpawn, new_tid as u32);
    Ok(())
}

#[tracepoint]
pub fn gt_task_exit(_ctx: TracePointContext) -> u32 {
    // Runs in the context of the exiting thread.
    let Some(tid) = target_tid() else {
        return 0;
    };
    // A thread may die inside a syscall (exit, or killed while blocked):
    // free its in-flight slot so no later thread sees a stale owner.
    if let Some(slot) = INFLIGHT.get_ptr_mut(tid & inflight_mask()) {
        let slot = unsafe { &mut *slot };
        if slot.tid == tid {
            slot.tid = 0;
        }
    }
    // The tid may be reused by a thread of another M.
    let _ = TID_M.remove(tid);
    emit(EventKind::ThreadExit, tid);
    0
}

#[inline(always)]
fn emit(kind: EventKind, tid: u32) {
    let during_group_exit = GROUP_EXIT.get(0).is_some_and(|&at| at != 0);
    let event = ThreadEvent {
        header: EventHeader {
            kind: kind as u32,
            tid: bpf_get_current_pid_tgid() as u32,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        tid,
        during_group_exit: u32::from(during_group_exit),
    };
    output(&event);
}
