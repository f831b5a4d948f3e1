//! Verdicts: the seed's field questions answered in plain words from the
//! report and the process facts, each with the numbers behind it and the
//! fix. Pure functions of the report, so every rule is unit-tested.

use serde::Serialize;

use super::{Report, vdso::FallbackKind};
use crate::{facts::Facts, live::threads::Holder};

/// Threads beyond GOMAXPROCS the runtime keeps anyway (sysmon, template
/// thread, an idle M or two, the netpoller's waiter).
const RUNTIME_THREADS: u64 = 4;
/// More extra threads than this is an explosion, not a bound.
const EXPLOSION: u64 = 16;
/// Sockets from which "many connections" is worth a verdict.
const MANY_SOCKETS: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    FileIoThreads,
    FileIoBounded,
    SyscallThreads,
    CgoThreads,
    LockosthreadLeak,
    NetpollerParked,
    GomaxprocsAboveQuota,
    ThreadLimit,
    VdsoFallback,
}

#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// "problem" needs fixing; "ok" rules a suspect out.
    pub severity: &'static str,
    pub summary: String,
    pub fix: Option<String>,
}

/// Syscalls on files (not netpolled: a blocked one holds its thread).
fn is_file_syscall(name: &str) -> bool {
    matches!(
        name,
        "read"
            | "pread64"
            | "readv"
            | "preadv"
            | "preadv2"
            | "write"
            | "pwrite64"
            | "writev"
            | "pwritev"
            | "pwritev2"
            | "open"
            | "openat"
            | "openat2"
            | "close"
            | "fsync"
            | "fdatasync"
            | "sync_file_range"
            | "fstat"
            | "newfstatat"
            | "statx"
            | "getdents64"
            | "unlinkat"
            | "renameat"
            | "renameat2"
            | "mkdirat"
            | "ftruncate"
            | "fallocate"
            | "copy_file_range"
    )
}

pub fn diagnose(r: &Report, facts: &Facts) -> Vec<Verdict> {
    let mut out = Vec::new();
    let gomaxprocs = facts
        .cpu
        .gomaxprocs
        .map(u64::from)
        .or_else(|| r.go.as_ref().map(|g| g.ps_seen).filter(|&n| n > 0));
    let sampled_peak = facts.samples.iter().map(|s| s.threads).max().unwrap_or(0);
    let peak = r.threads.peak.max(sampled_peak);
    let g = gomaxprocs.unwrap_or(1);
    let extra = peak.saturating_sub(g);
    let g_text = gomaxprocs.map_or_else(|| "?".to_owned(), |n| n.to_string());

    threads_from_syscalls(r, facts, peak, g, extra, &g_text, &mut out);

    let cgo: u64 = r
        .threads_by_cause
        .iter()
        .filter(|c| c.cause.starts_with("cgo call handoff"))
        .map(|c| c.threads)
        .sum();
    let in_cgo_now = facts.samples.last().map_or(0, |s| s.count(Holder::Cgo));
    if cgo > 0 || in_cgo_now > RUNTIME_THREADS {
        let site = r
            .threads_by_cause
            .iter()
            .find(|c| c.cause.starts_with("cgo call handoff"))
            .and_then(|c| c.call_site.as_ref())
            .or_else(|| {
                r.blocking
                    .iter()
                    .find(|b| b.cgo)
                    .and_then(|b| b.call_site.as_ref())
            })
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        let explosion = extra > EXPLOSION;
        out.push(Verdict {
            kind: VerdictKind::CgoThreads,
            severity: if explosion { "problem" } else { "info" },
            summary: format!(
                "cgo calls hold threads: {cgo} threads spawned when Ps were handed off from goroutines \
                 in C at {site}; {in_cgo_now} threads in C at the last sample; peak {peak} threads \
                 with GOMAXPROCS {g_text}. A goroutine in C keeps its thread for the whole call."
            ),
            fix: explosion.then(|| {
                "bound concurrent cgo calls (a semaphore), or run the C work on a fixed pool of \
                 worker goroutines"
                    .to_owned()
            }),
        });
    }

    let leaks: u64 = r.lockosthread_leaks.iter().map(|l| l.threads).sum();
    if leaks > 0 {
        let site = r.lockosthread_leaks[0]
            .call_site
            .as_ref()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        let per_second = leaks as f64 / r.traced_seconds.max(1e-3);
        out.push(Verdict {
            kind: VerdictKind::LockosthreadLeak,
            severity: "problem",
            summary: format!(
                "LockOSThread leaks: {leaks} threads destroyed ({per_second:.1}/s) because goroutines \
                 exited while locked to them (locked at {site}); each leak costs a thread exit and \
                 a new thread."
            ),
            fix: Some(
                "pair every runtime.LockOSThread with `defer runtime.UnlockOSThread()`".to_owned(),
            ),
        });
    }

    if let Some(s) = &facts.sockets
        && s.sockets >= MANY_SOCKETS
        && extra <= RUNTIME_THREADS + 4
    {
        out.push(Verdict {
            kind: VerdictKind::NetpollerParked,
            severity: "ok",
            summary: format!(
                "{} sockets ({} TCP connections established) but only {peak} threads at peak \
                 (GOMAXPROCS {g_text}): network waits are parked in the netpoller and cost no \
                 thread. Not the cause of a thread problem.",
                s.sockets, s.tcp_established
            ),
            fix: None,
        });
    }

    quota(r, facts, &mut out);
    limits(facts, peak, &mut out);
    vdso(r, &mut out);
    out
}

