//! The per-syscall latency histograms as an HdrHistogram interval log
//! (`tracer report FILE --format hdrlog`), for the HdrHistogram tools of
//! any language (HistogramLogProcessor, HdrHistogram_py's log reader...).
//!
//! - One line per syscall and interval: the calls that completed in that
//!   interval, tagged with the syscall's name (`Tag=read`); the Go
//!   runtime's idle waits (the report's `idle_waits`) are tagged
//!   `idle.NAME` (`Tag=idle.futex`). A syscall with no calls in an interval
//!   has no line there.
//! - Values, and the max column, are nanoseconds, as recorded.
//! - Interval timestamps are seconds since the traced window began; the
//!   `BaseTime` and `StartTime` headers give that moment's wall-clock time.
//! - An interval is the span between two readings of the kernel's
//!   histograms. The recording holds each reading cumulative, so an
//!   interval's histogram is this reading minus the previous one of the
//!   same syscall; the intervals of a syscall add up to its histogram in
//!   the report.

use std::{
    collections::BTreeMap,
    io::Write,
    time::{Duration, SystemTime},
};

use hdrhistogram::{
    Histogram,
    serialization::{
        V2DeflateSerializeError, V2DeflateSerializer,
        interval_log::{IntervalLogWriterBuilder, IntervalLogWriterError, Tag},
    },
};

use crate::{
    model::syscalls::{SyscallTable, Waiter},
    syscall_names,
};

/// The tag prefix of the Go runtime's idle waits.
pub const IDLE_TAG_PREFIX: &str = "idle.";

/// The calls that completed in one interval, by syscall.
#[derive(Clone, Debug)]
pub struct IntervalHistograms {
    /// Since the traced window began.
    pub start: Duration,
    pub end: Duration,
    /// `(tag, histogram of nanoseconds)`, the program's syscalls by number,
    /// then the idle waits; only syscalls with calls in the interval.
    pub by_tag: Vec<(String, Histogram<u64>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum HdrLogError {
    #[error(
        "the recording's reading of {tag} at {at_seconds:.3} s counts fewer calls in some \
         latency bucket than the reading before: the recording is corrupt (the kernel's \
         counts only grow); `tracer report --format json` still reports its totals"
    )]
    Decreasing { tag: String, at_seconds: f64 },
    #[error("`{0}` cannot be an interval log tag (it holds a comma, a space or a line break)")]
    BadTag(String),
    #[error("writing the interval log: {0}")]
    Write(#[from] IntervalLogWriterError<V2DeflateSerializeError>),
    #[error("writing the interval log: {0}")]
    Io(#[from] std::io::Error),
}

/// The tag of one syscall's histograms.
pub fn tag(waiter: Waiter, sysno: u32) -> String {
    let name = syscall_names::name(sysno);
    match waiter {
        Waiter::Program => name,
        Waiter::RuntimeIdle => format!("{IDLE_TAG_PREFIX}{name}"),
    }
}

/// Turns the model's cumulative tables, read at the end of each interval,
/// into the histograms of each interval's calls.
#[derive(Debug, Default)]
pub struct IntervalDeltas {
    /// Each syscall's cumulative histogram at the last reading.
    previous: BTreeMap<(Waiter, u32), Histogram<u64>>,
    /// When the last reading was taken.
    last_end: Duration,
}

impl IntervalDeltas {
    /// The interval from the last reading to `end`: what `table` (the
    /// model after all of the interval's inputs) gained since.
    pub fn next(
        &mut self,
        table: &SyscallTable,
        end: Duration,
    ) -> Result<IntervalHistograms, HdrLogError> {
        let start = self.last_end.min(end);
        let mut by_tag = Vec::new();
        for waiter in [Waiter::Program, Waiter::RuntimeIdle] {
            for (sysno, stats) in table.by_syscall(waiter) {
                let key = (waiter, sysno);
                let delta = match self.previous.get(&key) {
                    Some(before) if *before == stats.histogram => continue,
                    Some(before) => {
                        let mut delta = stats.histogram.clone();
                        delta
                            .subtract(before)
                            .map_err(|_| HdrLogError::Decreasing {
                                tag: tag(waiter, sysno),
                                at_seconds: end.as_secs_f64(),
                            })?;
                        delta
                    }
                    None => stats.histogram.clone(),
                };
                if delta.is_empty() {
                    continue;
                }
                by_tag.push((tag(waiter, sysno), delta));
                self.previous.insert(key, stats.histogram);
            }
        }
        self.last_end = end.max(start);
        Ok(IntervalHistograms { start, end, by_tag })
    }
}

/// What a log holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Intervals with at least one histogram.
    pub intervals: u64,
    pub histograms: u64,
}

/// What the log's header says of the trace.
#[derive(Clone, Debug)]
pub struct LogHeader {
    /// The traced command, and its pid.
    pub command: String,
    pub pid: u32,
    /// When the traced window began (`None`: the recording does not say).
    pub started: Option<SystemTime>,
}

/// Writes the interval log of `intervals` to `out`: the header comments,
/// `StartTime` and `BaseTime`, then each interval's histograms (V2,
/// deflate-compressed, as the Java tools write them).
pub fn write(
    mut out: &mut dyn Write,
    header: &LogHeader,
    intervals: impl IntoIterator<Item = Result<IntervalHistograms, HdrLogError>>,
) -> Result<LogStats, HdrLogError> {
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(&format!(
            "Syscall latencies of {} (pid {}), recorded by tracer {}",
            header.command,
            header.pid,
            env!("CARGO_PKG_VERSION")
        ))
        .add_comment(
            "Values and the max column are nanoseconds. Tag=NAME: the program's calls of that \
             syscall; Tag=idle.NAME: the Go runtime's idle waits in it.",
        )
        .add_comment(
            "Each line: the calls that completed in one interval; timestamps are seconds since \
             the trace began (BaseTime).",
        );
    match header.started {
        Some(started) => {
            builder.with_start_time(started).with_base_time(started);
        }
        // The epoch: timestamps then read as seconds since the trace began
        // all the same.
        None => {
            builder
                .add_comment(
                    "The recording does not say when the trace began (an older tracer made \
                     it): StartTime and BaseTime are the epoch.",
                )
                .with_start_time(SystemTime::UNIX_EPOCH)
                .with_base_time(SystemTime::UNIX_EPOCH);
        }
    }
    let mut serializer = V2DeflateSerializer::new();
    let mut log = builder.begin_log_with(&mut out, &mut serializer)?;
    let mut stats = LogStats::default();
    for interval in intervals {
        let interval = interval?;
        let duration = interval.end.saturating_sub(interval.start);
        for (name, histogram) in &interval.by_tag {
            let tag = Tag::new(name).ok_or_else(|| HdrLogError::BadTag(name.clone()))?;
            log.write_histogram(histogram, interval.start, duration, Some(tag))?;
            stats.histograms += 1;
        }
        stats.intervals += u64::from(!interval.by_tag.is_empty());
    }
    Ok(stats)
}

#[cfg(test)]
pub(crate) mod tests {
    use hdrhistogram::serialization::{
        Deserializer,
        interval_log::{IntervalLogIterator, LogEntry},
    };

