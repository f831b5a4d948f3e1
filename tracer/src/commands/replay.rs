//! `tracer report FILE`: a recording replayed through the same model,
//! analysis and report code as the live run that made it (`text`, `json`),
//! its events one JSON object per line (`events`), a flame graph of it
//! (`folded`, `flamegraph`: see `report::flame`), a timeline for Perfetto
//! (`perfetto`) or its latency histograms per interval as an HdrHistogram
//! interval log (`hdrlog`). Nothing is read from the process, its binary
//! or this host: the recording holds it all.

use std::{
    io::{self, Write},
    path::Path,
    time::{Duration, SystemTime},
};

use anyhow::Context as _;

use crate::{
    analysis::fd,
    cli::{OutputConfig, ReportFormat},
    gobin::symbolize::{Frame, Symbolizer},
    model::{Event, Input, Model},
    procinfo::kallsyms::FopsMap,
    record::{self, Recording},
    report::{
        RecordingState, RecordingStatus, Report, SizeLimitStatus, TargetInfo,
        flame::{self, BlockingCalls, FlameView, Titles},
        hdrlog, perfetto,
    },
    syscall_names, units,
};

pub fn execute(
    path: &Path,
    format: ReportFormat,
    view: FlameView,
    output: &OutputConfig,
) -> anyhow::Result<i32> {
    match format {
        ReportFormat::Text | ReportFormat::Json => report(path, output)?,
        ReportFormat::Events => events(path, output)?,
        ReportFormat::Folded | ReportFormat::Flamegraph => flame(path, format, view, output)?,
        ReportFormat::Perfetto => perfetto(path, output)?,
        ReportFormat::Hdrlog => hdrlog(path, output)?,
    }
    Ok(0)
}

/// A flame graph of the recorded session: folded stacks, or their SVG.
fn flame(
    path: &Path,
    format: ReportFormat,
    view: FlameView,
    output: &OutputConfig,
) -> anyhow::Result<()> {
    let mut recording = Recording::open(path)?;
    // The model decides which calls the report lists, so the blocking
    // view holds the same calls as the report's `blocking` rows.
    let mut model = Model::new(recording.start.threads_at_start);
    model.runtime.launched_by_exec = recording.start.launched;
    let mut calls = BlockingCalls::default();
    while let Some(input) = recording.next_input() {
        if let Input::Event(
            e @ Event::SlowCall {
                sysno,
                p,
                duration_ns,
                frames,
                ..
            },
        ) = &input
            && model.lists(e)
        {
            let frames = (!model.after_exec()).then_some(frames.as_slice());
            calls.add(*sysno, *p, *duration_ns, frames);
        }
        model.feed(&input);
    }
    say_what_is_missing(&recording);
    let target = recording
        .end
        .as_ref()
        .map_or(&recording.start.target, |e| &e.target)
        .clone();
    let symbolizer = recording.symbolizer();
    let sym = symbolizer.as_ref().map(|(s, _)| s);
    let folded = match view {
        FlameView::Blocking => calls.fold(sym),
        FlameView::Spawns => flame::spawn_stacks(&model, sym),
    };
    let slow_ns = recording.start.slow_ns;
    if folded.is_empty() {
        let nothing = match view {
            FlameView::Blocking => format!(
                "no call in this recording lasted {} or more or lost its P: record again \
                 with a lower --slow to see shorter calls",
                units::human_ns(slow_ns)
            ),
            FlameView::Spawns => "no thread was started while it was recorded".to_owned(),
        };
        if format == ReportFormat::Flamegraph {
            anyhow::bail!("nothing to draw from {}: {nothing}", path.display());
        }
        eprintln!("tracer: {nothing} (no stacks written)");
    }
    let titles = Titles::new(view, &target, slow_ns, folded.total());
    let what = match format {
        ReportFormat::Flamegraph => "the flame graph",
        _ => "the folded stacks",
    };
    super::write_output(output.path.as_deref(), what, |out| match format {
        ReportFormat::Flamegraph => folded.write_svg(&titles, out),
        _ => folded.write(out),
    })
}

/// The report of the recorded session, as the live run wrote it.
fn report(path: &Path, output: &OutputConfig) -> anyhow::Result<()> {
    super::write_report(&replay(path)?.report, output)
}

