//! Processes traced beside the target: its child processes, followed with
//! `-f` (the kernel adds each child to `FOLLOWED` as it forks, in the
//! parent's `task_newtask`, before the child first runs, so no call is lost
//! to a round trip through userspace), and the targets beside the first
//! (more `-p`, `--comm` names, `--cgroup`s), which join the same set. Their
//! calls are streamed one by one with the process's tgid (no histograms,
//! no Go state: their binaries' offsets are not known). Every check here
//! runs only after the target's own tgid did not match, and only when the
//! set is in use.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_probe_read_kernel_str_bytes,
    },
    programs::{RawTracePointContext, TracePointContext},
};
use aya_log_ebpf::warn;
use tracer_common::{
    CHILDREN_NOT_FOLLOWED_SLOT, Counter, EXEC_NAME_LEN, EventHeader, EventKind,
    FOLLOW_MAP_FULL_SLOT, FOLLOWED_GIVEN, FOLLOWED_GIVEN_COMM, FOLLOWED_NO, FOLLOWED_YES,
    JOIN_CGROUP, JOIN_COMM, JOIN_PID, MAX_SELECTORS, MAX_SYSCALLS, PROC_EXEC, PROC_EXIT, PROC_FORK,
    PROC_JOIN, PROC_SYSCALL, PROC_THREAD_EXIT, PROC_THREAD_SPAWN, ProcSyscallEvent, ProcTaskEvent,
};

use crate::{
    maps::{COUNTERS, FOLLOWED, SELECT_CGROUPS, SELECT_COMMS, count, output},
    syscalls::{inflight_slot, start_call},
    window_open,
};

/// 1 when following is on (`-f`), set by the loader.
#[unsafe(no_mangle)]
static FOLLOW_FORKS: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);
/// 1 when `FOLLOWED` is in use at all (`-f` or targets beside the first).
#[unsafe(no_mangle)]
static FOLLOW_ANY: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);
/// Entries of `SELECT_CGROUPS` and `SELECT_COMMS` in use.
#[unsafe(no_mangle)]
static SELECT_CGROUP_COUNT: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);
#[unsafe(no_mangle)]
static SELECT_COMM_COUNT: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);
/// The tracer itself: never a target, even inside a selected cgroup.
#[unsafe(no_mangle)]
static SELF_TGID: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);

/// `(tgid, tid)` of the current task when it belongs to a followed
/// process and the window is open. `pid_tgid` is the caller's
/// `bpf_get_current_pid_tgid()` (one helper call per syscall). A process
/// first seen here joins the set: a given target announces itself, and one
/// in a selected cgroup is added (the cgroup check costs every other
/// process's calls a helper call per `--cgroup`, only when one is given).
#[inline(always)]
pub fn followed(pid_tgid: u64) -> Option<(u32, u32)> {
    if FOLLOW_ANY.load() == 0 {
        return None;
    }
    let tgid = (pid_tgid >> 32) as u32;
    let slot = FOLLOWED.get_ptr_mut(tgid)?;
    // SAFETY: a u32 of the array; racing writers (two threads of a newly
    // seen process) write the same value, and a doubled announcement is
    // ignored by userspace.
    let joined_by = match unsafe { *slot } {
        FOLLOWED_YES => None,
        FOLLOWED_GIVEN => Some(JOIN_PID),
        FOLLOWED_GIVEN_COMM => Some(JOIN_COMM),
        FOLLOWED_NO if in_selected_cgroup(tgid) => Some(JOIN_CGROUP),
        _ => return None,
    };
    if !window_open() {
        return None;
    }
    if let Some(how) = joined_by {
        unsafe { *slot = FOLLOWED_YES };
        join(tgid, how);
    }
    Some((tgid, pid_tgid as u32))
}

/// As [`followed`] for a process already in the set, without joining a
/// new one: for `sys_exit`, whose stack has no room for an announcement
/// (a new process joins at its first entry; an exit without its entry is
/// not reported anyway).
#[inline(always)]
pub fn already_followed(pid_tgid: u64) -> Option<(u32, u32)> {
    if FOLLOW_ANY.load() == 0 {
        return None;
    }
    let tgid = (pid_tgid >> 32) as u32;
    match FOLLOWED.get(tgid) {
        Some(&FOLLOWED_YES) => window_open().then_some((tgid, pid_tgid as u32)),
        _ => None,
    }
}

