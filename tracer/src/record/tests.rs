//! The recording format on its own: written by a [`Recorder`], read back
//! by [`replay`], whole, cut at every byte, with another version or magic,
//! and bounded by `--max-size`.

use super::*;
use crate::{
    facts::Fact,
    gobin::symbolize::testing::{TEXT, ret, symbolizer},
    model::{Model, PHandoff, RawFd, TakenFlags},
    report::Mode,
};

const FUNCTIONS: &[&str] = &[
    "syscall.Syscall6",
    "time.Sleep",
    "main.sleeper",
    "main.main",
];

fn target() -> TargetInfo {
    TargetInfo {
        pid: 42,
        command: "sleeper".into(),
        mode: Mode::Run,
        exited: false,
        exit_code: None,
        execs: 0,
        executed: Vec::new(),
        follow_forks: false,
    }
}

fn start(sym: &Symbolizer) -> Start {
    Start {
        tracer_version: "test".into(),
        target: target(),
        launched: true,
        threads_at_start: 1,
        slow_ns: 1_000_000,
        go: Some(GoInfo::of(sym, true)),
        kernel_fops: Some(vec![("pipefifo_fops".into(), 0xffff_1000)]),
        window_start_ns: Some(5_000_000_000),
        started_unix_ns: Some(1_700_000_000_123_000_000),
    }
}

fn slow_call(ts_ns: u64) -> Input {
    Input::Event(Event::SlowCall {
        tid: 7,
        ts_ns,
        sysno: 35,
        ret: 0,
        duration_ns: 10_000_000,
        goid: 18,
        p: PHandoff::Lost,
        cgo: false,
        taken: TakenFlags::default(),
        p_id: Some(1),
        fd: RawFd::default(),
        frames: vec![TEXT + 4, ret(1), ret(2), ret(3)],
    })
}

/// A kernel reading of `calls` nanosleep calls.
fn kernel(calls: u64) -> Vec<Input> {
    vec![
        Input::Event(Event::SyscallAggregate {
            sysno: 35,
            idle: false,
            calls,
            errors: 0,
            total_ns: calls * 10_000_000,
            max_ns: 10_000_000,
            errnos: Vec::new(),
            buckets: vec![(40, calls)],
        }),
        Input::KernelCounters(vec![calls; tracer_common::NUM_COUNTERS as usize]),
    ]
}

fn end() -> End {
    End {
        traced_seconds: 2.5,
        target: TargetInfo {
            exited: true,
            exit_code: Some(0),
            ..target()
        },
        threads_at_end: None,
        events_not_recorded: 0,
        calls_not_recorded: 0,
    }
}

/// A recording of two intervals: 3 slow calls and a kernel reading each,
/// facts that change once.
fn write(path: &Path, max_bytes: Option<u64>) -> (RecordStats, Vec<Input>) {
    let sym = symbolizer(FUNCTIONS);
    let mut rec = Recorder::create(path, max_bytes, start(&sym)).unwrap();
    let mut facts = Facts::default();
    let mut fed = Vec::new();
    for interval in 0..2u64 {
        let mut inputs: Vec<Input> = (0..3).map(|i| slow_call(interval * 10 + i)).collect();
        inputs.extend(kernel(3 * (interval + 1)));
        fed.extend(inputs.clone());
        facts.cpu.gomaxprocs = Fact::known(4, "read from runtime.gomaxprocs");
        let elapsed = Duration::from_secs(interval + 1);
        rec.interval(elapsed, inputs, Some(&sym), &facts).unwrap();
    }
    let stats = rec.finish(Vec::new(), Some(&sym), &facts, end()).unwrap();
    (stats, fed)
}

fn read(path: &Path) -> Result<(Recording, Vec<Input>), ReadError> {
    let mut inputs = Vec::new();
    let replayed = replay(path, |i| inputs.push(i.clone()))?;
    Ok((replayed, inputs))
}

