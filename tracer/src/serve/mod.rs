//! `tracer serve`: the node agent. It traces the selected processes (each
//! with its own session and probes) and exposes their figures as
//! Prometheus metrics over HTTP. The sessions publish a snapshot each
//! second; scrapes read the last ones (see `http.rs`), never a session.

pub mod discover;
pub mod flight;
pub mod http;
pub mod metrics;

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use metrics::TargetSnapshot;

/// How long an exited target's last figures stay exposed: a scrape after a
/// short job still sees its totals.
pub const RETENTION: Duration = Duration::from_secs(300);

/// A target's last snapshot, and when it ended (if it did).
#[derive(Debug)]
struct Entry {
    snapshot: Arc<TargetSnapshot>,
    ended: Option<Instant>,
}

/// The snapshots the sessions publish and the scrapes read. The lock is
/// held only to swap or clone pointers.
#[derive(Debug, Default)]
pub struct State {
    targets: Mutex<BTreeMap<u64, Entry>>,
    /// The flight recorder's figures (`None`: it is off).
    flight: Mutex<Option<flight::FlightStats>>,
}

impl State {
    /// The flight recorder is on: its figures are exposed from now on.
    pub fn enable_flight(&self) {
        let mut f = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        f.get_or_insert_with(Default::default);
    }

    /// Changes the flight recorder's figures (nothing when it is off).
    pub fn update_flight(&self, change: impl FnOnce(&mut flight::FlightStats)) {
        let mut f = self.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stats) = f.as_mut() {
            change(stats);
        }
    }

    /// The flight recorder's figures, when it is on.
    pub fn flight(&self) -> Option<flight::FlightStats> {
        self.flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A live target's latest snapshot (`id`: its session's, unique).
    pub fn publish(&self, id: u64, snapshot: TargetSnapshot) {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        // An earlier, ended process with the same PID would share its
        // labels: the new one replaces it.
        let pid = snapshot.labels.pid;
        targets.retain(|&k, e| k == id || e.ended.is_none() || e.snapshot.labels.pid != pid);
        targets.insert(
            id,
            Entry {
                snapshot: Arc::new(snapshot),
                ended: None,
            },
        );
    }

    /// A target's final snapshot, kept for [`RETENTION`] from `now`.
    pub fn end(&self, id: u64, snapshot: TargetSnapshot, now: Instant) {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        targets.insert(
            id,
            Entry {
                snapshot: Arc::new(snapshot),
                ended: Some(now),
            },
        );
    }

    /// The snapshots to expose now, and how many targets are live;
    /// targets ended more than [`RETENTION`] ago are dropped.
    pub fn snapshots(&self) -> (Vec<Arc<TargetSnapshot>>, u64) {
        self.snapshots_at(Instant::now())
    }

    /// Drops the targets ended more than [`RETENTION`] before `now` (also
    /// done by every scrape; this bounds the memory when none comes).
    pub fn prune(&self, now: Instant) {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        targets.retain(|_, e| e.ended.is_none_or(|t| now.duration_since(t) < RETENTION));
    }

    fn snapshots_at(&self, now: Instant) -> (Vec<Arc<TargetSnapshot>>, u64) {
        self.prune(now);
        let targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        let live = targets.values().filter(|e| e.ended.is_none()).count() as u64;
        let shown = targets.values().map(|e| e.snapshot.clone()).collect();
        (shown, live)
    }
}

#[cfg(test)]
mod tests {
    use super::{
        metrics::{NOT_GO, TargetLabels},
        *,
    };

    fn snap(pid: u32, up: bool, calls: u64) -> TargetSnapshot {
        TargetSnapshot {
            labels: TargetLabels {
                pid,
                comm: "w".into(),
                go_version: NOT_GO.into(),
                cgroup: "/".into(),
            },
            up,
            syscalls: vec![metrics::SyscallSeries {
                name: "read".into(),
                calls,
                errors_by_errno: Vec::new(),
                total_ns: 0,
                cumulative: [0; metrics::BUCKET_BOUNDS_NS.len()],
            }],
            threads_alive: 1,
            threads_peak: 1,
            spawns_by_cause: Vec::new(),
            handoffs_by_taker: Vec::new(),
            slow_exits: 0,
            vdso_fallbacks: 0,
            lockosthread_leaks: 0,
            lost_events: 0,
        }
    }

    #[test]
    fn ended_targets_stay_for_the_retention_then_go() {
        let s = State::default();
        let t0 = Instant::now();
        s.publish(1, snap(10, true, 5));
        s.publish(2, snap(11, true, 7));
        s.end(2, snap(11, false, 9), t0);
        let (shown, live) = s.snapshots_at(t0 + RETENTION - Duration::from_secs(1));
        assert_eq!(live, 1);
        let ended: Vec<_> = shown.iter().filter(|t| !t.up).collect();
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].syscalls[0].calls, 9);
        s.prune(t0 + RETENTION);
        let (shown, live) = s.snapshots_at(t0 + RETENTION);
        assert_eq!((shown.len(), live), (1, 1));
        assert_eq!(shown[0].labels.pid, 10);
    }

    #[test]
    fn a_new_process_with_an_ended_ones_pid_replaces_it() {
        let s = State::default();
        s.publish(1, snap(10, true, 5));
        s.end(1, snap(10, false, 6), Instant::now());
        s.publish(2, snap(10, true, 1));
        let (shown, live) = s.snapshots();
        assert_eq!((shown.len(), live), (1, 1));
        assert_eq!(shown[0].syscalls[0].calls, 1);
    }
}
