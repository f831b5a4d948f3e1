//! vDSO fallbacks: real syscalls of calls the vDSO normally answers in user
//! space (`clock_gettime`, `gettimeofday`, `time`, `getcpu`), by call site,
//! each classified by why the vDSO did not answer it.

use serde::Serialize;
use tracer_common::{SYS_CLOCK_GETTIME, SYS_GETCPU, SYS_GETTIMEOFDAY, SYS_TIME};

use crate::{
    facts::VdsoFacts,
    gobin::symbolize::{CallSite, Frame, Symbolizer, call_site_of},
    model::Model,
    syscall_names,
};

/// Why a vDSO-served call became a real syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FallbackKind {
    /// The program made the syscall itself (e.g. `syscall.Syscall`,
    /// `unix.ClockGettime` through a raw syscall): the vDSO was never asked.
    DirectSyscall,
    /// The Go runtime's clock code made the syscall because it found no vDSO
    /// (`runtime.vdsoClockgettimeSym` is 0).
    RuntimeNoVdso,
    /// The vDSO ran and fell back: the clocksource cannot be read from user
    /// space (hpet, acpi_pm, an unstable TSC).
    VdsoClocksource,
    /// `clock_gettime` on a clock the vDSO does not serve (CPU-time clocks,
    /// alarm clocks, dynamic clocks).
    ClockNotServed,
}

impl FallbackKind {
    pub fn explain(self) -> &'static str {
        match self {
            Self::DirectSyscall => "the program makes the syscall itself, bypassing the vDSO",
            Self::RuntimeNoVdso => {
                "the Go runtime has no vDSO (runtime.vdsoClockgettimeSym is 0): every clock read is a syscall"
            }
            Self::VdsoClocksource => {
                "the vDSO fell back to the kernel: the clocksource cannot be read from user space"
            }
            Self::ClockNotServed => "the vDSO does not serve this clock id",
        }
    }
}

/// Clock ids `__vdso_clock_gettime` answers on x86_64 (others make it call
/// the kernel): REALTIME, MONOTONIC, MONOTONIC_RAW, REALTIME_COARSE,
/// MONOTONIC_COARSE, BOOTTIME, TAI.
fn vdso_serves_clock(clock: i32) -> bool {
    matches!(clock, 0 | 1 | 4 | 5 | 6 | 7 | 11)
}

pub fn clock_name(clock: i32) -> String {
    let name = match clock {
        0 => "CLOCK_REALTIME",
        1 => "CLOCK_MONOTONIC",
        2 => "CLOCK_PROCESS_CPUTIME_ID",
        3 => "CLOCK_THREAD_CPUTIME_ID",
        4 => "CLOCK_MONOTONIC_RAW",
        5 => "CLOCK_REALTIME_COARSE",
        6 => "CLOCK_MONOTONIC_COARSE",
        7 => "CLOCK_BOOTTIME",
        8 => "CLOCK_REALTIME_ALARM",
        9 => "CLOCK_BOOTTIME_ALARM",
        11 => "CLOCK_TAI",
        c if c < 0 => return format!("dynamic clock {c}"),
        c => return format!("clock {c}"),
    };
    name.to_owned()
}

/// Go runtime functions that read the clock through the vDSO, and make the
/// syscall themselves when it is missing.
fn is_runtime_clock_function(function: &str) -> bool {
    matches!(
        function,
        "time.now" | "runtime.nanotime1" | "runtime.walltime" | "runtime.walltime1"
    ) || function.starts_with("runtime.vdso")
}

/// Classifies one fallback call site from its syscall, clock and the
/// function its syscall instruction is in (`None`: not Go code).
pub fn classify(
    sysno: u32,
    clock: i32,
    ip: Option<u64>,
    function: Option<&str>,
    facts: &VdsoFacts,
) -> FallbackKind {
    if sysno == SYS_CLOCK_GETTIME && !vdso_serves_clock(clock) {
        return FallbackKind::ClockNotServed;
    }
    let in_vdso = match (ip, facts.mapping) {
        (Some(ip), Some((start, end))) => (start..end).contains(&ip),
        _ => false,
    };
    if in_vdso {
        return FallbackKind::VdsoClocksource;
    }
    if function.is_some_and(is_runtime_clock_function) {
        return FallbackKind::RuntimeNoVdso;
    }
    FallbackKind::DirectSyscall
}

#[derive(Clone, Debug, Serialize)]
pub struct VdsoRow {
    pub syscall: String,
    /// The clock, for `clock_gettime`.
    pub clock: Option<String>,
    pub calls: u64,
    pub calls_per_second: f64,
    pub kind: FallbackKind,
    pub why: &'static str,
    /// The first frame in the program's own code (else outside the
    /// runtime): who asked for the time.
    pub call_site: Option<CallSite>,
    /// The symbolized stack, innermost first (Go programs).
    pub stack: Vec<Frame>,
}

