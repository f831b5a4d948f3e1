//! vDSO fallbacks: a real `clock_gettime`, `gettimeofday`, `time` or
//! `getcpu` syscall means the vDSO was bypassed (the program made the call
//! itself, the Go runtime found no vDSO) or could not answer (the
//! clocksource cannot be read from user space, or the clock is not one it
//! serves). Counted in the kernel per call site; userspace classifies by
//! the syscall's address (inside `[vdso]` or not) and the clock id.

use aya_ebpf::{
    EbpfContext as _, bindings::BPF_F_USER_STACK, helpers::bpf_get_stack,
    helpers::bpf_probe_read_kernel, programs::RawTracePointContext,
};
use tracer_common::{Counter, SYS_CLOCK_GETTIME, VDSO_FRAMES, VdsoKey};

use crate::{
    maps::{VDSO_CALLS, count},
    regs,
};

#[inline(always)]
pub fn count_fallback(ctx: &RawTracePointContext, sysno: u32) {
    let mut key = VdsoKey {
        sysno,
        clock: 0,
        frames: [0; VDSO_FRAMES],
    };
    if sysno == SYS_CLOCK_GETTIME {
        // TP_PROTO(struct pt_regs *regs, long id)
        let user_regs: *const u8 = ctx.arg(0);
        let di = unsafe { bpf_probe_read_kernel(user_regs.add(regs::DI).cast::<u64>()) };
        key.clock = di.unwrap_or(u64::MAX) as u32;
    }
    // Frame 0 is the syscall's user address: inside [vdso] or not is the
    // classification.
    let n = unsafe {
        bpf_get_stack(
            ctx.as_ptr(),
            (&raw mut key.frames).cast(),
            (VDSO_FRAMES * 8) as u32,
            u64::from(BPF_F_USER_STACK),
        )
    };
    if n <= 0 {
        count(Counter::VdsoStackMissing);
    }
    if let Some(calls) = VDSO_CALLS.get_ptr_mut(key) {
        // SAFETY: this CPU's value; BPF programs do not nest on a CPU for
        // the same tracepoint.
        unsafe { *calls += 1 };
    } else if VDSO_CALLS.insert(key, 1, 0).is_err() {
        count(Counter::VdsoMapFull);
    }
}
