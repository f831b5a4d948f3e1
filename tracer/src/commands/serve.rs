//! `tracer serve`: trace the selected processes until SIGINT/SIGTERM and
//! expose their figures as Prometheus metrics. Each target has its own
//! session (and probes), all on one event loop; each second a session
//! reads the kernel's aggregates and publishes a snapshot built from its
//! report, which the HTTP thread serves.

use std::{
    cell::{Cell, RefCell},
    ops::ControlFlow,
    path::{Path, PathBuf},
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use super::{Finished, live_target::LiveTarget, recording::wall_clock_at};
use crate::{
    cli::{Config, ServeSpec},
    facts::{
        Facts,
        threads::{self, ThreadSample},
    },
    gobin::symbolize::Symbolizer,
    model::{Input, Model, syscalls::Waiter},
    probes::{ProbeError, dispatch::SharedDispatcher, privileges},
    procinfo::{cgroup, kallsyms::FopsMap},
    record::{End, GoInfo, RecordError, Recorder, Start},
    report::{Mode, TargetInfo},
    serve::{
        RETENTION, State,
        discover::{Discovery, SCAN_EVERY, Selector},
        flight::{FlightConfig, GlobalLimit, Reading, Refused, Ring, Watch},
        http,
        metrics::{NO_CGROUP, NOT_GO, TargetLabels, TargetSnapshot},
    },
    session::{Session, SignalPolicy, StopReason, Ticker},
};

/// How often each target's snapshot is rebuilt.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);
/// How often ended targets past their retention are dropped when no
/// scrape does it.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

pub fn execute(config: &Config, spec: &ServeSpec) -> anyhow::Result<i32> {
    // Everything that can be refused is checked before any probe: the
    // address, then the privileges.
    let listener = std::net::TcpListener::bind(spec.listen).with_context(|| {
        format!(
            "cannot listen on {}: choose another --listen address or port, or stop what holds it",
            spec.listen
        )
    })?;
    listener
        .set_nonblocking(true)
        .context("setting the metrics socket non-blocking")?;
    let local = listener
        .local_addr()
        .context("reading the metrics address")?;
    if let Some(f) = &spec.flight {
        check_flight_dir(&f.dir)?;
    }
    if !privileges::can_trace() {
        return Err(ProbeError::NoPrivileges.into());
    }
    let state = Arc::new(State::default());
    if spec.flight.is_some() {
        state.enable_flight();
    }
    let http_state = state.clone();
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let served = rt.map(|rt| {
                rt.block_on(async {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    http::serve(listener, http_state, http::READ_TIMEOUT).await;
                    std::io::Result::Ok(())
                })
            });
            if let Err(e) | Ok(Err(e)) = served {
                eprintln!("tracer: serve: the metrics server stopped: {e}");
            }
        })
        .context("starting the metrics server's thread")?;
    eprintln!("tracer: serve: metrics at http://{local}/metrics");
    let fops = match FopsMap::load() {
        Ok(m) => Some(m),
        Err(e) => {
            log::debug!("file_operations addresses unavailable ({e}): kinds from inode and fs");
            None
        }
    };
    // One pair of syscall programs for every target: a call of any other
    // process pays one lookup, not one program run per target.
    let dispatcher = SharedDispatcher::load().context("loading the syscall dispatcher")?;
    let shared = Rc::new(Shared {
        dispatcher,
        config: config.clone(),
        state,
        fops,
        stopping: Cell::new(false),
        next_id: Cell::new(0),
        flight: spec.flight.clone().map(|config| FlightShared {
            limit: RefCell::new(GlobalLimit::new(config.max_dumps)),
            config,
        }),
    });
    let rt = super::runtime()?;
    let local_set = tokio::task::LocalSet::new();
    local_set.block_on(&rt, agent(shared, spec))
}

