//! A recording as a timeline Perfetto (ui.perfetto.dev) and Chrome's
//! `about:tracing` open: Chrome's trace-event JSON, object form
//! (`{"traceEvents": [...], "displayTimeUnit": "ns", "otherData": {...}}`).
//!
//! - One track per thread of the target (`pid`, `tid`), named by an `M`
//!   `thread_name` event before its first event: `tid N`, and what the
//!   model knows of it (the main thread, why the runtime spawned it).
//! - Every reported call (slow, or P-losing: the report's call sites) is a
//!   complete slice (`X`) on its thread, named for its syscall, from its
//!   entry to its exit (the kernel stamps a call at its exit: `ts_ns` −
//!   `duration_ns` is its entry), with its goroutine, call site, errno, P
//!   and descriptor as args.
//! - P handoffs, slow exits, thread spawns (with the report's cause) and
//!   exits (with how), `newm`, `mexit`, stop-the-world, `main.main` and
//!   execs are instants (`i`, thread scope).
//! - Counters (`C`, on the process): threads alive after each spawn and
//!   exit; syscalls, slow calls and vDSO fallbacks per second over each
//!   interval of the kernel's readings, drawn from the interval's start
//!   (and 0 from the last one's end).
//!
//! Times (`ts`, `dur`) are microseconds, fractional, from the trace's
//! origin: the traced window's start, or an event before it. Events are
//! written as they are read (not sorted; the format does not ask it), one
//! per line.

use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    io::{self, Write},
};

use serde::Serialize;

use crate::{
    analysis::{
        errno, fd, handoffs,
        sites::SiteNames,
        spawns::{self, ThreadCause},
    },
    gobin::symbolize::{Symbolizer, call_site},
    model::{
        Event, Input, Model, PHandoff, RuntimeValues, ThreadEnd, Victim, event::MState,
        runtime::HandoffProbe,
    },
    procinfo::kallsyms::FopsMap,
    record::Item,
    report::TargetInfo,
    syscall_names,
};

/// A trace event's phase (`ph`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum Phase {
    #[serde(rename = "X")]
    Complete,
    #[serde(rename = "i")]
    Instant,
    #[serde(rename = "C")]
    Counter,
    #[serde(rename = "M")]
    Metadata,
}

/// An instant's scope (`s`): only thread-scoped ones are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
enum Scope {
    #[serde(rename = "t")]
    Thread,
}

/// One trace event; `A` is its typed `args`.
#[derive(Debug, Serialize)]
struct TraceEvent<'a, A: Serialize> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cat: Option<&'static str>,
    ph: Phase,
    /// Microseconds from the trace's origin.
    ts: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    dur: Option<f64>,
    pid: u32,
    tid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<Scope>,
    args: A,
}

/// A slow call's args.
#[derive(Debug, Serialize)]
struct CallArgs {
    /// `None`: not read (not Go, or the runtime's own call).
    #[serde(skip_serializing_if = "Option::is_none")]
    goroutine: Option<u64>,
    /// `function (file:line)`, picked as the report picks it.
    #[serde(skip_serializing_if = "Option::is_none")]
    call_site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errno: Option<String>,
    /// What happened to the goroutine's P (`lost`, `kept`...).
    p: PHandoff,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    /// The descriptor's kind, as the report names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    fd_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    cgo: bool,
    /// Exact (`dur` is rounded to the nanosecond in microseconds).
    duration_ns: u64,
}

#[derive(Debug, Serialize)]
struct SpawnArgs {
    parent_tid: u32,
    /// The report's spawn cause (its `threads_by_cause` label).
    cause: String,
}

#[derive(Debug, Serialize)]
struct ExitArgs {
    how: ThreadEnd,
}

#[derive(Debug, Serialize)]
struct SlowExitArgs {
    /// The syscall the goroutine left: the thread's last reported call,
    /// when the model ties the exit to it (as the report counts it).
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<String>,
}

#[derive(Debug, Serialize)]
struct HandoffArgs {
    /// The function that took the P (`runtime.retake`: sysmon).
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<String>,
    /// Why, as the report's handoff breakdowns name it.
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_id: Option<u32>,
    /// The thread whose P it was, as the probe found it.
    victim: Victim,
}

#[derive(Debug, Serialize)]
struct NewMArgs {
    m: MState,
    /// The probed function's callers, innermost first.
    stack: Vec<String>,
}

#[derive(Debug, Serialize)]
struct MexitArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    m_id: Option<u64>,
    /// The goroutine that locked the thread and where it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_goroutine: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock_site: Option<String>,
}

#[derive(Debug, Serialize)]
struct StwArgs {
    /// Calls holding a P the stop takes.
    victims: u32,
}

#[derive(Debug, Serialize)]
struct ExecArgs<'a> {
    program: &'a str,
}

#[derive(Debug, Serialize)]
struct NoArgs {}

#[derive(Debug, Serialize)]
struct NameArgs<'a> {
    name: &'a str,
}

#[derive(Debug, Serialize)]
struct SortArgs {
    sort_index: i64,
}

