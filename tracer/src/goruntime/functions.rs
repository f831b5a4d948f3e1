//! The runtime functions the tracer probes or recognises: one list, used by
//! `attach_options` (which attaches the probes) and by `tracer inspect`
//! (which shows where each one is in a binary). Every entry names the
//! releases it exists in; the integration test
//! `goruntime::functions_match_each_release` builds a program with each
//! toolchain and checks that the functions of that release are in its
//! pclntab and the others are not.
//!
//! Probes go only on rare paths (thread creation, P handoffs, slow syscall
//! exits, stop-the-world), never on a per-syscall one: a uprobe hit costs
//! microseconds, and on Go 1.19 (no `push %rbp` prologues) every hit is
//! single-stepped. Entry probes only: a return probe rewrites
//! the return address on the goroutine's stack, which the runtime's stack
//! copying and tracebacks do not expect (one crashed a Go 1.27 program with
//! SIGILL).

use super::GoMinors;

/// What the tracer does with a runtime function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The named eBPF program (tracer-ebpf) is attached at its entry.
    Attached(&'static str),
    /// Not probed: shown by `inspect`, and named in reports' stacks.
    Recognised,
}

impl Probe {
    /// The eBPF program, when attached.
    pub fn program(self) -> Option<&'static str> {
        match self {
            Self::Attached(p) => Some(p),
            Self::Recognised => None,
        }
    }
}

/// One runtime function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeFunction {
    /// As in pclntab, e.g. `runtime.syscallingThread.releaseP`.
    pub name: &'static str,
    pub probe: Probe,
    /// The releases whose runtime has it (a function of those releases may
    /// still be left out of a program that never calls it, as
    /// `runtime.LockOSThread` is).
    pub versions: GoMinors,
    /// Why the tracer cares about it.
    pub why: &'static str,
}

const fn f(
    name: &'static str,
    probe: Probe,
    versions: GoMinors,
    why: &'static str,
) -> RuntimeFunction {
    RuntimeFunction {
        name,
        probe,
        versions,
        why,
    }
}

use GoMinors::{All, From, UpTo};
use Probe::{Attached, Recognised};

/// Every runtime function of interest, in the order a reader follows a
/// syscall's life: into the kernel, losing the P, new threads, locked
/// threads, stop-the-world, cgo, the program's start.
#[rustfmt::skip]
pub const FUNCTIONS: &[RuntimeFunction] = &[
    f("runtime.entersyscall", Recognised, All,
        "a goroutine enters a syscall or cgo call (per call: never probed)"),
    f("runtime.exitsyscall", Recognised, All,
        "the syscall or cgo call returned (per call: never probed)"),
    f("runtime.entersyscallblock", Recognised, All,
        "a syscall known to block hands its P off up front"),
    f("runtime.exitsyscall0", Attached("gt_slow_exit"), UpTo(25),
        "slow syscall exit: no P to be had, the goroutine is queued and its thread parks"),
    f("runtime.exitsyscallNoP", Attached("gt_slow_exit"), From(26),
        "slow syscall exit (exitsyscall0's successor)"),
    f("runtime.retake", Recognised, All,
        "sysmon's scan that takes Ps from syscalls longer than a tick (caller of the two below)"),
    f("runtime.handoffp", Attached("gt_handoffp"), All,
        "a P changes hands; the caller says why (retake, blocking syscall, locked M, GC)"),
    f("runtime.syscallingThread.releaseP", Attached("gt_release_p"), From(26),
        "a P is taken from a thread in a syscall; the caller and new state say by whom"),
    f("runtime.startm", Recognised, All,
        "a P gets an M: an idle one woken, or a new one (newm)"),
    f("runtime.newm", Attached("gt_newm"), All,
        "the runtime wants one more M (thread), whoever ends up creating it"),
    f("runtime.newm1", Attached("gt_newm1"), All,
        "an M is about to get its thread: the stack says why it is wanted"),
    f("runtime.newosproc", Recognised, All,
        "clone(2) of a new M's thread (not called in cgo programs: pthread_create is)"),
    f("runtime.mexit", Attached("gt_mexit"), All,
        "an M ends its thread (a goroutine exited while locked to it)"),
    f("runtime.LockOSThread", Attached("gt_lock_os_thread"), All,
        "where a goroutine locked its thread, to blame if the thread dies locked"),
    f("runtime.stopTheWorldWithSema", Attached("gt_stw_start"), All,
        "a stop-the-world begins: it takes every P left in a syscall"),
    f("runtime.startTheWorldWithSema", Attached("gt_stw_end"), All,
        "the stop-the-world ends"),
    f("runtime.cgocall", Recognised, All,
        "Go calls C: entersyscall, the C call, exitsyscall"),
    f("runtime.needm", Recognised, All,
        "a C thread calls into Go and takes an extra M"),
    f("main.main", Attached("gt_main_start"), All,
        "the program's own code starts (the runtime's start-up is over)"),
];

/// `(program, function)` for every probe to attach, in [`FUNCTIONS`]
/// order. A function missing from the binary (another release, or never
/// called) is the caller's to skip.
pub fn attached() -> impl Iterator<Item = (&'static str, &'static str)> {
    FUNCTIONS.iter().filter_map(|f| match f.probe {
        Probe::Attached(program) => Some((program, f.name)),
        _ => None,
    })
}

// Lists that name runtime behaviour in reports (e.g. which functions mean
// "an idle M parked", "the scheduler looking for work") belong here too,
// beside the functions above, so that one file holds every function name
// the tracer depends on.

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in FUNCTIONS.iter().enumerate() {
            assert!(
                FUNCTIONS[i + 1..].iter().all(|b| b.name != a.name),
                "{}",
                a.name
            );
        }
    }

    #[test]
    fn the_slow_exit_probe_covers_every_release_once() {
        for minor in [19, 21, 25, 26, 27] {
            let slow: Vec<_> = attached()
                .filter(|(p, _)| *p == "gt_slow_exit")
                .filter(|(_, name)| {
                    FUNCTIONS
                        .iter()
                        .any(|f| f.name == *name && f.versions.contains(minor))
                })
                .collect();
            assert_eq!(slow.len(), 1, "1.{minor}: {slow:?}");
        }
    }

    #[test]
    fn thread_and_start_up_probes_are_attached() {
        let attached: Vec<_> = attached().map(|(_, f)| f).collect();
        for name in [
            "runtime.newm",
            "runtime.newm1",
            "runtime.mexit",
            "main.main",
        ] {
            assert!(attached.contains(&name), "{name}");
        }
    }
}
