//! Reading a Go binary without a Go toolchain: its exact Go version and
//! module from `.go.buildinfo`, and its functions (name, entry, file and
//! line) from `.gopclntab`, which survives `-s -w` stripping. The layouts
//! per version are described in `buildinfo.rs` and `pclntab.rs`.

pub mod buildinfo;
pub mod pclntab;
pub mod symbolize;

use std::{collections::HashMap, fs, path::Path};

use object::{Object as _, ObjectSection as _, ObjectSegment as _, ObjectSymbol as _};

pub use buildinfo::{BuildInfo, GoVersion};
pub use pclntab::{Function, Pclntab};

#[derive(Debug, thiserror::Error)]
pub enum GoBinError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
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

/// Where function names come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
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
    /// Link addresses of the runtime variables the tracer reads.
    data_symbols: HashMap<&'static str, u64>,
}

/// Runtime variables read from live processes (see `facts`).
const DATA_SYMBOLS: &[&str] = &[
    "runtime.vdsoClockgettimeSym",
    "runtime.gomaxprocs",
    "runtime.ncpu",
    "runtime.sched",
    "runtime.allm",
];

impl GoBinary {
    pub fn open(path: &Path) -> Result<Self, GoBinError> {
        let data = fs::read(path).map_err(|source| GoBinError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data)
    }

    pub fn parse(data: &[u8]) -> Result<Self, GoBinError> {
        let file = object::File::parse(data)?;
        let build = BuildInfo::from_elf(&file)?;
        let pclntab = Pclntab::from_elf(&file, &build.version)?;
        let has_symtab = file.symbols().any(|s| s.name() == Ok("runtime.main"));
        let mut data_symbols: HashMap<&'static str, u64> = file
            .symbols()
            .filter_map(|s| {
                let name = DATA_SYMBOLS.iter().find(|&&n| s.name() == Ok(n))?;
                Some((*name, s.address()))
            })
            .collect();
        if !data_symbols.contains_key("runtime.vdsoClockgettimeSym") {
            // Stripped: nanotime1 loads the variable first thing it reads
            // from memory by address (go-runtime.md §6).
            if let Some(addr) = rip_relative_load(&file, &pclntab, "runtime.nanotime1") {
                data_symbols.insert("runtime.vdsoClockgettimeSym", addr);
            }
        }
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
        })
    }

    /// The link address of a runtime variable the tracer reads (`.symtab`,
    /// or decoded from code for stripped binaries where possible).
    pub fn data_symbol(&self, name: &str) -> Option<u64> {
        self.data_symbols.get(name).copied()
    }

    /// The file offset of a virtual address in the executable segment (what
    /// a uprobe is attached by).
    pub fn file_offset(&self, vaddr: u64) -> Option<u64> {
        let (start, offset, size) = self.text_segment?;
        (start..start + size)
            .contains(&vaddr)
            .then(|| vaddr - start + offset)
    }
}

/// The address loaded by the first RIP-relative 64-bit `mov disp32(%rip),
/// %reg` (REX.W 8B /r with ModRM mod=00 rm=101) in `function`.
fn rip_relative_load(file: &object::File<'_>, tab: &Pclntab, function: &str) -> Option<u64> {
    let f = tab.functions.iter().find(|f| f.name == function)?;
    let text = file
        .sections()
        .find(|s| (s.address()..s.address() + s.size()).contains(&f.entry))?;
    let data = text.data().ok()?;
    let start = usize::try_from(f.entry - text.address()).ok()?;
    let end = usize::try_from(f.end - text.address())
        .ok()?
        .min(data.len());
    let code = data.get(start..end)?;
    code.windows(7).enumerate().find_map(|(i, w)| {
        let rex_w = w[0] & 0xf8 == 0x48;
        (rex_w && w[1] == 0x8b && w[2] & 0xc7 == 0x05).then(|| {
            let disp = i32::from_le_bytes([w[3], w[4], w[5], w[6]]);
            let next = f.entry + i as u64 + 7;
            next.wrapping_add_signed(i64::from(disp))
        })
    })
}

/// Reads the bytes of the first section with one of `names`, with its address.
pub(crate) fn section<'a>(file: &object::File<'a>, names: &[&str]) -> Option<(u64, &'a [u8])> {
    names.iter().find_map(|name| {
        let s = file.section_by_name(name)?;
        Some((s.address(), s.data().ok()?))
    })
}
