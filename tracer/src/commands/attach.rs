//! `tracer attach -p PID`: trace a live process until Ctrl-C, SIGTERM, the
//! deadline, or its exit; then detach and report. The process is never
//! stopped or signalled.

use std::time::Instant;

use crate::{
    cli::Config,
    probes::{self, ProbeError, privileges},
    report::TargetInfo,
    session::{Session, SignalPolicy, StopReason},
    target::{self, Process},
};

pub fn execute(config: &Config, pid: u32) -> anyhow::Result<i32> {
    let process = Process::validate(pid)?;
    if !privileges::can_trace() {
        return Err(ProbeError::NoPrivileges.into());
    }
    let exe = std::path::PathBuf::from(format!("/proc/{pid}/exe"));
    let go = super::go_target(&exe);
    let options = super::attach_options(config, go.as_ref(), &exe);
    // PIE load addresses are read now, while the process surely exists.
    let symbolizer = super::symbolizer(go, pid);
    let mut facts = super::facts_collector(pid, symbolizer.as_ref());
    facts.refresh();
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
        let reason =
            super::drive(&mut session, pidfd, config, SignalPolicy::Stop, &mut facts).await?;
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
        mode: "attach",
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
