//! What a `struct file`'s `f_op` pointer means: the addresses of known
//! `file_operations` tables, read once from `/proc/kallsyms`.
//!
//! Two limits, both reported as [`FopsUnavailable`] rather than guessed
//! around:
//!
//! - without `CAP_SYSLOG` (or with `kptr_restrict` 2) every address reads
//!   as zero: [`FopsUnavailable::AddressesHidden`];
//! - a kernel built without `CONFIG_KALLSYMS_ALL` lists functions only, no
//!   data, so none of these tables is there:
//!   [`FopsUnavailable::NoDataSymbols`] (the 6.18 test machine is such a
//!   kernel). The file's kind then comes from the inode (`i_mode`, the
//!   file system's magic, the anonymous inode's name): see
//!   [`crate::analysis::fd`].
//!
//! Static tables can carry a compiler suffix (`eventfd_fops.llvm.123` with
//! clang LTO): the name before the first `.` is matched.

use std::{collections::HashMap, fs, io};

use serde::Serialize;

pub const KALLSYMS_PATH: &str = "/proc/kallsyms";

/// What a known `file_operations` table serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FopsKind {
    Socket,
    /// Pipes and FIFOs (FIFOs only from 6.15, when anonymous pipes got
    /// their own table).
    Pipe,
    #[serde(rename = "eventfd")]
    EventFd,
    Epoll,
    #[serde(rename = "timerfd")]
    TimerFd,
    #[serde(rename = "signalfd")]
    SignalFd,
    Inotify,
    Fanotify,
    #[serde(rename = "pidfd")]
    PidFd,
    IoUring,
    #[serde(rename = "userfaultfd")]
    UserfaultFd,
    BlockDevice,
    PerfEvent,
    BpfMap,
    BpfProg,
    BpfLink,
}

/// `file_operations` symbols and their meaning. Not every kernel has all
/// of them (configuration, version).
pub const KNOWN_FOPS: &[(&str, FopsKind)] = &[
    ("socket_file_ops", FopsKind::Socket),
    // FIFOs, and anonymous pipes before 6.15.
    ("pipefifo_fops", FopsKind::Pipe),
    // Anonymous pipes from 6.15.
    ("pipeanon_fops", FopsKind::Pipe),
    ("eventfd_fops", FopsKind::EventFd),
    ("eventpoll_fops", FopsKind::Epoll),
    ("timerfd_fops", FopsKind::TimerFd),
    ("signalfd_fops", FopsKind::SignalFd),
    ("inotify_fops", FopsKind::Inotify),
    ("fanotify_fops", FopsKind::Fanotify),
    // Before 6.9 (anonymous inode), then pidfs.
    ("pidfd_fops", FopsKind::PidFd),
    ("pidfs_file_operations", FopsKind::PidFd),
    ("io_uring_fops", FopsKind::IoUring),
    ("userfaultfd_fops", FopsKind::UserfaultFd),
    ("def_blk_fops", FopsKind::BlockDevice),
    ("perf_fops", FopsKind::PerfEvent),
    ("bpf_map_fops", FopsKind::BpfMap),
    ("bpf_prog_fops", FopsKind::BpfProg),
    ("bpf_link_fops", FopsKind::BpfLink),
    ("bpf_link_fops_poll", FopsKind::BpfLink),
];

/// Why `f_op` addresses cannot be named on this machine.
#[derive(Debug, thiserror::Error)]
pub enum FopsUnavailable {
    #[error(
        "kernel addresses are hidden in {KALLSYMS_PATH} (all zero): reading them needs root \
         (CAP_SYSLOG) and kernel.kptr_restrict below 2"
    )]
    AddressesHidden,
    #[error(
        "{KALLSYMS_PATH} lists no file_operations tables: the kernel was built without \
         CONFIG_KALLSYMS_ALL (functions only)"
    )]
    NoDataSymbols,
    #[error("cannot read {KALLSYMS_PATH}: {0}")]
    Read(#[source] io::Error),
}

/// Known `file_operations` addresses on the running kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FopsMap {
    by_addr: HashMap<u64, FopsKind>,
    /// `(symbol, address)` of what was found, for diagnostics.
    found: Vec<(&'static str, u64)>,
}

