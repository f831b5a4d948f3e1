//! Reading another process's memory with `process_vm_readv`, without
//! stopping it. Needs ptrace access to the process (`PTRACE_MODE_ATTACH`:
//! root, or the same user with Yama's `ptrace_scope` allowing it).

use std::io;

use super::{ProcInfoError, Result};

/// Fills `buf` with the bytes at `addr` in `pid`'s address space. A read
/// that stops short (the range runs into unmapped memory) is an error, as
/// is an unmapped start.
pub fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> Result<()> {
    if buf.is_empty() {
        return Ok(());
    }
    let target = libc::pid_t::try_from(pid).map_err(|_| ProcInfoError::NoSuchProcess { pid })?;
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        // The remote address is only a number to this process.
        iov_base: usize::try_from(addr).unwrap_or(usize::MAX) as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: `local` describes `buf`, which is writable for its length;
    // the kernel only reads the remote side and copies into `local`.
    let got =
        unsafe { libc::process_vm_readv(target, &raw const local, 1, &raw const remote, 1, 0) };
    let Ok(got) = usize::try_from(got) else {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ESRCH) => ProcInfoError::NoSuchProcess { pid },
            Some(libc::EPERM) => ProcInfoError::PermissionDenied {
                what: format!("read the memory of PID {pid}"),
            },
            // EFAULT: nothing mapped at `addr`.
            Some(libc::EFAULT) => ProcInfoError::ShortRead {
                pid,
                addr,
                wanted: buf.len(),
                got: 0,
            },
            _ => ProcInfoError::Syscall {
                call: "process_vm_readv",
                pid,
                source: err,
            },
        });
    };
    if got < buf.len() {
        return Err(ProcInfoError::ShortRead {
            pid,
            addr,
            wanted: buf.len(),
            got,
        });
    }
    Ok(())
}

/// The native-endian `u64` at `addr` in `pid`.
pub fn read_u64(pid: u32, addr: u64) -> Result<u64> {
    let mut b = [0; 8];
    read_memory(pid, addr, &mut b)?;
    Ok(u64::from_ne_bytes(b))
}

/// The native-endian `u32` at `addr` in `pid`.
pub fn read_u32(pid: u32, addr: u64) -> Result<u32> {
    let mut b = [0; 4];
    read_memory(pid, addr, &mut b)?;
    Ok(u32::from_ne_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procinfo::{testutil, vdso};

    fn addr_of<T>(v: &T) -> u64 {
        std::ptr::from_ref(v) as u64
    }

    #[test]
    fn reads_own_memory() {
        let pid = std::process::id();
        let value: u64 = 0x0123_4567_89ab_cdef;
        let small: u32 = 0xfeed_f00d;
        let bytes = *b"procinfo reads this";
        assert_eq!(read_u64(pid, addr_of(&value)).unwrap(), value);
        assert_eq!(read_u32(pid, addr_of(&small)).unwrap(), small);
        let mut buf = [0u8; 19];
        read_memory(pid, addr_of(&bytes), &mut buf).unwrap();
        assert_eq!(buf, bytes);
        read_memory(pid, 0, &mut []).unwrap();
    }

    #[test]
    fn unmapped_reads_are_errors() {
        let pid = std::process::id();
        assert!(matches!(
            read_u64(pid, 8),
            Err(ProcInfoError::ShortRead {
                got: 0,
                wanted: 8,
                ..
            })
        ));
        // A read that runs off the end of a mapping: the last bytes of the
        // vDSO (followed by unmapped memory on every kernel seen, but make
        // sure the next page is unmapped before relying on it).
        if let Some(vdso) = vdso::vdso_range(pid).unwrap() {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let next_mapped = maps.lines().any(|l| {
                l.split('-')
                    .next()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    == Some(vdso.end)
            });
            if !next_mapped {
                let mut buf = [0u8; 16];
                let err = read_memory(pid, vdso.end - 8, &mut buf).unwrap_err();
                assert!(
                    matches!(
                        err,
                        ProcInfoError::ShortRead {
                            got: 8,
                            wanted: 16,
                            ..
                        }
                    ),
                    "{err}"
                );
            }
        }
        assert!(matches!(
            read_u32(u32::MAX, 0),
            Err(ProcInfoError::NoSuchProcess { .. })
        ));
    }

    /// Reading a child's memory: the start of its executable's first
    /// mapping is the ELF header.
    #[test]
    fn reads_child_memory() {
        if let Some(why) = testutil::cannot_inspect_children() {
            eprintln!("skipped: {why}");
            return;
        }
        let child = testutil::Sleeper::spawn(&[]);
        let pid = child.pid();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let start = maps
            .lines()
            .find(|l| {
                l.ends_with("/sleep") && l.split_ascii_whitespace().nth(2) == Some("00000000")
            })
            .and_then(|l| l.split('-').next())
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .expect("sleep's first mapping");
        assert_eq!(
            read_u32(pid, start).unwrap(),
            u32::from_ne_bytes(*b"\x7fELF")
        );
    }
}
