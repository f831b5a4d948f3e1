//! Unwinding a Go stack without frame pointers, the way the runtime's own
//! traceback does it (`runtime/traceback.go`, `unwinder.resolveInternal`):
//! each function's pcsp table gives, at any pc, how far SP is below its
//! value at the function's entry, so the return address is at `SP + delta`
//! and the caller's SP is just above it. No register but SP and PC is
//! needed, which is exactly what `/proc/PID/task/TID/syscall` gives for a
//! thread blocked in a system call.
//!
//! Addresses here are link-time addresses (the pclntab's); the
//! [`Symbolizer`](super::symbolize::Symbolizer) applies a PIE's load bias.

use super::pclntab::{FLAG_SPWRITE, FLAG_TOPFRAME, Function, Pclntab};

/// Frames [`Symbolizer::unwind`](super::symbolize::Symbolizer::unwind)
/// returns at most; deeper Go stacks are rare at a blocking call.
pub const MAX_FRAMES: usize = 64;

/// Functions where a stack ends for this unwinder. The runtime marks most of
/// them itself (TOPFRAME: the first frame of a goroutine or thread; SPWRITE:
/// a function that switches stacks, after which its pcsp table says nothing
/// about where its caller's frame is), and the runtime's traceback crosses
/// `systemstack`/`morestack` only by reading the goroutine's saved SP from
/// its `g`, which this unwinder does not have. The names back the flags up.
const STACK_BOUNDARIES: &[&str] = &[
    "runtime.goexit",
    "runtime.mstart",
    "runtime.rt0_go",
    "runtime.mcall",
    "runtime.systemstack",
    "runtime.systemstack_switch",
    "runtime.morestack",
    "runtime.asmcgocall",
];

/// Where a goroutine that left its own stack (a cgo call through
/// `asmcgocall`, a `systemstack` call) saved its position: `g.sched.pc`
/// points into this dummy function and `g.sched.sp` at the return address
/// into the goroutine's last real frame, as if it had been called there
/// with no frame of its own (the runtime's traceback unwinds it so).
const SAVED_SWITCH: &str = "runtime.systemstack_switch";

/// Whether the frame of `f` is the last one that can be unwound.
fn ends_stack(f: &Function) -> bool {
    // Unlike the runtime, SPWRITE stops the innermost frame too: the runtime
    // assumes an innermost SPWRITE function was stopped at its entry (a
    // preemption at the stack check), but a thread in a system call can be
    // anywhere in it, past its stack switch (`runtime.nanotime1`'s fallback
    // system call runs on g0, for example).
    f.flag & (FLAG_TOPFRAME | FLAG_SPWRITE) != 0 || STACK_BOUNDARIES.contains(&f.name.as_str())
}