impl FopsMap {
    /// The map of `(symbol, address)` pairs as [`Self::found`] gives them
    /// (a recording's, from another kernel); unknown symbols are skipped.
    pub fn from_found<'a>(found: impl IntoIterator<Item = (&'a str, u64)>) -> Self {
        let mut map = Self::default();
        for (name, addr) in found {
            if let Some(&(symbol, kind)) = KNOWN_FOPS.iter().find(|(s, _)| *s == name) {
                map.by_addr.insert(addr, kind);
                map.found.push((symbol, addr));
            }
        }
        map
    }

    /// The known symbols found and their addresses.
    pub fn found(&self) -> &[(&'static str, u64)] {
        &self.found
    }

    /// Reads `/proc/kallsyms`.
    pub fn load() -> Result<Self, FopsUnavailable> {
        let text = fs::read_to_string(KALLSYMS_PATH).map_err(FopsUnavailable::Read)?;
        Self::parse(&text)
    }

    /// Parses the text of `/proc/kallsyms` (`ADDRESS TYPE NAME [MODULE]`
    /// lines). Never maps an address it is not sure of: all-zero addresses
    /// are refused whole.
    pub fn parse(text: &str) -> Result<Self, FopsUnavailable> {
        let mut map = Self::default();
        let mut any_address = false;
        for line in text.lines() {
            let mut cols = line.split_whitespace();
            let (Some(addr), Some(_type), Some(name)) = (cols.next(), cols.next(), cols.next())
            else {
                continue;
            };
            let Ok(addr) = u64::from_str_radix(addr, 16) else {
                continue;
            };
            if addr == 0 {
                continue;
            }
            any_address = true;
            let base = name.split('.').next().unwrap_or(name);
            if let Some(&(symbol, kind)) = KNOWN_FOPS.iter().find(|(s, _)| *s == base) {
                map.by_addr.insert(addr, kind);
                map.found.push((symbol, addr));
            }
        }
        if !any_address {
            return Err(FopsUnavailable::AddressesHidden);
        }
        if map.by_addr.is_empty() {
            return Err(FopsUnavailable::NoDataSymbols);
        }
        Ok(map)
    }

    /// A map from known pairs (addresses learnt another way).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u64, FopsKind)>) -> Self {
        let mut map = Self::default();
        for (addr, kind) in pairs {
            if addr != 0 {
                map.by_addr.insert(addr, kind);
            }
        }
        map
    }

    /// What the table at `f_op` serves, when it is a known one.
    pub fn kind(&self, f_op: u64) -> Option<FopsKind> {
        self.by_addr.get(&f_op).copied()
    }

    /// The symbols found, with their addresses, in file order.
    pub fn symbols(&self) -> &[(&'static str, u64)] {
        &self.found
    }

    pub fn len(&self) -> usize {
        self.by_addr.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_addr.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _stext
ffffffff8244b160 d pipefifo_fops
ffffffff8244b280 d pipeanon_fops
ffffffff8244ed40 r eventfd_fops.llvm.8812
ffffffff824e9120 R socket_file_ops
ffffffffc0a01000 d fuse_file_operations\t[fuse]
ffffffff824e9200 t socket_file_ops_helper
garbage line
";

    #[test]
    fn maps_known_tables() {
        let map = FopsMap::parse(SAMPLE).unwrap();
        assert_eq!(map.len(), 4);
        assert_eq!(map.kind(0xffff_ffff_824e_9120), Some(FopsKind::Socket));
        assert_eq!(map.kind(0xffff_ffff_8244_b160), Some(FopsKind::Pipe));
        assert_eq!(map.kind(0xffff_ffff_8244_b280), Some(FopsKind::Pipe));
        assert_eq!(map.kind(0xffff_ffff_8244_ed40), Some(FopsKind::EventFd));
        assert_eq!(map.kind(0xffff_ffff_824e_9200), None);
        assert_eq!(map.kind(0), None);
        assert_eq!(map.symbols()[0], ("pipefifo_fops", 0xffff_ffff_8244_b160));
    }

    #[test]
    fn hidden_addresses_are_unknown_not_wrong() {
        let hidden = SAMPLE
            .lines()
            .filter_map(|l| Some(format!("0000000000000000{}\n", l.get(16..)?)))
            .collect::<String>();
        assert!(matches!(
            FopsMap::parse(&hidden),
            Err(FopsUnavailable::AddressesHidden)
        ));
        assert!(matches!(
            FopsMap::parse(""),
            Err(FopsUnavailable::AddressesHidden)
        ));
        let e = FopsMap::parse(&hidden).unwrap_err().to_string();
        assert!(e.contains("CAP_SYSLOG"), "{e}");
    }

    #[test]
    fn functions_only_is_reported() {
        let text = "ffffffff81000000 T _stext\nffffffff81000010 t sock_read_iter\n";
        let e = FopsMap::parse(text).unwrap_err();
        assert!(matches!(e, FopsUnavailable::NoDataSymbols), "{e}");
        assert!(e.to_string().contains("CONFIG_KALLSYMS_ALL"));
    }

    #[test]
    fn from_pairs_skips_zero() {
        let map = FopsMap::from_pairs([(0, FopsKind::Socket), (0x10, FopsKind::Epoll)]);
        assert_eq!(map.len(), 1);
        assert_eq!(map.kind(0x10), Some(FopsKind::Epoll));
    }

    /// This machine's kallsyms: as root, the socket and pipe tables are
    /// found, unless the kernel lists no data symbols at all.
    #[test]
    fn live_kallsyms() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: reading kernel addresses needs root");
            return;
        }
        let text = match fs::read_to_string(KALLSYMS_PATH) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("skipped: cannot read {KALLSYMS_PATH}: {e}");
                return;
            }
        };
        match FopsMap::parse(&text) {
            Ok(map) => {
                let kinds: Vec<_> = map.symbols().iter().map(|(s, _)| *s).collect();
                eprintln!("found: {kinds:?}");
                assert!(kinds.contains(&"socket_file_ops"), "{kinds:?}");
                assert!(kinds.contains(&"pipefifo_fops"), "{kinds:?}");
            }
            Err(FopsUnavailable::NoDataSymbols) => {
                // Check independently: no data object symbols at all, only
                // the linker's section markers.
                let data_objects = text
                    .lines()
                    .filter(|l| {
                        let mut c = l.split_whitespace().skip(1);
                        let (Some(ty), Some(name)) = (c.next(), c.next()) else {
                            return false;
                        };
                        matches!(ty, "d" | "D" | "r" | "R")
                            && !name.starts_with("__start")
                            && !name.starts_with("__stop")
                    })
                    .count();
                assert!(
                    data_objects < 100,
                    "{data_objects} data symbols but no file_operations table"
                );
                eprintln!(
                    "skipped: this kernel lists no data symbols (CONFIG_KALLSYMS_ALL off; \
                     {data_objects} besides section markers)"
                );
            }
            Err(e) => panic!("{e}"),
        }
    }
}
