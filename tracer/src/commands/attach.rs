//! `tracer attach -p PID`: trace a live process until Ctrl-C, SIGTERM, the
//! deadline, or its exit; then detach and report. The process is never
//! stopped or signalled. More targets (`-p` again, `--comm`, `--cgroup`)
//! are traced beside it, a section each, until the first one stops.

use super::{live_target::LiveTarget, recording::RecordingPlan, select::Targets};
use crate::{
    cli::Config,
    report::Mode,
    session::{SignalPolicy, StopReason},
};

pub fn execute(config: &Config, pid: Option<u32>) -> anyhow::Result<i32> {
    let targets = Targets::choose(&config.select, pid)?;
    let mut target = LiveTarget::prepare(config, targets.first)?;
    target.select(targets.selection);
    let plan = RecordingPlan::prepare(config);
    let rt = super::runtime()?;
    let (model, traced, exited, recording) = rt.block_on(async {
        let (mut session, pidfd) = target.start(true)?;
        let info = target.info(Mode::Attach, false);
        let mut recording = plan
            .map(|p| p.start(&mut session, info, false, target.symbolizer.as_ref()))
            .transpose()?;
        let policy = SignalPolicy::Stop;
        let sym = target.symbolizer.as_ref().map(|(s, _)| s);
        let reason = super::drive(
            &mut session,
            pidfd,
            config,
            policy,
            &mut target.facts,
            recording.as_mut(),
            sym,
        )
        .await?;
        let traced = session.traced_seconds();
        let (model, inputs) = session.finish_with_inputs()?;
        let recording = recording.map(|r| (r, inputs));
        anyhow::Ok((model, traced, reason == StopReason::TargetExited, recording))
    })?;
    target.report(config, &model, traced, exited, Mode::Attach, recording)?;
    Ok(0)
}