#[test]
fn a_recording_reads_back_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let (stats, fed) = write(&path, None);
    assert_eq!(stats.bytes, std::fs::metadata(&path).unwrap().len());
    // The two intervals, and the last at the end (nothing new).
    assert_eq!((stats.events, stats.intervals), (6, 3));
    let (mut replayed, inputs) = read(&path).unwrap();
    assert_eq!(inputs, fed);
    assert!(replayed.cut_short.is_none(), "{:?}", replayed.cut_short);
    let end = replayed.end.clone().unwrap();
    assert_eq!((end.traced_seconds, end.target.exit_code), (2.5, Some(0)));
    assert_eq!(replayed.start.target.command, "sleeper");
    assert_eq!(replayed.start.slow_ns, 1_000_000);
    assert_eq!(replayed.last_interval_seconds, 2.5);
    assert_eq!(replayed.facts.cpu.gomaxprocs.value(), Some(4));
    let fops = replayed.fops().unwrap();
    assert_eq!(fops.found(), [("pipefifo_fops", 0xffff_1000)]);
    // The stacks read the same as from the binary.
    let (sym, attribution) = replayed.symbolizer().unwrap();
    assert!(attribution);
    let live = symbolizer(FUNCTIONS);
    let stack = [TEXT + 4, ret(1), ret(2), ret(3)];
    assert_eq!(sym.syscall_stack(&stack), live.syscall_stack(&stack));
    assert_eq!(sym.build.raw_version, "go1.27.0");
    // Replayed into a model, the same model as fed live.
    let mut live_model = Model::new(1);
    fed.iter().for_each(|i| live_model.feed(i));
    let mut replayed_model = Model::new(1);
    inputs.iter().for_each(|i| replayed_model.feed(i));
    assert_eq!(
        replayed_model.calls.sites.len(),
        live_model.calls.sites.len()
    );
    assert_eq!(
        replayed_model.syscalls.totals(None),
        live_model.syscalls.totals(None)
    );
    assert_eq!(replayed_model.counters, live_model.counters);
}

#[test]
fn a_recording_cut_anywhere_reads_up_to_its_last_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let (_, fed) = write(&path, None);
    let bytes = std::fs::read(&path).unwrap();
    let cut_path = dir.path().join("cut.rec");
    let mut readable = 0;
    for len in 0..bytes.len() {
        std::fs::write(&cut_path, &bytes[..len]).unwrap();
        match read(&cut_path) {
            Ok((replayed, inputs)) => {
                readable += 1;
                // A prefix of what was fed, and said to be cut short.
                assert_eq!(inputs, fed[..inputs.len()], "cut at {len}");
                let Some(CutShort::Truncated { at_byte }) = replayed.cut_short else {
                    panic!("cut at {len}: {:?}", replayed.cut_short);
                };
                assert!(at_byte <= len as u64);
                assert!(replayed.end.is_none());
                let said = replayed.cut_short.unwrap().to_string();
                assert!(said.contains("cut short"), "{said}");
            }
            // Only before the start frame is whole.
            Err(ReadError::NoStart { bytes, .. }) => assert!(bytes <= len as u64),
            Err(e) => panic!("cut at {len}: {e}"),
        }
    }
    assert!(readable > bytes.len() / 2, "{readable} of {}", bytes.len());
}

#[test]
fn another_format_version_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    write(&path, None);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&5u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = read(&path).unwrap_err();
    assert!(
        matches!(err, ReadError::Version { found: 5, .. }),
        "{err:?}"
    );
    let said = err.to_string();
    assert!(
        said.contains("written by recording format 5; this tracer reads formats 1 to 4"),
        "{said}"
    );
}

#[test]
fn a_file_that_is_no_recording_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    std::fs::write(&path, br#"{"schema": "gotracer.report/2"}"#).unwrap();
    let err = read(&path).unwrap_err();
    assert!(matches!(err, ReadError::BadMagic { .. }), "{err:?}");
    assert!(
        err.to_string().contains("is not a tracer recording"),
        "{err}"
    );
    // Too short to hold a magic, and not its beginning.
    std::fs::write(&path, b"{}").unwrap();
    assert!(matches!(read(&path), Err(ReadError::BadMagic { .. })));
    // A recorder that wrote nothing.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(
        read(&path),
        Err(ReadError::NoStart { bytes: 0, .. })
    ));
}

#[test]
fn a_corrupt_frame_ends_the_reading_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    write(&path, None);
    let mut bytes = std::fs::read(&path).unwrap();
    // The frame after the start: its first payload byte made invalid.
    let start_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let second = 12 + 4 + start_len;
    bytes[second + 4] = 0xc1; // never used by MessagePack
    std::fs::write(&path, &bytes).unwrap();
    let (replayed, inputs) = read(&path).unwrap();
    assert!(inputs.is_empty());
    let Some(CutShort::Corrupt { at_byte, .. }) = &replayed.cut_short else {
        panic!("{:?}", replayed.cut_short);
    };
    assert_eq!(*at_byte, second as u64);
}

