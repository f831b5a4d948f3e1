//! What a descriptor of a live process refers to, from `/proc/PID/fd/N`:
//! `stat` through the magic link gives the file type, `readlink` names
//! sockets, pipes and anonymous inodes (`anon_inode:[eventfd]`). Used for
//! threads blocked in a syscall right now (their descriptor is surely open
//! while they wait on it).

use std::{fs, os::unix::fs::FileTypeExt as _};

use super::{Owner, Result, map_io};

/// The kind of an open descriptor, as `/proc` shows it.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(tag = "kind", content = "name", rename_all = "snake_case")]
pub enum FdTarget {
    RegularFile,
    Directory,
    /// A pipe or a FIFO.
    Pipe,
    Socket,
    CharDevice,
    BlockDevice,
    /// An anonymous inode and its class (`eventfd`, `eventpoll`,
    /// `timerfd`...).
    Anon(String),
    /// Something else (`pidfd`, a symlink opened with O_PATH...).
    Other(String),
}

/// What descriptor `fd` of `pid` is now.
pub fn fd_target(pid: u32, fd: u32) -> Result<FdTarget> {
    let path = super::pid_path(pid, &format!("fd/{fd}"));
    let link = fs::read_link(&path).map_err(|e| map_io(&path, Owner::Process(pid), e))?;
    let link = link.to_string_lossy();
    if let Some(class) = link.strip_prefix("anon_inode:") {
        let class = class.trim_start_matches('[').trim_end_matches(']');
        return Ok(FdTarget::Anon(class.to_owned()));
    }
    let meta = fs::metadata(&path).map_err(|e| map_io(&path, Owner::Process(pid), e))?;
    let t = meta.file_type();
    Ok(if t.is_socket() {
        FdTarget::Socket
    } else if t.is_fifo() {
        FdTarget::Pipe
    } else if t.is_dir() {
        FdTarget::Directory
    } else if t.is_char_device() {
        FdTarget::CharDevice
    } else if t.is_block_device() {
        FdTarget::BlockDevice
    } else if t.is_file() && !link.starts_with("anon_inode") {
        // pidfds are regular files to the kernel but link to
        // "anon_inode:[pidfd]" or "pidfd:..."
        if link.starts_with("pidfd:") {
            FdTarget::Other("pidfd".into())
        } else {
            FdTarget::RegularFile
        }
    } else {
        FdTarget::Other(link.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use super::*;

    #[test]
    fn kinds_of_our_own_descriptors() {
        let pid = std::process::id();
        let file = fs::File::open("/proc/self/status").unwrap();
        let dir = fs::File::open("/").unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let null = fs::File::open("/dev/null").unwrap();
        let fd = |f: i32| fd_target(pid, f as u32).unwrap();
        assert_eq!(fd(file.as_raw_fd()), FdTarget::RegularFile);
        assert_eq!(fd(dir.as_raw_fd()), FdTarget::Directory);
        assert_eq!(fd(r.as_raw_fd()), FdTarget::Pipe);
        assert_eq!(fd(sock.as_raw_fd()), FdTarget::Socket);
        assert_eq!(fd(null.as_raw_fd()), FdTarget::CharDevice);
        // SAFETY: eventfd(2) with valid flags; the descriptor is closed below.
        let efd = unsafe { libc::eventfd(0, 0) };
        assert_eq!(fd(efd), FdTarget::Anon("eventfd".into()));
        unsafe { libc::close(efd) };
        assert!(fd_target(pid, 999_999).is_err());
    }
}