/// What every target's task shares (one thread: `Rc`, `Cell`).
struct Shared {
    dispatcher: SharedDispatcher,
    config: Config,
    state: Arc<State>,
    fops: Option<FopsMap>,
    /// SIGINT/SIGTERM came: sessions stop at their next tick, targets not
    /// yet attached are left alone.
    stopping: Cell<bool>,
    next_id: Cell<u64>,
    flight: Option<FlightShared>,
}

/// The flight recorder's settings and its limit over all targets.
struct FlightShared {
    config: FlightConfig,
    limit: RefCell<GlobalLimit>,
}

/// `--flight-recorder DIR` must name a writable directory: checked with a
/// file created and removed there, before any probe.
fn check_flight_dir(dir: &Path) -> anyhow::Result<()> {
    let what = || {
        format!(
            "--flight-recorder {}: give an existing directory this user can write to",
            dir.display()
        )
    };
    let meta = std::fs::metadata(dir).with_context(what)?;
    if !meta.is_dir() {
        anyhow::bail!("{}: it is not a directory", what());
    }
    let probe = dir.join(format!(".tracer-flight-check-{}", std::process::id()));
    std::fs::File::create(&probe)
        .and_then(|_| std::fs::remove_file(&probe))
        .with_context(what)
}

/// Starts the targets and discovery, and waits for a signal; then waits
/// for every session to detach.
async fn agent(shared: Rc<Shared>, spec: &ServeSpec) -> anyhow::Result<i32> {
    let mut sigint = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let selector = Selector {
        comms: spec.comms.clone(),
        cgroups: spec.cgroups.clone(),
        all_go: spec.all_go,
    };
    let scanning = selector.scans();
    let mut discovery = Discovery::new(selector, "/proc", std::process::id());
    let mut tasks = Vec::new();
    // A PID given twice is traced once (twice would repeat its series).
    let mut pids = spec.pids.clone();
    pids.sort_unstable();
    pids.dedup();
    for pid in pids {
        discovery.handled(pid);
        tasks.push(tokio::task::spawn_local(trace(shared.clone(), pid)));
    }
    let mut scan = tokio::time::interval(SCAN_EVERY);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut prune = tokio::time::interval(PRUNE_EVERY);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let signal_name = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            _ = scan.tick(), if scanning => {
                for pid in discovery.scan() {
                    tasks.push(tokio::task::spawn_local(trace(shared.clone(), pid)));
                }
                tasks.retain(|t| !t.is_finished());
            }
            _ = prune.tick() => shared.state.prune(Instant::now()),
        }
    };
    shared.stopping.set(true);
    for task in tasks {
        let _ = task.await;
    }
    crate::probes::dispatch::wait_detached();
    eprintln!("tracer: serve: stopped by {signal_name}; every probe is detached");
    Ok(0)
}

/// Traces one process until it exits or the agent stops.
async fn trace(shared: Rc<Shared>, pid: u32) {
    if let Err(e) = trace_target(&shared, pid).await {
        eprintln!("tracer: serve: pid {pid}: {e:#}");
    }
}

