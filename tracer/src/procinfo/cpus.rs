//! CPUs a process may run on, and its environment.

use std::fs;

use super::ProcError;

/// CPUs in the process's affinity mask (what the Go runtime counts).
pub fn affinity_count(pid: u32) -> Result<u32, ProcError> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::sched_getaffinity(pid as libc::pid_t, size_of::<libc::cpu_set_t>(), &mut set)
    };
    if rc != 0 {
        return Err(ProcError::Read {
            path: format!("sched_getaffinity({pid})"),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: `set` was filled by the kernel.
    Ok(unsafe { libc::CPU_COUNT(&set) } as u32)
}

/// One variable of the process's initial environment.
pub fn env_var(pid: u32, name: &str) -> Result<Option<String>, ProcError> {
    let path = format!("/proc/{pid}/environ");
    let bytes = fs::read(&path).map_err(|source| ProcError::Read { path, source })?;
    Ok(parse_environ(&bytes, name))
}

pub fn parse_environ(bytes: &[u8], name: &str) -> Option<String> {
    bytes.split(|&b| b == 0).find_map(|kv| {
        let kv = std::str::from_utf8(kv).ok()?;
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_and_affinity() {
        assert_eq!(
            parse_environ(b"A=1\0GOMAXPROCS=4\0B=x=y\0", "GOMAXPROCS").as_deref(),
            Some("4")
        );
        assert_eq!(parse_environ(b"B=x=y\0", "B").as_deref(), Some("x=y"));
        assert_eq!(parse_environ(b"A=1\0", "GOMAXPROCS"), None);
        assert!(affinity_count(std::process::id()).unwrap() >= 1);
    }
}
