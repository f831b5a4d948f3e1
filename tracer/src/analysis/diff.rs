//! What changed between two sessions (`tracer diff BEFORE AFTER`): per
//! syscall the rate, p50/p99/p99.9 and errors; thread spawns by cause; P
//! handoffs and slow exits; the verdicts that appeared or went away.
//!
//! Each change says whether it is beyond the noise of what was counted:
//!
//! - counts (calls, errors, spawns, handoffs) are compared on one
//!   [`Basis`]: per run when both sessions traced whole runs of a program
//!   (`run`, to its exit: the same job before and after a fix does the same
//!   work, however long it took), else per second of traced time (a
//!   service attached to for a while). Counts of independent events spread
//!   like a Poisson variable (variance = the count), so two counts (or
//!   rates) differ beyond noise when the difference exceeds [`Z`] standard
//!   deviations of it;
//! - a percentile is read from a histogram of `n` calls: the call at rank
//!   `q·n` could as well have been any within `Z·√(n·q·(1−q))` ranks of it
//!   (the order statistic's spread), and each value stands for its whole
//!   histogram bucket. The percentile moved when the two bands of values
//!   (those ranks, widened to their buckets' edges) do not overlap. A rank
//!   band that reaches past the first or last call leaves the band open on
//!   that side: the calls seen say nothing of values beyond them (a
//!   handful of calls, or p99.9 of fewer than ~10 000, can hardly move).
//!
//! Figures without a noise model (the peak thread count: every spawn and
//! exit is seen) carry `beyond_noise: None`.

use std::collections::{BTreeMap, BTreeSet};

use hdrhistogram::Histogram;
use serde::Serialize;

use super::verdicts::{Severity, Verdict, VerdictKind};
use crate::{
    model::syscalls::SyscallStats,
    report::{Mode, Report, quantile},
    syscall_names,
};

/// Standard deviations a change must exceed (3: about 1 in 370 for a
/// normal variable, so a table of a few dozen rows rarely shows a false
/// change).
pub const Z: f64 = 3.0;

/// Version of the diff's JSON form.
pub const SCHEMA: &str = "gotracer.diff/1";

/// One session, as `diff` compares it.
pub struct Side<'a> {
    pub report: &'a Report,
    /// The program's calls by syscall number, with their histograms.
    pub program: BTreeMap<u32, SyscallStats>,
}

/// What counts are compared on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Both sessions traced a whole run of the program: totals per run.
    PerRun,
    /// Rates per second of traced time.
    PerSecond,
}

#[derive(Clone, Debug, Serialize)]
pub struct Diff {
    pub schema: &'static str,
    pub before: SessionSummary,
    pub after: SessionSummary,
    /// What the counts' `beyond_noise` compares.
    pub basis: Basis,
    /// The standard deviations a change must exceed to be beyond noise.
    pub z: f64,
    /// The program's syscalls on either side, most total time first.
    pub syscalls: Vec<SyscallChange>,
    pub threads: ThreadsChange,
    /// Ps taken from threads in syscalls (Go targets with attribution).
    pub handoffs: Option<RateChange>,
    /// Syscall exits that found no free P.
    pub slow_exits: Option<RateChange>,
    pub verdicts_appeared: Vec<VerdictRef>,
    pub verdicts_gone: Vec<VerdictRef>,
    /// On both sides (by kind, syscall and call site).
    pub verdicts_kept: Vec<VerdictRef>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionSummary {
    pub command: String,
    pub pid: u32,
    pub traced_seconds: f64,
    pub go_version: Option<String>,
    /// Calls or events the session missed (its report says why).
    pub lost: u64,
}

/// A count on each side, and per second of its traced time.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RateChange {
    pub before: u64,
    pub after: u64,
    pub before_per_s: f64,
    pub after_per_s: f64,
    pub beyond_noise: bool,
}

/// A percentile with the band of values it could have been.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Band {
    pub ns: u64,
    /// 0 when open below.
    pub low_ns: u64,
    /// `None` when open above.
    pub high_ns: Option<u64>,
}

