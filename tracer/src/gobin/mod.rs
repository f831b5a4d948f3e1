//! Reading a Go binary without a Go toolchain: its exact Go version and
//! module from `.go.buildinfo`, and its functions (name, entry, file, line
//! and frame size at every pc) from `.gopclntab`, which survives `-s -w`
//! stripping. The layouts per version are described in `buildinfo.rs` and
//! `pclntab.rs`; `unwind.rs` walks a Go stack with the frame sizes, and
//! `datasym.rs` finds runtime variables, from code when stripped.

pub mod buildinfo;
pub mod datasym;
pub mod pclntab;
pub mod symbolize;
pub mod unwind;

use std::{collections::HashMap, fs, path::Path};

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

pub use buildinfo::{BuildInfo, GoVersion};
pub use datasym::{VDSO_CLOCK_GETTIME_SYM, rip_relative_load};
pub use pclntab::{Function, Pclntab};

#[derive(Debug, thiserror::Error)]
pub enum GoBinError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a regular file (a device, a FIFO or a directory): give an executable")]
    NotRegular { path: String },
    #[error(
        "{path} is {size} bytes, more than the {max} an executable is read up to: give a Go \
         executable"
    )]
    TooLarge { path: String, size: u64, max: u64 },
    #[error("not an ELF file: {0}")]
    Elf(#[from] object::Error),
    #[error("not a Go binary (no .go.buildinfo section with the Go build-info magic)")]
    NotGo,
    #[error("malformed Go build info: {0}")]
    BuildInfo(&'static str),
    #[error("malformed .gopclntab: {0}")]
    Pclntab(&'static str),
    #[error("Go pclntab magic {0:#x} is not supported (Go 1.18 to 1.27 are)")]
    UnsupportedPclntab(u32),
}

/// The largest executable read (the biggest Go binaries are a few hundred
/// MB).
pub const MAX_BINARY_BYTES: u64 = 4 << 30;

/// The longest variable name kept from `.symtab`: the runtime's variables
/// have short names, and symbols naming one long string (a crafted ELF)
/// must not take memory quadratic in its size.
const MAX_DATA_SYMBOL_NAME: usize = 256;

/// Where function names come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymbolsSource {
    /// The ELF `.symtab` (an unstripped binary).
    Symtab,
    /// Only `.gopclntab` (a binary built with `-s -w`).
    Pclntab,
}

/// What the tracer knows about one Go executable.
#[derive(Debug)]
pub struct GoBinary {
    pub build: BuildInfo,
    pub symbols: SymbolsSource,
    pub pclntab: Pclntab,
    /// Uses cgo (has the cgo runtime entry points), so threads may come
    /// from pthread_create and callbacks from foreign threads.
    pub cgo: bool,
    /// Position-independent (relocated at load time).
    pub pie: bool,
    /// The lowest PT_LOAD address, page-aligned: what a PIE's load bias is
    /// measured from.
    pub link_base: u64,
    /// `(vaddr, file offset)` of the executable PT_LOAD, for uprobe offsets.
    text_segment: Option<(u64, u64, u64)>,
    /// Variables (`STT_OBJECT`) from `.symtab`: empty when stripped.
    data_symbols: HashMap<String, u64>,
    /// [`VDSO_CLOCK_GETTIME_SYM`] as decoded from `runtime.nanotime1`'s code.
    vdso_clock_gettime_decoded: Option<u64>,
}

impl GoBinary {
    /// Reads and parses an executable. Only a regular file is read, and
    /// only up to its size ([`MAX_BINARY_BYTES`] at most): a device or a
    /// FIFO would never end or block forever.
    pub fn open(path: &Path) -> Result<Self, GoBinError> {
        use std::io::Read as _;
        let shown = || path.display().to_string();
        let read_err = |source| GoBinError::Read {
            path: shown(),
            source,
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer.
        let file = std::os::unix::fs::OpenOptionsExt::custom_flags(
            fs::OpenOptions::new().read(true),
            libc::O_NONBLOCK,
        )
        .open(path)
        .map_err(read_err)?;
        let meta = file.metadata().map_err(read_err)?;
        if !meta.is_file() {
            return Err(GoBinError::NotRegular { path: shown() });
        }
        if meta.len() > MAX_BINARY_BYTES {
            return Err(GoBinError::TooLarge {
                path: shown(),
                size: meta.len(),
                max: MAX_BINARY_BYTES,
            });
        }
        let mut data = Vec::with_capacity(meta.len() as usize);
        file.take(meta.len())
            .read_to_end(&mut data)
            .map_err(read_err)?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, GoBinError> {
        let file = object::File::parse(data)?;
        let build = BuildInfo::from_elf(&file)?;
        let pclntab = Pclntab::from_elf(&file, &build.version)?;
        let has_symtab = file.symbols().any(|s| s.name() == Ok("runtime.main"));
        let data_symbols = file
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Data)
            .filter_map(|s| {
                let name = s.name().ok().filter(|n| n.len() <= MAX_DATA_SYMBOL_NAME)?;
                Some((name.to_owned(), s.address()))
            })
            .collect();
        let vdso_clock_gettime_decoded = rip_relative_load(&file, &pclntab, datasym::NANOTIME1, 0);
        let cgo =
            pclntab.entry("crosscall2").is_some() || pclntab.entry("_cgo_topofstack").is_some();
        let text_segment = file
            .segments()
            .find(
                |s| matches!(s.flags(), object::SegmentFlags::Elf { p_flags } if p_flags & 1 != 0),
            )
            .map(|s| (s.address(), s.file_range().0, s.size()));
        Ok(Self {
            build,
            symbols: if has_symtab {
                SymbolsSource::Symtab
            } else {
                SymbolsSource::Pclntab
            },
            pclntab,
            cgo,
            pie: file.kind() == object::ObjectKind::Dynamic,
            link_base: file
                .segments()
                .map(|s| s.address() & !0xfff)
                .min()
                .unwrap_or(0),
            text_segment,
            data_symbols,
            vdso_clock_gettime_decoded,
        })
    }

    /// The link-time address of a global variable, e.g. `runtime.sched`,
    /// `runtime.allm`, `runtime.gomaxprocs`, `runtime.ncpu`: from `.symtab`,
    /// so `None` on a stripped binary, except for
    /// [`VDSO_CLOCK_GETTIME_SYM`], which is then found from the code that
    /// reads it (see [`rip_relative_load`]). A variable the runtime renamed
    /// is found by its old name too (`runtime.ncpu` is
    /// `runtime.numCPUStartup` since Go 1.25; see [`datasym::RENAMED`]).
    pub fn data_symbol(&self, name: &str) -> Option<u64> {
        if let Some(&addr) = self.data_symbols.get(name) {
            return Some(addr);
        }
        if name == VDSO_CLOCK_GETTIME_SYM {
            return self.vdso_clock_gettime_decoded;
        }
        datasym::RENAMED
            .iter()
            .find(|(old, _)| *old == name)
            .and_then(|(_, new)| self.data_symbols.get(*new).copied())
    }

    /// The file offset of a virtual address in the executable segment (what
    /// a uprobe is attached by).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        let (start, offset, size) = self.text_segment?;
        let delta = vaddr.checked_sub(start).filter(|&d| d < size)?;
        offset.checked_add(delta)
    }
}

/// Reads the bytes of the first section with one of `names`, with its address.
pub(crate) fn section<'a>(file: &object::File<'a>, names: &[&str]) -> Option<(u64, &'a [u8])> {
    names.iter().find_map(|name| {
        let s = file.section_by_name(name)?;
        Some((s.address(), s.data().ok()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A committed fuzz seed (`fuzz/seeds/gobinary/`): a Go 1.21 binary
    /// cut to the sections the parsers read.
    fn seed() -> Vec<u8> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/seeds/gobinary/go1.21.13-default.elf"
        );
        fs::read(path).unwrap()
    }

    /// Sets `p_vaddr` of the first PT_LOAD with flags `p_flags`.
    fn move_segment(elf: &mut [u8], p_flags: u32, vaddr: u64) {
        let phoff = u64::from_le_bytes(elf[32..40].try_into().unwrap()) as usize;
        let phnum = u16::from_le_bytes(elf[56..58].try_into().unwrap()) as usize;
        let at = (0..phnum)
            .map(|i| phoff + 56 * i)
            .find(|&at| {
                elf[at..at + 4] == [1, 0, 0, 0] && elf[at + 4..at + 8] == p_flags.to_le_bytes()
            })
            .unwrap();
        elf[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
    }

    /// Section header `i`: `(at, sh_type, sh_link)`.
    fn section_header(elf: &[u8], i: usize) -> (usize, u32, u32) {
        let shoff = u64::from_le_bytes(elf[40..48].try_into().unwrap()) as usize;
        let at = shoff + 64 * i;
        let word = |o: usize| u32::from_le_bytes(elf[at + o..at + o + 4].try_into().unwrap());
        (at, word(4), word(40))
    }

    /// A `.symtab` whose variables all name one long string.
    #[test]
    fn symbols_sharing_a_long_name_are_not_kept() {
        const NSYMS: usize = 5_000;
        const NAME: usize = 20_000;
        let mut elf = seed();
        let shnum = u16::from_le_bytes(elf[60..62].try_into().unwrap()) as usize;
        let (symtab, _, link) = (0..shnum)
            .map(|i| section_header(&elf, i))
            .find(|&(_, ty, _)| ty == 2)
            .unwrap();
        let (strtab, _, _) = section_header(&elf, link as usize);
        let set = |elf: &mut Vec<u8>, header: usize, off: usize, size: usize| {
            elf[header + 24..header + 32].copy_from_slice(&(off as u64).to_le_bytes());
            elf[header + 32..header + 40].copy_from_slice(&(size as u64).to_le_bytes());
        };
        let strings = elf.len();
        elf.extend([b'v'; NAME]);
        elf.push(0);
        set(&mut elf, strtab, strings, NAME + 1);
        let symbols = elf.len();
        elf.extend([0; 24]);
        for i in 0..NSYMS {
            // st_name 0, STB_GLOBAL | STT_OBJECT, SHN_ABS, st_value i.
            elf.extend(0u32.to_le_bytes());
            elf.extend([0x11, 0]);
            elf.extend(0xfff1u16.to_le_bytes());
            elf.extend((i as u64).to_le_bytes());
            elf.extend(8u64.to_le_bytes());
        }
        set(&mut elf, symtab, symbols, 24 * (NSYMS + 1));
        let bin = GoBinary::parse(&elf).unwrap();
        assert!(bin.data_symbols.is_empty());
        assert_eq!(bin.data_symbol(&"v".repeat(NAME)), None);
    }

    /// The seed with `extra` sections that each hold the whole file but
    /// its first 4 bytes (so that `runtime.firstmoduledata` is not 8-byte
    /// aligned in them) put before its own, and the section it is in
    /// unnamed, so that the search for it goes through them first.
    fn with_overlapping_sections(extra: usize) -> Vec<u8> {
        let mut elf = seed();
        let len = elf.len() as u64 - 4;
        let shoff = u64::from_le_bytes(elf[40..48].try_into().unwrap()) as usize;
        let shnum = u16::from_le_bytes(elf[60..62].try_into().unwrap()) as usize;
        let shstrndx = u16::from_le_bytes(elf[62..64].try_into().unwrap()) as usize;
        let headers: Vec<Vec<u8>> = (0..shnum)
            .map(|i| elf[shoff + 64 * i..shoff + 64 * (i + 1)].to_vec())
            .collect();
        let names = &headers[shstrndx];
        let names_at = u64::from_le_bytes(names[24..32].try_into().unwrap()) as usize;
        let name_of = |h: &[u8]| {
            let at = names_at + u32::from_le_bytes(h[0..4].try_into().unwrap()) as usize;
            elf[at..].split(|&b| b == 0).next().unwrap().to_vec()
        };
        let moduledata = headers
            .iter()
            .position(|h| name_of(h) == b".noptrdata")
            .unwrap();
        let new_shoff = elf.len();
        elf.extend(&headers[0]);
        for i in 0..extra {
            let mut h = vec![0; 64];
            h[4..8].copy_from_slice(&1u32.to_le_bytes()); // PROGBITS
            h[8..16].copy_from_slice(&2u64.to_le_bytes()); // SHF_ALLOC
            let addr = 0x7000_0000_0000u64 + ((i as u64) << 32);
            h[16..24].copy_from_slice(&addr.to_le_bytes());
            h[24..32].copy_from_slice(&4u64.to_le_bytes());
            h[32..40].copy_from_slice(&len.to_le_bytes());
            elf.extend(h);
        }
        for (i, h) in headers.iter().enumerate().skip(1) {
            let mut h = h.clone();
            if i == moduledata {
                h[0..4].copy_from_slice(&0u32.to_le_bytes());
            }
            let link = u32::from_le_bytes(h[40..44].try_into().unwrap());
            if link != 0 {
                h[40..44].copy_from_slice(&(link + extra as u32).to_le_bytes());
            }
            elf.extend(h);
        }
        elf[40..48].copy_from_slice(&(new_shoff as u64).to_le_bytes());
        elf[60..62].copy_from_slice(&((shnum + extra) as u16).to_le_bytes());
        elf[62..64].copy_from_slice(&((shstrndx + extra) as u16).to_le_bytes());
        elf
    }

    /// A crafted file whose sections each hold all of it would make the
    /// search for `runtime.firstmoduledata` quadratic in its size: it reads
    /// the file twice over at most (a real binary's sections do not
    /// overlap, so this is all of them, and the named ones again).
    #[test]
    fn the_moduledata_search_reads_the_file_twice_at_most() {
        let gofunc = GoBinary::parse(&seed()).unwrap().pclntab.gofunc();
        assert!(gofunc.is_some());
        let bin = GoBinary::parse(&with_overlapping_sections(1)).unwrap();
        assert_eq!(bin.pclntab.gofunc(), gofunc);
        assert_eq!(bin.symbols, SymbolsSource::Symtab);
        let bin = GoBinary::parse(&with_overlapping_sections(3)).unwrap();
        assert_eq!(bin.pclntab.gofunc(), None);
        assert!(!bin.pclntab.functions.is_empty());
    }

    /// Segments that end past the top of the address space (a crafted
    /// ELF) end there: no arithmetic overflow. The `gobinary` fuzz target
    /// found the writable one (after 362 079 inputs, a vaddr of all ones).
    #[test]
    fn segments_past_the_address_space_are_not_overflows() {
        let bin = GoBinary::parse(&seed()).unwrap();
        let entry = bin.pclntab.entry("runtime.main").unwrap();
        assert!(bin.file_offset(entry).is_some());
        assert!(bin.data_symbol(VDSO_CLOCK_GETTIME_SYM).is_some());
        // The writable segment (R+W) where runtime variables are.
        let mut elf = seed();
        move_segment(&mut elf, 6, u64::MAX - 0x1000);
        let bin = GoBinary::parse(&elf).unwrap();
        let _ = bin.data_symbol(VDSO_CLOCK_GETTIME_SYM);
        // The text segment (R+X) uprobe offsets are taken in.
        let mut elf = seed();
        move_segment(&mut elf, 5, u64::MAX - 0x1000);
        let bin = GoBinary::parse(&elf).unwrap();
        assert_eq!(bin.file_offset(entry), None);
        assert_eq!(bin.file_offset(u64::MAX - 0x800), Some(0x800));
        assert_eq!(bin.file_offset(u64::MAX), Some(0x1000));
    }
}
