//! A whole Go executable: `GoBinary::parse` (ELF, `.go.buildinfo`,
//! `.gopclntab`, moduledata, `.symtab`, the vDSO pointer decoded from
//! `runtime.nanotime1`'s code), then symbolizing and unwinding pcs inside
//! its text the way a trace does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::gobin::{
    GoBinary, VDSO_CLOCK_GETTIME_SYM,
    symbolize::{Symbolizer, call_site_of},
};

/// Inputs past this are skipped (the seeds are cut to a few hundred KB).
const MAX_INPUT: usize = 2 << 20;
/// Functions and pcs symbolized per input, so one input stays fast.
const MAX_PCS: usize = 48;
/// Where the input is mapped as stack memory for the unwinder.
const STACK_BASE: u64 = 0x7ffe_0000_0000;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(binary) = GoBinary::parse(data) else {
        return;
    };
    for name in [
        "runtime.sched",
        "runtime.allm",
        "runtime.ncpu",
        VDSO_CLOCK_GETTIME_SYM,
    ] {
        let _ = binary.data_symbol(name);
    }
    let tab = &binary.pclntab;
    for name in [
        "runtime.main",
        "main.main",
        "runtime.nanotime1",
        "crosscall2",
    ] {
        if let Some(entry) = tab.entry(name) {
            let _ = binary.file_offset(entry);
        }
    }
    let (Some(lo), Some(hi)) = (
        tab.functions.first().map(|f| f.entry),
        tab.functions.iter().map(|f| f.end).max(),
    ) else {
        return;
    };
    // Each function's entry and middle, then addresses in the text range
    // taken from the input's last bytes.
    let mut pcs: Vec<u64> = tab
        .functions
        .iter()
        .take(MAX_PCS / 2)
        .flat_map(|f| {
            [
                f.entry,
                f.entry.wrapping_add(f.end.wrapping_sub(f.entry) / 2),
            ]
        })
        .collect();
    let span = hi.wrapping_sub(lo).max(1);
    pcs.extend(
        data.rchunks_exact(8)
            .take(MAX_PCS - pcs.len().min(MAX_PCS))
            .map(|w| lo.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()) % span)),
    );
    let sym = Symbolizer::at_link_addresses(binary);
    for &pc in &pcs {
        let _ = sym.frames_at(pc, false);
        let _ = sym.frames_at(pc, true);
        let _ = sym.frame(pc, false);
        let _ = sym.function(pc, true);
    }
    let stack = sym.syscall_stack(&pcs);
    let _ = call_site_of(&stack);
    let _ = sym.entry_stack(&pcs);
    // Unwind from a few pcs over a "stack" that is the input itself.
    let read = |addr: u64| {
        let at = usize::try_from(addr.checked_sub(STACK_BASE)?).ok()?;
        Some(u64::from_le_bytes(
            data.get(at..at.checked_add(8)?)?.try_into().ok()?,
        ))
    };
    for &pc in pcs.iter().step_by(7) {
        let frames = sym.unwind(pc, STACK_BASE + (pc % 64), read);
        let _ = sym.syscall_stack(&frames);
    }
});