// A counter's one series: Perfetto names the track `name` + ` ` + the
// series' key ("threads alive", "syscalls per second").
#[derive(Debug, Serialize)]
struct ThreadsArgs {
    alive: u64,
}

#[derive(Debug, Serialize)]
struct RateArgs {
    #[serde(rename = "per second")]
    per_second: f64,
}

/// The trace's `otherData` (shown as metadata).
#[derive(Debug, Serialize)]
struct OtherData<'a> {
    source: &'static str,
    command: &'a str,
    pid: u32,
    /// `--slow` of the recording.
    slow_ns: u64,
    /// What `ts` 0 is.
    origin: &'static str,
    /// Where the traced window opened (µs): 0, unless an event began
    /// before it (a launcher's call waiting for the launch).
    window_start_us: f64,
}

/// The trace's clock: event times (`ts_ns`, the kernel's monotonic clock)
/// and interval ends (`elapsed_ns` since the traced window began) on one
/// axis, in microseconds from `origin_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    origin_ns: u64,
    window_start_ns: u64,
    /// The window's start was recorded (format 2): the intervals are
    /// placed exactly; else from the first event, roughly.
    exact: bool,
}

impl Clock {
    /// The origin is the window's start, or the earliest event when one
    /// began before it (a call in progress as the window opened). Without
    /// the window's start (an older recording), the earliest event stands
    /// for it.
    pub fn new(window_start_ns: Option<u64>, earliest_event_ns: Option<u64>) -> Self {
        let window = window_start_ns.or(earliest_event_ns).unwrap_or(0);
        Self {
            origin_ns: earliest_event_ns.map_or(window, |e| e.min(window)),
            window_start_ns: window,
            exact: window_start_ns.is_some(),
        }
    }

    pub fn is_exact(&self) -> bool {
        self.exact
    }

    /// `ts_ns` in microseconds from the origin.
    fn us(&self, ts_ns: u64) -> f64 {
        ts_ns.saturating_sub(self.origin_ns) as f64 / 1e3
    }

    /// `elapsed_ns` into the window, in microseconds from the origin.
    fn elapsed_us(&self, elapsed_ns: u64) -> f64 {
        self.us(self.window_start_ns.saturating_add(elapsed_ns))
    }
}

/// When an event the timeline draws began on the kernel's clock (a call:
/// its entry); `None` for the events it only counts (fast calls, exits
/// without an entry, the kernel's readings).
pub fn event_start_ns(event: &Event) -> Option<u64> {
    match *event {
        Event::SlowCall {
            ts_ns, duration_ns, ..
        } => Some(ts_ns.saturating_sub(duration_ns)),
        Event::ThreadSpawn { ts_ns, .. }
        | Event::ThreadExit { ts_ns, .. }
        | Event::SlowExit { ts_ns, .. }
        | Event::Handoff { ts_ns, .. }
        | Event::PTaken { ts_ns, .. }
        | Event::StwStart { ts_ns, .. }
        | Event::StwEnd { ts_ns, .. }
        | Event::NewM { ts_ns, .. }
        | Event::Mexit { ts_ns, .. }
        | Event::MainStart { ts_ns, .. }
        | Event::Exec { ts_ns, .. } => Some(ts_ns),
        Event::Syscall { .. }
        | Event::UnmatchedExit { .. }
        | Event::VdsoCalls { .. }
        | Event::SyscallAggregate { .. } => None,
        // Followed processes (`-f`) are not drawn: the timeline is the
        // target's.
        Event::ProcSyscall { .. }
        | Event::ProcFork { .. }
        | Event::ProcThreadSpawn { .. }
        | Event::ProcThreadExit { .. }
        | Event::ProcExec { .. }
        | Event::ProcJoin { .. } => None,
    }
}

/// Every spawn's cause by (thread, spawn time), from the whole session's
/// model as the report classifies them (`sym`: `None` without
/// attribution).
pub fn spawn_causes(model: &Model, sym: Option<&Symbolizer>) -> HashMap<(u32, u64), ThreadCause> {
    let mut names = SiteNames::new(model, sym);
    model
        .threads
        .spawns
        .iter()
        .map(|s| {
            let cause = spawns::cause_of(s, model, sym, &mut names);
            ((s.tid, s.ts_ns), cause)
        })
        .collect()
}

/// What the timeline needs besides the recording's inputs.
pub struct Context<'a> {
    pub target: &'a TargetInfo,
    pub threads_at_start: u64,
    /// The launch is the first exec (`run`), as the model takes it.
    pub launched: bool,
    pub slow_ns: u64,
    pub clock: Clock,
    pub sym: Option<&'a Symbolizer>,
    pub fops: Option<&'a FopsMap>,
    pub causes: &'a HashMap<(u32, u64), ThreadCause>,
}

/// Events written, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub slices: u64,
    pub instants: u64,
    pub counters: u64,
    pub metadata: u64,
}

/// The end of the last interval and the totals then.
#[derive(Clone, Copy, Debug, Default)]
struct IntervalMark {
    elapsed_ns: u64,
    calls: u64,
    vdso_calls: u64,
}

