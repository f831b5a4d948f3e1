//! One tracing session: the tokio event loop between the live probes and the
//! model. It drains the ring buffer as records arrive, gives a syscall an
//! in-kernel histogram slot the first time it is seen, and stops on target
//! exit, a signal, or the deadline. On stop it detaches the probes, drains
//! what is left, and folds the in-kernel aggregates into the model.

use std::{collections::HashMap, io, os::fd::OwnedFd, time::Duration};

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracer_common::{Counter, SyscallHist, maps};

use crate::{
    model::{Event, Model},
    probes::{Links, ProbeError, ProbeMaps},
};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("event loop I/O: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Probe(#[from] ProbeError),
}

/// Why the session stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    TargetExited,
    /// SIGINT or SIGTERM (the number).
    Signal(i32),
    Deadline,
}

/// What a first SIGINT/SIGTERM does.
#[derive(Clone, Copy, Debug)]
pub enum SignalPolicy {
    /// Stop tracing (attach mode).
    Stop,
    /// Pass the signal to this child and keep tracing until it exits; a
    /// second signal stops at once (run mode).
    ForwardTo(u32),
}

/// Turns ring-buffer records into events for the model, handing out
/// histogram slots as new syscall numbers show up.
struct Ingest {
    model: Model,
    /// tid → last LockOSThread call (Go targets with the uprobe).
    lock_sites: aya::maps::HashMap<MapData, u32, tracer_common::LockSite>,
    hist_slot: Array<MapData, u32>,
    /// slot → syscall number, in assignment order.
    slots: Vec<u32>,
    slot_of: HashMap<u32, u32>,
    max_slots: u32,
}

impl Ingest {
    fn record(&mut self, bytes: &[u8]) {
        match Event::decode(bytes) {
            Ok(event) => {
                if let Event::Syscall { sysno, .. } = event {
                    self.assign_slot(sysno);
                }
                self.model.apply(&event);
                if let Event::ThreadExit {
                    tid,
                    during_group_exit: false,
                    ..
                } = event
                {
                    self.locked_exit(tid);
                }
            }
            Err(err) => {
                log::warn!("undecodable ring-buffer record: {err}");
                self.model.losses.undecodable += 1;
            }
        }
    }

    /// A thread ended while the process runs: if it was locked with
    /// LockOSThread, that lock leaked it.
    fn locked_exit(&mut self, tid: u32) {
        let Ok(site) = self.lock_sites.get(&tid, 0) else {
            return;
        };
        let _ = self.lock_sites.remove(&tid);
        let n = (site.nframes as usize).min(site.frames.len());
        self.model.apply(&Event::LockedThreadExit {
            tid,
            goid: site.goid,
            frames: site.frames[..n].to_vec(),
        });
    }

    /// Gives `sysno` a histogram slot so its next calls are aggregated in
    /// the kernel instead of streamed.
    fn assign_slot(&mut self, sysno: u32) {
        if self.slot_of.contains_key(&sysno) || self.slots.len() as u32 >= self.max_slots {
            return;
        }
        let slot = self.slots.len() as u32;
        match self.hist_slot.set(sysno, slot + 1, 0) {
            Ok(()) => {
                self.slots.push(sysno);
                self.slot_of.insert(sysno, slot);
            }
            Err(err) => log::warn!("cannot assign a histogram slot to syscall {sysno}: {err}"),
        }
    }

    fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        while let Some(item) = ring.next() {
            self.record(&item);
        }
    }
}

/// Registers a descriptor with the reactor for readability.
fn register<T: std::os::fd::AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` owns its descriptor (an OwnedFd or an aya map), which
    // stays open and unchanged for as long as the AsyncFd holds it.
    unsafe { AsyncFd::register_with_interest(inner, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

pub struct Session {
    links: Links,
    events: AsyncFd<RingBuf<MapData>>,
    hists: PerCpuArray<MapData, SyscallHist>,
    counters: PerCpuArray<MapData, u64>,
    ingest: Ingest,
}

impl Session {
    /// Must be called inside a tokio runtime (it registers the ring buffer).
    pub fn new(links: Links, maps: ProbeMaps, threads_at_start: u64) -> Result<Self, SessionError> {
        let ProbeMaps {
            events,
            hist_slot,
            hists,
            counters,
            lock_sites,
        } = maps;
        let max_slots = hists.len();
        Ok(Self {
            links,
            events: register(events)?,
            hists,
            counters,
            ingest: Ingest {
                model: Model::new(threads_at_start),
                lock_sites,
                hist_slot,
                slots: Vec::new(),
                slot_of: HashMap::new(),
                max_slots,
            },
        })
    }

    /// Runs until the target exits, a signal arrives, or `deadline` passes.
    pub async fn run(
        &mut self,
        target_exit: OwnedFd,
        deadline: Option<Duration>,
        policy: SignalPolicy,
    ) -> Result<StopReason, SessionError> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let target_exit = register(target_exit)?;
        // A deadline far enough away to never fire stands for "none".
        let sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(100 * 365 * 86_400)));
        tokio::pin!(sleep);
        let mut forwarded = false;
        loop {
            let signo = tokio::select! {
                guard = self.events.readable_mut() => {
                    let mut guard = guard?;
                    self.ingest.drain(guard.get_inner_mut());
                    guard.clear_ready();
                    continue;
                }
                _ = target_exit.readable() => return Ok(StopReason::TargetExited),
                () = &mut sleep => return Ok(StopReason::Deadline),
                _ = sigint.recv() => libc::SIGINT,
                _ = sigterm.recv() => libc::SIGTERM,
            };
            match policy {
                SignalPolicy::ForwardTo(pid) if !forwarded => {
                    forwarded = true;
                    // SAFETY: kill(2) on our own child.
                    unsafe { libc::kill(pid as i32, signo) };
                }
                _ => return Ok(StopReason::Signal(signo)),
            }
        }
    }

    /// Detaches the probes, drains what is left, and returns the model with
    /// the in-kernel aggregates and loss counters folded in.
    pub fn finish(self) -> Result<Model, SessionError> {
        let Self {
            links,
            events,
            hists,
            counters,
            mut ingest,
        } = self;
        drop(links);
        let mut events = events.into_inner();
        ingest.drain(&mut events);
        for (slot, &sysno) in ingest.slots.iter().enumerate() {
            let per_cpu = hists
                .get(&(slot as u32), 0)
                .map_err(|source| ProbeError::Map {
                    name: maps::HISTS,
                    source,
                })?;
            ingest.model.apply(&Event::aggregate(sysno, per_cpu.iter()));
        }
        let counter = |c: Counter| -> Result<u64, SessionError> {
            let values = counters
                .get(&(c as u32), 0)
                .map_err(|source| ProbeError::Map {
                    name: maps::COUNTERS,
                    source,
                })?;
            Ok(values.iter().sum())
        };
        let losses = &mut ingest.model.losses;
        losses.ringbuf_full += counter(Counter::RingBufFull)?;
        losses.inflight_collisions += counter(Counter::InFlightCollision)?;
        losses.unmatched_exits += counter(Counter::UnmatchedExit)?;
        losses.unknown_syscalls += counter(Counter::UnknownSyscall)?;
        Ok(ingest.model)
    }
}
