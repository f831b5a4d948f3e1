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
    pub sample: ThreadSample,
    /// Why the threads of this interval were spawned.
    pub spawn_causes: Vec<CauseRow>,
    pub limits: Vec<LimitStatus>,
    pub gomaxprocs: Option<u32>,
}

/// State carried from one frame to the next.
pub struct LiveState<'a> {
    pid: u32,
    sym: Option<&'a Symbolizer>,
    started: Instant,
    diff: IntervalDiff,
    watch: LimitWatch,
    spawns_seen: usize,
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
        }
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
        facts.refresh();
        let sample = threads::sample(self.pid, self.sym, elapsed);
        let mut names = SiteNames::new(model, self.sym);
        let spawn_causes = causes_since(model, self.sym, &mut names, self.spawns_seen).rows;
        self.spawns_seen = model.threads.spawns.len();
        let limits = self.watch.check(elapsed, sample.threads, &facts.facts);
        facts.record_sample(sample.clone());
        let interval = self.diff.next(model, elapsed);
        Ok(LiveFrame {
            interval,
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
        writeln!(
            o,
            "+{:.1}s threads {} (+{} spawned, -{} exited) | {}{gomaxprocs}",
            i.elapsed_seconds,
            s.threads,
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
