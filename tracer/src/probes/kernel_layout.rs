//! The byte offsets of the kernel struct members the kernel programs read
//! (without CO-RE, they cannot find them themselves), taken from the running
//! kernel's BTF at load time and handed over as
//! [`tracer_common::KernelOffsets`].
//!
//! The walks they serve:
//!
//! - a descriptor: `task_struct.files` → `files_struct.fdt` →
//!   `fdtable.fd[fd]` (bounded by `fdtable.max_fds`) → `struct file`:
//!   `f_inode` → `inode.i_mode` (and `i_sb` → `super_block.s_magic`),
//!   `f_flags`, `f_mode`, `f_op`, `f_path.dentry` → `dentry.d_name.name`
//!   (the class name of an anonymous inode, such as `[eventfd]`);
//! - a socket: `file.private_data` → `socket.sk` → `sock.__sk_common.
//!   skc_family`, `sock.sk_type`, `sock.sk_protocol` (also `socket.type`);
//! - thread exit: `task_struct.signal` → `signal_struct.live` (0 once the
//!   whole process has ended) and `task_struct.start_time` (tells the ended
//!   process's threads from those of a process that reuses its PID).
//!
//! Each member's size is checked too, so a kernel where one changed type
//! (e.g. `sk_protocol`, a bitfield before 5.6) is refused rather than read
//! wrongly. On 6.18 none of these is a bitfield; `file.f_path` and
//! `dentry.d_name` sit in anonymous unions with their writable aliases
//! (`__f_path`, `__d_name`), which share their bytes (see [`FIELDS`] and the
//! live test).

use tracer_common::KernelOffsets;

use super::btf::{Btf, BtfError, Member};

/// One member the kernel programs read.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    /// The struct, as named in BTF (`task_struct`).
    pub ty: &'static str,
    /// The member, dotted for nested members (`__sk_common.skc_family`).
    pub member: &'static str,
    /// The size in bytes the kernel programs read it as.
    pub size: u64,
    /// Where its offset goes in what the kernel programs receive.
    pub slot: fn(&mut KernelOffsets) -> &mut u32,
}

impl FieldSpec {
    const fn new(
        ty: &'static str,
        member: &'static str,
        size: u64,
        slot: fn(&mut KernelOffsets) -> &mut u32,
    ) -> Self {
        Self {
            ty,
            member,
            size,
            slot,
        }
    }

    /// `struct.member`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.ty, self.member)
    }
}

const PTR: u64 = 8;

pub const TASK_FILES: FieldSpec =
    FieldSpec::new("task_struct", "files", PTR, |k| &mut k.task_files);
pub const FILES_FDT: FieldSpec = FieldSpec::new("files_struct", "fdt", PTR, |k| &mut k.files_fdt);
pub const FDT_MAX_FDS: FieldSpec = FieldSpec::new("fdtable", "max_fds", 4, |k| &mut k.fdt_max_fds);
pub const FDT_FD: FieldSpec = FieldSpec::new("fdtable", "fd", PTR, |k| &mut k.fdt_fd);
pub const FILE_F_INODE: FieldSpec = FieldSpec::new("file", "f_inode", PTR, |k| &mut k.file_f_inode);
pub const FILE_F_FLAGS: FieldSpec = FieldSpec::new("file", "f_flags", 4, |k| &mut k.file_f_flags);
pub const FILE_F_MODE: FieldSpec = FieldSpec::new("file", "f_mode", 4, |k| &mut k.file_f_mode);
pub const FILE_F_OP: FieldSpec = FieldSpec::new("file", "f_op", PTR, |k| &mut k.file_f_op);
pub const FILE_PRIVATE_DATA: FieldSpec =
    FieldSpec::new("file", "private_data", PTR, |k| &mut k.file_private_data);
pub const FILE_F_PATH_DENTRY: FieldSpec =
    FieldSpec::new("file", "f_path.dentry", PTR, |k| &mut k.file_f_path_dentry);
pub const INODE_I_MODE: FieldSpec = FieldSpec::new("inode", "i_mode", 2, |k| &mut k.inode_i_mode);
pub const INODE_I_SB: FieldSpec = FieldSpec::new("inode", "i_sb", PTR, |k| &mut k.inode_i_sb);
pub const SB_S_MAGIC: FieldSpec =
    FieldSpec::new("super_block", "s_magic", 8, |k| &mut k.sb_s_magic);
