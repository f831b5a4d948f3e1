//! One frame of a live view (`tracer threads`, `tracer top`): what changed
//! in the last interval, what holds the threads now, and the limits ahead.
//! Built from a session snapshot and /proc each tick; printed as lines or
//! drawn in the terminal.

use std::{
    io::{self, Write},
    time::Instant,
};

use serde::Serialize;

use super::{
    interval::{IntervalDiff, IntervalSummary},
    limits::{LimitStatus, LimitWatch},
};
use crate::{
    analysis::{
        sites::SiteNames,
        spawns::{CauseRow, causes_since},
    },
    facts::{FactsCollector, Holder, ThreadSample, threads},
    gobin::symbolize::Symbolizer,
    session::{Session, SessionError},
};

#[derive(Clone, Debug, Serialize)]
pub struct LiveFrame {
    pub interval: IntervalSummary,
    /// Threads of the process now (`/proc/PID/status`, read every frame).
    pub threads: u64,
    /// What held the threads at the last sample (`sample.elapsed_seconds`
    /// says when: sampling a very large process is spaced out, see
    /// [`SAMPLE_CPU_BUDGET`]).
    pub sample: ThreadSample,
    /// Why the threads of this interval were spawned.
    pub spawn_causes: Vec<CauseRow>,
    pub limits: Vec<LimitStatus>,
    pub gomaxprocs: Option<u32>,
}

/// The share of a core that sampling what holds the threads may use: a
/// sample reads `/proc/PID/task/TID/syscall` and unwinds the stack of
/// every thread (≈15 ms per 1 000 threads here), so on a process with
/// thousands of threads the next one waits until the last one's cost is
/// within this share; the thread count and the interval's spawns and exits
/// stay fresh every frame.
pub const SAMPLE_CPU_BUDGET: f64 = 0.03;

/// State carried from one frame to the next.
pub struct LiveState<'a> {
    pid: u32,
    sym: Option<&'a Symbolizer>,
    started: Instant,
    diff: IntervalDiff,
    watch: LimitWatch,
    spawns_seen: usize,
    /// The last sample, and when (elapsed seconds) the next one is due.
    last_sample: Option<ThreadSample>,
    next_sample_at: f64,
}

impl<'a> LiveState<'a> {
    pub fn new(pid: u32, sym: Option<&'a Symbolizer>) -> Self {
        Self {
            pid,
            sym,
            started: Instant::now(),
            diff: IntervalDiff::default(),
            watch: LimitWatch::default(),
            spawns_seen: 0,
            last_sample: None,
            next_sample_at: 0.0,
        }
    }

    /// Starts from a sample already taken (the one `LiveTarget::prepare`
    /// takes as the tracer arrives), which cost `cost` CPU seconds: the
    /// first frame shows it rather than paying for another at once.
    pub fn seed(&mut self, sample: ThreadSample, cost: f64) {
        self.next_sample_at = cost / SAMPLE_CPU_BUDGET;
        self.last_sample = Some(sample);
    }

    /// A fresh sample when one is due, else the last one (and `false`).
    fn sample(&mut self, elapsed: f64) -> (ThreadSample, bool) {
        if let Some(last) = &self.last_sample
            && elapsed < self.next_sample_at
        {
            return (last.clone(), false);
        }
        let cpu = thread_cpu_seconds();
        let sample = threads::sample(self.pid, self.sym, elapsed);
        let cost = (thread_cpu_seconds() - cpu).max(0.0);
        self.next_sample_at = elapsed + cost / SAMPLE_CPU_BUDGET;
        self.last_sample = Some(sample.clone());
        (sample, true)
    }

    /// Reads the session (its kernel aggregates refreshed in place) and
    /// the process now.
    pub fn frame(
        &mut self,
        session: &mut Session,
        facts: &mut FactsCollector,
    ) -> Result<LiveFrame, SessionError> {
        session.refresh()?;
        let model = session.model();
        let elapsed = self.started.elapsed().as_secs_f64();
        facts.runtime_started(model.runtime.values_at_main.as_ref());
        facts.tick();
        let (sample, fresh) = self.sample(elapsed);
        let threads = if fresh {
            sample.threads
        } else {
            crate::target::thread_count(self.pid)
        };
        let mut names = SiteNames::new(model, self.sym);
        let spawn_causes = causes_since(model, self.sym, &mut names, self.spawns_seen).rows;
        self.spawns_seen = model.threads.spawns.len();
        let limits = self.watch.check(elapsed, threads, &facts.facts);
        if fresh {
            facts.record_sample(sample.clone());
        }
        let interval = self.diff.next(model, elapsed);
        Ok(LiveFrame {
            interval,
            threads,
            sample,
            spawn_causes,
            limits,
            gomaxprocs: facts.facts.cpu.gomaxprocs.value(),
        })
    }
}

