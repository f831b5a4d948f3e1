//! `tracer threads -p PID`: a thread-explosion diagnosis on a live process.
//! Every interval it prints the thread count, the spawns of that interval
//! by cause, what holds the threads now (by call site), and the limits
//! ahead with a warning before one is reached; at the end, the full report
//! with its verdicts.

use std::{ops::ControlFlow, time::Duration};

use super::live_target::LiveTarget;
use crate::{
    cli::Config,
    live::view::LiveState,
    report::Mode,
    session::{Session, SignalPolicy, StopReason, Ticker},
};

pub fn execute(config: &Config, pid: u32) -> anyhow::Result<i32> {
    let mut target = LiveTarget::prepare(config, pid)?;
    let every = config.interval.unwrap_or(Duration::from_secs(1));
    let rt = super::runtime()?;
    let (model, traced, exited) = rt.block_on(async {
        let (mut session, pidfd) = target.start(true)?;
        let mut live = LiveState::new(pid, target.symbolizer.as_ref().map(|(s, _)| s));
        target.seed(&mut live);
        let facts = &mut target.facts;
        let mut on_tick = |s: &mut Session| {
            match live.frame(s, facts) {
                Ok(frame) => {
                    super::print_live(config.output.json, &frame, |o| frame.write_text(o));
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
        let traced = session.traced_seconds();
        let model = session.finish()?;
        anyhow::Ok((model, traced, reason == StopReason::TargetExited))
    })?;
    target.report(config, &model, traced, exited, Mode::Threads, None)?;
    Ok(0)
}
