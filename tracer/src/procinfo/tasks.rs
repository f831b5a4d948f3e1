//! Threads of a process: their ids, how many there are, which syscall each
//! one is in (`/proc/PID/task/TID/syscall`), and its scheduler state.

use std::{fs, path::PathBuf};

use super::{Owner, Result, malformed, map_io, pid_path, read_pid_file, read_text, status_field};

/// What `/proc/PID/task/TID/syscall` says a thread is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSyscall {
    /// On a CPU right now (the kernel cannot sample a running task).
    Running,
    /// Off the CPU but not in a syscall (preempted or stopped in user
    /// space, or in a page fault): only its user stack pointer and program
    /// counter.
    NotInSyscall { sp: u64, pc: u64 },
    /// Blocked in syscall `sysno` (the native table of the task: an x86_64
    /// number, or an i386 one for a 32-bit task) with its six arguments.
    InSyscall {
        sysno: u32,
        args: [u64; 6],
        sp: u64,
        pc: u64,
    },
}

/// A thread's scheduler state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskState {
    /// The thread's name (`comm`, at most 15 bytes; may hold spaces and
    /// parentheses).
    pub comm: String,
    /// The state letter of `/proc/PID/task/TID/stat`: `R` running, `S`
    /// sleeping, `D` uninterruptible, `T` stopped, `t` traced, `Z` zombie,
    /// `X` dead, `I` idle kernel thread.
    pub state: char,
    /// The kernel function the thread waits in (`/proc/PID/task/TID/wchan`),
    /// or `None` when it is not waiting or the kernel hides it from this
    /// reader (it shows it only to readers allowed to ptrace the process).
    pub wchan: Option<String>,
}

/// The thread ids of `pid`, ascending (`/proc/PID/task`). Threads come and
/// go while this runs; the list is one moment's view.
pub fn thread_ids(pid: u32) -> Result<Vec<u32>> {
    let dir = pid_path(pid, "task");
    let entries = fs::read_dir(&dir).map_err(|e| map_io(&dir, Owner::Process(pid), e))?;
    let mut tids = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| map_io(&dir, Owner::Process(pid), e))?;
        if let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) {
            tids.push(tid);
        }
    }
    tids.sort_unstable();
    Ok(tids)
}

/// The number of threads of `pid` (`Threads:` in `/proc/PID/status`).
pub fn thread_count(pid: u32) -> Result<u32> {
    let status = read_pid_file(pid, "status")?;
    parse_thread_count(&status)
        .ok_or_else(|| malformed(&pid_path(pid, "status"), "no numeric `Threads:` line"))
}

/// What thread `tid` of `pid` is doing. Reading another process's threads
/// needs ptrace access to it (root, or the same user).
pub fn task_syscall(pid: u32, tid: u32) -> Result<TaskSyscall> {
    let path = task_path(pid, tid, "syscall");
    let text = read_text(&path, Owner::Thread(pid, tid))?;
    parse_syscall(&text).ok_or_else(|| {
        malformed(
            &path,
            format!(
                "expected `running`, `-1 SP PC` or `NR ARG1..ARG6 SP PC`, got {:?}",
                text.trim()
            ),
        )
    })
}

/// The scheduler state and wait channel of thread `tid` of `pid`.
pub fn task_state(pid: u32, tid: u32) -> Result<TaskState> {
    let path = task_path(pid, tid, "stat");
    let stat = read_text(&path, Owner::Thread(pid, tid))?;
    let (comm, state) =
        parse_stat_state(&stat).ok_or_else(|| malformed(&path, "no `(comm) STATE` prefix"))?;
    // Best effort: the wait channel is a hint, and the kernel answers "0"
    // (or refuses) where it will not say.
    let wchan = fs::read_to_string(task_path(pid, tid, "wchan"))
        .ok()
        .and_then(|w| parse_wchan(&w));
    Ok(TaskState { comm, state, wchan })
}

fn task_path(pid: u32, tid: u32, rel: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/task/{tid}/{rel}"))
}

fn parse_thread_count(status: &str) -> Option<u32> {
    status_field(status, "Threads")?.parse().ok()
}

/// Parses `/proc/PID/task/TID/syscall` (fs/proc/base.c `proc_pid_syscall`):
/// `running`, `-1 SP PC`, or `NR A1 A2 A3 A4 A5 A6 SP PC` with the number in
/// decimal and the rest in `0x` hex.
fn parse_syscall(text: &str) -> Option<TaskSyscall> {
    let text = text.trim();
    if text == "running" {
        return Some(TaskSyscall::Running);
    }
    let mut fields = text.split_ascii_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    let rest: Vec<u64> = fields.map(parse_hex).collect::<Option<_>>()?;
    if nr < 0 {
        return match rest[..] {
            [sp, pc] => Some(TaskSyscall::NotInSyscall { sp, pc }),
            _ => None,
        };
    }
    match rest[..] {
        [a0, a1, a2, a3, a4, a5, sp, pc] => Some(TaskSyscall::InSyscall {
            sysno: u32::try_from(nr).ok()?,
            args: [a0, a1, a2, a3, a4, a5],
            sp,
            pc,
        }),
        _ => None,
    }
}

fn parse_hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x")?, 16).ok()
}

/// `(comm, state)` from `/proc/.../stat`. The comm sits in parentheses and
/// may itself hold spaces and parentheses, so the state is the first field
/// after the *last* `)`.
fn parse_stat_state(stat: &str) -> Option<(String, char)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let state = stat.get(close + 1..)?.split_ascii_whitespace().next()?;
    let mut chars = state.chars();
    let letter = chars.next()?;
    chars.next().is_none().then_some((comm, letter))
}

