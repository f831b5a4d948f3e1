//! One tracing session: the tokio event loop between the live probes and the
//! model. It drains the ring buffer as records arrive, gives a syscall an
//! in-kernel histogram slot the first time it is seen, relays the kernel
//! programs' log records, and stops on target exit, a signal, or the
//! deadline. The kernel's cumulative aggregates are read into the model in
//! place (never by copying the model), so a live view costs the same on the
//! hundredth tick as on the first. On stop it detaches the probes, drains
//! what is left, and reads the aggregates a last time.

use std::{
    collections::HashMap,
    io,
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use aya::maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{Signal, SignalKind, signal},
};
use tracer_common::{NUM_COUNTERS, SyscallHist, VdsoKey, maps};

use crate::{
    model::{Event, Input, Model},
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
    hist_slot: Array<MapData, u32>,
    /// slot → syscall number, in assignment order.
    slots: Vec<u32>,
    slot_of: HashMap<u32, u32>,
    max_slots: u32,
    /// `main.main` began since the last tick: the runtime's variables can
    /// be read now.
    main_pending: bool,
    /// The inputs fed to the model since they were last taken, kept while
    /// a recording is made.
    captured: Option<Vec<Input>>,
}

impl Ingest {
    fn record(&mut self, bytes: &[u8]) {
        let input = match Event::decode(bytes) {
            Ok(event) => {
                match event {
                    Event::Syscall { sysno, .. } => self.assign_slot(sysno),
                    Event::MainStart { .. } => {
                        self.main_pending = true;
                    }
                    _ => {}
                }
                Input::Event(event)
            }
            Err(err) => {
                log::warn!("undecodable ring-buffer record: {err}");
                Input::Undecodable
            }
        };
        self.feed(input);
    }

    /// Feeds the model, keeping the input when capturing.
    fn feed(&mut self, input: Input) {
        self.model.feed(&input);
        if let Some(captured) = &mut self.captured {
            captured.push(input);
        }
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

type Logger = aya_log::EbpfLogger<&'static dyn log::Log>;

/// Relays the kernel programs' log records to the `log` crate. aya-log
/// 0.3 panics on a record it cannot parse: that is caught and reported as
/// a warning, never a crash of the tracer.
fn flush_log(logger: &mut Logger) {
    let flushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| logger.flush()));
    if flushed.is_err() {
        log::warn!("a kernel log record could not be parsed and was dropped");
    }
}

pub struct Session {
    links: Links,
    events: AsyncFd<RingBuf<MapData>>,
    logger: Option<AsyncFd<Logger>>,
    hists: PerCpuArray<MapData, SyscallHist>,
    hist_slots: u32,
    counters: PerCpuArray<MapData, u64>,
    vdso_calls: PerCpuHashMap<MapData, VdsoKey, u64>,
    ingest: Ingest,
    /// Installed with the session, before "probes live" is announced: a
    /// SIGINT right after it still stops the trace with a report.
    sigint: Signal,
    sigterm: Signal,
    /// Start of the traced window: the syscall probes going live, or the
    /// launch in `run` mode. `--duration` and `traced_seconds` count from it.
    window_start: Instant,
    /// Its end, once closed (the programs ignore the target from then on).
    window_closed: Array<MapData, u32>,
    window_end: Option<Instant>,
}

impl Session {
    /// Must be called inside a tokio runtime (it registers the ring buffer).
    /// `launched`: the tracer started the process (its first exec is the
    /// launch).
    pub fn new(
        links: Links,
        maps: ProbeMaps,
        threads_at_start: u64,
        launched: bool,
    ) -> Result<Self, SessionError> {
        let ProbeMaps {
            events,
            hist_slot,
            hists,
            hist_slots,
            counters,
            vdso_calls,
            window_closed,
            logger,
        } = maps;
        let logger = match logger.map(register).transpose() {
            Ok(l) => l,
            Err(e) => {
                log::warn!("cannot watch the kernel programs' log: {e}");
                None
            }
        };
        let mut model = Model::new(threads_at_start);
        model.runtime.launched_by_exec = launched;
        let window_start = links.live_since;
        Ok(Self {
            sigint: signal(SignalKind::interrupt())?,
            sigterm: signal(SignalKind::terminate())?,
            window_start,
            window_closed,
            window_end: None,
            links,
            events: register(events)?,
            logger,
            hists,
            hist_slots,
            counters,
            vdso_calls,
            ingest: Ingest {
                model,
                hist_slot,
                slots: Vec::new(),
                slot_of: HashMap::new(),
                max_slots: hist_slots,
                main_pending: false,
                captured: None,
            },
        })
    }

