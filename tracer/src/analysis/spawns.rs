//! Why each new thread was created, from the runtime's own record: the
//! `newm` stack (why it wanted an M), the state of the M that wanted it
//! (locked by the program or by the runtime, in C), the P handoff that led
//! to it on the same thread (and the call that lost that P), and whether
//! `main.main` had started. The label depends only on that record, so the
//! same program gets the same labels on every run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{handoffs::Taker, sites::SiteNames};
use crate::{
    gobin::symbolize::{CallSite, Frame, Symbolizer},
    model::{
        Model, Victim,
        runtime::HandoffProbe,
        threads::{NewMRecord, Spawn, SpawnOrigin},
    },
    syscall_names,
};

/// Why the runtime (or something else) started a thread.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ThreadCause {
    /// Before `main.main`: the runtime's own start-up (sysmon, the first
    /// workers, the template thread of a cgo binary, the main goroutine
    /// locked during package init).
    StartUp,
    /// A P was taken from a goroutine in a syscall (or a cgo call) and
    /// handed to a new thread so other goroutines could run.
    SyscallHandoff { taker: Taker, cgo: bool },
    /// The runtime's own blocking wait (os/signal receiver, profiler)
    /// handed its P off.
    RuntimeWait,
    /// A goroutine locked to its thread (LockOSThread by the program)
    /// blocked; its P went to a new thread.
    LockedGoroutineBlocked,
    /// A goroutine locked by the runtime itself blocked (after start-up).
    RuntimeLockedBlocked,
    /// A goroutine exited while locked: its thread ends, its P goes to a
    /// new thread.
    LockedGoroutineExited,
    /// The template thread, started by the program's first LockOSThread.
    TemplateThread,
    /// New runnable goroutines and no idle thread (a spinning M).
    RunnableWork,
    /// The garbage collector needed a thread.
    GarbageCollector,
    /// Not created by the Go runtime (no `newm1` before it): C code in a
    /// cgo binary called pthread_create.
    NotGoRuntime,
    /// A runtime path this tracer does not name (its function).
    OtherRuntime { function: String },
    /// Nothing recorded why (a Go target traced without runtime probes,
    /// or the record was lost).
    Unknown,
}

impl ThreadCause {
    pub fn label(&self) -> String {
        match self {
            Self::StartUp => "runtime start-up (before main.main)".into(),
            Self::SyscallHandoff { taker, cgo: false } => {
                format!("syscall handoff ({})", taker.label())
            }
            Self::SyscallHandoff { taker, cgo: true } => {
                format!("cgo call handoff ({})", taker.label())
            }
            Self::RuntimeWait => "the runtime's own blocking wait handed off its P".into(),
            Self::LockedGoroutineBlocked => "a LockOSThread goroutine blocked".into(),
            Self::RuntimeLockedBlocked => "a goroutine the runtime locked blocked".into(),
            Self::LockedGoroutineExited => {
                "a LockOSThread goroutine exited (its thread ends)".into()
            }
            Self::TemplateThread => "template thread (first LockOSThread)".into(),
            Self::RunnableWork => "runnable goroutines, no idle thread (spinning M)".into(),
            Self::GarbageCollector => "garbage collector".into(),
            Self::NotGoRuntime => "not the Go runtime (C code created it)".into(),
            Self::OtherRuntime { function } => format!("other runtime path ({function})"),
            Self::Unknown => "unknown (no runtime record)".into(),
        }
    }
}

/// Spawns with one cause and one origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CauseRow {
    pub cause: ThreadCause,
    pub label: String,
    pub threads: u64,
    /// For syscall handoffs: the syscall whose P was handed off.
    pub syscall: Option<String>,
    /// Where that call (or, for a locked goroutine, its LockOSThread) was
    /// made; `None` with `why_no_site` saying why.
    pub call_site: Option<CallSite>,
    pub why_no_site: Option<String>,
}

/// Spawn causes over a range of spawns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SpawnCauses {
    pub total: u64,
    /// Spawns seen but not kept (list full): counted, cause unknown.
    pub not_kept: u64,
    pub rows: Vec<CauseRow>,
}