fn threads_from_syscalls(
    r: &Report,
    facts: &Facts,
    peak: u64,
    g: u64,
    extra: u64,
    g_text: &str,
    out: &mut Vec<Verdict>,
) {
    // Threads spawned after P handoffs from syscalls, file or not.
    let handoff = |file: bool| {
        r.threads_by_cause
            .iter()
            .filter(|c| c.cause.starts_with("syscall handoff"))
            .filter(move |c| c.syscall.as_deref().is_some_and(is_file_syscall) == file)
    };
    let file_spawns: u64 = handoff(true).map(|c| c.threads).sum();
    let file_handoffs: u64 = r
        .blocking
        .iter()
        .filter(|b| !b.cgo && is_file_syscall(&b.syscall))
        .map(|b| b.p_handoffs)
        .sum();
    // Threads in file syscalls at once, from the samples.
    let file_holding = facts
        .samples
        .iter()
        .map(|s| {
            s.holders
                .iter()
                .filter(|h| {
                    h.holder == Holder::Syscall && h.syscall.as_deref().is_some_and(is_file_syscall)
                })
                .map(|h| h.threads)
                .sum::<u64>()
        })
        .max()
        .unwrap_or(0);
    if file_spawns > 0 || file_handoffs > 0 {
        let top = handoff(true).max_by_key(|c| c.threads);
        let site = top
            .and_then(|c| c.call_site.as_ref())
            .or_else(|| {
                r.blocking
                    .iter()
                    .filter(|b| !b.cgo && is_file_syscall(&b.syscall))
                    .max_by_key(|b| b.p_handoffs)
                    .and_then(|b| b.call_site.as_ref())
            })
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        let mut calls: Vec<&str> = handoff(true).filter_map(|c| c.syscall.as_deref()).collect();
        calls.sort_unstable();
        calls.dedup();
        let calls = if calls.is_empty() {
            "file syscalls".to_owned()
        } else {
            calls.join("/")
        };
        let held = if file_holding > 0 {
            format!(", up to {file_holding} threads seen blocked in file syscalls at once")
        } else {
            String::new()
        };
        // Files drive the growth when most new threads came from their
        // handoffs, or many threads were seen blocked in them at once.
        let file_driven = file_spawns * 2 >= r.threads.spawned.max(1) || file_holding > EXPLOSION;
        if extra > EXPLOSION && file_driven {
            out.push(Verdict {
                kind: VerdictKind::FileIoThreads,
                severity: "problem",
                summary: format!(
                    "Unbounded file I/O holds threads: {file_spawns} of {} new threads were spawned \
                     after P handoffs from {calls} at {site}; peak {peak} threads with GOMAXPROCS \
                     {g_text}{held}. File reads are not netpolled: every blocked read keeps an OS \
                     thread, and the scheduler starts another to run the rest.",
                    r.threads.spawned
                ),
                fix: Some(
                    "bound concurrent file I/O with a semaphore (a buffered channel) sized to the \
                     disk's parallelism, e.g. 8 to 64"
                        .to_owned(),
                ),
            });
        } else if extra <= EXPLOSION {
            out.push(Verdict {
                kind: VerdictKind::FileIoBounded,
                severity: "ok",
                summary: format!(
                    "File I/O is bounded: peak {peak} threads = GOMAXPROCS {g_text} + {extra}; \
                     blocking file syscalls at {site} hand off Ps ({file_handoffs} times) without \
                     a thread explosion{held}."
                ),
                fix: None,
            });
        }
    }
    let other: Vec<_> = handoff(false).collect();
    let other_spawns: u64 = other.iter().map(|c| c.threads).sum();
    if other_spawns > 0 && extra > EXPLOSION && other_spawns * 2 >= r.threads.spawned {
        let top = other.iter().max_by_key(|c| c.threads).expect("non-empty");
        let site = top
            .call_site
            .as_ref()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        out.push(Verdict {
            kind: VerdictKind::SyscallThreads,
            severity: "problem",
            summary: format!(
                "Blocking syscalls hold threads: {other_spawns} of {} new threads were spawned after \
                 P handoffs, most from {} at {site}; peak {peak} threads with GOMAXPROCS {g}.",
                r.threads.spawned,
                top.syscall.as_deref().unwrap_or("?"),
            ),
            fix: Some(
                "bound the goroutines that make this call, or make it non-blocking (netpolled)"
                    .to_owned(),
            ),
        });
    }
}

