//! `serve --flight-recorder DIR`: each target's last seconds of inputs
//! kept in memory (a ring of per-interval chunks, bounded by age and by
//! bytes), the triggers evaluated each second from the figures the metrics
//! are built from, and the rate limits on the dumps a trigger starts. A
//! dump is a recording (see `crate::record`) of the ring, then of the next
//! seconds; `commands::serve` writes it.

use std::{
    collections::{BTreeMap, VecDeque},
    path::PathBuf,
    str::FromStr,
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;

use crate::model::{Event, Input, syscalls::SyscallStats};

/// What `--flight-recorder` and its options ask for.
#[derive(Clone, Debug, PartialEq)]
pub struct FlightConfig {
    pub dir: PathBuf,
    /// How far back the ring reaches.
    pub window: Duration,
    /// How long a dump goes on recording after its trigger.
    pub after: Duration,
    /// The least time between two dumps of one target.
    pub cooldown: Duration,
    /// The most a target's ring holds (its inputs' in-memory size).
    pub ring_bytes: u64,
    /// The most dumps of all targets together per [`GLOBAL_PERIOD`].
    pub max_dumps: u32,
    pub triggers: Vec<Trigger>,
}

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
pub const DEFAULT_AFTER: Duration = Duration::from_secs(5);
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);
pub const DEFAULT_RING_BYTES: u64 = 64 << 20;
pub const DEFAULT_MAX_DUMPS: u32 = 10;
/// The period `--flight-max-dumps` counts over: a burst of triggers on
/// many targets cannot fill the disk.
pub const GLOBAL_PERIOD: Duration = Duration::from_secs(3600);

/// What starts a dump.
#[derive(Clone, Debug, PartialEq)]
pub enum Trigger {
    /// `threads=+N/W`: the live threads rose by N or more within W, to
    /// above GOMAXPROCS + N.
    Threads { rise: u64, within: Duration },
    /// `lockosthread-leaks=N/W`: N or more goroutines exited locked to
    /// their thread within W.
    LockLeaks { leaks: u64, within: Duration },
    /// `p99:SYSCALL=D`: the syscall's p99 over the last interval is above D.
    P99 {
        syscall: String,
        sysno: u32,
        over: Duration,
    },
}

impl Trigger {
    /// The triggers on when no `--trigger` is given.
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::Threads {
                rise: 32,
                within: Duration::from_secs(5),
            },
            Self::LockLeaks {
                leaks: 1,
                within: Duration::from_secs(10),
            },
        ]
    }

    /// Its name in file names, the log line and the metrics' label.
    pub fn name(&self) -> String {
        match self {
            Self::Threads { .. } => "threads".to_owned(),
            Self::LockLeaks { .. } => "lockosthread-leaks".to_owned(),
            Self::P99 { syscall, .. } => format!("p99-{syscall}"),
        }
    }

    /// How far back its readings reach.
    fn within(&self) -> Duration {
        match self {
            Self::Threads { within, .. } | Self::LockLeaks { leaks: _, within } => *within,
            Self::P99 { .. } => Duration::ZERO,
        }
    }
}

const TRIGGER_SYNTAX: &str = "give threads=+N/DURATION (e.g. threads=+32/5s), \
     lockosthread-leaks=N/DURATION (e.g. lockosthread-leaks=1/10s) or p99:SYSCALL=DURATION \
     (e.g. p99:read=50ms)";

fn duration(s: &str, whole: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{whole}`: `{s}` is not a positive duration like 5s or 50ms; {TRIGGER_SYNTAX}"
        )),
    }
}

fn count(s: &str, whole: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{whole}`: `{s}` is not a positive count; {TRIGGER_SYNTAX}"
        )),
    }
}