/// Writes a timeline as the recording's items come: [`Self::begin`], an
/// [`Self::item`] per item, [`Self::finish`].
pub struct Timeline<'a, W: Write> {
    out: W,
    cx: Context<'a>,
    /// The session's model as of the items read so far: the thread count,
    /// the syscall totals and what the model counts as a reported call.
    model: Model,
    /// Threads given their track's name.
    named: HashSet<u32>,
    /// Call sites by stack.
    sites: HashMap<Vec<u64>, Option<String>>,
    last_interval: IntervalMark,
    slow_in_interval: u64,
    /// Nothing written yet (no comma before the next event).
    first: bool,
    pub written: Written,
}

impl<'a, W: Write> Timeline<'a, W> {
    /// Writes the head of the trace: the process's name and the thread
    /// count as the window opened.
    pub fn begin(mut out: W, cx: Context<'a>) -> io::Result<Self> {
        out.write_all(b"{\"traceEvents\":[\n")?;
        let mut model = Model::new(cx.threads_at_start);
        model.runtime.launched_by_exec = cx.launched;
        let mut timeline = Self {
            out,
            cx,
            model,
            named: HashSet::new(),
            sites: HashMap::new(),
            last_interval: IntervalMark::default(),
            slow_in_interval: 0,
            first: true,
            written: Written::default(),
        };
        let t = timeline.cx.target;
        let name = format!("{} (pid {})", t.command, t.pid);
        timeline.metadata("process_name", t.pid, NameArgs { name: &name })?;
        let start = timeline.cx.clock.elapsed_us(0);
        timeline.threads_counter(start)?;
        Ok(timeline)
    }

    /// Takes one item of the recording.
    pub fn item(&mut self, item: &Item) -> io::Result<()> {
        match item {
            Item::Input(input) => self.input(input),
            Item::IntervalEnd { elapsed_ns } => self.interval_end(*elapsed_ns),
        }
    }

    /// Writes the tail of the trace; the writer back.
    pub fn finish(mut self) -> io::Result<W> {
        // The rates end with the last interval: a viewer would draw the
        // last one on to the trace's end, and its length is in the trace.
        let last = self.last_interval;
        if last.elapsed_ns > 0 {
            let at = self.cx.clock.elapsed_us(last.elapsed_ns);
            let zero = || RateArgs { per_second: 0.0 };
            self.counter("syscalls", at, zero())?;
            self.counter("slow calls", at, zero())?;
            if last.vdso_calls > 0 {
                self.counter("vDSO fallbacks", at, zero())?;
            }
        }
        let other = OtherData {
            source: concat!("tracer ", env!("CARGO_PKG_VERSION")),
            command: &self.cx.target.command,
            pid: self.cx.target.pid,
            slow_ns: self.cx.slow_ns,
            origin: if self.cx.clock.is_exact() {
                "the traced window's start, or an event before it"
            } else {
                "the first event (the recording has no window start)"
            },
            window_start_us: self.cx.clock.elapsed_us(0),
        };
        self.out
            .write_all(b"\n],\"displayTimeUnit\":\"ns\",\"otherData\":")?;
        serde_json::to_writer(&mut self.out, &other)?;
        self.out.write_all(b"}\n")?;
        Ok(self.out)
    }

