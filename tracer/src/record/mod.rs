//! Recordings: what a session fed its model ([`Input`]s: ring-buffer
//! events, the kernel's aggregates at each interval), streamed to a file as
//! the trace goes, with what the report needs besides — the target, the Go
//! binary's build info, the symbols of the addresses its stacks hold, the
//! kernel's `file_operations` addresses and the process facts — so `tracer
//! report` replays it through the same model, analysis and report code as
//! the live run, after the process and its binary are gone, on any host.
//!
//! Layout: the 8-byte [`MAGIC`], the format version (u32 little-endian),
//! then frames, each a u32 little-endian length and that many bytes of one
//! MessagePack-encoded [`Frame`]. [`Frame::Start`] comes first; a complete
//! recording ends with [`Frame::End`]. The frames of each interval are
//! flushed together, so a recorder killed mid-trace leaves a readable
//! prefix: the reader stops at a cut last frame and says so.

pub mod symbols;

use std::{
    collections::BTreeMap,
    fs::File,
    io::{self, BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    time::Duration,
};

use serde::{Deserialize, Serialize};

use self::symbols::{SymbolReader, SymbolWriter, SymbolsChunk};
use crate::{
    facts::Facts,
    gobin::{BuildInfo, SymbolsSource, symbolize::Symbolizer},
    model::{Event, Input},
    procinfo::kallsyms::FopsMap,
    report::TargetInfo,
};

/// What a recording starts with.
pub const MAGIC: &[u8; 8] = b"GOTRACE\x01";
/// The layout of the frames and of what they hold; any change to them
/// (or to the types they hold, [`Event`] included) is a new version.
/// 2: [`Start::window_start_ns`] and [`Start::started_unix_ns`], which a
/// reader of 1 would refuse as a corrupt start.
/// 3: the followed processes' events (`Event::Proc*`, `-f`) and
/// `TargetInfo::follow_forks`; events are tagged by name, so the events of
/// 1 and 2 decode unchanged.
/// 4: `Event::ProcJoin` (targets beside the first: more `-p`, `--comm`,
/// `--cgroup`), which a reader of 3 would refuse as corrupt.
pub const FORMAT_VERSION: u32 = 4;
/// The oldest version this tracer reads: version 1 differs only by the
/// fields of [`Start`] it lacks (read as `None`), 2 by `follow_forks`
/// (read as false).
pub const OLDEST_READABLE_VERSION: u32 = 1;
/// Magic and version.
const HEADER_BYTES: u64 = 12;
/// The largest frame a reader accepts: a cut or corrupt length must not
/// make it allocate gigabytes.
const MAX_FRAME_BYTES: u32 = 256 << 20;

/// One unit of a recording.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Frame {
    Start(Box<Start>),
    /// Symbols the next frames' stacks need (written before them).
    Symbols(SymbolsChunk),
    /// Ring-buffer inputs, in the order the model took them.
    Events(Vec<Input>),
    /// The kernel's cumulative aggregates and counters as read at the end
    /// of an interval, those that changed since the last (each reading
    /// replaces the one before of the same syscall, vDSO site, counters).
    Kernel {
        elapsed_ns: u64,
        inputs: Vec<Input>,
    },
    /// The process facts, when they changed.
    Facts(Box<Facts>),
    /// `--max-size` was reached: events from here on are not recorded
    /// (the kernel's aggregates still are, at the end).
    SizeLimit {
        elapsed_ns: u64,
        max_bytes: u64,
    },
    End(End),
}