impl FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let Some((what, value)) = s.split_once('=') else {
            return Err(format!("`{s}` is not a trigger: {TRIGGER_SYNTAX}"));
        };
        fn per<'v>(value: &'v str, s: &str) -> Result<(&'v str, Duration), String> {
            let (n, w) = value.split_once('/').ok_or_else(|| {
                format!("`{s}` needs a window after a `/` (e.g. /5s); {TRIGGER_SYNTAX}")
            })?;
            Ok((n, duration(w, s)?))
        }
        match what {
            "threads" => {
                let (n, within) = per(value, s)?;
                let n = n.strip_prefix('+').ok_or_else(|| {
                    format!("`{s}`: a rise is written with a `+` (threads=+32/5s)")
                })?;
                Ok(Self::Threads {
                    rise: count(n, s)?,
                    within,
                })
            }
            "lockosthread-leaks" => {
                let (n, within) = per(value, s)?;
                Ok(Self::LockLeaks {
                    leaks: count(n, s)?,
                    within,
                })
            }
            _ => {
                let Some(syscall) = what.strip_prefix("p99:") else {
                    return Err(format!("`{s}`: unknown trigger `{what}`; {TRIGGER_SYNTAX}"));
                };
                let sysno = syscalls::x86_64::Sysno::from_str(syscall).map_err(|_| {
                    format!(
                        "`{s}`: `{syscall}` is not an x86_64 syscall name (as the report \
                         names them, e.g. read, futex, epoll_pwait)"
                    )
                })?;
                Ok(Self::P99 {
                    syscall: syscall.to_owned(),
                    sysno: sysno.id() as u32,
                    over: duration(value, s)?,
                })
            }
        }
    }
}

/// The in-memory size of an input: what it holds inline and on the heap
/// (an estimate: allocator slack is not counted).
pub fn input_bytes(input: &Input) -> u64 {
    let heap = match input {
        Input::KernelCounters(v) => v.len() * 8,
        Input::Event(e) => match e {
            Event::SlowCall { frames, .. }
            | Event::NewM { frames, .. }
            | Event::VdsoCalls { frames, .. } => frames.len() * 8,
            Event::Mexit { lock_frames, .. } => lock_frames.as_ref().map_or(0, |f| f.len() * 8),
            Event::Exec { program, .. } => program.len(),
            Event::SyscallAggregate {
                errnos, buckets, ..
            } => (errnos.len() + buckets.len()) * 16,
            _ => 0,
        },
        Input::Undecodable => 0,
    };
    (size_of::<Input>() + heap) as u64
}

/// One interval's inputs, as the model took them.
#[derive(Debug)]
pub struct Chunk {
    /// When the interval began and ended (since the traced window began).
    pub from: Duration,
    pub to: Duration,
    /// The model's live threads when it began (a dump's model starts there).
    pub threads_before: u64,
    pub inputs: Vec<Input>,
    bytes: u64,
}

/// The last [`FlightConfig::window`] of a target's inputs, at most
/// [`FlightConfig::ring_bytes`] of them (the oldest go first).
#[derive(Debug)]
pub struct Ring {
    chunks: VecDeque<Chunk>,
    bytes: u64,
    window: Duration,
    max_bytes: u64,
    /// Chunks dropped to stay within the bytes (not those aged out): the
    /// window a dump holds was shorter by them.
    pub dropped_chunks: u64,
    pub dropped_inputs: u64,
}

impl Ring {
    pub fn new(window: Duration, max_bytes: u64) -> Self {
        Self {
            chunks: VecDeque::new(),
            bytes: 0,
            window,
            max_bytes,
            dropped_chunks: 0,
            dropped_inputs: 0,
        }
    }

    /// Adds an interval's inputs; drops what is older than the window,
    /// then the oldest until the bytes fit.
    pub fn push(&mut self, from: Duration, to: Duration, threads_before: u64, inputs: Vec<Input>) {
        let bytes = inputs.iter().map(input_bytes).sum();
        self.chunks.push_back(Chunk {
            from,
            to,
            threads_before,
            inputs,
            bytes,
        });
        self.bytes += bytes;
        while let Some(front) = self.chunks.front() {
            let aged = to.saturating_sub(front.to) >= self.window;
            let over = self.bytes > self.max_bytes;
            if !aged && !over {
                break;
            }
            if let Some(c) = self.chunks.pop_front() {
                self.bytes -= c.bytes;
                if over && !aged {
                    self.dropped_chunks += 1;
                    self.dropped_inputs += c.inputs.len() as u64;
                }
            }
        }
    }

    /// Its in-memory size (estimated, see [`input_bytes`]).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Its chunks, oldest first, leaving it empty.
    pub fn take(&mut self) -> Vec<Chunk> {
        self.bytes = 0;
        self.chunks.drain(..).collect()
    }
}

/// What the triggers read each second (from the report the metrics are
/// built from).
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// Since the traced window began.
    pub at: Duration,
    pub threads: u64,
    /// `None` when unknown (not a Go program): the threads trigger then
    /// counts from 0.
    pub gomaxprocs: Option<u32>,
    pub lockosthread_leaks: u64,
}