    fn input(&mut self, input: &Input) -> io::Result<()> {
        let Input::Event(event) = input else {
            // The kernel's counters, an undecodable record: no time.
            self.model.feed(input);
            return Ok(());
        };
        // What the model makes of the event is read around its feeding.
        let launch_exec = matches!(*event, Event::SlowCall { sysno, ret, .. }
            if self.model.is_launch_exec(sysno, ret));
        let after_exec = self.model.runtime.execs_after_launch() > 0;
        let spawned_before = self.model.threads.spawned;
        // A slow exit belongs to its thread's last call, if the model
        // ties them (it forgets the call as it does).
        let last_call = match *event {
            Event::SlowExit { tid, .. } => self.model.calls.last_on_thread.get(&tid).copied(),
            _ => None,
        };
        let exits_tied = self.model.runtime.slow_exits.attributed;
        self.model.feed(input);
        match event {
            Event::SlowCall { .. } if launch_exec => Ok(()),
            Event::SlowCall { .. } => {
                self.slow_in_interval += 1;
                self.slow_call(event, after_exec)
            }
            &Event::ThreadSpawn {
                parent_tid,
                tid,
                ts_ns,
            } if self.model.threads.spawned > spawned_before => {
                let cause = self.cx.causes.get(&(tid, ts_ns));
                self.name_thread(tid, Some(cause))?;
                let cause = cause.map_or_else(
                    || "unknown (not kept: past the report's list of spawns)".to_owned(),
                    ThreadCause::label,
                );
                let args = SpawnArgs { parent_tid, cause };
                self.instant("thread spawn", "thread", tid, ts_ns, args)?;
                self.threads_counter(self.cx.clock.us(ts_ns))
            }
            &Event::ThreadExit { tid, ts_ns, how } => {
                self.instant("thread exit", "thread", tid, ts_ns, ExitArgs { how })?;
                self.threads_counter(self.cx.clock.us(ts_ns))
            }
            &Event::SlowExit { tid, ts_ns } => {
                let tied = self.model.runtime.slow_exits.attributed > exits_tied;
                let after = last_call.filter(|_| tied).and_then(|(_, site)| {
                    let (key, _) = self.model.calls.sites.get(site)?;
                    Some(syscall_names::name(key.sysno))
                });
                let args = SlowExitArgs { after };
                self.instant("slow exit (no P free)", "runtime", tid, ts_ns, args)
            }
            &Event::Handoff {
                tid,
                ts_ns,
                caller,
                p_id,
                victim,
            } => {
                let args = self.handoff_args(caller, HandoffProbe::Handoffp, p_id, victim);
                self.instant("P handoff", "runtime", tid, ts_ns, args)
            }
            &Event::PTaken {
                tid,
                ts_ns,
                caller,
                p_id,
                new_state,
                victim,
            } => {
                let probe = HandoffProbe::ReleaseP { new_state };
                let args = self.handoff_args(caller, probe, p_id, victim);
                self.instant("P taken", "runtime", tid, ts_ns, args)
            }
            Event::NewM {
                tid,
                ts_ns,
                start,
                m,
                frames,
            } => {
                let stack = self.cx.sym.map_or_else(Vec::new, |s| {
                    s.entry_stack(frames)
                        .iter()
                        .map(ToString::to_string)
                        .collect()
                });
                let name = if *start {
                    "newm1 (starts a thread)"
                } else {
                    "newm (wants an M)"
                };
                let args = NewMArgs { m: *m, stack };
                self.instant(name, "runtime", *tid, *ts_ns, args)
            }
            Event::Mexit {
                tid,
                ts_ns,
                m_id,
                lock_goid,
                lock_frames,
            } => {
                let lock_site = lock_frames
                    .as_deref()
                    .zip(self.cx.sym)
                    .and_then(|(frames, s)| call_site(&s.entry_stack(frames)))
                    .map(|f| f.to_string());
                let args = MexitArgs {
                    m_id: *m_id,
                    lock_goroutine: *lock_goid,
                    lock_site,
                };
                let name = "mexit (a locked goroutine exited)";
                self.instant(name, "runtime", *tid, *ts_ns, args)
            }
            &Event::StwStart {
                tid,
                ts_ns,
                victims,
                ..
            } => self.instant("stop the world", "runtime", tid, ts_ns, StwArgs { victims }),
            &Event::StwEnd { tid, ts_ns } => {
                self.instant("start the world", "runtime", tid, ts_ns, NoArgs {})
            }
            &Event::MainStart { tid, ts_ns, values } => {
                self.instant::<RuntimeValues>("main.main", "runtime", tid, ts_ns, values)
            }
            Event::Exec {
                tid,
                ts_ns,
                program,
            } => self.instant("exec", "thread", *tid, *ts_ns, ExecArgs { program }),
            // Fast calls (streamed before their histogram slot), exits
            // without an entry and the kernel's readings are counted,
            // not drawn: the counters hold them.
            Event::Syscall { .. }
            | Event::UnmatchedExit { .. }
            | Event::ThreadSpawn { .. }
            | Event::VdsoCalls { .. }
            | Event::SyscallAggregate { .. } => Ok(()),
            // The timeline is the target's: followed processes are in the
            // report's `processes`.
            Event::ProcSyscall { .. }
            | Event::ProcFork { .. }
            | Event::ProcThreadSpawn { .. }
            | Event::ProcThreadExit { .. }
            | Event::ProcExec { .. }
            | Event::ProcJoin { .. } => Ok(()),
        }
    }

    /// A reported call as a slice from its entry to its exit.
    fn slow_call(&mut self, event: &Event, after_exec: bool) -> io::Result<()> {
        let &Event::SlowCall {
            tid,
            ts_ns,
            sysno,
            ret,
            duration_ns,
            goid,
            p,
            cgo,
            ref fd,
            ref frames,
            ..
        } = event
        else {
            return Ok(());
        };
        self.name_thread(tid, None)?;
        // After an exec the stack is another program's: not symbolized.
        let call_site = if after_exec {
            None
        } else {
            self.call_site(frames)
        };
        let described = (fd.state != tracer_common::FD_NONE)
            .then(|| fd::classify(&fd::RawFd::from(fd), self.cx.fops));
        let args = CallArgs {
            goroutine: (goid != 0).then_some(goid),
            call_site,
            errno: (-4095..0)
                .contains(&ret)
                .then(|| errno::name(ret.unsigned_abs() as u32)),
            p,
            fd: described.as_ref().map(|d| d.fd),
            fd_kind: described.as_ref().map(fd::FdInfo::label),
            cgo,
            duration_ns,
        };
        let event = TraceEvent {
            name: Cow::Owned(syscall_names::name(sysno)),
            cat: Some("syscall"),
            ph: Phase::Complete,
            ts: self.cx.clock.us(ts_ns.saturating_sub(duration_ns)),
            dur: Some(duration_ns as f64 / 1e3),
            pid: self.cx.target.pid,
            tid,
            s: None,
            args,
        };
        self.written.slices += 1;
        self.write(&event)
    }