/// `/proc/.../wchan` holds a symbol name, or `0` when the task is not
/// waiting (or the reader may not see where).
fn parse_wchan(text: &str) -> Option<String> {
    let w = text.trim();
    (!w.is_empty() && w != "0").then(|| w.to_owned())
}

impl TaskSyscall {
    /// The syscall number, when the thread is in a syscall.
    pub fn sysno(&self) -> Option<u32> {
        match self {
            Self::InSyscall { sysno, .. } => Some(*sysno),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicI32, Ordering},
        },
        thread,
        time::{Duration, Instant},
    };

    use super::*;
    use crate::procinfo::ProcInfoError;

    #[test]
    fn parses_syscall_in_nanosleep() {
        // `sleep 100 &; cat /proc/$!/syscall` on x86_64, Linux 6.18.
        let text =
            "230 0x0 0x0 0x7ffed66febe0 0x7ffed66fec20 0x0 0x0 0x7ffed66febc8 0x7f98125fb503\n";
        assert_eq!(
            parse_syscall(text),
            Some(TaskSyscall::InSyscall {
                sysno: 230,
                args: [0, 0, 0x7ffe_d66f_ebe0, 0x7ffe_d66f_ec20, 0, 0],
                sp: 0x7ffe_d66f_ebc8,
                pc: 0x7f98_125f_b503,
            })
        );
        assert_eq!(parse_syscall(text).and_then(|s| s.sysno()), Some(230));
    }

    #[test]
    fn parses_running_and_not_in_syscall() {
        assert_eq!(parse_syscall("running\n"), Some(TaskSyscall::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffc1e4a1b28 0x55d0c0a41f3e\n"),
            Some(TaskSyscall::NotInSyscall {
                sp: 0x7ffc_1e4a_1b28,
                pc: 0x55d0_c0a4_1f3e,
            })
        );
    }

    #[test]
    fn rejects_odd_syscall_text() {
        for bad in [
            "",
            "\n",
            "runnin",
            "-1 0x1",
            "-1 0x1 0x2 0x3",
            "230 0x0 0x0",
            "230 0 0 0 0 0 0 0 0",
            "x 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0",
            "230 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0",
            "99999999999 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0",
            "230 0xzz 0x0 0x0 0x0 0x0 0x0 0x0 0x0",
        ] {
            assert_eq!(parse_syscall(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_thread_count() {
        let status = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t22783\nThreads:\t1\n";
        assert_eq!(parse_thread_count(status), Some(1));
        assert_eq!(parse_thread_count("Threads:\tmany\n"), None);
        assert_eq!(parse_thread_count(""), None);
    }

    #[test]
    fn parses_stat_state_after_last_paren() {
        // /proc/self/stat of `cat`.
        let stat =
            "22783 (cat) R 22777 22777 18851 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 2168228";
        assert_eq!(parse_stat_state(stat), Some(("cat".to_owned(), 'R')));
        let odd = "42 (a) S (b) c) S 1 42 42 0 -1 4194560";
        assert_eq!(parse_stat_state(odd), Some(("a) S (b) c".to_owned(), 'S')));
        assert_eq!(
            parse_stat_state("42 (x y) D 1"),
            Some(("x y".to_owned(), 'D'))
        );
        assert_eq!(parse_stat_state("42 (x) "), None);
        assert_eq!(parse_stat_state("42 (x) SS 1"), None);
        assert_eq!(parse_stat_state("42 x) S 1"), None);
        assert_eq!(parse_stat_state(""), None);
    }

    #[test]
    fn parses_wchan() {
        assert_eq!(
            parse_wchan("hrtimer_nanosleep"),
            Some("hrtimer_nanosleep".to_owned())
        );
        assert_eq!(parse_wchan("0"), None);
        assert_eq!(parse_wchan(""), None);
    }

    #[test]
    fn own_threads_are_listed_and_counted() {
        let pid = std::process::id();
        let tids = thread_ids(pid).unwrap();
        assert!(tids.contains(&pid), "{tids:?}");
        assert!(thread_count(pid).unwrap() >= 1);
        assert!(matches!(
            thread_count(u32::MAX),
            Err(ProcInfoError::NoSuchProcess { .. })
        ));
    }

    /// A thread sleeping in `std::thread::sleep` is seen blocked in
    /// `clock_nanosleep` (230; `nanosleep`, 35, with an older libc).
    #[test]
    fn sleeping_thread_is_in_nanosleep() {
        let pid = std::process::id();
        let stop = Arc::new(AtomicBool::new(false));
        let tid = Arc::new(AtomicI32::new(0));
        let sleeper = {
            let (stop, tid) = (stop.clone(), tid.clone());
            thread::spawn(move || {
                // SAFETY: gettid has no preconditions.
                tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = None;
        while Instant::now() < deadline {
            let t = tid.load(Ordering::SeqCst);
            if t > 0 {
                let t = t.cast_unsigned();
                if let Ok(TaskSyscall::InSyscall { sysno, .. }) = task_syscall(pid, t) {
                    let state = task_state(pid, t).unwrap();
                    seen = Some((sysno, state));
                    if matches!(sysno, 230 | 35) {
                        break;
                    }
                }
            }
            thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        sleeper.join().unwrap();
        let (sysno, state) = seen.expect("the sleeping thread was never seen in a syscall");
        assert!(matches!(sysno, 230 | 35), "sysno {sysno}");
        assert!(state.state == 'S' || state.state == 'R', "{state:?}");
    }

    #[test]
    fn own_thread_state_reads() {
        let pid = std::process::id();
        let state = task_state(pid, pid).unwrap();
        assert!(!state.comm.is_empty());
        assert!(matches!(
            task_syscall(pid, u32::MAX),
            Err(ProcInfoError::NoSuchThread { .. })
        ));
    }
}
