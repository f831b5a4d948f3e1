//! `tracer serve`: trace the selected processes until SIGINT/SIGTERM and
//! expose their figures as Prometheus metrics. Each target has its own
//! session (and probes), all on one event loop; each second a session
//! reads the kernel's aggregates and publishes a snapshot built from its
//! report, which the HTTP thread serves.

use std::{
    cell::Cell,
    ops::ControlFlow,
    rc::Rc,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

use super::{Finished, live_target::LiveTarget};
use crate::{
    cli::{Config, ServeSpec},
    facts::Facts,
    gobin::symbolize::Symbolizer,
    model::Model,
    probes::{ProbeError, privileges},
    procinfo::kallsyms::FopsMap,
    report::{Mode, TargetInfo},
    serve::{
        RETENTION, State,
        discover::{Discovery, SCAN_EVERY, Selector},
        http,
        metrics::{NOT_GO, TargetLabels, TargetSnapshot},
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
    if !privileges::can_trace() {
        return Err(ProbeError::NoPrivileges.into());
    }
    let state = Arc::new(State::default());
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
    let shared = Rc::new(Shared {
        config: config.clone(),
        state,
        fops,
        stopping: Cell::new(false),
        next_id: Cell::new(0),
    });
    let rt = super::runtime()?;
    let local_set = tokio::task::LocalSet::new();
    local_set.block_on(&rt, agent(shared, spec))
}

/// What every target's task shares (one thread: `Rc`, `Cell`).
struct Shared {
    config: Config,
    state: Arc<State>,
    fops: Option<FopsMap>,
    /// SIGINT/SIGTERM came: sessions stop at their next tick, targets not
    /// yet attached are left alone.
    stopping: Cell<bool>,
    next_id: Cell<u64>,
}

/// Starts the targets and discovery, and waits for a signal; then waits
/// for every session to detach.
async fn agent(shared: Rc<Shared>, spec: &ServeSpec) -> anyhow::Result<i32> {
    let mut sigint = signal(SignalKind::interrupt()).context("watching SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("watching SIGTERM")?;
    let selector = Selector {
        comms: spec.comms.clone(),
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
    let (mut session, pidfd) = target.start(false)?;
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
    let mut on_tick = |s: &mut Session| {
        if shared.stopping.get() {
            return ControlFlow::Break(());
        }
        facts.runtime_started(s.model().runtime.values_at_main.as_ref());
        facts.tick();
        match s.refresh() {
            Ok(()) => shared.state.publish(
                id,
                publisher.snapshot(s.model(), s.traced_seconds(), &facts.facts, true),
            ),
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
    let model = session.finish()?;
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
            target: TargetInfo {
                pid: self.labels.pid,
                command: self.labels.comm.clone(),
                mode: Mode::Attach,
                exited: !up,
                exit_code: None,
                execs: 0,
                executed: Vec::new(),
                follow_forks: false,
            },
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
