//! What a blocking syscall was waiting on: the kind of its file descriptor
//! (regular file, socket, pipe, eventfd...) and whether it is non-blocking,
//! from what the kernel programs read of the `struct file` at the call's
//! exit ([`RawFd`]).
//!
//! How the kind is decided, most trusted first:
//!
//! 1. `f_op`, when its address is a known `file_operations` table
//!    ([`FopsMap`], from `/proc/kallsyms`; often unavailable);
//! 2. the file system's magic number (`inode.i_sb->s_magic`): anon_inodefs
//!    (eventfd, epoll, timerfd, signalfd, inotify, io_uring, ...: told apart
//!    by the dentry name the kernel gives them, `[eventfd]`, `[eventpoll]`,
//!    ...) and pidfs (pidfds since 6.9);
//! 3. the file type bits of `inode.i_mode` (`S_IFMT`).
//!
//! Anonymous inodes have no file type bits (measured on 6.18: `i_mode` is
//! 0600 in the kernel and in `fstat`), so they are never taken for regular
//! files. pidfs inodes, however, are `S_IFREG` inside the kernel on 6.18
//! (`fstat` hides it): without the magic number a pidfd would look like a
//! regular file, which is why the magic comes before `i_mode`.
//!
//! Go and the netpoller: Go puts a descriptor in non-blocking mode only
//! once it registered it with the netpoller (the `net` package, and
//! `os.NewFile`/`os.Open` for pollable files), so a goroutine blocked on it
//! parks and gives its thread back. A descriptor without `O_NONBLOCK`, and
//! any regular file or directory (`epoll_ctl` refuses them with `EPERM`),
//! is waited on by the thread itself, inside the syscall.

use serde::{Serialize, Serializer, ser::SerializeStruct};

use crate::procinfo::kallsyms::{FopsKind, FopsMap};

/// Bytes of the dentry name kept in [`RawFd::name`].
pub const NAME_LEN: usize = 16;

/// `super_block.s_magic` of anon_inodefs (`ANON_INODE_FS_MAGIC`).
pub const ANON_INODE_FS_MAGIC: u64 = 0x0904_1934;
/// `super_block.s_magic` of pidfs (`PID_FS_MAGIC`, 6.9+).
pub const PID_FS_MAGIC: u64 = 0x5049_4446;

const S_IFMT: u32 = 0o170_000;
const S_IFSOCK: u32 = 0o140_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFREG: u32 = 0o100_000;
const S_IFBLK: u32 = 0o060_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFCHR: u32 = 0o020_000;
const S_IFIFO: u32 = 0o010_000;
/// `O_NONBLOCK` on x86_64 (and most architectures).
const O_NONBLOCK: u32 = 0o4000;

/// What the kernel programs read of one descriptor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawFd {
    /// The descriptor number.
    pub fd: i32,
    /// `file->f_inode->i_mode` (a `u16` in the kernel): type and permission
    /// bits.
    pub i_mode: u32,
    /// `file->f_flags`: the open flags, `O_NONBLOCK` among them.
    pub f_flags: u32,
    /// `file->f_op`: address of the `file_operations` table; 0 when not
    /// read.
    pub f_op: u64,
    /// `file->f_inode->i_sb->s_magic`: the file system; 0 when not read.
    pub sb_magic: u64,
    /// The first bytes of `file->f_path.dentry->d_name.name`, NUL-padded:
    /// for an anonymous inode its class (`[eventfd]`); all zero when not
    /// read.
    pub name: [u8; NAME_LEN],
    /// For sockets (`file->private_data` → `socket.sk`):
    /// `sk->__sk_common.skc_family` (`AF_*`), `sk->sk_type` (`SOCK_*`) and
    /// `sk->sk_protocol` (`IPPROTO_*`); 0 when not read.
    pub sock_family: u16,
    pub sock_type: u16,
    pub sock_protocol: u16,
    /// The descriptor was open and its `struct file` and inode could be
    /// read; when false the other fields mean nothing.
    pub read_ok: bool,
}

