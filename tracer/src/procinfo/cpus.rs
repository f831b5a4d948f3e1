//! CPUs a process may run on, CPUs online, and the process's environment.

use std::{io, path::Path};

use super::{Owner, ProcInfoError, Result, malformed, pid_path, read_bytes, read_text};

/// How many CPUs `pid` may run on: the bits set in its affinity mask
/// (`sched_getaffinity(pid)`, the mask of its main thread; what Go's
/// `runtime.NumCPU` counts at start). Needs no privilege.
pub fn affinity_cpus(pid: u32) -> Result<u32> {
    let tid = libc::pid_t::try_from(pid).map_err(|_| ProcInfoError::NoSuchProcess { pid })?;
    // Start with room for 1024 CPUs (glibc's cpu_set_t) and grow while the
    // kernel says the mask does not fit (EINVAL), as for machines with more
    // possible CPUs.
    let mut words = 1024 / 64;
    loop {
        let mut mask = vec![0u64; words];
        let bytes = std::mem::size_of_val(mask.as_slice());
        // SAFETY: the buffer is `bytes` long and writable; the raw syscall
        // returns how many bytes of it the kernel filled.
        let ret =
            unsafe { libc::syscall(libc::SYS_sched_getaffinity, tid, bytes, mask.as_mut_ptr()) };
        if ret >= 0 {
            let filled = usize::try_from(ret).unwrap_or(0).div_ceil(8).min(words);
            return Ok(mask[..filled].iter().map(|w| w.count_ones()).sum());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINVAL) if words < (1 << 20) => words *= 2,
            Some(libc::ESRCH) => return Err(ProcInfoError::NoSuchProcess { pid }),
            _ => {
                return Err(ProcInfoError::Syscall {
                    call: "sched_getaffinity",
                    pid,
                    source: err,
                });
            }
        }
    }
}

/// How many CPUs are online (`/sys/devices/system/cpu/online`).
pub fn online_cpus() -> Result<u32> {
    let path = Path::new("/sys/devices/system/cpu/online");
    let text = read_text(path, Owner::None)?;
    parse_cpu_list(&text).ok_or_else(|| {
        malformed(
            path,
            format!("expected a CPU list like `0-3,5`, got {:?}", text.trim()),
        )
    })
}

/// The value of environment variable `name` of `pid`, as it was when the
/// process started (`/proc/PID/environ` shows the environment passed to
/// `execve`; a later `setenv` in the process is not seen). `None` when it
/// is not set. Reading another user's process needs root.
pub fn env_var(pid: u32, name: &str) -> Result<Option<String>> {
    let environ = read_bytes(&pid_path(pid, "environ"), Owner::Process(pid))?;
    Ok(find_env(&environ, name))
}

/// Counts the CPUs of a kernel CPU list (`0-3,8,10-11`).
fn parse_cpu_list(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    text.split(',').try_fold(0u32, |n, part| {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?),
            None => {
                let c = part.parse::<u32>().ok()?;
                (c, c)
            }
        };
        n.checked_add(hi.checked_sub(lo)?.checked_add(1)?)
    })
}

/// The value of `name` in a NUL-separated `NAME=value` block; the first
/// occurrence wins, as for `getenv`.
fn find_env(environ: &[u8], name: &str) -> Option<String> {
    environ.split(|b| *b == 0).find_map(|entry| {
        let value = entry.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
        Some(String::from_utf8_lossy(value).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procinfo::testutil;

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0\n"), Some(1));
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), Some(7));
        assert_eq!(parse_cpu_list("\n"), Some(0));
        for bad in ["3-1", "a", "0-", "0,,1", "-1"] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn finds_env_vars() {
        let environ = b"PATH=/usr/bin:/bin\0GOMAXPROCS=4\0GODEBUG=\0GOMAXPROCS=9\0EMPTY\0";
        assert_eq!(find_env(environ, "GOMAXPROCS"), Some("4".to_owned()));
        assert_eq!(find_env(environ, "GODEBUG"), Some(String::new()));
        assert_eq!(find_env(environ, "PATH"), Some("/usr/bin:/bin".to_owned()));
        assert_eq!(find_env(environ, "PAT"), None);
        assert_eq!(find_env(environ, "EMPTY"), None);
        assert_eq!(find_env(b"", "PATH"), None);
        assert_eq!(find_env(b"X=\xff\0", "X"), Some("\u{fffd}".to_owned()));
    }

    #[test]
    fn own_cpus_and_environment() {
        let pid = std::process::id();
        let affinity = affinity_cpus(pid).unwrap();
        let online = online_cpus().unwrap();
        assert!(
            affinity >= 1 && affinity <= online,
            "affinity {affinity}, online {online}"
        );
        let path = std::env::var("PATH").ok();
        assert_eq!(env_var(pid, "PATH").unwrap(), path);
        assert_eq!(
            env_var(pid, "PROCINFO_SURELY_UNSET_VARIABLE").unwrap(),
            None
        );
        assert!(matches!(
            affinity_cpus(u32::MAX),
            Err(ProcInfoError::NoSuchProcess { .. })
        ));
    }

    /// A child's environment, as passed to its exec.
    #[test]
    fn reads_child_environment() {
        if let Some(why) = testutil::cannot_inspect_children() {
            eprintln!("skipped: {why}");
            return;
        }
        let child = testutil::Sleeper::spawn(&[("PROCINFO_TEST_VALUE", "a b=c")]);
        assert_eq!(
            env_var(child.pid(), "PROCINFO_TEST_VALUE")
                .unwrap()
                .as_deref(),
            Some("a b=c")
        );
        assert!(affinity_cpus(child.pid()).unwrap() >= 1);
    }
}