#[test]
fn max_size_stops_the_events_but_keeps_the_last_kernel_reading() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.rec");
    let (whole_stats, fed) = write(&whole, None);
    let bounded = dir.path().join("bounded.rec");
    let limit = whole_stats.bytes / 2;
    let (stats, _) = write(&bounded, Some(limit));
    let not_recorded = stats.events_not_recorded;
    assert!(not_recorded > 0, "{stats:?}");
    assert_eq!(stats.events + not_recorded, 6);
    // Past the limit only the closing frames: the last kernel reading,
    // the facts and the end (small here).
    assert!(
        stats.bytes < limit + 512,
        "{} bytes for {limit}",
        stats.bytes
    );
    let (replayed, inputs) = read(&bounded).unwrap();
    let end = replayed.end.as_ref().unwrap();
    assert_eq!(end.events_not_recorded, not_recorded);
    assert_eq!(replayed.size_limit.unwrap().1, limit);
    assert!(replayed.cut_short.is_none());
    // The events that fit, then the last kernel reading: the syscall
    // table is the whole run's.
    let mut live = Model::new(1);
    fed.iter().for_each(|i| live.feed(i));
    let mut model = Model::new(1);
    inputs.iter().for_each(|i| model.feed(i));
    assert_eq!(model.syscalls.totals(None), live.syscalls.totals(None));
    let listed: u64 = model.calls.sites.iter().map(|(_, s)| s.calls).sum();
    assert_eq!(listed, stats.events);
    let note = stats.note(&bounded);
    assert!(
        note.contains(&format!("{not_recorded} events past --max-size")),
        "{note}"
    );
}

/// Calls streamed one by one (a syscall without an in-kernel histogram
/// yet) make up part of the syscall tables: past --max-size they are left
/// out with the other events (the bound holds), and counted apart, so the
/// report says how many calls its tables lack.
#[test]
fn max_size_counts_the_streamed_calls_it_leaves_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bounded.rec");
    let sym = symbolizer(FUNCTIONS);
    let mut rec = Recorder::create(&path, Some(600), start(&sym)).unwrap();
    let facts = Facts::default();
    let streamed = |ts_ns| {
        Input::Event(Event::Syscall {
            tid: 7,
            ts_ns,
            sysno: 0,
            ret: 1,
            duration_ns: 2_000,
            idle: false,
        })
    };
    let mut fed = Vec::new();
    for i in 0..3u64 {
        let inputs: Vec<Input> = (0..20)
            .flat_map(|j| [slow_call(i * 100 + j), streamed(i * 100 + j)])
            .collect();
        fed.extend(inputs.clone());
        rec.interval(Duration::from_secs(i + 1), inputs, Some(&sym), &facts)
            .unwrap();
    }
    let end = End {
        target: target(),
        traced_seconds: 3.5,
        threads_at_end: None,
        events_not_recorded: 0,
        calls_not_recorded: 0,
    };
    let stats = rec.finish(Vec::new(), Some(&sym), &facts, end).unwrap();
    assert!(stats.events_not_recorded > 0, "{stats:?}");
    assert!(stats.bytes < 600 + 512, "{stats:?}");
    let (replayed, inputs) = read(&path).unwrap();
    let count = |v: &[Input]| v.iter().filter(|i| is_streamed_call(i)).count() as u64;
    assert!(stats.calls_not_recorded > 0, "{stats:?}");
    assert_eq!(count(&inputs) + stats.calls_not_recorded, count(&fed));
    let end = replayed.end.unwrap();
    assert_eq!(end.calls_not_recorded, stats.calls_not_recorded);
    let slow = |v: &[Input]| {
        v.iter()
            .filter(|i| matches!(i, Input::Event(Event::SlowCall { .. })))
            .count() as u64
    };
    let slow_left_out = stats.events_not_recorded - stats.calls_not_recorded;
    assert_eq!(slow(&inputs) + slow_left_out, slow(&fed));
    let (mut whole, mut bounded) = (Model::new(1), Model::new(1));
    fed.iter().for_each(|i| whole.feed(i));
    inputs.iter().for_each(|i| bounded.feed(i));
    let calls = |m: &Model| m.syscalls.totals(None).0;
    assert_eq!(calls(&bounded) + stats.calls_not_recorded, calls(&whole));
}

