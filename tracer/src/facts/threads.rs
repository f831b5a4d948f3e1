//! What every thread of the process is doing right now, without probes:
//! `/proc/PID/task/TID/syscall` gives a blocked thread's syscall, its
//! arguments and user SP/PC, the binary's pclntab unwinds its Go stack from
//! there (no frame pointers needed), `/proc/PID/fd` says what its
//! descriptor is, and the stack says who holds the thread: a goroutine in a
//! syscall at some call site, C code, an idle M, the netpoller, sysmon. In
//! the field one attaches after the explosion: this is what the threads are
//! held by now.

use serde::{Deserialize, Serialize};
use tracer_common::class;

use crate::{
    gobin::symbolize::{CallSite, Frame, Symbolizer, call_site_of},
    procinfo::{
        fds::{self, FdTarget},
        tasks::{self, TaskSyscall},
    },
    syscall_names,
};

/// Frames unwound per thread: enough to get past the runtime's plumbing.
const UNWIND_FRAMES: usize = 24;

/// What holds a thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Holder {
    /// A goroutine blocked in a syscall (it holds this thread while the
    /// kernel works).
    Syscall,
    /// C code (a cgo call, or a thread C started).
    Cgo,
    /// A thread locked to a goroutine (LockOSThread), waiting for it.
    Locked,
    /// An idle M, parked until the scheduler needs it (costs memory only).
    Idle,
    /// An M waiting in the network poller for ready connections.
    Netpoller,
    /// The runtime's monitor thread.
    Sysmon,
    /// On a CPU, or runnable.
    Running,
    /// Anything else (a page fault, a runtime lock, an unreadable stack).
    Other,
}

impl Holder {
    pub fn label(self) -> &'static str {
        match self {
            Self::Syscall => "in a syscall",
            Self::Cgo => "in C (cgo)",
            Self::Locked => "locked (LockOSThread), waiting",
            Self::Idle => "idle M (parked)",
            Self::Netpoller => "netpoller",
            Self::Sysmon => "sysmon",
            Self::Running => "running",
            Self::Other => "other",
        }
    }
}

/// Threads held the same way, from the same place.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HolderRow {
    pub holder: Holder,
    pub syscall: Option<String>,
    pub call_site: Option<CallSite>,
    /// What the blocked call's descriptor is (calls that wait on one).
    pub fd: Option<FdTarget>,
    /// For threads in C: the Go stack that made the cgo call (innermost
    /// first; the cgo stub names the C function).
    pub go_stack: Vec<Frame>,
    pub threads: u64,
}

/// One look at all the threads.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ThreadSample {
    /// Seconds since tracing began.
    pub elapsed_seconds: f64,
    pub threads: u64,
    /// Most threads first.
    pub holders: Vec<HolderRow>,
}

impl ThreadSample {
    /// Threads with this holder.
    pub fn count(&self, holder: Holder) -> u64 {
        self.holders
            .iter()
            .filter(|r| r.holder == holder)
            .map(|r| r.threads)
            .sum()
    }
}

/// Reads every thread of `pid` and groups them by holder and call site.
pub fn sample(pid: u32, sym: Option<&Symbolizer>, elapsed_seconds: f64) -> ThreadSample {
    let tids = tasks::thread_ids(pid).unwrap_or_default();
    let mut rows: Vec<HolderRow> = Vec::new();
    // Threads in C are named through their M's goroutine: found once per
    // sample, and only when some thread is in C.
    let mut cgo: Option<CgoThreads> = None;
    for &tid in &tids {
        let (holder, syscall, mut call_site, fd) = match tasks::task_syscall(pid, tid) {
            Ok(TaskSyscall::Running) => (Holder::Running, None, None, None),
            Ok(TaskSyscall::InSyscall {
                sysno,
                args,
                sp,
                pc,
            }) => {
                let (holder, syscall, call_site) = classify_blocked(pid, sym, sysno, sp, pc);
                (holder, syscall, call_site, fd_of(pid, sysno, &args))
            }
            Ok(TaskSyscall::NotInSyscall { .. }) | Err(_) => (Holder::Other, None, None, None),
        };
        let mut go_stack = Vec::new();
        if holder == Holder::Cgo
            && let Some(sym) = sym
        {
            let threads = cgo.get_or_insert_with(|| CgoThreads::read(pid, sym));
            go_stack = threads.go_stack(pid, sym, tid);
            call_site = call_site_of(&go_stack).ok();
        }
        match rows.iter_mut().find(|r| {
            r.holder == holder && r.syscall == syscall && r.call_site == call_site && r.fd == fd
        }) {
            Some(row) => row.threads += 1,
            None => rows.push(HolderRow {
                holder,
                syscall,
                call_site,
                fd,
                go_stack,
                threads: 1,
            }),
        }
    }
    rows.sort_by(|a, b| b.threads.cmp(&a.threads).then(a.holder.cmp(&b.holder)));
    ThreadSample {
        elapsed_seconds,
        threads: tids.len() as u64,
        holders: rows,
    }
}

/// The Go side of a cgo binary's threads: tid → its M (from the runtime's
/// list of Ms, `runtime.allm`), whose current goroutine made the cgo call
/// and saved its Go stack position when it entered C.
struct CgoThreads {
    m_of: std::collections::HashMap<u32, u64>,
    layout: Option<&'static crate::goruntime::RuntimeLayout>,
}

impl CgoThreads {
    /// Ms visited at most (the runtime's default thread cap).
    const MAX_MS: usize = 10_000;

