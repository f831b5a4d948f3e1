//! The Go runtime's goroutine (`g.atomicstatus`) and P (`p.status`) status
//! values, with the releases each one exists in. The values never changed
//! within the supported releases; names came and went (Go 1.26 retired
//! `_Psyscall` and added `_Gleaked` and `_Gdeadextra`). The integration test
//! `goruntime::states_match_dwarf` checks this list against the constants
//! in each toolchain's DWARF, both ways: every constant listed for a
//! release is there with this value, and every G or P status constant there
//! is listed.
//!
//! The kernel programs compare with three of them, which live in
//! `tracer_common::gostate` (the eBPF crate cannot depend on this one) and
//! are re-exported here.

use super::GoMinors;

pub use tracer_common::gostate::{G_SYSCALL, P_GCSTOP, P_SYSCALL};

/// Just created, not yet initialised.
pub const G_IDLE: u32 = 0;
/// On a run queue, not running.
pub const G_RUNNABLE: u32 = 1;
/// Running Go code, with an M and a P.
pub const G_RUNNING: u32 = 2;
/// Blocked in the runtime (channel, lock, sleep, network poller...).
pub const G_WAITING: u32 = 4;
/// Unused: exited or not yet used (before 1.26 also an idle extra M's
/// goroutine).
pub const G_DEAD: u32 = 6;
/// Its stack is being moved.
pub const G_COPYSTACK: u32 = 8;
/// Stopped itself for a suspendG preemption.
pub const G_PREEMPTED: u32 = 9;
/// Go 1.26+: a leaked goroutine caught by the GC.
pub const G_LEAKED: u32 = 10;
/// Go 1.26+: a dead goroutine attached to an extra M (the M of a C thread
/// that calls into Go); `syscallingThread.releaseP` may see it in place of
/// `_Gsyscall`.
pub const G_DEADEXTRA: u32 = 11;
/// OR-ed into a status while the GC scans the stack (and, from 1.26, while
/// another thread holds a syscalling goroutine in the syscall).
pub const G_SCAN: u32 = 0x1000;

/// Not running anything: on the idle list, or changing hands.
pub const P_IDLE: u32 = 0;
/// Owned by an M running user code or the scheduler.
pub const P_RUNNING: u32 = 1;
/// No longer used (GOMAXPROCS shrank); reused if it grows again.
pub const P_DEAD: u32 = 4;

/// The releases that have `_Psyscall` (Go 1.26 renamed the slot
/// `_Psyscall_unused`: the P now stays `_Prunning` during a syscall).
pub const P_SYSCALL_VERSIONS: GoMinors = GoMinors::UpTo(25);

/// A named status value and the releases it exists in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// The runtime's name, e.g. `_Gsyscall`.
    pub name: &'static str,
    pub value: u32,
    pub versions: GoMinors,
}

const fn s(name: &'static str, value: u32, versions: GoMinors) -> Status {
    Status {
        name,
        value,
        versions,
    }
}

/// Every goroutine status constant of the runtime, `_Gscan` itself
/// included. The runtime also names each `_Gscan | state` combination
/// (`_Gscansyscall`...); the DWARF test checks those are exactly that.
pub const G_STATUSES: &[Status] = &[
    s("_Gidle", G_IDLE, GoMinors::All),
    s("_Grunnable", G_RUNNABLE, GoMinors::All),
    s("_Grunning", G_RUNNING, GoMinors::All),
    s("_Gsyscall", G_SYSCALL, GoMinors::All),
    s("_Gwaiting", G_WAITING, GoMinors::All),
    s("_Gmoribund_unused", 5, GoMinors::All),
    s("_Gdead", G_DEAD, GoMinors::All),
    s("_Genqueue_unused", 7, GoMinors::All),
    s("_Gcopystack", G_COPYSTACK, GoMinors::All),
    s("_Gpreempted", G_PREEMPTED, GoMinors::All),
    s("_Gleaked", G_LEAKED, GoMinors::From(26)),
    s("_Gdeadextra", G_DEADEXTRA, GoMinors::From(26)),
    s("_Gscan", G_SCAN, GoMinors::All),
];

/// Every P status constant of the runtime.
pub const P_STATUSES: &[Status] = &[
    s("_Pidle", P_IDLE, GoMinors::All),
    s("_Prunning", P_RUNNING, GoMinors::All),
    s("_Psyscall", P_SYSCALL, P_SYSCALL_VERSIONS),
    s("_Psyscall_unused", P_SYSCALL, GoMinors::From(26)),
    s("_Pgcstop", P_GCSTOP, GoMinors::All),
    s("_Pdead", P_DEAD, GoMinors::All),
];

/// The statuses that exist in Go 1.`minor`, goroutines' then Ps'.
pub fn in_version(minor: u32) -> impl Iterator<Item = &'static Status> {
    G_STATUSES
        .iter()
        .chain(P_STATUSES)
        .filter(move |s| s.versions.contains(minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_are_unique_per_release() {
        for minor in [19, 25, 26] {
            for list in [G_STATUSES, P_STATUSES] {
                let live: Vec<&Status> =
                    list.iter().filter(|s| s.versions.contains(minor)).collect();
                for (i, a) in live.iter().enumerate() {
                    for b in &live[i + 1..] {
                        assert_ne!(a.name, b.name);
                        assert_ne!(a.value, b.value, "{} and {} in 1.{minor}", a.name, b.name);
                    }
                }
            }
        }
    }

    #[test]
    fn the_kernel_constants_are_the_runtime_names() {
        let value = |name: &str, minor| in_version(minor).find(|s| s.name == name).map(|s| s.value);
        assert_eq!(value("_Gsyscall", 27), Some(G_SYSCALL));
        assert_eq!(value("_Psyscall", 25), Some(P_SYSCALL));
        assert_eq!(value("_Psyscall", 26), None);
        assert_eq!(value("_Pgcstop", 19), Some(P_GCSTOP));
    }
}