pub const DENTRY_D_NAME_NAME: FieldSpec =
    FieldSpec::new("dentry", "d_name.name", PTR, |k| &mut k.dentry_d_name_name);
pub const SOCKET_SK: FieldSpec = FieldSpec::new("socket", "sk", PTR, |k| &mut k.socket_sk);
pub const SOCKET_TYPE: FieldSpec = FieldSpec::new("socket", "type", 2, |k| &mut k.socket_type);
pub const SOCK_FAMILY: FieldSpec =
    FieldSpec::new("sock", "__sk_common.skc_family", 2, |k| &mut k.sock_family);
pub const SOCK_TYPE: FieldSpec = FieldSpec::new("sock", "sk_type", 2, |k| &mut k.sock_type);
pub const SOCK_PROTOCOL: FieldSpec =
    FieldSpec::new("sock", "sk_protocol", 2, |k| &mut k.sock_protocol);
pub const TASK_SIGNAL: FieldSpec =
    FieldSpec::new("task_struct", "signal", PTR, |k| &mut k.task_signal);
/// `u64`: CLOCK_MONOTONIC nanoseconds at the task's creation (the clock of
/// `bpf_ktime_get_ns`).
pub const TASK_START_TIME: FieldSpec =
    FieldSpec::new("task_struct", "start_time", 8, |k| &mut k.task_start_time);
/// `atomic_t`: the group's threads not yet exiting.
pub const SIGNAL_LIVE: FieldSpec =
    FieldSpec::new("signal_struct", "live", 4, |k| &mut k.signal_live);

/// Every member the kernel programs read.
pub const FIELDS: [FieldSpec; 22] = [
    TASK_FILES,
    FILES_FDT,
    FDT_MAX_FDS,
    FDT_FD,
    FILE_F_INODE,
    FILE_F_FLAGS,
    FILE_F_MODE,
    FILE_F_OP,
    FILE_PRIVATE_DATA,
    FILE_F_PATH_DENTRY,
    INODE_I_MODE,
    INODE_I_SB,
    SB_S_MAGIC,
    DENTRY_D_NAME_NAME,
    SOCKET_SK,
    SOCKET_TYPE,
    SOCK_FAMILY,
    SOCK_TYPE,
    SOCK_PROTOCOL,
    TASK_SIGNAL,
    SIGNAL_LIVE,
    TASK_START_TIME,
];

#[derive(Debug, thiserror::Error)]
pub enum KernelLayoutError {
    #[error(transparent)]
    Btf(#[from] BtfError),
    #[error("cannot locate `{path}` in the kernel's BTF: {source}")]
    Field {
        path: String,
        #[source]
        source: BtfError,
    },
    #[error(
        "`{path}` is {found} bytes on this kernel, but the tracer reads {expected}: this \
         kernel's layout is not supported (please report it with `uname -r`)"
    )]
    Size {
        path: String,
        expected: u64,
        found: u64,
    },
}

/// Byte offsets of the members the kernel programs read, from this
/// kernel's BTF, as the kernel programs receive them (`enabled` 1). Each
/// is from the start of the named struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    pub offsets: KernelOffsets,
}

/// One member found in BTF, for diagnostics.
#[derive(Clone, Debug)]
pub struct FieldReport {
    pub spec: FieldSpec,
    pub member: Result<Member, String>,
}

impl KernelLayout {
    /// Reads `/sys/kernel/btf/vmlinux`.
    pub fn load() -> Result<Self, KernelLayoutError> {
        Self::from_btf(&Btf::load_vmlinux()?)
    }

    pub fn from_btf(btf: &Btf) -> Result<Self, KernelLayoutError> {
        let mut offsets = KernelOffsets {
            enabled: 1,
            ..KernelOffsets::default()
        };
        for spec in &FIELDS {
            *(spec.slot)(&mut offsets) = offset(btf, spec)?;
        }
        Ok(Self { offsets })
    }

    /// The offsets in [`FIELDS`] order.
    pub fn offsets(&self) -> [u32; FIELDS.len()] {
        let mut k = self.offsets;
        FIELDS.map(|spec| *(spec.slot)(&mut k))
    }

