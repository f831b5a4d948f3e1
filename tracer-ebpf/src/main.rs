//! Kernel programs of the tracer. Every entry point is thin: it calls a
//! `try_*` function and turns its error into a return code; the logic lives
//! in one file per kernel concept.
#![no_std]
#![no_main]

mod floor;
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
fn target_tid() -> Option<u32> {
    let pid_tgid = aya_ebpf::helpers::bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == TARGET_TGID.load() {
        Some(pid_tgid as u32)
    } else {
        None
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
