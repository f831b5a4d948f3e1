//! What `attach`, `threads` and `top` share: checking a live process,
//! reading its Go side while it surely exists, attaching the probes, and
//! the report once tracing stops.

use std::{os::fd::OwnedFd, path::PathBuf};

use super::recording::LiveRecording;
use crate::{
    cli::Config,
    facts::{FactsCollector, threads},
    gobin::symbolize::Symbolizer,
    live::view::{LiveState, thread_cpu_seconds},
    model::{Input, Model},
    probes::{self, AttachOptions, ProbeError, privileges},
    record::End,
    report::{Mode, TargetInfo},
    session::Session,
    target::{self, Process},
};

/// A live process, checked, with its probe plan and facts reader.
pub struct LiveTarget {
    pub pid: u32,
    pub process: Process,
    options: AttachOptions,
    /// The Go binary placed in this process, and whether attribution is on.
    pub symbolizer: Option<(Symbolizer, bool)>,
    pub facts: FactsCollector,
    /// CPU seconds the sample taken at the start cost.
    first_sample_cost: f64,
}

impl LiveTarget {
    /// Checks the PID and privileges, then reads the executable and the
    /// PIE load address now, while the process surely exists.
    pub fn prepare(config: &Config, pid: u32) -> anyhow::Result<Self> {
        if !privileges::can_trace() {
            return Err(ProbeError::NoPrivileges.into());
        }
        let process = Process::validate(pid)?;
        let exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let go = super::go_target(&exe);
        let options = super::attach_options(config, go.as_ref(), &exe, false);
        let symbolizer = super::symbolizer(go, pid);
        // A running process's runtime has started: its variables are read
        // from the first tick.
        let mut facts = super::facts_collector(pid, symbolizer.as_ref(), true);
        facts.refresh();
        // What holds the threads as the tracer arrives: in the field one
        // attaches after the explosion, and this is its evidence.
        let cpu = thread_cpu_seconds();
        facts.record_sample(threads::sample(
            pid,
            symbolizer.as_ref().map(|(s, _)| s),
            0.0,
        ));
        let first_sample_cost = (thread_cpu_seconds() - cpu).max(0.0);
        // Everything above was read from /proc/PID: it was this process's
        // only if the process is still there (else the PID may be another's).
        if process.has_exited() {
            anyhow::bail!(
                "process {pid} ({}) exited while the tracer was preparing: nothing to trace",
                process.comm
            );
        }
        Ok(Self {
            pid,
            first_sample_cost,
            process,
            options,
            symbolizer,
            facts,
        })
    }

    /// Reaches the syscall programs through `dispatcher` (`serve`).
    pub fn dispatch_through(&mut self, dispatcher: probes::dispatch::SharedDispatcher) {
        self.options.dispatcher = Some(dispatcher);
    }

    /// Traces these processes beside this one.
    pub fn select(&mut self, selection: probes::Selection) {
        self.options.selection = selection;
    }

    /// Starts a live view from the sample taken at the start.
    pub fn seed(&self, live: &mut LiveState<'_>) {
        if let Some(first) = self.facts.facts.samples.first() {
            live.seed(first.clone(), self.first_sample_cost);
        }
    }

    /// Attaches the probes (inside the tokio runtime): the session and the
    /// process's exit descriptor.
    pub fn start(&self, announce: bool) -> anyhow::Result<(Session, OwnedFd)> {
        let pid = self.pid;
        let pidfd = self.process.exit_fd()?;
        let exited_while_attaching = || {
            anyhow::anyhow!(
                "process {pid} ({}) exited while the tracer was attaching: nothing to trace",
                self.process.comm
            )
        };
        let (links, maps) = probes::attach(pid, &self.options).map_err(|e| {
            // A process that exits during the set-up makes the kernel refuse
            // its probes with "No such process": say what happened.
            if self.process.has_exited() {
                exited_while_attaching()
            } else {
                anyhow::Error::from(e)
            }
        })?;
        // The probes filter by PID number: had the process ended before
        // they were live, they could be watching another that took its PID.
        if self.process.has_exited() {
            return Err(exited_while_attaching());
        }
        let threads_at_start = target::thread_count(pid);
        let session = Session::new(links, maps, threads_at_start, false)?;
        if announce {
            let sel = &self.options.selection;
            let count = |g| sel.given.iter().filter(|&&(_, why)| why == g).count();
            let mut also = Vec::new();
            if count(probes::Given::Pid) > 0 {
                also.push(format!("{} more -p", count(probes::Given::Pid)));
            }
            if !sel.comms.is_empty() {
                also.push(format!(
                    "--comm: {} running and any that take the name",
                    count(probes::Given::Comm)
                ));
            }
            if !sel.cgroups.is_empty() {
                also.push("--cgroup: each member from its first call".to_owned());
            }
            let beside = if also.is_empty() {
                String::new()
            } else {
                format!("; also traced: {}", also.join("; "))
            };
            eprintln!(
                "tracer: probes live on pid {pid} ({}), {threads_at_start} threads{beside}; \
                 Ctrl-C to stop",
                self.process.comm
            );
        }
        Ok((session, pidfd))
    }

    /// What the report says of the process.
    pub fn info(&self, mode: Mode, exited: bool) -> TargetInfo {
        TargetInfo {
            pid: self.pid,
            command: self.process.comm.clone(),
            mode,
            exited,
            exit_code: None,
            execs: 0,
            executed: Vec::new(),
            follow_forks: self.options.follow_forks,
        }
    }

    /// Ends the recording, if any, and writes the report of a finished
    /// session (`traced_seconds`: from probes live to the stop).
    pub fn report(
        mut self,
        config: &Config,
        model: &Model,
        traced_seconds: f64,
        exited: bool,
        mode: Mode,
        recording: Option<(LiveRecording, Vec<Input>)>,
    ) -> anyhow::Result<()> {
        // A process that ended after the stop has no facts to read at the
        // end: its PID is not its own any more.
        let gone = exited || self.process.has_exited();
        if !gone {
            self.facts.refresh();
            let sym = self.symbolizer.as_ref().map(|(s, _)| s);
            self.facts
                .record_sample(threads::sample(self.pid, sym, traced_seconds));
        }
        let threads_at_end = (!gone).then(|| target::thread_count(self.pid));
        let info = self.info(mode, exited);
        // Ended before the report is written: a report that cannot be
        // written leaves a whole recording.
        let recorded = recording.map(|(r, inputs)| {
            let end = End {
                traced_seconds,
                target: info.clone(),
                threads_at_end,
                events_not_recorded: 0,
                calls_not_recorded: 0,
            };
            let sym = self.symbolizer.as_ref().map(|(s, _)| s);
            r.finish(inputs, sym, &self.facts.facts, end)
        });
        super::report(
            config,
            model,
            info,
            traced_seconds,
            threads_at_end,
            self.symbolizer.as_ref(),
            &self.facts.facts,
        )?;
        if let Some(recorded) = recorded {
            recorded?;
        }
        Ok(())
    }
}