    use super::*;
    use crate::model::{Event, Model, syscalls::new_histogram};

    const READ: u32 = 0;
    const FUTEX: u32 = 202;

    /// The kernel's cumulative reading of `sysno`: `buckets` as
    /// `(bucket index, count)`.
    fn reading(sysno: u32, idle: bool, buckets: &[(u32, u64)]) -> Event {
        let calls = buckets.iter().map(|&(_, n)| n).sum();
        Event::SyscallAggregate {
            sysno,
            idle,
            calls,
            errors: 0,
            total_ns: 0,
            max_ns: 0,
            errnos: Vec::new(),
            buckets: buckets.to_vec(),
        }
    }

    fn streamed(sysno: u32, duration_ns: u64) -> Event {
        Event::Syscall {
            tid: 1,
            ts_ns: 0,
            sysno,
            ret: 0,
            duration_ns,
            idle: false,
        }
    }

    /// Three intervals of a model fed as a recording feeds it: `read`
    /// streamed, then in the kernel; an idle futex in the second only.
    fn intervals() -> (Model, Vec<IntervalHistograms>) {
        let secs = Duration::from_secs;
        let fed: [(Duration, Vec<Event>); 3] = [
            (
                secs(1),
                vec![streamed(READ, 700), reading(READ, false, &[(400, 2)])],
            ),
            (
                secs(2),
                vec![
                    reading(READ, false, &[(400, 5), (500, 1)]),
                    reading(FUTEX, true, &[(900, 3)]),
                ],
            ),
            (secs(3), vec![reading(READ, false, &[(400, 5), (500, 4)])]),
        ];
        let mut model = Model::new(1);
        let mut deltas = IntervalDeltas::default();
        let mut out = Vec::new();
        for (end, events) in fed {
            events.iter().for_each(|e| model.apply(e));
            out.push(deltas.next(&model.syscalls, end).unwrap());
        }
        (model, out)
    }

    fn counts(i: &IntervalHistograms) -> Vec<(&str, u64)> {
        i.by_tag
            .iter()
            .map(|(t, h)| (t.as_str(), h.len()))
            .collect()
    }