/// The session as it began.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Start {
    /// The tracer that recorded it (`CARGO_PKG_VERSION`).
    pub tracer_version: String,
    pub target: TargetInfo,
    /// The tracer launched the process (`run`).
    pub launched: bool,
    pub threads_at_start: u64,
    /// `--slow`, in nanoseconds.
    pub slow_ns: u64,
    /// The Go binary, when the target is one.
    pub go: Option<GoInfo>,
    /// The known `file_operations` symbols of the recording kernel and
    /// their addresses (descriptor kinds); `None` when unreadable there.
    pub kernel_fops: Option<Vec<(String, u64)>>,
    /// The traced window's start on the kernel's monotonic clock (that of
    /// the events' `ts_ns`): the kernel readings' `elapsed_ns` count from
    /// it. `None` in format 1.
    #[serde(default)]
    pub window_start_ns: Option<u64>,
    /// When the traced window began, in nanoseconds since the Unix epoch
    /// (the wall clock the intervals' `elapsed_ns` count from). `None` in
    /// recordings of format 1 (defaulted, so they still read).
    #[serde(default)]
    pub started_unix_ns: Option<u64>,
}

/// What the report needs of a Go binary besides its symbols.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GoInfo {
    pub build: BuildInfo,
    pub symbols: SymbolsSource,
    pub cgo: bool,
    /// Load address minus link address in the recorded process.
    pub bias: u64,
    /// Goroutines and P handoffs were read (a known Go release).
    pub attribution: bool,
}

impl GoInfo {
    pub fn of(sym: &Symbolizer, attribution: bool) -> Self {
        Self {
            build: sym.build.clone(),
            symbols: sym.symbols,
            cgo: sym.cgo,
            bias: sym.bias(),
            attribution,
        }
    }
}

/// How the session ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct End {
    pub traced_seconds: f64,
    pub target: TargetInfo,
    /// Threads of the process at the end, read from /proc (`None`: exited).
    pub threads_at_end: Option<u64>,
    /// Events left out past `--max-size`.
    pub events_not_recorded: u64,
    /// Of them, syscalls streamed one by one (before their syscall had an
    /// in-kernel histogram): missing from the syscall tables.
    #[serde(default)]
    pub calls_not_recorded: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot create the recording {}: {source}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the recording {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("encoding a frame of the recording: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
}

/// What a recorder wrote, for its closing note.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordStats {
    pub bytes: u64,
    pub events: u64,
    pub event_bytes: u64,
    pub intervals: u64,
    pub kernel_bytes: u64,
    pub symbol_bytes: u64,
    pub events_not_recorded: u64,
    /// Of them, calls streamed one by one: missing from the tables.
    pub calls_not_recorded: u64,
}

impl RecordStats {
    /// One line: sizes and bytes per event and per interval.
    pub fn note(&self, path: &Path) -> String {
        let per = |bytes: u64, n: u64| bytes.checked_div(n).unwrap_or(0);
        let mut note = format!(
            "recorded {} events and {} intervals to {} ({} bytes: {} per event, {} per \
             interval of kernel aggregates, {} of symbols)",
            self.events,
            self.intervals,
            path.display(),
            self.bytes,
            per(self.event_bytes, self.events),
            per(self.kernel_bytes, self.intervals),
            self.symbol_bytes,
        );
        if self.events_not_recorded > 0 {
            note.push_str(&format!(
                "; {} events past --max-size were not recorded",
                self.events_not_recorded
            ));
        }
        if self.calls_not_recorded > 0 {
            note.push_str(&format!(
                " ({} of them syscalls streamed before their in-kernel histogram: missing \
                 from the tables)",
                self.calls_not_recorded
            ));
        }
        note
    }
}

/// What a kernel reading is of: a reading replaces the one before of the
/// same key (see `Model::feed`); `None` for the ring buffer's events.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum KernelKey {
    Syscall {
        sysno: u32,
        idle: bool,
    },
    Vdso {
        sysno: u32,
        clock: i32,
        frames: Vec<u64>,
    },
    Counters,
}

fn kernel_key(input: &Input) -> Option<KernelKey> {
    match input {
        Input::KernelCounters(_) => Some(KernelKey::Counters),
        Input::Event(Event::SyscallAggregate { sysno, idle, .. }) => Some(KernelKey::Syscall {
            sysno: *sysno,
            idle: *idle,
        }),
        Input::Event(Event::VdsoCalls {
            sysno,
            clock,
            frames,
            ..
        }) => Some(KernelKey::Vdso {
            sysno: *sysno,
            clock: *clock,
            frames: frames.clone(),
        }),
        _ => None,
    }
}

