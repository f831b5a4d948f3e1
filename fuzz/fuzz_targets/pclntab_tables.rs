//! The pclntab alone, without an ELF around it, so mutations land in its
//! tables: `[Go minor version u8][pclntab length u32 LE][.gopclntab
//! bytes][funcdata from moduledata.gofunc]`. Looks functions up, decodes
//! their pc-value tables and inline trees, and unwinds over the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::gobin::{GoVersion, Pclntab, unwind::unwind};

const MAX_INPUT: usize = 1 << 20;
const MAX_PCS: usize = 64;
const GOFUNC: u64 = 0x50_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT || data.len() < 5 {
        return;
    }
    let version = GoVersion {
        major: 1,
        minor: u32::from(data[0]),
        patch: 0,
    };
    let len = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
    let rest = &data[5..];
    let (tab, gofunc) = rest.split_at(len.min(rest.len()));
    let Ok(mut tab) = Pclntab::parse(tab, &version) else {
        return;
    };
    tab.set_gofunc(GOFUNC, gofunc.to_vec());
    let _ = tab.gofunc();
    for name in ["runtime.main", "runtime.nanotime1", "main.main"] {
        let _ = tab.entry(name);
    }
    let mut pcs = Vec::new();
    for f in tab.functions.iter().take(MAX_PCS / 4) {
        let len = f.end.wrapping_sub(f.entry);
        pcs.extend([
            f.entry,
            f.entry.wrapping_add(len / 3),
            f.entry.wrapping_add(len / 2),
            f.end.wrapping_sub(1),
        ]);
    }
    for &pc in &pcs {
        let _ = tab.function_at(pc);
        let _ = tab.file_line(pc);
        let _ = tab.sp_delta(pc);
        let _ = tab.innermost_frame(pc);
        let frames = tab.logical_frames(pc);
        assert!(!frames.is_empty() || tab.function_at(pc).is_none());
    }
    // Unwind over a stack whose words are the input's (pcs of the table's
    // functions where the input says so).
    let words: Vec<u64> = data
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .collect();
    let read = |addr: u64| {
        let w = *words.get(usize::try_from(addr / 8).ok()? % words.len().max(1))?;
        Some(match pcs.get(w as usize % 256) {
            Some(&pc) if w & 0x100 == 0 => pc,
            _ => w,
        })
    };
    for &pc in pcs.iter().step_by(5) {
        let frames = unwind(&tab, pc, pc % 128, read, 64);
        assert!(frames.len() <= 64);
    }
});
