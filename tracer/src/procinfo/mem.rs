//! Reading a live process's memory (`process_vm_readv`: no ptrace stop).

use std::io;

pub fn read_memory(pid: u32, addr: u64, buf: &mut [u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: one local iovec over `buf`, which we own for the call; the
    // remote address is only read by the kernel, with permission checks.
    let n = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    match n {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize != buf.len() => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("short read of {n} bytes at {addr:#x}"),
        )),
        _ => Ok(()),
    }
}

pub fn read_u64(pid: u32, addr: u64) -> io::Result<u64> {
    let mut b = [0u8; 8];
    read_memory(pid, addr, &mut b)?;
    Ok(u64::from_ne_bytes(b))
}

pub fn read_u32(pid: u32, addr: u64) -> io::Result<u32> {
    let mut b = [0u8; 4];
    read_memory(pid, addr, &mut b)?;
    Ok(u32::from_ne_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory() {
        let value: u64 = 0x1122_3344_5566_7788;
        let addr = &raw const value as u64;
        assert_eq!(read_u64(std::process::id(), addr).unwrap(), value);
        assert!(read_u64(std::process::id(), 8).is_err());
    }
}