/// A target's triggers and the readings they look back on.
#[derive(Debug)]
pub struct Watch {
    triggers: Vec<Trigger>,
    history: VecDeque<Reading>,
    keep: Duration,
    /// The p99 triggers' syscalls' histograms at the last reading.
    last_hists: BTreeMap<u32, Histogram<u64>>,
}

impl Watch {
    pub fn new(triggers: Vec<Trigger>) -> Self {
        let keep = triggers
            .iter()
            .map(Trigger::within)
            .max()
            .unwrap_or_default();
        Self {
            triggers,
            history: VecDeque::new(),
            keep,
            last_hists: BTreeMap::new(),
        }
    }

    /// Whether any p99 trigger is set (the histograms are read only then).
    pub fn needs_histograms(&self) -> bool {
        self.triggers
            .iter()
            .any(|t| matches!(t, Trigger::P99 { .. }))
    }

    /// Takes a reading (and, for the p99 triggers, the program's
    /// per-syscall histograms since attach); the first trigger it fires.
    pub fn check(
        &mut self,
        now: Reading,
        hists: Option<&BTreeMap<u32, SyscallStats>>,
    ) -> Option<&Trigger> {
        while self
            .history
            .front()
            .is_some_and(|r| now.at.saturating_sub(r.at) > self.keep)
        {
            self.history.pop_front();
        }
        self.history.push_back(now);
        let mut fired = None;
        for (i, t) in self.triggers.iter().enumerate() {
            let hit = match t {
                Trigger::Threads { rise, within } => {
                    let low = self.since(now.at, *within).map(|r| r.threads).min();
                    let limit = u64::from(now.gomaxprocs.unwrap_or(0)) + rise;
                    low.is_some_and(|low| now.threads > limit && now.threads - low >= *rise)
                }
                Trigger::LockLeaks { leaks, within } => {
                    let low = self.since(now.at, *within).map(|r| r.lockosthread_leaks);
                    low.min()
                        .is_some_and(|low| now.lockosthread_leaks - low >= *leaks)
                }
                Trigger::P99 { sysno, over, .. } => {
                    let Some(now_h) = hists.and_then(|h| h.get(sysno)).map(|s| &s.histogram) else {
                        continue;
                    };
                    let p99 = interval_p99(self.last_hists.get(sysno), now_h);
                    self.last_hists.insert(*sysno, now_h.clone());
                    p99.is_some_and(|ns| ns > u64::try_from(over.as_nanos()).unwrap_or(u64::MAX))
                }
            };
            if hit && fired.is_none() {
                fired = Some(i);
            }
        }
        fired.map(|i| &self.triggers[i])
    }

    fn since(&self, at: Duration, within: Duration) -> impl Iterator<Item = &Reading> {
        self.history
            .iter()
            .filter(move |r| at.saturating_sub(r.at) <= within)
    }
}

/// The p99 (ns) of the calls recorded in `now` and not in `before` (a
/// histogram since attach and its earlier copy); `None` when none were.
pub fn interval_p99(before: Option<&Histogram<u64>>, now: &Histogram<u64>) -> Option<u64> {
    let mut h = now.clone();
    if let Some(b) = before
        && h.subtract(b).is_err()
    {
        // An earlier copy that is not a prefix (cannot happen with one
        // model): the whole histogram is the best there is.
        h = now.clone();
    }
    (!h.is_empty()).then(|| h.value_at_quantile(0.99))
}

/// Why a fired trigger wrote no dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// This target dumped less than `--flight-cooldown` ago.
    Cooldown,
    /// `--flight-max-dumps` dumps of all targets within the last hour.
    GlobalCap,
}

/// The dumps of all targets within [`GLOBAL_PERIOD`].
#[derive(Debug)]
pub struct GlobalLimit {
    max: u32,
    recent: VecDeque<Instant>,
}

impl GlobalLimit {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            recent: VecDeque::new(),
        }
    }

    /// Whether a target that last dumped at `last` may dump at `now`
    /// (counted as a dump when it may).
    pub fn allow(
        &mut self,
        last: Option<Instant>,
        cooldown: Duration,
        now: Instant,
    ) -> Result<(), Refused> {
        if last.is_some_and(|l| now.saturating_duration_since(l) < cooldown) {
            return Err(Refused::Cooldown);
        }
        while self
            .recent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= GLOBAL_PERIOD)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max as usize {
            return Err(Refused::GlobalCap);
        }
        self.recent.push_back(now);
        Ok(())
    }
}

