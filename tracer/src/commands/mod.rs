//! One module per subcommand. Each wires target, probes, session, analysis
//! and report together and holds no tracing logic of its own.

pub mod attach;
pub mod diff;
pub mod inspect;
mod live_target;
mod recording;
pub mod replay;
pub mod run;
mod select;
pub mod serve;
pub mod threads;
pub mod top;

use std::{
    fs,
    io::{self, BufWriter, Write},
    ops::ControlFlow,
    path::Path,
    time::Duration,
};

use anyhow::Context as _;
use tracer_common::GoOffsets;

use crate::{
    analysis,
    cli::{Config, OutputConfig, TargetSpec},
    commands::recording::LiveRecording,
    facts::{Facts, FactsCollector},
    gobin::{GoBinError, GoBinary, symbolize::Symbolizer},
    goruntime,
    live::interval::IntervalDiff,
    model::Model,
    probes::AttachOptions,
    procinfo::kallsyms::FopsMap,
    report::{GoContext, Report, Sink, TargetInfo, json::JsonSink, text::TextSink},
    session::{Session, SessionError, SignalPolicy, StopReason, Ticker},
};

/// Runs the configured command; returns the process exit code.
pub fn execute(config: Config) -> anyhow::Result<i32> {
    match &config.target {
        TargetSpec::Launch { program, args } => run::execute(&config, program, args),
        TargetSpec::Attach { pid } => attach::execute(&config, *pid),
        TargetSpec::Threads { pid } => threads::execute(&config, *pid),
        TargetSpec::Top { pid } => top::execute(&config, *pid),
        TargetSpec::Inspect { binary, pid } => {
            inspect::execute(binary.as_deref(), *pid, config.output.json)
        }
        TargetSpec::Report {
            recording,
            format,
            view,
        } => replay::execute(recording, *format, *view, &config.output),
        TargetSpec::Diff { before, after } => diff::execute(before, after, &config.output),
        TargetSpec::Serve(spec) => serve::execute(&config, spec),
    }
}

fn render(report: &Report, json: bool, out: impl Write) -> io::Result<()> {
    if json {
        JsonSink::new(out).write(report)
    } else {
        TextSink::new(out).write(report)
    }
}

/// Writes the report to stdout, or to a file through a temporary file and a
/// rename, so a reader never sees half a report (see [`write_output`]).
pub fn write_report(report: &Report, output: &OutputConfig) -> anyhow::Result<()> {
    write_output(output.path.as_deref(), "the report", |out| {
        render(report, output.json, out)
    })
}

/// Writes `what` with `render` to stdout, or to a file through a temporary
/// file and a rename, so a reader never sees half of it. The temporary file
/// has a random name and is created exclusively (never through a planted
/// symlink), in the destination's directory.
pub fn write_output(
    path: Option<&Path>,
    what: &str,
    render: impl Fn(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let Some(path) = path else {
        let stdout = io::stdout().lock();
        let mut w = BufWriter::new(stdout);
        return match render(&mut w).and_then(|()| w.flush()) {
            // A closed pipe (`tracer ... | head`) is not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r.with_context(|| format!("writing {what} to stdout")),
        };
    };
    // A device or a FIFO (`-o /dev/stdout`, `-o /dev/null`, a named pipe)
    // is written in place: renaming over it would replace it.
    if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| {
                let mut w = BufWriter::new(f);
                render(&mut w)?;
                w.flush()
            })
            .with_context(|| format!("writing {what} to {}", path.display()));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // 0666 before the umask, like any file a command creates.
    let written = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .and_then(|tmp| {
            let mut w = BufWriter::new(tmp);
            render(&mut w)?;
            let tmp = w.into_inner().map_err(io::IntoInnerError::into_error)?;
            tmp.as_file().sync_all()?;
            tmp.persist(path).map_err(|e| e.error)?;
            Ok(())
        });
    written.with_context(|| format!("writing {what} to {}", path.display()))
}

/// The Go side of a target: its binary and the runtime layout, if known.
pub struct GoTarget {
    pub binary: GoBinary,
    pub offsets: Option<GoOffsets>,
}

/// Reads the target's executable; `None` when it is not a Go program.
pub fn go_target(exe: &Path) -> Option<GoTarget> {
    match GoBinary::open(exe) {
        Ok(binary) => {
            let offsets = goruntime::offsets(&binary.build.version);
            if offsets.is_none() {
                eprintln!(
                    "tracer: warning: {} has no verified runtime layout in this tracer: \
                     tracing syscalls only, without goroutine attribution",
                    binary.build.raw_version
                );
            }
            Some(GoTarget { binary, offsets })
        }
        Err(GoBinError::NotGo) => None,
        Err(err) => {
            eprintln!(
                "tracer: warning: cannot read the Go runtime of {}: {err}",
                exe.display()
            );
            None
        }
    }
}

