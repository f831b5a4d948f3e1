//! The threads of a process and what each is blocked in.

use std::fs;

use super::{ProcError, format_error, read};

/// `/proc/PID/task/TID/syscall`: the syscall a thread is blocked in, with
/// its user stack pointer and program counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskSyscall {
    /// On a CPU or runnable: no registers to show.
    Running,
    /// Blocked outside a syscall (e.g. a page fault).
    NotInSyscall { sp: u64, pc: u64 },
    InSyscall {
        sysno: u64,
        args: [u64; 6],
        sp: u64,
        pc: u64,
    },
}

pub fn thread_ids(pid: u32) -> Result<Vec<u32>, ProcError> {
    let dir = format!("/proc/{pid}/task");
    let entries = fs::read_dir(&dir).map_err(|source| ProcError::Read { path: dir, source })?;
    let mut tids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort_unstable();
    Ok(tids)
}

/// `Threads:` of /proc/PID/status.
pub fn thread_count(pid: u32) -> Result<u64, ProcError> {
    let path = format!("/proc/{pid}/status");
    status_field(&read(&path)?, "Threads:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format_error(&path, "no Threads: line"))
}

/// A field of a /proc status file, trimmed.
pub fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
}

pub fn task_syscall(pid: u32, tid: u32) -> Result<TaskSyscall, ProcError> {
    let path = format!("/proc/{pid}/task/{tid}/syscall");
    parse_syscall(&read(&path)?)
        .ok_or_else(|| format_error(&path, "not `running`, `-1 SP PC` or `NR ARGS SP PC`"))
}

pub fn parse_syscall(text: &str) -> Option<TaskSyscall> {
    let text = text.trim();
    if text == "running" {
        return Some(TaskSyscall::Running);
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    match fields.as_slice() {
        ["-1", sp, pc] => Some(TaskSyscall::NotInSyscall {
            sp: hex(sp)?,
            pc: hex(pc)?,
        }),
        [nr, a1, a2, a3, a4, a5, a6, sp, pc] => Some(TaskSyscall::InSyscall {
            sysno: nr.parse().ok()?,
            args: [hex(a1)?, hex(a2)?, hex(a3)?, hex(a4)?, hex(a5)?, hex(a6)?],
            sp: hex(sp)?,
            pc: hex(pc)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_file_formats() {
        assert_eq!(parse_syscall("running\n"), Some(TaskSyscall::Running));
        assert_eq!(
            parse_syscall("-1 0x7ffd1c0 0x45e2a3\n"),
            Some(TaskSyscall::NotInSyscall {
                sp: 0x7ffd1c0,
                pc: 0x45e2a3
            })
        );
        let s = parse_syscall("202 0x5c3b88 0x80 0x0 0x0 0x0 0x0 0x7ffe3c9c1d08 0x46b8a3\n");
        assert_eq!(
            s,
            Some(TaskSyscall::InSyscall {
                sysno: 202,
                args: [0x5c3b88, 0x80, 0, 0, 0, 0],
                sp: 0x7ffe3c9c1d08,
                pc: 0x46b8a3
            })
        );
        assert_eq!(parse_syscall("garbage"), None);
    }

    #[test]
    fn own_threads() {
        let pid = std::process::id();
        assert!(thread_count(pid).unwrap() >= 1);
        assert!(thread_ids(pid).unwrap().contains(&pid));
    }
}