/// The flight recorder's figures in /metrics.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FlightStats {
    pub dumps: BTreeMap<String, u64>,
    /// Triggers that fired with no dump written (rate limits), by trigger.
    pub suppressed: BTreeMap<String, u64>,
    pub failed: u64,
    pub dropped_chunks: u64,
    pub dropped_inputs: u64,
    /// Each live target's ring size (by session id).
    pub ring_bytes: BTreeMap<u64, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::syscalls::new_histogram;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn spawn(tid: u32) -> Input {
        Input::Event(Event::ThreadSpawn {
            parent_tid: 1,
            tid,
            ts_ns: 0,
        })
    }

    #[test]
    fn parses_the_trigger_syntax() {
        assert_eq!(
            "threads=+32/5s".parse(),
            Ok(Trigger::Threads {
                rise: 32,
                within: secs(5)
            })
        );
        assert_eq!(
            "lockosthread-leaks=1/10s".parse(),
            Ok(Trigger::LockLeaks {
                leaks: 1,
                within: secs(10)
            })
        );
        assert_eq!(
            "p99:read=50ms".parse(),
            Ok(Trigger::P99 {
                syscall: "read".into(),
                sysno: 0,
                over: Duration::from_millis(50)
            })
        );
        let err = |s: &str| s.parse::<Trigger>().unwrap_err();
        assert!(err("threads=32/5s").contains("with a `+`"));
        assert!(err("threads=+32").contains("needs a window"));
        assert!(err("threads=+0/5s").contains("not a positive count"));
        assert!(err("threads=+3/0s").contains("not a positive duration"));
        assert!(err("p99:reed=5ms").contains("not an x86_64 syscall"));
        assert!(err("cpu=90").contains("unknown trigger"));
        assert!(err("threads").contains("not a trigger"));
        assert_eq!(
            Trigger::defaults()
                .iter()
                .map(Trigger::name)
                .collect::<Vec<_>>(),
            ["threads", "lockosthread-leaks"]
        );
    }

    #[test]
    fn the_ring_keeps_the_window() {
        let mut r = Ring::new(secs(3), u64::MAX);
        for t in 1..=5 {
            r.push(secs(t - 1), secs(t), 1, vec![spawn(t as u32)]);
        }
        // Up to 5 s: the chunks ending at 3, 4, 5 s (2 s is 3 s old).
        assert_eq!(r.len(), 3);
        assert_eq!((r.dropped_chunks, r.dropped_inputs), (0, 0));
        let kept = r.take();
        assert_eq!(
            kept.iter().map(|c| c.to).collect::<Vec<_>>(),
            [secs(3), secs(4), secs(5)]
        );
        assert!(r.is_empty() && r.bytes() == 0);
    }

    #[test]
    fn the_ring_drops_the_oldest_past_its_bytes_and_counts_them() {
        let one = input_bytes(&spawn(1));
        // Room for 5 inputs; chunks of 2.
        let mut r = Ring::new(secs(60), 5 * one);
        for t in 1..=4u64 {
            r.push(
                secs(t - 1),
                secs(t),
                0,
                vec![spawn(t as u32), spawn(t as u32 + 100)],
            );
        }
        assert_eq!(r.len(), 2);
        assert_eq!(r.bytes(), 4 * one);
        assert_eq!((r.dropped_chunks, r.dropped_inputs), (2, 4));
        // Frames count on the heap.
        let big = Input::Event(Event::VdsoCalls {
            sysno: 228,
            clock: 1,
            frames: vec![0; 10],
            calls: 1,
        });
        assert_eq!(input_bytes(&big), one + 80);
        // A chunk larger than the bound is not kept either.
        r.push(secs(4), secs(5), 0, (0..6).map(spawn).collect());
        assert!(r.is_empty());
        assert_eq!((r.dropped_chunks, r.dropped_inputs), (5, 14));
    }

    fn reading(at: u64, threads: u64, leaks: u64) -> Reading {
        Reading {
            at: secs(at),
            threads,
            gomaxprocs: Some(4),
            lockosthread_leaks: leaks,
        }
    }

    fn fired(w: &mut Watch, r: Reading) -> Option<String> {
        w.check(r, None).map(Trigger::name)
    }

    #[test]
    fn threads_fire_on_a_rise_within_the_window_past_gomaxprocs_and_the_margin() {
        let mut w = Watch::new(vec!["threads=+32/5s".parse().unwrap()]);
        // Steady at 10, then a slow climb: 10 a second never rises 32 in 5 s.
        for (at, n) in [(0, 10), (1, 10), (2, 20), (3, 30), (4, 40), (5, 41)] {
            assert_eq!(fired(&mut w, reading(at, n, 0)), None, "at {at}");
        }
        // 41 at 5 s, 73 at 8 s: 32 more within 5 s but 73 > 4 + 32 only
        // counts with the rise: it fires.
        assert_eq!(fired(&mut w, reading(8, 73, 0)).as_deref(), Some("threads"));
        // A rise of 32 that stays under GOMAXPROCS + 32 does not.
        let mut w = Watch::new(vec!["threads=+32/5s".parse().unwrap()]);
        let mut r = reading(0, 2, 0);
        r.gomaxprocs = Some(64);
        assert_eq!(fired(&mut w, r), None);
        r.at = secs(1);
        r.threads = 90;
        assert_eq!(fired(&mut w, r), None);
        // The rise spread over more than the window: 5 s apart, fires; 6 s
        // apart, the low reading has left the window.
        let mut w = Watch::new(vec!["threads=+32/5s".parse().unwrap()]);
        assert_eq!(fired(&mut w, reading(0, 5, 0)), None);
        assert_eq!(fired(&mut w, reading(6, 100, 0)), None);
        let mut w = Watch::new(vec!["threads=+32/5s".parse().unwrap()]);
        assert_eq!(fired(&mut w, reading(0, 5, 0)), None);
        assert!(fired(&mut w, reading(5, 100, 0)).is_some());
    }

    #[test]
    fn leaks_fire_on_new_leaks_within_the_window() {
        let mut w = Watch::new(Trigger::defaults());
        assert_eq!(fired(&mut w, reading(0, 5, 3)), None);
        assert_eq!(fired(&mut w, reading(1, 5, 3)), None);
        assert_eq!(
            fired(&mut w, reading(2, 5, 4)).as_deref(),
            Some("lockosthread-leaks")
        );
        // Older than 10 s: counted before, not within the window.
        assert_eq!(fired(&mut w, reading(13, 5, 4)), None);
    }

    fn stats(values: &[(u64, u64)]) -> SyscallStats {
        let mut histogram = new_histogram();
        for &(v, n) in values {
            histogram.record_n(v, n).unwrap();
        }
        SyscallStats {
            histogram,
            ..SyscallStats::default()
        }
    }

    #[test]
    fn p99_is_the_last_intervals() {
        let mut w = Watch::new(vec!["p99:read=50ms".parse().unwrap()]);
        assert!(w.needs_histograms());
        let ms = 1_000_000;
        let mut hists = BTreeMap::new();
        // First second: 1000 reads of 1 ms, 20 of 200 ms: p99 200 ms.
        hists.insert(0, stats(&[(ms, 1000), (200 * ms, 20)]));
        assert_eq!(
            w.check(reading(1, 1, 0), Some(&hists)).map(Trigger::name),
            Some("p99-read".into())
        );
        // Next second: 400 more fast reads. Since attach the p99 is still
        // 200 ms (20 of 1420); over the interval, 1 ms.
        hists.insert(0, stats(&[(ms, 1400), (200 * ms, 20)]));
        assert_eq!(hists[&0].histogram.value_at_quantile(0.99) / ms, 200);
        assert_eq!(w.check(reading(2, 1, 0), Some(&hists)), None);
        // No read in an interval: nothing to judge.
        assert_eq!(w.check(reading(3, 1, 0), Some(&hists)), None);
        assert_eq!(
            interval_p99(Some(&hists[&0].histogram), &hists[&0].histogram),
            None
        );
        // Another syscall's slow calls do not count.
        hists.insert(1, stats(&[(900 * ms, 50)]));
        assert_eq!(w.check(reading(4, 1, 0), Some(&hists)), None);
    }

    #[test]
    fn dumps_are_rate_limited_per_target_and_globally() {
        let t0 = Instant::now();
        let cooldown = secs(60);
        let mut g = GlobalLimit::new(2);
        assert_eq!(g.allow(None, cooldown, t0), Ok(()));
        // The same target within its cooldown, then past it.
        assert_eq!(
            g.allow(Some(t0), cooldown, t0 + secs(59)),
            Err(Refused::Cooldown)
        );
        assert_eq!(g.allow(Some(t0), cooldown, t0 + secs(60)), Ok(()));
        // Two dumps this hour: a third target is refused until the first
        // is an hour old.
        assert_eq!(
            g.allow(None, cooldown, t0 + secs(61)),
            Err(Refused::GlobalCap)
        );
        assert_eq!(g.allow(None, cooldown, t0 + GLOBAL_PERIOD), Ok(()));
    }
}