/// Kernel-side settings for a target whose executable is `exe`;
/// `launched`: the tracer starts it (its launch is an exec the probes see).
pub fn attach_options(
    config: &Config,
    go: Option<&GoTarget>,
    exe: &Path,
    launched: bool,
) -> AttachOptions {
    // Uprobes only on rare runtime paths (never per syscall), and only for
    // releases whose layout is known.
    let mut uprobes = Vec::new();
    if let Some(g) = go.filter(|g| g.offsets.is_some()) {
        for (program, function) in goruntime::functions::attached() {
            let offset = g
                .binary
                .pclntab
                .entry(function)
                .and_then(|e| g.binary.file_offset(e));
            if let Some(offset) = offset {
                uprobes.push((program, exe.to_path_buf(), offset));
            }
        }
    }
    // Where the Ps and Ms are, for the probes that look for the thread
    // whose P was taken (symtab only), and the functions whose probed
    // address gives the load bias.
    let go_offsets = go.and_then(|g| {
        let mut o = g.offsets?;
        o.execs_expected = u32::from(launched);
        let b = &g.binary;
        if let (Some(allp), Some(stw)) = (
            b.data_symbol("runtime.allp"),
            b.pclntab.entry("runtime.stopTheWorldWithSema"),
        ) {
            o.allp_link = allp;
            o.stw_fn_link = stw;
        }
        if let (Some(allm), Some(handoffp), Some(stw)) = (
            b.data_symbol("runtime.allm"),
            b.pclntab.entry("runtime.handoffp"),
            b.pclntab.entry("runtime.stopTheWorldWithSema"),
        ) {
            o.allm_link = allm;
            o.handoffp_link = handoffp;
            o.stw_fn_link = stw;
        }
        // The runtime variables read as main.main starts.
        if let Some(main) = b.pclntab.entry("main.main") {
            o.main_link = main;
            o.vdso_sym_link = b
                .data_symbol(crate::gobin::VDSO_CLOCK_GETTIME_SYM)
                .unwrap_or(0);
            o.gomaxprocs_link = b.data_symbol("runtime.gomaxprocs").unwrap_or(0);
            o.maxmcount_link = b
                .data_symbol("runtime.sched")
                .zip(goruntime::sched_maxmcount_offset(&b.build.version))
                .map_or(0, |(sched, off)| sched + off);
        }
        Some(o)
    });
    AttachOptions {
        set: config.probes,
        slow_ns: config.slow_ns(),
        go: go_offsets,
        uprobes,
        ring_buffer_bytes: config.ring_buffer_bytes,
        follow_forks: config.follow_forks,
        // Set by `attach` (it knows which target is the first).
        selection: Default::default(),
        // Set by `serve` (one dispatcher for all its targets).
        dispatcher: None,
    }
}

/// The symbolizer for a Go target (read while the process is still there:
/// PIE load addresses come from its maps), and whether attribution is on.
pub fn symbolizer(go: Option<GoTarget>, pid: u32) -> Option<(Symbolizer, bool)> {
    go.map(|g| {
        let attribution = g.offsets.is_some();
        (Symbolizer::for_process(g.binary, pid), attribution)
    })
}

/// The facts reader for a target; Go targets also get the runtime's
/// variables read from their memory once `runtime_ready`.
pub fn facts_collector(
    pid: u32,
    symbolizer: Option<&(Symbolizer, bool)>,
    runtime_ready: bool,
) -> FactsCollector {
    FactsCollector::new(pid, symbolizer.map(|(s, _)| s), runtime_ready)
}

/// Analyzes the session's model, builds the report and writes it where
/// asked (unless only recording). `traced_seconds`: from probes live to
/// the stop.
pub fn report(
    config: &Config,
    model: &Model,
    target: TargetInfo,
    traced_seconds: f64,
    threads_at_end: Option<u64>,
    symbolizer: Option<&(Symbolizer, bool)>,
    facts: &Facts,
) -> anyhow::Result<()> {
    if !config.print_report {
        return Ok(());
    }
    let fops = match FopsMap::load() {
        Ok(m) => Some(m),
        Err(e) => {
            log::debug!("file_operations addresses unavailable ({e}): kinds from inode and fs");
            None
        }
    };
    let session = Finished {
        model,
        target,
        traced_seconds,
        threads_at_end,
        symbolizer,
        facts,
        fops: fops.as_ref(),
        slow_ns: config.slow_ns(),
    };
    write_report(&session.report(), &config.output)
}

