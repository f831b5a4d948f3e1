//! `.gopclntab`: the runtime's own function table, present in every Go
//! binary, stripped or not.
//!
//! Header (Go 1.18+, magic 0xfffffff0 for 1.18/1.19, 0xfffffff1 for 1.20+):
//! `magic u32, pad u16, minLC u8, ptrSize u8`, then eight words: `nfunc,
//! nfiles, textStart, funcnameOff, cuOff, filetabOff, pctabOff, pclnOff`.
//! The function table at `pclnOff` is `nfunc + 1` pairs of `(entryOff u32,
//! funcOff u32)`; each `_func` holds offsets of its name and of its pc→SP
//! delta, pc→file and pc→line tables. Entry addresses are `textStart +
//! entryOff`; Go 1.26+ writes 0 for textStart, so it is then read from
//! `runtime.firstmoduledata` (`moduledata.text`, found by its first two
//! words: the pclntab address and the function-name table address).
//!
//! Inlining: a `_func` is one *physical* function, and its pc→file and
//! pc→line tables describe the innermost *logical* function at each pc,
//! which may be a call the compiler inlined. Which one is in the
//! `PCDATA_InlTreeIndex` pc-value table (pcdata 2): -1 outside inlined code,
//! else an index into the function's inline tree (`FUNCDATA_InlTree`,
//! funcdata 3), an array of `runtime.inlinedCall` records at
//! `moduledata.gofunc` (the `go:func.*` symbol) plus the funcdata offset.
//! A record names the inlined callee and gives `parentPc`, the offset from
//! the entry of an instruction whose position is the call site: the
//! runtime's own unwinder (`runtime.CallersFrames`) looks the caller's
//! file, line and inline index up there, until the index is -1 (the
//! physical function). The record changed in Go 1.20 (see [`InlLayout`]).

use object::{Object as _, ObjectSection as _, read::File};

use super::{GoBinError, GoVersion, section};

const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;
/// Offset of `text` in `runtime.moduledata` (1.18 to 1.27).
const MODULEDATA_TEXT: usize = 0xb0;
/// Offset of the `pcsp` table offset in `_func` (1.18 to 1.27).
const FUNC_PCSP: usize = 16;
/// Offset of `npcdata` in `_func` (1.18 to 1.27).
const FUNC_NPCDATA: usize = 28;
/// `_PCDATA_InlTreeIndex`: which inline-tree record a pc belongs to.
const PCDATA_INL_TREE_INDEX: usize = 2;
/// `_FUNCDATA_InlTree`: the function's inline tree.
const FUNCDATA_INL_TREE: usize = 3;
/// Inlined calls followed at one pc at most: the compiler's inlining
/// budget keeps real chains far shorter; this only stops a corrupt tree
/// whose parents loop.
const MAX_INLINE_DEPTH: usize = 100;

/// `_func.flag` bit: the function is the outermost frame of a stack
/// (`runtime.goexit`, `runtime.mstart`, `runtime.rt0_go`).
pub const FLAG_TOPFRAME: u8 = 1;
/// `_func.flag` bit: the function writes SP other than by its prologue and
/// epilogue (stack switches such as `runtime.systemstack`, `runtime.mcall`),
/// so its pcsp table does not describe its frame everywhere.
pub const FLAG_SPWRITE: u8 = 2;
/// `_func.flag` bit: written in assembly.
pub const FLAG_ASM: u8 = 4;

/// A function from the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Function {
    pub name: String,
    pub entry: u64,
    /// First address past the function.
    pub end: u64,
    pub func_id: u8,
    /// `_func.flag`: [`FLAG_TOPFRAME`], [`FLAG_SPWRITE`], [`FLAG_ASM`].
    pub flag: u8,
    /// Offset of the `_func` record (for file/line lookups).
    func_off: usize,
}

/// The layout of `runtime.inlinedCall`, the inline tree's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InlLayout {
    /// Go 1.18 and 1.19 (`runtime/symtab.go`): `parent int16, funcID u8,
    /// _ byte, file int32, line int32, func_ int32 (name offset), parentPc
    /// int32`, 20 bytes. The file and line are those of the call site,
    /// which the runtime does not read (it looks them up at parentPc).
    Go118,
    /// Go 1.20+ (`runtime/symtabinl.go`): `funcID u8, _ [3]byte, nameOff
    /// int32, parentPc int32, startLine int32`, 16 bytes.
    Go120,
}

impl InlLayout {
    const fn size(self) -> usize {
        match self {
            Self::Go118 => 20,
            Self::Go120 => 16,
        }
    }

    /// Offsets of `funcID`, the name offset and `parentPc`.
    const fn fields(self) -> (usize, usize, usize) {
        match self {
            Self::Go118 => (2, 12, 16),
            Self::Go120 => (0, 4, 8),
        }
    }
}

/// One frame of the logical call stack at a pc: an inlined call, or the
/// physical function that holds the code (always the last one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogicalFrame<'a> {
    pub function: &'a str,
    /// The source position of the pc in this frame: the pc itself for the
    /// innermost frame, the call site of the inner frame for the others.
    pub file_line: Option<(&'a str, u32)>,
    /// The callee's funcID (inlined frames) or the function's.
    pub func_id: u8,
    /// `false` for the physical function.
    pub inlined: bool,
}