    #[test]
    fn an_interval_holds_the_calls_since_the_reading_before() {
        let (_, iv) = intervals();
        // The streamed call and the kernel's first two.
        assert_eq!(counts(&iv[0]), [("read", 3)]);
        assert_eq!(counts(&iv[1]), [("read", 4), ("idle.futex", 3)]);
        // The futex did not change: no line for it.
        assert_eq!(counts(&iv[2]), [("read", 3)]);
        let spans: Vec<(u64, u64)> = iv
            .iter()
            .map(|i| (i.start.as_secs(), i.end.as_secs()))
            .collect();
        assert_eq!(spans, [(0, 1), (1, 2), (2, 3)]);
        // The third interval's calls are all in the kernel's bucket 500.
        let value = tracer_common::buckets::bucket_value(500);
        let third = &iv[2].by_tag[0].1;
        assert_eq!(third.count_at(value), 3);
        assert_eq!(third.len(), third.count_at(value));
    }

    #[test]
    fn the_intervals_add_up_to_the_reports_histograms() {
        let (model, iv) = intervals();
        for waiter in [Waiter::Program, Waiter::RuntimeIdle] {
            for (sysno, whole) in model.syscalls.by_syscall(waiter) {
                let mut sum = new_histogram();
                for (t, h) in iv.iter().flat_map(|i| &i.by_tag) {
                    if *t == tag(waiter, sysno) {
                        sum.add(h).unwrap();
                    }
                }
                assert_eq!(sum, whole.histogram, "{}", tag(waiter, sysno));
                assert_eq!(sum.len(), whole.calls, "{}", tag(waiter, sysno));
            }
        }
    }

    #[test]
    fn a_reading_that_goes_down_is_an_error() {
        let mut model = Model::new(1);
        let mut deltas = IntervalDeltas::default();
        model.apply(&reading(READ, false, &[(400, 5)]));
        deltas
            .next(&model.syscalls, Duration::from_secs(1))
            .unwrap();
        model.apply(&reading(READ, false, &[(400, 4), (401, 2)]));
        let err = deltas
            .next(&model.syscalls, Duration::from_secs(2))
            .unwrap_err();
        assert!(err.to_string().contains("read at 2.000 s"), "{err}");
    }

    #[test]
    fn the_log_reads_back_with_the_crates_own_reader() {
        let (_, iv) = intervals();
        let started = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let header = LogHeader {
            command: "demo".into(),
            pid: 42,
            started: Some(started),
        };
        let mut out = Vec::new();
        let stats = write(&mut out, &header, iv.iter().cloned().map(Ok)).unwrap();
        assert_eq!(
            stats,
            LogStats {
                intervals: 3,
                histograms: 4
            }
        );
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("are nanoseconds"), "{text}");

        let (times, lines) = read_log(&out);
        let since_epoch = started.duration_since(SystemTime::UNIX_EPOCH).unwrap();
        assert_eq!(times, [since_epoch, since_epoch]);
        let written: Vec<(&String, &Histogram<u64>, Duration)> = iv
            .iter()
            .flat_map(|i| i.by_tag.iter().map(move |(t, h)| (t, h, i.start)))
            .collect();
        assert_eq!(lines.len(), written.len());
        for (line, (t, h, s)) in lines.iter().zip(&written) {
            assert_eq!((&line.tag, &line.start, &line.histogram), (*t, s, *h));
            assert_eq!(line.duration, Duration::from_secs(1));
            // The max column: nanoseconds, to the log's 3 decimals.
            assert_eq!(line.max, h.max() as f64);
        }
    }

    /// One histogram line of a log, read back.
    pub struct LogLine {
        pub tag: String,
        pub start: Duration,
        pub duration: Duration,
        pub max: f64,
        pub histogram: Histogram<u64>,
    }

    /// A log read with the crate's own reader: its StartTime and BaseTime
    /// entries, and its histogram lines.
    pub fn read_log(log: &[u8]) -> (Vec<Duration>, Vec<LogLine>) {
        let mut times = Vec::new();
        let mut lines = Vec::new();
        let mut deserializer = Deserializer::new();
        for entry in IntervalLogIterator::new(log) {
            match entry.unwrap() {
                LogEntry::StartTime(t) | LogEntry::BaseTime(t) => times.push(t),
                LogEntry::Interval(h) => {
                    let bytes = base64_decode(h.encoded_histogram());
                    lines.push(LogLine {
                        tag: h.tag().expect("every line is tagged").as_str().to_owned(),
                        start: h.start_timestamp(),
                        duration: h.duration(),
                        max: h.max(),
                        histogram: deserializer.deserialize(&mut bytes.as_slice()).unwrap(),
                    });
                }
            }
        }
        (times, lines)
    }

    /// Base64 (standard alphabet, padded), as the log's histograms are.
    fn base64_decode(text: &str) -> Vec<u8> {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = Vec::new();
        let (mut acc, mut bits) = (0u32, 0);
        for c in text.bytes().filter(|&c| c != b'=') {
            let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
            acc = (acc << 6) | v;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        out
    }
}