/// A recording replayed: the model it rebuilds and the report of it.
pub struct Replayed {
    pub model: Model,
    pub report: Report,
}

/// Replays the recording at `path` through the model, the analysis and
/// the report, as the live session did (saying on stderr what it lacks).
pub fn replay(path: &Path) -> anyhow::Result<Replayed> {
    let mut recording = Recording::open(path)?;
    let start = &recording.start;
    // As the session made it (see `Session::new`).
    let mut model = Model::new(start.threads_at_start);
    model.runtime.launched_by_exec = start.launched;
    while let Some(input) = recording.next_input() {
        model.feed(&input);
    }
    say_what_is_missing(&recording);
    let (target, traced_seconds, threads_at_end) = match &recording.end {
        Some(end) => (end.target.clone(), end.traced_seconds, end.threads_at_end),
        // Cut short: up to its last kernel reading, how it ended unknown.
        None => (
            recording.start.target.clone(),
            recording.last_interval_seconds,
            None,
        ),
    };
    let symbolizer = recording.symbolizer();
    let fops = recording.fops();
    let report = super::Finished {
        model: &model,
        target,
        traced_seconds,
        threads_at_end,
        symbolizer: symbolizer.as_ref(),
        facts: &recording.facts,
        fops: fops.as_ref(),
        slow_ns: recording.start.slow_ns,
    }
    .report();
    let report = Report {
        recording: Some(status(&recording)),
        ..report
    };
    Ok(Replayed { model, report })
}

/// Whether the recording was whole, as its report states it.
fn status(recording: &Recording) -> RecordingStatus {
    let (state, cut_at_byte, why) = match &recording.cut_short {
        None => (RecordingState::Complete, None, None),
        Some(record::CutShort::Truncated { at_byte }) => {
            (RecordingState::Truncated, Some(*at_byte), None)
        }
        Some(record::CutShort::Corrupt { at_byte, why }) => {
            (RecordingState::Corrupt, Some(*at_byte), Some(why.clone()))
        }
    };
    RecordingStatus {
        format_version: recording.version,
        recorded_by: recording.start.tracer_version.clone(),
        state,
        cut_at_byte,
        why,
        size_limit: recording
            .size_limit
            .map(|(at_seconds, max_bytes)| SizeLimitStatus {
                at_seconds,
                max_bytes,
                events_not_recorded: recording.end.as_ref().map(|e| e.events_not_recorded),
                calls_not_recorded: recording.end.as_ref().map(|e| e.calls_not_recorded),
            }),
    }
}

/// Says on stderr what a report of this recording lacks.
fn say_what_is_missing(recording: &Recording) {
    if let Some(cut) = &recording.cut_short {
        eprintln!(
            "tracer: {cut}; this report holds its first {:.1} s (up to the last interval \
             recorded)",
            recording.last_interval_seconds
        );
    }
    if let Some(limit) = status(recording).size_limit {
        eprintln!("tracer: {limit}");
    }
}

/// One JSON object per recorded event (not the kernel's readings), with
/// the syscall's name and the stacks symbolized.
fn events(path: &Path, output: &OutputConfig) -> anyhow::Result<()> {
    // Symbols come before the events that need them, but only a whole
    // reading has them all: read once for the symbols, once for the events.
    let mut first = record::replay(path, |_| {})?;
    let symbolizer = first.symbolizer();
    let sym = symbolizer.as_ref().map(|(s, _)| s);
    let fops = first.fops();
    say_what_is_missing(&first);
    let target = first
        .end
        .as_ref()
        .map_or(&first.start.target, |e| &e.target);
    let target = target.clone();
    super::write_output(output.path.as_deref(), "the events", |out| {
        let mut recording = Recording::open(path).map_err(io::Error::other)?;
        while let Some(input) = recording.next_input() {
            if let Some(line) = event_line(&input, sym, fops.as_ref(), &target) {
                serde_json::to_writer(&mut *out, &line)?;
                writeln!(out)?;
            }
        }
        Ok(())
    })
    .context("writing the recording's events")
}