/// The first runtime function of `stack` that says why an M was wanted.
fn classify_stack(stack: &[Frame], r: &NewMRecord) -> ThreadCause {
    let has = |name: &str| stack.iter().any(|f| f.function.starts_with(name));
    if has("runtime.retake") {
        ThreadCause::SyscallHandoff {
            taker: Taker::SysmonRetake,
            cgo: false,
        }
    } else if has("runtime.forEachP") {
        ThreadCause::SyscallHandoff {
            taker: Taker::GcForEachP,
            cgo: false,
        }
    } else if has("runtime.mexit") {
        ThreadCause::LockedGoroutineExited
    } else if has("runtime.entersyscallblock") {
        ThreadCause::RuntimeWait
    } else if has("runtime.stoplockedm") {
        if r.m.locked_ext.is_some_and(|n| n > 0) {
            ThreadCause::LockedGoroutineBlocked
        } else {
            ThreadCause::RuntimeLockedBlocked
        }
    } else if has("runtime.startTemplateThread") || has("runtime.templateThread") {
        ThreadCause::TemplateThread
    } else if has("runtime.gcStart")
        || has("runtime.gcBgMarkStartWorkers")
        || has("runtime.startTheWorld")
        || has("runtime.gcMarkDone")
    {
        ThreadCause::GarbageCollector
    } else if has("runtime.wakep") || has("runtime.newproc") || has("runtime.ready") {
        ThreadCause::RunnableWork
    } else {
        ThreadCause::OtherRuntime {
            function: stack
                .iter()
                .find(|f| f.function != "runtime.newm" && f.function != "runtime.newm1")
                .map_or_else(|| "?".to_owned(), |f| f.function.clone()),
        }
    }
}

/// One spawn's cause, syscall and call site.
struct Classified {
    cause: ThreadCause,
    syscall: Option<String>,
    site: Result<CallSite, String>,
}

fn classify(
    origin: &SpawnOrigin,
    ts_ns: u64,
    model: &Model,
    sym: &Symbolizer,
    names: &mut SiteNames<'_>,
    cgo_binary: bool,
) -> Classified {
    let none = |cause| Classified {
        cause,
        syscall: None,
        site: Err("not a syscall".into()),
    };
    let (start, wanted) = match origin {
        SpawnOrigin::Runtime { start, wanted } => (start, wanted.as_ref()),
        SpawnOrigin::NoRuntimeRecord if cgo_binary => return none(ThreadCause::NotGoRuntime),
        SpawnOrigin::NoRuntimeRecord => return none(ThreadCause::Unknown),
    };
    if model
        .runtime
        .main_started_ns
        .is_some_and(|main| ts_ns < main)
    {
        return none(ThreadCause::StartUp);
    }
    let record = wanted.unwrap_or(start);
    let stack = sym.entry_stack(&record.frames);
    let mut cause = classify_stack(&stack, record);
    let ThreadCause::SyscallHandoff { taker, .. } = &mut cause else {
        return none(cause);
    };
    // The handoff just before, on the same thread, names the P's thread.
    let Some(h) = record.handoff.and_then(|i| model.runtime.handoffs.get(i)) else {
        return Classified {
            cause,
            syscall: None,
            site: Err("the P handoff before it was not seen".into()),
        };
    };
    if let HandoffProbe::ReleaseP { new_state } = h.probe
        && new_state == tracer_common::gostate::P_GCSTOP
    {
        *taker = Taker::StopTheWorld;
    }
    match h.victim {
        Victim::InSyscall {
            tid,
            sysno,
            start_ns,
        } => {
            let syscall = Some(syscall_names::name(sysno));
            match model.calls.call(tid, start_ns) {
                Some(call) => {
                    let key = &model.calls.sites[call.site].0;
                    if key.cgo {
                        cause = ThreadCause::SyscallHandoff {
                            taker: taker.clone(),
                            cgo: true,
                        };
                    }
                    Classified {
                        cause,
                        syscall,
                        site: names.site(call.site),
                    }
                }
                None => Classified {
                    cause,
                    syscall,
                    site: Err("the call ended as its P was taken (no stack)".into()),
                },
            }
        }
        Victim::InC { .. } => Classified {
            cause: ThreadCause::SyscallHandoff {
                taker: taker.clone(),
                cgo: true,
            },
            syscall: None,
            site: Err("the thread was in C code (a cgo call), not in a syscall".into()),
        },
        Victim::NotInSyscall { .. } => Classified {
            cause,
            syscall: None,
            site: Err(
                "the thread was outside the kernel in Go's syscall path (entering or leaving a \
                 call; likely off-CPU: the CPUs were busy)"
                    .into(),
            ),
        },
        Victim::NotFound | Victim::ScanLimit | Victim::NotSearched => Classified {
            cause,
            syscall: None,
            site: Err("the thread that lost the P was not identified".into()),
        },
    }
}

