//! A small parser of the kernel's BTF (`/sys/kernel/btf/vmlinux`), enough
//! to find where a struct member lives: the kernel programs are built without
//! CO-RE relocations, so userspace reads the byte offsets they need from the
//! running kernel's BTF and hands them over at load time.
//!
//! The format (the kernel's `Documentation/bpf/btf.rst`): a header (magic
//! `0xeb9f`, version 1, flags, header length, then the offset and length of
//! the type section and of the string section, both relative to the end of
//! the header), the type section (type ids count from 1; id 0 is `void`), and
//! the string section (NUL-terminated names addressed by byte offset).
//!
//! Every read is bounds-checked: malformed input gives a [`BtfError`], never a
//! panic. Only what member lookups need is kept (names, sizes, referenced
//! types, array lengths, struct and union members); the other kinds are
//! parsed only to step over them. Split BTF (kernel modules) is not handled.

use std::{
    collections::HashSet,
    fs, io,
    path::{Path, PathBuf},
};

/// Where the running kernel exposes its own BTF.
pub const VMLINUX_PATH: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
/// Longest chain of typedefs and modifiers, and deepest nesting of
/// anonymous members, followed before giving up (cycles in malformed input).
const MAX_DEPTH: usize = 64;
/// Bytes in a pointer: this tracer only runs on 64-bit kernels (x86_64), and
/// BTF does not record pointer sizes.
const POINTER_SIZE: u64 = 8;

/// A BTF type kind (`BTF_KIND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Int,
    Ptr,
    Array,
    Struct,
    Union,
    Enum,
    Fwd,
    Typedef,
    Volatile,
    Const,
    Restrict,
    Func,
    FuncProto,
    Var,
    Datasec,
    Float,
    DeclTag,
    TypeTag,
    Enum64,
}

impl Kind {
    fn from_raw(raw: u32) -> Option<Self> {
        Some(match raw {
            1 => Self::Int,
            2 => Self::Ptr,
            3 => Self::Array,
            4 => Self::Struct,
            5 => Self::Union,
            6 => Self::Enum,
            7 => Self::Fwd,
            8 => Self::Typedef,
            9 => Self::Volatile,
            10 => Self::Const,
            11 => Self::Restrict,
            12 => Self::Func,
            13 => Self::FuncProto,
            14 => Self::Var,
            15 => Self::Datasec,
            16 => Self::Float,
            17 => Self::DeclTag,
            18 => Self::TypeTag,
            19 => Self::Enum64,
            _ => return None,
        })
    }

    /// Bytes that follow the 12-byte common header of a type of this kind.
    fn extra_len(self, vlen: usize) -> Option<usize> {
        Some(match self {
            Self::Int | Self::Var | Self::DeclTag => 4,
            Self::Array => 12,
            Self::Struct | Self::Union | Self::Datasec | Self::Enum64 => vlen.checked_mul(12)?,
            Self::Enum | Self::FuncProto => vlen.checked_mul(8)?,
            Self::Ptr
            | Self::Fwd
            | Self::Typedef
            | Self::Volatile
            | Self::Const
            | Self::Restrict
            | Self::Func
            | Self::Float
            | Self::TypeTag => 0,
        })
    }

    /// Kinds that only qualify or rename the type they refer to.
    fn is_alias(self) -> bool {
        matches!(
            self,
            Self::Typedef | Self::Volatile | Self::Const | Self::Restrict | Self::TypeTag
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read the kernel's BTF at {path}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)"
    )]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("malformed BTF: {0}")]
    Malformed(String),
    #[error("no struct or union named `{0}` in the kernel's BTF")]
    NoSuchType(String),
    #[error("`{ty}` has no member `{member}` in the kernel's BTF")]
    NoSuchMember { ty: String, member: String },
    #[error("`{path}`: `{member}` is not a struct or union, so it has no members")]
    NotComposite { path: String, member: String },
    #[error(
        "`{path}` is a bitfield ({bits} bits at bit {bit_offset}): it has no byte offset to read"
    )]
    Bitfield {
        path: String,
        bit_offset: u64,
        bits: u32,
    },
    #[error("`{path}` starts at bit {bit_offset}, not on a byte boundary")]
    Unaligned { path: String, bit_offset: u64 },
    #[error("`{path}`: {detail}")]
    Unresolvable { path: String, detail: String },
    #[error("`{path}` differs between the {count} definitions of `{ty}` in the kernel's BTF")]
    Ambiguous {
        path: String,
        ty: String,
        count: usize,
    },
}

type Result<T, E = BtfError> = std::result::Result<T, E>;

fn malformed(detail: impl Into<String>) -> BtfError {
    BtfError::Malformed(detail.into())
}