/// The kernel's readings: each interval writes only those that changed
/// since written (the rest would replace a value with itself).
#[derive(Debug, Default)]
struct KernelReadings {
    latest: BTreeMap<KernelKey, Input>,
    written: BTreeMap<KernelKey, Input>,
}

impl KernelReadings {
    fn read(&mut self, key: KernelKey, input: Input) {
        self.latest.insert(key, input);
    }

    /// The readings not written yet, now counted as written.
    fn unwritten(&mut self) -> Vec<Input> {
        let mut out = Vec::new();
        for (key, input) in &self.latest {
            if self.written.get(key) != Some(input) {
                self.written.insert(key.clone(), input.clone());
                out.push(input.clone());
            }
        }
        out
    }
}

/// Writes a recording as the session goes.
pub struct Recorder {
    path: PathBuf,
    out: BufWriter<File>,
    max_bytes: Option<u64>,
    symbols: SymbolWriter,
    /// The encoded facts last written (written again only when changed).
    last_facts: Vec<u8>,
    /// `--max-size` was reached: no more events are written, and the
    /// kernel's readings only at the end.
    limit_reached: bool,
    kernel: KernelReadings,
    stats: RecordStats,
}

impl Recorder {
    /// Creates (or truncates) `path` and writes the header and the start.
    pub fn create(path: &Path, max_bytes: Option<u64>, start: Start) -> Result<Self, RecordError> {
        let file = File::create(path).map_err(|source| RecordError::Create {
            path: path.to_owned(),
            source,
        })?;
        let mut recorder = Self {
            path: path.to_owned(),
            out: BufWriter::new(file),
            max_bytes,
            symbols: SymbolWriter::default(),
            last_facts: Vec::new(),
            limit_reached: false,
            kernel: KernelReadings::default(),
            stats: RecordStats::default(),
        };
        recorder.write_bytes(MAGIC)?;
        recorder.write_bytes(&FORMAT_VERSION.to_le_bytes())?;
        recorder.frame(&Frame::Start(Box::new(start)))?;
        recorder.flush()?;
        Ok(recorder)
    }

    /// Records one interval: the inputs the model took since the last one
    /// (`elapsed`: since the traced window began), the symbols their
    /// stacks need, and the facts if they changed; then flushes.
    pub fn interval(
        &mut self,
        elapsed: Duration,
        inputs: Vec<Input>,
        sym: Option<&Symbolizer>,
        facts: &Facts,
    ) -> Result<(), RecordError> {
        let elapsed_ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let mut events = Vec::with_capacity(inputs.len());
        for input in inputs {
            match kernel_key(&input) {
                Some(key) => self.kernel.read(key, input),
                None => events.push(input),
            }
        }
        let kept = if self.limit_reached {
            0
        } else {
            self.events_within_limit(&events)?
        };
        if kept < events.len() {
            let left_out = &events[kept..];
            self.stats.events_not_recorded += left_out.len() as u64;
            // The calls streamed one by one (a syscall's first calls, before
            // it has an in-kernel histogram) are part of the syscall
            // tables: those left out are said apart.
            self.stats.calls_not_recorded +=
                left_out.iter().filter(|e| is_streamed_call(e)).count() as u64;
            events.truncate(kept);
            self.limit_reached = true;
        }
        if let Some(sym) = sym {
            let chunk = self.symbols.chunk(sym, &events);
            if !chunk.pcs.is_empty() {
                self.stats.symbol_bytes += self.frame(&Frame::Symbols(chunk))?;
            }
        }
        if !events.is_empty() {
            self.stats.events += events.len() as u64;
            self.stats.event_bytes += self.frame(&Frame::Events(events))?;
        }
        match self.max_bytes {
            Some(max_bytes) if self.limit_reached => {
                self.frame(&Frame::SizeLimit {
                    elapsed_ns,
                    max_bytes,
                })?;
            }
            // Written even when nothing changed: it dates the interval.
            _ => self.kernel_frame(elapsed_ns)?,
        }
        self.facts(facts)?;
        self.flush()
    }