async fn trace_target(shared: &Shared, pid: u32) -> anyhow::Result<()> {
    // A process the caller may not trace (or that is gone) is skipped,
    // said in one line.
    let mut target = match LiveTarget::prepare(&shared.config, pid) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tracer: serve: skipping pid {pid}: {e:#}");
            return Ok(());
        }
    };
    if shared.stopping.get() {
        return Ok(());
    }
    target.dispatch_through(shared.dispatcher.clone());
    let (mut session, pidfd) = target.start(false)?;
    let mut flight = shared.flight.as_ref().map(|f| {
        session.capture_inputs();
        TargetFlight::new(&f.config, session.model().live_threads())
    });
    let id = shared.next_id.get();
    shared.next_id.set(id + 1);
    let comm = target.process.comm.clone();
    let publisher = Publisher {
        labels: TargetLabels {
            pid,
            comm: comm.clone(),
            go_version: target
                .symbolizer
                .as_ref()
                .map_or_else(|| NOT_GO.to_owned(), |(s, _)| s.build.raw_version.clone()),
            // Where it is when it became a target (a later move is not
            // followed: its series keep their labels).
            cgroup: cgroup::of_process(pid).unwrap_or_else(|| NO_CGROUP.to_owned()),
        },
        sym: target.symbolizer.as_ref(),
        fops: shared.fops.as_ref(),
        slow_ns: shared.config.slow_ns(),
    };
    // Seen at once, with no calls yet: the first reading comes a second on.
    shared.state.publish(
        id,
        publisher.snapshot(session.model(), 0.0, &target.facts.facts, true),
    );
    eprintln!("tracer: serve: probes live on pid {pid} ({comm})");
    let facts = &mut target.facts;
    let source = DumpSource {
        pid,
        comm: &comm,
        sym: target.symbolizer.as_ref(),
        fops: shared.fops.as_ref(),
        slow_ns: shared.config.slow_ns(),
    };
    let mut on_tick = |s: &mut Session| {
        if shared.stopping.get() {
            return ControlFlow::Break(());
        }
        facts.runtime_started(s.model().runtime.values_at_main.as_ref());
        facts.tick();
        match s.refresh() {
            Ok(()) => {
                let snapshot =
                    publisher.snapshot(s.model(), s.traced_seconds(), &facts.facts, true);
                if let (Some(f), Some(fs)) = (flight.as_mut(), shared.flight.as_ref()) {
                    f.tick(s, &snapshot, &facts.facts, &source, fs, &shared.state, id);
                }
                shared.state.publish(id, snapshot);
            }
            Err(e) => log::warn!("pid {pid}: cannot read the kernel's aggregates: {e}"),
        }
        ControlFlow::Continue(())
    };
    let ticker = Ticker {
        every: SNAPSHOT_EVERY,
        on_tick: &mut on_tick,
    };
    let reason = session
        .run(pidfd, None, SignalPolicy::Stop, Some(ticker))
        .await;
    let traced = session.traced_seconds();
    let (model, inputs) = session.finish_with_inputs()?;
    let exited = matches!(reason, Ok(StopReason::TargetExited));
    if let Some(f) = flight.as_mut() {
        let at = Duration::from_secs_f64(traced.max(0.0));
        f.end(
            at,
            inputs,
            (!exited).then(|| model.live_threads()),
            &target.facts.facts,
            &source,
            &shared.state,
        );
        shared.state.update_flight(|st| {
            st.ring_bytes.remove(&id);
        });
    }
    if matches!(reason?, StopReason::TargetExited) {
        let last = publisher.snapshot(&model, traced, &target.facts.facts, false);
        shared.state.end(id, last, Instant::now());
        eprintln!(
            "tracer: serve: pid {pid} ({comm}) exited; its last figures stay for {} s",
            RETENTION.as_secs()
        );
    }
    Ok(())
}

/// Builds a target's snapshot from its report.
struct Publisher<'a> {
    labels: TargetLabels,
    sym: Option<&'a (Symbolizer, bool)>,
    fops: Option<&'a FopsMap>,
    slow_ns: u64,
}

impl Publisher<'_> {
    fn snapshot(&self, model: &Model, traced: f64, facts: &Facts, up: bool) -> TargetSnapshot {
        let report = Finished {
            model,
            target: served_target(self.labels.pid, &self.labels.comm, !up),
            traced_seconds: traced,
            threads_at_end: None,
            symbolizer: self.sym,
            facts,
            fops: self.fops,
            slow_ns: self.slow_ns,
        }
        .report();
        TargetSnapshot::new(self.labels.clone(), up, &report, model)
    }
}

/// What a dump needs of its target besides the session.
struct DumpSource<'a> {
    pid: u32,
    comm: &'a str,
    sym: Option<&'a (Symbolizer, bool)>,
    fops: Option<&'a FopsMap>,
    slow_ns: u64,
}

impl DumpSource<'_> {
    fn target(&self, exited: bool) -> TargetInfo {
        served_target(self.pid, self.comm, exited)
    }
}

