//! A process's sockets: how many file descriptors are sockets, and its TCP
//! sockets by state.
//!
//! Cheap enough for a diagnostics command: one `readlink` per open file
//! descriptor, and for the TCP states one pass over `/proc/PID/net/tcp` and
//! `tcp6` (the tables of the process's network namespace, one line per
//! socket in it, so this grows with the namespace's connections).

use std::{
    collections::{BTreeMap, HashSet},
    fs,
};

use super::{Owner, Result, map_io, pid_path, read_optional, read_pid_file};

/// A TCP state, as numbered in `include/net/tcp_states.h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TcpState {
    Established,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
    /// A number this table does not know.
    Other(u8),
}

impl TcpState {
    /// The state for the hex `st` column of `/proc/net/tcp`.
    pub fn from_code(code: u8) -> Self {
        match code {
            0x01 => Self::Established,
            0x02 => Self::SynSent,
            0x03 => Self::SynRecv,
            0x04 => Self::FinWait1,
            0x05 => Self::FinWait2,
            0x06 => Self::TimeWait,
            0x07 => Self::Close,
            0x08 => Self::CloseWait,
            0x09 => Self::LastAck,
            0x0A => Self::Listen,
            0x0B => Self::Closing,
            0x0C => Self::NewSynRecv,
            other => Self::Other(other),
        }
    }

    /// The name `ss` prints (`ESTAB`, `LISTEN`...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Established => "ESTAB",
            Self::SynSent => "SYN-SENT",
            Self::SynRecv => "SYN-RECV",
            Self::FinWait1 => "FIN-WAIT-1",
            Self::FinWait2 => "FIN-WAIT-2",
            Self::TimeWait => "TIME-WAIT",
            Self::Close => "UNCONN",
            Self::CloseWait => "CLOSE-WAIT",
            Self::LastAck => "LAST-ACK",
            Self::Listen => "LISTEN",
            Self::Closing => "CLOSING",
            Self::NewSynRecv => "NEW-SYN-RECV",
            Self::Other(_) => "UNKNOWN",
        }
    }
}

/// The inode numbers of `pid`'s socket file descriptors (links
/// `socket:[INODE]` in `/proc/PID/fd`), in fd order. Needs ptrace access to
/// the process (root, or the same user). Descriptors closed while this
/// runs are skipped.
pub fn socket_inodes(pid: u32) -> Result<Vec<u64>> {
    let dir = pid_path(pid, "fd");
    let entries = fs::read_dir(&dir).map_err(|e| map_io(&dir, Owner::Process(pid), e))?;
    let mut fds: Vec<(u32, u64)> = entries
        .flatten()
        .filter_map(|entry| {
            let fd = entry.file_name().to_str()?.parse().ok()?;
            let target = fs::read_link(entry.path()).ok()?;
            Some((fd, parse_socket_link(target.to_str()?)?))
        })
        .collect();
    fds.sort_unstable();
    Ok(fds.into_iter().map(|(_, inode)| inode).collect())
}

/// How many of `pid`'s file descriptors are sockets (of any family).
pub fn socket_count(pid: u32) -> Result<usize> {
    socket_inodes(pid).map(|i| i.len())
}

/// `pid`'s TCP sockets (IPv4 and IPv6) by state. Sockets of other families
/// are not counted.
pub fn tcp_sockets_by_state(pid: u32) -> Result<BTreeMap<TcpState, usize>> {
    tcp_states_of(pid, &socket_inodes(pid)?)
}

/// [`tcp_sockets_by_state`] for the socket inodes already read.
pub fn tcp_states_of(pid: u32, inodes: &[u64]) -> Result<BTreeMap<TcpState, usize>> {
    let ours: HashSet<u64> = inodes.iter().copied().collect();
    let mut states = BTreeMap::new();
    let tcp = read_pid_file(pid, "net/tcp")?;
    // A kernel without IPv6 has no tcp6.
    let tcp6 = read_optional(&pid_path(pid, "net/tcp6"))?.unwrap_or_default();
    for text in [tcp, tcp6] {
        for (inode, state) in parse_tcp_table(&text) {
            if ours.contains(&inode) {
                *states.entry(state).or_insert(0) += 1;
            }
        }
    }
    Ok(states)
}

