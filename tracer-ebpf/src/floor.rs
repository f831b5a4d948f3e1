//! The overhead floor: programs on the same attach points as `syscalls.rs`
//! that only filter by tgid and bump a per-CPU counter. `tracer` loads them
//! instead of the real ones for `--probes floor`, so the benchmark can show
//! what the attach itself costs; `--probes timed-floor` adds the timing of
//! each call and nothing else.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::Counter;

use crate::{in_target, maps::count, syscalls::inflight_slot};

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn gt_floor_enter(_ctx: RawTracePointContext) -> i32 {
    if in_target().is_some() {
        count(Counter::FloorHits);
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn gt_floor_exit(_ctx: RawTracePointContext) -> i32 {
    if in_target().is_some() {
        count(Counter::FloorHits);
    }
    0
}

/// The floor of timing a call, the least a latency tracer does per call:
/// the same filter, the start time kept per thread at entry (the tracer's
/// own in-flight slot), and the duration taken at exit. Between this and
/// the floor lie the two clock reads; between this and the tracer, the
/// histograms and the checks of the slow path.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn gt_floor_timed_enter(_ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = in_target()
        && let Some(slot) = inflight_slot(tid)
    {
        // SAFETY: the thread's own slot, as in the tracer's entry program.
        let slot = unsafe { &mut *slot };
        slot.tid = tid;
        slot.start_ns = unsafe { bpf_ktime_get_ns() };
    }
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn gt_floor_timed_exit(_ctx: RawTracePointContext) -> i32 {
    if let Some(tid) = in_target()
        && let Some(slot) = inflight_slot(tid)
    {
        let slot = unsafe { &mut *slot };
        if slot.tid == tid {
            slot.tid = 0;
            // Kept, so the clock read is not optimized away.
            slot.start_ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(slot.start_ns);
            count(Counter::FloorHits);
        }
    }
    0
}