/// One spawn's cause, syscall and call site (`sym`: `None` when the
/// target is not Go, or was traced without attribution).
fn classify_spawn(
    spawn: &Spawn,
    model: &Model,
    sym: Option<&Symbolizer>,
    names: &mut SiteNames<'_>,
) -> Classified {
    match sym {
        Some(sym) => classify(&spawn.origin, spawn.ts_ns, model, sym, names, sym.cgo),
        None => Classified {
            cause: ThreadCause::Unknown,
            syscall: None,
            site: Err("not a Go program".into()),
        },
    }
}

/// Why one spawn happened, as [`causes_since`] counts it (for a timeline
/// of the spawns one by one).
pub fn cause_of(
    spawn: &Spawn,
    model: &Model,
    sym: Option<&Symbolizer>,
    names: &mut SiteNames<'_>,
) -> ThreadCause {
    classify_spawn(spawn, model, sym, names).cause
}

/// Causes of the spawns from index `first` on (a live view's latest
/// interval), grouped and sorted by threads.
pub fn causes_since(
    model: &Model,
    sym: Option<&Symbolizer>,
    names: &mut SiteNames<'_>,
    first: usize,
) -> SpawnCauses {
    let spawns = &model.threads.spawns;
    /// (cause, syscall, call site) → (threads, why there is no site).
    type Rows = BTreeMap<(ThreadCause, Option<String>, Option<CallSite>), (u64, Option<String>)>;
    let mut rows: Rows = BTreeMap::new();
    for spawn in spawns.iter().skip(first) {
        let c = classify_spawn(spawn, model, sym, names);
        let (site, why) = match c.site {
            Ok(site) => (Some(site), None),
            Err(why) => (None, Some(why)),
        };
        let entry = rows.entry((c.cause, c.syscall, site)).or_default();
        entry.0 += 1;
        if entry.1.is_none() {
            entry.1 = why;
        }
    }
    let mut rows: Vec<CauseRow> = rows
        .into_iter()
        .map(|((cause, syscall, call_site), (threads, why))| CauseRow {
            label: cause.label(),
            cause,
            threads,
            syscall,
            why_no_site: if call_site.is_some() { None } else { why },
            call_site,
        })
        .collect();
    rows.sort_by(|a, b| b.threads.cmp(&a.threads).then(a.cause.cmp(&b.cause)));
    let kept = spawns.len().saturating_sub(first) as u64;
    let not_kept = if first == 0 { spawns.dropped } else { 0 };
    SpawnCauses {
        total: kept + not_kept,
        not_kept,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        gobin::symbolize::testing::{ret, symbolizer},
        model::{Event, PHandoff, RawFd, TakenFlags, event::MState},
    };

    const NEWM: usize = 0;
    const STARTM: usize = 1;
    const HANDOFFP: usize = 2;
    const RETAKE: usize = 3;
    const STOPLOCKEDM: usize = 4;
    const MEXIT: usize = 5;
    const WAKEP: usize = 6;
    const TEMPLATE: usize = 7;
    const SLEEPER: usize = 9;
    const FUNCTIONS: &[&str] = &[
        "runtime.newm",
        "runtime.startm",
        "runtime.handoffp",
        "runtime.retake",
        "runtime.stoplockedm",
        "runtime.mexit",
        "runtime.wakep",
        "runtime.templateThread",
        "runtime.newm1",
        "main.sleeper",
    ];

    fn m(locked_ext: u32) -> MState {
        MState {
            locked_ext: Some(locked_ext),
            locked_int: Some(0),
            incgo: Some(false),
            m_id: Some(1),
        }
    }

    /// `newm` wanted on `tid` for the reason `why`, then started (on
    /// `starter`), then the spawn.
    fn spawn(model: &mut Model, tid: u32, starter: u32, why: &[usize], locked: u32, new: u32) {
        let ts = u64::from(new) * 1_000;
        model.apply(&Event::NewM {
            tid,
            ts_ns: ts,
            start: false,
            m: m(locked),
            frames: why.iter().map(|&f| ret(f)).collect(),
        });
        model.apply(&Event::NewM {
            tid: starter,
            ts_ns: ts + 1,
            start: true,
            m: m(0),
            frames: vec![ret(if starter == tid { NEWM } else { TEMPLATE })],
        });
        model.apply(&Event::ThreadSpawn {
            parent_tid: starter,
            tid: new,
            ts_ns: ts + 2,
        });
    }

    fn labels(model: &Model) -> Vec<(String, u64, Option<String>, Option<String>)> {
        let sym = symbolizer(FUNCTIONS);
        let mut names = SiteNames::new(model, Some(&sym));
        causes_since(model, Some(&sym), &mut names, 0)
            .rows
            .into_iter()
            .map(|r| {
                (
                    r.label,
                    r.threads,
                    r.syscall,
                    r.call_site.map(|s| s.frame().function.clone()),
                )
            })
            .collect()
    }

    #[test]
    fn each_spawn_gets_the_runtime_s_reason_and_the_call_that_lost_the_p() {
        let mut model = Model::new(1);
        // Start-up: before main.main.
        spawn(&mut model, 1, 1, &[WAKEP], 0, 2);
        model.apply(&Event::MainStart {
            tid: 1,
            ts_ns: 5_000,
            values: Default::default(),
        });
        // sysmon (tid 3) retakes the P of tid 10's nanosleep, then starts
        // an M for it.
        model.apply(&Event::SlowCall {
            tid: 10,
            ts_ns: 50_000,
            sysno: 35,
            ret: 0,
            duration_ns: 40_000,
            goid: 7,
            p: PHandoff::Lost,
            cgo: false,
            taken: TakenFlags {
                handoff: true,
                stw: false,
            },
            p_id: Some(0),
            fd: RawFd::default(),
            frames: vec![ret(SLEEPER), ret(SLEEPER)],
        });
        model.apply(&Event::Handoff {
            tid: 3,
            ts_ns: 20_000,
            caller: ret(RETAKE),
            p_id: Some(0),
            victim: Victim::InSyscall {
                tid: 10,
                sysno: 35,
                start_ns: 10_000,
            },
        });
        spawn(&mut model, 3, 3, &[STARTM, HANDOFFP, RETAKE], 0, 21);
        // A goroutine locked by the program blocks: deferred to the
        // template thread (tid 4).
        spawn(&mut model, 5, 4, &[STARTM, HANDOFFP, STOPLOCKEDM], 1, 31);
        // A goroutine exits while locked.
        spawn(&mut model, 6, 6, &[STARTM, HANDOFFP, MEXIT], 0, 41);
        // A thread no newm1 preceded (C code in a cgo binary would make it).
        model.apply(&Event::ThreadSpawn {
            parent_tid: 7,
            tid: 51,
            ts_ns: 60_000,
        });
        let l = labels(&model);
        let has = |label: &str| l.iter().find(|r| r.0 == label).cloned();
        assert_eq!(
            has("runtime start-up (before main.main)").map(|r| r.1),
            Some(1)
        );
        let retake = has("syscall handoff (sysmon retake)").expect("retake row");
        assert_eq!(retake.1, 1);
        assert_eq!(retake.2.as_deref(), Some("nanosleep"));
        assert_eq!(retake.3.as_deref(), Some("main.sleeper"));
        assert_eq!(
            has("a LockOSThread goroutine blocked").map(|r| r.1),
            Some(1)
        );
        assert_eq!(
            has("a LockOSThread goroutine exited (its thread ends)").map(|r| r.1),
            Some(1)
        );
        assert_eq!(has("unknown (no runtime record)").map(|r| r.1), Some(1));
        // The same record gives the same labels: deterministic.
        assert_eq!(labels(&model), l);
    }
}