/// The parsed function table of one binary.
#[derive(Debug)]
pub struct Pclntab {
    data: Vec<u8>,
    pub text_start: u64,
    pub functions: Vec<Function>,
    min_lc: u64,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    /// Where `_func.funcID` is; the flag byte follows, and the fixed part
    /// of `_func` ends with `nfuncdata` 3 bytes after it (then come the
    /// pcdata and funcdata offsets, u32 each).
    func_id_at: usize,
    inl_layout: InlLayout,
    /// `moduledata.gofunc` (what funcdata offsets are relative to) and the
    /// binary's bytes from there to the end of its section: `None` when
    /// the moduledata was not found (then inlined calls are not expanded).
    gofunc: Option<(u64, Vec<u8>)>,
    /// The funcID of ABI wrappers in this version.
    wrapper_id: u8,
}

/// `len` bytes at `off`, `None` past the end (or on overflow).
fn bytes_at(d: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    d.get(off..off.checked_add(len)?)
}

fn u32_at(d: &[u8], off: usize) -> Result<u32, GoBinError> {
    bytes_at(d, off, 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(GoBinError::Pclntab("offset out of range"))
}

fn u64_at(d: &[u8], off: usize) -> Result<u64, GoBinError> {
    bytes_at(d, off, 8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or(GoBinError::Pclntab("offset out of range"))
}

fn cstr(d: &[u8], off: usize) -> Result<&str, GoBinError> {
    let tail = d
        .get(off..)
        .ok_or(GoBinError::Pclntab("name offset out of range"))?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or(GoBinError::Pclntab("unterminated name"))?;
    std::str::from_utf8(&tail[..len]).map_err(|_| GoBinError::Pclntab("name is not UTF-8"))
}

/// The funcID the linker gives ABI wrappers, per version (its value in the
/// linker's `abi.FuncID` enumeration moved as IDs were added before it).
fn wrapper_func_id(version: &GoVersion) -> u8 {
    match version.minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}

/// Offset of `gofunc` in `runtime.moduledata`: after `rodata`, which
/// follows `types, etypes` (1.18, 1.19), then `covctrs, ecovctrs` (1.20+)
/// and `typedesclen`, `itaboffset, itabsize` (1.27+) were added before it.
fn moduledata_gofunc(version: &GoVersion) -> usize {
    match version.minor {
        ..=19 => 0x130,
        20..=26 => 0x140,
        _ => 0x158,
    }
}

impl Pclntab {
    pub fn from_elf(file: &File<'_>, version: &GoVersion) -> Result<Self, GoBinError> {
        let (addr, data) = section(file, &[".gopclntab", ".data.rel.ro.gopclntab"])
            .ok_or(GoBinError::Pclntab("no .gopclntab section"))?;
        let mut table = Self::parse(data, version)?;
        let moduledata = find_moduledata(file, addr, table.funcname_off as u64);
        let word = |off: usize| moduledata.and_then(|m| u64_at(m, off).ok());
        if table.text_start == 0 {
            table.text_start = word(MODULEDATA_TEXT).ok_or(GoBinError::Pclntab(
                "textStart is 0 and runtime.firstmoduledata was not found",
            ))?;
            table.rebase();
        }
        if let Some(gofunc) = word(moduledata_gofunc(version)) {
            table.gofunc = section_tail(file, gofunc).map(|bytes| (gofunc, bytes.to_vec()));
        }
        Ok(table)
    }

    /// Parses the table; entries are relative to the header's textStart
    /// (which may be 0 on Go 1.26+: see [`Pclntab::from_elf`]). Inlined
    /// calls are only expanded once [`Pclntab::set_gofunc`] is given the
    /// funcdata (as `from_elf` does).
    pub fn parse(data: &[u8], version: &GoVersion) -> Result<Self, GoBinError> {
        let magic = u32_at(data, 0)?;
        // The funcID field of `_func` (the flag byte follows it): 1.20 added
        // startLine before it, and changed the inline tree's records.
        let (func_id_at, inl_layout) = match magic {
            MAGIC_118 => (36, InlLayout::Go118),
            MAGIC_120 => (40, InlLayout::Go120),
            other => return Err(GoBinError::UnsupportedPclntab(other)),
        };
        if data.get(7) != Some(&8) {
            return Err(GoBinError::Pclntab("pointer size is not 8"));
        }
        let word = |i: usize| u64_at(data, 8 + 8 * i);
        let nfunc = usize::try_from(word(0)?).map_err(|_| GoBinError::Pclntab("nfunc"))?;
        let off = |i: usize| {
            word(i).and_then(|w| usize::try_from(w).map_err(|_| GoBinError::Pclntab("offset")))
        };
        let mut table = Self {
            data: data.to_vec(),
            text_start: word(2)?,
            // Each function takes 8 bytes of the function table at least:
            // a corrupt count must not reserve more than the data can hold.
            functions: Vec::with_capacity(nfunc.min(data.len() / 8)),
            min_lc: u64::from(data[6].max(1)),
            funcname_off: off(3)?,
            cu_off: off(4)?,
            filetab_off: off(5)?,
            pctab_off: off(6)?,
            func_id_at,
            inl_layout,
            gofunc: None,
            wrapper_id: wrapper_func_id(version),
        };
        let pcln = off(7)?;
        let ftab = |i: usize| -> Result<(u32, u32), GoBinError> {
            let at = i
                .checked_mul(8)
                .and_then(|o| o.checked_add(pcln))
                .ok_or(GoBinError::Pclntab("function table out of range"))?;
            Ok((u32_at(data, at)?, u32_at(data, at.saturating_add(4))?))
        };
        // Names are stored once (an ABI wrapper shares its function's):
        // in real tables they add up to a fifth of the table at most. Names
        // overlapping in a crafted one (every function naming the same long
        // string) would take memory quadratic in its size.
        let mut name_bytes = 0usize;
        for i in 0..nfunc {
            let (entry_off, func_off) = ftab(i)?;
            let (next_entry, _) = ftab(i + 1)?;
            let func_off = pcln.saturating_add(func_off as usize);
            let name_off = u32_at(data, func_off.saturating_add(4))? as usize;
            let byte = |at: usize| {
                data.get(func_off.saturating_add(at))
                    .copied()
                    .ok_or(GoBinError::Pclntab("_func"))
            };
            let name = cstr(data, table.funcname_off.saturating_add(name_off))?;
            name_bytes = name_bytes.saturating_add(name.len());
            if name_bytes > data.len() {
                return Err(GoBinError::Pclntab(
                    "function names add up to more than the table (overlapping names)",
                ));
            }
            table.functions.push(Function {
                name: name.to_owned(),
                entry: u64::from(entry_off),
                end: u64::from(next_entry),
                func_id: byte(func_id_at)?,
                flag: byte(func_id_at + 1)?,
                func_off,
            });
        }
        table.rebase();
        Ok(table)
    }

    /// Turns the stored offsets into addresses once textStart is known.
    fn rebase(&mut self) {
        let base = self.text_start;
        for f in &mut self.functions {
            f.entry = base.wrapping_add(f.entry & 0xffff_ffff);
            f.end = base.wrapping_add(f.end & 0xffff_ffff);
        }
    }

    /// Gives the table the funcdata its inline trees are in: `gofunc` is
    /// `moduledata.gofunc`, `bytes` the binary's contents from there on.
    pub fn set_gofunc(&mut self, gofunc: u64, bytes: Vec<u8>) {
        self.gofunc = Some((gofunc, bytes));
    }

    /// `moduledata.gofunc` (the `go:func.*` symbol), where the funcdata
    /// offsets of `_func` point from; `None` if it was not found.
    pub fn gofunc(&self) -> Option<u64> {
        self.gofunc.as_ref().map(|(addr, _)| *addr)
    }

    /// The entry address of a function by name, skipping ABI wrappers (which
    /// share the name and would be the wrong place to probe).
    pub fn entry(&self, name: &str) -> Option<u64> {
        self.functions
            .iter()
            .filter(|f| f.name == name)
            .min_by_key(|f| f.func_id == self.wrapper_id)
            .map(|f| f.entry)
    }

    /// The funcID of ABI and method wrappers in this Go version.
    pub fn wrapper_func_id(&self) -> u8 {
        self.wrapper_id
    }

    /// The function containing `pc`.
    pub fn function_at(&self, pc: u64) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.entry <= pc);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (pc < f.end).then_some(f)
    }

    /// Source file and line of `pc` (for symbolizing stacks): the innermost
    /// logical frame's, which is an inlined callee's in inlined code (see
    /// [`Pclntab::logical_frames`]).
    pub fn file_line(&self, pc: u64) -> Option<(&str, u32)> {
        self.file_line_in(self.function_at(pc)?, pc)
    }

    fn file_line_in(&self, f: &Function, pc: u64) -> Option<(&str, u32)> {
        let d = &self.data;
        let field = |i: usize| u32_at(d, f.func_off.checked_add(i)?).ok();
        let (pcfile, pcln, cu) = (field(20)?, field(24)?, field(32)?);
        let file_no = usize::try_from(self.pcvalue(pcfile, f.entry, pc)?).ok()?;
        let line = self.pcvalue(pcln, f.entry, pc)?;
        let cu_entry = (cu as usize)
            .checked_add(file_no)?
            .checked_mul(4)?
            .checked_add(self.cu_off)?;
        let file_off = u32_at(d, cu_entry).ok()?;
        let file = cstr(d, self.filetab_off.checked_add(file_off as usize)?).ok()?;
        Some((file, u32::try_from(line).ok()?))
    }

    /// The logical frames at `pc`, innermost first: the inlined calls the
    /// pc is in, then the physical function, each with its own file and
    /// line (`runtime.CallersFrames`' answer for a pc that is not a return
    /// address). Empty outside the known functions. Inlined ABI and method
    /// wrappers are kept here, with their funcID; the runtime hides them
    /// from tracebacks unless they called a panic function.
    pub fn logical_frames(&self, pc: u64) -> Vec<LogicalFrame<'_>> {
        let mut frames = Vec::new();
        let Some(f) = self.function_at(pc) else {
            return frames;
        };
        let mut pc = pc;
        let mut file_line = self.file_line_in(f, pc);
        for _ in 0..MAX_INLINE_DEPTH {
            let Some((func_id, name, parent_pc)) = self.inlined_call(f, pc) else {
                break;
            };
            frames.push(LogicalFrame {
                function: name,
                file_line,
                func_id,
                inlined: true,
            });
            // The call site: an instruction of the caller with its position
            // (the runtime looks it up as is, not as a return address).
            pc = f.entry.wrapping_add(parent_pc);
            file_line = self.file_line_in(f, pc);
        }
        frames.push(LogicalFrame {
            function: &f.name,
            file_line,
            func_id: f.func_id,
            inlined: false,
        });
        frames
    }

    /// The innermost logical frame at `pc` (the first of
    /// [`Pclntab::logical_frames`], without decoding the others).
    pub fn innermost_frame(&self, pc: u64) -> Option<LogicalFrame<'_>> {
        let f = self.function_at(pc)?;
        let file_line = self.file_line_in(f, pc);
        Some(match self.inlined_call(f, pc) {
            Some((func_id, function, _)) => LogicalFrame {
                function,
                file_line,
                func_id,
                inlined: true,
            },
            None => LogicalFrame {
                function: &f.name,
                file_line,
                func_id: f.func_id,
                inlined: false,
            },
        })
    }

    /// The inlined call `pc` of `f` is in, as `(funcID, callee name,
    /// parentPc)`: `None` outside inlined code, for a function without an
    /// inline tree, and wherever the tables cannot be read.
    fn inlined_call(&self, f: &Function, pc: u64) -> Option<(u8, &str, u64)> {
        let table = self.pcdata(f, PCDATA_INL_TREE_INDEX)?;
        let index = usize::try_from(self.pcvalue(table, f.entry, pc)?).ok()?;
        let tree = self.funcdata(f, FUNCDATA_INL_TREE)?;
        let layout = self.inl_layout;
        let record = bytes_at(tree, index.checked_mul(layout.size())?, layout.size())?;
        let (id_at, name_at, parent_at) = layout.fields();
        let i32_at = |at: usize| Some(i32::from_le_bytes(record.get(at..at + 4)?.try_into().ok()?));
        let name_off = usize::try_from(i32_at(name_at)?).ok()?;
        let name = cstr(&self.data, self.funcname_off.checked_add(name_off)?).ok()?;
        let parent_pc = u64::try_from(i32_at(parent_at)?).ok()?;
        Some((record[id_at], name, parent_pc))
    }

    /// Where the fixed part of `f`'s `_func` ends, and its `npcdata` and
    /// `nfuncdata`.
    fn func_tail(&self, f: &Function) -> Option<(usize, usize, usize)> {
        let d = &self.data;
        let npcdata = u32_at(d, f.func_off.checked_add(FUNC_NPCDATA)?).ok()? as usize;
        let last = f.func_off.checked_add(self.func_id_at + 3)?;
        Some((last.checked_add(1)?, npcdata, usize::from(*d.get(last)?)))
    }

    /// The offset (in the pc-value tables) of `f`'s pcdata table `i`.
    fn pcdata(&self, f: &Function, i: usize) -> Option<u32> {
        let (tail, npcdata, _) = self.func_tail(f)?;
        if i >= npcdata {
            return None;
        }
        u32_at(&self.data, tail.checked_add(4 * i)?).ok()
    }

    /// `f`'s funcdata `i` (runtime `funcdata`): the bytes from
    /// `moduledata.gofunc` plus its offset on; `None` when it has none.
    fn funcdata(&self, f: &Function, i: usize) -> Option<&[u8]> {
        let (tail, npcdata, nfuncdata) = self.func_tail(f)?;
        if i >= nfuncdata {
            return None;
        }
        let at = npcdata.checked_add(i)?.checked_mul(4)?.checked_add(tail)?;
        let off = u32_at(&self.data, at).ok()?;
        if off == u32::MAX {
            return None;
        }
        self.gofunc.as_ref()?.1.get(off as usize..)
    }

    /// How far SP is below its value at the function's entry when `pc`
    /// executes, not counting the return address the call pushed: the
    /// `pcsp` table (runtime `funcspdelta`). The return address of the frame
    /// at `pc` is at `SP + sp_delta`, and the caller's SP is 8 above it.
    /// `None` outside the known functions, for a function without a table
    /// (external code), or for a negative delta (a corrupt table).
    pub fn sp_delta(&self, pc: u64) -> Option<u64> {
        let f = self.function_at(pc)?;
        let pcsp = u32_at(&self.data, f.func_off.checked_add(FUNC_PCSP)?).ok()?;
        u64::try_from(self.pcvalue(pcsp, f.entry, pc)?).ok()
    }

    /// Decodes a pc-value table (runtime `pcvalue`): zigzag value deltas and
    /// pc deltas, varint-encoded, starting from value -1 at the entry.
    fn pcvalue(&self, table: u32, entry: u64, target: u64) -> Option<i64> {
        if table == 0 {
            return None;
        }
        let d = &self.data;
        let mut p = self.pctab_off.checked_add(table as usize)?;
        let mut value: i64 = -1;
        let mut pc = entry;
        let mut first = true;
        loop {
            let (uv, n) = varint(d.get(p..)?)?;
            p += n;
            if uv == 0 && !first {
                return None;
            }
            first = false;
            let delta = if uv & 1 != 0 {
                !(uv >> 1) as i64
            } else {
                (uv >> 1) as i64
            };
            value = value.checked_add(delta)?;
            let (pcd, n) = varint(d.get(p..)?)?;
            p += n;
            pc = pc.checked_add(pcd.checked_mul(self.min_lc)?)?;
            if target < pc {
                return Some(value);
            }
        }
    }
}