#[test]
fn a_kernel_reading_is_written_again_only_when_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let sym = symbolizer(FUNCTIONS);
    let mut rec = Recorder::create(&path, None, start(&sym)).unwrap();
    let facts = Facts::default();
    let second = Duration::from_secs(1);
    rec.interval(second, kernel(3), Some(&sym), &facts).unwrap();
    // The same reading: nothing of it is written again.
    rec.interval(2 * second, kernel(3), Some(&sym), &facts)
        .unwrap();
    // A vDSO site appears; the syscall and the counters are unchanged.
    let vdso = Input::Event(Event::VdsoCalls {
        sysno: 228,
        clock: 1,
        frames: vec![TEXT + 4],
        calls: 9,
    });
    let mut third = kernel(3);
    third.push(vdso.clone());
    rec.interval(3 * second, third, Some(&sym), &facts).unwrap();
    rec.finish(Vec::new(), Some(&sym), &facts, end()).unwrap();
    let (replayed, inputs) = read(&path).unwrap();
    let mut expected = kernel(3);
    expected.push(vdso);
    assert_eq!(inputs, expected);
    assert_eq!(replayed.last_interval_seconds, 2.5);
}

/// Compact: what the most frequent inputs cost in a recording (37 and 106
/// bytes when written; variant names are a third of a syscall's).
#[test]
fn frequent_inputs_are_a_few_dozen_bytes() {
    let size = |i: &Input| rmp_serde::to_vec(i).unwrap().len();
    let syscall = Input::Event(Event::Syscall {
        tid: 123_456,
        ts_ns: 1_361_527_550_407,
        sysno: 202,
        ret: 0,
        duration_ns: 3_417,
        idle: false,
    });
    // Six frames, as a sleep in sleeper.go has.
    let mut slow = slow_call(1_361_549_133_993);
    if let Input::Event(Event::SlowCall { frames, .. }) = &mut slow {
        frames.extend([ret(1) + 0x10, ret(2) + 0x10]);
    }
    eprintln!(
        "syscall {} bytes, slow call {} bytes",
        size(&syscall),
        size(&slow)
    );
    assert!(size(&syscall) <= 40, "{}", size(&syscall));
    assert!(size(&slow) <= 128, "{}", size(&slow));
}

#[test]
fn items_end_each_interval_after_its_kernel_readings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    write(&path, None);
    let mut rec = Recording::open(&path).unwrap();
    assert_eq!(rec.start.window_start_ns, Some(5_000_000_000));
    let mut items = Vec::new();
    while let Some(item) = rec.next_item() {
        items.push(item);
    }
    let ends: Vec<(usize, u64)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| match item {
            Item::IntervalEnd { elapsed_ns } => Some((i, *elapsed_ns)),
            Item::Input(_) => None,
        })
        .collect();
    // Each interval: 3 slow calls, then its kernel reading (one input
    // here), then its end; the last (at the end) read nothing new.
    let at: Vec<usize> = ends.iter().map(|&(i, _)| i).collect();
    let elapsed: Vec<u64> = ends.iter().map(|&(_, e)| e).collect();
    assert_eq!(elapsed, [1_000_000_000, 2_000_000_000, 2_500_000_000]);
    let kernel_inputs = kernel(3).len();
    assert_eq!(at[0], 3 + kernel_inputs);
    assert_eq!(at[1], at[0] + 1 + 3 + kernel_inputs);
    assert_eq!(at[2], at[1] + 1);
}

/// Format 1 had no window start and no wall-clock start: its recordings
/// still read, without them.
#[test]
fn a_format_1_recording_reads_without_its_window_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let sym = symbolizer(FUNCTIONS);
    let mut v1 = Vec::new();
    v1.extend_from_slice(MAGIC);
    v1.extend_from_slice(&1u32.to_le_bytes());
    // The version-1 start: the same fields, less the last.
    #[derive(serde::Serialize)]
    struct StartV1 {
        tracer_version: String,
        target: crate::report::TargetInfo,
        launched: bool,
        threads_at_start: u64,
        slow_ns: u64,
        go: Option<GoInfo>,
        kernel_fops: Option<Vec<(String, u64)>>,
    }
    let s = start(&sym);
    let old = StartV1 {
        tracer_version: s.tracer_version,
        target: s.target,
        launched: s.launched,
        threads_at_start: s.threads_at_start,
        slow_ns: s.slow_ns,
        go: s.go,
        kernel_fops: s.kernel_fops,
    };
    // Encoded as `Frame` encodes its start.
    #[derive(serde::Serialize)]
    #[serde(rename_all = "snake_case")]
    enum FrameV1 {
        Start(Box<StartV1>),
    }
    let frame = rmp_serde::to_vec(&FrameV1::Start(Box::new(old))).unwrap();
    v1.extend_from_slice(&(frame.len() as u32).to_le_bytes());
    v1.extend_from_slice(&frame);
    std::fs::write(&path, &v1).unwrap();
    let rec = Recording::open(&path).unwrap();
    assert_eq!(rec.start.window_start_ns, None);
    assert_eq!(rec.start.started_unix_ns, None);
    assert_eq!(rec.start.slow_ns, 1_000_000);
}