/// A finished session (live, or replayed from a recording) and what its
/// report needs besides the model.
pub struct Finished<'a> {
    pub model: &'a Model,
    pub target: TargetInfo,
    pub traced_seconds: f64,
    pub threads_at_end: Option<u64>,
    pub symbolizer: Option<&'a (Symbolizer, bool)>,
    pub facts: &'a Facts,
    /// The tracing kernel's `file_operations` addresses.
    pub fops: Option<&'a FopsMap>,
    /// `--slow`, in nanoseconds.
    pub slow_ns: u64,
}

impl Finished<'_> {
    /// Analyzes the model and builds the report.
    pub fn report(self) -> Report {
        let Self {
            model,
            target,
            traced_seconds,
            threads_at_end,
            symbolizer,
            facts,
            fops,
            slow_ns,
        } = self;
        let cx = analysis::Context {
            sym: symbolizer.map(|(s, _)| s),
            attribution: symbolizer.is_some_and(|(_, a)| *a),
            fops,
            facts,
            traced_seconds,
        };
        let analysis = analysis::analyze(model, &cx);
        let go = symbolizer.map(|(symbolizer, attribution)| GoContext {
            symbolizer,
            attribution: *attribution,
            slow_ns,
        });
        Report::build(
            model,
            &analysis,
            target,
            traced_seconds,
            threads_at_end,
            go,
            facts,
        )
    }
}

/// Prints one live record to stdout while tracing: a JSON object on one
/// line, or its text form. Errors (a closed pipe) are not the session's.
pub fn print_live(
    json: bool,
    value: &impl serde::Serialize,
    text: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) {
    let mut out = io::stdout().lock();
    let _ = if json {
        serde_json::to_writer(&mut out, value)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
            .and_then(|()| out.flush())
    } else {
        text(&mut out)
    };
}

/// How often a session refreshes process facts (cheap /proc reads).
const FACTS_EVERY: Duration = Duration::from_millis(250);

/// Runs a session to its end with the per-tick work of `run` and `attach`:
/// refreshing the process facts (the runtime's variables once `main.main`
/// began), printing `--interval` summaries to stdout, and writing the
/// recording's intervals (`sym`: the target's symbols, for its stacks).
pub async fn drive(
    session: &mut Session,
    target_exit: std::os::fd::OwnedFd,
    config: &Config,
    policy: SignalPolicy,
    facts: &mut FactsCollector,
    mut recording: Option<&mut LiveRecording>,
    sym: Option<&Symbolizer>,
) -> Result<StopReason, SessionError> {
    let started = session.window_start();
    let mut diff = IntervalDiff::default();
    let mut last_print = Duration::ZERO;
    // Short intervals tick at the interval; long ones at the facts period,
    // printing when the interval has (about) passed.
    let every = match config.interval {
        Some(i) if i <= Duration::from_secs(1) => i,
        _ => FACTS_EVERY,
    };
    let mut on_tick = |s: &mut Session| {
        facts.runtime_started(s.model().runtime.values_at_main.as_ref());
        facts.tick();
        let elapsed = started.elapsed();
        let print = config
            .interval
            .is_some_and(|interval| elapsed.saturating_sub(last_print) + every / 2 >= interval);
        let record = recording.as_ref().is_some_and(|r| r.due(elapsed, every));
        // One reading of the kernel's aggregates serves both.
        let refreshed = if print || record {
            s.refresh()
                .inspect_err(|e| log::warn!("cannot read the kernel's aggregates: {e}"))
                .is_ok()
        } else {
            false
        };
        if print {
            last_print = elapsed;
            if refreshed {
                let summary = diff.next(s.model(), elapsed.as_secs_f64());
                print_live(config.output.json, &summary, |o| summary.write_text(o));
            }
        }
        if record && let Some(r) = recording.as_deref_mut() {
            r.interval(elapsed, s, sym, &facts.facts);
        }
        ControlFlow::Continue(())
    };
    let ticker = Ticker {
        every,
        on_tick: &mut on_tick,
    };
    session
        .run(target_exit, config.duration, policy, Some(ticker))
        .await
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the event loop")
}
