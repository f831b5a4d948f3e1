//! Addresses of the runtime's global variables. An unstripped binary names
//! them in `.symtab`; a stripped one (`-s -w`) keeps only the code that
//! reads them, so the one the tracer needs most, the vDSO
//! `clock_gettime` pointer (`runtime.vdsoClockgettimeSym`), is found from the load in
//! `runtime.nanotime1` that reads it: `MOVQ runtime·vdsoClockgettimeSym(SB),
//! AX`, which the Go assembler encodes RIP-relative (`48 8b 05 disp32`).

use object::{Object as _, ObjectSegment as _, SegmentFlags};

use super::Pclntab;

/// `runtime.vdsoClockgettimeSym`: the vDSO's `__vdso_clock_gettime`, or 0
/// when the runtime found none and falls back to the system call.
pub const VDSO_CLOCK_GETTIME_SYM: &str = "runtime.vdsoClockgettimeSym";
/// The function whose first RIP-relative load reads
/// [`VDSO_CLOCK_GETTIME_SYM`] (every version from 1.19 to 1.27).
pub const NANOTIME1: &str = "runtime.nanotime1";

/// Runtime variables that were renamed, `(old name, new name)`, so the old
/// name finds the variable in newer binaries too.
pub const RENAMED: &[(&str, &str)] = &[
    // Go 1.25 (with the cgroup-aware default GOMAXPROCS).
    ("runtime.ncpu", "runtime.numCPUStartup"),
];

/// `PF_W` of an ELF program header.
const PF_W: u32 = 2;

/// The targets of the RIP-relative 64-bit loads `mov disp32(%rip), %reg`
/// (REX.W, opcode 0x8B, ModRM mod=00 rm=101) in `code`, which starts at
/// address `addr`, in order. The bytes are scanned, not disassembled, so a
/// match may come from inside another instruction: callers check the target.
pub fn rip_relative_loads(code: &[u8], addr: u64) -> impl Iterator<Item = u64> + '_ {
    code.windows(7).enumerate().filter_map(move |(i, w)| {
        // 0x48..=0x4f all have REX.W; R selects r8-r15, X and B do not
        // apply to RIP-relative operands.
        let load = w[0] & 0xf8 == 0x48 && w[1] == 0x8b && w[2] & 0xc7 == 0x05;
        load.then(|| {
            let disp = i32::from_le_bytes([w[3], w[4], w[5], w[6]]);
            (addr + i as u64 + 7).wrapping_add_signed(i64::from(disp))
        })
    })
}

/// The link-time address that the `nth` (from 0) RIP-relative 64-bit load
/// in `function` reads, counting only loads whose target lies in a writable
/// segment (a variable). `function` is found through the pclntab, so this
/// works on stripped binaries; its bytes come from `file`.
pub fn rip_relative_load(
    file: &object::File<'_>,
    pclntab: &Pclntab,
    function: &str,
    nth: usize,
) -> Option<u64> {
    let entry = pclntab.entry(function)?;
    let end = pclntab.function_at(entry)?.end;
    let code = file
        .segments()
        .find_map(|s| s.data_range(entry, end - entry).ok().flatten())?;
    let writable: Vec<(u64, u64)> = file
        .segments()
        .filter(|s| matches!(s.flags(), SegmentFlags::Elf { p_flags } if p_flags & PF_W != 0))
        // A segment past the top of the address space ends there.
        .map(|s| (s.address(), s.address().saturating_add(s.size())))
        .collect();
    rip_relative_loads(code, entry)
        .filter(|&target| writable.iter().any(|&(lo, hi)| (lo..hi).contains(&target)))
        .nth(nth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_rip_relative_loads() {
        // From runtime.nanotime1 of a Go 1.27 build at 0x481080:
        //   4810da: lea (%rsp),%rsi               48 8d 34 24
        //   4810de: mov 0x12a283(%rip),%rax       48 8b 05 83 a2 12 00
        //   4810e5: cmp $0x0,%rax                 48 83 f8 00
        // then the same load into r9, a negative displacement, and a
        // non-RIP load (mod=01) that must not match.
        let code = [
            0x48, 0x8d, 0x34, 0x24, //
            0x48, 0x8b, 0x05, 0x83, 0xa2, 0x12, 0x00, //
            0x48, 0x83, 0xf8, 0x00, //
            0x4c, 0x8b, 0x0d, 0xf0, 0xff, 0xff, 0xff, //
            0x49, 0x8b, 0x5e, 0x30, //
        ];
        let loads: Vec<u64> = rip_relative_loads(&code, 0x4810da).collect();
        assert_eq!(loads, [0x5ab368, 0x4810da + 22 - 0x10]);
        // A 32-bit load (no REX.W) is not one.
        assert_eq!(
            rip_relative_loads(&[0x8b, 0x05, 0, 0, 0, 0, 0], 0).count(),
            0
        );
        assert_eq!(rip_relative_loads(&[0x48, 0x8b, 0x05], 0).count(), 0);
    }
}