/// The recording as a Perfetto timeline (see `report::perfetto`), streamed
/// as it is read.
fn perfetto(path: &Path, output: &OutputConfig) -> anyhow::Result<()> {
    // The spawns' causes need the whole session's model (a cause is read
    // from events before and after it), and the clock the earliest event:
    // one reading for them, one to write the timeline.
    let mut whole = Recording::open(path)?;
    let mut model = Model::new(whole.start.threads_at_start);
    model.runtime.launched_by_exec = whole.start.launched;
    let mut earliest: Option<u64> = None;
    while let Some(input) = whole.next_input() {
        if let Input::Event(e) = &input
            && let Some(t) = perfetto::event_start_ns(e)
        {
            earliest = Some(earliest.map_or(t, |m| m.min(t)));
        }
        model.feed(&input);
    }
    say_what_is_missing(&whole);
    let symbolizer = whole.symbolizer();
    let sym = symbolizer.as_ref().map(|(s, _)| s);
    let attributed = symbolizer.as_ref().filter(|(_, a)| *a).map(|(s, _)| s);
    let causes = perfetto::spawn_causes(&model, attributed);
    drop(model);
    let fops = whole.fops();
    let clock = perfetto::Clock::new(whole.start.window_start_ns, earliest);
    if !clock.is_exact() {
        eprintln!(
            "tracer: this recording's format has no window start: the intervals' counters are \
             placed from the first event, not exactly"
        );
    }
    let target = whole
        .end
        .as_ref()
        .map_or(&whole.start.target, |e| &e.target);
    let written = std::cell::Cell::new(perfetto::Written::default());
    super::write_output(output.path.as_deref(), "the timeline", |out| {
        let cx = perfetto::Context {
            target,
            threads_at_start: whole.start.threads_at_start,
            launched: whole.start.launched,
            slow_ns: whole.start.slow_ns,
            clock,
            sym,
            fops: fops.as_ref(),
            causes: &causes,
        };
        let mut timeline = perfetto::Timeline::begin(out, cx)?;
        let mut recording = Recording::open(path).map_err(io::Error::other)?;
        while let Some(item) = recording.next_item() {
            timeline.item(&item)?;
        }
        written.set(timeline.written);
        timeline.finish().map(drop)
    })
    .context("writing the timeline")?;
    let w = written.get();
    eprintln!(
        "tracer: the timeline holds {} slices (the reported calls), {} instants, {} counter \
         values and {} metadata events",
        w.slices, w.instants, w.counters, w.metadata
    );
    Ok(())
}

/// The latency histograms of each recorded interval, as an HdrHistogram
/// interval log (see `report::hdrlog`): the recording is fed to a model
/// interval by interval, as the live session fed it, and each interval's
/// histograms are what the model's gained in it.
fn hdrlog(path: &Path, output: &OutputConfig) -> anyhow::Result<()> {
    // Read once for the end (the target as it ended, a cut), once to write.
    let first = record::replay(path, |_| {})?;
    say_what_is_missing(&first);
    let target = first
        .end
        .as_ref()
        .map_or(&first.start.target, |e| &e.target);
    let header = hdrlog::LogHeader {
        command: target.command.clone(),
        pid: target.pid,
        started: first
            .start
            .started_unix_ns
            .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)),
    };
    super::write_output(output.path.as_deref(), "the interval log", |out| {
        let mut recording = Recording::open(path).map_err(io::Error::other)?;
        write_hdrlog(&mut recording, &header, out)
            .map(drop)
            .map_err(io::Error::other)
    })
    .context("writing the recording's interval log")
}

/// Writes the interval log of `recording` (opened, no input read yet) to
/// `out`: its inputs fed to a model interval by interval, as the live
/// session fed them, each interval's histograms what the model gained.
pub fn write_hdrlog(
    recording: &mut Recording,
    header: &hdrlog::LogHeader,
    out: &mut dyn Write,
) -> Result<hdrlog::LogStats, hdrlog::HdrLogError> {
    // As the session made it (see `Session::new`).
    let start = &recording.start;
    let mut model = Model::new(start.threads_at_start);
    model.runtime.launched_by_exec = start.launched;
    let mut deltas = hdrlog::IntervalDeltas::default();
    let mut last = Duration::ZERO;
    let intervals = std::iter::from_fn(|| {
        let interval = recording.next_interval()?;
        interval.inputs.iter().for_each(|i| model.feed(i));
        // Inputs after the last reading (a recording cut short): an
        // interval of no length at the last reading, so the log still adds
        // up to the report.
        let end = interval.elapsed_ns.map_or(last, Duration::from_nanos);
        last = end;
        Some(deltas.next(&model.syscalls, end))
    });
    hdrlog::write(out, header, intervals)
}