impl LiveFrame {
    /// The `tracer threads` lines for this frame.
    pub fn write_text(&self, o: &mut impl Write) -> io::Result<()> {
        let s = &self.sample;
        let i = &self.interval;
        let holders: Vec<String> = [
            Holder::Syscall,
            Holder::Cgo,
            Holder::Locked,
            Holder::Idle,
            Holder::Netpoller,
            Holder::Sysmon,
            Holder::Running,
            Holder::Other,
        ]
        .iter()
        .filter_map(|&h| {
            let n = s.count(h);
            (n > 0).then(|| format!("{} {n}", h.label()))
        })
        .collect();
        let gomaxprocs = self
            .gomaxprocs
            .map_or_else(String::new, |n| format!(" | GOMAXPROCS {n}"));
        // An older sample says when it was taken.
        let when = if i.elapsed_seconds - s.elapsed_seconds >= 0.5 {
            format!(" (sampled at +{:.1}s)", s.elapsed_seconds)
        } else {
            String::new()
        };
        writeln!(
            o,
            "+{:.1}s threads {} (+{} spawned, -{} exited) | {}{when}{gomaxprocs}",
            i.elapsed_seconds,
            self.threads,
            i.spawned,
            i.exited,
            holders.join(", ")
        )?;
        for c in self.spawn_causes.iter().take(3) {
            let site = match (&c.syscall, &c.call_site) {
                (Some(sc), Some(f)) => format!(" from {sc} at {f}"),
                (Some(sc), None) => format!(" from {sc}"),
                (None, Some(f)) => format!(" at {f}"),
                (None, None) => String::new(),
            };
            writeln!(o, "    spawned {:>5}  {}{site}", c.threads, c.label)?;
        }
        for r in s
            .holders
            .iter()
            .filter(|r| matches!(r.holder, Holder::Syscall | Holder::Cgo))
            .take(3)
        {
            let site = r
                .call_site
                .as_ref()
                .map_or_else(String::new, |f| format!(" at {f}"));
            let fd =
                r.fd.as_ref()
                    .map_or_else(String::new, |f| format!(" on a {}", fd_label(f)));
            writeln!(
                o,
                "    holding {:>5}  {} {}{fd}{site}",
                r.threads,
                r.holder.label(),
                r.syscall.as_deref().unwrap_or("")
            )?;
        }
        for l in self.limits.iter().filter(|l| l.warning) {
            writeln!(o, "    WARNING: {}", l.describe())?;
        }
        o.flush()
    }
}

/// A short label for what a blocked thread's descriptor is.
pub fn fd_label(t: &crate::procinfo::fds::FdTarget) -> String {
    use crate::procinfo::fds::FdTarget as T;
    match t {
        T::RegularFile => "regular file".into(),
        T::Directory => "directory".into(),
        T::Pipe => "pipe/FIFO".into(),
        T::Socket => "socket".into(),
        T::CharDevice => "character device".into(),
        T::BlockDevice => "block device".into(),
        T::Anon(name) | T::Other(name) => name.clone(),
    }
}

/// CPU time this thread has used, in seconds.
/// CPU seconds this thread has used (what a sample costs is measured so).
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime into a valid timespec.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) } != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample costs CPU, so the next is due only once that cost is within
    /// the budget; until then the last one is reused, and said to be older.
    #[test]
    fn samples_are_spaced_by_their_cost() {
        let mut live = LiveState::new(std::process::id(), None);
        let (first, fresh) = live.sample(1.0);
        assert!(fresh);
        assert!(first.threads >= 1);
        assert!(live.next_sample_at > 1.0, "{}", live.next_sample_at);
        let (again, fresh) = live.sample(1.0);
        assert!(!fresh);
        assert_eq!(again.elapsed_seconds, 1.0);
        let (later, fresh) = live.sample(live.next_sample_at);
        assert!(fresh);
        assert!(later.elapsed_seconds > 1.0);
    }
}