/// The inode of a `socket:[12345]` link target.
fn parse_socket_link(target: &str) -> Option<u64> {
    target
        .strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// `(inode, state)` of each well-formed line of `/proc/net/tcp` or `tcp6`
/// (`sl local remote st tx:rx tr:when retrnsmt uid timeout inode ...`);
/// the header and odd lines are skipped.
fn parse_tcp_table(text: &str) -> impl Iterator<Item = (u64, TcpState)> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
        let inode = fields.get(9)?.parse().ok()?;
        Some((inode, TcpState::from_code(state)))
    })
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// `/proc/PID/net/tcp` with a listener, a connected pair and another
    /// process's listener.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60 1 00000000708ae8a6 100 0 0 10 0                        
   1: 0100007F:D99B 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 314287 1 000000006ee1751e 100 0 0 10 0                    
   2: 0100007F:E1E6 0100007F:D99B 01 00000000:00000000 00:00000000 00000000     0        0 314288 2 00000000d6987b47 20 0 0 10 -1                    
   3: 0100007F:D99B 0100007F:E1E6 01 00000000:00000000 00:00000000 00000000     0        0 314289 1 0000000042ccc9b1 20 0 0 10 -1                    
";

    /// `/proc/PID/net/tcp6` with a listener, and a TIME-WAIT line as
    /// `get_timewait6_sock` prints it (no uid, no inode).
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:BD5F 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 314290 1 00000000f7285ec3 100 0 0 10 0
   1: 00000000000000000000000001000000:BD5F 00000000000000000000000001000000:9C40 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000
";

    #[test]
    fn parses_tcp_tables() {
        let v4: Vec<_> = parse_tcp_table(TCP).collect();
        assert_eq!(
            v4,
            [
                (60, TcpState::Listen),
                (314_287, TcpState::Listen),
                (314_288, TcpState::Established),
                (314_289, TcpState::Established),
            ]
        );
        let v6: Vec<_> = parse_tcp_table(TCP6).collect();
        // TIME-WAIT sockets have no inode (0): they belong to no process.
        assert_eq!(v6, [(314_290, TcpState::Listen), (0, TcpState::TimeWait)]);
        assert_eq!(parse_tcp_table("").count(), 0);
        assert_eq!(parse_tcp_table("header\n   0: short line\n").count(), 0);
    }

    #[test]
    fn names_states() {
        assert_eq!(TcpState::from_code(0x0A), TcpState::Listen);
        assert_eq!(TcpState::from_code(0x0A).name(), "LISTEN");
        assert_eq!(TcpState::from_code(0x01).name(), "ESTAB");
        assert_eq!(TcpState::from_code(0x42), TcpState::Other(0x42));
    }

    #[test]
    fn parses_socket_links() {
        assert_eq!(parse_socket_link("socket:[314287]"), Some(314_287));
        assert_eq!(parse_socket_link("pipe:[314268]"), None);
        assert_eq!(parse_socket_link("/dev/null"), None);
        assert_eq!(parse_socket_link("socket:[x]"), None);
        assert_eq!(parse_socket_link("socket:[12"), None);
    }

    #[test]
    fn counts_own_tcp_sockets() {
        let pid = std::process::id();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        // Tests run in parallel threads, so other sockets may come and go;
        // ours are there while held.
        assert!(socket_count(pid).unwrap() >= 3);
        let states = tcp_sockets_by_state(pid).unwrap();
        assert!(
            states.get(&TcpState::Listen).copied().unwrap_or(0) >= 1,
            "{states:?}"
        );
        assert!(
            states.get(&TcpState::Established).copied().unwrap_or(0) >= 2,
            "{states:?}"
        );
        drop((client, server, listener));
    }
}