fn varint(d: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in d.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// `runtime.firstmoduledata` and the rest of its section: the only place
/// that begins with the pclntab address followed by the name-table
/// address.
fn find_moduledata<'a>(file: &File<'a>, pclntab_addr: u64, funcname_off: u64) -> Option<&'a [u8]> {
    let mut pattern = pclntab_addr.to_le_bytes().to_vec();
    pattern.extend(pclntab_addr.wrapping_add(funcname_off).to_le_bytes());
    // The sections of a real binary do not overlap in the file, so the
    // search reads it twice at most (the named sections, then all). A
    // crafted one whose many sections each hold the whole file would take
    // time quadratic in its size: the search stops at twice its length.
    let file_end = file
        .sections()
        .filter_map(|s| s.file_range())
        .map(|(offset, size)| offset.saturating_add(size))
        .max()
        .unwrap_or(0);
    let mut budget = file_end.saturating_mul(2);
    let mut find = |data: &'a [u8]| {
        budget = budget.checked_sub(data.len() as u64)?;
        let i = (0..data.len().saturating_sub(MODULEDATA_TEXT + 8))
            .step_by(8)
            .find(|&i| data[i..].starts_with(&pattern))?;
        Some(&data[i..])
    };
    for name in [".go.module", ".noptrdata", ".data.rel.ro", ".data"] {
        let Some(sec) = file.section_by_name(name) else {
            continue;
        };
        if let Some(found) = sec.data().ok().and_then(&mut find) {
            return Some(found);
        }
    }
    // PIE binaries may keep moduledata in a relocated section: try all.
    file.sections().find_map(|sec| find(sec.data().ok()?))
}