    /// Starts the traced window now (`run`: at the launch, not when the
    /// probes went live on the held child).
    pub fn start_window_now(&mut self) {
        self.window_start = Instant::now();
    }

    /// When the traced window began.
    pub fn window_start(&self) -> Instant {
        self.window_start
    }

    /// When the traced window began on the clock of the events' `ts_ns`
    /// (the kernel's `bpf_ktime_get_ns`, CLOCK_MONOTONIC, which `Instant`
    /// also reads on Linux): now on that clock, less the time since.
    pub fn window_start_ns(&self) -> u64 {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        let since = self.window_start.elapsed();
        let now_ns = (now.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(now.tv_nsec as u64);
        now_ns.saturating_sub(u64::try_from(since.as_nanos()).unwrap_or(u64::MAX))
    }

    /// Seconds from the start of the traced window until now, or until it
    /// closed.
    pub fn traced_seconds(&self) -> f64 {
        let end = self.window_end.unwrap_or_else(Instant::now);
        end.duration_since(self.window_start).as_secs_f64()
    }

    /// Closes the traced window now: the kernel programs ignore the target
    /// from here on, even before the detach completes (which can lag), so
    /// every call counted began and ended inside the window. Idempotent.
    pub fn close_window(&mut self) {
        if self.window_end.is_some() {
            return;
        }
        if let Err(e) = self
            .window_closed
            .set(0, tracer_common::WINDOW_CLOSED_BY_TRACER, 0)
        {
            log::warn!("cannot close the traced window in the kernel: {e}");
        }
        self.window_end = Some(Instant::now());
    }

    /// Keeps every input fed to the model from now on, for
    /// [`Self::take_inputs`] (a recording). Call it before the session runs.
    pub fn capture_inputs(&mut self) {
        self.ingest.captured.get_or_insert_with(Vec::new);
    }

    /// The inputs fed to the model since the last call (empty unless
    /// capturing).
    pub fn take_inputs(&mut self) -> Vec<Input> {
        self.ingest
            .captured
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The model as of the last refresh.
    pub fn model(&self) -> &Model {
        &self.ingest.model
    }

    /// Runs until the target exits, a signal arrives, `deadline` passes, or
    /// the ticker asks to stop. The ticker is called every `every` (and at
    /// once when `main.main` begins) with the session.
    /// The traced window closes when it returns (see `close_window`).
    pub async fn run(
        &mut self,
        target_exit: OwnedFd,
        deadline: Option<Duration>,
        policy: SignalPolicy,
        ticker: Option<Ticker<'_>>,
    ) -> Result<StopReason, SessionError> {
        let reason = self.run_until(target_exit, deadline, policy, ticker).await;
        self.close_window();
        reason
    }

    async fn run_until(
        &mut self,
        target_exit: OwnedFd,
        deadline: Option<Duration>,
        policy: SignalPolicy,
        mut ticker: Option<Ticker<'_>>,
    ) -> Result<StopReason, SessionError> {
        let target_exit = register(target_exit)?;
        // A deadline far enough away to never fire stands for "none".
        let far = Duration::from_secs(100 * 365 * 86_400);
        let end = tokio::time::Instant::from_std(self.window_start) + deadline.unwrap_or(far);
        let sleep = tokio::time::sleep_until(end);
        tokio::pin!(sleep);
        let period = ticker.as_ref().map_or(far, |t| t.every);
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The kernel wakes this loop only once an eighth of the ring buffer
        // waits (see the kernel side's `maps::wakeup`): the rest is read here.
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut forwarded = false;
        loop {
            let wake = tokio::select! {
                guard = self.events.readable_mut() => {
                    let mut guard = guard?;
                    self.ingest.drain(guard.get_inner_mut());
                    guard.clear_ready();
                    if !self.ingest.main_pending {
                        continue;
                    }
                    Wake::Tick
                }
                guard = readable(self.logger.as_mut()) => {
                    let mut guard = guard?;
                    flush_log(guard.get_inner_mut());
                    guard.clear_ready();
                    continue;
                }
                _ = target_exit.readable() => return Ok(StopReason::TargetExited),
                () = &mut sleep => return Ok(StopReason::Deadline),
                _ = interval.tick() => Wake::Tick,
                _ = drain.tick() => {
                    self.ingest.drain(self.events.get_mut());
                    if !self.ingest.main_pending {
                        continue;
                    }
                    Wake::Tick
                }
                _ = self.sigint.recv() => Wake::Signal(libc::SIGINT),
                _ = self.sigterm.recv() => Wake::Signal(libc::SIGTERM),
            };
            let signo = match wake {
                Wake::Tick => {
                    self.ingest.main_pending = false;
                    if let Some(t) = ticker.as_mut() {
                        // Events up to now belong in what the ticker reads.
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

    /// Reads the kernel's cumulative aggregates into the model, in place,
    /// while the probes keep running (for interval reports and live views).
    pub fn refresh(&mut self) -> Result<(), SessionError> {
        fold_kernel(
            &mut self.ingest,
            self.hist_slots,
            &self.hists,
            &self.counters,
            &self.vdso_calls,
        )
    }

    /// Detaches the probes, drains what is left, and returns the model with
    /// the in-kernel aggregates and counters read a last time.
    pub fn finish(self) -> Result<Model, SessionError> {
        self.finish_with_inputs().map(|(model, _)| model)
    }

    /// [`Self::finish`], with the inputs fed to the model since they were
    /// last taken (see [`Self::capture_inputs`]).
    pub fn finish_with_inputs(mut self) -> Result<(Model, Vec<Input>), SessionError> {
        // Closed in the kernel before the detach: the links go in no fixed
        // order (and uprobes are slow to detach), so the entry program can
        // be gone while the exit program still runs; exits counted then
        // would have no entries (unexplained exits).
        self.close_window();
        let Self {
            links,
            events,
            logger,
            hists,
            hist_slots,
            counters,
            vdso_calls,
            mut ingest,
            ..
        } = self;
        crate::probes::dispatch::detach(links);
        let mut events = events.into_inner();
        ingest.drain(&mut events);
        if let Some(mut logger) = logger.map(AsyncFd::into_inner) {
            flush_log(&mut logger);
        }
        fold_kernel(&mut ingest, hist_slots, &hists, &counters, &vdso_calls)?;
        let inputs = ingest.captured.take().unwrap_or_default();
        Ok((ingest.model, inputs))
    }
}

/// Readiness of the kernel log, or never when there is none.
async fn readable(
    logger: Option<&mut AsyncFd<Logger>>,
) -> io::Result<tokio::io::unix::AsyncFdReadyMutGuard<'_, Logger>> {
    match logger {
        Some(l) => l.readable_mut().await,
        None => std::future::pending().await,
    }
}

/// Why the event loop woke up, besides ring-buffer data.
enum Wake {
    Tick,
    Signal(i32),
}

/// How often the ring buffer is read when the kernel does not wake the
/// reader (it does once an eighth of the buffer waits).
const DRAIN_EVERY: Duration = Duration::from_millis(100);

/// Periodic access to a running session.
pub struct Ticker<'a> {
    pub every: Duration,
    /// Called with the session each period; `Break` stops tracing. It
    /// calls [`Session::refresh`] when it needs the kernel's aggregates
    /// (reading them costs a copy of every per-CPU histogram).
    pub on_tick: &'a mut dyn FnMut(&mut Session) -> std::ops::ControlFlow<()>,
}

/// Replaces the model's copy of the kernel's cumulative aggregates
/// (histograms of both halves, vDSO call sites, counters).
fn fold_kernel(
    ingest: &mut Ingest,
    hist_slots: u32,
    hists: &PerCpuArray<MapData, SyscallHist>,
    counters: &PerCpuArray<MapData, u64>,
    vdso_calls: &PerCpuHashMap<MapData, VdsoKey, u64>,
) -> Result<(), SessionError> {
    let map_err = |name| move |source| ProbeError::Map { name, source };
    for slot in 0..ingest.slots.len() {
        let sysno = ingest.slots[slot];
        for idle in [false, true] {
            let index = slot as u32 + if idle { hist_slots } else { 0 };
            let per_cpu = hists.get(&index, 0).map_err(map_err(maps::HISTS))?;
            ingest.feed(Input::Event(Event::aggregate(sysno, idle, per_cpu.iter())));
        }
    }
    for entry in vdso_calls.iter() {
        let (key, per_cpu) = entry.map_err(map_err(maps::VDSO_CALLS))?;
        ingest.feed(Input::Event(Event::vdso_calls(&key, per_cpu.iter())));
    }
    let mut kernel = Vec::with_capacity(NUM_COUNTERS as usize);
    for index in 0..NUM_COUNTERS {
        let values = counters.get(&index, 0).map_err(map_err(maps::COUNTERS))?;
        kernel.push(values.iter().sum());
    }
    ingest.feed(Input::KernelCounters(kernel));
    Ok(())
}
