//! Reading a Go binary without a Go toolchain: its exact Go version and
//! module from `.go.buildinfo`, and its functions (name, entry, file and
//! line) from `.gopclntab`, which survives `-s -w` stripping. The layouts
//! per version are described in `buildinfo.rs` and `pclntab.rs`.

pub mod buildinfo;
pub mod pclntab;
pub mod symbolize;

use std::{fs, path::Path};

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
}

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
        })
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

/// Reads the bytes of the first section with one of `names`, with its address.
pub(crate) fn section<'a>(file: &object::File<'a>, names: &[&str]) -> Option<(u64, &'a [u8])> {
    names.iter().find_map(|name| {
        let s = file.section_by_name(name)?;
        Some((s.address(), s.data().ok()?))
    })
}
