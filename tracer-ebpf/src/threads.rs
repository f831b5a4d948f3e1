//! Thread creation and exit in the target (`task:task_newtask`,
//! `sched:sched_process_exit`) and program replacement
//! (`sched:sched_process_exec`). Rare events: each one goes to userspace.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_ns,
        bpf_probe_read_kernel_str_bytes,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use tracer_common::{
    CLONE_THREAD, EXEC_NAME_LEN, EventHeader, EventKind, ExecEvent, SYS_EXIT, SYS_EXIT_GROUP,
    THREAD_EXIT_GROUP, THREAD_EXIT_KILLED, THREAD_EXIT_SELF, ThreadEvent,
    WINDOW_CLOSED_PROCESS_ENDED, WINDOW_OPEN,
};

use crate::{
    fd::{KERNEL_OFFSETS, kernel},
    follow, in_target,
    maps::{EXECS, LOCK_SITES, NEW_M, TID_M, WINDOW_CLOSED, WINDOW_CLOSED_AT, output},
    syscalls::inflight_slot,
    target_tid,
};

/// Field offsets in the `task_newtask` record, read from tracefs by the loader.
#[unsafe(no_mangle)]
static NEWTASK_PID_OFFSET: aya_ebpf::Global<u32> = aya_ebpf::Global::new(8);
#[unsafe(no_mangle)]
static NEWTASK_FLAGS_OFFSET: aya_ebpf::Global<u32> = aya_ebpf::Global::new(32);
/// Offset of `filename`'s `__data_loc` word in `sched_process_exec`.
#[unsafe(no_mangle)]
static EXEC_FILENAME_OFFSET: aya_ebpf::Global<u32> = aya_ebpf::Global::new(8);

