//! `tracer attach -p PID`: trace a live process until Ctrl-C, SIGTERM, the
//! deadline, or its exit; then detach and report. The process is never
//! stopped or signalled.

use super::live_target::LiveTarget;
use crate::{
    cli::Config,
    report::Mode,
    session::{SignalPolicy, StopReason},
};

pub fn execute(config: &Config, pid: u32) -> anyhow::Result<i32> {
    let mut target = LiveTarget::prepare(config, pid)?;
    let rt = super::runtime()?;
    let (model, traced, exited) = rt.block_on(async {
        let (mut session, pidfd) = target.start(true)?;
        let policy = SignalPolicy::Stop;
        let reason = super::drive(&mut session, pidfd, config, policy, &mut target.facts).await?;
        let traced = session.traced_seconds();
        let model = session.finish()?;
        anyhow::Ok((model, traced, reason == StopReason::TargetExited))
    })?;
    target.report(config, &model, traced, exited, Mode::Attach)?;
    Ok(0)
}