#[test]
fn intervals_read_back_with_the_time_of_their_kernel_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let (_, fed) = write(&path, None);
    let mut recording = Recording::open(&path).unwrap();
    assert_eq!(
        recording.start.started_unix_ns,
        Some(1_700_000_000_123_000_000)
    );
    let mut read = Vec::new();
    while let Some(interval) = recording.next_interval() {
        read.push(interval);
    }
    let times: Vec<Option<u64>> = read.iter().map(|i| i.elapsed_ns).collect();
    // The two intervals, and the end's (2.5 s, nothing changed).
    assert_eq!(
        times,
        [
            Some(1_000_000_000),
            Some(2_000_000_000),
            Some(2_500_000_000)
        ]
    );
    // Each interval's events, then its reading; in all, what was fed.
    assert_eq!(read[0].inputs.len(), 3 + kernel(3).len());
    assert!(read[2].inputs.is_empty());
    let all: Vec<Input> = read.into_iter().flat_map(|i| i.inputs).collect();
    assert_eq!(all, fed);
    assert!(recording.end.is_some());
}

#[test]
fn intervals_of_a_recording_cut_short_end_with_its_last_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.rec");
    let sym = symbolizer(FUNCTIONS);
    let mut rec = Recorder::create(&path, None, start(&sym)).unwrap();
    let facts = Facts::default();
    rec.interval(Duration::from_secs(1), kernel(2), Some(&sym), &facts)
        .unwrap();
    rec.interval(
        Duration::from_secs(2),
        vec![slow_call(5)],
        Some(&sym),
        &facts,
    )
    .unwrap();
    drop(rec);
    // Cut inside the second interval's kernel frame: its event is read,
    // with no reading after it.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let mut recording = Recording::open(&path).unwrap();
    let first = recording.next_interval().unwrap();
    assert_eq!(first.elapsed_ns, Some(1_000_000_000));
    let last = recording.next_interval().unwrap();
    assert_eq!((last.elapsed_ns, last.inputs), (None, vec![slow_call(5)]));
    assert!(recording.next_interval().is_none());
    assert!(recording.cut_short.is_some());
}

/// Facts holding a thread blocked on a pipe (an adjacently tagged unit
/// variant, `FdTarget::Pipe`) read back whole: a recording of a process
/// whose main goroutine reads stdin is not cut there as corrupt.
#[test]
fn facts_with_a_descriptor_kind_read_back() {
    use crate::{
        facts::threads::{Holder, HolderRow, ThreadSample},
        procinfo::fds::FdTarget,
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.rec");
    let sym = symbolizer(FUNCTIONS);
    let mut rec = Recorder::create(&path, None, start(&sym)).unwrap();
    let mut facts = Facts::default();
    let row = |fd| HolderRow {
        holder: Holder::Syscall,
        syscall: Some("read".into()),
        call_site: None,
        fd: Some(fd),
        go_stack: Vec::new(),
        threads: 1,
    };
    facts.samples.push(ThreadSample {
        elapsed_seconds: 1.0,
        threads: 2,
        holders: vec![row(FdTarget::Pipe), row(FdTarget::Anon("eventfd".into()))],
    });
    rec.interval(Duration::from_secs(1), kernel(1), Some(&sym), &facts)
        .unwrap();
    rec.finish(Vec::new(), Some(&sym), &facts, end()).unwrap();
    let (replayed, _) = read(&path).unwrap();
    assert!(replayed.cut_short.is_none(), "{:?}", replayed.cut_short);
    assert_eq!(replayed.facts.samples[0].holders, facts.samples[0].holders);
}