/// Announces that `pid` is a target from now on (its comm with it).
#[inline(always)]
fn join(pid: u32, how: u32) {
    let mut event = task_event(PROC_JOIN, pid, bpf_get_current_pid_tgid() as u32, how);
    if let Ok(comm) = bpf_get_current_comm() {
        copy_name(&mut event, &comm);
    }
    output(&event);
}

/// Whether the current task is in a `--cgroup` (or below one), and not
/// the tracer.
#[inline(always)]
fn in_selected_cgroup(tgid: u32) -> bool {
    let n = SELECT_CGROUP_COUNT.load();
    if n == 0 || tgid == SELF_TGID.load() {
        return false;
    }
    let mut i = 0;
    while i < MAX_SELECTORS && i < n {
        if let Some(sel) = SELECT_CGROUPS.get(i) {
            // SAFETY: a helper without pointer arguments.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(sel.level as i32) };
            if id == sel.id {
                return true;
            }
        }
        i += 1;
    }
    false
}

/// Whether the current task's comm is a `--comm` name.
#[inline(always)]
pub fn comm_selected() -> bool {
    let n = SELECT_COMM_COUNT.load();
    if n == 0 {
        return false;
    }
    let Ok(comm) = bpf_get_current_comm() else {
        return false;
    };
    let have = words(&comm);
    let mut i = 0;
    while i < MAX_SELECTORS && i < n {
        if let Some(sel) = SELECT_COMMS.get(i)
            && words(sel) == have
        {
            return true;
        }
        i += 1;
    }
    false
}

/// A comm as two words: compared without a memcmp the verifier refuses.
#[inline(always)]
fn words(comm: &[u8; 16]) -> (u64, u64) {
    let mut lo = [0u8; 8];
    let mut hi = [0u8; 8];
    lo.copy_from_slice(&comm[..8]);
    hi.copy_from_slice(&comm[8..]);
    (u64::from_ne_bytes(lo), u64::from_ne_bytes(hi))
}

/// A process not traced so far executed a program whose name is a
/// `--comm` name, or forked a child that carries one: it is a target from
/// now on.
#[inline(always)]
pub fn join_by_comm(ctx: &TracePointContext, pid: u32) {
    let Some(slot) = FOLLOWED.get_ptr_mut(pid) else {
        count_slot(FOLLOW_MAP_FULL_SLOT);
        warn!(ctx, "pid {} not traced: past pid_max at load", pid);
        return;
    };
    if !window_open() {
        return;
    }
    // SAFETY: as in `followed`.
    unsafe { *slot = FOLLOWED_YES };
    join(pid, JOIN_COMM);
}

/// A child process of the target (or of a followed process) was created:
/// follow it when following is on (or it carries a `--comm` name), else
/// count it (`-f` would have).
#[inline(always)]
pub fn child_forked(ctx: &TracePointContext, parent_tgid: u32, child: u32) {
    if FOLLOW_FORKS.load() == 0 && !comm_selected() {
        count_slot(CHILDREN_NOT_FOLLOWED_SLOT);
        return;
    }
    let Some(slot) = FOLLOWED.get_ptr_mut(child) else {
        count_slot(FOLLOW_MAP_FULL_SLOT);
        warn!(
            ctx,
            "child {} of {} not followed: its PID is past pid_max at load", child, parent_tgid
        );
        return;
    };
    // SAFETY: a u32 of the array; the only other writer is the same
    // child's exit, which cannot run before its creation completes.
    unsafe { *slot = FOLLOWED_YES };
    let mut event = task_event(PROC_FORK, child, parent_tgid, 0);
    if let Ok(comm) = bpf_get_current_comm() {
        copy_name(&mut event, &comm);
    }
    output(&event);
}

