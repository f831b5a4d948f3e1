//! The overhead floor: programs on the same attach points as `syscalls.rs`
//! that only filter by tgid and bump a per-CPU counter. `tracer` loads them
//! instead of the real ones for `--probes floor`, so the benchmark can show
//! what the attach itself costs.

use aya_ebpf::{macros::raw_tracepoint, programs::RawTracePointContext};
use tracer_common::Counter;

use crate::{in_target, maps::count};

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
