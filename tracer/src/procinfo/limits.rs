//! `RLIMIT_NPROC`: the limit, who it applies to, and what it counts.
//!
//! The kernel checks the limit in `copy_process` (kernel/fork.c), for every
//! new task, thread or process: when the tasks counted for the creator's
//! *real* uid (in its user namespace) reach the creator's soft limit, the
//! clone fails with `EAGAIN` unless the real uid is the initial namespace's
//! root, or the creating thread has `CAP_SYS_RESOURCE` or `CAP_SYS_ADMIN`:
//!
//! ```c
//! if (is_rlimit_overlimit(task_ucounts(p), UCOUNT_RLIMIT_NPROC, rlimit(RLIMIT_NPROC))) {
//!         if (p->real_cred->user != INIT_USER &&
//!             !capable(CAP_SYS_RESOURCE) && !capable(CAP_SYS_ADMIN))
//!                 goto bad_fork_cleanup_count;
//! }
//! ```
//!
//! So the count is over threads, not processes, and over every process of
//! that uid, not only the traced one. For a Go program this is where
//! `pthread_create failed: Resource temporarily unavailable` comes from.

use std::{fs, path::Path};

use super::{Owner, Result, malformed, map_io, pid_path, read_pid_file, status_field};

/// `CAP_SYS_ADMIN`, bit 21 of the capability sets.
const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_SYS_RESOURCE`, bit 24.
const CAP_SYS_RESOURCE: u32 = 24;

/// The `RLIMIT_NPROC` limits of a process; `None` is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NprocLimit {
    /// The limit the kernel enforces.
    pub soft: Option<u64>,
    /// The ceiling the process may raise its soft limit to.
    pub hard: Option<u64>,
}

/// Who a process is, as far as `RLIMIT_NPROC` cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Credentials {
    /// The real uid: the one whose tasks are counted.
    pub real_uid: u32,
    /// The effective capability set (`CapEff:` in `/proc/PID/status`) of the
    /// main thread.
    pub cap_effective: u64,
}

impl Credentials {
    /// True when the real uid is root (uid 0). The kernel exempts the
    /// initial user namespace's root; uid 0 inside a user namespace maps to
    /// another uid outside and is not exempt (this check cannot tell).
    pub fn is_root(&self) -> bool {
        self.real_uid == 0
    }

    /// True when the kernel does not enforce `RLIMIT_NPROC` for this process:
    /// its real uid is root, or it holds `CAP_SYS_RESOURCE` or
    /// `CAP_SYS_ADMIN` (read from the main thread; the kernel checks the
    /// thread that creates the new one).
    pub fn nproc_exempt(&self) -> bool {
        let has = |cap: u32| self.cap_effective & (1 << cap) != 0;
        self.is_root() || has(CAP_SYS_RESOURCE) || has(CAP_SYS_ADMIN)
    }
}

/// The `RLIMIT_NPROC` of `pid` (`Max processes` in `/proc/PID/limits`).
pub fn nproc_limit(pid: u32) -> Result<NprocLimit> {
    let limits = read_pid_file(pid, "limits")?;
    parse_nproc_limit(&limits).ok_or_else(|| {
        malformed(
            &pid_path(pid, "limits"),
            "no `Max processes SOFT HARD processes` line",
        )
    })
}

/// The real uid and effective capabilities of `pid`.
pub fn credentials(pid: u32) -> Result<Credentials> {
    let status = read_pid_file(pid, "status")?;
    parse_credentials(&status).ok_or_else(|| {
        malformed(
            &pid_path(pid, "status"),
            "no numeric `Uid:` and hex `CapEff:` lines",
        )
    })
}

/// The real uid of `pid` (the first field of `Uid:` in `/proc/PID/status`).
pub fn real_uid(pid: u32) -> Result<u32> {
    credentials(pid).map(|c| c.real_uid)
}

/// How many tasks (threads) of all processes on the machine have real uid
/// `uid`: the number `RLIMIT_NPROC` is compared with. It reads the
/// `status` of every process in `/proc`, so it costs a few milliseconds per
/// thousand processes. Processes that exit meanwhile are skipped; tasks in
/// other PID namespaces than this `/proc`'s are not seen.
pub fn tasks_owned_by(uid: u32) -> Result<u64> {
    let proc = Path::new("/proc");
    let entries = fs::read_dir(proc).map_err(|e| map_io(proc, Owner::None, e))?;
    let mut total = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process can exit between the listing and the read.
        let Ok(status) = read_pid_file(pid, "status") else {
            continue;
        };
        if let Some((owner, threads)) = parse_uid_threads(&status)
            && owner == uid
        {
            total += u64::from(threads);
        }
    }
    Ok(total)
}

/// Parses the `Max processes` line of `/proc/PID/limits`:
/// `Max processes             96365                96365                processes`.
/// The limit name holds spaces, so the values are the words after it.
fn parse_nproc_limit(limits: &str) -> Option<NprocLimit> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max processes"))?;
    let mut words = line.split_ascii_whitespace();
    let soft = parse_limit_value(words.next()?)?;
    let hard = parse_limit_value(words.next()?)?;
    Some(NprocLimit { soft, hard })
}

/// `unlimited` → `Some(None)`, a number → `Some(Some(n))`, else `None`.
fn parse_limit_value(word: &str) -> Option<Option<u64>> {
    if word == "unlimited" {
        Some(None)
    } else {
        word.parse().ok().map(Some)
    }
}

fn parse_credentials(status: &str) -> Option<Credentials> {
    let real_uid = first_uid(status)?;
    let cap_effective = u64::from_str_radix(status_field(status, "CapEff")?, 16).ok()?;
    Some(Credentials {
        real_uid,
        cap_effective,
    })
}

/// `Uid:\treal\teffective\tsaved\tfs`: the real one.
fn first_uid(status: &str) -> Option<u32> {
    status_field(status, "Uid")?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

fn parse_uid_threads(status: &str) -> Option<(u32, u32)> {
    Some((
        first_uid(status)?,
        status_field(status, "Threads")?.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procinfo::tasks;

    /// `cat /proc/self/limits` on Debian 12 (Linux 6.18).
    const LIMITS: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
Max stack size            8388608              unlimited            bytes     
Max core file size        0                    unlimited            bytes     
Max resident set          unlimited            unlimited            bytes     
Max processes             96365                96365                processes 
Max open files            20000                20000                files     
Max locked memory         8388608              8388608              bytes     
Max address space         unlimited            unlimited            bytes     
Max file locks            unlimited            unlimited            locks     
Max pending signals       96365                96365                signals   
Max msgqueue size         819200               819200               bytes     
Max nice priority         0                    0                    
Max realtime priority     0                    0                    
Max realtime timeout      unlimited            unlimited            us        
";

    const STATUS: &str = "Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t22783\n\
        Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\nThreads:\t3\n\
        CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n";

    #[test]
    fn parses_nproc_limit() {
        assert_eq!(
            parse_nproc_limit(LIMITS),
            Some(NprocLimit {
                soft: Some(96365),
                hard: Some(96365)
            })
        );
        let mixed =
            "Max processes             1024                 unlimited            processes \n";
        assert_eq!(
            parse_nproc_limit(mixed),
            Some(NprocLimit {
                soft: Some(1024),
                hard: None
            })
        );
    }

    #[test]
    fn rejects_odd_limits() {
        assert_eq!(parse_nproc_limit(""), None);
        assert_eq!(
            parse_nproc_limit("Max processes             lots      lots   processes"),
            None
        );
        assert_eq!(parse_nproc_limit("Max processes             12"), None);
        assert_eq!(
            parse_nproc_limit("Max open files            20000                20000"),
            None
        );
    }

    #[test]
    fn parses_credentials() {
        let c = parse_credentials(STATUS).unwrap();
        assert_eq!(c.real_uid, 1000);
        assert!(!c.is_root());
        assert!(!c.nproc_exempt());
        assert_eq!(parse_uid_threads(STATUS), Some((1000, 3)));

        let root = STATUS.replace("1000\t1000\t1000\t1000", "0\t0\t0\t0");
        assert!(parse_credentials(&root).unwrap().nproc_exempt());
        // CAP_SYS_RESOURCE alone exempts a non-root uid.
        let cap = STATUS.replace("CapEff:\t0000000000000000", "CapEff:\t0000000001000000");
        let c = parse_credentials(&cap).unwrap();
        assert!(!c.is_root() && c.nproc_exempt());
        assert_eq!(parse_credentials("Uid:\tx\nCapEff:\t0\n"), None);
        assert_eq!(parse_credentials("Uid:\t1\t1\t1\t1\n"), None);
    }

    #[test]
    fn own_limits_and_task_count() {
        let pid = std::process::id();
        let limit = nproc_limit(pid).unwrap();
        if let (Some(soft), Some(hard)) = (limit.soft, limit.hard) {
            assert!(soft <= hard);
        }
        let creds = credentials(pid).unwrap();
        // SAFETY: getuid has no preconditions.
        assert_eq!(creds.real_uid, unsafe { libc::getuid() });
        let owned = tasks_owned_by(creds.real_uid).unwrap();
        let ours = u64::from(tasks::thread_count(pid).unwrap());
        assert!(owned >= ours, "{owned} < {ours}");
    }
}