fn quota(r: &Report, facts: &Facts, out: &mut Vec<Verdict>) {
    let c = &facts.cpu;
    let (Some(q), Some(g)) = (c.quota_cpus, c.gomaxprocs) else {
        return;
    };
    if f64::from(g) <= q {
        return;
    }
    let throttled = if c.periods > 0 {
        format!(
            "; throttled in {} of {} CFS periods ({:.0} ms) while traced",
            c.throttled_periods,
            c.periods,
            c.throttled_ns as f64 / 1e6
        )
    } else {
        String::new()
    };
    let version = r.go.as_ref().map_or("?", |g| g.version.as_str());
    let rule = c.default_rule.as_deref().unwrap_or("");
    let follows = c.default_follows_quota && c.default_gomaxprocs == Some(g);
    out.push(Verdict {
        kind: VerdictKind::GomaxprocsAboveQuota,
        severity: "problem",
        summary: format!(
            "GOMAXPROCS {g} is above the cgroup CPU quota of {q:.2} CPUs ({}){throttled}. \
             {version}: {rule}. Up to {g} threads run Go code at once, so the quota runs out early \
             in each period and every thread waits for the next one: latency spikes of up to a \
             period (usually 100 ms).",
            c.quota_cgroup.as_deref().unwrap_or("?"),
        ),
        fix: Some(if follows {
            format!("Go keeps at least 2 Ps; give the container at least {g} CPUs")
        } else {
            format!(
                "set GOMAXPROCS={} (or build with Go 1.25+ and a go.mod at go 1.25 or later, whose \
                 default follows the quota)",
                (q.ceil() as u64).max(1)
            )
        }),
    });
}

