//! Thread limits and how fast the process approaches them: the Go
//! runtime's cap (10 000 or `SetMaxThreads`), the cgroup's `pids.max`, and
//! RLIMIT_NPROC. A warning fires at 80% of a limit or when the current
//! growth reaches it within a minute, before the limit is hit (the runtime
//! crashes with "failed to create new OS thread" when it is).

use std::collections::VecDeque;

use serde::Serialize;

use crate::facts::Facts;

/// Warn at this fraction of a limit...
const WARN_FRACTION: f64 = 0.8;
/// ...or when the current growth reaches the limit within this long.
const WARN_HORIZON_SECONDS: f64 = 60.0;
/// Growth is the slope over samples from the last this many seconds.
const GROWTH_WINDOW_SECONDS: f64 = 5.0;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LimitStatus {
    pub limit_name: &'static str,
    pub limit: u64,
    /// Tasks counted against the limit now.
    pub used: u64,
    pub fraction: f64,
    /// Threads per second over the last few seconds.
    pub growth_per_second: f64,
    /// When the growth goes on: seconds until the limit is reached.
    pub seconds_to_limit: Option<f64>,
    /// The process is exempt (RLIMIT_NPROC does not apply to root).
    pub exempt: bool,
    pub warning: bool,
}

impl LimitStatus {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} {}: {} used ({:.0}%)",
            self.limit_name,
            self.limit,
            self.used,
            self.fraction * 100.0
        );
        if self.growth_per_second > 0.0 {
            s.push_str(&format!(", growing {:.1}/s", self.growth_per_second));
        }
        if let Some(t) = self.seconds_to_limit {
            s.push_str(&format!(", limit reached in ~{t:.1}s at this rate"));
        }
        if self.exempt {
            s.push_str(" (root: exempt)");
        }
        s
    }
}

/// Keeps recent thread counts to project growth.
#[derive(Default)]
pub struct LimitWatch {
    history: VecDeque<(f64, u64)>,
}

impl LimitWatch {
    /// Records `threads` at `elapsed` seconds and checks every known limit.
    pub fn check(&mut self, elapsed: f64, threads: u64, facts: &Facts) -> Vec<LimitStatus> {
        self.history.push_back((elapsed, threads));
        while self
            .history
            .front()
            .is_some_and(|&(t, _)| elapsed - t > GROWTH_WINDOW_SECONDS)
        {
            self.history.pop_front();
        }
        let growth = slope(&self.history);
        let l = &facts.limits;
        let mut out = Vec::new();
        let mut add = |name: &'static str, limit: Option<u64>, used: u64, exempt: bool| {
            let Some(limit) = limit.filter(|&n| n > 0) else {
                return;
            };
            let fraction = used as f64 / limit as f64;
            let seconds_to_limit =
                (growth > 0.0 && used < limit).then(|| (limit - used) as f64 / growth);
            let warning = !exempt
                && (fraction >= WARN_FRACTION
                    || seconds_to_limit.is_some_and(|t| t <= WARN_HORIZON_SECONDS));
            out.push(LimitStatus {
                limit_name: name,
                limit,
                used,
                fraction,
                growth_per_second: growth,
                seconds_to_limit,
                exempt,
                warning,
            });
        };
        add(
            "Go thread cap",
            l.go_max_threads.as_ref().and_then(|f| f.value()),
            threads,
            false,
        );
        add(
            "cgroup pids.max",
            l.pids_max,
            l.pids_current.unwrap_or(threads).max(threads),
            false,
        );
        add("RLIMIT_NPROC", l.nproc_soft, threads, l.nproc_exempt);
        out
    }
}

/// Least-squares slope of (seconds, count) points; 0 with fewer than two.
fn slope(points: &VecDeque<(f64, u64)>) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 as f64 - my)).sum();
    if sxx == 0.0 { 0.0 } else { sxy / sxx }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pids_max: u64) -> Facts {
        let mut f = Facts::default();
        f.limits.go_max_threads = Some(crate::facts::Fact::known(10_000, "test"));
        f.limits.pids_max = Some(pids_max);
        f
    }

    #[test]
    fn warns_on_projection_before_the_limit() {
        let f = facts(100);
        let mut w = LimitWatch::default();
        // 10 threads per second from 10.
        let mut last = Vec::new();
        for i in 0..4 {
            last = w.check(f64::from(i), 10 + 10 * u64::from(i as u32), &f);
        }
        let pids = last
            .iter()
            .find(|s| s.limit_name == "cgroup pids.max")
            .unwrap();
        assert_eq!(pids.used, 40);
        assert!((pids.growth_per_second - 10.0).abs() < 1e-9);
        assert!((pids.seconds_to_limit.unwrap() - 6.0).abs() < 1e-9);
        assert!(pids.warning);
        let cap = last
            .iter()
            .find(|s| s.limit_name == "Go thread cap")
            .unwrap();
        // 996 s away at 10/s: no warning yet.
        assert!(!cap.warning);
    }

    #[test]
    fn flat_counts_warn_only_near_the_limit() {
        let f = facts(100);
        let mut w = LimitWatch::default();
        for i in 0..3 {
            let s = w.check(f64::from(i), 50, &f);
            assert!(!s[1].warning);
        }
        let s = w.check(3.0, 85, &f);
        assert!(s[1].warning, "{s:?}");
    }
}