    /// The call site of a stack, symbolized once per stack.
    fn call_site(&mut self, frames: &[u64]) -> Option<String> {
        let sym = self.cx.sym?;
        self.sites
            .entry(frames.to_vec())
            .or_insert_with(|| call_site(&sym.syscall_stack(frames)).map(|f| f.to_string()))
            .clone()
    }

    fn handoff_args(
        &self,
        caller: u64,
        probe: HandoffProbe,
        p_id: Option<u32>,
        victim: Victim,
    ) -> HandoffArgs {
        let function = self.cx.sym.and_then(|s| s.function_name(caller, true));
        HandoffArgs {
            caller: function.map(str::to_owned),
            cause: function.map(|f| handoffs::cause_label(f, probe)),
            p_id,
            victim,
        }
    }

    /// The rates over the interval that just ended, drawn from its start.
    fn interval_end(&mut self, elapsed_ns: u64) -> io::Result<()> {
        let now = IntervalMark {
            elapsed_ns,
            calls: self.model.syscalls.totals(None).0,
            vdso_calls: self.model.vdso_calls.values().sum(),
        };
        let last = std::mem::replace(&mut self.last_interval, now);
        let slow = std::mem::take(&mut self.slow_in_interval);
        let seconds = elapsed_ns.saturating_sub(last.elapsed_ns) as f64 / 1e9;
        if seconds <= 0.0 {
            return Ok(());
        }
        let at = self.cx.clock.elapsed_us(last.elapsed_ns);
        let rate = |n: u64| RateArgs {
            per_second: n as f64 / seconds,
        };
        self.counter("syscalls", at, rate(now.calls.saturating_sub(last.calls)))?;
        self.counter("slow calls", at, rate(slow))?;
        // Only for programs that fall back at all: a flat zero is noise.
        if now.vdso_calls > 0 {
            let fallbacks = now.vdso_calls.saturating_sub(last.vdso_calls);
            self.counter("vDSO fallbacks", at, rate(fallbacks))?;
        }
        Ok(())
    }

    /// Names the thread's track before its first event: `cause` is the
    /// spawn's (`Some(None)`: spawned, cause not kept), `None` when it is
    /// not met at its spawn.
    fn name_thread(&mut self, tid: u32, cause: Option<Option<&ThreadCause>>) -> io::Result<()> {
        if !self.named.insert(tid) {
            return Ok(());
        }
        let role = if tid == self.cx.target.pid {
            "main thread".to_owned()
        } else {
            match cause {
                Some(Some(c)) => format!("spawned: {}", c.label()),
                Some(None) => "spawned".to_owned(),
                None => "there as tracing began".to_owned(),
            }
        };
        let name = format!("tid {tid} ({role})");
        self.metadata("thread_name", tid, NameArgs { name: &name })?;
        // The main thread first, the others as they were met.
        let sort_index = if tid == self.cx.target.pid {
            0
        } else {
            self.named.len() as i64
        };
        self.metadata("thread_sort_index", tid, SortArgs { sort_index })
    }

    fn instant<A: Serialize>(
        &mut self,
        name: &'static str,
        cat: &'static str,
        tid: u32,
        ts_ns: u64,
        args: A,
    ) -> io::Result<()> {
        self.name_thread(tid, None)?;
        let event = TraceEvent {
            name: Cow::Borrowed(name),
            cat: Some(cat),
            ph: Phase::Instant,
            ts: self.cx.clock.us(ts_ns),
            dur: None,
            pid: self.cx.target.pid,
            tid,
            s: Some(Scope::Thread),
            args,
        };
        self.written.instants += 1;
        self.write(&event)
    }

    /// The model's count of threads alive, at `ts` (µs).
    fn threads_counter(&mut self, ts: f64) -> io::Result<()> {
        let alive = self.model.threads.live();
        self.counter("threads", ts, ThreadsArgs { alive })
    }

    fn counter<A: Serialize>(&mut self, name: &'static str, ts: f64, args: A) -> io::Result<()> {
        let pid = self.cx.target.pid;
        let event = TraceEvent {
            name: Cow::Borrowed(name),
            cat: None,
            ph: Phase::Counter,
            ts,
            dur: None,
            pid,
            tid: pid,
            s: None,
            args,
        };
        self.written.counters += 1;
        self.write(&event)
    }

    fn metadata<A: Serialize>(&mut self, name: &'static str, tid: u32, args: A) -> io::Result<()> {
        let event = TraceEvent {
            name: Cow::Borrowed(name),
            cat: None,
            ph: Phase::Metadata,
            ts: 0.0,
            dur: None,
            pid: self.cx.target.pid,
            tid,
            s: None,
            args,
        };
        self.written.metadata += 1;
        self.write(&event)
    }