/// A served target as its report (metrics, dumps) names it: attached to,
/// no fork followed.
fn served_target(pid: u32, comm: &str, exited: bool) -> TargetInfo {
    TargetInfo {
        pid,
        command: comm.to_owned(),
        mode: Mode::Attach,
        exited,
        exit_code: None,
        execs: 0,
        executed: Vec::new(),
        follow_forks: false,
    }
}

/// One target's flight recorder: its window, its triggers, and the dump
/// being written.
struct TargetFlight<'a> {
    config: &'a FlightConfig,
    ring: Ring,
    watch: Watch,
    /// The last tick (since the traced window began), and the model's live
    /// threads then: where the next chunk begins.
    last_tick: Duration,
    last_threads: u64,
    last_dump: Option<Instant>,
    /// The ring's drops already counted in /metrics.
    counted_drops: (u64, u64),
    dump: Option<Dump>,
}

/// A dump being written: the ring was, the seconds after go on.
struct Dump {
    recorder: Recorder,
    part: PathBuf,
    path: PathBuf,
    trigger: String,
    /// Where the dump's window begins (since the session's began): its
    /// intervals count from there.
    offset: Duration,
    until: Duration,
    /// What held the threads (from /proc) at the trigger and at the end,
    /// timed from the dump's start: the report's evidence of the call
    /// sites holding threads in calls that have not returned yet. The
    /// live facts' own samples (from attach) are not the window's.
    samples: Vec<ThreadSample>,
}

impl<'a> TargetFlight<'a> {
    fn new(config: &'a FlightConfig, threads: u64) -> Self {
        Self {
            config,
            ring: Ring::new(config.window, config.ring_bytes),
            watch: Watch::new(config.triggers.clone()),
            last_tick: Duration::ZERO,
            last_threads: threads,
            last_dump: None,
            counted_drops: (0, 0),
            dump: None,
        }
    }

    /// Each second, after the snapshot: keeps the interval's inputs,
    /// writes them to the dump under way (finishing it when due), and
    /// evaluates the triggers on the snapshot's figures.
    #[allow(clippy::too_many_arguments)]
    fn tick(
        &mut self,
        s: &mut Session,
        snapshot: &TargetSnapshot,
        facts: &Facts,
        source: &DumpSource<'_>,
        shared: &FlightShared,
        state: &State,
        id: u64,
    ) {
        let at = Duration::from_secs_f64(s.traced_seconds().max(0.0));
        let inputs = s.take_inputs();
        let from = std::mem::replace(&mut self.last_tick, at);
        let threads_before = std::mem::replace(&mut self.last_threads, s.model().live_threads());
        let sym = source.sym.map(|(s, _)| s);
        if let Some(mut dump) = self.dump.take() {
            let elapsed = at.saturating_sub(dump.offset);
            if at >= dump.until {
                let end = End {
                    traced_seconds: elapsed.as_secs_f64(),
                    target: source.target(false),
                    threads_at_end: Some(snapshot.threads_alive),
                    events_not_recorded: 0,
                    calls_not_recorded: 0,
                };
                dump.sample(source, elapsed);
                dump.finish(inputs.clone(), sym, facts, end, source, state);
            } else {
                let facts = dump.facts(facts);
                match dump.recorder.interval(elapsed, inputs.clone(), sym, &facts) {
                    Ok(()) => self.dump = Some(dump),
                    Err(e) => close_dump(
                        Err(e),
                        &dump.part,
                        &dump.path,
                        &dump.trigger,
                        elapsed,
                        source,
                        state,
                    ),
                }
            }
        }
        self.ring.push(from, at, threads_before, inputs);
        let drops = (self.ring.dropped_chunks, self.ring.dropped_inputs);
        let (new_chunks, new_inputs) = (
            drops.0 - self.counted_drops.0,
            drops.1 - self.counted_drops.1,
        );
        self.counted_drops = drops;
        let ring_bytes = self.ring.bytes();
        state.update_flight(|st| {
            st.dropped_chunks += new_chunks;
            st.dropped_inputs += new_inputs;
            st.ring_bytes.insert(id, ring_bytes);
        });
        let reading = Reading {
            at,
            threads: snapshot.threads_alive,
            gomaxprocs: facts.cpu.gomaxprocs.value(),
            lockosthread_leaks: snapshot.lockosthread_leaks,
        };
        let hists = self
            .watch
            .needs_histograms()
            .then(|| s.model().syscalls.by_syscall(Waiter::Program));
        let Some(trigger) = self.watch.check(reading, hists.as_ref()).map(|t| t.name()) else {
            return;
        };
        if self.dump.is_some() {
            return;
        }
        let now = Instant::now();
        let allowed = shared
            .limit
            .borrow_mut()
            .allow(self.last_dump, self.config.cooldown, now);
        if let Err(why) = allowed {
            if why == Refused::GlobalCap {
                log::warn!(
                    "flight recorder: {trigger} in {} (pid {}): no dump, {} were written in \
                     the last hour (--flight-max-dumps)",
                    source.comm,
                    source.pid,
                    self.config.max_dumps
                );
            }
            state.update_flight(|st| *st.suppressed.entry(trigger).or_default() += 1);
            return;
        }
        self.last_dump = Some(now);
        match self.start_dump(s, &trigger, at, facts, source) {
            Ok(dump) => self.dump = Some(dump),
            Err(e) => {
                eprintln!(
                    "tracer: flight recorder: {trigger} in {} (pid {}): cannot write the \
                     dump: {e}; check that --flight-recorder's directory is writable and has \
                     room",
                    source.comm, source.pid
                );
                state.update_flight(|st| st.failed += 1);
            }
        }
    }

