//! A recording written while a live session runs (`record`, `--record`):
//! the session's inputs to the model, taken every interval with the
//! symbols and facts they need (see `crate::record`).

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    cli::Config,
    facts::Facts,
    gobin::symbolize::Symbolizer,
    model::Input,
    procinfo::kallsyms::FopsMap,
    record::{End, GoInfo, RecordError, RecordStats, Recorder, Start},
    report::TargetInfo,
    session::Session,
};

/// How often a recording is written to when no `--interval` is given.
const RECORD_EVERY: Duration = Duration::from_secs(1);

pub struct LiveRecording {
    recorder: Recorder,
    every: Duration,
    /// When the last interval was written (since the window began).
    last: Duration,
    /// The first write error: the recording stopped there.
    error: Option<RecordError>,
}

/// A recording to be made, with what is read for it before the probes go
/// live: read after, it would keep the ring buffer from being drained
/// (reading /proc/kallsyms takes a while).
pub struct RecordingPlan {
    path: PathBuf,
    max_bytes: Option<u64>,
    every: Duration,
    slow_ns: u64,
    kernel_fops: Option<Vec<(String, u64)>>,
}

impl RecordingPlan {
    /// The recording `config` asks for, if any.
    pub fn prepare(config: &Config) -> Option<Self> {
        let rc = config.recording.as_ref()?;
        let kernel_fops = FopsMap::load().ok().map(|m| {
            m.found()
                .iter()
                .map(|&(symbol, addr)| (symbol.to_owned(), addr))
                .collect()
        });
        Some(Self {
            path: rc.path.clone(),
            max_bytes: rc.max_bytes,
            every: config.interval.unwrap_or(RECORD_EVERY),
            slow_ns: config.slow_ns(),
            kernel_fops,
        })
    }

    /// Creates the recording and makes `session` keep its inputs for it.
    /// Call it before the session runs.
    pub fn start(
        self,
        session: &mut Session,
        target: TargetInfo,
        launched: bool,
        symbolizer: Option<&(Symbolizer, bool)>,
    ) -> Result<LiveRecording, RecordError> {
        let start = Start {
            tracer_version: env!("CARGO_PKG_VERSION").to_owned(),
            target,
            launched,
            threads_at_start: session.model().threads.at_start,
            slow_ns: self.slow_ns,
            go: symbolizer.map(|(s, attribution)| GoInfo::of(s, *attribution)),
            kernel_fops: self.kernel_fops,
            window_start_ns: Some(session.window_start_ns()),
            started_unix_ns: wall_clock_at(session.window_start()),
        };
        let recorder = Recorder::create(&self.path, self.max_bytes, start)?;
        session.capture_inputs();
        Ok(LiveRecording {
            recorder,
            every: self.every,
            last: Duration::ZERO,
            error: None,
        })
    }
}

/// The wall-clock time of `instant` (in the past), in nanoseconds since the
/// Unix epoch; `None` for a clock set before 1970.
pub fn wall_clock_at(instant: Instant) -> Option<u64> {
    let since = SystemTime::now()
        .checked_sub(instant.elapsed())?
        .duration_since(UNIX_EPOCH)
        .ok()?;
    u64::try_from(since.as_nanos()).ok()
}

impl LiveRecording {
    /// Whether an interval is due at `elapsed`, on a tick every `tick`.
    pub fn due(&self, elapsed: Duration, tick: Duration) -> bool {
        elapsed.saturating_sub(self.last) + tick / 2 >= self.every
    }

    /// Writes the inputs since the last interval (the session's kernel
    /// aggregates just refreshed). A write error stops the recording, and
    /// is returned by [`Self::finish`].
    pub fn interval(
        &mut self,
        elapsed: Duration,
        session: &mut Session,
        sym: Option<&Symbolizer>,
        facts: &Facts,
    ) {
        self.last = elapsed;
        let inputs = session.take_inputs();
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.recorder.interval(elapsed, inputs, sym, facts) {
            log::warn!(
                "the recording stopped: {e}; {} holds what was written before",
                self.recorder.path().display()
            );
            self.error = Some(e);
        }
    }

    /// Writes the last inputs, facts and how the session ended; prints the
    /// closing note (sizes per event and per interval) on stderr.
    pub fn finish(
        self,
        inputs: Vec<Input>,
        sym: Option<&Symbolizer>,
        facts: &Facts,
        end: End,
    ) -> Result<RecordStats, RecordError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let path = self.recorder.path().to_owned();
        let stats = self.recorder.finish(inputs, sym, facts, end)?;
        eprintln!("tracer: {}", stats.note(&path));
        Ok(stats)
    }
}
