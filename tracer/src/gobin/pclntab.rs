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

use object::{Object as _, ObjectSection as _, read::File};

use super::{GoBinError, GoVersion, section};

const MAGIC_118: u32 = 0xffff_fff0;
const MAGIC_120: u32 = 0xffff_fff1;
/// Offset of `text` in `runtime.moduledata` (1.18 to 1.27).
const MODULEDATA_TEXT: usize = 0xb0;
/// Offset of the `pcsp` table offset in `_func` (1.18 to 1.27).
const FUNC_PCSP: usize = 16;

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
    /// The funcID of ABI wrappers in this version.
    wrapper_id: u8,
}

fn u32_at(d: &[u8], off: usize) -> Result<u32, GoBinError> {
    d.get(off..off + 4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .ok_or(GoBinError::Pclntab("offset out of range"))
}

fn u64_at(d: &[u8], off: usize) -> Result<u64, GoBinError> {
    d.get(off..off + 8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
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

/// The funcID the linker gives ABI wrappers, per version (go-runtime.md §5.3).
fn wrapper_func_id(version: &GoVersion) -> u8 {
    match version.minor {
        ..=21 => 21,
        22..=24 => 22,
        _ => 23,
    }
}

impl Pclntab {
    pub fn from_elf(file: &File<'_>, version: &GoVersion) -> Result<Self, GoBinError> {
        let (addr, data) = section(file, &[".gopclntab", ".data.rel.ro.gopclntab"])
            .ok_or(GoBinError::Pclntab("no .gopclntab section"))?;
        let mut table = Self::parse(data, version)?;
        if table.text_start == 0 {
            table.text_start = moduledata_text(file, addr, table.funcname_off as u64).ok_or(
                GoBinError::Pclntab("textStart is 0 and runtime.firstmoduledata was not found"),
            )?;
            table.rebase();
        }
        Ok(table)
    }

    /// Parses the table; entries are relative to the header's textStart
    /// (which may be 0 on Go 1.26+: see [`Pclntab::from_elf`]).
    pub fn parse(data: &[u8], version: &GoVersion) -> Result<Self, GoBinError> {
        let magic = u32_at(data, 0)?;
        // The funcID field of `_func` (the flag byte follows it): 1.20 added
        // startLine before it.
        let func_id_at = match magic {
            MAGIC_118 => 36,
            MAGIC_120 => 40,
            other => return Err(GoBinError::UnsupportedPclntab(other)),
        };
        if data.get(7) != Some(&8) {
            return Err(GoBinError::Pclntab("pointer size is not 8"));
        }
        let word = |i: usize| u64_at(data, 8 + 8 * i);
        let nfunc = usize::try_from(word(0)?).map_err(|_| GoBinError::Pclntab("nfunc"))?;
        let off = |i: usize| word(i).map(|w| w as usize);
        let mut table = Self {
            data: data.to_vec(),
            text_start: word(2)?,
            functions: Vec::with_capacity(nfunc),
            min_lc: u64::from(data[6].max(1)),
            funcname_off: off(3)?,
            cu_off: off(4)?,
            filetab_off: off(5)?,
            pctab_off: off(6)?,
            wrapper_id: wrapper_func_id(version),
        };
        let pcln = off(7)?;
        let ftab = |i: usize| -> Result<(u32, u32), GoBinError> {
            Ok((u32_at(data, pcln + 8 * i)?, u32_at(data, pcln + 8 * i + 4)?))
        };
        for i in 0..nfunc {
            let (entry_off, func_off) = ftab(i)?;
            let (next_entry, _) = ftab(i + 1)?;
            let func_off = pcln + func_off as usize;
            let name_off = u32_at(data, func_off + 4)? as usize;
            table.functions.push(Function {
                name: cstr(data, table.funcname_off + name_off)?.to_owned(),
                entry: u64::from(entry_off),
                end: u64::from(next_entry),
                func_id: *data
                    .get(func_off + func_id_at)
                    .ok_or(GoBinError::Pclntab("_func"))?,
                flag: *data
                    .get(func_off + func_id_at + 1)
                    .ok_or(GoBinError::Pclntab("_func"))?,
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
            f.entry = base + (f.entry & 0xffff_ffff);
            f.end = base + (f.end & 0xffff_ffff);
        }
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

    /// The function containing `pc`.
    pub fn function_at(&self, pc: u64) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.entry <= pc);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (pc < f.end).then_some(f)
    }

    /// Source file and line of `pc` (for symbolizing stacks).
    pub fn file_line(&self, pc: u64) -> Option<(&str, u32)> {
        let f = self.function_at(pc)?;
        let d = &self.data;
        let field = |i: usize| u32_at(d, f.func_off + i).ok();
        let (pcfile, pcln, cu) = (field(20)?, field(24)?, field(32)?);
        let file_no = self.pcvalue(pcfile, f.entry, pc)?;
        let line = self.pcvalue(pcln, f.entry, pc)?;
        let cu_entry = self.cu_off + 4 * (cu as usize + usize::try_from(file_no).ok()?);
        let file_off = u32_at(d, cu_entry).ok()?;
        let file = cstr(d, self.filetab_off + file_off as usize).ok()?;
        Some((file, u32::try_from(line).ok()?))
    }

    /// How far SP is below its value at the function's entry when `pc`
    /// executes, not counting the return address the call pushed: the
    /// `pcsp` table (runtime `funcspdelta`). The return address of the frame
    /// at `pc` is at `SP + sp_delta`, and the caller's SP is 8 above it.
    /// `None` outside the known functions, for a function without a table
    /// (external code), or for a negative delta (a corrupt table).
    pub fn sp_delta(&self, pc: u64) -> Option<u64> {
        let f = self.function_at(pc)?;
        let pcsp = u32_at(&self.data, f.func_off + FUNC_PCSP).ok()?;
        u64::try_from(self.pcvalue(pcsp, f.entry, pc)?).ok()
    }

    /// Decodes a pc-value table (runtime `pcvalue`): zigzag value deltas and
    /// pc deltas, varint-encoded, starting from value -1 at the entry.
    fn pcvalue(&self, table: u32, entry: u64, target: u64) -> Option<i64> {
        if table == 0 {
            return None;
        }
        let d = &self.data;
        let mut p = self.pctab_off + table as usize;
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
            value += delta;
            let (pcd, n) = varint(d.get(p..)?)?;
            p += n;
            pc += pcd * self.min_lc;
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

/// `moduledata.text`, from `runtime.firstmoduledata`: the only place that
/// begins with the pclntab address followed by the name-table address.
fn moduledata_text(file: &File<'_>, pclntab_addr: u64, funcname_off: u64) -> Option<u64> {
    let mut pattern = pclntab_addr.to_le_bytes().to_vec();
    pattern.extend((pclntab_addr + funcname_off).to_le_bytes());
    for name in [".go.module", ".noptrdata", ".data.rel.ro", ".data"] {
        let Some(sec) = file.section_by_name(name) else {
            continue;
        };
        let Ok(data) = sec.data() else { continue };
        let found = (0..data.len().saturating_sub(MODULEDATA_TEXT + 8))
            .step_by(8)
            .find(|&i| data[i..].starts_with(&pattern));
        if let Some(i) = found {
            return u64_at(data, i + MODULEDATA_TEXT).ok();
        }
    }
    // PIE binaries may keep moduledata in a relocated section: try all.
    file.sections().find_map(|sec| {
        let data = sec.data().ok()?;
        let i = (0..data.len().saturating_sub(MODULEDATA_TEXT + 8))
            .step_by(8)
            .find(|&i| data[i..].starts_with(&pattern))?;
        u64_at(data, i + MODULEDATA_TEXT).ok()
    })
}

/// A hand-built pclntab (Go 1.20+ layout) for unit tests.
#[cfg(test)]
pub(crate) mod synthetic {
    use super::*;

    /// One function: name, `[entry, end)` relative to textStart, `_func.flag`,
    /// and its pcsp table as `(sp delta, up to this pc offset)` runs.
    pub struct Func<'a> {
        pub name: &'a str,
        pub entry: u32,
        pub end: u32,
        pub flag: u8,
        pub pcsp: &'a [(i64, u32)],
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

    /// Lays out header, names, pc tables, functab and `_func` records.
    pub fn pclntab(text_start: u64, funcs: &[Func<'_>]) -> Pclntab {
        const HEADER: usize = 72;
        let mut names = Vec::new();
        let mut name_offs = Vec::new();
        for f in funcs {
            name_offs.push(names.len() as u32);
            names.extend(f.name.as_bytes());
            names.push(0);
        }
        // Offset 0 of pctab means "no table": start with a pad byte.
        let mut pctab = vec![0u8];
        let mut pcsp_offs = Vec::new();
        for f in funcs {
            pcsp_offs.push(pctab.len() as u32);
            pctab.extend(pcvalue_table(f.pcsp));
        }
        let funcname_off = HEADER;
        let pctab_off = funcname_off + names.len();
        let pcln_off = pctab_off + pctab.len();
        let functab_len = 8 * (funcs.len() + 1);
        let mut pcln = Vec::new();
        for (i, f) in funcs.iter().enumerate() {
            pcln.extend(f.entry.to_le_bytes());
            pcln.extend(((functab_len + 44 * i) as u32).to_le_bytes());
        }
        pcln.extend(funcs.last().map_or(0, |f| f.end).to_le_bytes());
        pcln.extend(0u32.to_le_bytes());
        for (i, f) in funcs.iter().enumerate() {
            let mut rec = [0u8; 44];
            rec[0..4].copy_from_slice(&f.entry.to_le_bytes());
            rec[4..8].copy_from_slice(&name_offs[i].to_le_bytes());
            rec[16..20].copy_from_slice(&pcsp_offs[i].to_le_bytes());
            rec[41] = f.flag;
            pcln.extend(rec);
        }
        let mut data = vec![0xf1, 0xff, 0xff, 0xff, 0, 0, 1, 8];
        for word in [
            funcs.len(),
            0,
            text_start as usize,
            funcname_off,
            0,
            0,
            pctab_off,
            pcln_off,
        ] {
            data.extend((word as u64).to_le_bytes());
        }
        data.extend(names);
        data.extend(pctab);
        data.extend(pcln);
        let version = GoVersion {
            major: 1,
            minor: 27,
            patch: 0,
        };
        Pclntab::parse(&data, &version).expect("synthetic pclntab parses")
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
            }],
        );
        assert_eq!(tab.sp_delta(0x1000), Some(0));
        assert_eq!(tab.sp_delta(0x1001), Some(0x1000));
        assert_eq!(tab.sp_delta(0x11ff), Some(0x1000));
        assert_eq!(tab.sp_delta(0x1200), Some(8));
        assert_eq!(tab.sp_delta(0x12ff), Some(8));
    }
}