    fn read(pid: u32, sym: &Symbolizer) -> Self {
        let layout = crate::goruntime::layout(&sym.build.version);
        let mut m_of = std::collections::HashMap::new();
        let read = |addr: u64| crate::procinfo::mem::read_u64(pid, addr).ok();
        if let (Some(l), Some(allm)) = (layout, sym.runtime_address("runtime.allm")) {
            let mut m = read(allm).unwrap_or(0);
            for _ in 0..Self::MAX_MS {
                if m == 0 {
                    break;
                }
                if let Some(tid) = read(m + u64::from(l.m_procid)) {
                    m_of.insert(tid as u32, m);
                }
                m = read(m + u64::from(l.m_alllink)).unwrap_or(0);
            }
        }
        Self { m_of, layout }
    }

    /// The Go stack of the goroutine in a cgo call on `tid` (empty when
    /// unknown: a thread C created, a stripped binary without
    /// `runtime.allm`).
    fn go_stack(&self, pid: u32, sym: &Symbolizer, tid: u32) -> Vec<Frame> {
        let (Some(l), Some(&m)) = (self.layout, self.m_of.get(&tid)) else {
            return Vec::new();
        };
        let read = |addr: u64| crate::procinfo::mem::read_u64(pid, addr).ok();
        let Some(g) = read(m + u64::from(l.m_curg)).filter(|&g| g != 0) else {
            return Vec::new();
        };
        let (Some(pc), Some(sp)) = (
            read(g + u64::from(l.g_sched_pc)),
            read(g + u64::from(l.g_sched_sp)),
        ) else {
            return Vec::new();
        };
        let mut frames = sym.unwind_live(pid, pc, sp);
        frames.truncate(UNWIND_FRAMES);
        sym.syscall_stack(&frames)
    }
}

/// What the descriptor of a blocked call is (read while the thread waits
/// on it, so it is open).
fn fd_of(pid: u32, sysno: u32, args: &[u64; 6]) -> Option<FdTarget> {
    let c = syscall_names::class(sysno);
    let fd = if c & class::FD_ARG0 != 0 {
        args[0]
    } else if c & class::FD_ARG1 != 0 {
        args[1]
    } else {
        return None;
    };
    fds::fd_target(pid, u32::try_from(fd).ok()?).ok()
}

fn classify_blocked(
    pid: u32,
    sym: Option<&Symbolizer>,
    sysno: u32,
    sp: u64,
    pc: u64,
) -> (Holder, Option<String>, Option<CallSite>) {
    let syscall = Some(syscall_names::name(sysno));
    let Some(sym) = sym else {
        return (Holder::Syscall, syscall, None);
    };
    if sym.frame(pc, false).is_none() {
        // Not Go code: C (cgo, or a C-created thread), or libc's syscall.
        let holder = if sym.cgo { Holder::Cgo } else { Holder::Other };
        return (holder, syscall, None);
    }
    let mut frames = sym.unwind_live(pid, pc, sp);
    frames.truncate(UNWIND_FRAMES);
    let stack = sym.syscall_stack(&frames);
    let holder = holder_of(&stack);
    let call_site = if matches!(holder, Holder::Syscall) {
        call_site_of(&stack).ok()
    } else {
        None
    };
    (holder, syscall, call_site)
}

/// Who holds a thread blocked in a syscall, from its symbolized stack.
pub fn holder_of(stack: &[Frame]) -> Holder {
    let has = |name: &str| stack.iter().any(|f| f.function == name);
    if has("runtime.netpoll") {
        Holder::Netpoller
    } else if has("runtime.sysmon") {
        Holder::Sysmon
    } else if has("runtime.stoplockedm") {
        Holder::Locked
    } else if has("runtime.stopm")
        || has("runtime.mPark")
        || has("runtime.templateThread")
        || has("runtime.notesleep")
    {
        Holder::Idle
    } else if stack
        .iter()
        .any(|f| !f.function.starts_with("runtime.") && !f.function.starts_with("runtime/"))
    {
        // A goroutine's own call (through syscall/os/net plumbing).
        Holder::Syscall
    } else {
        Holder::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(functions: &[&str]) -> Vec<Frame> {
        functions
            .iter()
            .map(|f| Frame {
                function: (*f).to_owned(),
                file: String::new(),
                line: 0,
            })
            .collect()
    }

    #[test]
    fn holders_from_stacks() {
        assert_eq!(
            holder_of(&stack(&[
                "internal/runtime/syscall.Syscall6",
                "syscall.Syscall",
                "syscall.read",
                "os.(*File).Read",
                "main.reader",
            ])),
            Holder::Syscall
        );
        assert_eq!(
            holder_of(&stack(&[
                "runtime.futex",
                "runtime.futexsleep",
                "runtime.notesleep",
                "runtime.mPark",
                "runtime.stopm",
                "runtime.findRunnable",
            ])),
            Holder::Idle
        );
        assert_eq!(
            holder_of(&stack(&[
                "runtime.epollwait",
                "runtime.netpoll",
                "runtime.findRunnable"
            ])),
            Holder::Netpoller
        );
        assert_eq!(
            holder_of(&stack(&[
                "runtime.usleep",
                "runtime.sysmon",
                "runtime.mstart1"
            ])),
            Holder::Sysmon
        );
        assert_eq!(
            holder_of(&stack(&[
                "runtime.futex",
                "runtime.stoplockedm",
                "runtime.schedule"
            ])),
            Holder::Locked
        );
    }
}
