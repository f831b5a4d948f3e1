//! One tracing session: the tokio event loop between the live probes and the
//! model. It drains the ring buffer as records arrive, gives a syscall an
//! in-kernel histogram slot the first time it is seen, and stops on target
//! exit, a signal, or the deadline. On stop it detaches the probes, drains
//! what is left, and folds the in-kernel aggregates into the model.

use std::{collections::HashMap, io, os::fd::OwnedFd, time::Duration};

use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};
use tracer_common::{Counter, SyscallHist, VdsoKey, maps};

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
    /// The ticker (a live view) asked to stop.
    Quit,
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
    vdso_calls: PerCpuHashMap<MapData, VdsoKey, u64>,
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
            vdso_calls,
        } = maps;
        let max_slots = hists.len();
        Ok(Self {
            links,
            events: register(events)?,
            hists,
            counters,
            vdso_calls,
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

    /// Runs until the target exits, a signal arrives, `deadline` passes, or
    /// the ticker asks to stop. The ticker is called every `every` with the
    /// session, to read snapshots while tracing goes on.
    pub async fn run(
        &mut self,
        target_exit: OwnedFd,
        deadline: Option<Duration>,
        policy: SignalPolicy,
        mut ticker: Option<Ticker<'_>>,
    ) -> Result<StopReason, SessionError> {
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let target_exit = register(target_exit)?;
        // A deadline far enough away to never fire stands for "none".
        let far = Duration::from_secs(100 * 365 * 86_400);
        let sleep = tokio::time::sleep(deadline.unwrap_or(far));
        tokio::pin!(sleep);
        let period = ticker.as_ref().map_or(far, |t| t.every);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut forwarded = false;
        loop {
            let wake = tokio::select! {
                guard = self.events.readable_mut() => {
                    let mut guard = guard?;
                    self.ingest.drain(guard.get_inner_mut());
                    guard.clear_ready();
                    continue;
                }
                _ = target_exit.readable() => return Ok(StopReason::TargetExited),
                () = &mut sleep => return Ok(StopReason::Deadline),
                _ = interval.tick() => Wake::Tick,
                _ = sigint.recv() => Wake::Signal(libc::SIGINT),
                _ = sigterm.recv() => Wake::Signal(libc::SIGTERM),
            };
            let signo = match wake {
                Wake::Tick => {
                    if let Some(t) = ticker.as_mut() {
                        // Events up to now belong in the snapshot.
                        self.ingest.drain(self.events.get_mut());
                        if (t.on_tick)(self).is_break() {
                            return Ok(StopReason::Quit);
                        }
                    }
                    continue;
                }
                Wake::Signal(signo) => signo,
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

    /// The model so far with the in-kernel aggregates folded in, while the
    /// probes keep running (for interval reports and live views).
    pub fn snapshot(&self) -> Result<Model, SessionError> {
        let mut model = self.ingest.model.clone();
        fold_kernel(
            &mut model,
            &self.ingest.slots,
            &self.hists,
            &self.counters,
            &self.vdso_calls,
        )?;
        Ok(model)
    }

    /// Detaches the probes, drains what is left, and returns the model with
    /// the in-kernel aggregates and loss counters folded in.
    pub fn finish(self) -> Result<Model, SessionError> {
        let Self {
            links,
            events,
            hists,
            counters,
            vdso_calls,
            mut ingest,
        } = self;
        drop(links);
        let mut events = events.into_inner();
        ingest.drain(&mut events);
        fold_kernel(
            &mut ingest.model,
            &ingest.slots,
            &hists,
            &counters,
            &vdso_calls,
        )?;
        Ok(ingest.model)
    }
}

/// Why the event loop woke up, besides ring-buffer data.
enum Wake {
    Tick,
    Signal(i32),
}

/// Periodic access to a running session.
pub struct Ticker<'a> {
    pub every: Duration,
    /// Called with the session each period; `Break` stops tracing.
    pub on_tick: &'a mut dyn FnMut(&Session) -> std::ops::ControlFlow<()>,
}

/// Adds the kernel's cumulative aggregates (histograms, vDSO call sites,
/// loss counters) to `model`.
fn fold_kernel(
    model: &mut Model,
    slots: &[u32],
    hists: &PerCpuArray<MapData, SyscallHist>,
    counters: &PerCpuArray<MapData, u64>,
    vdso_calls: &PerCpuHashMap<MapData, VdsoKey, u64>,
) -> Result<(), SessionError> {
    for (slot, &sysno) in slots.iter().enumerate() {
        let per_cpu = hists
            .get(&(slot as u32), 0)
            .map_err(|source| ProbeError::Map {
                name: maps::HISTS,
                source,
            })?;
        model.apply(&Event::aggregate(sysno, per_cpu.iter()));
    }
    for entry in vdso_calls.iter() {
        let (key, per_cpu) = entry.map_err(|source| ProbeError::Map {
            name: maps::VDSO_CALLS,
            source,
        })?;
        model.apply(&Event::vdso_calls(&key, per_cpu.iter()));
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
    let losses = &mut model.losses;
    losses.ringbuf_full += counter(Counter::RingBufFull)?;
    losses.inflight_collisions += counter(Counter::InFlightCollision)?;
    losses.unmatched_exits += counter(Counter::UnmatchedExit)?;
    losses.unknown_syscalls += counter(Counter::UnknownSyscall)?;
    losses.vdso_map_full += counter(Counter::VdsoMapFull)?;
    Ok(())
}
