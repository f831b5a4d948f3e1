//! Command-line arguments (clap) and their validation into a [`Config`]:
//! syntax here, meaning in `TryFrom`, so every command gets checked values.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::{
    probes::ProbeSet,
    procinfo::cgroup::{CgroupDir, CgroupError},
    report::flame::FlameView,
    serve::flight::{FlightConfig, Trigger},
};

/// Why is this Go program blocking in syscalls and spawning threads?
/// An eBPF syscall tracer: exact counts and latency percentiles per syscall,
/// thread spawns and exits, for a command you launch or a live process.
#[derive(Debug, Parser)]
#[command(name = "tracer", version, about, max_term_width = 100)]
pub struct Cli {
    /// Say more: -v shows what the kernel programs log on their rare paths
    /// (debug), -vv everything (trace). RUST_LOG overrides it.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Launch a command and trace it from its first instruction after exec.
    /// The tracer exits with the command's exit status.
    #[command(trailing_var_arg = true)]
    Run {
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        record: RecordArgs,
        /// The command and its arguments (after `--`).
        #[arg(required = true, value_name = "CMD", allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Attach to a live process (all its threads, including new ones) until
    /// Ctrl-C, SIGTERM, --duration, or the process exits.
    Attach {
        /// The process to trace (repeatable: the first gets the Go
        /// runtime's attribution, the others a section each; see --comm).
        #[arg(short = 'p', long = "pid", value_name = "PID", required_unless_present_any = ["comms", "cgroups"])]
        pids: Vec<u32>,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        record: RecordArgs,
    },
    /// Trace like `attach` (-p PID) or `run` (-- CMD ARGS...) and write a
    /// recording instead of a report: `tracer report FILE` reads it later,
    /// anywhere (it holds the symbols its stacks need).
    #[command(trailing_var_arg = true)]
    Record {
        /// The recording to write (replaced).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Attach to this live process (repeatable, as for `attach`).
        #[arg(
            short = 'p',
            long = "pid",
            value_name = "PID",
            conflicts_with = "command"
        )]
        pids: Vec<u32>,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        trace: TraceArgs,
        /// Stop recording events where the file would pass SIZE (bytes, or
        /// with K, M or G: 500M); the kernel's last reading (the syscall
        /// tables), the facts and the end are still written after them, a
        /// few KiB.
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        max_size: Option<u64>,
        /// The command to launch and its arguments (after `--`).
        #[arg(value_name = "CMD", allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Report a recording: the same report as the live run that made it
    /// (text or json), its events one JSON object per line (events), a
    /// flame graph of its blocking time or thread spawns (folded stacks,
    /// or an SVG), a timeline for Perfetto (perfetto), or its latency
    /// histograms per interval, in nanoseconds, as an HdrHistogram interval
    /// log (hdrlog).
    Report {
        /// The recording (written by `record` or `--record`).
        #[arg(value_name = "FILE")]
        recording: PathBuf,
        #[arg(long, value_enum, default_value = "text")]
        format: ReportFormat,
        /// With --format folded or flamegraph: what the widths weigh
        /// [default: blocking].
        #[arg(long, value_enum)]
        view: Option<FlameView>,
        /// Write to OUT (replaced atomically) instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Compare two recordings (before and after a fix, host A and host B):
    /// per syscall the rate, p50/p99/p99.9 and errors; thread spawns by
    /// cause; P handoffs; verdicts that appeared or went away. Changes
    /// beyond the noise of what was counted are marked.
    Diff {
        #[arg(value_name = "BEFORE")]
        before: PathBuf,
        #[arg(value_name = "AFTER")]
        after: PathBuf,
        /// The comparison as JSON (schema gotracer.diff/1).
        #[arg(long)]
        json: bool,
        /// Write to OUT (replaced atomically) instead of stdout.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Diagnose a thread explosion on a live process: every interval (1s),
    /// its thread count, spawns by cause, what holds the threads now (by
    /// call site), GOMAXPROCS and the limits ahead, with a warning before
    /// one is reached; then the full report with verdicts.
    Threads {
        /// The process to watch.
        #[arg(short = 'p', long = "pid")]
        pid: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// A live, top-like terminal view of a process: syscalls of the last
    /// interval, what holds its threads, spawns and limits. q or Ctrl-C quits.
    Top {
        /// The process to watch.
        #[arg(short = 'p', long = "pid")]
        pid: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// The node agent: trace the selected processes until SIGINT/SIGTERM
    /// and expose their figures as Prometheus metrics at
    /// http://ADDR/metrics. Each target gets its own programs, reached
    /// through one dispatcher (a syscall of any other process costs one
    /// lookup, whatever the number of targets). --comm,
    /// --cgroup and --all-go scan /proc every 200ms, so a process that starts later is
    /// found within 200ms; with its probes attached, its series are in
    /// /metrics about 1s after it starts (0.6-1.0s measured).
    /// A target that exits keeps its last figures exposed (with
    /// gotracer_target_up 0) for 5 minutes.
    Serve {
        /// Where to serve the metrics: IP:PORT (e.g. 127.0.0.1:9464, or
        /// [::]:9464 for every address; port 0 picks a free one, printed on
        /// stderr).
        #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
        listen: std::net::SocketAddr,
        /// Trace this process (repeatable).
        #[arg(short = 'p', long = "pid", value_name = "PID")]
        pids: Vec<u32>,
        /// Trace every process whose comm (the kernel's 15-byte name, as in
        /// `ps -o comm`) is NAME, including ones that start later
        /// (repeatable).
        #[arg(long = "comm", value_name = "NAME")]
        comms: Vec<String>,
        /// Trace every process in this cgroup (cgroup v2) or any cgroup below
        /// it, including ones that start in it or are moved into it later
        /// (repeatable). PATH is either its directory under the cgroup2
        /// mount (/sys/fs/cgroup/system.slice/x.service) or its path as the
        /// `0::` line of /proc/PID/cgroup shows it (/system.slice/x.service).
        #[arg(long = "cgroup", value_name = "PATH")]
        cgroups: Vec<PathBuf>,
        /// Trace every Go program on the host (its executable carries Go
        /// build info), including ones that start later.
        #[arg(long)]
        all_go: bool,
        /// Size of each target's ring buffer in KiB (see `tracer attach
        /// --help`).
        #[arg(long, value_name = "KIB", default_value = "4096", value_parser = parse_ring_kib)]
        ring_buffer_kb: u32,
        /// Keep each target's last --flight-window of events in memory and,
        /// when a --trigger fires, write a recording of them (and of the
        /// --flight-after seconds that follow) to DIR, as
        /// COMM-PID-UTCTIME-TRIGGER.rec (read it with `tracer report`).
        /// DIR must exist and be writable.
        #[arg(long, value_name = "DIR")]
        flight_recorder: Option<PathBuf>,
        /// How far back the flight recorder reaches.
        #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, requires = "flight_recorder")]
        flight_window: Duration,
        /// How long a dump goes on recording after its trigger.
        #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration, requires = "flight_recorder")]
        flight_after: Duration,
        /// The least time between two dumps of one target.
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration, requires = "flight_recorder")]
        flight_cooldown: Duration,
        /// The most memory each target's window may hold; the oldest
        /// seconds go first (counted in gotracer_flight_dropped_*).
        #[arg(long, value_name = "SIZE", default_value = "64M", value_parser = parse_size, requires = "flight_recorder")]
        flight_max_memory: u64,
        /// The most dumps of all targets together in an hour.
        #[arg(long, value_name = "N", default_value = "10", value_parser = clap::value_parser!(u32).range(1..), requires = "flight_recorder")]
        flight_max_dumps: u32,
        /// What starts a dump (repeatable; given, it replaces the
        /// defaults threads=+32/5s and lockosthread-leaks=1/10s):
        /// threads=+N/DURATION (the live threads rose by N within DURATION,
        /// to above GOMAXPROCS + N), lockosthread-leaks=N/DURATION (N
        /// goroutines exited locked to their thread within DURATION),
        /// p99:SYSCALL=DURATION (the syscall's p99 over the last second is
        /// above DURATION).
        #[arg(long = "trigger", value_name = "TRIGGER", requires = "flight_recorder")]
        triggers: Vec<crate::serve::flight::Trigger>,
    },
    /// Read a Go binary (or a running process's) without running it: Go
    /// version, module, cgo, symbol source, runtime function addresses.
    Inspect {
        /// The binary to read.
        #[arg(required_unless_present = "pid", conflicts_with = "pid")]
        binary: Option<PathBuf>,
        /// Read the executable of this running process instead.
        #[arg(short = 'p', long = "pid")]
        pid: Option<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Write the report as JSON (schema gotracer.report/2).
    #[arg(long)]
    pub json: bool,
    /// Write the report to FILE (replaced atomically) instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub trace: TraceArgs,
}

/// A recording written beside the report (`run`, `attach`).
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Also write a recording to FILE (see `tracer record`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// With --record: stop recording events where the file would pass SIZE
    /// (see `tracer record --help`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "record")]
    pub max_size: Option<u64>,
}

/// What `tracer report` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// The report as text, as the live run printed it.
    Text,
    /// The report as JSON (schema gotracer.report/2).
    Json,
    /// The recorded events, one JSON object per line (JSON Lines).
    Events,
    /// Folded stacks, one `outermost;...;leaf WEIGHT` line per stack (for
    /// inferno-flamegraph or flamegraph.pl); the weight is nanoseconds or
    /// threads (see --view).
    Folded,
    /// The folded stacks drawn as an SVG flame graph.
    Flamegraph,
    /// A timeline for Perfetto (ui.perfetto.dev) or chrome://tracing:
    /// Chrome's trace-event JSON, a track per thread, a slice per slow
    /// call, the runtime's events as instants, thread and syscall-rate
    /// counters.
    Perfetto,
    /// The per-syscall latency histograms of each recorded interval as an
    /// HdrHistogram interval log (values in nanoseconds; Tag=NAME per
    /// syscall, Tag=idle.NAME for the Go runtime's idle waits).
    Hdrlog,
}

impl ReportFormat {
    /// Whether this format draws stacks (and `--view` chooses which).
    pub fn is_flame(self) -> bool {
        matches!(self, Self::Folded | Self::Flamegraph)
    }
}

/// How to trace: the options `run`, `attach`, `threads`, `top` and
/// `record` share.
#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Stop after this long (e.g. 500ms, 10s, 2m).
    #[arg(short = 'd', long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// List calls at least this long by call site, with goroutine and stack
    /// (Go targets; calls that lost their P are always listed).
    #[arg(long, value_parser = parse_duration, default_value = "1ms")]
    pub slow: Duration,
    /// Also print a compact summary every INTERVAL while tracing (calls, p99
    /// per syscall, threads, handoffs for that interval), e.g. 1s.
    #[arg(short = 'i', long, value_parser = parse_duration, value_name = "INTERVAL")]
    pub interval: Option<Duration>,
    /// Which kernel programs to attach (floor: overhead baseline for benchmarks).
    #[arg(long, value_enum, default_value = "full", hide = true)]
    pub probes: ProbeSet,
    /// Size of the kernel-to-tracer ring buffer in KiB (a power of two,
    /// 4 to 1048576). Records that find it full are counted by kind in the
    /// report's events; the syscall tables do not depend on it.
    #[arg(long, value_name = "KIB", default_value = "4096", value_parser = parse_ring_kib)]
    pub ring_buffer_kb: u32,
    /// Also trace the child processes the target forks, and theirs, from
    /// their first syscall (run, attach, record): a section per process and
    /// program in the report (their syscalls, threads and exit; not their
    /// Go runtime).
    #[arg(short = 'f', long)]
    pub follow_forks: bool,
}

/// Targets beside the first `-p` (`attach`, `record`).
#[derive(Debug, Args, Default)]
pub struct SelectArgs {
    /// Also trace every process whose comm (the kernel's 15-byte name, as
    /// in `ps -o comm`) is NAME: those running at the start and those that
    /// take the name later (an exec, or a fork of a process so named), from
    /// their first syscall; the kernel adds them itself (repeatable, up to
    /// 8). Without -p, the first such process (a Go program first) gets the
    /// Go attribution.
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,
    /// Also trace every process in the cgroup (v2) PATH or below it, from
    /// its first syscall there: a container's or a service's cgroup, as
    /// /sys/fs/cgroup/system.slice/foo.service or as /proc/PID/cgroup
    /// names it (/system.slice/foo.service). The kernel filters by cgroup
    /// id (repeatable, up to 8).
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<PathBuf>,
}

fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        format!(
            "`{s}` is not an address to listen on: give IP:PORT, e.g. 127.0.0.1:9464, \
             0.0.0.0:9464 or [::1]:9464"
        )
    })
}

