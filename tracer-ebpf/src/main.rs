//! Kernel programs of the tracer. Every entry point is thin: it calls a
//! function that does the work and turns what goes wrong into a counter
//! (and, on rare paths, an `aya-log` record); the logic lives in one file
//! per kernel concept.
#![no_std]
#![no_main]

mod dispatch;
mod fd;
mod floor;
mod follow;
mod goruntime;
mod maps;
mod syscalls;
mod threads;
mod vdso;

/// The target process; every program compares against it before anything else.
#[unsafe(no_mangle)]
static TARGET_TGID: aya_ebpf::Global<u32> = aya_ebpf::Global::new(0);

/// The current thread id when the current task belongs to the traced
/// process (one helper call: this runs on every syscall of every process).
#[inline(always)]
fn in_target() -> Option<u32> {
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == TARGET_TGID.load() {
        Some(pid_tgid as u32)
    } else {
        None
    }
}

/// The current thread id when it belongs to the traced process and the
/// traced window is still open (checked only for the target's own calls).
#[inline(always)]
fn target_tid() -> Option<u32> {
    in_target().filter(|_| window_open())
}

/// Whether the traced window is open.
#[inline(always)]
fn window_open() -> bool {
    maps::WINDOW_CLOSED
        .get(0)
        .is_none_or(|&c| c == tracer_common::WINDOW_OPEN)
}

/// Byte offsets in the x86_64 `struct pt_regs` (the user registers the
/// syscall tracepoints get): r15, r14, r13, r12, bp, bx, r11, r10, r9, r8,
/// ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss.
mod regs {
    pub const R14: usize = 8;
    pub const SI: usize = 13 * 8;
    pub const DI: usize = 14 * 8;
    pub const ORIG_AX: usize = 15 * 8;
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