    /// Creates the dump's file and writes the window into it.
    fn start_dump(
        &mut self,
        s: &Session,
        trigger: &str,
        at: Duration,
        facts: &Facts,
        source: &DumpSource<'_>,
    ) -> Result<Dump, RecordError> {
        let chunks = self.ring.take();
        let offset = chunks.first().map_or(at, |c| c.from);
        let threads_at_start = chunks
            .first()
            .map_or(self.last_threads, |c| c.threads_before);
        let name = dump_name(source.comm, source.pid, SystemTime::now(), trigger);
        let path = self.config.dir.join(&name);
        let part = self.config.dir.join(format!(".{name}.part"));
        let start = Start {
            tracer_version: env!("CARGO_PKG_VERSION").to_owned(),
            target: source.target(false),
            launched: false,
            threads_at_start,
            slow_ns: source.slow_ns,
            go: source
                .sym
                .map(|(s, attribution)| GoInfo::of(s, *attribution)),
            kernel_fops: source.fops.map(|m| {
                m.found()
                    .iter()
                    .map(|&(symbol, addr)| (symbol.to_owned(), addr))
                    .collect()
            }),
            window_start_ns: Some(
                s.window_start_ns()
                    .saturating_add(u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX)),
            ),
            started_unix_ns: wall_clock_at(s.window_start() + offset),
        };
        let recorder = Recorder::create(&part, None, start)?;
        let mut dump = Dump {
            recorder,
            part,
            path,
            trigger: trigger.to_owned(),
            offset,
            until: at + self.config.after,
            samples: Vec::new(),
        };
        dump.sample(source, at.saturating_sub(offset));
        let facts = dump.facts(facts);
        let sym = source.sym.map(|(s, _)| s);
        let written = chunks.into_iter().try_for_each(|c| {
            dump.recorder
                .interval(c.to.saturating_sub(offset), c.inputs, sym, &facts)
        });
        if let Err(e) = written {
            let _ = std::fs::remove_file(&dump.part);
            return Err(e);
        }
        Ok(dump)
    }

    /// The session ended (the target exited, or the agent stops): a dump
    /// under way ends with the last inputs.
    fn end(
        &mut self,
        at: Duration,
        inputs: Vec<Input>,
        threads_at_end: Option<u64>,
        facts: &Facts,
        source: &DumpSource<'_>,
        state: &State,
    ) {
        let Some(mut dump) = self.dump.take() else {
            return;
        };
        let elapsed = at.saturating_sub(dump.offset);
        if threads_at_end.is_some() {
            dump.sample(source, elapsed);
        }
        let end = End {
            traced_seconds: elapsed.as_secs_f64(),
            target: source.target(threads_at_end.is_none()),
            threads_at_end,
            events_not_recorded: 0,
            calls_not_recorded: 0,
        };
        let sym = source.sym.map(|(s, _)| s);
        dump.finish(inputs, sym, facts, end, source, state);
    }
}