impl From<&crate::model::RawFd> for RawFd {
    /// What the kernel reported for a call's descriptor.
    fn from(r: &crate::model::RawFd) -> Self {
        Self {
            fd: r.fd,
            i_mode: r.i_mode,
            f_flags: r.f_flags,
            f_op: r.f_op,
            sb_magic: r.sb_magic,
            name: r.name,
            sock_family: r.sock_family,
            sock_type: r.sock_type,
            sock_protocol: r.sock_protocol,
            read_ok: r.state == tracer_common::FD_READ,
        }
    }
}

impl RawFd {
    /// The dentry name up to its first NUL (lossy UTF-8).
    pub fn name(&self) -> String {
        let end = self.name.iter().position(|&b| b == 0).unwrap_or(NAME_LEN);
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

/// Address family of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketFamily {
    Unix,
    Inet,
    Inet6,
    Netlink,
    Packet,
    Vsock,
    Other(u16),
}

impl SocketFamily {
    pub fn from_raw(af: u16) -> Self {
        match af {
            1 => Self::Unix,
            2 => Self::Inet,
            10 => Self::Inet6,
            16 => Self::Netlink,
            17 => Self::Packet,
            40 => Self::Vsock,
            other => Self::Other(other),
        }
    }
}

/// Type of a socket (`SOCK_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SocketType {
    Stream,
    Dgram,
    Raw,
    Rdm,
    SeqPacket,
    Other(u16),
}

impl SocketType {
    pub fn from_raw(ty: u16) -> Self {
        match ty {
            1 => Self::Stream,
            2 => Self::Dgram,
            3 => Self::Raw,
            4 => Self::Rdm,
            5 => Self::SeqPacket,
            other => Self::Other(other),
        }
    }
}

const IPPROTO_ICMP: u16 = 1;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const IPPROTO_ICMPV6: u16 = 58;
const IPPROTO_SCTP: u16 = 132;
const IPPROTO_UDPLITE: u16 = 136;
const IPPROTO_MPTCP: u16 = 262;

/// The kind of file a descriptor refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FdKind {
    RegularFile,
    Directory,
    /// An anonymous pipe or a FIFO (named pipe): the kernel treats both
    /// alike.
    Pipe,
    Socket {
        family: SocketFamily,
        kind: SocketType,
        /// `IPPROTO_*` for IP sockets (6 TCP, 17 UDP...), else the family's
        /// own protocol number (often 0).
        protocol: u16,
    },
    CharDevice,
    BlockDevice,
    /// An `O_PATH` descriptor of a symbolic link.
    Symlink,
    #[serde(rename = "eventfd")]
    EventFd,
    Epoll,
    #[serde(rename = "timerfd")]
    TimerFd,
    #[serde(rename = "signalfd")]
    SignalFd,
    Inotify,
    #[serde(rename = "pidfd")]
    PidFd,
    IoUring,
    /// Another anonymous inode (fanotify, userfaultfd, perf, bpf...).
    OtherAnon,
    /// Not read, or unrecognized.
    Unknown,
}

impl FdKind {
    /// A short human label: "TCP socket", "pipe/FIFO", "eventfd"...
    pub fn label(&self) -> &'static str {
        match *self {
            Self::RegularFile => "regular file",
            Self::Directory => "directory",
            Self::Pipe => "pipe/FIFO",
            Self::Socket {
                family,
                kind,
                protocol,
            } => socket_label(family, kind, protocol),
            Self::CharDevice => "character device",
            Self::BlockDevice => "block device",
            Self::Symlink => "symlink",
            Self::EventFd => "eventfd",
            Self::Epoll => "epoll",
            Self::TimerFd => "timerfd",
            Self::SignalFd => "signalfd",
            Self::Inotify => "inotify",
            Self::PidFd => "pidfd",
            Self::IoUring => "io_uring",
            Self::OtherAnon => "anonymous inode",
            Self::Unknown => "unknown",
        }
    }

    /// Whether `epoll` can watch this kind of file at all: `Some(false)` for
    /// regular files, directories, block devices and symlinks (`epoll_ctl`
    /// says `EPERM`), `None` when the kind is not known well enough.
    pub fn pollable(&self) -> Option<bool> {
        match self {
            Self::RegularFile | Self::Directory | Self::BlockDevice | Self::Symlink => Some(false),
            Self::Pipe
            | Self::Socket { .. }
            | Self::CharDevice
            | Self::EventFd
            | Self::Epoll
            | Self::TimerFd
            | Self::SignalFd
            | Self::Inotify
            | Self::PidFd
            | Self::IoUring => Some(true),
            Self::OtherAnon | Self::Unknown => None,
        }
    }
}

