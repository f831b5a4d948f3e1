//! Interval summaries: what changed between two snapshots of a running
//! session (calls, p99 per syscall over the interval, threads, handoffs),
//! printed every `--interval` like bpftrace's `interval` probes.

use std::io::{self, Write};

use serde::Serialize;

use std::collections::BTreeMap;

use crate::{
    model::{
        Model,
        syscalls::{SyscallStats, Waiter},
    },
    syscall_names,
    units::human_ns,
};

/// Syscalls listed per interval line block.
const TOP: usize = 5;

#[derive(Clone, Debug, Serialize)]
pub struct IntervalSummary {
    pub schema: &'static str,
    /// Seconds since tracing began, at the end of this interval.
    pub elapsed_seconds: f64,
    pub interval_seconds: f64,
    pub calls: u64,
    pub errors: u64,
    /// Threads alive now (the model's count), spawned and ended in the
    /// interval.
    pub threads: u64,
    pub spawned: u64,
    pub exited: u64,
    pub p_handoffs: u64,
    pub slow_exits: u64,
    pub vdso_fallbacks: u64,
    pub lost: u64,
    /// Syscalls with the most time in the interval.
    pub top: Vec<IntervalSyscall>,
}

#[derive(Clone, Debug, Serialize)]
pub struct IntervalSyscall {
    pub name: String,
    pub calls: u64,
    pub total_ns: u64,
    pub p99_ns: u64,
}

/// What an interval is measured from: the previous reading of the
/// cumulative counts (per syscall, with its histogram), not a copy of the
/// model.
#[derive(Default)]
struct Previous {
    elapsed: f64,
    syscalls: BTreeMap<u32, SyscallStats>,
    spawned: u64,
    ended: u64,
    handoffs: u64,
    slow_exits: u64,
    vdso: u64,
    lost: u64,
}

/// Computes [`IntervalSummary`]s from successive readings of a model.
#[derive(Default)]
pub struct IntervalDiff {
    prev: Option<Previous>,
}

/// Ps taken from calls reported while traced: the calls that lost their
/// P (the reconciled total needs the symbolizer; this is the raw count).
fn handoffs(m: &Model) -> u64 {
    m.calls.p_lost.values().sum()
}

impl IntervalDiff {
    /// The change since the previous reading (or since the start).
    pub fn next(&mut self, now: &Model, elapsed_seconds: f64) -> IntervalSummary {
        let prev = self.prev.take().unwrap_or_default();
        let current = now.syscalls.by_syscall(Waiter::Program);
        let mut top = Vec::new();
        let (mut calls, mut errors) = (0, 0);
        for (sysno, cur) in &current {
            let before = prev.syscalls.get(sysno);
            let d_calls = cur.calls - before.map_or(0, |b| b.calls.min(cur.calls));
            if d_calls == 0 {
                continue;
            }
            calls += d_calls;
            errors += cur.errors - before.map_or(0, |b| b.errors.min(cur.errors));
            let mut hist = cur.histogram.clone();
            if let Some(b) = before {
                // Cumulative histograms only grow: the difference is this
                // interval's calls.
                let _ = hist.subtract(&b.histogram);
            }
            top.push(IntervalSyscall {
                name: syscall_names::name(*sysno),
                calls: d_calls,
                total_ns: cur.total_ns - before.map_or(0, |b| b.total_ns.min(cur.total_ns)),
                p99_ns: if hist.is_empty() {
                    0
                } else {
                    hist.value_at_quantile(0.99).min(cur.max_ns)
                },
            });
        }
        top.sort_by_key(|s| std::cmp::Reverse(s.total_ns));
        top.truncate(TOP);
        let t = &now.threads;
        let ended = t.exited_itself + t.ended_with_process;
        let vdso: u64 = now.vdso_calls.values().sum();
        let summary = IntervalSummary {
            schema: "gotracer.interval/2",
            elapsed_seconds,
            interval_seconds: elapsed_seconds - prev.elapsed,
            calls,
            errors,
            threads: now.live_threads(),
            spawned: t.spawned.saturating_sub(prev.spawned),
            exited: ended.saturating_sub(prev.ended),
            p_handoffs: handoffs(now).saturating_sub(prev.handoffs),
            slow_exits: now.runtime.slow_exits.total.saturating_sub(prev.slow_exits),
            vdso_fallbacks: vdso.saturating_sub(prev.vdso),
            lost: now.counters.lost().saturating_sub(prev.lost),
            top,
        };
        self.prev = Some(Previous {
            elapsed: elapsed_seconds,
            syscalls: current,
            spawned: t.spawned,
            ended,
            handoffs: handoffs(now),
            slow_exits: now.runtime.slow_exits.total,
            vdso,
            lost: now.counters.lost(),
        });
        summary
    }
}

impl IntervalSummary {
    /// One header line and a few indented syscall lines.
    pub fn write_text(&self, o: &mut impl Write) -> io::Result<()> {
        let rate = self.calls as f64 / self.interval_seconds.max(1e-3);
        writeln!(
            o,
            "--- +{:.1}s: {} syscalls ({:.0}/s), {} errors; threads {} (+{} -{}); \
             P handoffs {}, slow exits {}, vDSO fallbacks {}, lost {}",
            self.elapsed_seconds,
            self.calls,
            rate,
            self.errors,
            self.threads,
            self.spawned,
            self.exited,
            self.p_handoffs,
            self.slow_exits,
            self.vdso_fallbacks,
            self.lost
        )?;
        for s in &self.top {
            writeln!(
                o,
                "    {:<18} {:>10} calls  p99 {:>10}  total {:>10}",
                s.name,
                s.calls,
                human_ns(s.p99_ns),
                human_ns(s.total_ns)
            )?;
        }
        o.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Event;

    fn call(sysno: u32, duration_ns: u64) -> Event {
        Event::Syscall {
            tid: 1,
            ts_ns: 0,
            sysno,
            ret: 0,
            duration_ns,
            idle: false,
        }
    }

    #[test]
    fn intervals_are_differences() {
        let mut model = Model::new(3);
        let mut diff = IntervalDiff::default();
        for _ in 0..10 {
            model.apply(&call(0, 1_000));
        }
        let first = diff.next(&model, 1.0);
        assert_eq!((first.calls, first.threads), (10, 3));
        for _ in 0..5 {
            model.apply(&call(0, 1_000_000));
        }
        model.apply(&Event::ThreadSpawn {
            parent_tid: 1,
            tid: 9,
            ts_ns: 0,
        });
        let second = diff.next(&model, 2.0);
        assert_eq!((second.calls, second.spawned, second.threads), (5, 1, 4));
        // Only this interval's calls are in its p99.
        let p99 = second.top[0].p99_ns as f64;
        assert!((p99 - 1e6).abs() / 1e6 < 0.01, "{p99}");
        assert!((second.interval_seconds - 1.0).abs() < 1e-9);
        let third = diff.next(&model, 3.0);
        assert_eq!((third.calls, third.spawned), (0, 0));
        assert!(third.top.is_empty());
    }
}