    /// How many of `events`, from the first, fit within `--max-size` (all
    /// without one). Sized one by one: a frame is the sum of its events
    /// and a few bytes.
    fn events_within_limit(&self, events: &[Input]) -> Result<usize, RecordError> {
        /// A frame's length, its variant and its array's length.
        const FRAME_OVERHEAD: u64 = 16;
        let Some(max) = self.max_bytes else {
            return Ok(events.len());
        };
        let mut used = self.stats.bytes + FRAME_OVERHEAD;
        for (i, event) in events.iter().enumerate() {
            used += rmp_serde::to_vec(event)?.len() as u64;
            if used > max {
                return Ok(i);
            }
        }
        Ok(events.len())
    }

    /// Records the last inputs and facts and how the session ended.
    pub fn finish(
        mut self,
        inputs: Vec<Input>,
        sym: Option<&Symbolizer>,
        facts: &Facts,
        mut end: End,
    ) -> Result<RecordStats, RecordError> {
        let elapsed = Duration::from_secs_f64(end.traced_seconds.max(0.0));
        self.interval(elapsed, inputs, sym, facts)?;
        // Past the limit, the kernel's last readings are still written (a
        // few KiB past the limit): the tables hold every call but the
        // streamed ones left out.
        if self.limit_reached {
            self.kernel_frame(elapsed.as_nanos() as u64)?;
            self.facts(facts)?;
        }
        end.events_not_recorded = self.stats.events_not_recorded;
        end.calls_not_recorded = self.stats.calls_not_recorded;
        self.frame(&Frame::End(end))?;
        self.flush()?;
        self.out
            .get_ref()
            .sync_all()
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })?;
        Ok(self.stats)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the kernel's readings that changed since written.
    fn kernel_frame(&mut self, elapsed_ns: u64) -> Result<(), RecordError> {
        let inputs = self.kernel.unwritten();
        self.stats.intervals += 1;
        self.stats.kernel_bytes += self.frame(&Frame::Kernel { elapsed_ns, inputs })?;
        Ok(())
    }

    /// Writes the facts when they differ from the last written.
    fn facts(&mut self, facts: &Facts) -> Result<(), RecordError> {
        let encoded = rmp_serde::to_vec(facts)?;
        if encoded != self.last_facts {
            // Descriptor kinds (`FdTarget`) are adjacently tagged: a unit
            // variant encodes as a one-element array the reader refuses,
            // as a map it reads back. Field names only then (they cost
            // bytes); the reader takes either form, the format is the same.
            let frame = Frame::Facts(Box::new(facts.clone()));
            let has_fd_kinds = facts
                .samples
                .iter()
                .any(|s| s.holders.iter().any(|h| h.fd.is_some()));
            let payload = if has_fd_kinds {
                rmp_serde::to_vec_named(&frame)?
            } else {
                rmp_serde::to_vec(&frame)?
            };
            self.write_frame_bytes(&payload)?;
            self.last_facts = encoded;
        }
        Ok(())
    }

    /// Writes one frame; its size on disk.
    fn frame(&mut self, frame: &Frame) -> Result<u64, RecordError> {
        let payload = rmp_serde::to_vec(frame)?;
        self.write_frame_bytes(&payload)
    }

    fn write_frame_bytes(&mut self, payload: &[u8]) -> Result<u64, RecordError> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|&n| n <= MAX_FRAME_BYTES)
            .ok_or_else(|| RecordError::Write {
                path: self.path.clone(),
                source: io::Error::other(format!(
                    "a frame of {} bytes is larger than a reader accepts ({MAX_FRAME_BYTES})",
                    payload.len()
                )),
            })?;
        self.write_bytes(&len.to_le_bytes())?;
        self.write_bytes(payload)?;
        Ok(4 + u64::from(len))
    }

    fn write_bytes(&mut self, bytes: &[u8]) -> Result<(), RecordError> {
        self.stats.bytes += bytes.len() as u64;
        self.out
            .write_all(bytes)
            .map_err(|source| RecordError::Write {
                path: self.path.clone(),
                source,
            })
    }

    fn flush(&mut self) -> Result<(), RecordError> {
        self.out.flush().map_err(|source| RecordError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the recording {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is not a tracer recording (it does not begin with the recording magic): give a \
         file written by `tracer record -o FILE` or `--record FILE`",
        path.display()
    )]
    BadMagic { path: PathBuf },
    #[error(
        "{} was written by recording format {found}; this tracer reads formats \
         {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}: report it with a tracer that reads \
         format {found}",
        path.display()
    )]
    Version { path: PathBuf, found: u32 },
    #[error(
        "{} ends after {bytes} bytes, before its header and start were written: the recorder \
         stopped before tracing began, nothing was recorded",
        path.display()
    )]
    NoStart { path: PathBuf, bytes: u64 },
    #[error(
        "{}: its first frame is not the start of a recording ({why}): the file is corrupt",
        path.display()
    )]
    BadStart { path: PathBuf, why: String },
}

