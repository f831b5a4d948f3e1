//! Checking up front that we may load eBPF programs, so the user gets one
//! clear line instead of a verifier or permission error from deep inside.

use std::fs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process.
fn effective_caps() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// `true` when this process may load and attach tracing programs:
/// CAP_SYS_ADMIN, or CAP_BPF together with CAP_PERFMON (Linux 5.8+).
pub fn can_trace() -> bool {
    let caps = effective_caps();
    let has = |cap: u32| caps & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

const CAP_SYS_PTRACE: u32 = 19;

/// `true` when this process may ptrace any process (CAP_SYS_PTRACE): the
/// condition for selecting processes by name or cgroup, whose members the
/// kernel adds without asking who owns them.
pub fn can_ptrace_any() -> bool {
    effective_caps() & (1 << CAP_SYS_PTRACE) != 0
}
