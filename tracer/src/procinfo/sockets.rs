//! The process's sockets: network waits park in the netpoller, so many
//! sockets with few threads is the healthy shape.

use std::{collections::HashSet, fs};

use super::ProcError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketCounts {
    pub total: u64,
    pub tcp_established: u64,
    pub tcp_listen: u64,
}

pub fn count(pid: u32) -> Result<SocketCounts, ProcError> {
    let dir = format!("/proc/{pid}/fd");
    let entries = fs::read_dir(&dir).map_err(|source| ProcError::Read { path: dir, source })?;
    let inodes: HashSet<u64> = entries
        .filter_map(|e| {
            let link = fs::read_link(e.ok()?.path()).ok()?;
            let link = link.to_str()?;
            link.strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let mut counts = SocketCounts {
        total: inodes.len() as u64,
        ..SocketCounts::default()
    };
    for table in ["tcp", "tcp6"] {
        if let Ok(text) = fs::read_to_string(format!("/proc/{pid}/net/{table}")) {
            for (state, inode) in parse_tcp(&text) {
                if inodes.contains(&inode) {
                    match state {
                        0x01 => counts.tcp_established += 1,
                        0x0a => counts.tcp_listen += 1,
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(counts)
}

/// `(state, inode)` of every row of /proc/net/tcp{,6}.
pub fn parse_tcp(text: &str) -> impl Iterator<Item = (u8, u64)> + '_ {
    text.lines().skip(1).filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        Some((
            u8::from_str_radix(f.get(3)?, 16).ok()?,
            f.get(9)?.parse().ok()?,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_table_and_own_sockets() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
                    0: 0100007F:A1B2 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 43210 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(parse_tcp(text).collect::<Vec<_>>(), vec![(0x0a, 43210)]);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = count(std::process::id()).unwrap();
        assert!(c.total >= 1 && c.tcp_listen >= 1, "{c:?}");
        drop(listener);
    }
}