/// A member of a struct or union as recorded in BTF.
#[derive(Clone, Copy, Debug)]
struct RawMember {
    name_off: u32,
    type_id: u32,
    /// Bit offset; with the struct's kind flag set, the bitfield size is in
    /// the top 8 bits.
    offset: u32,
}

#[derive(Clone, Debug)]
enum Data {
    None,
    /// `BTF_INT_ENCODING`, `BTF_INT_OFFSET` and `BTF_INT_BITS` packed.
    Int(u32),
    Array {
        elem: u32,
        nelems: u32,
    },
    Members(Box<[RawMember]>),
}

#[derive(Clone, Debug)]
struct Type {
    kind: Kind,
    kind_flag: bool,
    name_off: u32,
    /// `size` for INT, ENUM, STRUCT, UNION, DATASEC, FLOAT, ENUM64; the
    /// referenced type id for the others.
    size_or_type: u32,
    data: Data,
}

/// A parsed BTF blob.
#[derive(Clone, Debug)]
pub struct Btf {
    /// Index `i` holds type id `i + 1`.
    types: Vec<Type>,
    strings: Vec<u8>,
}

/// Where a member (possibly nested: `sock.__sk_common.skc_family`) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// The path as asked, `struct.member[.member...]`.
    pub path: String,
    /// Bits from the start of the outermost struct.
    pub bit_offset: u64,
    /// Width in bits when the member is a bitfield, else `None`.
    pub bitfield_bits: Option<u32>,
    /// Bytes of the member's type, when BTF says (`None` for a forward
    /// declaration, `void` or a function).
    pub size: Option<u64>,
    /// The member's BTF type id.
    pub type_id: u32,
    /// The member shares its bytes with others: it, or a struct it is in,
    /// is a member of a union (named or anonymous).
    pub in_union: bool,
    /// The member sits inside an anonymous struct or union member.
    pub in_anonymous: bool,
}

impl Member {
    /// The byte offset from the start of the outermost struct; an error for
    /// a bitfield or a member not on a byte boundary.
    pub fn byte_offset(&self) -> Result<u32> {
        if let Some(bits) = self.bitfield_bits {
            return Err(BtfError::Bitfield {
                path: self.path.clone(),
                bit_offset: self.bit_offset,
                bits,
            });
        }
        if !self.bit_offset.is_multiple_of(8) {
            return Err(BtfError::Unaligned {
                path: self.path.clone(),
                bit_offset: self.bit_offset,
            });
        }
        u32::try_from(self.bit_offset / 8).map_err(|_| BtfError::Unresolvable {
            path: self.path.clone(),
            detail: format!("offset {} bits does not fit 32 bits", self.bit_offset),
        })
    }
}

/// A little-endian or big-endian reader over a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    big_endian: bool,
}

impl Reader<'_> {
    fn u32_at(&self, at: usize) -> Result<u32> {
        let end = at
            .checked_add(4)
            .ok_or_else(|| malformed("offset overflow"))?;
        let b: [u8; 4] = self
            .bytes
            .get(at..end)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| malformed(format!("truncated at byte {at}")))?;
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }
}

impl Btf {
    /// Reads and parses the running kernel's BTF.
    pub fn load_vmlinux() -> Result<Self> {
        Self::load(Path::new(VMLINUX_PATH))
    }

