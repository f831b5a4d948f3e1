//! `tracer run -- CMD`: fork the command, hold it before exec until the
//! probes are live, let it run, and report when it exits. The tracer's exit
//! status is the command's.

use std::{ffi::OsString, path::Path};

use super::recording::RecordingPlan;
use crate::{
    cli::Config,
    probes::{self, ProbeError, privileges},
    record::End,
    report::{Mode, TargetInfo},
    session::{Session, SignalPolicy, StopReason},
    target::{
        self,
        launch::{self, HeldChild},
    },
};

pub fn execute(config: &Config, program: &Path, args: &[OsString]) -> anyhow::Result<i32> {
    // Fail before forking anything when the command or the privileges are
    // wrong: the command first, since that is the likelier typo.
    let resolved = launch::resolve(program)?;
    if !privileges::can_trace() {
        return Err(ProbeError::NoPrivileges.into());
    }
    let go = super::go_target(&resolved);
    let options = super::attach_options(config, go.as_ref(), &resolved, true);
    let plan = RecordingPlan::prepare(config);
    // Fork while still single-threaded (before the runtime starts).
    let mut child = HeldChild::spawn(program, args)?;
    let pid = child.pid;
    let rt = super::runtime()?;
    let command = program.display().to_string();
    let outcome = rt.block_on(async {
        let pidfd = target::pidfd_open(pid)?;
        let (links, maps) = probes::attach(pid, &options)?;
        let mut session = Session::new(links, maps, 1, true)?;
        eprintln!("tracer: probes live on pid {pid}; starting {command}");
        session.start_window_now();
        child.release()?;
        // Exec has happened: the new image's mappings (PIE base) are there.
        let symbolizer = super::symbolizer(go, pid);
        let info = target_info(pid, &command, None, config.follow_forks);
        let mut recording = plan
            .map(|p| p.start(&mut session, info, true, symbolizer.as_ref()))
            .transpose()?;
        // The runtime's variables are read once main.main begins.
        let mut facts = super::facts_collector(pid, symbolizer.as_ref(), false);
        facts.refresh();
        let policy = SignalPolicy::ForwardTo(pid);
        let sym = symbolizer.as_ref().map(|(s, _)| s);
        let reason = super::drive(
            &mut session,
            pidfd,
            config,
            policy,
            &mut facts,
            recording.as_mut(),
            sym,
        )
        .await?;
        let traced = session.traced_seconds();
        let (model, inputs) = session.finish_with_inputs()?;
        // The exit can end the session before main.main's event was read
        // (its last records are drained by `finish`): its values are in it.
        facts.runtime_started(model.runtime.values_at_main.as_ref());
        let recording = recording.map(|r| (r, inputs));
        anyhow::Ok((model, traced, reason, symbolizer, facts, recording))
    });
    let (model, traced, reason, symbolizer, mut facts, recording) = match outcome {
        Ok(v) => v,
        Err(e) => {
            // The child never ran (or failed to exec): make sure it is gone.
            drop(child);
            return Err(e);
        }
    };
    let exit_code = match reason {
        StopReason::TargetExited => Some(child.wait()?),
        _ => None,
    };
    let info = target_info(pid, &command, exit_code, config.follow_forks);
    let threads_at_end = if exit_code.is_some() {
        None
    } else {
        facts.refresh();
        Some(target::thread_count(pid))
    };
    // The recording ends before the report is written: a report that
    // cannot be written leaves a whole recording.
    let recorded = recording.map(|(r, inputs)| {
        let end = End {
            traced_seconds: traced,
            target: info.clone(),
            threads_at_end,
            events_not_recorded: 0,
            calls_not_recorded: 0,
        };
        let sym = symbolizer.as_ref().map(|(s, _)| s);
        r.finish(inputs, sym, &facts.facts, end)
    });
    super::report(
        config,
        &model,
        info,
        traced,
        threads_at_end,
        symbolizer.as_ref(),
        &facts.facts,
    )?;
    if let Some(recorded) = recorded {
        recorded?;
    }
    match (exit_code, reason) {
        (Some(code), _) => Ok(code),
        // Stopped early by --duration: keep the command's status as ours.
        (None, StopReason::Deadline) => Ok(child.wait()?),
        // Stopped by a second signal: leave the command running.
        (None, _) => Ok(130),
    }
}

/// What the report says of the launched command (`exit_code` once it
/// exited).
fn target_info(pid: u32, command: &str, exit_code: Option<i32>, follow_forks: bool) -> TargetInfo {
    TargetInfo {
        pid,
        command: command.to_owned(),
        mode: Mode::Run,
        exited: exit_code.is_some(),
        exit_code,
        execs: 0,
        executed: Vec::new(),
        follow_forks,
    }
}