impl Band {
    /// Wholly below `other`.
    fn below(&self, other: &Self) -> bool {
        self.high_ns.is_some_and(|h| h < other.low_ns)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantileChange {
    /// `None`: no call on that side.
    pub before: Option<Band>,
    pub after: Option<Band>,
    pub beyond_noise: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SyscallChange {
    pub name: String,
    pub number: u32,
    pub calls: RateChange,
    pub errors: RateChange,
    pub p50: QuantileChange,
    pub p99: QuantileChange,
    pub p999: QuantileChange,
    /// Whether any figure of the row moved beyond noise.
    pub changed: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExactChange {
    pub before: u64,
    pub after: u64,
    /// `None`: an exact count, no noise model applies.
    pub beyond_noise: Option<bool>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ThreadsChange {
    pub spawned: RateChange,
    pub peak: ExactChange,
    /// By the reason the runtime created them (the report's labels).
    pub spawned_by_cause: Vec<CauseChange>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CauseChange {
    pub cause: String,
    #[serde(flatten)]
    pub threads: RateChange,
}

/// A verdict as the diff names it.
#[derive(Clone, Debug, Serialize)]
pub struct VerdictRef {
    #[serde(flatten)]
    pub kind: VerdictKind,
    pub severity: Severity,
    pub syscall: Option<String>,
    /// The call site's function and line, when the verdict has one.
    pub call_site: Option<String>,
    pub summary: String,
}

pub fn diff(before: &Side<'_>, after: &Side<'_>) -> Diff {
    let (tb, ta) = (before.report.traced_seconds, after.report.traced_seconds);
    let basis = if whole_run(before.report) && whole_run(after.report) {
        Basis::PerRun
    } else {
        Basis::PerSecond
    };
    let rate = |b: u64, a: u64| rate_change(b, tb, a, ta, basis);
    let empty = SyscallStats::default();
    let numbers: BTreeSet<u32> = before
        .program
        .keys()
        .chain(after.program.keys())
        .copied()
        .collect();
    let mut syscalls: Vec<SyscallChange> = numbers
        .into_iter()
        .map(|n| {
            let b = before.program.get(&n).unwrap_or(&empty);
            let a = after.program.get(&n).unwrap_or(&empty);
            let q = |q| quantile_change(b, a, q);
            let (calls, errors) = (rate(b.calls, a.calls), rate(b.errors, a.errors));
            let (p50, p99, p999) = (q(0.5), q(0.99), q(0.999));
            let changed = calls.beyond_noise
                || errors.beyond_noise
                || p50.beyond_noise
                || p99.beyond_noise
                || p999.beyond_noise;
            SyscallChange {
                name: syscall_names::name(n),
                number: n,
                calls,
                errors,
                p50,
                p99,
                p999,
                changed,
            }
        })
        .collect();
    let total = |n: u32| {
        let t = |side: &Side<'_>| side.program.get(&n).map_or(0, |s| s.total_ns);
        t(before).max(t(after))
    };
    syscalls.sort_by_key(|s| (std::cmp::Reverse(total(s.number)), s.number));

    let (rb, ra) = (before.report, after.report);
    let threads = ThreadsChange {
        spawned: rate(rb.threads.spawned, ra.threads.spawned),
        peak: ExactChange {
            before: rb.threads.peak,
            after: ra.threads.peak,
            beyond_noise: None,
        },
        spawned_by_cause: cause_changes(rb, ra, &rate),
    };
    let handoffs = match (go_handoffs(rb), go_handoffs(ra)) {
        (None, None) => None,
        (b, a) => Some(rate(b.unwrap_or(0), a.unwrap_or(0))),
    };
    let slow_exits = match (&rb.go, &ra.go) {
        (None, None) => None,
        (b, a) => {
            let n = |g: &Option<crate::report::GoRow>| g.as_ref().map_or(0, |g| g.slow_exits.total);
            Some(rate(n(b), n(a)))
        }
    };
    let (verdicts_appeared, verdicts_gone, verdicts_kept) = verdict_changes(rb, ra);
    Diff {
        schema: SCHEMA,
        before: summary(rb),
        after: summary(ra),
        basis,
        z: Z,
        syscalls,
        threads,
        handoffs,
        slow_exits,
        verdicts_appeared,
        verdicts_gone,
        verdicts_kept,
    }
}

fn summary(r: &Report) -> SessionSummary {
    SessionSummary {
        command: r.target.command.clone(),
        pid: r.target.pid,
        traced_seconds: r.traced_seconds,
        go_version: r.go.as_ref().map(|g| g.version.clone()),
        lost: r.events.lost,
    }
}

/// Traced from the launch to the exit.
fn whole_run(r: &Report) -> bool {
    r.target.mode == Mode::Run && r.target.exited
}

fn go_handoffs(r: &Report) -> Option<u64> {
    r.go.as_ref()?.handoffs.as_ref().map(|h| h.total)
}

/// Two counts over their traced times; beyond noise when they (per run)
/// or their rates (per second) differ by more than [`Z`] standard
/// deviations of their difference (each count taken as Poisson: variance
/// = the count).
pub fn rate_change(
    before: u64,
    before_s: f64,
    after: u64,
    after_s: f64,
    basis: Basis,
) -> RateChange {
    let per_s = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let (rb, ra) = (per_s(before, before_s), per_s(after, after_s));
    // Per run, each count is over one run: the same arithmetic with a
    // duration of 1.
    let (db, da) = match basis {
        Basis::PerRun => (1.0, 1.0),
        Basis::PerSecond => (before_s, after_s),
    };
    let var = |n: u64, s: f64| if s > 0.0 { n as f64 / (s * s) } else { 0.0 };
    let sd = (var(before, db) + var(after, da)).sqrt();
    let (vb, va) = (per_s(before, db), per_s(after, da));
    RateChange {
        before,
        after,
        before_per_s: rb,
        after_per_s: ra,
        beyond_noise: sd > 0.0 && (vb - va).abs() > Z * sd,
    }
}

/// The percentile `q` of the calls, and the band of values it could have
/// been (see the module's comment); `None` without calls.
pub fn band(s: &SyscallStats, q: f64) -> Option<Band> {
    let h: &Histogram<u64> = &s.histogram;
    let n = h.len() as f64;
    if n == 0.0 {
        return None;
    }
    let spread = Z * (n * q * (1.0 - q)).sqrt();
    let (low_rank, high_rank) = (n * q - spread, n * q + spread);
    let at = |rank: f64| h.value_at_quantile(rank / n);
    let top = s.max_ns.max(1);
    Some(Band {
        ns: quantile(s, q),
        low_ns: if low_rank < 1.0 {
            0
        } else {
            h.lowest_equivalent(at(low_rank)).min(top)
        },
        high_ns: (high_rank <= n).then(|| h.highest_equivalent(at(high_rank)).min(top)),
    })
}

fn quantile_change(before: &SyscallStats, after: &SyscallStats, q: f64) -> QuantileChange {
    let (b, a) = (band(before, q), band(after, q));
    let beyond_noise = match (b, a) {
        (Some(b), Some(a)) => b.below(&a) || a.below(&b),
        // Calls on one side only: the rate says whether that is noise.
        _ => false,
    };
    QuantileChange {
        before: b,
        after: a,
        beyond_noise,
    }
}

fn cause_changes(
    before: &Report,
    after: &Report,
    rate: &dyn Fn(u64, u64) -> RateChange,
) -> Vec<CauseChange> {
    let by_label = |r: &Report| {
        let mut m: BTreeMap<String, u64> = BTreeMap::new();
        for row in &r.threads_by_cause.rows {
            *m.entry(row.label.clone()).or_default() += row.threads;
        }
        if r.threads_by_cause.not_kept > 0 {
            *m.entry("not kept (cause unknown)".to_owned()).or_default() +=
                r.threads_by_cause.not_kept;
        }
        m
    };
    let (b, a) = (by_label(before), by_label(after));
    let labels: BTreeSet<&String> = b.keys().chain(a.keys()).collect();
    let mut rows: Vec<CauseChange> = labels
        .into_iter()
        .map(|l| CauseChange {
            cause: l.clone(),
            threads: rate(
                b.get(l).copied().unwrap_or(0),
                a.get(l).copied().unwrap_or(0),
            ),
        })
        .collect();
    rows.sort_by_key(|c| std::cmp::Reverse(c.threads.before.max(c.threads.after)));
    rows
}

/// What makes two verdicts the same one: its kind (with the wait class),
/// syscall and call site.
type VerdictKey = (VerdictKind, Option<String>, Option<String>);

fn verdict_key(v: &Verdict) -> VerdictKey {
    (
        v.kind.clone(),
        v.syscall.clone(),
        v.call_site.as_ref().map(|c| c.frame().function.clone()),
    )
}

fn verdict_ref(v: &Verdict) -> VerdictRef {
    VerdictRef {
        kind: v.kind.clone(),
        severity: v.severity,
        syscall: v.syscall.clone(),
        call_site: v.call_site.as_ref().map(ToString::to_string),
        summary: v.summary.clone(),
    }
}

/// (appeared, gone, kept).
fn verdict_changes(
    before: &Report,
    after: &Report,
) -> (Vec<VerdictRef>, Vec<VerdictRef>, Vec<VerdictRef>) {
    let keys =
        |r: &Report| -> BTreeSet<VerdictKey> { r.verdicts.iter().map(verdict_key).collect() };
    let (kb, ka) = (keys(before), keys(after));
    let pick = |r: &Report, keep: &dyn Fn(&VerdictKey) -> bool| -> Vec<VerdictRef> {
        r.verdicts
            .iter()
            .filter(|v| keep(&verdict_key(v)))
            .map(verdict_ref)
            .collect()
    };
    (
        pick(after, &|k| !kb.contains(k)),
        pick(before, &|k| !ka.contains(k)),
        pick(after, &|k| kb.contains(k)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::syscalls::Waiter;

    fn stats(values: &[(u64, u64)]) -> SyscallStats {
        let mut m = crate::model::syscalls::SyscallTable::default();
        for &(ns, n) in values {
            for _ in 0..n {
                m.record(Waiter::Program, 0, 0, ns);
            }
        }
        m.by_syscall(Waiter::Program).remove(&0).unwrap()
    }

    #[test]
    fn rates_are_compared_against_poisson_noise() {
        let per_s = |b, tb, a, ta| rate_change(b, tb, a, ta, Basis::PerSecond);
        // 1 000 vs 1 060 calls in 10 s: 6 σ would be needed, 1.4 σ seen.
        assert!(!per_s(1000, 10.0, 1060, 10.0).beyond_noise);
        // 1 000 vs 1 200: sd = √(10 + 12) ≈ 4.7 /s, difference 20 /s.
        assert!(per_s(1000, 10.0, 1200, 10.0).beyond_noise);
        // Rates, not counts: the same rate over twice the time.
        let r = per_s(1000, 10.0, 2000, 20.0);
        assert!(!r.beyond_noise, "{r:?}");
        assert_eq!((r.before_per_s, r.after_per_s), (100.0, 100.0));
        // A thread explosion gone: 1 000 spawns, then 2.
        assert!(per_s(1000, 10.0, 2, 10.0).beyond_noise);
        // Nothing on either side is no change.
        assert!(!per_s(0, 10.0, 0, 10.0).beyond_noise);
        // A few events either way are within noise.
        assert!(!per_s(3, 10.0, 1, 10.0).beyond_noise);
    }

    #[test]
    fn whole_runs_are_compared_per_run() {
        let per_run = |b, tb, a, ta| rate_change(b, tb, a, ta, Basis::PerRun);
        // The same job, 640 calls, in 0.3 s then 0.2 s: no change (per
        // second it would be one).
        assert!(!per_run(640, 0.3, 640, 0.2).beyond_noise);
        assert!(rate_change(640, 0.3, 640, 0.2, Basis::PerSecond).beyond_noise);
        // The explosion gone though the slow run took longer: 89 then 11
        // spawns, in 6.4 s then 1.4 s (equal per second within noise).
        assert!(per_run(89, 6.4, 11, 1.4).beyond_noise);
        assert!(!rate_change(89, 6.4, 11, 1.4, Basis::PerSecond).beyond_noise);
        // The rates are still given.
        let r = per_run(640, 0.2, 640, 0.4);
        assert_eq!((r.before_per_s, r.after_per_s), (3200.0, 1600.0));
    }

    #[test]
    fn percentile_bands_hold_the_value_and_its_bucket() {
        let s = stats(&[(1_000, 990), (50_000, 10)]);
        let b = band(&s, 0.5).unwrap();
        let high = b.high_ns.unwrap();
        assert!(b.low_ns <= 1_000 && (1_000..1_100).contains(&high), "{b:?}");
        // p99 of 1 000 calls: rank 990 ± 9.4 straddles the two values.
        let b = band(&s, 0.99).unwrap();
        assert!(b.low_ns <= 1_000 && b.high_ns.unwrap() >= 50_000, "{b:?}");
        // p99.9: rank 999 ± 3 passes the last call: open above.
        assert_eq!(band(&s, 0.999).unwrap().high_ns, None);
        assert!(band(&SyscallStats::default(), 0.5).is_none());
    }

    #[test]
    fn a_few_calls_cannot_move_a_percentile() {
        // One call each, 1 µs then 2 µs: the bands are open both ways.
        let (one, two) = (stats(&[(1_000, 1)]), stats(&[(2_000, 1)]));
        let b = band(&one, 0.5).unwrap();
        assert_eq!((b.low_ns, b.high_ns), (0, None));
        for q in [0.5, 0.99, 0.999] {
            assert!(!quantile_change(&one, &two, q).beyond_noise, "{q}");
        }
        // Ten calls each, ten times apart: the medians' bands are shut.
        let (a, b) = (stats(&[(1_000, 100)]), stats(&[(10_000, 100)]));
        assert!(quantile_change(&a, &b, 0.5).beyond_noise);
    }

    #[test]
    fn a_percentile_moves_only_beyond_its_band() {
        let before = stats(&[(1_000, 500), (2_000, 500)]);
        // The same distribution, scaled in count: no move.
        let same = stats(&[(1_000, 1000), (2_000, 1000)]);
        assert!(!quantile_change(&before, &same, 0.5).beyond_noise);
        // The tail doubled in length: p99 moved, p50 did not.
        let slower = stats(&[(1_000, 500), (4_000, 500)]);
        assert!(quantile_change(&before, &slower, 0.99).beyond_noise);
        assert!(!quantile_change(&before, &stats(&[(1_000, 501), (2_000, 499)]), 0.5).beyond_noise);
        // One call more or less at the median's edge is noise.
        let edge = stats(&[(1_000, 510), (2_000, 490)]);
        assert!(!quantile_change(&before, &edge, 0.5).beyond_noise);
        // A side without calls is not a percentile change.
        let q = quantile_change(&before, &SyscallStats::default(), 0.5);
        assert!(!q.beyond_noise && q.after.is_none());
    }
}