fn limits(facts: &Facts, peak: u64, out: &mut Vec<Verdict>) {
    let l = &facts.limits;
    for (name, limit) in [
        ("the Go thread cap", l.go_max_threads),
        ("cgroup pids.max", l.pids_max),
        ("RLIMIT_NPROC", l.nproc_soft.filter(|_| !l.nproc_exempt)),
    ] {
        let Some(limit) = limit.filter(|&n| n > 0) else {
            continue;
        };
        if peak * 10 >= limit * 8 {
            out.push(Verdict {
                kind: VerdictKind::ThreadLimit,
                severity: "problem",
                summary: format!(
                    "Threads peaked at {peak}, {:.0}% of {name} ({limit}): past it, thread creation \
                     fails and the Go runtime aborts (\"failed to create new OS thread\").",
                    peak as f64 * 100.0 / limit as f64
                ),
                fix: Some(
                    "find what holds the threads (above) and bound it; raise the limit only after"
                        .to_owned(),
                ),
            });
        }
    }
}

fn vdso(r: &Report, out: &mut Vec<Verdict>) {
    let v = &r.vdso;
    if v.total_calls == 0 {
        return;
    }
    let top = &v.fallbacks[0];
    let site = top
        .call_site
        .as_ref()
        .map_or_else(|| "?".to_owned(), ToString::to_string);
    let fix = match top.kind {
        FallbackKind::DirectSyscall => {
            "call time.Now()/clock_gettime through the vDSO (not syscall.Syscall)"
        }
        FallbackKind::RuntimeNoVdso => {
            "the process started without a usable vDSO (check AT_SYSINFO_EHDR, vdso=0 on the kernel \
             command line, or a sandbox)"
        }
        FallbackKind::VdsoClocksource => {
            "use a vDSO-readable clocksource (tsc, kvm-clock): check \
             /sys/devices/system/clocksource/clocksource0"
        }
        FallbackKind::ClockNotServed => "use CLOCK_MONOTONIC or CLOCK_REALTIME where possible",
    };
    out.push(Verdict {
        kind: VerdictKind::VdsoFallback,
        severity: "problem",
        summary: format!(
            "{} clock/cpu reads went to the kernel instead of the vDSO (≈{:.2} ms of syscalls per \
             second); most: {} {} at {site}: {}.",
            v.total_calls,
            v.est_cost_ns_per_second / 1e6,
            top.calls,
            top.syscall,
            top.why
        ),
        fix: Some(fix.to_owned()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{BlockingRow, CauseRow, tests::sample};

    fn cause(syscall: &str, threads: u64) -> CauseRow {
        CauseRow {
            cause: "syscall handoff (sysmon retake)".into(),
            threads,
            syscall: Some(syscall.into()),
            call_site: None,
        }
    }

    fn blocking(syscall: &str, p_handoffs: u64) -> BlockingRow {
        BlockingRow {
            syscall: syscall.into(),
            call_site: None,
            calls: p_handoffs,
            goroutines: 1,
            total_ns: 0,
            p99_ns: 0,
            max_ns: 0,
            p_handoffs,
            slow_exits: 0,
            cgo: false,
            stack: Vec::new(),
        }
    }

    fn kinds(r: &Report) -> Vec<VerdictKind> {
        let mut facts = Facts::default();
        facts.cpu.gomaxprocs = Some(2);
        diagnose(r, &facts).into_iter().map(|v| v.kind).collect()
    }

    #[test]
    fn file_verdicts_follow_what_drove_the_threads() {
        let mut r = sample();
        r.threads.spawned = 100;
        r.threads.peak = 101;
        r.threads_by_cause = vec![cause("read", 90), cause("nanosleep", 10)];
        r.blocking = vec![blocking("read", 300)];
        assert_eq!(kinds(&r), vec![VerdictKind::FileIoThreads]);
        // The same growth driven by nanosleep: a syscall verdict, and the
        // few file handoffs do not get blamed.
        r.threads_by_cause = vec![cause("read", 2), cause("nanosleep", 90)];
        assert_eq!(kinds(&r), vec![VerdictKind::SyscallThreads]);
        // No explosion: file I/O is reported bounded.
        r.threads.peak = 12;
        r.threads.spawned = 11;
        r.threads_by_cause = vec![cause("read", 6)];
        assert_eq!(kinds(&r), vec![VerdictKind::FileIoBounded]);
    }
}