/// The JSON line of one input: the event as the model took it (`type`
/// names its kind), plus `syscall` (its name), `stack` (the symbolized
/// stack, innermost first) and `caller_function` (the P taker), when it
/// has them; a slow call's descriptor is given as the report gives it
/// (`fd`, `kind`, `label`...), and left out when the call has none.
/// `None` for the kernel's readings.
fn event_line(
    input: &Input,
    sym: Option<&Symbolizer>,
    fops: Option<&FopsMap>,
    target: &TargetInfo,
) -> Option<serde_json::Value> {
    let event = match input {
        Input::Event(Event::SyscallAggregate { .. } | Event::VdsoCalls { .. })
        | Input::KernelCounters(_) => return None,
        Input::Event(e) => e,
        Input::Undecodable => {
            return Some(serde_json::json!({"type": "undecodable", "pid": target.pid}));
        }
    };
    let mut value = serde_json::to_value(event).ok()?;
    let object = value.as_object_mut()?;
    object.insert("pid".into(), target.pid.into());
    let sysno = match event {
        Event::Syscall { sysno, .. }
        | Event::UnmatchedExit { sysno, .. }
        | Event::SlowCall { sysno, .. } => Some(*sysno),
        _ => None,
    };
    if let Some(n) = sysno {
        object.insert("syscall".into(), syscall_names::name(n).into());
    }
    if let Event::SlowCall { fd, .. } = event {
        if fd.state == tracer_common::FD_NONE {
            object.remove("fd");
        } else {
            let info = fd::classify(&fd::RawFd::from(fd), fops);
            object.insert("fd".into(), serde_json::to_value(info).ok()?);
        }
    }
    let stack: Option<Vec<Frame>> = sym.and_then(|s| match event {
        Event::SlowCall { frames, .. } => Some(s.syscall_stack(frames)),
        Event::NewM { frames, .. } => Some(s.entry_stack(frames)),
        Event::Mexit {
            lock_frames: Some(frames),
            ..
        } => Some(s.entry_stack(frames)),
        _ => None,
    });
    if let Some(stack) = stack {
        object.insert("stack".into(), serde_json::to_value(stack).ok()?);
    }
    let caller = match event {
        Event::Handoff { caller, .. } | Event::PTaken { caller, .. } => Some(*caller),
        _ => None,
    };
    if let Some(name) = caller.and_then(|c| sym?.function_name(c, true)) {
        object.insert("caller_function".into(), name.into());
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        gobin::symbolize::testing::{TEXT, ret, symbolizer},
        model::{PHandoff, RawFd, TakenFlags},
    };

    #[test]
    fn an_event_line_names_its_syscall_and_stack() {
        let sym = symbolizer(&["syscall.Syscall6", "time.Sleep", "main.sleeper"]);
        let target = TargetInfo::finished_run(9, "sleeper");
        let input = Input::Event(Event::SlowCall {
            tid: 3,
            ts_ns: 100,
            sysno: 35,
            ret: 0,
            duration_ns: 2_000_000,
            goid: 21,
            p: PHandoff::Lost,
            cgo: false,
            taken: TakenFlags::default(),
            p_id: Some(0),
            fd: RawFd::default(),
            frames: vec![TEXT + 4, ret(1), ret(2)],
        });
        let line = event_line(&input, Some(&sym), None, &target).unwrap();
        assert_eq!(line["type"], "slow_call");
        assert_eq!(line["syscall"], "nanosleep");
        assert_eq!(line["duration_ns"], 2_000_000);
        assert_eq!(line["goid"], 21);
        assert_eq!(line["pid"], 9);
        assert_eq!(line["p"], "lost");
        let functions: Vec<&str> = line["stack"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["function"].as_str().unwrap())
            .collect();
        assert_eq!(
            functions,
            ["syscall.Syscall6", "time.Sleep", "main.sleeper"]
        );
        assert!(line.get("fd").is_none(), "no descriptor: {line}");
        // A call on a pipe: its descriptor as the report names it.
        let mut on_pipe = input.clone();
        if let Input::Event(Event::SlowCall { fd, .. }) = &mut on_pipe {
            *fd = RawFd {
                fd: 5,
                state: tracer_common::FD_READ,
                i_mode: 0o010_600,
                ..RawFd::default()
            };
        }
        let line = event_line(&on_pipe, Some(&sym), None, &target).unwrap();
        assert_eq!(line["fd"]["fd"], 5, "{line}");
        assert_eq!(line["fd"]["nonblocking"], false, "{line}");
        assert!(
            line["fd"]["label"].as_str().unwrap().contains("pipe"),
            "{line}"
        );
        // The kernel's readings are no events.
        let counters = Input::KernelCounters(vec![1]);
        assert!(event_line(&counters, Some(&sym), None, &target).is_none());
    }
}

