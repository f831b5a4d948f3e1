//! Command-line arguments (clap) and their validation into a [`Config`]:
//! syntax here, meaning in `TryFrom`, so every command gets checked values.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::probes::ProbeSet;

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
        /// The command and its arguments (after `--`).
        #[arg(required = true, value_name = "CMD", allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Attach to a live process (all its threads, including new ones) until
    /// Ctrl-C, SIGTERM, --duration, or the process exits.
    Attach {
        /// The process to trace.
        #[arg(short = 'p', long = "pid")]
        pid: u32,
        #[command(flatten)]
        output: OutputArgs,
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
}

fn parse_ring_kib(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n.is_power_of_two() && (4..=1 << 20).contains(&n) => Ok(n),
        _ => Err(format!(
            "`{s}` is not a ring buffer size: give KiB as a power of two from 4 to 1048576"
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

/// Validated configuration for one run of the tracer.
#[derive(Debug, Clone)]
pub struct Config {
    pub target: TargetSpec,
    pub output: OutputConfig,
    pub duration: Option<Duration>,
    pub slow: Duration,
    pub interval: Option<Duration>,
    pub probes: ProbeSet,
    pub ring_buffer_bytes: u32,
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
    Attach {
        pid: u32,
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
    #[error("--interval {0:?} is too short: use at least {MIN_INTERVAL:?} (e.g. -i 1s)")]
    IntervalTooShort(Duration),
}

/// The shortest `--interval`: each tick reads every per-CPU histogram and
/// /proc; more often than this costs the host more than it shows.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl TryFrom<Cli> for Config {
    type Error = ConfigError;

    fn try_from(cli: Cli) -> Result<Self, ConfigError> {
        let (target, out) = match cli.command {
            Command::Run {
                output,
                mut command,
            } => {
                if command.is_empty() {
                    return Err(ConfigError::NoCommand);
                }
                let program = PathBuf::from(command.remove(0));
                (
                    TargetSpec::Launch {
                        program,
                        args: command,
                    },
                    output,
                )
            }
            Command::Attach { pid, output } => {
                if pid == 0 {
                    return Err(ConfigError::PidZero);
                }
                (TargetSpec::Attach { pid }, output)
            }
            Command::Threads { pid, output } => {
                if pid == 0 {
                    return Err(ConfigError::PidZero);
                }
                (TargetSpec::Threads { pid }, output)
            }
            Command::Top { pid, output } => {
                if pid == 0 {
                    return Err(ConfigError::PidZero);
                }
                (TargetSpec::Top { pid }, output)
            }
            Command::Inspect { binary, pid, json } => {
                let output = OutputArgs {
                    json,
                    output: None,
                    duration: None,
                    slow: Duration::from_millis(1),
                    interval: None,
                    probes: ProbeSet::Full,
                    ring_buffer_kb: 4096,
                };
                (TargetSpec::Inspect { binary, pid }, output)
            }
        };
        if let Some(path) = &out.output {
            check_output(path)?;
        }
        if let Some(i) = out.interval.filter(|&i| i < MIN_INTERVAL) {
            return Err(ConfigError::IntervalTooShort(i));
        }
        Ok(Self {
            target,
            output: OutputConfig {
                json: out.json,
                path: out.output,
            },
            duration: out.duration,
            slow: out.slow,
            interval: out.interval,
            probes: out.probes,
            ring_buffer_bytes: out.ring_buffer_kb * 1024,
        })
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
        assert!(matches!(c.target, TargetSpec::Attach { pid: 42 }));
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
    fn durations() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
