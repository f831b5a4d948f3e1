//! Everything the tracer knows about the Go runtime's internals that
//! depends on the Go release: struct offsets ([`layout`]), status values
//! ([`states`]) and the runtime functions it probes or recognises
//! ([`functions`]). Scope: linux/amd64, default GOEXPERIMENTs, Go 1.19 and
//! 1.21–1.27 (1.20 is absent: no toolchain to verify it with). A release
//! without a layout row degrades to syscall-only tracing with one warning,
//! never to wrong numbers.
//!
//! # Finding the goroutine, its M and its P
//!
//! * `g`, the current goroutine: register R14 at the entry of every Go
//!   function (the register ABI, Go 1.17+), and at `%fs:-8` (thread-local
//!   storage) in binaries without C thread-local data. In C code (a cgo
//!   call) R14 holds anything, so the kernel keeps the last M seen per
//!   thread instead.
//! * `g.m` is the M (the OS thread's runtime state) running it; `m.procid`
//!   is that thread's TID, which makes `g.m.procid == tid` the check that
//!   R14 really holds a `g` of this thread.
//! * `m.g0` is the M's scheduler goroutine (its system stack): when the
//!   current `g` is `m.g0`, the runtime itself is running (sysmon, an idle M
//!   parking, the scheduler), not a goroutine. `m.g0` and `p.id` are the
//!   first fields of their structs in every release; the kernel relies on
//!   it (see `layout`'s tests).
//! * `m.curg` is the user goroutine of the M, the one making a cgo call
//!   while the thread runs C code; `m.incgo` is set during such a call.
//! * `g.sched` is where a goroutine's registers are saved when it stops
//!   running (`sp`, `pc`, `bp`); `entersyscall` saves them there too, so a
//!   goroutine in a cgo call has its Go stack walked from `g.sched.pc` and
//!   the frame pointer `g.sched.bp`. `runtime.gobuf` lost its `ret` field in
//!   Go 1.25, moving `bp` from +0x30 to +0x28.
//! * `g.goid` is the goroutine id (moved by 8 bytes in 1.23 and 1.24);
//!   `g.atomicstatus` its status (`states`).
//! * `m.p` is the P (the right to run Go code, one of GOMAXPROCS) the M
//!   holds; `p.id` its index in `runtime.allp`, `p.status` its state,
//!   `p.m` its M.
//! * `m.id`, `m.alllink` (the list of all Ms from `runtime.allm`),
//!   `g.lockedm`, `m.lockedg`, `m.lockedExt` and `m.lockedInt` (the
//!   `LockOSThread` counts of user code and of the runtime) describe
//!   threads and their locking; `schedt.maxmcount` in `runtime.sched` is the
//!   thread limit of `debug.SetMaxThreads`, read by the facts collector.
//!
//! # Did a syscall lose its P?
//!
//! A goroutine enters a blocking-capable syscall or a cgo call through
//! `runtime.entersyscall`: its status goes `_Grunning` → `_Gsyscall`. If the
//! call lasts more than about one sysmon tick (20 µs up to 10 ms) while
//! other work waits, sysmon's `retake` takes its P and hands it to another
//! M (`handoffp` → `startm`, creating a thread if no M is idle): this is how
//! a Go program grows threads. On return (`exitsyscall`) the goroutine gets
//! its P back, another idle P, or none: then it is queued and its thread
//! parks (`exitsyscall0`, `exitsyscallNoP` from 1.26).
//!
//! * Go ≤1.25 (`p_stays_wired == false`): `entersyscall` moves the P to
//!   `m.oldp`, clears `m.p` and sets the P to `_Psyscall`; sysmon takes it by
//!   changing that status (and bumping `p.syscalltick`). At the syscall's
//!   exit the P was kept iff `m.oldp` is still `_Psyscall` and
//!   `m.syscalltick == p.syscalltick` (`entersyscall` copies the P's tick
//!   into the M; the copy tells a P that was taken, used and put into a
//!   syscall again by another goroutine from one never taken).
//! * Go 1.26+ (`p_stays_wired == true`): `_Psyscall` is gone. The P stays
//!   `_Prunning` and wired to the M (`m.p` stays set); "in a syscall" is
//!   read from the goroutine's `_Gsyscall`. Whoever takes the P
//!   (sysmon, a goroutine stealing it back on its own exit, the GC) goes
//!   through `syscallingThread.releaseP`, which clears `m.p`: the P was
//!   lost iff `m.p` is 0 at the exit.
//! * A stop-the-world takes every P still in a syscall (`_Pgcstop`):
//!   before 1.26 the kernel lists the Ps of `runtime.allp` that are
//!   `_Psyscall` when `stopTheWorldWithSema` starts.
//!
//! # How the facts were verified
//!
//! The integration tests in `tests/integration/goruntime.rs` (no root, no
//! eBPF: `TRACER_EBPF_STUB=1 cargo test -p tracer --test integration
//! goruntime::`) build a small program with every toolchain of
//! `TRACER_GO_TOOLCHAINS` (`cargo xtask test` sets it; `--full` installs
//! every supported release), with and without cgo, and read its DWARF:
//!
//! * every offset of the release's [`RuntimeLayout`] row, each as a member
//!   path such as `g.sched.bp`, is the member's DWARF offset, and the width
//!   the tracer reads is the member type's size;
//! * every status constant of [`states`] for the release is the DWARF
//!   constant of that name (`runtime._Gsyscall`...), and every G or P
//!   status constant in DWARF is listed;
//! * every function of [`functions`] for the release is in the program's
//!   pclntab, and none outside its releases is;
//! * a toolchain whose release has no row fails the test: adding a Go
//!   release means adding its row.
//!
//! Semantics (which function runs when, what a probe hit means) were
//! established by reading each release's `runtime` sources and checked at
//! run time with uprobes on test programs; the privileged integration tests
//! keep checking them against Go's own execution tracer (ground truth).
//! Binary-format facts (build info, pclntab, function ids of ABI wrappers)
//! live with their readers in [`crate::gobin`].

pub mod functions;
pub mod layout;
pub mod states;

pub use layout::{RuntimeLayout, layout, offsets, sched_maxmcount_offset};

/// The Go 1.x minor releases a fact applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoMinors {
    /// Every supported release.
    All,
    /// Up to and including 1.`n`.
    UpTo(u32),
    /// From 1.`n` on.
    From(u32),
}

impl GoMinors {
    pub const fn contains(self, minor: u32) -> bool {
        match self {
            Self::All => true,
            Self::UpTo(n) => minor <= n,
            Self::From(n) => minor >= n,
        }
    }
}

impl std::fmt::Display for GoMinors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::UpTo(n) => write!(f, "≤1.{n}"),
            Self::From(n) => write!(f, "≥1.{n}"),
        }
    }
}