    /// What the kernel programs receive.
    pub fn to_kernel(&self) -> KernelOffsets {
        self.offsets
    }

    /// Each member as BTF describes it (bitfield, in a union, size), or why
    /// it was not found: for diagnostics and tests.
    pub fn report(btf: &Btf) -> Vec<FieldReport> {
        FIELDS
            .iter()
            .map(|spec| FieldReport {
                spec: *spec,
                member: btf.member(&spec.path()).map_err(|e| e.to_string()),
            })
            .collect()
    }
}

fn offset(btf: &Btf, spec: &FieldSpec) -> Result<u32, KernelLayoutError> {
    let path = spec.path();
    let field = |source| KernelLayoutError::Field {
        path: path.clone(),
        source,
    };
    let member = btf.member(&path).map_err(field)?;
    let off = member.byte_offset().map_err(field)?;
    match member.size {
        Some(found) if found == spec.size => Ok(off),
        found => Err(KernelLayoutError::Size {
            path,
            expected: spec.size,
            found: found.unwrap_or(0),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashMap, process::Command};

    use super::*;
    use crate::probes::btf::tests::{Builder, live};

    /// Variations of the kernel built by [`fake_kernel`].
    #[derive(Clone, Copy)]
    struct Fake {
        /// `sk_protocol` as the pre-5.6 8-bit bitfield.
        protocol_bitfield: bool,
        /// Bytes of `inode.i_mode`.
        i_mode_size: u32,
        /// Leave `struct fdtable` out.
        no_fdtable: bool,
    }

    const FAKE: Fake = Fake {
        protocol_bitfield: false,
        i_mode_size: 2,
        no_fdtable: false,
    };

    /// A BTF blob with the structs [`KernelLayout`] reads, laid out like
    /// 6.18's (offsets in bytes below; BTF wants bits).
    fn fake_kernel(f: Fake) -> Vec<u8> {
        let mut b = Builder::new();
        let u8_ = b.int("u8", 1);
        let u16_ = b.int("u16", 2);
        let u32_ = b.int("unsigned int", 4);
        let u64_ = b.int("long unsigned int", 8);
        let umode = b.int("umode_t", f.i_mode_size);
        let ptr = b.ptr(0);
        let fmode_t = b.typedef("fmode_t", u32_);
        let s = |b: &mut Builder, name: &str, size: u32, members: &[(&str, u32, u32)]| {
            let bits: Vec<_> = members.iter().map(|&(n, t, off)| (n, t, off * 8)).collect();
            b.composite(name, false, size, false, &bits)
        };
        s(
            &mut b,
            "task_struct",
            64,
            &[
                ("files", ptr, 16),
                ("signal", ptr, 24),
                ("start_time", u64_, 40),
            ],
        );
        s(&mut b, "files_struct", 64, &[("fdt", ptr, 32)]);
        if !f.no_fdtable {
            s(
                &mut b,
                "fdtable",
                56,
                &[("max_fds", u32_, 0), ("fd", ptr, 8)],
            );
        }
        let path = s(&mut b, "path", 16, &[("mnt", ptr, 0), ("dentry", ptr, 8)]);
        let cpath = b.raw("", 10, false, 0, path, &[]);
        let u = b.composite(
            "",
            true,
            16,
            false,
            &[("f_path", cpath, 0), ("__f_path", path, 0)],
        );
        s(
            &mut b,
            "file",
            184,
            &[
                ("f_mode", fmode_t, 4),
                ("f_op", ptr, 8),
                ("private_data", ptr, 24),
                ("f_inode", ptr, 32),
                ("f_flags", u32_, 40),
                ("", u, 64),
            ],
        );
        s(
            &mut b,
            "inode",
            64,
            &[("i_mode", umode, 0), ("i_sb", ptr, 40)],
        );
        s(&mut b, "super_block", 128, &[("s_magic", u64_, 96)]);
        let hl = b.composite("", true, 8, false, &[("hash_len", u64_, 0)]);
        let qstr = s(&mut b, "qstr", 16, &[("", hl, 0), ("name", ptr, 8)]);
        let cq = b.raw("", 10, false, 0, qstr, &[]);
        let dn = b.composite(
            "",
            true,
            16,
            false,
            &[("__d_name", qstr, 0), ("d_name", cq, 0)],
        );
        s(&mut b, "dentry", 64, &[("", dn, 32)]);
        s(&mut b, "socket", 128, &[("type", u16_, 4), ("sk", ptr, 24)]);
        let common = s(&mut b, "sock_common", 136, &[("skc_family", u16_, 16)]);
        if f.protocol_bitfield {
            b.composite(
                "sock",
                false,
                784,
                true,
                &[
                    ("__sk_common", common, 0),
                    ("sk_protocol", u8_, (8 << 24) | (532 * 8)),
                    ("sk_type", u16_, 534 * 8),
                ],
            );
        } else {
            s(
                &mut b,
                "sock",
                784,
                &[
                    ("__sk_common", common, 0),
                    ("sk_protocol", u16_, 532),
                    ("sk_type", u16_, 534),
                ],
            );
        }
        // `atomic_t`: a typedef of an anonymous struct of one int.
        let counter = b.composite("", false, 4, false, &[("counter", u32_, 0)]);
        let atomic_t = b.typedef("atomic_t", counter);
        s(&mut b, "signal_struct", 1024, &[("live", atomic_t, 4)]);
        b.build()
    }

    fn layout(f: Fake) -> Result<KernelLayout, KernelLayoutError> {
        KernelLayout::from_btf(&Btf::parse(&fake_kernel(f)).unwrap())
    }

    #[test]
    fn reads_every_offset() {
        let l = layout(FAKE).unwrap();
        let expected = [
            16, 32, 0, 8, 32, 40, 4, 8, 24, 72, 0, 40, 96, 40, 24, 4, 16, 534, 532, 24, 4, 40,
        ];
        assert_eq!(l.offsets(), expected);
        let k = l.to_kernel();
        assert_eq!(k.enabled, 1);
        assert_eq!((k.file_f_path_dentry, k.dentry_d_name_name), (72, 40));
        assert_eq!(
            (k.sock_family, k.sock_type, k.sock_protocol),
            (16, 534, 532)
        );
        assert_eq!((k.signal_live, k.task_start_time), (4, 40));
    }

    #[test]
    fn errors_say_which_member() {
        let e = layout(Fake {
            no_fdtable: true,
            ..FAKE
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("fdtable.max_fds") && e.contains("no struct or union named `fdtable`"),
            "{e}"
        );

        let e = layout(Fake {
            protocol_bitfield: true,
            ..FAKE
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("sock.sk_protocol") && e.contains("bitfield"),
            "{e}"
        );

        let e = layout(Fake {
            i_mode_size: 4,
            ..FAKE
        })
        .unwrap_err();
        assert!(
            matches!(&e, KernelLayoutError::Size { path, expected: 2, found: 4 } if path == "inode.i_mode"),
            "{e}"
        );
    }

    #[test]
    fn report_marks_unions() {
        let btf = Btf::parse(&fake_kernel(FAKE)).unwrap();
        let report = KernelLayout::report(&btf);
        assert_eq!(report.len(), FIELDS.len());
        let in_union: Vec<String> = report
            .iter()
            .filter(|r| r.member.as_ref().is_ok_and(|m| m.in_union))
            .map(|r| r.spec.path())
            .collect();
        assert_eq!(in_union, ["file.f_path.dentry", "dentry.d_name.name"]);
    }

    /// The running kernel: every member found, none a bitfield; prints what
    /// sits in a union.
    #[test]
    fn live_kernel_has_every_member() {
        let Some(btf) = live() else { return };
        let layout = KernelLayout::from_btf(&btf).unwrap();
        for r in KernelLayout::report(&btf) {
            let path = r.spec.path();
            let m = match &r.member {
                Ok(m) => m,
                Err(e) => panic!("{path}: {e}"),
            };
            assert_eq!(m.bitfield_bits, None, "{path} is a bitfield");
            assert_eq!(m.size, Some(r.spec.size), "{path}");
            eprintln!(
                "{path}: offset {} size {}{}",
                m.bit_offset / 8,
                r.spec.size,
                if m.in_union { " (in a union)" } else { "" }
            );
        }
        assert!(layout.offsets.fdt_fd > layout.offsets.fdt_max_fds);
    }

    /// The offsets against an independent decoder of the same BTF: bpftool's
    /// (libbpf's) raw dump.
    #[test]
    fn live_kernel_matches_bpftool() {
        let Some(btf) = live() else { return };
        let out = match Command::new("bpftool")
            .args([
                "btf",
                "dump",
                "file",
                crate::probes::btf::VMLINUX_PATH,
                "format",
                "raw",
            ])
            .output()
        {
            Ok(out) if out.status.success() => out,
            Ok(out) => {
                eprintln!(
                    "skipped: bpftool failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                return;
            }
            Err(e) => {
                eprintln!(
                    "skipped: bpftool is not installed ({e}); `cargo xtask setup` installs it"
                );
                return;
            }
        };
        let dump = Dump::parse(&String::from_utf8_lossy(&out.stdout));
        let layout = KernelLayout::from_btf(&btf).unwrap();
        for (spec, ours) in FIELDS.iter().zip(layout.offsets()) {
            let theirs = dump.offset(spec.ty, spec.member);
            let ours = Some(u64::from(ours) * 8);
            assert_eq!(ours, theirs, "{} (bits)", spec.path());
        }
    }

    /// The parts of `bpftool btf dump format raw` a member lookup needs.
    struct Dump {
        /// id → (kind, name, referenced type id).
        types: HashMap<u32, (String, String, u32)>,
        /// id → members `(name, type id, bit offset, bitfield size)`.
        members: HashMap<u32, Vec<(String, u32, u64, u32)>>,
    }

    impl Dump {
        fn parse(text: &str) -> Self {
            let mut types = HashMap::new();
            let mut members: HashMap<u32, Vec<_>> = HashMap::new();
            let mut current = None;
            let field = |line: &str, key: &str| -> Option<u64> {
                let at = line.find(&format!(" {key}="))? + key.len() + 2;
                line[at..].split_whitespace().next()?.parse().ok()
            };
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix('[') {
                    let (id, rest) = rest.split_once("] ").unwrap();
                    let id: u32 = id.parse().unwrap();
                    let (kind, rest) = rest.split_once(' ').unwrap();
                    let name = rest.split('\'').nth(1).unwrap_or("").to_owned();
                    let to = field(line, "type_id").unwrap_or(0) as u32;
                    types.insert(id, (kind.to_owned(), name, to));
                    current = matches!(kind, "STRUCT" | "UNION").then_some(id);
                } else if let (Some(id), Some(rest)) = (current, line.strip_prefix("\t'")) {
                    let name = rest.split('\'').next().unwrap().to_owned();
                    let ty = field(line, "type_id").unwrap() as u32;
                    let off = field(line, "bits_offset").unwrap();
                    let bits = field(line, "bitfield_size").unwrap_or(0) as u32;
                    members.entry(id).or_default().push((name, ty, off, bits));
                }
            }
            Self { types, members }
        }

        fn resolve(&self, mut id: u32) -> u32 {
            while let Some((kind, _, to)) = self.types.get(&id) {
                if !matches!(
                    kind.as_str(),
                    "TYPEDEF" | "CONST" | "VOLATILE" | "RESTRICT" | "TYPE_TAG"
                ) {
                    break;
                }
                id = *to;
            }
            id
        }

        /// Bit offset of `name` in composite `id`, through anonymous members.
        fn find(&self, id: u32, name: &str) -> Option<(u64, u32)> {
            for (n, ty, off, bits) in self.members.get(&self.resolve(id))? {
                if n == name {
                    return (*bits == 0).then_some((*off, *ty));
                }
                if n == "(anon)"
                    && let Some((inner, t)) = self.find(*ty, name)
                {
                    return Some((off + inner, t));
                }
            }
            None
        }

        fn offset(&self, ty: &str, path: &str) -> Option<u64> {
            let (id, _) = self
                .types
                .iter()
                .find(|(_, (kind, name, _))| kind == "STRUCT" && name == ty)?;
            let mut id = *id;
            let mut total = 0;
            for part in path.split('.') {
                let (off, t) = self.find(id, part)?;
                total += off;
                id = t;
            }
            Some(total)
        }
    }
}