fn parse_ring_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && (4..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a ring buffer size: give KiB as a power of two from 4 to 1048576"
        )),
    }
}

/// Bytes, or with a K, M or G suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => {
            return Err(format!(
                "`{s}` is not a size: give bytes or K, M or G (e.g. 500M)"
            ));
        }
    };
    match digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
    {
        Some(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{s}` is not a positive size: give bytes or K, M or G (e.g. 500M)"
        )),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs > 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("`{s}` is not a positive duration"));
    }
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("`{s}` is not a positive duration")),
        Err(e) => Err(format!(
            "`{s}` is not a duration like 500ms, 10s or 2m ({e})"
        )),
    }
}

/// Where and how to write the report.
#[derive(Debug, Clone)]
pub struct OutputConfig {
    pub json: bool,
    pub path: Option<PathBuf>,
}

/// Where to write a recording.
#[derive(Debug, Clone)]
pub struct RecordingConfig {
    pub path: PathBuf,
    /// `--max-size`.
    pub max_bytes: Option<u64>,
}

/// Validated configuration for one run of the tracer.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: TargetSpec,
    pub output: OutputConfig,
    /// Whether a report is written (`record` writes only the recording).
    pub print_report: bool,
    pub recording: Option<RecordingConfig>,
    pub duration: Option<Duration>,
    pub slow: Duration,
    pub interval: Option<Duration>,
    pub probes: ProbeSet,
    pub ring_buffer_bytes: u32,
    /// `-f`: child processes are followed.
    pub follow_forks: bool,
    /// Targets beside the first (`attach`, `record`).
    pub select: Select,
}

/// The targets beside the first: more `-p`, `--comm`, `--cgroup`.
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// Given with `-p` after the first.
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    pub cgroups: Vec<CgroupDir>,
}

impl Select {
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty() && self.comms.is_empty() && self.cgroups.is_empty()
    }
}

impl Config {
    /// `--slow` in nanoseconds, as the kernel side compares it.
    pub fn slow_ns(&self) -> u64 {
        u64::try_from(self.slow.as_nanos()).unwrap_or(u64::MAX)
    }
}

#[derive(Debug, Clone)]
pub enum TargetSpec {
    Launch {
        program: PathBuf,
        args: Vec<OsString>,
    },
    /// `attach`, or `record -p`: the first target, `None` when only
    /// `--comm`/`--cgroup` name them (chosen when tracing starts).
    Attach {
        pid: Option<u32>,
    },
    Threads {
        pid: u32,
    },
    Top {
        pid: u32,
    },
    Inspect {
        binary: Option<PathBuf>,
        pid: Option<u32>,
    },
    /// `tracer report FILE`.
    Report {
        recording: PathBuf,
        format: ReportFormat,
        /// What a flame graph weighs (folded, flamegraph).
        view: FlameView,
    },
    /// `tracer diff BEFORE AFTER`.
    Diff {
        before: PathBuf,
        after: PathBuf,
    },
    /// `tracer serve`.
    Serve(ServeSpec),
}

/// What `tracer serve` traces and where it serves the metrics.
#[derive(Debug, Clone)]
pub struct ServeSpec {
    pub listen: std::net::SocketAddr,
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    /// `--cgroup`s, checked.
    pub cgroups: Vec<CgroupDir>,
    pub all_go: bool,
    /// `--flight-recorder` and its options.
    pub flight: Option<FlightConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("PID 0 is not a process: give the PID of a running program (-p PID)")]
    PidZero,
    #[error("no command given: use `tracer run -- CMD [ARGS...]`")]
    NoCommand,
    #[error(
        "output file {0} is in a directory that does not exist: create it, or give -o a path in one that does"
    )]
    OutputDir(PathBuf),
    #[error("output {0} is a directory: give a file name, e.g. -o {0}/report.json")]
    OutputIsDir(PathBuf),
    #[error(
        "cannot write the report to {path} ({source}): choose a writable place before tracing \
         starts (nothing has been traced yet)"
    )]
    OutputNotWritable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`tracer record` needs what to trace: -p PID, or -- CMD [ARGS...]")]
    RecordNoTarget,
    #[error(
        "--view chooses what a flame graph weighs: give it with --format folded or \
         --format flamegraph"
    )]
    ViewWithoutFlame,
    #[error("{0} is the recording to read: give another -o for the report")]
    ReportOverRecording(PathBuf),
    #[error(
        "{0} is given for both the report (-o) and the recording (--record): give each its own file"
    )]
    RecordingIsReport(PathBuf),
    #[error(
        "`tracer serve` needs what to trace: -p PID, --comm NAME, --cgroup PATH or --all-go \
         (each may be repeated or combined)"
    )]
    ServeNoTarget,
    #[error(
        "--comm `{0}` can never match: the kernel keeps the first 15 bytes of a comm; give \
         --comm `{1}`"
    )]
    CommTooLong(String, String),
    #[error("--comm needs a name: give the process name as `ps -o comm` shows it")]
    CommEmpty,
    #[error(
        "at most {} --comm names and {} --cgroup paths: trace the rest with another tracer \
         (or `tracer serve`)",
        tracer_common::MAX_SELECTORS,
        tracer_common::MAX_SELECTORS
    )]
    TooManySelectors,
    #[error(
        "-p, --comm and --cgroup select live processes: give them without a command, or launch \
         the command alone (`tracer record -o FILE -- CMD`)"
    )]
    SelectWithCommand,
    // The cgroup's error is in the message, not a source (printed once).
    #[error("--cgroup {}: {error}", .path.display())]
    Cgroup { path: PathBuf, error: CgroupError },
    #[error("--interval {0:?} is too short: use at least {MIN_INTERVAL:?} (e.g. -i 1s)")]
    IntervalTooShort(Duration),
    #[error(
        "-f/--follow-forks is for `run`, `attach` and `record`: `threads` and `top` watch one \
         process; leave -f out"
    )]
    FollowNotHere,
}

/// The longest comm the kernel keeps (TASK_COMM_LEN less its NUL).
const COMM_MAX: usize = 15;

/// The shortest `--interval`: each tick reads every per-CPU histogram and
/// /proc; more often than this costs the host more than it shows.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl TryFrom<Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: Cli) -> Result<Self, ConfigError> {
        let mut print_report = true;
        let mut recording = None;
        let mut select = Select::default();
        let (target, out) = match cli.command {
            Command::Run {
                output,
                record,
                command,
            } => {
                recording = record.into_config();
                (launch(command)?, output)
            }
            Command::Attach {
                pids,
                select: sel,
                output,
                record,
            } => {
                recording = record.into_config();
                let (pid, s) = selection(pids, sel)?;
                select = s;
                (TargetSpec::Attach { pid }, output)
            }
            Command::Record {
                output,
                pids,
                select: sel,
                trace,
                max_size,
                command,
            } => {
                print_report = false;
                recording = Some(RecordingConfig {
                    path: output,
                    max_bytes: max_size,
                });
                let live = !pids.is_empty() || !sel.comms.is_empty() || !sel.cgroups.is_empty();
                let target = if live {
                    if !command.is_empty() {
                        return Err(ConfigError::SelectWithCommand);
                    }
                    let (pid, s) = selection(pids, sel)?;
                    select = s;
                    TargetSpec::Attach { pid }
                } else if command.is_empty() {
                    return Err(ConfigError::RecordNoTarget);
                } else {
                    launch(command)?
                };
                let output = OutputArgs {
                    json: false,
                    output: None,
                    trace,
                };
                (target, output)
            }
            Command::Report {
                recording: file,
                format,
                view,
                output,
            } => {
                if output.as_ref().is_some_and(|o| same_file(o, &file)) {
                    return Err(ConfigError::ReportOverRecording(file));
                }
                if view.is_some() && !format.is_flame() {
                    return Err(ConfigError::ViewWithoutFlame);
                }
                let output = OutputArgs {
                    json: format == ReportFormat::Json,
                    output,
                    trace: TraceArgs::default(),
                };
                let target = TargetSpec::Report {
                    recording: file,
                    format,
                    view: view.unwrap_or_default(),
                };
                (target, output)
            }
            Command::Diff {
                before,
                after,
                json,
                output,
            } => {
                for recording in [&before, &after] {
                    if output.as_ref().is_some_and(|o| same_file(o, recording)) {
                        return Err(ConfigError::ReportOverRecording(recording.clone()));
                    }
                }
                let output = OutputArgs {
                    json,
                    output,
                    trace: TraceArgs::default(),
                };
                (TargetSpec::Diff { before, after }, output)
            }
            Command::Threads { pid, output } => {
                if pid == 0 {
                    return Err(ConfigError::PidZero);
                }
                if output.trace.follow_forks {
                    return Err(ConfigError::FollowNotHere);
                }
                (TargetSpec::Threads { pid }, output)
            }
            Command::Top { pid, output } => {
                if pid == 0 {
                    return Err(ConfigError::PidZero);
                }
                if output.trace.follow_forks {
                    return Err(ConfigError::FollowNotHere);
                }
                (TargetSpec::Top { pid }, output)
            }
            Command::Serve {
                listen,
                pids,
                comms,
                cgroups,
                all_go,
                ring_buffer_kb,
                flight_recorder,
                flight_window,
                flight_after,
                flight_cooldown,
                flight_max_memory,
                flight_max_dumps,
                triggers,
            } => {
                if pids.is_empty() && comms.is_empty() && cgroups.is_empty() && !all_go {
                    return Err(ConfigError::ServeNoTarget);
                }
                if pids.contains(&0) {
                    return Err(ConfigError::PidZero);
                }
                for c in &comms {
                    check_comm(c)?;
                }
                let cgroups = cgroups
                    .into_iter()
                    .map(|path| {
                        CgroupDir::open(&path).map_err(|error| ConfigError::Cgroup { path, error })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let output = OutputArgs {
                    json: false,
                    output: None,
                    trace: TraceArgs {
                        ring_buffer_kb,
                        ..TraceArgs::default()
                    },
                };
                let flight = flight_recorder.map(|dir| FlightConfig {
                    dir,
                    window: flight_window,
                    after: flight_after,
                    cooldown: flight_cooldown,
                    ring_bytes: flight_max_memory,
                    max_dumps: flight_max_dumps,
                    triggers: if triggers.is_empty() {
                        Trigger::defaults()
                    } else {
                        triggers
                    },
                });
                let spec = ServeSpec {
                    listen,
                    pids,
                    comms,
                    cgroups,
                    all_go,
                    flight,
                };
                (TargetSpec::Serve(spec), output)
            }
            Command::Inspect { binary, pid, json } => {
                let output = OutputArgs {
                    json,
                    output: None,
                    trace: TraceArgs::default(),
                };
                (TargetSpec::Inspect { binary, pid }, output)
            }
        };
        if let Some(path) = &out.output {
            check_output(path)?;
        }
        if let Some(r) = &recording {
            check_output(&r.path)?;
            if out
                .output
                .as_ref()
                .is_some_and(|o| o == &r.path || same_file(o, &r.path))
            {
                return Err(ConfigError::RecordingIsReport(r.path.clone()));
            }
        }
        let trace = out.trace;
        if let Some(i) = trace.interval.filter(|&i| i < MIN_INTERVAL) {
            return Err(ConfigError::IntervalTooShort(i));
        }
        Ok(Self {
            target,
            output: OutputConfig {
                json: out.json,
                path: out.output,
            },
            print_report,
            recording,
            duration: trace.duration,
            slow: trace.slow,
            interval: trace.interval,
            probes: trace.probes,
            ring_buffer_bytes: trace.ring_buffer_kb * 1024,
            follow_forks: trace.follow_forks,
            select,
        })
    }
}

/// The defaults of the trace options (commands that trace nothing).
impl Default for TraceArgs {
    fn default() -> Self {
        Self {
            duration: None,
            slow: Duration::from_millis(1),
            interval: None,
            probes: ProbeSet::Full,
            ring_buffer_kb: 4096,
            follow_forks: false,
        }
    }
}

impl RecordArgs {
    fn into_config(self) -> Option<RecordingConfig> {
        self.record.map(|path| RecordingConfig {
            path,
            max_bytes: self.max_size,
        })
    }
}

/// A `--comm` name that can match a comm.
fn check_comm(c: &str) -> Result<(), ConfigError> {
    if c.is_empty() {
        return Err(ConfigError::CommEmpty);
    }
    if c.len() > COMM_MAX {
        let mut cut = COMM_MAX;
        while !c.is_char_boundary(cut) {
            cut -= 1;
        }
        return Err(ConfigError::CommTooLong(c.to_owned(), c[..cut].to_owned()));
    }
    Ok(())
}

/// `attach`'s and `record`'s targets: the first `-p` (if any) and the
/// others.
fn selection(mut pids: Vec<u32>, sel: SelectArgs) -> Result<(Option<u32>, Select), ConfigError> {
    if pids.contains(&0) {
        return Err(ConfigError::PidZero);
    }
    for c in &sel.comms {
        check_comm(c)?;
    }
    let most = tracer_common::MAX_SELECTORS as usize;
    if sel.comms.len() > most || sel.cgroups.len() > most {
        return Err(ConfigError::TooManySelectors);
    }
    let cgroups = sel
        .cgroups
        .into_iter()
        .map(|path| CgroupDir::open(&path).map_err(|error| ConfigError::Cgroup { path, error }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    pids.retain(|p| seen.insert(*p));
    let first = (!pids.is_empty()).then(|| pids.remove(0));
    Ok((
        first,
        Select {
            pids,
            comms: sel.comms,
            cgroups,
        },
    ))
}

/// `run`'s and `record`'s command: the program and its arguments.
fn launch(mut command: Vec<OsString>) -> Result<TargetSpec, ConfigError> {
    if command.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    let program = PathBuf::from(command.remove(0));
    Ok(TargetSpec::Launch {
        program,
        args: command,
    })
}

/// Whether two paths name the same existing file.
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Fails now, before any tracing, when the report could not be written
/// at `path` later: a directory, a missing directory, or one the tracer
/// cannot create files in. Devices and FIFOs are written in place.
fn check_output(path: &std::path::Path) -> Result<(), ConfigError> {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_dir() {
            return Err(ConfigError::OutputIsDir(path.to_owned()));
        }
        if !meta.is_file() {
            return Ok(());
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return Err(ConfigError::OutputDir(path.to_owned()));
    }
    // The report is written through a temporary file in the same
    // directory: try creating one now.
    tempfile::NamedTempFile::new_in(dir)
        .map(drop)
        .map_err(|source| ConfigError::OutputNotWritable {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        Config::try_from(cli).map_err(|e| e.to_string())
    }

    #[test]
    fn run_takes_the_rest_as_the_command() {
        let c = parse(&["tracer", "run", "--json", "--", "ls", "-l", "--color"]).unwrap();
        let TargetSpec::Launch { program, args } = c.target else {
            panic!()
        };
        assert_eq!(program, PathBuf::from("ls"));
        assert_eq!(args, vec![OsString::from("-l"), OsString::from("--color")]);
        assert!(c.output.json);
    }

    #[test]
    fn attach_validates() {
        let c = parse(&["tracer", "attach", "-p", "42", "--duration", "1.5s"]).unwrap();
        assert!(matches!(c.target, TargetSpec::Attach { pid: Some(42) }));
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        assert!(
            parse(&["tracer", "attach", "-p", "0"])
                .unwrap_err()
                .contains("PID 0")
        );
        assert!(parse(&["tracer", "attach", "-p", "x"]).is_err());
        assert!(parse(&["tracer", "attach", "-p", "1", "-d", "0s"]).is_err());
        assert!(
            parse(&["tracer", "attach", "-p", "1", "-o", "/no/such/dir/r.json"])
                .unwrap_err()
                .contains("does not exist")
        );
        assert!(
            parse(&["tracer", "attach", "-p", "1", "-o", "/tmp"])
                .unwrap_err()
                .contains("is a directory")
        );
        assert!(
            parse(&["tracer", "attach", "-p", "1", "-i", "1ns"])
                .unwrap_err()
                .contains("too short")
        );
        assert!(parse(&["tracer", "attach", "-p", "1", "-i", "100ms"]).is_ok());
        assert!(parse(&["tracer", "attach", "-p", "1", "-o", "/dev/null"]).is_ok());
    }

    #[test]
    fn attach_and_record_take_several_targets() {
        let c = parse(&["tracer", "attach", "-p", "7", "-p", "9", "-p", "7"]).unwrap();
        assert!(matches!(c.target, TargetSpec::Attach { pid: Some(7) }));
        assert_eq!(c.select.pids, vec![9], "the first, then the others once");
        let c = parse(&["tracer", "attach", "--comm", "etcd", "--comm", "caddy"]).unwrap();
        assert!(matches!(c.target, TargetSpec::Attach { pid: None }));
        assert_eq!(c.select.comms, vec!["etcd", "caddy"]);
        let c = parse(&["tracer", "record", "-o", "/tmp/x.rec", "-p", "3", "-p", "4"]).unwrap();
        assert!(matches!(c.target, TargetSpec::Attach { pid: Some(3) }));
        assert_eq!(c.select.pids, vec![4]);
        // Nothing to trace, or nonsense.
        assert!(parse(&["tracer", "attach"]).is_err());
        assert!(parse(&["tracer", "attach", "-p", "1", "-p", "0"]).is_err());
        let long = parse(&["tracer", "attach", "--comm", "a-very-long-program"]).unwrap_err();
        assert!(long.contains("--comm `a-very-long-pro`"), "{long}");
        let many: Vec<String> = (0..9).map(|i| format!("--comm=p{i}")).collect();
        let mut args = vec!["tracer", "attach"];
        args.extend(many.iter().map(String::as_str));
        assert!(parse(&args).unwrap_err().contains("at most 8"));
        let both = parse(&[
            "tracer",
            "record",
            "-o",
            "/tmp/x.rec",
            "--comm",
            "x",
            "--",
            "ls",
        ]);
        assert!(both.unwrap_err().contains("without a command"));
        let gone = parse(&["tracer", "attach", "--cgroup", "/no/such/cgroup-here"]).unwrap_err();
        assert!(
            gone.contains("--cgroup") && gone.contains("/no/such/cgroup-here"),
            "{gone}"
        );
    }

    #[test]
    fn follow_forks_is_for_the_commands_that_trace() {
        for args in [
            &["tracer", "run", "-f", "--", "sh"][..],
            &["tracer", "attach", "--follow-forks", "-p", "7"],
            &["tracer", "record", "-o", "/tmp/x.rec", "-f", "-p", "7"],
        ] {
            assert!(parse(args).unwrap().follow_forks, "{args:?}");
        }
        assert!(
            !parse(&["tracer", "attach", "-p", "7"])
                .unwrap()
                .follow_forks
        );
        for args in [
            &["tracer", "threads", "-f", "-p", "7"][..],
            &["tracer", "top", "-f", "-p", "7"],
        ] {
            assert!(
                parse(args).unwrap_err().contains("leave -f out"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn record_and_report() {
        let c = parse(&[
            "tracer",
            "record",
            "-o",
            "/tmp/x.rec",
            "-p",
            "7",
            "--max-size",
            "2M",
        ])
        .unwrap();
        assert!(matches!(c.target, TargetSpec::Attach { pid: Some(7) }));
        assert!(!c.print_report);
        let r = c.recording.unwrap();
        assert_eq!(
            (r.path, r.max_bytes),
            (PathBuf::from("/tmp/x.rec"), Some(2 << 20))
        );
        let c = parse(&[
            "tracer",
            "record",
            "-o",
            "/tmp/x.rec",
            "--slow",
            "5ms",
            "--",
            "ls",
            "-l",
        ])
        .unwrap();
        assert!(matches!(c.target, TargetSpec::Launch { .. }));
        assert_eq!(c.slow, Duration::from_millis(5));
        assert!(
            parse(&["tracer", "record", "-o", "/tmp/x.rec"])
                .unwrap_err()
                .contains("-p PID, or -- CMD")
        );
        assert!(parse(&["tracer", "record", "-p", "7"]).is_err());
        let c = parse(&["tracer", "run", "--record", "/tmp/x.rec", "--", "ls"]).unwrap();
        assert!(c.print_report && c.recording.is_some());
        assert!(parse(&["tracer", "attach", "-p", "1", "--max-size", "1M"]).is_err());
        assert!(
            parse(&[
                "tracer",
                "run",
                "-o",
                "/tmp/x.rec",
                "--record",
                "/tmp/x.rec",
                "--",
                "ls"
            ])
            .unwrap_err()
            .contains("both the report (-o) and the recording")
        );
        let c = parse(&["tracer", "report", "/tmp/x.rec", "--format", "json"]).unwrap();
        assert!(c.output.json);
        assert!(matches!(
            c.target,
            TargetSpec::Report {
                format: ReportFormat::Json,
                ..
            }
        ));
        assert!(parse(&["tracer", "report", "/tmp/x.rec", "--format", "svg"]).is_err());
        // Flame graphs: blocking time unless --view says spawns.
        let view = |args: &[&str]| match parse(args).map(|c| c.target) {
            Ok(TargetSpec::Report { format, view, .. }) => Ok((format, view)),
            Ok(other) => panic!("not a report: {other:?}"),
            Err(e) => Err(e),
        };
        let folded = ["tracer", "report", "/tmp/x.rec", "--format", "folded"];
        assert_eq!(
            view(&folded),
            Ok((ReportFormat::Folded, FlameView::Blocking))
        );
        assert_eq!(
            view(&[&folded[..], &["--view", "spawns"]].concat()),
            Ok((ReportFormat::Folded, FlameView::Spawns))
        );
        let svg = ["tracer", "report", "/tmp/x.rec", "--format", "flamegraph"];
        assert_eq!(
            view(&[&svg[..], &["--view", "blocking"]].concat()),
            Ok((ReportFormat::Flamegraph, FlameView::Blocking))
        );
        assert!(view(&[&svg[..], &["--view", "cpu"]].concat()).is_err());
        assert!(
            view(&["tracer", "report", "/tmp/x.rec", "--view", "spawns"])
                .unwrap_err()
                .contains("--format folded")
        );
    }

    #[test]
    fn serve_validates() {
        let c = parse(&[
            "tracer",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "-p",
            "7",
            "-p",
            "8",
            "--comm",
            "w",
        ])
        .unwrap();
        let TargetSpec::Serve(s) = c.target else {
            panic!("not serve: {:?}", c.target)
        };
        assert_eq!(s.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(
            (s.pids, s.comms, s.all_go),
            (vec![7, 8], vec!["w".into()], false)
        );
        assert!(
            parse(&["tracer", "serve", "--listen", "127.0.0.1:9464"])
                .unwrap_err()
                .contains("-p PID, --comm NAME, --cgroup PATH or --all-go")
        );
        assert!(
            parse(&["tracer", "serve", "--listen", "localhost", "--all-go"])
                .unwrap_err()
                .contains("give IP:PORT")
        );
        assert!(
            parse(&["tracer", "serve", "--listen", ":9464", "--all-go"])
                .unwrap_err()
                .contains("give IP:PORT")
        );
        assert!(
            parse(&[
                "tracer",
                "serve",
                "--listen",
                "[::1]:1",
                "--comm",
                "a-name-that-is-too-long"
            ])
            .unwrap_err()
            .contains("give --comm `a-name-that-is-`")
        );
        assert!(parse(&["tracer", "serve", "--listen", "[::1]:1", "-p", "0"]).is_err());
        assert!(s.flight.is_none());
        let flight = |extra: &[&str]| {
            let args = [
                &["tracer", "serve", "--listen", "[::1]:1", "--all-go"],
                extra,
            ]
            .concat();
            parse(&args).map(|c| match c.target {
                TargetSpec::Serve(s) => s.flight,
                t => panic!("not serve: {t:?}"),
            })
        };
        let f = flight(&["--flight-recorder", "/tmp"]).unwrap().unwrap();
        assert_eq!(f.triggers, Trigger::defaults());
        assert_eq!(
            (f.window, f.after, f.cooldown, f.ring_bytes, f.max_dumps),
            (
                Duration::from_secs(30),
                Duration::from_secs(5),
                Duration::from_secs(60),
                64 << 20,
                10
            )
        );
        let f = flight(&[
            "--flight-recorder",
            "/tmp",
            "--trigger",
            "p99:read=50ms",
            "--flight-window",
            "10s",
            "--flight-max-memory",
            "8M",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(f.triggers.len(), 1);
        assert_eq!(f.triggers[0].name(), "p99-read");
        assert_eq!((f.window, f.ring_bytes), (Duration::from_secs(10), 8 << 20));
        assert!(
            flight(&["--flight-recorder", "/tmp", "--trigger", "threads=10"])
                .unwrap_err()
                .contains("threads=+N/DURATION")
        );
        // Its options alone are a mistake, said.
        assert!(
            flight(&["--trigger", "threads=+1/1s"])
                .unwrap_err()
                .contains("--flight-recorder")
        );
        assert!(parse(&["tracer", "serve", "--listen", "[::1]:1", "--all-go"]).is_ok());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("500k"), Ok(500 << 10));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("0").is_err());
        assert!(parse_size("big").is_err());
        assert!(parse_size("3T").is_err());
    }

    /// `--cgroup` is checked before anything starts: a cgroup that does
    /// not exist, a file, and a directory outside the cgroup v2 hierarchy
    /// are refused, each saying what to give instead.
    #[test]
    fn serve_checks_cgroups() {
        use crate::procinfo::cgroup::{CgroupVersion, cgroup_mounts};
        let serve = |cg: &str| parse(&["tracer", "serve", "--listen", "[::1]:1", "--cgroup", cg]);
        let v2 = cgroup_mounts()
            .unwrap()
            .into_iter()
            .find(|m| m.version == CgroupVersion::V2 && m.root == "/");
        let Some(mount) = v2 else {
            let e = serve("/").unwrap_err();
            assert!(e.contains("--cgroup /: this host has no cgroup v2"), "{e}");
            return;
        };
        let e = serve("/gotracer-no-such-cgroup").unwrap_err();
        assert!(
            e.starts_with("--cgroup /gotracer-no-such-cgroup: no cgroup")
                && e.contains(&format!("ls {}", mount.mount_point.display())),
            "{e}"
        );
        let e = serve("/proc").unwrap_err();
        assert!(
            e.contains("/proc is not in the cgroup v2 hierarchy")
                && e.contains("give a directory under"),
            "{e}"
        );
        let file = mount.mount_point.join("cgroup.procs");
        let e = serve(file.to_str().unwrap()).unwrap_err();
        assert!(e.contains("is not a directory"), "{e}");
        // The root, both ways; --cgroup alone is a target.
        for root in ["/", mount.mount_point.to_str().unwrap()] {
            let c = serve(root).unwrap();
            let TargetSpec::Serve(s) = c.target else {
                panic!("not serve: {:?}", c.target)
            };
            assert_eq!(s.cgroups.len(), 1);
            assert_eq!((s.cgroups[0].path(), s.cgroups[0].level()), ("/", 0));
        }
    }

    /// The DaemonSet in deploy/ runs a command this CLI accepts: `serve`
    /// on every Go program. (Its flow-style `args:` list is also JSON.)
    #[test]
    fn the_daemonset_runs_a_valid_serve_command() {
        let manifest = include_str!("../../deploy/kubernetes/gotracer-daemonset.yaml");
        let args = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("args: "))
            .expect("an args: line");
        let args: Vec<String> = serde_json::from_str(args).unwrap();
        let mut argv = vec!["tracer"];
        argv.extend(args.iter().map(String::as_str));
        let c = parse(&argv).unwrap();
        let TargetSpec::Serve(spec) = c.target else {
            panic!("not serve: {:?}", c.target);
        };
        assert!(spec.all_go, "{spec:?}");
    }
}
