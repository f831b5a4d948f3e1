//! The traced process: validating a PID, launching a command held before
//! exec, counting threads, and noticing exit (pidfd).

pub mod launch;

use std::{
    fs, io,
    os::fd::{AsRawFd as _, FromRawFd, OwnedFd},
    path::PathBuf,
    sync::Arc,
};

/// `PF_KTHREAD` in the `flags` field of `/proc/PID/stat`.
const PF_KTHREAD: u64 = 0x0020_0000;

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("no process with PID {0}: check the PID (for example with `ps -e`)")]
    NoSuchProcess(u32),
    #[error(
        "PID {pid} ({comm}) is a kernel thread: it makes no syscalls from user space; \
         pick a user process"
    )]
    KernelThread { pid: u32, comm: String },
    #[error("PID {0} is the tracer itself: pick another process")]
    Itself(u32),
    #[error(
        "not permitted to trace PID {pid} ({comm}): the kernel would not let this user ptrace it \
         (it belongs to another user, is not dumpable, or Yama's ptrace_scope forbids it); run as \
         its owner or as root (CAP_SYS_PTRACE)"
    )]
    NotPermitted { pid: u32, comm: String },
    #[error("cannot read {path}: {source}")]
    Proc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch PID {pid} for exit (pidfd_open): {source}")]
    Pidfd {
        pid: u32,
        #[source]
        source: io::Error,
    },
}

/// A live user process that can be traced, held by a pidfd: the process
/// itself, not its number. A PID is reused once its process ends; every
/// read of `/proc/PID` is trusted only while [`Process::has_exited`] says
/// the process the tracer checked is still there.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub comm: String,
    pidfd: Arc<OwnedFd>,
}

impl Process {
    /// Checks that `pid` names a live user-space process other than us.
    pub fn validate(pid: u32) -> Result<Self, TargetError> {
        if pid == std::process::id() {
            return Err(TargetError::Itself(pid));
        }
        // The pidfd first: what /proc/PID says next is about this process
        // if it is still alive after the reads.
        let pidfd = Arc::new(pidfd_open(pid)?);
        let path = PathBuf::from(format!("/proc/{pid}/stat"));
        let stat = match fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TargetError::NoSuchProcess(pid));
            }
            Err(source) => return Err(TargetError::Proc { path, source }),
        };
        let (comm, flags) = parse_stat(&stat).ok_or_else(|| TargetError::Proc {
            path: path.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, "unexpected format"),
        })?;
        if flags & PF_KTHREAD != 0 {
            return Err(TargetError::KernelThread { pid, comm });
        }
        // The kernel's own ptrace access rule (same user and dumpable, or
        // CAP_SYS_PTRACE; Yama's scope): opening /proc/PID/mem applies it
        // exactly. The eBPF capabilities alone would let a user read any
        // process's syscalls; a user sees only what it could ptrace.
        match fs::File::open(format!("/proc/{pid}/mem")) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TargetError::NoSuchProcess(pid));
            }
            Err(_) => return Err(TargetError::NotPermitted { pid, comm }),
        }
        let process = Self { pid, comm, pidfd };
        if process.has_exited() {
            return Err(TargetError::NoSuchProcess(pid));
        }
        Ok(process)
    }

    /// Whether the process has ended (its PID may then name another one).
    pub fn has_exited(&self) -> bool {
        has_exited(&self.pidfd)
    }

    /// A descriptor that becomes readable when this process exits.
    pub fn exit_fd(&self) -> Result<OwnedFd, TargetError> {
        self.pidfd.try_clone().map_err(|source| TargetError::Pidfd {
            pid: self.pid,
            source,
        })
    }
}

/// Whether the process behind a pidfd has exited (it is readable then).
pub fn has_exited(pidfd: &OwnedFd) -> bool {
    let mut poll = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no waiting.
    let n = unsafe { libc::poll(&mut poll, 1, 0) };
    n > 0 && poll.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
}

/// `(comm, flags)` from the text of `/proc/PID/stat`. The comm is in
/// parentheses and may itself contain spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    // After ") ": state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9)
    let flags = stat
        .get(close + 2..)?
        .split_whitespace()
        .nth(6)?
        .parse()
        .ok()?;
    Some((comm, flags))
}

/// Number of threads of `pid` now (0 if it is gone).
pub fn thread_count(pid: u32) -> u64 {
    crate::procinfo::tasks::thread_count(pid).map_or(0, u64::from)
}

/// `true` while `pid` exists and is not a zombie.
pub fn is_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rfind(')')
                .and_then(|i| s.get(i + 2..i + 3))
                .map(|st| st != "Z" && st != "X")
        })
        .unwrap_or(false)
}

/// A pidfd: readable once the process has exited.
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, TargetError> {
    // SAFETY: plain syscall; the returned fd (if any) is owned by us.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        let source = io::Error::last_os_error();
        if source.raw_os_error() == Some(libc::ESRCH) {
            return Err(TargetError::NoSuchProcess(pid));
        }
        return Err(TargetError::Pidfd { pid, source });
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_comm() {
        let stat = "2 (kthr (ea) d) S 0 0 0 0 -1 2129984 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(("kthr (ea) d".to_owned(), 2_129_984))
        );
    }

    #[test]
    fn validates_ourselves_and_missing_pids() {
        assert!(matches!(
            Process::validate(std::process::id()),
            Err(TargetError::Itself(_))
        ));
        // PID numbers above pid_max (at most 2^22) never exist.
        assert!(matches!(
            Process::validate(99_999_999),
            Err(TargetError::NoSuchProcess(_))
        ));
        assert!(thread_count(std::process::id()) >= 1);
        // A child, checked, then ended: the check sees the end even once
        // its PID is free for another process.
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .unwrap();
        let process = Process::validate(child.id()).unwrap();
        assert!(!process.has_exited());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(process.has_exited());
        assert!(is_running(std::process::id()));
    }
}