    /// One event, on its own line after a comma unless first.
    fn write<A: Serialize>(&mut self, event: &TraceEvent<'_, A>) -> io::Result<()> {
        if !std::mem::take(&mut self.first) {
            self.out.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut self.out, event)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::{
        gobin::symbolize::testing::{TEXT, ret, symbolizer},
        model::{RawFd, TakenFlags},
    };

    const PID: u32 = 100;
    /// The window's start on the kernel's clock.
    const WINDOW: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn target() -> TargetInfo {
        TargetInfo::finished_run(PID, "sleeper")
    }

    fn slow_call(tid: u32, end_ns: u64, duration_ns: u64, result: i64) -> Item {
        Item::Input(Input::Event(Event::SlowCall {
            tid,
            ts_ns: end_ns,
            sysno: 35,
            ret: result,
            duration_ns,
            goid: 21,
            p: PHandoff::Lost,
            cgo: false,
            taken: TakenFlags::default(),
            p_id: Some(0),
            fd: RawFd::default(),
            frames: vec![TEXT + 4, ret(1), ret(2)],
        }))
    }

    fn event(e: Event) -> Item {
        Item::Input(Input::Event(e))
    }

    /// The trace of `items`, parsed, with what was written.
    fn timeline(
        items: &[Item],
        clock: Clock,
        causes: &HashMap<(u32, u64), ThreadCause>,
    ) -> (Value, Written) {
        let sym = symbolizer(&[
            "syscall.Syscall6",
            "time.Sleep",
            "main.sleeper",
            "runtime.retake",
        ]);
        let target = target();
        let cx = Context {
            target: &target,
            threads_at_start: 1,
            launched: true,
            slow_ns: MS,
            clock,
            sym: Some(&sym),
            fops: None,
            causes,
        };
        let mut t = Timeline::begin(Vec::new(), cx).unwrap();
        for item in items {
            t.item(item).unwrap();
        }
        let written = t.written;
        let bytes = t.finish().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let trace: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: not JSON:\n{text}"));
        (trace, written)
    }

    fn events<'a>(trace: &'a Value, ph: &str) -> Vec<&'a Value> {
        trace["traceEvents"]
            .as_array()
            .expect("traceEvents")
            .iter()
            .filter(|e| e["ph"] == ph)
            .collect()
    }

    fn exact() -> Clock {
        Clock::new(Some(WINDOW), Some(WINDOW + MS))
    }

    #[test]
    fn a_slow_call_is_a_slice_from_its_entry() {
        let items = [
            // Stamped at its exit, 5 ms into the window, after 2 ms.
            slow_call(101, WINDOW + 5 * MS, 2 * MS, 0),
            // Interrupted: its errno.
            slow_call(101, WINDOW + 9 * MS, 1_500_000, -4),
        ];
        let (trace, written) = timeline(&items, exact(), &HashMap::new());
        assert_eq!(trace["displayTimeUnit"], "ns");
        assert_eq!(trace["otherData"]["pid"], PID);
        let slices = events(&trace, "X");
        assert_eq!(slices.len(), 2);
        assert_eq!(written.slices, 2);
        let s = slices[0];
        assert_eq!(s["name"], "nanosleep");
        assert_eq!(s["cat"], "syscall");
        assert_eq!(
            (s["pid"].as_u64(), s["tid"].as_u64()),
            (Some(100), Some(101))
        );
        assert_eq!(s["ts"].as_f64(), Some(3_000.0));
        assert_eq!(s["dur"].as_f64(), Some(2_000.0));
        assert_eq!(s["args"]["goroutine"], 21);
        assert_eq!(s["args"]["p"], "lost");
        assert_eq!(s["args"]["duration_ns"], 2 * MS);
        let site = s["args"]["call_site"].as_str().unwrap();
        assert!(site.starts_with("main.sleeper ("), "{site}");
        assert!(s["args"].get("errno").is_none(), "{s}");
        assert!(s["args"].get("fd").is_none(), "no descriptor: {s}");
        let s = slices[1];
        assert_eq!(s["ts"].as_f64(), Some(7_500.0));
        assert_eq!(s["dur"].as_f64(), Some(1_500.0));
        assert_eq!(s["args"]["errno"], "EINTR");
    }

    #[test]
    fn a_slice_names_its_descriptor() {
        let mut call = slow_call(101, WINDOW + 5 * MS, 2 * MS, 0);
        if let Item::Input(Input::Event(Event::SlowCall { fd, .. })) = &mut call {
            *fd = RawFd {
                fd: 5,
                state: tracer_common::FD_READ,
                i_mode: 0o010_600,
                ..RawFd::default()
            };
        }
        let (trace, _) = timeline(&[call], exact(), &HashMap::new());
        let slices = events(&trace, "X");
        assert_eq!(slices[0]["args"]["fd"], 5);
        let kind = slices[0]["args"]["fd_kind"].as_str().unwrap();
        assert!(kind.contains("pipe"), "{kind}");
    }

    #[test]
    fn each_thread_is_named_once_before_its_events() {
        let items = [
            slow_call(PID, WINDOW + 5 * MS, 2 * MS, 0),
            slow_call(101, WINDOW + 6 * MS, 2 * MS, 0),
            slow_call(101, WINDOW + 9 * MS, 2 * MS, 0),
        ];
        let (trace, _) = timeline(&items, exact(), &HashMap::new());
        let all = trace["traceEvents"].as_array().unwrap();
        let names: Vec<&Value> = all.iter().filter(|e| e["name"] == "thread_name").collect();
        let tids: Vec<u64> = names.iter().map(|e| e["tid"].as_u64().unwrap()).collect();
        assert_eq!(tids, [u64::from(PID), 101]);
        assert_eq!(names[0]["args"]["name"], "tid 100 (main thread)");
        assert_eq!(names[1]["args"]["name"], "tid 101 (there as tracing began)");
        for name in &names {
            assert_eq!(name["ph"], "M");
        }
        // Each name comes before the thread's first slice.
        for tid in tids {
            let first = |pred: &dyn Fn(&Value) -> bool| all.iter().position(pred).unwrap();
            let named = first(&|e| e["name"] == "thread_name" && e["tid"] == tid);
            let sliced = first(&|e| e["ph"] == "X" && e["tid"] == tid);
            assert!(named < sliced, "tid {tid}");
        }
        let process = all.iter().find(|e| e["name"] == "process_name").unwrap();
        assert_eq!(process["args"]["name"], "sleeper (pid 100)");
    }

    #[test]
    fn spawns_and_exits_are_instants_and_count_threads() {
        let spawned_at = WINDOW + 3 * MS;
        let items = [
            event(Event::ThreadSpawn {
                parent_tid: PID,
                tid: 102,
                ts_ns: spawned_at,
            }),
            // The same thread again: the model counts one spawn.
            event(Event::ThreadSpawn {
                parent_tid: PID,
                tid: 102,
                ts_ns: spawned_at + 1,
            }),
            event(Event::ThreadExit {
                tid: 102,
                ts_ns: WINDOW + 8 * MS,
                how: ThreadEnd::ExitedItself,
            }),
            event(Event::SlowExit {
                tid: PID,
                ts_ns: WINDOW + 9 * MS,
            }),
        ];
        let causes = HashMap::from([((102, spawned_at), ThreadCause::GarbageCollector)]);
        let (trace, _) = timeline(&items, exact(), &causes);
        let instants = events(&trace, "i");
        let spawn: Vec<&&Value> = instants
            .iter()
            .filter(|e| e["name"] == "thread spawn")
            .collect();
        assert_eq!(spawn.len(), 1);
        assert_eq!(spawn[0]["tid"], 102);
        assert_eq!(spawn[0]["s"], "t");
        assert_eq!(spawn[0]["ts"].as_f64(), Some(3_000.0));
        assert_eq!(spawn[0]["args"]["parent_tid"], PID);
        assert_eq!(
            spawn[0]["args"]["cause"],
            ThreadCause::GarbageCollector.label()
        );
        let exit = instants
            .iter()
            .find(|e| e["name"] == "thread exit")
            .unwrap();
        assert_eq!(exit["args"]["how"], "exited_itself");
        assert_eq!(exit["ts"].as_f64(), Some(8_000.0));
        assert!(
            instants
                .iter()
                .any(|e| e["name"] == "slow exit (no P free)")
        );
        let threads: Vec<(f64, u64)> = events(&trace, "C")
            .iter()
            .filter(|e| e["name"] == "threads")
            .map(|e| {
                let n = e["args"]["alive"].as_u64().unwrap();
                (e["ts"].as_f64().unwrap(), n)
            })
            .collect();
        assert_eq!(threads, [(0.0, 1), (3_000.0, 2), (8_000.0, 1)]);
        let name = events(&trace, "M")
            .into_iter()
            .find(|e| e["name"] == "thread_name" && e["tid"] == 102)
            .unwrap();
        let name = name["args"]["name"].as_str().unwrap();
        assert!(
            name.starts_with("tid 102 (spawned: garbage collector"),
            "{name}"
        );
    }

    #[test]
    fn handoffs_and_slow_exits_say_why() {
        let victim = Victim::InSyscall {
            tid: 101,
            sysno: 35,
            start_ns: WINDOW + 3 * MS,
        };
        let items = [
            // sysmon (on its thread) takes the P of the call on 101.
            event(Event::Handoff {
                tid: 99,
                ts_ns: WINDOW + 4 * MS,
                caller: ret(3),
                p_id: Some(2),
                victim,
            }),
            slow_call(101, WINDOW + 5 * MS, 2 * MS, 0),
            event(Event::SlowExit {
                tid: 101,
                ts_ns: WINDOW + 5 * MS,
            }),
        ];
        let (trace, _) = timeline(&items, exact(), &HashMap::new());
        let instants = events(&trace, "i");
        let handoff = instants.iter().find(|e| e["name"] == "P handoff").unwrap();
        assert_eq!(handoff["tid"], 99);
        assert_eq!(handoff["ts"].as_f64(), Some(4_000.0));
        assert_eq!(handoff["args"]["caller"], "runtime.retake");
        assert_eq!(handoff["args"]["cause"], "sysmon retake");
        assert_eq!(handoff["args"]["p_id"], 2);
        assert_eq!(handoff["args"]["victim"]["state"], "in_syscall");
        assert_eq!(handoff["args"]["victim"]["tid"], 101);
        let exit = instants
            .iter()
            .find(|e| e["name"] == "slow exit (no P free)")
            .unwrap();
        assert_eq!(exit["tid"], 101);
        assert_eq!(exit["args"]["after"], "nanosleep");
    }

    fn aggregate(calls: u64) -> Item {
        event(Event::SyscallAggregate {
            sysno: 0,
            idle: false,
            calls,
            errors: 0,
            total_ns: calls * 1_000,
            max_ns: 1_000,
            errnos: Vec::new(),
            buckets: Vec::new(),
        })
    }

    #[test]
    fn rates_are_per_interval_from_its_start() {
        let items = [
            slow_call(101, WINDOW + 5 * MS, 2 * MS, 0),
            aggregate(100),
            Item::IntervalEnd {
                elapsed_ns: 1_000 * MS,
            },
            // Cumulative: 300 by the second interval's end, half a second.
            aggregate(300),
            Item::IntervalEnd {
                elapsed_ns: 1_500 * MS,
            },
        ];
        let (trace, _) = timeline(&items, exact(), &HashMap::new());
        let series = |name: &str| -> Vec<(f64, f64)> {
            events(&trace, "C")
                .iter()
                .filter(|e| e["name"] == name)
                .map(|e| {
                    let v = e["args"]["per second"].as_f64().unwrap();
                    (e["ts"].as_f64().unwrap(), v)
                })
                .collect()
        };
        assert_eq!(
            series("syscalls"),
            [(0.0, 100.0), (1_000_000.0, 400.0), (1_500_000.0, 0.0)]
        );
        assert_eq!(
            series("slow calls"),
            [(0.0, 1.0), (1_000_000.0, 0.0), (1_500_000.0, 0.0)]
        );
        // No vDSO fallback: no such track.
        assert!(series("vDSO fallbacks").is_empty());
    }

    #[test]
    fn an_event_before_the_window_moves_the_origin_back() {
        // A call that began 1 ms before the window opened.
        let clock = Clock::new(Some(WINDOW), Some(WINDOW - MS));
        let items = [
            slow_call(101, WINDOW + MS, 2 * MS, 0),
            Item::IntervalEnd { elapsed_ns: MS },
        ];
        let (trace, _) = timeline(&items, clock, &HashMap::new());
        assert_eq!(events(&trace, "X")[0]["ts"].as_f64(), Some(0.0));
        assert_eq!(
            trace["otherData"]["window_start_us"].as_f64(),
            Some(1_000.0)
        );
        // The window's start, and the interval's counters from it: 1 ms in.
        let rate = events(&trace, "C")
            .into_iter()
            .find(|e| e["name"] == "slow calls")
            .unwrap();
        assert_eq!(rate["ts"].as_f64(), Some(1_000.0));
        // Without a recorded window start, the first event stands for it.
        let rough = Clock::new(None, Some(WINDOW));
        assert!(!rough.is_exact());
        assert_eq!(rough.elapsed_us(MS), 1_000.0);
    }

    #[test]
    fn the_launch_exec_is_no_slice() {
        let exec = |ts_ns| {
            event(Event::Exec {
                tid: PID,
                ts_ns,
                program: "/bin/sleeper".into(),
            })
        };
        let execve = |end_ns| {
            event(Event::SlowCall {
                tid: PID,
                ts_ns: end_ns,
                sysno: 59,
                ret: 0,
                duration_ns: 2 * MS,
                goid: 0,
                p: PHandoff::Unknown,
                cgo: false,
                taken: TakenFlags::default(),
                p_id: None,
                fd: RawFd::default(),
                frames: Vec::new(),
            })
        };
        // The launch (run mode), then an exec of the program's own.
        let items = [
            exec(WINDOW + MS),
            execve(WINDOW + 2 * MS),
            exec(WINDOW + 5 * MS),
            execve(WINDOW + 6 * MS),
        ];
        let (trace, _) = timeline(&items, exact(), &HashMap::new());
        let slices = events(&trace, "X");
        assert_eq!(slices.len(), 1, "{slices:?}");
        assert_eq!(slices[0]["name"], "execve");
        assert_eq!(slices[0]["ts"].as_f64(), Some(4_000.0));
        assert_eq!(events(&trace, "i").len(), 2);
    }

    #[test]
    fn event_start_is_a_calls_entry() {
        let Item::Input(Input::Event(call)) = slow_call(1, 10 * MS, 4 * MS, 0) else {
            unreachable!()
        };
        assert_eq!(event_start_ns(&call), Some(6 * MS));
        let Item::Input(Input::Event(agg)) = aggregate(1) else {
            unreachable!()
        };
        assert_eq!(event_start_ns(&agg), None);
        // Fast calls are counted, not drawn: they move no origin.
        let fast = Event::Syscall {
            tid: 1,
            ts_ns: 10 * MS,
            sysno: 0,
            ret: 0,
            duration_ns: MS,
            idle: false,
        };
        assert_eq!(event_start_ns(&fast), None);
    }
}