/// The contents of the binary from `addr` to the end of the section that
/// holds it.
fn section_tail<'a>(file: &File<'a>, addr: u64) -> Option<&'a [u8]> {
    const SHF_ALLOC: u64 = 2;
    file.sections().find_map(|sec| {
        let object::SectionFlags::Elf { sh_flags } = sec.flags() else {
            return None;
        };
        if sh_flags & SHF_ALLOC == 0 {
            return None;
        }
        let start = addr.checked_sub(sec.address())?;
        if start >= sec.size() {
            return None;
        }
        sec.data().ok()?.get(usize::try_from(start).ok()?..)
    })
}

/// A hand-built pclntab (Go 1.20+ layout, or 1.18's) for unit tests.
#[cfg(test)]
pub(crate) mod synthetic {
    use super::*;

    /// Where [`build`] puts the funcdata (`moduledata.gofunc`).
    pub const GOFUNC: u64 = 0x7_0000;

    /// One function: name, `[entry, end)` relative to textStart, `_func.flag`,
    /// its pcsp table as `(sp delta, up to this pc offset)` runs, and
    /// optionally its line, file (an index into [`build`]'s files) and
    /// inline-tree-index tables in the same form, and its inline tree.
    #[derive(Default)]
    pub struct Func<'a> {
        pub name: &'a str,
        pub entry: u32,
        pub end: u32,
        pub flag: u8,
        pub pcsp: &'a [(i64, u32)],
        pub lines: &'a [(i64, u32)],
        pub files: &'a [(i64, u32)],
        pub inl_index: &'a [(i64, u32)],
        pub inl_tree: &'a [Inlined<'a>],
    }

    /// One `runtime.inlinedCall`: the callee, its funcID and the call
    /// site's offset from the entry.
    pub struct Inlined<'a> {
        pub name: &'a str,
        pub func_id: u8,
        pub parent_pc: i32,
    }

    fn uvarint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// Encodes a pc-value table the way `cmd/internal/obj` does: zigzag
    /// value deltas from -1, pc deltas, a 0 terminator.
    pub fn pcvalue_table(runs: &[(i64, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut value, mut pc) = (-1i64, 0u32);
        for &(v, until) in runs {
            let delta = v - value;
            let zigzag = if delta < 0 {
                (!delta as u64) << 1 | 1
            } else {
                (delta as u64) << 1
            };
            uvarint(&mut out, zigzag);
            uvarint(&mut out, u64::from(until - pc));
            (value, pc) = (v, until);
        }
        out.push(0);
        out
    }

    /// A Go 1.20+ table of `funcs` without files.
    pub fn pclntab(text_start: u64, funcs: &[Func<'_>]) -> Pclntab {
        build(text_start, &[], funcs, InlLayout::Go120)
    }

    /// Lays out header, names, file tables, pc tables, functab and `_func`
    /// records (with pcdata and funcdata offsets) in the `layout`
    /// version's format, and the inline trees at [`GOFUNC`].
    pub fn build(
        text_start: u64,
        files: &[&str],
        funcs: &[Func<'_>],
        layout: InlLayout,
    ) -> Pclntab {
        const HEADER: usize = 72;
        let (magic, fixed, func_id_at, version) = match layout {
            InlLayout::Go118 => (0xf0, 40, 36, 19),
            InlLayout::Go120 => (0xf1, 44, 40, 27),
        };
        let mut names = Vec::new();
        let mut name = |s: &str| {
            let off = names.len() as u32;
            names.extend(s.as_bytes());
            names.push(0);
            off
        };
        let name_offs: Vec<u32> = funcs.iter().map(|f| name(f.name)).collect();
        let inl_name_offs: Vec<Vec<u32>> = funcs
            .iter()
            .map(|f| f.inl_tree.iter().map(|c| name(c.name)).collect())
            .collect();
        let mut filetab = Vec::new();
        let mut cutab = Vec::new();
        for file in files {
            cutab.extend((filetab.len() as u32).to_le_bytes());
            filetab.extend(file.as_bytes());
            filetab.push(0);
        }
        // Offset 0 of pctab means "no table": start with a pad byte.
        let mut pctab = vec![0u8];
        let mut table = |runs: &[(i64, u32)]| {
            if runs.is_empty() {
                return 0;
            }
            let off = pctab.len() as u32;
            pctab.extend(pcvalue_table(runs));
            off
        };
        let tables: Vec<[u32; 4]> = funcs
            .iter()
            .map(|f| {
                [
                    table(f.pcsp),
                    table(f.files),
                    table(f.lines),
                    table(f.inl_index),
                ]
            })
            .collect();
        let mut gofunc = Vec::new();
        let mut trees = Vec::new();
        for (f, name_offs) in funcs.iter().zip(&inl_name_offs) {
            if f.inl_tree.is_empty() {
                trees.push(u32::MAX);
                continue;
            }
            trees.push(gofunc.len() as u32);
            for (call, &name_off) in f.inl_tree.iter().zip(name_offs) {
                let mut rec = vec![0u8; layout.size()];
                let (id_at, name_at, parent_at) = layout.fields();
                rec[id_at] = call.func_id;
                rec[name_at..name_at + 4].copy_from_slice(&name_off.to_le_bytes());
                rec[parent_at..parent_at + 4].copy_from_slice(&call.parent_pc.to_le_bytes());
                gofunc.extend(rec);
            }
        }
        let funcname_off = HEADER;
        let cu_off = funcname_off + names.len();
        let filetab_off = cu_off + cutab.len();
        let pctab_off = filetab_off + filetab.len();
        let pcln_off = pctab_off + pctab.len();
        let mut records = Vec::new();
        let mut func_offs = Vec::new();
        for (i, f) in funcs.iter().enumerate() {
            func_offs.push(records.len());
            let [pcsp, pcfile, pcln, inl] = tables[i];
            let (npcdata, nfuncdata) = (
                if inl == 0 { 0 } else { 3 },
                if trees[i] == u32::MAX { 0 } else { 4 },
            );
            let mut rec = vec![0u8; fixed];
            rec[0..4].copy_from_slice(&f.entry.to_le_bytes());
            rec[4..8].copy_from_slice(&name_offs[i].to_le_bytes());
            rec[16..20].copy_from_slice(&pcsp.to_le_bytes());
            rec[20..24].copy_from_slice(&pcfile.to_le_bytes());
            rec[24..28].copy_from_slice(&pcln.to_le_bytes());
            rec[28..32].copy_from_slice(&(npcdata as u32).to_le_bytes());
            rec[func_id_at + 1] = f.flag;
            rec[fixed - 1] = nfuncdata as u8;
            for j in 0..npcdata {
                let off = if j == PCDATA_INL_TREE_INDEX { inl } else { 0 };
                rec.extend(off.to_le_bytes());
            }
            for j in 0..nfuncdata {
                let off = if j == FUNCDATA_INL_TREE {
                    trees[i]
                } else {
                    u32::MAX
                };
                rec.extend(off.to_le_bytes());
            }
            records.extend(rec);
        }
        let functab_len = 8 * (funcs.len() + 1);
        let mut pcln = Vec::new();
        for (f, off) in funcs.iter().zip(&func_offs) {
            pcln.extend(f.entry.to_le_bytes());
            pcln.extend(((functab_len + off) as u32).to_le_bytes());
        }
        pcln.extend(funcs.last().map_or(0, |f| f.end).to_le_bytes());
        pcln.extend(0u32.to_le_bytes());
        pcln.extend(records);
        let mut data = vec![magic, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        for word in [
            funcs.len(),
            files.len(),
            text_start as usize,
            funcname_off,
            cu_off,
            filetab_off,
            pctab_off,
            pcln_off,
        ] {
            data.extend((word as u64).to_le_bytes());
        }
        data.extend(names);
        data.extend(cutab);
        data.extend(filetab);
        data.extend(pctab);
        data.extend(pcln);
        let version = GoVersion {
            major: 1,
            minor: version,
            patch: 0,
        };
        let mut tab = Pclntab::parse(&data, &version).expect("synthetic pclntab parses");
        tab.set_gofunc(GOFUNC, gofunc);
        tab
    }
    /// `main.readFd` with `syscall.Read` inlined into it, and a runtime
    /// helper inlined into that (Go 1.20+ or 1.18 records), then a
    /// function without tables.
    pub fn inlined(layout: InlLayout) -> Pclntab {
        build(
            0x40_1000,
            &[
                "/src/main.go",
                "/go/src/syscall/syscall_unix.go",
                "/go/src/runtime/extern.go",
            ],
            &[
                Func {
                    name: "main.readFd",
                    entry: 0,
                    end: 0x80,
                    pcsp: &[(0, 0x80)],
                    // Own code at line 10; syscall.Read (index 0) at lines
                    // 182-183, the helper (index 1) called from its line
                    // 183; back in readFd at line 12, where the call was.
                    lines: &[
                        (10, 0x10),
                        (182, 0x18),
                        (183, 0x20),
                        (300, 0x28),
                        (12, 0x30),
                        (13, 0x80),
                    ],
                    files: &[(0, 0x10), (1, 0x20), (2, 0x28), (0, 0x80)],
                    inl_index: &[(-1, 0x10), (0, 0x20), (1, 0x28), (-1, 0x80)],
                    inl_tree: &[
                        Inlined {
                            name: "syscall.Read",
                            func_id: 0,
                            parent_pc: 0x28,
                        },
                        Inlined {
                            name: "runtime.helper",
                            func_id: 0,
                            parent_pc: 0x18,
                        },
                    ],
                    ..Default::default()
                },
                Func {
                    name: "syscall.Syscall",
                    entry: 0x80,
                    end: 0xa0,
                    pcsp: &[(0, 0x20)],
                    ..Default::default()
                },
            ],
            layout,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_wrapper_ids() {
        assert_eq!(varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(varint(&[0x80]), None);
        let v = |minor| GoVersion {
            major: 1,
            minor,
            patch: 0,
        };
        assert_eq!(wrapper_func_id(&v(19)), 21);
        assert_eq!(wrapper_func_id(&v(23)), 22);
        assert_eq!(wrapper_func_id(&v(27)), 23);
    }

    #[test]
    fn rejects_unknown_magic() {
        let v = GoVersion {
            major: 1,
            minor: 27,
            patch: 0,
        };
        let data = [0xfb, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        assert!(matches!(
            Pclntab::parse(&data, &v),
            Err(GoBinError::UnsupportedPclntab(0xffff_fffb))
        ));
    }

    #[test]
    fn sp_delta_follows_the_pcsp_table() {
        // A function whose prologue (4 bytes) opens a 0x18-byte frame and
        // whose epilogue (at +0x30) closes it again before the RET.
        let tab = synthetic::pclntab(
            0x40_1000,
            &[synthetic::Func {
                name: "main.f",
                entry: 0x20,
                end: 0x40,
                flag: 0,
                pcsp: &[(0, 4), (0x18, 0x1c), (0, 0x20)],
                ..Default::default()
            }],
        );
        let f = &tab.functions[0];
        assert_eq!(
            (f.name.as_str(), f.entry, f.end),
            ("main.f", 0x40_1020, 0x40_1040)
        );
        assert_eq!(tab.sp_delta(0x40_1020), Some(0));
        assert_eq!(tab.sp_delta(0x40_1023), Some(0));
        assert_eq!(tab.sp_delta(0x40_1024), Some(0x18));
        assert_eq!(tab.sp_delta(0x40_103b), Some(0x18));
        assert_eq!(tab.sp_delta(0x40_103c), Some(0));
        assert_eq!(tab.sp_delta(0x40_1040), None, "past the end");
        assert_eq!(tab.sp_delta(0x40_101f), None, "before the entry");
    }

    #[test]
    fn pcvalue_encoding_round_trips_negative_and_large_deltas() {
        // Two-byte varints and a negative step (a frame that shrinks).
        let runs = [(0, 1), (0x1000, 0x200), (8, 0x300)];
        let table = synthetic::pcvalue_table(&runs);
        assert_eq!(table[..2], [0x02, 0x01]);
        let tab = synthetic::pclntab(
            0x1000,
            &[synthetic::Func {
                name: "f",
                entry: 0,
                end: 0x300,
                flag: 0,
                pcsp: &runs,
                ..Default::default()
            }],
        );
        assert_eq!(tab.sp_delta(0x1000), Some(0));
        assert_eq!(tab.sp_delta(0x1001), Some(0x1000));
        assert_eq!(tab.sp_delta(0x11ff), Some(0x1000));
        assert_eq!(tab.sp_delta(0x1200), Some(8));
        assert_eq!(tab.sp_delta(0x12ff), Some(8));
    }

    fn names_and_lines(frames: &[LogicalFrame<'_>]) -> Vec<(String, String, u32, bool)> {
        frames
            .iter()
            .map(|f| {
                let (file, line) = f.file_line.unwrap_or(("?", 0));
                (f.function.to_owned(), file.to_owned(), line, f.inlined)
            })
            .collect()
    }

    #[test]
    fn inline_trees_expand_in_both_record_layouts() {
        let row =
            |f: &str, file: &str, line, inlined| (f.to_owned(), file.to_owned(), line, inlined);
        for layout in [InlLayout::Go118, InlLayout::Go120] {
            let tab = synthetic::inlined(layout);
            assert_eq!(
                names_and_lines(&tab.logical_frames(0x40_1022)),
                [
                    row("runtime.helper", "/go/src/runtime/extern.go", 300, true),
                    row("syscall.Read", "/go/src/syscall/syscall_unix.go", 183, true),
                    row("main.readFd", "/src/main.go", 12, false),
                ],
                "{layout:?}"
            );
            assert_eq!(
                names_and_lines(&tab.logical_frames(0x40_1010)),
                [
                    row("syscall.Read", "/go/src/syscall/syscall_unix.go", 182, true),
                    row("main.readFd", "/src/main.go", 12, false),
                ],
                "{layout:?}"
            );
            // Outside inlined code, and a function without any table.
            assert_eq!(
                names_and_lines(&tab.logical_frames(0x40_1030)),
                [row("main.readFd", "/src/main.go", 13, false)]
            );
            assert_eq!(
                names_and_lines(&tab.logical_frames(0x40_1090)),
                [row("syscall.Syscall", "?", 0, false)]
            );
            assert!(tab.logical_frames(0x40_10a0).is_empty());
            // The innermost frame alone, and the pc tables' file and line.
            let inner = tab.innermost_frame(0x40_1022).unwrap();
            assert_eq!(
                names_and_lines(&[inner]),
                [row(
                    "runtime.helper",
                    "/go/src/runtime/extern.go",
                    300,
                    true
                )]
            );
            assert_eq!(tab.file_line(0x40_1022), inner.file_line);
            assert_eq!(
                tab.innermost_frame(0x40_1005).unwrap().function,
                "main.readFd"
            );
        }
    }

    #[test]
    fn without_funcdata_nothing_is_expanded() {
        let mut tab = synthetic::inlined(InlLayout::Go120);
        tab.gofunc = None;
        let frames = tab.logical_frames(0x40_1022);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].function, "main.readFd");
        assert_eq!(tab.gofunc(), None);
    }

    #[test]
    fn corrupt_inline_trees_do_not_loop_or_panic() {
        // A record whose call site is in its own inlined code: the chain
        // loops, and is cut.
        let looping = synthetic::pclntab(
            0x1000,
            &[synthetic::Func {
                name: "f",
                entry: 0,
                end: 0x10,
                pcsp: &[(0, 0x10)],
                inl_index: &[(0, 0x10)],
                inl_tree: &[synthetic::Inlined {
                    name: "g",
                    func_id: 0,
                    parent_pc: 4,
                }],
                ..Default::default()
            }],
        );
        let frames = looping.logical_frames(0x1000);
        assert_eq!(frames.len(), MAX_INLINE_DEPTH + 1);
        assert_eq!(frames.last().map(|f| f.function), Some("f"));
        // An index past the tree, a call site past the function, a name
        // offset past the names: the physical function (or as far as the
        // records could be read).
        let broken = synthetic::pclntab(
            0x1000,
            &[
                synthetic::Func {
                    name: "f",
                    entry: 0,
                    end: 0x10,
                    pcsp: &[(0, 0x10)],
                    inl_index: &[(5, 0x10)],
                    inl_tree: &[synthetic::Inlined {
                        name: "g",
                        func_id: 0,
                        parent_pc: 0,
                    }],
                    ..Default::default()
                },
                synthetic::Func {
                    name: "h",
                    entry: 0x10,
                    end: 0x20,
                    pcsp: &[(0, 0x10)],
                    inl_index: &[(0, 0x10)],
                    inl_tree: &[synthetic::Inlined {
                        name: "i",
                        func_id: 0,
                        parent_pc: 0x7fff_0000,
                    }],
                    ..Default::default()
                },
            ],
        );
        let names = |pc| -> Vec<&str> {
            broken
                .logical_frames(pc)
                .iter()
                .map(|f| f.function)
                .collect()
        };
        assert_eq!(names(0x1000), ["f"]);
        assert_eq!(names(0x1010), ["i", "h"]);
    }

    /// A small deterministic generator for the mutation test.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn mutated_tables_never_panic() {
        for layout in [InlLayout::Go118, InlLayout::Go120] {
            let good = synthetic::inlined(layout);
            let gofunc = good.gofunc.clone().unwrap();
            let version = GoVersion {
                major: 1,
                minor: if layout == InlLayout::Go118 { 19 } else { 27 },
                patch: 0,
            };
            let mut state = 0x2545_f491_4f6c_dd1d_u64;
            for round in 0..3000 {
                let mut data = good.data.clone();
                let mut tree = gofunc.1.clone();
                for _ in 0..1 + round % 4 {
                    let r = xorshift(&mut state);
                    let byte = (r >> 8) as u8;
                    if r.is_multiple_of(5) && !tree.is_empty() {
                        let i = (r >> 16) as usize % tree.len();
                        tree[i] = byte;
                    } else {
                        let i = (r >> 16) as usize % data.len();
                        data[i] = if r.is_multiple_of(3) { 0xff } else { byte };
                    }
                }
                if round % 50 == 0 {
                    data.truncate((xorshift(&mut state) as usize) % data.len());
                }
                let Ok(mut tab) = Pclntab::parse(&data, &version) else {
                    continue;
                };
                tab.set_gofunc(gofunc.0, tree);
                for pc in (0x40_0ff0..0x40_10b0).step_by(3) {
                    let frames = tab.logical_frames(pc);
                    assert!(frames.len() <= MAX_INLINE_DEPTH + 1);
                    let _ = tab.innermost_frame(pc);
                    let _ = tab.sp_delta(pc);
                }
            }
        }
    }

    /// Every function of a crafted table naming the same long string: the
    /// names would add up to the square of the table's size.
    #[test]
    fn overlapping_names_are_rejected() {
        const NFUNC: usize = 20_000;
        const NAME: usize = 50_000;
        let funcname_off = 72;
        let pcln_off = funcname_off + NAME + 1;
        let mut data = vec![0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        for word in [NFUNC, 0, 0x1000, funcname_off, 0, 0, 0, pcln_off] {
            data.extend((word as u64).to_le_bytes());
        }
        data.extend([b'f'; NAME]);
        data.push(0);
        let record = 8 * (NFUNC + 1);
        for i in 0..=NFUNC {
            data.extend((16 * i as u32).to_le_bytes());
            data.extend((record as u32).to_le_bytes());
        }
        // One `_func` (name offset 0) that every entry points to.
        data.extend([0; 48]);
        let v = GoVersion {
            major: 1,
            minor: 27,
            patch: 0,
        };
        assert!(matches!(
            Pclntab::parse(&data, &v),
            Err(GoBinError::Pclntab(msg)) if msg.contains("overlapping")
        ));
        // The same table with few functions parses.
        data[8..16].copy_from_slice(&3u64.to_le_bytes());
        let tab = Pclntab::parse(&data, &v).unwrap();
        assert_eq!(tab.functions.len(), 3);
        assert_eq!(tab.functions[0].name.len(), NAME);
    }

    #[test]
    fn overflowing_pc_value_tables_are_rejected() {
        let runs: Vec<(i64, u32)> = (1..=20u32).map(|i| (i64::from(i), i)).collect();
        let mut tab = synthetic::pclntab(
            0x1000,
            &[synthetic::Func {
                name: "f",
                entry: 0,
                end: 0x100,
                pcsp: &runs,
                ..Default::default()
            }],
        );
        assert_eq!(tab.sp_delta(0x1005), Some(6));
        let table = tab.pctab_off + 1;
        let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        // A pc delta past the address space.
        let mut bytes = vec![0x02];
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        tab.data[table..table + bytes.len()].copy_from_slice(&bytes);
        assert_eq!(tab.sp_delta(0x10ff), None);
        // Value deltas past i64.
        let mut bytes = huge.to_vec();
        bytes.push(0x01);
        bytes.extend(huge);
        bytes.push(0x01);
        tab.data[table..table + bytes.len()].copy_from_slice(&bytes);
        assert_eq!(tab.sp_delta(0x10ff), None);
    }
}