/// Why a reader stopped before a recording's end frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CutShort {
    /// The file ends inside a frame or before the end frame: the recorder
    /// was killed, or stopped, mid-trace.
    Truncated { at_byte: u64 },
    /// A complete frame could not be decoded.
    Corrupt { at_byte: u64, why: String },
}

impl std::fmt::Display for CutShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { at_byte } => write!(
                f,
                "the recording was cut short at byte {at_byte} (no end frame: the recorder was \
                 killed or stopped mid-trace)"
            ),
            Self::Corrupt { at_byte, why } => write!(
                f,
                "the recording is corrupt from byte {at_byte} ({why}); what comes before it is \
                 reported"
            ),
        }
    }
}

/// A recording being read: its start at once, then its inputs in order
/// ([`Self::next_input`]); what comes with them (symbols, facts, the end)
/// is kept as it is met.
pub struct Recording {
    /// The format version it was written in.
    pub version: u32,
    pub start: Start,
    /// The symbols of the stacks met so far.
    pub symbols: SymbolReader,
    /// The last facts met.
    pub facts: Facts,
    pub end: Option<End>,
    /// Why the reading stopped before an end frame.
    pub cut_short: Option<CutShort>,
    /// When `--max-size` was reached: `(seconds into the trace, the limit)`.
    pub size_limit: Option<(f64, u64)>,
    /// Seconds into the trace of the last kernel reading met.
    pub last_interval_seconds: f64,
    frames: FrameReader<Box<dyn Read>>,
    pending: std::vec::IntoIter<Input>,
    /// The end of the interval whose kernel readings are pending, given
    /// once they are read.
    pending_interval: Option<u64>,
    done: bool,
    path: PathBuf,
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("end", &self.end)
            .field("cut_short", &self.cut_short)
            .finish_non_exhaustive()
    }
}

impl Recording {
    /// Opens the recording at `path` and reads its header and start: a
    /// wrong magic or version, or no start, is an error.
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let file = File::open(path).map_err(|source| ReadError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_reader(path, Box::new(BufReader::new(file)))
    }

    /// [`Self::open`] from any reader (`path` names it in errors).
    pub fn from_reader(path: &Path, mut input: Box<dyn Read>) -> Result<Self, ReadError> {
        let io_err = |source| ReadError::Io {
            path: path.to_owned(),
            source,
        };
        let mut header = [0u8; HEADER_BYTES as usize];
        let got = read_full(&mut input, &mut header).map_err(io_err)?;
        let magic_len = got.min(MAGIC.len());
        if header[..magic_len] != MAGIC[..magic_len] {
            return Err(ReadError::BadMagic {
                path: path.to_owned(),
            });
        }
        if got < header.len() {
            // A recorder that never got past its header.
            return Err(ReadError::NoStart {
                path: path.to_owned(),
                bytes: got as u64,
            });
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(ReadError::Version {
                path: path.to_owned(),
                found: version,
            });
        }
        let mut frames = FrameReader {
            input,
            offset: HEADER_BYTES,
        };
        let start = match frames.next().map_err(io_err)? {
            Next::Frame(Frame::Start(start)) => *start,
            Next::Frame(other) => {
                return Err(ReadError::BadStart {
                    path: path.to_owned(),
                    why: format!("a {} frame", frame_name(&other)),
                });
            }
            Next::End | Next::Cut(CutShort::Truncated { .. }) => {
                return Err(ReadError::NoStart {
                    path: path.to_owned(),
                    bytes: frames.offset,
                });
            }
            Next::Cut(CutShort::Corrupt { why, .. }) => {
                return Err(ReadError::BadStart {
                    path: path.to_owned(),
                    why,
                });
            }
        };
        Ok(Self {
            version,
            start,
            symbols: SymbolReader::default(),
            facts: Facts::default(),
            end: None,
            cut_short: None,
            size_limit: None,
            last_interval_seconds: 0.0,
            frames,
            pending: Vec::new().into_iter(),
            pending_interval: None,
            done: false,
            path: path.to_owned(),
        })
    }