#[tracepoint]
pub fn gt_task_newtask(ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let result = if target_tid().is_some() {
        try_task_newtask(&ctx, (pid_tgid >> 32) as u32)
    } else if let Some((tgid, _)) = follow::followed(pid_tgid) {
        followed_newtask(&ctx, tgid)
    } else if follow::comm_selected() {
        untraced_newtask(&ctx)
    } else {
        return 0;
    };
    match result {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

fn followed_newtask(ctx: &TracePointContext, tgid: u32) -> Result<(), i64> {
    let flags: u64 = unsafe { ctx.read_at(NEWTASK_FLAGS_OFFSET.load() as usize)? };
    let new_tid: i32 = unsafe { ctx.read_at(NEWTASK_PID_OFFSET.load() as usize)? };
    follow::newtask(ctx, tgid, new_tid as u32, flags & CLONE_THREAD != 0);
    Ok(())
}

/// A process outside the set whose comm is a `--comm` name forked: the
/// child carries the name, so it is a target.
fn untraced_newtask(ctx: &TracePointContext) -> Result<(), i64> {
    let flags: u64 = unsafe { ctx.read_at(NEWTASK_FLAGS_OFFSET.load() as usize)? };
    if flags & CLONE_THREAD == 0 {
        let new_tid: i32 = unsafe { ctx.read_at(NEWTASK_PID_OFFSET.load() as usize)? };
        follow::join_by_comm(ctx, new_tid as u32);
    }
    Ok(())
}

fn try_task_newtask(ctx: &TracePointContext, tgid: u32) -> Result<(), i64> {
    // Runs in the context of the parent (the caller of clone).
    let flags: u64 = unsafe { ctx.read_at(NEWTASK_FLAGS_OFFSET.load() as usize)? };
    let new_tid: i32 = unsafe { ctx.read_at(NEWTASK_PID_OFFSET.load() as usize)? };
    if flags & CLONE_THREAD == 0 {
        // A child process, not a thread of the target: followed (`-f`)
        // or counted.
        follow::child_forked(ctx, tgid, new_tid as u32);
        return Ok(());
    }
    // The runtime's newm1 on this thread said which M the new thread runs.
    let parent = bpf_get_current_pid_tgid() as u32;
    if let Some(&m) = unsafe { NEW_M.get(parent) } {
        let _ = TID_M.insert(new_tid as u32, m, 0);
        let _ = NEW_M.remove(parent);
    }
    emit(EventKind::ThreadSpawn, new_tid as u32, 0);
    Ok(())
}

#[tracepoint]
pub fn gt_task_exit(_ctx: TracePointContext) -> u32 {
    // Runs in the context of the exiting thread.
    let Some(tid) = exiting_target_thread() else {
        if let Some((tgid, tid)) = follow::followed(bpf_get_current_pid_tgid()) {
            let how = exit_how(tid);
            follow::thread_exit(tgid, tid, how, process_ended());
        }
        return 0;
    };
    let how = exit_how(tid);
    // The tid may be reused by a thread of another M.
    let _ = TID_M.remove(tid);
    let _ = LOCK_SITES.remove(tid);
    emit(EventKind::ThreadExit, tid, how);
    // The last thread: the process has ended, and its PID may name another
    // process before userspace hears of it. Close the window here, so no
    // call of a process that reuses the PID is ever counted.
    if process_ended() == Some(true)
        && let (Some(at), Some(closed)) = (
            WINDOW_CLOSED_AT.get_ptr_mut(0),
            WINDOW_CLOSED.get_ptr_mut(0),
        )
    {
        // The time first: whoever sees the window closed reads it.
        unsafe {
            *at = bpf_ktime_get_ns();
            *closed = WINDOW_CLOSED_PROCESS_ENDED;
        }
    }
    0
}

/// How the exiting thread `tid` ends, from the last syscall it entered and
/// never left: exit(2) by itself, exit_group(2), or neither (killed with
/// its process: a fatal signal, another thread's exit_group, an exec). A
/// killed thread's interrupted call has already left the kernel. Frees
/// its in-flight slot.
#[inline(always)]
fn exit_how(tid: u32) -> u32 {
    let mut how = THREAD_EXIT_KILLED;
    if let Some(slot) = inflight_slot(tid) {
        let slot = unsafe { &mut *slot };
        if slot.tid == tid {
            how = match slot.sysno {
                SYS_EXIT => THREAD_EXIT_SELF,
                SYS_EXIT_GROUP => THREAD_EXIT_GROUP,
                _ => THREAD_EXIT_KILLED,
            };
            // Free the slot so no later thread sees a stale owner.
            slot.tid = 0;
        }
    }
    how
}

/// The exiting thread's id when its exit is to be reported: it belongs to
/// the target and the window is open, or was closed by the process's end
/// and the thread is one of that process's. Threads that exit together
/// each count themselves out of `signal->live` before their tracepoint,
/// so the one that closes the window may run before the others; those
/// were all created before the close, a PID-reusing newcomer's after.
#[inline(always)]
fn exiting_target_thread() -> Option<u32> {
    let tid = in_target()?;
    match WINDOW_CLOSED.get(0).copied() {
        None | Some(WINDOW_OPEN) => Some(tid),
        Some(WINDOW_CLOSED_PROCESS_ENDED) => {
            let closed_at = *WINDOW_CLOSED_AT.get(0)?;
            (task_start_time()? < closed_at).then_some(tid)
        }
        Some(_) => None,
    }
}

/// Whether the current (exiting) task was the last live thread of its
/// process: `task->signal->live` has reached 0. At `sched_process_exit` the
/// kernel has already counted this thread out. `None`: not known (no
/// offsets, or unreadable).
#[inline(always)]
fn process_ended() -> Option<bool> {
    let k = KERNEL_OFFSETS.load();
    if k.enabled == 0 {
        return None;
    }
    let task = unsafe { bpf_get_current_task() };
    let signal: u64 = kernel(task + u64::from(k.task_signal)).ok()?;
    let live: i32 = kernel(signal + u64::from(k.signal_live)).ok()?;
    Some(live == 0)
}

/// The current task's creation time (CLOCK_MONOTONIC ns, the clock of
/// `bpf_ktime_get_ns`). `None`: not known.
#[inline(always)]
fn task_start_time() -> Option<u64> {
    let k = KERNEL_OFFSETS.load();
    if k.enabled == 0 {
        return None;
    }
    let task = unsafe { bpf_get_current_task() };
    kernel(task + u64::from(k.task_start_time)).ok()
}

/// The target executed a new program (the launch itself in `run` mode),
/// or a followed process did.
#[tracepoint]
pub fn gt_exec(ctx: TracePointContext) -> u32 {
    let Some(tid) = target_tid() else {
        let pid_tgid = bpf_get_current_pid_tgid();
        if let Some((tgid, tid)) = follow::followed(pid_tgid) {
            follow::exec(&ctx, tgid, tid, EXEC_FILENAME_OFFSET.load() as usize);
        } else if follow::comm_selected() {
            // The comm is the new program's name by now.
            follow::join_by_comm(&ctx, (pid_tgid >> 32) as u32);
        }
        return 0;
    };
    if let Some(n) = EXECS.get_ptr_mut(0) {
        unsafe { *n += 1 };
    }
    let mut event = ExecEvent {
        header: EventHeader {
            kind: EventKind::Exec as u32,
            tid,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        filename: [0; EXEC_NAME_LEN],
    };
    // `__data_loc`: the low 16 bits are the string's offset in the record.
    if let Ok(loc) = unsafe { ctx.read_at::<u32>(EXEC_FILENAME_OFFSET.load() as usize) } {
        let name = unsafe { ctx.as_ptr().add((loc & 0xffff) as usize) };
        if unsafe { bpf_probe_read_kernel_str_bytes(name.cast(), &mut event.filename) }.is_err() {
            warn!(
                &ctx,
                "exec of tid {}: the program's path is unreadable", tid
            );
        }
    }
    output(&event);
    0
}

#[inline(always)]
fn emit(kind: EventKind, tid: u32, how: u32) {
    let event = ThreadEvent {
        header: EventHeader {
            kind: kind as u32,
            tid: bpf_get_current_pid_tgid() as u32,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        tid,
        how,
    };
    output(&event);
}