/// The call stack of a thread stopped at `pc` with stack pointer `sp`:
/// `pc` first, then the return addresses of its callers, innermost first,
/// reading stack words with `read_u64`. Every word read is a return
/// address, and code addresses are link-time ones throughout: for a PIE,
/// `pc` and what `read_u64` returns have the load bias subtracted (as
/// [`Symbolizer::unwind`](super::symbolize::Symbolizer::unwind) does).
///
/// Unwinding stops after a frame that ends a stack (see
/// [`STACK_BOUNDARIES`]; an innermost `runtime.systemstack_switch` is a
/// goroutine's saved position, `g.sched`, and is unwound through), when a pc is not in a Go function of the table
/// (C code, the vDSO, a corrupt word), when a read fails, and after
/// `max_frames` frames. A `pc` outside the table gives just `[pc]`.
pub fn unwind(
    pclntab: &Pclntab,
    pc: u64,
    sp: u64,
    mut read_u64: impl FnMut(u64) -> Option<u64>,
    max_frames: usize,
) -> Vec<u64> {
    let mut frames = Vec::new();
    if max_frames == 0 {
        return frames;
    }
    frames.push(pc);
    let (mut pc, mut sp) = (pc, sp);
    while frames.len() < max_frames {
        // A return address points after its call instruction, which may be
        // the last of the function: look the call itself up.
        let lookup = if frames.len() == 1 { pc } else { pc - 1 };
        let Some(f) = pclntab.function_at(lookup) else {
            break;
        };
        let saved_switch = frames.len() == 1 && f.name == SAVED_SWITCH;
        if ends_stack(f) && !saved_switch {
            break;
        }
        let Some(delta) = pclntab.sp_delta(lookup) else {
            break;
        };
        let Some(slot) = sp.checked_add(delta) else {
            break;
        };
        let Some(ret) = read_u64(slot) else {
            break;
        };
        if ret == 0 || pclntab.function_at(ret - 1).is_none() {
            break;
        }
        frames.push(ret);
        (pc, sp) = (ret, slot + 8);
    }
    frames
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{super::pclntab::synthetic, *};

    const TEXT: u64 = 0x40_1000;

    /// goexit (TOPFRAME) → main.worker (0x28-byte frame) → syscall.Syscall6
    /// (asm, no frame), plus a stack-switching function.
    fn table() -> Pclntab {
        synthetic::pclntab(
            TEXT,
            &[
                synthetic::Func {
                    name: "runtime.goexit",
                    entry: 0,
                    end: 0x20,
                    flag: FLAG_TOPFRAME,
                    pcsp: &[(0, 0x20)],
                    ..Default::default()
                },
                synthetic::Func {
                    name: "main.worker",
                    entry: 0x20,
                    end: 0x80,
                    flag: 0,
                    pcsp: &[(0, 4), (0x28, 0x5b), (0, 0x60)],
                    ..Default::default()
                },
                synthetic::Func {
                    name: "syscall.Syscall6",
                    entry: 0x80,
                    end: 0xa0,
                    flag: 0,
                    pcsp: &[(0, 0x20)],
                    ..Default::default()
                },
                synthetic::Func {
                    name: "runtime.systemstack",
                    entry: 0xa0,
                    end: 0xe0,
                    flag: FLAG_SPWRITE,
                    pcsp: &[(0, 0x40)],
                    ..Default::default()
                },
                synthetic::Func {
                    name: "runtime.systemstack_switch",
                    entry: 0xe0,
                    end: 0x100,
                    flag: 0,
                    pcsp: &[(0, 0x20)],
                    ..Default::default()
                },
            ],
        )
    }

    /// A goroutine stack: SP 0x7000 in Syscall6, whose return address goes
    /// into main.worker, whose frame is 0x28 bytes under goexit's.
    fn stack() -> HashMap<u64, u64> {
        HashMap::from([(0x7000, TEXT + 0x60), (0x7008 + 0x28, TEXT + 1)])
    }

    #[test]
    fn walks_frames_up_to_goexit() {
        let mem = stack();
        let frames = unwind(&table(), TEXT + 0x8e, 0x7000, |a| mem.get(&a).copied(), 10);
        assert_eq!(frames, [TEXT + 0x8e, TEXT + 0x60, TEXT + 1]);
    }

    #[test]
    fn stops_at_read_failures_foreign_pcs_and_the_frame_limit() {
        let tab = table();
        let mem = stack();
        let read = |a: u64| mem.get(&a).copied();
        assert_eq!(unwind(&tab, TEXT + 0x8e, 0x7000, read, 2).len(), 2);
        assert!(unwind(&tab, TEXT + 0x8e, 0x7000, read, 0).is_empty());
        // Nothing readable: only the pc itself.
        assert_eq!(
            unwind(&tab, TEXT + 0x8e, 0x7000, |_| None, 10),
            [TEXT + 0x8e]
        );
        // A pc outside Go text (vDSO, C): only the pc itself.
        assert_eq!(unwind(&tab, 0x7fff_0000, 0x7000, read, 10), [0x7fff_0000]);
        // A return address outside Go text is not a frame.
        let bad = |a: u64| (a == 0x7000).then_some(0x1234);
        assert_eq!(unwind(&tab, TEXT + 0x8e, 0x7000, bad, 10), [TEXT + 0x8e]);
    }

    #[test]
    fn a_stack_switch_ends_the_stack() {
        // Syscall6 called from systemstack (on g0): stop there, even though
        // its pcsp table would be read happily.
        let mem = HashMap::from([(0x7000, TEXT + 0xc0), (0x7008, TEXT + 0x60)]);
        let frames = unwind(&table(), TEXT + 0x8e, 0x7000, |a| mem.get(&a).copied(), 10);
        assert_eq!(frames, [TEXT + 0x8e, TEXT + 0xc0]);
        // An innermost SPWRITE function is not unwound either.
        let frames = unwind(&table(), TEXT + 0xb0, 0x7000, |a| mem.get(&a).copied(), 10);
        assert_eq!(frames, [TEXT + 0xb0]);
    }

    #[test]
    fn a_goroutines_saved_switch_position_is_unwound_through() {
        // g.sched of a goroutine in a cgo call: pc in systemstack_switch,
        // sp at the return address into its last frame (main.worker here).
        let mem = HashMap::from([(0x7000, TEXT + 0x60), (0x7008 + 0x28, TEXT + 1)]);
        let frames = unwind(&table(), TEXT + 0xe8, 0x7000, |a| mem.get(&a).copied(), 10);
        assert_eq!(frames, [TEXT + 0xe8, TEXT + 0x60, TEXT + 1]);
        // As a caller (which it never is for real), it still ends the stack.
        let mem = HashMap::from([(0x7000, TEXT + 0xe9), (0x7008, TEXT + 0x60)]);
        let frames = unwind(&table(), TEXT + 0x8e, 0x7000, |a| mem.get(&a).copied(), 10);
        assert_eq!(frames, [TEXT + 0x8e, TEXT + 0xe9]);
    }

    #[test]
    fn a_return_address_at_a_function_end_belongs_to_the_caller() {
        // main.worker's last instruction is a call (to a function that does
        // not return): its return address is the next function's entry,
        // but the frame is main.worker's, with main.worker's pcsp at the
        // call (0 in the epilogue run here).
        let mem = HashMap::from([(0x7000, TEXT + 0x80), (0x7008, TEXT + 1)]);
        let frames = unwind(&table(), TEXT + 0x8e, 0x7000, |a| mem.get(&a).copied(), 10);
        assert_eq!(frames, [TEXT + 0x8e, TEXT + 0x80, TEXT + 1]);
    }
}