fn socket_label(family: SocketFamily, kind: SocketType, protocol: u16) -> &'static str {
    match family {
        SocketFamily::Unix => "unix socket",
        SocketFamily::Inet | SocketFamily::Inet6 => match (kind, protocol) {
            (_, IPPROTO_TCP) => "TCP socket",
            (_, IPPROTO_MPTCP) => "MPTCP socket",
            (_, IPPROTO_SCTP) => "SCTP socket",
            (_, IPPROTO_UDP) => "UDP socket",
            (_, IPPROTO_UDPLITE) => "UDP-Lite socket",
            (SocketType::Raw, _) => "raw IP socket",
            (_, IPPROTO_ICMP | IPPROTO_ICMPV6) => "ICMP socket",
            _ => "IP socket",
        },
        SocketFamily::Netlink => "netlink socket",
        SocketFamily::Packet => "packet socket",
        SocketFamily::Vsock => "vsock socket",
        SocketFamily::Other(_) => "socket",
    }
}

/// A classified descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdInfo {
    pub fd: i32,
    pub kind: FdKind,
    /// `O_NONBLOCK` is set (false when the file was not read).
    pub nonblocking: bool,
}

impl FdInfo {
    pub fn label(&self) -> &'static str {
        self.kind.label()
    }

    /// Whether Go's netpoller would normally wait for this descriptor (the
    /// goroutine parks, the thread is free): a pollable kind in
    /// non-blocking mode. `Some(false)`: the thread itself waits in the
    /// syscall (a blocking descriptor, or a kind epoll refuses). `None`:
    /// the kind is not known well enough to say.
    pub fn netpoller_waits(&self) -> Option<bool> {
        self.kind.pollable().map(|p| p && self.nonblocking)
    }
}

/// JSON: `{"fd", "kind", "nonblocking", "label", "netpoller_waits"}`.
impl Serialize for FdInfo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("FdInfo", 5)?;
        st.serialize_field("fd", &self.fd)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("nonblocking", &self.nonblocking)?;
        st.serialize_field("label", self.label())?;
        st.serialize_field("netpoller_waits", &self.netpoller_waits())?;
        st.end()
    }
}

/// Classifies what the kernel read of a descriptor. `fops` names `f_op`
/// addresses when `/proc/kallsyms` could (see the module docs for the
/// order of the evidence).
pub fn classify(raw: &RawFd, fops: Option<&FopsMap>) -> FdInfo {
    if !raw.read_ok {
        return FdInfo {
            fd: raw.fd,
            kind: FdKind::Unknown,
            nonblocking: false,
        };
    }
    let kind = fops
        .and_then(|m| m.kind(raw.f_op))
        .map(|k| from_fops(k, raw))
        .unwrap_or_else(|| from_inode(raw));
    FdInfo {
        fd: raw.fd,
        kind,
        nonblocking: raw.f_flags & O_NONBLOCK != 0,
    }
}

fn socket(raw: &RawFd) -> FdKind {
    FdKind::Socket {
        family: SocketFamily::from_raw(raw.sock_family),
        kind: SocketType::from_raw(raw.sock_type),
        protocol: raw.sock_protocol,
    }
}

fn from_fops(kind: FopsKind, raw: &RawFd) -> FdKind {
    match kind {
        FopsKind::Socket => socket(raw),
        FopsKind::Pipe => FdKind::Pipe,
        FopsKind::EventFd => FdKind::EventFd,
        FopsKind::Epoll => FdKind::Epoll,
        FopsKind::TimerFd => FdKind::TimerFd,
        FopsKind::SignalFd => FdKind::SignalFd,
        FopsKind::Inotify => FdKind::Inotify,
        FopsKind::PidFd => FdKind::PidFd,
        FopsKind::IoUring => FdKind::IoUring,
        FopsKind::BlockDevice => FdKind::BlockDevice,
        FopsKind::Fanotify
        | FopsKind::UserfaultFd
        | FopsKind::PerfEvent
        | FopsKind::BpfMap
        | FopsKind::BpfProg
        | FopsKind::BpfLink => FdKind::OtherAnon,
    }
}