#[cfg(test)]
mod hdrlog_tests {
    use super::*;
    use crate::{
        facts::Facts,
        model::syscalls::{Waiter, new_histogram},
        record::{Recorder, Start},
        report::{Mode, hdrlog::tests::read_log},
    };

    const READ: u32 = 0;

    fn streamed_read(duration_ns: u64) -> Input {
        Input::Event(Event::Syscall {
            tid: 1,
            ts_ns: 0,
            sysno: READ,
            ret: 0,
            duration_ns,
            idle: false,
        })
    }

    /// The kernel's cumulative reading of `calls` reads, all in bucket 300.
    fn read_reading(calls: u64) -> Input {
        Input::Event(Event::SyscallAggregate {
            sysno: READ,
            idle: false,
            calls,
            errors: 0,
            total_ns: 0,
            max_ns: 0,
            errnos: Vec::new(),
            buckets: vec![(300, calls)],
        })
    }

    /// A recording cut short: a read streamed before the kernel had a slot
    /// for it, the kernel's 4 and then 10 reads, then a streamed read
    /// whose interval's reading was cut off. Its log has one line per
    /// interval, the last of no length, and they add up to the report's.
    #[test]
    fn the_interval_log_of_a_recording_cut_short_adds_up_to_its_report() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.rec");
        let start = Start {
            tracer_version: "test".into(),
            target: TargetInfo {
                pid: 9,
                command: "reader".into(),
                mode: Mode::Run,
                exited: false,
                exit_code: None,
                execs: 0,
                executed: Vec::new(),
                follow_forks: false,
            },
            launched: true,
            threads_at_start: 1,
            slow_ns: 1_000_000,
            go: None,
            kernel_fops: None,
            window_start_ns: None,
            started_unix_ns: Some(1_700_000_000_000_000_000),
        };
        let mut rec = Recorder::create(&path, None, start).unwrap();
        let facts = Facts::default();
        let secs = Duration::from_secs;
        let fed = [
            vec![streamed_read(900), read_reading(4)],
            vec![read_reading(10)],
            vec![streamed_read(5_000)],
        ];
        for (i, inputs) in fed.into_iter().enumerate() {
            rec.interval(secs(i as u64 + 1), inputs, None, &facts)
                .unwrap();
        }
        drop(rec);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();

        let header = hdrlog::LogHeader {
            command: "reader".into(),
            pid: 9,
            started: None,
        };
        let mut out = Vec::new();
        let mut recording = Recording::open(&path).unwrap();
        write_hdrlog(&mut recording, &header, &mut out).unwrap();
        assert!(recording.cut_short.is_some());
        let (times, lines) = read_log(&out);
        assert_eq!(times, [Duration::ZERO, Duration::ZERO], "the epoch");
        let spans: Vec<(u64, u64, u64)> = lines
            .iter()
            .map(|l| (l.start.as_secs(), l.duration.as_secs(), l.histogram.len()))
            .collect();
        assert_eq!(spans, [(0, 1, 5), (1, 1, 6), (2, 0, 1)]);

        let mut model = Model::new(1);
        record::replay(&path, |i| model.feed(i)).unwrap();
        let whole = &model.syscalls.by_syscall(Waiter::Program)[&READ];
        let mut sum = new_histogram();
        lines.iter().for_each(|l| sum.add(&l.histogram).unwrap());
        assert_eq!(sum, whole.histogram);
        assert_eq!(sum.len(), 12);
    }
}