    /// Reads and parses a BTF file (a raw blob, as in `/sys/kernel/btf/`).
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|source| BtfError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes)
    }

    /// Parses a raw BTF blob (either byte order).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let magic = bytes
            .get(..2)
            .ok_or_else(|| malformed("shorter than the magic number"))?;
        let big_endian = match [magic[0], magic[1]] {
            m if u16::from_le_bytes(m) == MAGIC => false,
            m if u16::from_be_bytes(m) == MAGIC => true,
            m => {
                return Err(malformed(format!(
                    "bad magic {:#06x} (expected {MAGIC:#06x})",
                    u16::from_le_bytes(m)
                )));
            }
        };
        let r = Reader { bytes, big_endian };
        let version = bytes.get(2).copied().unwrap_or(0);
        if version != 1 {
            return Err(malformed(format!("unsupported version {version}")));
        }
        let hdr_len = r.u32_at(4)? as usize;
        if hdr_len < HEADER_LEN {
            return Err(malformed(format!(
                "header length {hdr_len} below {HEADER_LEN}"
            )));
        }
        let (type_off, type_len) = (r.u32_at(8)? as usize, r.u32_at(12)? as usize);
        let (str_off, str_len) = (r.u32_at(16)? as usize, r.u32_at(20)? as usize);
        let section = |name: &str, off: usize, len: usize| -> Result<&[u8]> {
            hdr_len
                .checked_add(off)
                .and_then(|start| Some(start..start.checked_add(len)?))
                .and_then(|range| bytes.get(range))
                .ok_or_else(|| {
                    malformed(format!(
                        "{name} section ({len} bytes at {off}) past the end ({} bytes)",
                        bytes.len()
                    ))
                })
        };
        let type_bytes = section("type", type_off, type_len)?;
        let strings = section("string", str_off, str_len)?.to_vec();
        let types = parse_types(&Reader {
            bytes: type_bytes,
            big_endian,
        })?;
        Ok(Self { types, strings })
    }

    /// Number of types (ids `1..=len`).
    pub fn len(&self) -> usize {
        self.types.len()
    }

    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }

    /// The name at `off` in the string section; `None` when out of bounds,
    /// unterminated or not UTF-8.
    fn string(&self, off: u32) -> Option<&str> {
        let tail = self.strings.get(off as usize..)?;
        let end = tail.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&tail[..end]).ok()
    }

    fn get(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// The kind and name of type `id` (`None` for `void` or an unknown id;
    /// the name is empty for anonymous types).
    pub fn kind_and_name(&self, id: u32) -> Option<(Kind, &str)> {
        let t = self.get(id)?;
        Some((t.kind, self.string(t.name_off).unwrap_or("")))
    }

    /// Follows typedefs and modifiers to the type they stand for.
    fn resolve(&self, mut id: u32) -> Option<(u32, &Type)> {
        for _ in 0..MAX_DEPTH {
            let t = self.get(id)?;
            if !t.kind.is_alias() {
                return Some((id, t));
            }
            id = t.size_or_type;
        }
        None
    }

    /// Bytes of type `id`, through typedefs, modifiers and arrays; `None`
    /// for `void`, functions, forward declarations and malformed chains.
    pub fn type_size(&self, id: u32) -> Option<u64> {
        self.type_size_at(id, 0)
    }

    fn type_size_at(&self, id: u32, depth: usize) -> Option<u64> {
        if depth >= MAX_DEPTH {
            return None;
        }
        let (_, t) = self.resolve(id)?;
        match (&t.kind, &t.data) {
            (Kind::Ptr, _) => Some(POINTER_SIZE),
            (
                Kind::Int
                | Kind::Struct
                | Kind::Union
                | Kind::Enum
                | Kind::Enum64
                | Kind::Float
                | Kind::Datasec,
                _,
            ) => Some(u64::from(t.size_or_type)),
            (Kind::Array, Data::Array { elem, nelems }) => self
                .type_size_at(*elem, depth + 1)?
                .checked_mul(u64::from(*nelems)),
            _ => None,
        }
    }

    /// Ids of the structs and unions named `name`.
    fn composites_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.types.iter().enumerate().filter_map(move |(i, t)| {
            (matches!(t.kind, Kind::Struct | Kind::Union) && self.string(t.name_off) == Some(name))
                .then_some(i as u32 + 1)
        })
    }

    /// Size in bytes of the struct or union `name`.
    pub fn struct_size(&self, name: &str) -> Result<u64> {
        self.composites_named(name)
            .next()
            .and_then(|id| self.type_size(id))
            .ok_or_else(|| BtfError::NoSuchType(name.to_owned()))
    }

    /// Finds a member by path: `"task_struct.files"`,
    /// `"sock.__sk_common.skc_family"`. Members of anonymous structs and
    /// unions are found by their own name, as C reaches them. When several
    /// structs share the name, they must agree on the member.
    pub fn member(&self, path: &str) -> Result<Member> {
        let mut parts = path.split('.');
        let ty = parts.next().unwrap_or("");
        let members: Vec<&str> = parts.collect();
        if ty.is_empty() || members.is_empty() || members.iter().any(|m| m.is_empty()) {
            return Err(BtfError::Unresolvable {
                path: path.to_owned(),
                detail: "expected `struct.member[.member...]`".into(),
            });
        }
        let mut found: Vec<Member> = Vec::new();
        let mut first_err = None;
        let mut count = 0;
        for id in self.composites_named(ty) {
            count += 1;
            match self.member_in(id, ty, &members, path) {
                Ok(m) => found.push(m),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        let Some(first) = found.first() else {
            return Err(first_err.unwrap_or_else(|| BtfError::NoSuchType(ty.to_owned())));
        };
        let same = |m: &Member| {
            m.bit_offset == first.bit_offset
                && m.bitfield_bits == first.bitfield_bits
                && m.size == first.size
        };
        if !found.iter().all(same) {
            return Err(BtfError::Ambiguous {
                path: path.to_owned(),
                ty: ty.to_owned(),
                count,
            });
        }
        Ok(first.clone())
    }

    /// The byte offset of `member_path` (dotted) in the struct `ty`.
    pub fn member_offset(&self, ty: &str, member_path: &str) -> Result<u32> {
        self.member(&format!("{ty}.{member_path}"))?.byte_offset()
    }

    /// The size in bytes of `member_path` (dotted) in the struct `ty`.
    pub fn member_size(&self, ty: &str, member_path: &str) -> Result<u64> {
        let path = format!("{ty}.{member_path}");
        let m = self.member(&path)?;
        m.size.ok_or_else(|| BtfError::Unresolvable {
            path,
            detail: "the member's type has no size".into(),
        })
    }

    fn member_in(&self, id: u32, ty: &str, members: &[&str], path: &str) -> Result<Member> {
        let mut current = id;
        let mut current_name = ty;
        let mut result = Member {
            path: path.to_owned(),
            bit_offset: 0,
            bitfield_bits: None,
            size: None,
            type_id: id,
            in_union: false,
            in_anonymous: false,
        };
        for (i, name) in members.iter().enumerate() {
            let hit = self
                .find_member(current, name, 0, &mut HashSet::new())
                .map_err(|detail| BtfError::Unresolvable {
                    path: path.to_owned(),
                    detail,
                })?
                .ok_or_else(|| BtfError::NoSuchMember {
                    ty: current_name.to_owned(),
                    member: (*name).to_owned(),
                })?;
            result.bit_offset = result
                .bit_offset
                .checked_add(hit.bit_offset)
                .ok_or_else(|| malformed("member offset overflow"))?;
            result.bitfield_bits = hit.bitfield_bits;
            result.in_union |= hit.in_union;
            result.in_anonymous |= hit.in_anonymous;
            result.type_id = hit.type_id;
            current = hit.type_id;
            current_name = name;
            if i + 1 < members.len() {
                let is_composite = self
                    .resolve(current)
                    .is_some_and(|(_, t)| matches!(t.kind, Kind::Struct | Kind::Union));
                if !is_composite {
                    return Err(BtfError::NotComposite {
                        path: path.to_owned(),
                        member: (*name).to_owned(),
                    });
                }
            }
        }
        result.size = self.type_size(result.type_id);
        Ok(result)
    }

    /// Looks for `name` among the members of composite `id`, descending
    /// into anonymous struct and union members. Offsets are relative to `id`.
    /// `Err` for malformed BTF. `searched` holds the anonymous types
    /// already searched in vain: a type shared by several anonymous members
    /// (deduplicated BTF, or a crafted DAG of them) is searched once, not
    /// once per path to it.
    fn find_member(
        &self,
        id: u32,
        name: &str,
        depth: usize,
        searched: &mut HashSet<u32>,
    ) -> std::result::Result<Option<Member>, String> {
        if depth >= MAX_DEPTH {
            return Err("anonymous members nested too deep (cyclic BTF?)".into());
        }
        let (_, t) = self
            .resolve(id)
            .ok_or_else(|| format!("type {id} does not resolve"))?;
        let Data::Members(members) = &t.data else {
            return Err(format!("type {id} is not a struct or union"));
        };
        let is_union = t.kind == Kind::Union;
        for m in members.iter() {
            let (bit_offset, kflag_bits) = if t.kind_flag {
                (u64::from(m.offset & 0x00ff_ffff), m.offset >> 24)
            } else {
                (u64::from(m.offset), 0)
            };
            let member_name = self.string(m.name_off).unwrap_or("");
            if member_name.is_empty() {
                let nested = self
                    .resolve(m.type_id)
                    .is_some_and(|(_, mt)| matches!(mt.kind, Kind::Struct | Kind::Union));
                if !nested || searched.contains(&m.type_id) {
                    continue;
                }
                if let Some(mut inner) = self.find_member(m.type_id, name, depth + 1, searched)? {
                    inner.bit_offset = inner
                        .bit_offset
                        .checked_add(bit_offset)
                        .ok_or("member offset overflow")?;
                    inner.in_union |= is_union;
                    inner.in_anonymous = true;
                    return Ok(Some(inner));
                }
                searched.insert(m.type_id);
                continue;
            }
            if member_name != name {
                continue;
            }
            let mut bit_offset = bit_offset;
            let mut bitfield_bits = (kflag_bits != 0).then_some(kflag_bits);
            if bitfield_bits.is_none()
                && let Some((_, it)) = self.resolve(m.type_id)
                && let (Kind::Int, Data::Int(enc)) = (it.kind, &it.data)
            {
                // Without the kind flag a bitfield's width and extra offset
                // are in its INT type's encoding.
                let (int_offset, int_bits) = ((enc >> 16) & 0xff, enc & 0xff);
                if int_offset != 0 || u64::from(int_bits) != u64::from(it.size_or_type) * 8 {
                    bit_offset += u64::from(int_offset);
                    bitfield_bits = Some(int_bits);
                }
            }
            return Ok(Some(Member {
                path: String::new(),
                bit_offset,
                bitfield_bits,
                size: None,
                type_id: m.type_id,
                in_union: is_union,
                in_anonymous: false,
            }));
        }
        Ok(None)
    }
}

fn parse_types(r: &Reader<'_>) -> Result<Vec<Type>> {
    let mut types = Vec::new();
    let mut at = 0usize;
    while at < r.bytes.len() {
        let name_off = r.u32_at(at)?;
        let info = r.u32_at(at + 4)?;
        let size_or_type = r.u32_at(at + 8)?;
        let raw_kind = (info >> 24) & 0x1f;
        let id = types.len() + 1;
        let kind = Kind::from_raw(raw_kind)
            .ok_or_else(|| malformed(format!("type {id} has unknown kind {raw_kind}")))?;
        let vlen = (info & 0xffff) as usize;
        let extra = kind
            .extra_len(vlen)
            .ok_or_else(|| malformed("vlen overflow"))?;
        let body = at + 12;
        let end = body
            .checked_add(extra)
            .filter(|&end| end <= r.bytes.len())
            .ok_or_else(|| malformed(format!("type {id} runs past the type section")))?;
        let data = match kind {
            Kind::Int => Data::Int(r.u32_at(body)?),
            Kind::Array => Data::Array {
                elem: r.u32_at(body)?,
                nelems: r.u32_at(body + 8)?,
            },
            Kind::Struct | Kind::Union => Data::Members(
                (0..vlen)
                    .map(|i| {
                        let m = body + 12 * i;
                        Ok(RawMember {
                            name_off: r.u32_at(m)?,
                            type_id: r.u32_at(m + 4)?,
                            offset: r.u32_at(m + 8)?,
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            _ => Data::None,
        };
        types.push(Type {
            kind,
            kind_flag: info >> 31 == 1,
            name_off,
            size_or_type,
            data,
        });
        at = end;
    }
    Ok(types)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF blobs by hand for the tests.
    #[derive(Default)]
    pub(crate) struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
        pub(crate) big_endian: bool,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Self {
                strings: vec![0],
                next_id: 1,
                ..Self::default()
            }
        }

        fn word(&mut self, v: u32) {
            let b = if self.big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            self.types.extend_from_slice(&b);
        }

        pub(crate) fn name(&mut self, name: &str) -> u32 {
            if name.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(name.as_bytes());
            self.strings.push(0);
            off
        }

        /// A raw type record: returns its id.
        pub(crate) fn raw(
            &mut self,
            name: &str,
            kind: u32,
            kflag: bool,
            vlen: u32,
            st: u32,
            extra: &[u32],
        ) -> u32 {
            let name_off = self.name(name);
            self.word(name_off);
            self.word((u32::from(kflag) << 31) | (kind << 24) | vlen);
            self.word(st);
            for &w in extra {
                self.word(w);
            }
            self.next_id += 1;
            self.next_id - 1
        }

        pub(crate) fn int(&mut self, name: &str, size: u32) -> u32 {
            self.raw(name, 1, false, 0, size, &[size * 8])
        }

        pub(crate) fn ptr(&mut self, to: u32) -> u32 {
            self.raw("", 2, false, 0, to, &[])
        }

        pub(crate) fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.raw(name, 8, false, 0, to, &[])
        }

        /// A struct (`union` false) or union; members `(name, type, bit offset)`.
        pub(crate) fn composite(
            &mut self,
            name: &str,
            union: bool,
            size: u32,
            kflag: bool,
            members: &[(&str, u32, u32)],
        ) -> u32 {
            let mut extra = Vec::new();
            for &(n, t, off) in members {
                extra.extend([self.name(n), t, off]);
            }
            let kind = if union { 5 } else { 4 };
            self.raw(name, kind, kflag, members.len() as u32, size, &extra)
        }

        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            let put = |v: u32, out: &mut Vec<u8>| {
                out.extend_from_slice(&if self.big_endian {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                })
            };
            let magic = if self.big_endian {
                MAGIC.to_be_bytes()
            } else {
                MAGIC.to_le_bytes()
            };
            out.extend_from_slice(&magic);
            out.extend_from_slice(&[1, 0]);
            put(HEADER_LEN as u32, &mut out);
            put(0, &mut out);
            put(self.types.len() as u32, &mut out);
            put(self.types.len() as u32, &mut out);
            put(self.strings.len() as u32, &mut out);
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A kernel-like set of types:
    ///
    /// ```c
    /// struct inner { u16 family; u16 kind; };
    /// typedef struct inner inner_t;
    /// struct outer {
    ///     u32 flags;                                  // 0
    ///     union { const struct inner *p; u64 raw; };  // 8 (anonymous)
    ///     inner_t common;                             // 16
    ///     u8 a:3, b:5;                                // 20 (kind-flag bitfields)
    ///     struct { struct { u32 deep; }; u32 x; };     // 24 (anonymous)
    /// };
    /// ```
    pub(crate) fn sample(big_endian: bool) -> Vec<u8> {
        let mut b = Builder::new();
        b.big_endian = big_endian;
        let u8_ = b.int("u8", 1);
        let u16_ = b.int("u16", 2);
        let u32_ = b.int("u32", 4);
        let u64_ = b.int("u64", 8);
        let inner = b.composite(
            "inner",
            false,
            4,
            false,
            &[("family", u16_, 0), ("kind", u16_, 16)],
        );
        let inner_t = b.typedef("inner_t", inner);
        let cinner = b.raw("", 10, false, 0, inner, &[]);
        let pinner = b.ptr(cinner);
        let anon_union = b.composite("", true, 8, false, &[("p", pinner, 0), ("raw", u64_, 0)]);
        let deep = b.composite("", false, 4, false, &[("deep", u32_, 0)]);
        let anon_struct = b.composite("", false, 8, false, &[("", deep, 0), ("x", u32_, 32)]);
        b.composite(
            "outer",
            false,
            32,
            true,
            &[
                ("flags", u32_, 0),
                ("", anon_union, 64),
                ("common", inner_t, 128),
                ("a", u8_, (3 << 24) | 160),
                ("b", u8_, (5 << 24) | 163),
                ("", anon_struct, 192),
            ],
        );
        b.build()
    }

    #[test]
    fn finds_plain_nested_and_anonymous_members() {
        for big_endian in [false, true] {
            let btf = Btf::parse(&sample(big_endian)).unwrap();
            assert_eq!(btf.len(), 12);
            assert_eq!(btf.member_offset("outer", "flags").unwrap(), 0);
            assert_eq!(btf.member_size("outer", "flags").unwrap(), 4);
            // Through a typedef into a named struct member.
            assert_eq!(btf.member_offset("outer", "common.kind").unwrap(), 18);
            assert_eq!(btf.member_size("outer", "common.kind").unwrap(), 2);
            assert_eq!(btf.member_size("outer", "common").unwrap(), 4);
            // Inside an anonymous union: a pointer through a const.
            let p = btf.member("outer.p").unwrap();
            assert_eq!(p.byte_offset().unwrap(), 8);
            assert_eq!(p.size, Some(8));
            assert!(p.in_union && p.in_anonymous);
            // Two anonymous levels deep.
            let deep = btf.member("outer.deep").unwrap();
            assert_eq!(deep.byte_offset().unwrap(), 24);
            assert!(!deep.in_union && deep.in_anonymous);
            assert_eq!(btf.member_offset("outer", "x").unwrap(), 28);
            let flags = btf.member("outer.flags").unwrap();
            assert!(!flags.in_union && !flags.in_anonymous);
            assert_eq!(btf.struct_size("outer").unwrap(), 32);
            assert_eq!(btf.kind_and_name(5), Some((Kind::Struct, "inner")));
        }
    }

    #[test]
    fn bitfields_have_no_byte_offset() {
        let btf = Btf::parse(&sample(false)).unwrap();
        let a = btf.member("outer.a").unwrap();
        assert_eq!((a.bit_offset, a.bitfield_bits), (160, Some(3)));
        let e = btf.member_offset("outer", "b").unwrap_err();
        assert!(
            matches!(
                e,
                BtfError::Bitfield {
                    bits: 5,
                    bit_offset: 163,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("outer.b"), "{e}");

        // Without the kind flag, the width is in the INT encoding.
        let mut b = Builder::new();
        let bits3 = b.raw("unsigned int", 1, false, 0, 4, &[3]);
        let shifted = b.raw("unsigned int", 1, false, 0, 4, &[(2 << 16) | 6]);
        let u32_ = b.int("u32", 4);
        b.composite(
            "s",
            false,
            8,
            false,
            &[("f", bits3, 32), ("g", shifted, 32), ("h", u32_, 36)],
        );
        let btf = Btf::parse(&b.build()).unwrap();
        let f = btf.member("s.f").unwrap();
        assert_eq!((f.bit_offset, f.bitfield_bits), (32, Some(3)));
        let g = btf.member("s.g").unwrap();
        assert_eq!((g.bit_offset, g.bitfield_bits), (34, Some(6)));
        assert!(matches!(
            btf.member("s.f").unwrap().byte_offset(),
            Err(BtfError::Bitfield { .. })
        ));
        assert!(matches!(
            btf.member_offset("s", "h"),
            Err(BtfError::Unaligned { bit_offset: 36, .. })
        ));
    }

    #[test]
    fn errors_name_what_is_missing() {
        let btf = Btf::parse(&sample(false)).unwrap();
        let e = btf.member_offset("nothing", "x").unwrap_err();
        assert!(
            matches!(&e, BtfError::NoSuchType(t) if t == "nothing"),
            "{e}"
        );
        let e = btf.member_offset("outer", "nope").unwrap_err();
        assert!(
            matches!(&e, BtfError::NoSuchMember { ty, member } if ty == "outer" && member == "nope"),
            "{e}"
        );
        let e = btf.member_offset("outer", "common.nope").unwrap_err();
        assert!(
            matches!(&e, BtfError::NoSuchMember { ty, .. } if ty == "common"),
            "{e}"
        );
        // A pointer is not followed: offsets are within one struct.
        let e = btf.member_offset("outer", "p.family").unwrap_err();
        assert!(
            matches!(&e, BtfError::NotComposite { member, .. } if member == "p"),
            "{e}"
        );
        let e = btf.member_offset("outer", "flags.x").unwrap_err();
        assert!(matches!(e, BtfError::NotComposite { .. }), "{e}");
        for bad in ["", "outer", "outer.", ".flags", "outer..flags"] {
            assert!(btf.member(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn duplicate_structs_must_agree() {
        let mut b = Builder::new();
        let u32_ = b.int("u32", 4);
        b.composite("dup", false, 8, false, &[("a", u32_, 0), ("b", u32_, 32)]);
        b.composite("dup", false, 8, false, &[("a", u32_, 0), ("b", u32_, 0)]);
        b.raw("dup", 7, false, 0, 0, &[]); // a forward declaration is ignored
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.member_offset("dup", "a").unwrap(), 0);
        let e = btf.member_offset("dup", "b").unwrap_err();
        assert!(matches!(e, BtfError::Ambiguous { count: 2, .. }), "{e}");
    }

    #[test]
    fn steps_over_every_kind() {
        let mut b = Builder::new();
        let int = b.int("int", 4);
        b.raw("", 3, false, 0, 0, &[int, int, 4]); // ARRAY int[4]
        b.raw("e", 6, false, 2, 4, &[b'a'.into(), 0, b'b'.into(), 1]); // ENUM
        b.raw("fwd", 7, false, 0, 0, &[]);
        b.raw("", 9, false, 0, int, &[]); // VOLATILE
        b.raw("", 11, false, 0, int, &[]); // RESTRICT
        let proto = b.raw("", 13, false, 2, int, &[0, int, 0, int]); // FUNC_PROTO
        b.raw("f", 12, false, 1, proto, &[]); // FUNC
        let var = b.raw("v", 14, false, 0, int, &[1]); // VAR
        b.raw(".data", 15, false, 1, 4, &[var, 0, 4]); // DATASEC
        b.raw("double", 16, false, 0, 8, &[]); // FLOAT
        b.raw("tag", 17, false, 0, int, &[u32::MAX]); // DECL_TAG
        let tagged = b.raw("user", 18, false, 0, int, &[]); // TYPE_TAG
        b.raw("e64", 19, false, 1, 8, &[0, 1, 2]); // ENUM64
        let arr = b.raw("", 3, false, 0, 0, &[tagged, int, 3]);
        b.composite("last", false, 12, false, &[("arr", arr, 0)]);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(btf.member_size("last", "arr").unwrap(), 12);
        assert_eq!(btf.kind_and_name(var), Some((Kind::Var, "v")));
    }

    #[test]
    fn malformed_input_is_an_error_never_a_panic() {
        let good = sample(false);
        // Every truncation.
        for len in 0..good.len() {
            let _ = Btf::parse(&good[..len]);
        }
        let mut bad_magic = good.clone();
        bad_magic[0] = 0;
        assert!(matches!(
            Btf::parse(&bad_magic),
            Err(BtfError::Malformed(_))
        ));
        let mut bad_version = good.clone();
        bad_version[2] = 2;
        assert!(Btf::parse(&bad_version).is_err());
        let mut short_header = good.clone();
        short_header[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert!(Btf::parse(&short_header).is_err());
        let mut huge_section = good.clone();
        huge_section[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Btf::parse(&huge_section).is_err());
        let mut huge_header = good.clone();
        huge_header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(Btf::parse(&huge_header).is_err());

        // An unknown kind, and a vlen past the end.
        let mut b = Builder::new();
        b.raw("x", 31, false, 0, 0, &[]);
        let e = Btf::parse(&b.build()).unwrap_err();
        assert!(e.to_string().contains("unknown kind 31"), "{e}");
        let mut b = Builder::new();
        b.raw("x", 4, false, 0xffff, 4, &[]);
        assert!(Btf::parse(&b.build()).is_err());

        // Cycles: a typedef to itself, a struct containing itself anonymously,
        // an array of itself, names past the string section.
        let mut b = Builder::new();
        let t = b.typedef("loop", 1);
        let s = b.composite("self", false, 4, false, &[("", 2, 0), ("", t, 0)]);
        b.raw("", 3, false, 0, 0, &[3, 3, 2]);
        b.composite("arr", false, 4, false, &[("a", 3, 0), ("b", s, 0)]);
        let mut blob = b.build();
        let btf = Btf::parse(&blob).unwrap();
        assert!(btf.member("self.x").is_err());
        assert!(btf.member("arr.a").unwrap().size.is_none());
        assert!(btf.member("arr.b.y").is_err());
        assert_eq!(btf.type_size(t), None);
        assert_eq!(btf.type_size(0), None);
        assert_eq!(btf.type_size(u32::MAX), None);
        // Point the first name past the strings.
        blob[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let btf = Btf::parse(&blob).unwrap();
        assert_eq!(btf.kind_and_name(1), Some((Kind::Typedef, "")));
    }

    /// A small deterministic fuzz: random byte flips of a valid blob must
    /// parse or fail, and lookups on what parses must not panic.
    #[test]
    fn mutated_blobs_do_not_panic() {
        let good = sample(false);
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut blob = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % blob.len() as u64) as usize;
                blob[at] = next() as u8;
            }
            if let Ok(btf) = Btf::parse(&blob) {
                for path in [
                    "outer.flags",
                    "outer.common.kind",
                    "outer.p",
                    "outer.deep",
                    "outer.b",
                ] {
                    if let Ok(m) = btf.member(path) {
                        let _ = m.byte_offset();
                    }
                }
                for id in 0..16 {
                    let _ = btf.type_size(id);
                }
            }
        }
    }

    /// Anonymous members whose types are shared (a DAG: each level holds
    /// the next level twice) are searched once per type, not once per
    /// path: 2^40 paths must not hang a lookup.
    #[test]
    fn shared_anonymous_members_are_searched_once() {
        const LEVELS: u32 = 40;
        let mut b = Builder::new();
        // Ids in order: `top` is 1, level i is 2 + i, the int is last.
        let int_id = LEVELS + 3;
        let top = b.composite("top", false, 8, false, &[("", 2, 0), ("x", int_id, 32)]);
        for level in 0..LEVELS {
            b.composite(
                "",
                false,
                4,
                false,
                &[("", 3 + level, 0), ("", 3 + level, 0)],
            );
        }
        b.composite("", false, 4, false, &[("leaf", int_id, 0)]);
        assert_eq!(b.int("u32", 4), int_id);
        let btf = Btf::parse(&b.build()).unwrap();
        assert_eq!(top, 1);
        assert_eq!(btf.member_offset("top", "leaf").unwrap(), 0);
        assert_eq!(btf.member_offset("top", "x").unwrap(), 4);
        assert!(matches!(
            btf.member("top.missing"),
            Err(BtfError::NoSuchMember { .. })
        ));
    }

    #[test]
    fn parses_the_running_kernel() {
        let Some(btf) = live() else { return };
        assert!(btf.len() > 1000, "only {} types", btf.len());
        assert_eq!(btf.member_offset("list_head", "next").unwrap(), 0);
        assert_eq!(btf.member_offset("list_head", "prev").unwrap(), 8);
        assert_eq!(btf.member_size("list_head", "prev").unwrap(), 8);
    }

    /// The running kernel's BTF, or `None` (with the reason printed).
    pub(crate) fn live() -> Option<Btf> {
        if !Path::new(VMLINUX_PATH).exists() {
            eprintln!("skipped: {VMLINUX_PATH} is absent (kernel without CONFIG_DEBUG_INFO_BTF)");
            return None;
        }
        match Btf::load_vmlinux() {
            Ok(btf) => Some(btf),
            Err(BtfError::Read { source, .. })
                if source.kind() == io::ErrorKind::PermissionDenied =>
            {
                eprintln!("skipped: {VMLINUX_PATH} is not readable here");
                None
            }
            Err(e) => panic!("{e}"),
        }
    }
}
