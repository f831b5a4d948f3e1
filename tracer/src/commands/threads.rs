//! `tracer threads -p PID`: a thread-explosion diagnosis on a live process.
//! Every interval it prints the thread count, the spawns of that interval
//! by cause, what holds the threads now (by call site), and the limits
//! ahead with a warning before one is reached; at the end, the full report
//! with its verdicts.

use std::{io, ops::ControlFlow, path::PathBuf, time::Instant};

use crate::{
    cli::Config,
    live::view::LiveState,
    probes::{self, ProbeError, privileges},
    report::TargetInfo,
    session::{Session, SignalPolicy, StopReason, Ticker},
    target::{self, Process},
};

pub fn execute(config: &Config, pid: u32) -> anyhow::Result<i32> {
    let process = Process::validate(pid)?;
    if !privileges::can_trace() {
        return Err(ProbeError::NoPrivileges.into());
    }
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let go = super::go_target(&exe);
    let options = super::attach_options(config, go.as_ref(), &exe);
    let symbolizer = super::symbolizer(go, pid);
    let sym = symbolizer.as_ref().map(|(s, _)| s);
    let mut facts = super::facts_collector(pid, symbolizer.as_ref());
    facts.refresh();
    let every = config.interval.unwrap_or(std::time::Duration::from_secs(1));
    let rt = super::runtime()?;
    let (model, started, exited) = rt.block_on(async {
        let pidfd = target::pidfd_open(pid)?;
        let (links, maps) = probes::attach(pid, &options)?;
        let threads_at_start = target::thread_count(pid);
        let mut session = Session::new(links, maps, threads_at_start)?;
        let started = Instant::now();
        eprintln!(
            "tracer: probes live on pid {pid} ({}), {threads_at_start} threads; Ctrl-C to stop",
            process.comm
        );
        let mut live = LiveState::new(pid, sym);
        let mut on_tick = |s: &Session| {
            match live.frame(s, &mut facts) {
                Ok(frame) => {
                    let mut out = io::stdout().lock();
                    let _ = if config.output.json {
                        serde_json::to_writer(&mut out, &frame)
                            .map_err(io::Error::from)
                            .and_then(|()| io::Write::write_all(&mut out, b"\n"))
                    } else {
                        frame.write_text(&mut out)
                    };
                }
                Err(e) => log::warn!("cannot read the session: {e}"),
            }
            ControlFlow::Continue(())
        };
        let ticker = Ticker {
            every,
            on_tick: &mut on_tick,
        };
        let reason = session
            .run(pidfd, config.duration, SignalPolicy::Stop, Some(ticker))
            .await?;
        let model = session.finish()?;
        anyhow::Ok((model, started, reason == StopReason::TargetExited))
    })?;
    if !exited {
        facts.refresh();
    }
    let threads_at_end = if exited { 0 } else { target::thread_count(pid) };
    let info = TargetInfo {
        pid,
        command: process.comm,
        mode: "threads",
        exited,
        exit_code: None,
    };
    super::report(
        config,
        &model,
        info,
        started,
        threads_at_end,
        symbolizer.as_ref(),
        &facts.facts,
    )?;
    Ok(0)
}