    /// The next input, in the order the model took them; `None` at the end
    /// frame, or where the recording was cut short ([`Self::cut_short`]).
    /// A read error of the file itself ends it too, said as cut short.
    pub fn next_input(&mut self) -> Option<Input> {
        loop {
            if let Item::Input(input) = self.next_item()? {
                return Some(input);
            }
        }
    }

    /// [`Self::next_input`], with the end of each interval after its
    /// kernel readings: for a timeline of the readings.
    pub fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(input) = self.pending.next() {
                return Some(Item::Input(input));
            }
            if let Some(elapsed_ns) = self.pending_interval.take() {
                return Some(Item::IntervalEnd { elapsed_ns });
            }
            if self.done {
                return None;
            }
            self.read_frame();
        }
    }

    /// The inputs up to and including the next kernel reading, with the
    /// time of that reading: what the model took in one interval (see
    /// [`Interval`]). `None` once all are read. Inputs still pending from
    /// [`Self::next_input`] come first.
    pub fn next_interval(&mut self) -> Option<Interval> {
        let mut inputs = Vec::new();
        while let Some(item) = self.next_item() {
            match item {
                Item::Input(input) => inputs.push(input),
                Item::IntervalEnd { elapsed_ns } => {
                    return Some(Interval {
                        elapsed_ns: Some(elapsed_ns),
                        inputs,
                    });
                }
            }
        }
        (!inputs.is_empty()).then_some(Interval {
            elapsed_ns: None,
            inputs,
        })
    }

    /// Reads one frame into the recording's state.
    fn read_frame(&mut self) {
        let at_byte = self.frames.offset;
        let frame = match self.frames.next() {
            Ok(Next::Frame(f)) => f,
            Ok(Next::End) => {
                self.done = true;
                if self.end.is_none() {
                    self.cut_short = Some(CutShort::Truncated { at_byte });
                }
                return;
            }
            Ok(Next::Cut(why)) => {
                self.done = true;
                self.cut_short = Some(why);
                return;
            }
            Err(e) => {
                self.done = true;
                self.cut_short = Some(CutShort::Corrupt {
                    at_byte,
                    why: format!("reading {}: {e}", self.path.display()),
                });
                return;
            }
        };
        match frame {
            Frame::Start(_) => {
                self.done = true;
                self.cut_short = Some(CutShort::Corrupt {
                    at_byte,
                    why: "a second start frame".into(),
                });
            }
            Frame::Symbols(chunk) => {
                if let Err(e) = self.symbols.add(chunk) {
                    self.done = true;
                    self.cut_short = Some(CutShort::Corrupt {
                        at_byte,
                        why: e.to_string(),
                    });
                }
            }
            Frame::Events(inputs) => self.pending = inputs.into_iter(),
            Frame::Kernel { elapsed_ns, inputs } => {
                self.pending = inputs.into_iter();
                self.pending_interval = Some(elapsed_ns);
                self.last_interval_seconds = elapsed_ns as f64 / 1e9;
            }
            Frame::Facts(facts) => self.facts = *facts,
            Frame::SizeLimit {
                elapsed_ns,
                max_bytes,
            } => self.size_limit = Some((elapsed_ns as f64 / 1e9, max_bytes)),
            Frame::End(end) => {
                self.end = Some(end);
                self.done = true;
            }
        }
    }

    /// The symbolizer of the recorded Go binary, with the symbols met so
    /// far (moved out: call it once the inputs are read).
    pub fn symbolizer(&mut self) -> Option<(Symbolizer, bool)> {
        let go = self.start.go.clone()?;
        let table = std::mem::take(&mut self.symbols.table);
        let sym = Symbolizer::recorded(go.build, go.symbols, go.cgo, go.bias, table);
        Some((sym, go.attribution))
    }

    /// The recording kernel's `file_operations` map.
    pub fn fops(&self) -> Option<FopsMap> {
        let found = self.start.kernel_fops.as_ref()?;
        Some(FopsMap::from_found(
            found.iter().map(|(s, a)| (s.as_str(), *a)),
        ))
    }
}