#[derive(Clone, Debug, Serialize)]
pub struct VdsoSection {
    pub facts: VdsoFacts,
    /// Fallback syscalls by call site, most calls first.
    pub fallbacks: Vec<VdsoRow>,
    pub total_calls: u64,
    /// Of those, the calls the vDSO would have served (the fallbacks
    /// proper; the rest are of clocks the vDSO never serves).
    pub fallback_calls: u64,
    /// Estimated time in the fallbacks proper per second of tracing (the
    /// clock syscalls' measured time, in the fallbacks' share of the
    /// calls); a vDSO read costs tens of nanoseconds.
    pub est_cost_ns_per_second: f64,
}

impl VdsoSection {
    pub fn build(
        model: &Model,
        facts: VdsoFacts,
        sym: Option<&Symbolizer>,
        traced_seconds: f64,
    ) -> Self {
        let mut rows: Vec<VdsoRow> = Vec::new();
        for (site, &calls) in &model.vdso_calls {
            let stack = sym
                .map(|s| s.syscall_stack(&site.frames))
                .unwrap_or_default();
            // The function the syscall instruction is in (assembly: no
            // inlined calls), not an inlined frame.
            let function = sym
                .and_then(|s| s.function_name(*site.frames.first()?, false))
                .map(str::to_owned);
            let kind = classify(
                site.sysno,
                site.clock,
                site.frames.first().copied(),
                function.as_deref(),
                &facts,
            );
            let call_site = call_site_of(&stack).ok();
            let clock = (site.sysno == SYS_CLOCK_GETTIME).then(|| clock_name(site.clock));
            let syscall = syscall_names::name(site.sysno);
            match rows.iter_mut().find(|r| {
                r.syscall == syscall
                    && r.clock == clock
                    && r.kind == kind
                    && r.call_site == call_site
            }) {
                Some(row) => row.calls += calls,
                None => rows.push(VdsoRow {
                    syscall,
                    clock,
                    calls,
                    calls_per_second: 0.0,
                    kind,
                    why: kind.explain(),
                    call_site,
                    stack,
                }),
            }
        }
        let seconds = traced_seconds.max(1e-3);
        for row in &mut rows {
            row.calls_per_second = row.calls as f64 / seconds;
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.calls));
        let total_calls: u64 = rows.iter().map(|r| r.calls).sum();
        let fallback_calls: u64 = rows
            .iter()
            .filter(|r| r.kind != FallbackKind::ClockNotServed)
            .map(|r| r.calls)
            .sum();
        let program = model
            .syscalls
            .by_syscall(crate::model::syscalls::Waiter::Program);
        let cost_ns: f64 = [SYS_CLOCK_GETTIME, SYS_GETTIMEOFDAY, SYS_TIME, SYS_GETCPU]
            .iter()
            .filter_map(|n| program.get(n))
            .map(|s| s.total_ns as f64)
            // Summed from +0.0: an empty f64 sum is -0.0, printed as such.
            .fold(0.0, |a, b| a + b);
        let share = if total_calls == 0 {
            0.0
        } else {
            fallback_calls as f64 / total_calls as f64
        };
        Self {
            facts,
            fallbacks: rows,
            total_calls,
            fallback_calls,
            est_cost_ns_per_second: cost_ns * share / seconds,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_order() {
        let facts = VdsoFacts {
            mapping: Some((0x7000, 0x9000)),
            ..VdsoFacts::default()
        };

        let c = |sysno, clock, ip, f| classify(sysno, clock, Some(ip), f, &facts);
        // CPU-time clocks fall back inside the vDSO itself: the clock, not
        // the clocksource, is the reason.
        assert_eq!(c(228, 2, 0x7100, None), FallbackKind::ClockNotServed);
        assert_eq!(c(228, -6, 0x401000, None), FallbackKind::ClockNotServed);
        assert_eq!(c(228, 1, 0x7100, None), FallbackKind::VdsoClocksource);
        assert_eq!(c(96, 0, 0x8fff, None), FallbackKind::VdsoClocksource);
        assert_eq!(
            c(228, 0, 0x401000, Some("time.now")),
            FallbackKind::RuntimeNoVdso
        );
        assert_eq!(
            c(228, 1, 0x401000, Some("runtime.nanotime1")),
            FallbackKind::RuntimeNoVdso
        );
        assert_eq!(
            c(228, 0, 0x401000, Some("internal/runtime/syscall.Syscall6")),
            FallbackKind::DirectSyscall
        );
        assert_eq!(c(201, 0, 0x9000, None), FallbackKind::DirectSyscall);
    }

    #[test]
    fn clock_names() {
        assert_eq!(clock_name(1), "CLOCK_MONOTONIC");
        assert_eq!(clock_name(-6), "dynamic clock -6");
    }
}