#[inline(always)]
fn copy_name(event: &mut ProcTaskEvent, comm: &[u8; 16]) {
    let mut i = 0;
    while i < comm.len() && i < EXEC_NAME_LEN {
        event.name[i] = comm[i];
        i += 1;
    }
}

/// `task_newtask` in a followed process (runs in the parent).
#[inline(always)]
pub fn newtask(ctx: &TracePointContext, tgid: u32, new_tid: u32, thread: bool) {
    if thread {
        output(&task_event(PROC_THREAD_SPAWN, tgid, new_tid, 0));
    } else {
        child_forked(ctx, tgid, new_tid);
    }
}

/// A thread of a followed process exits; the last one ends the process,
/// which is then no longer followed (its PID may be reused).
#[inline(always)]
pub fn thread_exit(tgid: u32, tid: u32, how: u32, process_ended: Option<bool>) {
    // Without the kernel's offsets, the leader's exit stands for the end.
    let ended = process_ended.unwrap_or(tid == tgid);
    if ended {
        if let Some(slot) = FOLLOWED.get_ptr_mut(tgid) {
            // SAFETY: as in `child_forked`.
            unsafe { *slot = FOLLOWED_NO };
        }
        output(&task_event(PROC_EXIT, tgid, tid, how));
    } else {
        output(&task_event(PROC_THREAD_EXIT, tgid, tid, how));
    }
}

/// A followed process executed a new program.
#[inline(always)]
pub fn exec(ctx: &TracePointContext, tgid: u32, tid: u32, filename_offset: usize) {
    let mut event = task_event(PROC_EXEC, tgid, tid, 0);
    // `__data_loc`: the low 16 bits are the string's offset in the record.
    if let Ok(loc) = unsafe { ctx.read_at::<u32>(filename_offset) } {
        let name = unsafe { ctx.as_ptr().add((loc & 0xffff) as usize) };
        if unsafe { bpf_probe_read_kernel_str_bytes(name.cast(), &mut event.name) }.is_err() {
            warn!(ctx, "exec in followed pid {}: the path is unreadable", tgid);
        }
    }
    output(&event);
}

/// `sys_enter` of a followed process: the call's start in the thread's
/// in-flight slot (shared with the target's threads: tids are unique).
#[inline(always)]
pub fn sys_enter(ctx: &RawTracePointContext, tid: u32) {
    start_call(tid, ctx.arg(1));
}

/// `sys_exit` of a followed process: the call, streamed. An exit without
/// its entry is a child's return from fork (not a call it made) or a call
/// begun before it was followed: not reported.
#[inline(always)]
pub fn sys_exit(ctx: &RawTracePointContext, tgid: u32, tid: u32) {
    let Some(slot) = inflight_slot(tid) else {
        return;
    };
    let slot = unsafe { &mut *slot };
    if slot.tid != tid {
        return;
    }
    let call = *slot;
    slot.tid = 0;
    let sysno = u32::from(call.sysno);
    if sysno >= MAX_SYSCALLS {
        count(Counter::UnknownSyscall);
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let event = ProcSyscallEvent {
        header: EventHeader {
            kind: EventKind::Proc as u32,
            tid,
            ts_ns: now,
        },
        pid: tgid,
        what: PROC_SYSCALL,
        sysno,
        _pad: 0,
        ret: ctx.arg(1),
        duration_ns: now.saturating_sub(call.start_ns),
    };
    output(&event);
}

#[inline(always)]
fn task_event(what: u32, pid: u32, tid: u32, how: u32) -> ProcTaskEvent {
    ProcTaskEvent {
        header: EventHeader {
            kind: EventKind::Proc as u32,
            tid: bpf_get_current_pid_tgid() as u32,
            ts_ns: unsafe { bpf_ktime_get_ns() },
        },
        pid,
        what,
        tid,
        how,
        name: [0; EXEC_NAME_LEN],
    }
}

/// Adds one to a `COUNTERS` slot past the named counters.
#[inline(always)]
fn count_slot(slot: u32) {
    if let Some(n) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU value, as in `maps::count`.
        unsafe { *n += 1 };
    }
}