/// What a recording yields, in order: see [`Recording::next_item`].
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Input(Input),
    /// An interval ended `elapsed_ns` into the traced window; the kernel's
    /// readings just yielded were taken then.
    IntervalEnd {
        elapsed_ns: u64,
    },
}

/// One interval of a recording ([`Recording::next_interval`]).
#[derive(Debug)]
pub struct Interval {
    /// When the interval's kernel reading was taken, in nanoseconds since
    /// the traced window began; `None` for inputs after the last reading
    /// (a recording cut short).
    pub elapsed_ns: Option<u64>,
    /// The ring buffer's inputs of the interval, then its kernel readings.
    pub inputs: Vec<Input>,
}

/// A call streamed one by one: part of the syscall tables, not an event
/// the report lists.
fn is_streamed_call(input: &Input) -> bool {
    matches!(input, Input::Event(Event::Syscall { .. }))
}

/// Reads the whole recording at `path`, feeding `on_input` every input in
/// order (see [`Recording`]).
pub fn replay(path: &Path, mut on_input: impl FnMut(&Input)) -> Result<Recording, ReadError> {
    let mut recording = Recording::open(path)?;
    while let Some(input) = recording.next_input() {
        on_input(&input);
    }
    Ok(recording)
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::Start(_) => "start",
        Frame::Symbols(_) => "symbols",
        Frame::Events(_) => "events",
        Frame::Kernel { .. } => "kernel",
        Frame::Facts(_) => "facts",
        Frame::SizeLimit { .. } => "size-limit",
        Frame::End(_) => "end",
    }
}

/// Reads into `buf` until it is full or the input ends; the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

enum Next {
    Frame(Frame),
    /// The input ended cleanly between frames.
    End,
    Cut(CutShort),
}

struct FrameReader<R> {
    input: R,
    /// Bytes read so far.
    offset: u64,
}

impl<R: Read> FrameReader<R> {
    fn next(&mut self) -> io::Result<Next> {
        let at_byte = self.offset;
        let mut len = [0u8; 4];
        match read_full(&mut self.input, &mut len)? {
            0 => return Ok(Next::End),
            4 => {}
            _ => return Ok(Next::Cut(CutShort::Truncated { at_byte })),
        }
        let len = u32::from_le_bytes(len);
        if len > MAX_FRAME_BYTES {
            return Ok(Next::Cut(CutShort::Corrupt {
                at_byte,
                why: format!("a frame of {len} bytes, more than {MAX_FRAME_BYTES}"),
            }));
        }
        // Read as it comes, not allocated up front: a cut length must not
        // cost its size in memory.
        let mut payload = Vec::new();
        (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut payload)?;
        if payload.len() < len as usize {
            return Ok(Next::Cut(CutShort::Truncated { at_byte }));
        }
        self.offset += 4 + u64::from(len);
        Ok(match rmp_serde::from_slice(&payload) {
            Ok(frame) => Next::Frame(frame),
            Err(e) => Next::Cut(CutShort::Corrupt {
                at_byte,
                why: format!("undecodable frame: {e}"),
            }),
        })
    }
}

#[cfg(test)]
mod tests;