impl Dump {
    /// Reads what holds the target's threads now (`elapsed` into the dump).
    fn sample(&mut self, source: &DumpSource<'_>, elapsed: Duration) {
        let sym = source.sym.map(|(s, _)| s);
        self.samples
            .push(threads::sample(source.pid, sym, elapsed.as_secs_f64()));
    }

    /// The facts as the dump holds them: the live ones, with its samples.
    fn facts(&self, live: &Facts) -> Facts {
        Facts {
            samples: self.samples.clone(),
            ..live.clone()
        }
    }

    /// Writes the last inputs and the end, then puts the file in place.
    fn finish(
        self,
        inputs: Vec<Input>,
        sym: Option<&Symbolizer>,
        facts: &Facts,
        end: End,
        source: &DumpSource<'_>,
        state: &State,
    ) {
        let Self {
            recorder,
            part,
            path,
            trigger,
            samples,
            ..
        } = self;
        let elapsed = Duration::from_secs_f64(end.traced_seconds.max(0.0));
        let facts = Facts {
            samples,
            ..facts.clone()
        };
        let finished = recorder.finish(inputs, sym, &facts, end).map(|_| ());
        close_dump(finished, &part, &path, &trigger, elapsed, source, state);
    }
}

/// Renames a finished dump into place and says so (one line), or removes
/// what was written of a failed one.
fn close_dump(
    finished: Result<(), RecordError>,
    part: &Path,
    path: &Path,
    trigger: &str,
    elapsed: Duration,
    source: &DumpSource<'_>,
    state: &State,
) {
    let renamed = finished.and_then(|()| {
        std::fs::rename(part, path).map_err(|e| RecordError::Write {
            path: path.to_owned(),
            source: e,
        })
    });
    match renamed {
        Ok(()) => {
            let kb = std::fs::metadata(path).map_or(0, |m| m.len().div_ceil(1024));
            eprintln!(
                "tracer: flight recorder: {trigger} in {} (pid {}): wrote {} ({kb} KB, {:.1} s)",
                source.comm,
                source.pid,
                path.display(),
                elapsed.as_secs_f64()
            );
            state.update_flight(|st| *st.dumps.entry(trigger.to_owned()).or_default() += 1);
        }
        Err(e) => {
            let _ = std::fs::remove_file(part);
            eprintln!(
                "tracer: flight recorder: {trigger} in {} (pid {}): the dump failed: {e}; \
                 check that --flight-recorder's directory is writable and has room",
                source.comm, source.pid
            );
            state.update_flight(|st| st.failed += 1);
        }
    }
}

/// `COMM-PID-UTCTIME-TRIGGER.rec`, with the comm's characters that are not
/// safe in a file name (it may hold `/`) as `_`.
fn dump_name(comm: &str, pid: u32, now: SystemTime, trigger: &str) -> String {
    let safe: String = comm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // 2026-12-01T21:03:04Z as 20261201T210304Z (no `:` in file names).
    let time: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{safe}-{pid}-{time}-{trigger}.rec")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_names_are_safe_and_sortable() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_158_984);
        assert_eq!(
            dump_name("a/b c", 42, at, "p99-read"),
            "a_b_c-42-20261201T210304Z-p99-read.rec"
        );
    }
}