fn from_inode(raw: &RawFd) -> FdKind {
    match raw.sb_magic {
        ANON_INODE_FS_MAGIC => return anon_by_name(raw),
        PID_FS_MAGIC => return FdKind::PidFd,
        _ => {}
    }
    match raw.i_mode & S_IFMT {
        S_IFSOCK => socket(raw),
        S_IFIFO => FdKind::Pipe,
        S_IFCHR => FdKind::CharDevice,
        S_IFBLK => FdKind::BlockDevice,
        S_IFDIR => FdKind::Directory,
        S_IFLNK => FdKind::Symlink,
        S_IFREG => FdKind::RegularFile,
        // No type bits: an anonymous inode (the magic was not read).
        0 => anon_by_name(raw),
        _ => FdKind::Unknown,
    }
}

/// An anonymous inode by the name its creator gave the dentry
/// (`anon_inode_getfile(name, ...)`; `/proc/PID/fd` shows
/// `anon_inode:NAME`).
fn anon_by_name(raw: &RawFd) -> FdKind {
    match raw.name().as_str() {
        "[eventfd]" => FdKind::EventFd,
        "[eventpoll]" => FdKind::Epoll,
        "[timerfd]" => FdKind::TimerFd,
        "[signalfd]" => FdKind::SignalFd,
        "inotify" => FdKind::Inotify,
        "[pidfd]" => FdKind::PidFd,
        "[io_uring]" => FdKind::IoUring,
        _ => FdKind::OtherAnon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> [u8; NAME_LEN] {
        let mut n = [0; NAME_LEN];
        let len = s.len().min(NAME_LEN);
        n[..len].copy_from_slice(&s.as_bytes()[..len]);
        n
    }

    /// What the kernel holds for each kind on 6.18 (read with bpftrace from
    /// a test process: `i_mode`, `f_flags`, `s_magic`, dentry name).
    fn raw(i_mode: u32, f_flags: u32, sb_magic: u64, dentry: &str) -> RawFd {
        RawFd {
            fd: 3,
            i_mode,
            f_flags,
            f_op: 0xffff_ffff_8244_0000,
            sb_magic,
            name: name(dentry),
            read_ok: true,
            ..RawFd::default()
        }
    }

    const SOCKFS: u64 = 0x534f_434b;
    const PIPEFS: u64 = 0x5049_5045;
    const TMPFS: u64 = 0x0102_1994;
    const EXT4: u64 = 0xef53;

    fn sock(family: u16, ty: u16, protocol: u16, f_flags: u32) -> RawFd {
        RawFd {
            sock_family: family,
            sock_type: ty,
            sock_protocol: protocol,
            ..raw(0o140_777, f_flags, SOCKFS, "TCP")
        }
    }

    fn kind(r: &RawFd) -> FdKind {
        classify(r, None).kind
    }

    #[test]
    fn inode_types() {
        let cases = [
            (
                raw(0o100_644, 0o100_000, EXT4, "passwd"),
                FdKind::RegularFile,
            ),
            // memfd: a tmpfs regular file.
            (
                raw(0o100_777, 0o100_002, TMPFS, "memfd:x"),
                FdKind::RegularFile,
            ),
            (raw(0o040_755, 0o100_000, EXT4, "etc"), FdKind::Directory),
            (raw(0o010_600, 0, PIPEFS, ""), FdKind::Pipe),
            (raw(0o010_644, 0o104_002, EXT4, "fifo"), FdKind::Pipe),
            (raw(0o020_666, 0o100_000, TMPFS, "null"), FdKind::CharDevice),
            (raw(0o060_660, 0o100_000, TMPFS, "sda"), FdKind::BlockDevice),
            (raw(0o120_777, 0o010_100_000, EXT4, "link"), FdKind::Symlink),
            (raw(0o170_000, 0, EXT4, ""), FdKind::Unknown),
        ];
        for (r, want) in cases {
            assert_eq!(kind(&r), want, "{r:?}");
        }
    }

    #[test]
    fn anonymous_inodes_are_never_regular_files() {
        let anon = |n: &str| raw(0o600, 2, ANON_INODE_FS_MAGIC, n);
        let cases = [
            ("[eventfd]", FdKind::EventFd),
            ("[eventpoll]", FdKind::Epoll),
            ("[timerfd]", FdKind::TimerFd),
            ("[signalfd]", FdKind::SignalFd),
            ("inotify", FdKind::Inotify),
            ("[pidfd]", FdKind::PidFd),
            ("[io_uring]", FdKind::IoUring),
            ("[fanotify]", FdKind::OtherAnon),
            ("[userfaultfd]", FdKind::OtherAnon),
            ("", FdKind::OtherAnon),
        ];
        for (n, want) in cases {
            assert_eq!(kind(&anon(n)), want, "{n}");
            // The magic unread: the missing type bits still say anonymous.
            assert_eq!(kind(&raw(0o600, 2, 0, n)), want, "{n} without magic");
            // An anonymous inode whose internal mode says S_IFREG (pidfs
            // does; anon_inodefs was briefly meant to): the magic wins.
            assert_eq!(
                kind(&raw(0o100_600, 2, ANON_INODE_FS_MAGIC, n)),
                want,
                "{n}"
            );
        }
        // pidfs (6.9+): S_IFREG inside the kernel, dentry "/".
        assert_eq!(kind(&raw(0o100_700, 2, PID_FS_MAGIC, "/")), FdKind::PidFd);
    }

    #[test]
    fn sockets() {
        let cases = [
            (
                sock(2, 1, 6, 2),
                "TCP socket",
                SocketFamily::Inet,
                SocketType::Stream,
            ),
            (
                sock(10, 1, 6, 2),
                "TCP socket",
                SocketFamily::Inet6,
                SocketType::Stream,
            ),
            (
                sock(2, 2, 17, 2),
                "UDP socket",
                SocketFamily::Inet,
                SocketType::Dgram,
            ),
            (
                sock(2, 1, 262, 2),
                "MPTCP socket",
                SocketFamily::Inet,
                SocketType::Stream,
            ),
            (
                sock(2, 3, 255, 2),
                "raw IP socket",
                SocketFamily::Inet,
                SocketType::Raw,
            ),
            (
                sock(2, 2, 1, 2),
                "ICMP socket",
                SocketFamily::Inet,
                SocketType::Dgram,
            ),
            (
                sock(1, 1, 0, 2),
                "unix socket",
                SocketFamily::Unix,
                SocketType::Stream,
            ),
            (
                sock(1, 5, 0, 2),
                "unix socket",
                SocketFamily::Unix,
                SocketType::SeqPacket,
            ),
            (
                sock(16, 3, 0, 2),
                "netlink socket",
                SocketFamily::Netlink,
                SocketType::Raw,
            ),
            (
                sock(17, 10, 0, 2),
                "packet socket",
                SocketFamily::Packet,
                SocketType::Other(10),
            ),
            (
                sock(40, 1, 0, 2),
                "vsock socket",
                SocketFamily::Vsock,
                SocketType::Stream,
            ),
            (
                sock(38, 4, 0, 2),
                "socket",
                SocketFamily::Other(38),
                SocketType::Rdm,
            ),
            (
                sock(0, 0, 0, 2),
                "socket",
                SocketFamily::Other(0),
                SocketType::Other(0),
            ),
        ];
        for (r, label, family, ty) in cases {
            let info = classify(&r, None);
            assert_eq!(info.label(), label, "{r:?}");
            assert!(
                matches!(info.kind, FdKind::Socket { family: f, kind: k, .. } if f == family && k == ty),
                "{info:?}"
            );
        }
    }

    #[test]
    fn unreadable_is_unknown() {
        let r = RawFd {
            read_ok: false,
            ..raw(0o140_777, O_NONBLOCK, SOCKFS, "TCP")
        };
        let info = classify(&r, None);
        assert_eq!(info.kind, FdKind::Unknown);
        assert!(!info.nonblocking);
        assert_eq!(info.label(), "unknown");
        assert_eq!(info.netpoller_waits(), None);
    }

    #[test]
    fn nonblocking_flag_and_netpoller() {
        let tcp_nb = classify(&sock(2, 1, 6, 0o4002), None);
        assert!(tcp_nb.nonblocking);
        assert_eq!(tcp_nb.netpoller_waits(), Some(true));
        let tcp = classify(&sock(2, 1, 6, 2), None);
        assert!(!tcp.nonblocking);
        assert_eq!(tcp.netpoller_waits(), Some(false));
        // O_NONBLOCK on a regular file changes nothing: epoll refuses it.
        let file = classify(&raw(0o100_644, 0o104_000, EXT4, "f"), None);
        assert!(file.nonblocking);
        assert_eq!(file.netpoller_waits(), Some(false));
        let dir = classify(&raw(0o040_755, 0o104_000, EXT4, "d"), None);
        assert_eq!(dir.netpoller_waits(), Some(false));
        let pipe = classify(&raw(0o010_600, 0o4000, PIPEFS, ""), None);
        assert_eq!(pipe.netpoller_waits(), Some(true));
        let efd = classify(&raw(0o600, 0o4002, ANON_INODE_FS_MAGIC, "[eventfd]"), None);
        assert_eq!(
            (efd.label(), efd.netpoller_waits()),
            ("eventfd", Some(true))
        );
        let anon = classify(&raw(0o600, 0o4002, ANON_INODE_FS_MAGIC, "[fanotify]"), None);
        assert_eq!(anon.netpoller_waits(), None);
    }

    #[test]
    fn known_fops_decide() {
        let fops = FopsMap::from_pairs([
            (0x100, FopsKind::EventFd),
            (0x200, FopsKind::Socket),
            (0x300, FopsKind::PerfEvent),
        ]);
        // No magic, no name, no type bits: only f_op says eventfd.
        let mut r = raw(0o600, 0, 0, "");
        assert_eq!(classify(&r, None).kind, FdKind::OtherAnon);
        r.f_op = 0x100;
        assert_eq!(classify(&r, Some(&fops)).kind, FdKind::EventFd);
        let mut s = sock(2, 2, 17, 0);
        s.f_op = 0x200;
        assert_eq!(classify(&s, Some(&fops)).label(), "UDP socket");
        r.f_op = 0x300;
        assert_eq!(classify(&r, Some(&fops)).kind, FdKind::OtherAnon);
        // An unknown address falls back on the inode.
        r.f_op = 0x999;
        r.i_mode = 0o100_644;
        assert_eq!(classify(&r, Some(&fops)).kind, FdKind::RegularFile);
    }

    #[test]
    fn names_are_nul_terminated_or_full() {
        let mut r = raw(0o600, 0, 0, "[userfaultfd]");
        assert_eq!(r.name(), "[userfaultfd]");
        r.name = [b'x'; NAME_LEN];
        assert_eq!(r.name().len(), NAME_LEN);
        r.name = [0xff; NAME_LEN];
        assert_eq!(kind(&r), FdKind::OtherAnon);
    }

    #[test]
    fn serializes_snake_case() {
        let info = classify(&sock(2, 1, 6, 0o4002), None);
        let json = serde_json::to_value(info).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "fd": 3,
                "kind": {"socket": {"family": "inet", "kind": "stream", "protocol": 6}},
                "nonblocking": true,
                "label": "TCP socket",
                "netpoller_waits": true,
            })
        );
        let efd = classify(&raw(0o600, 0, ANON_INODE_FS_MAGIC, "[eventfd]"), None);
        let json = serde_json::to_value(efd).unwrap();
        assert_eq!(json["kind"], "eventfd");
        assert_eq!(json["netpoller_waits"], false);
        let unknown = serde_json::to_value(classify(&RawFd::default(), None)).unwrap();
        assert_eq!(unknown["kind"], "unknown");
        assert_eq!(unknown["netpoller_waits"], serde_json::Value::Null);
        let other = serde_json::to_value(FdKind::Socket {
            family: SocketFamily::Other(38),
            kind: SocketType::Other(9),
            protocol: 0,
        })
        .unwrap();
        assert_eq!(other["socket"]["family"]["other"], 38);
    }
}
