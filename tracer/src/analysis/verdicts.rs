//! Verdicts: the field questions answered in plain words, each with the
//! evidence it rests on (typed numbers, the threshold it passed) and the
//! fix. A verdict needs enough evidence: below the stated thresholds there
//! is none, and a call site it cannot name is said to be unknown, with
//! why — never "?".
//!
//! Thread growth is judged on two kinds of evidence: the threads spawned
//! while traced (each with the call whose P handoff caused it), and what
//! holds the threads now (the samples of `threads`/`top`): in the field one
//! attaches after the explosion, when only the second exists.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{
    cgo::CgoCall,
    fd::FdKind,
    leaks::Leaks,
    sites::BlockingRow,
    spawns::{SpawnCauses, ThreadCause},
    vdso::{FallbackKind, VdsoSection},
};
use crate::{
    facts::{Facts, Holder},
    gobin::symbolize::CallSite,
    procinfo::fds::FdTarget,
    syscall_names,
};

/// Threads beyond GOMAXPROCS the runtime keeps anyway (sysmon, template
/// thread, an idle M or two, the netpoller's waiter).
pub const RUNTIME_THREADS: u64 = 4;
/// More extra threads than this is an explosion, not a bound.
pub const EXPLOSION: u64 = 16;
/// Sockets from which "many connections" is worth a verdict.
pub const MANY_SOCKETS: u64 = 64;
/// P handoffs from one kind of call below which "it is bounded" is not
/// worth saying.
pub const BOUNDED_MIN_HANDOFFS: u64 = 50;
/// vDSO fallbacks per second below which they cost nothing worth a verdict.
pub const VDSO_MIN_PER_SECOND: f64 = 100.0;
/// ... and in all.
pub const VDSO_MIN_CALLS: u64 = 1_000;
/// A limit is near at this fraction.
pub const LIMIT_FRACTION: f64 = 0.8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Needs fixing.
    Problem,
    /// Worth knowing; may need fixing.
    Warning,
    /// Context, no action.
    Info,
    /// Rules a suspect out.
    Ok,
}

/// What a blocking call waited on, for wording a verdict.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "class", content = "detail", rename_all = "snake_case")]
pub enum WaitClass {
    /// A regular file or directory, or a block device: never netpolled.
    File,
    /// A file-system call by path (open, stat, mkdir...).
    Filesystem,
    /// A pipe or FIFO in blocking mode.
    Pipe,
    /// A socket in blocking mode (not netpolled).
    Socket,
    /// A character device (a tty, /dev/...).
    Device,
    /// Another descriptor (eventfd, inotify...).
    OtherDescriptor(String),
    /// A sleep (nanosleep, clock_nanosleep).
    Sleep,
    /// A descriptor in non-blocking mode that Go's netpoller waits for: the
    /// call never waits, it only runs (in the kernel); never "blocking".
    Netpolled(String),
    /// Another syscall without a descriptor.
    Syscall(String),
}

impl WaitClass {
    fn of_kind(kind: FdKind) -> Self {
        match kind {
            FdKind::RegularFile | FdKind::Directory | FdKind::BlockDevice => Self::File,
            FdKind::Pipe => Self::Pipe,
            FdKind::Socket { .. } => Self::Socket,
            FdKind::CharDevice => Self::Device,
            other => Self::OtherDescriptor(other.label().to_owned()),
        }
    }

    fn of_target(t: &FdTarget) -> Self {
        match t {
            FdTarget::RegularFile | FdTarget::Directory | FdTarget::BlockDevice => Self::File,
            FdTarget::Pipe => Self::Pipe,
            FdTarget::Socket => Self::Socket,
            FdTarget::CharDevice => Self::Device,
            FdTarget::Anon(name) | FdTarget::Other(name) => Self::OtherDescriptor(name.clone()),
        }
    }

    fn of_syscall(syscall: &str) -> Self {
        if syscall_names::is_path_call(syscall) {
            Self::Filesystem
        } else if matches!(syscall, "nanosleep" | "clock_nanosleep") {
            Self::Sleep
        } else {
            Self::Syscall(syscall.to_owned())
        }
    }

    /// What a blocking call site waited on: its most frequent descriptor
    /// kind, else its syscall.
    pub fn of_row(row: &BlockingRow) -> Self {
        match row.fds.first() {
            Some(fd) if fd.netpolled == Some(true) => Self::Netpolled(fd.label.to_owned()),
            Some(fd) if fd.kind != FdKind::Unknown => Self::of_kind(fd.kind),
            _ => Self::of_syscall(&row.syscall),
        }
    }

    /// Whether calls of this class wait while holding their thread (the
    /// classes a blocking verdict is about).
    fn blocks(&self) -> bool {
        !matches!(self, Self::Netpolled(_))
    }

    /// "Blocking file I/O", "Blocking pipe reads"...
    fn what(&self) -> String {
        match self {
            Self::File => "Blocking file I/O calls".into(),
            Self::Filesystem => "Blocking file-system calls (by path)".into(),
            Self::Pipe => "Blocking pipe/FIFO reads and writes".into(),
            Self::Socket => {
                "Blocking socket calls (a socket in blocking mode, not netpolled)".into()
            }
            Self::Device => "Blocking device calls".into(),
            Self::OtherDescriptor(d) => format!("Blocking calls on {d} descriptors"),
            Self::Sleep => "Sleeping syscalls (nanosleep)".into(),
            Self::Netpolled(d) => format!("Calls on netpolled {d} descriptors"),
            Self::Syscall(s) => format!("Blocking {s} calls"),
        }
    }

    fn why(&self) -> &'static str {
        match self {
            Self::File | Self::Filesystem => {
                "File I/O is not netpolled: every blocked call keeps its OS thread, and the \
                 scheduler starts another to run the other goroutines."
            }
            Self::Pipe | Self::Socket | Self::Device | Self::OtherDescriptor(_) => {
                "The descriptor is in blocking mode, so the netpoller does not wait for it: every \
                 blocked call keeps its OS thread, and the scheduler starts another."
            }
            Self::Sleep | Self::Syscall(_) => {
                "A goroutine in a blocking syscall keeps its OS thread, and the scheduler starts \
                 another to run the other goroutines."
            }
            Self::Netpolled(_) => "These calls do not wait; they only run in the kernel.",
        }
    }

    fn fix(&self) -> &'static str {
        match self {
            Self::File | Self::Filesystem => {
                "bound concurrent file I/O with a semaphore (a buffered channel) sized to the \
                 storage's parallelism, e.g. 8 to 64"
            }
            Self::Pipe | Self::Socket | Self::Device | Self::OtherDescriptor(_) => {
                "keep the descriptor non-blocking so Go's netpoller waits for it (use os.File / \
                 net.Conn from os.NewFile or net.FileConn instead of raw syscalls on the fd, and \
                 do not call Fd(), which makes it blocking), or bound the goroutines that wait on it"
            }
            Self::Sleep => "use time.Sleep (a timer, no thread) instead of a raw nanosleep",
            Self::Netpolled(_) => "nothing to bound: the netpoller already waits for these",
            Self::Syscall(_) => {
                "bound the goroutines that make this call, or make it non-blocking (netpolled)"
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VerdictKind {
    /// Blocking calls of one class hold threads (an explosion).
    BlockingHoldsThreads {
        wait: WaitClass,
    },
    /// Blocking calls of one class hand off Ps without an explosion.
    BlockingBounded {
        wait: WaitClass,
    },
    /// Goroutines in C (cgo calls) hold threads.
    CgoHoldsThreads,
    LockosthreadLeak,
    NetpollerParked,
    GomaxprocsAboveQuota,
    ThreadLimit,
    VdsoFallback,
    /// The process executed a new program while traced.
    Exec,
}

/// The numbers a verdict rests on (only those that apply are set).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Evidence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_threads: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gomaxprocs: Option<u64>,
    /// Threads spawned while traced, and of them those this verdict's
    /// calls caused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawned: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spawned_by_these_calls: Option<u64>,
    /// Most threads seen held by these calls at once (samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_now: Option<u64>,
    /// Why `held_now` is not known (no thread was sampled: `run` reads
    /// none), for the verdicts that would state it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_now_unknown: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_handoffs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_second: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The threshold the evidence passed (what "enough" means here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub kind: VerdictKind,
    pub severity: Severity,
    pub evidence: Evidence,
    /// The syscall and call site the verdict points at, when it points at
    /// one.
    pub syscall: Option<String>,
    pub call_site: Option<CallSite>,
    pub cgo: Option<CgoCall>,
    /// The verdict in plain words (rendered from the fields above).
    pub summary: String,
    pub fix: Option<String>,
}

/// What the verdict rules read.
pub struct Inputs<'a> {
    pub facts: &'a Facts,
    pub traced_seconds: f64,
    pub threads_spawned: u64,
    pub peak_threads: u64,
    /// GOMAXPROCS when known (read, or the default rule's estimate; else
    /// the Ps seen in use).
    pub gomaxprocs: Option<u64>,
    pub spawns: &'a SpawnCauses,
    pub blocking: &'a [BlockingRow],
    pub leaks: &'a Leaks,
    pub vdso: &'a VdsoSection,
    pub execs: usize,
    /// The paths of the first of them.
    pub executed: &'a [String],
    pub go_version: Option<&'a str>,
}

/// "/bin/true", "/bin/sh, then /bin/true", or "3 programs (/bin/sh, …)".
fn executed_text(execs: usize, paths: &[String]) -> String {
    match (execs, paths) {
        (_, []) => format!("a new program {execs} time(s)"),
        (n, p) if n == p.len() && n <= 3 => p.join(", then "),
        (n, p) => format!("{n} programs ({}, …)", p[..p.len().min(3)].join(", ")),
    }
}

pub fn diagnose(i: &Inputs<'_>) -> Vec<Verdict> {
    let mut out = Vec::new();
    growth(i, &mut out);
    leaks(i, &mut out);
    netpoller(i, &mut out);
    quota(i, &mut out);
    limits(i, &mut out);
    vdso(i, &mut out);
    if i.execs > 0 {
        out.push(Verdict {
            kind: VerdictKind::Exec,
            severity: Severity::Info,
            evidence: Evidence {
                count: Some(i.execs as u64),
                ..Evidence::default()
            },
            syscall: None,
            call_site: None,
            cgo: None,
            summary: format!(
                "The process executed {} while traced: calls after that are the new program's, \
                 and its Go stacks are not symbolized (the report describes the program that was \
                 traced first).",
                executed_text(i.execs, i.executed)
            ),
            fix: None,
        });
    }
    out.sort_by_key(|v| v.severity);
    out
}

/// Evidence for one class of blocking: spawns it caused and the most
/// threads seen held by it, by call site.
#[derive(Default)]
struct ClassEvidence {
    spawned: u64,
    held_now: u64,
    handoffs: u64,
    /// (syscall, call site) → spawns + held, to name the main one.
    sites: BTreeMap<(String, Option<CallSite>), u64>,
}

/// Why what holds the threads is not known, when no thread was sampled.
pub const NOT_SAMPLED: &str = "not sampled: this session read no thread samples (`tracer run` takes none; attach, \
     threads and top read what holds the threads from /proc)";

fn growth(i: &Inputs<'_>, out: &mut Vec<Verdict>) {
    let g = i.gomaxprocs;
    // What holds the threads is known only from samples: none, none known.
    let sampled = !i.facts.samples.is_empty();
    let held_known = |n: u64| sampled.then_some(n);
    let held_unknown = || (!sampled).then(|| NOT_SAMPLED.to_owned());
    let extra = i.peak_threads.saturating_sub(g.unwrap_or(1));
    let explosion = extra > EXPLOSION;
    // The class of each blocking call site, to classify spawn call sites.
    let class_of_site: BTreeMap<(String, Option<CallSite>), WaitClass> = i
        .blocking
        .iter()
        .map(|r| {
            (
                (r.syscall.clone(), r.call_site.clone()),
                WaitClass::of_row(r),
            )
        })
        .collect();
    let mut classes: BTreeMap<WaitClass, ClassEvidence> = BTreeMap::new();
    let mut cgo = ClassEvidence::default();
    let mut cgo_call: Option<CgoCall> = None;
    for row in &i.spawns.rows {
        let ThreadCause::SyscallHandoff { cgo: in_c, .. } = row.cause else {
            continue;
        };
        // A handoff from a thread outside the kernel names no call.
        if row.syscall.is_none() && !in_c {
            continue;
        }
        let syscall = row.syscall.clone().unwrap_or_default();
        let key = (syscall.clone(), row.call_site.clone());
        if in_c {
            cgo.spawned += row.threads;
            *cgo.sites.entry(key.clone()).or_default() += row.threads;
            if cgo_call.is_none() {
                cgo_call = i
                    .blocking
                    .iter()
                    .find(|b| b.cgo.is_some() && b.call_site == row.call_site)
                    .and_then(|b| b.cgo.clone());
            }
            continue;
        }
        let class = class_of_site
            .get(&key)
            .cloned()
            .unwrap_or_else(|| WaitClass::of_syscall(&syscall));
        let e = classes.entry(class).or_default();
        e.spawned += row.threads;
        *e.sites.entry(key).or_default() += row.threads;
    }
    // What holds the threads now, at its peak over the samples.
    for sample in &i.facts.samples {
        /// Class → (threads, (syscall, call site, threads) rows).
        type Held = BTreeMap<WaitClass, (u64, Vec<(String, Option<CallSite>, u64)>)>;
        let mut held: Held = BTreeMap::new();
        let mut in_c = 0;
        let mut c_sites: Vec<(Option<CallSite>, u64)> = Vec::new();
        for h in &sample.holders {
            match h.holder {
                Holder::Syscall => {
                    let syscall = h.syscall.clone().unwrap_or_default();
                    let class =
                        h.fd.as_ref()
                            .map_or_else(|| WaitClass::of_syscall(&syscall), WaitClass::of_target);
                    let e = held.entry(class).or_default();
                    e.0 += h.threads;
                    e.1.push((syscall, h.call_site.clone(), h.threads));
                }
                Holder::Cgo => {
                    in_c += h.threads;
                    c_sites.push((h.call_site.clone(), h.threads));
                    if cgo_call.is_none() {
                        cgo_call = super::cgo::cgo_call(&h.go_stack);
                    }
                }
                _ => {}
            }
        }
        for (class, (n, sites)) in held {
            let e = classes.entry(class).or_default();
            if n > e.held_now {
                e.held_now = n;
                for (syscall, site, threads) in sites {
                    let entry = e.sites.entry((syscall, site)).or_default();
                    *entry = (*entry).max(threads);
                }
            }
        }
        if in_c > cgo.held_now {
            cgo.held_now = in_c;
            for (site, threads) in c_sites {
                let entry = cgo.sites.entry((String::new(), site)).or_default();
                *entry = (*entry).max(threads);
            }
        }
    }
    for row in i
        .blocking
        .iter()
        .filter(|r| r.cgo.is_none() && !r.cgo_unnamed)
    {
        let class = WaitClass::of_row(row);
        classes.entry(class).or_default().handoffs += row.p_handoffs;
    }
    let g_text = g.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    // The class that explains the growth best (of those that wait).
    let best = classes
        .iter()
        .filter(|(c, _)| c.blocks())
        .max_by_key(|(_, e)| (e.spawned.max(e.held_now), e.handoffs))
        .map(|(c, e)| (c.clone(), e));
    let drives =
        |e: &ClassEvidence| e.spawned * 2 >= i.threads_spawned.max(1) || e.held_now > EXPLOSION;
    if explosion
        && let Some((class, e)) = best
        && (e.spawned > 0 || e.held_now > 0)
        && drives(e)
        && e.spawned.max(e.held_now) >= cgo.spawned.max(cgo.held_now)
    {
        let ((syscall, site), _) = e
            .sites
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (k.clone(), *n))
            .unwrap_or(((String::new(), None), 0));
        let at = describe_site(&syscall, site.as_ref());
        let held = if e.held_now > 0 {
            format!(
                "; up to {} threads seen blocked in these calls at once",
                e.held_now
            )
        } else {
            String::new()
        };
        out.push(Verdict {
            kind: VerdictKind::BlockingHoldsThreads {
                wait: class.clone(),
            },
            severity: Severity::Problem,
            evidence: Evidence {
                peak_threads: Some(i.peak_threads),
                gomaxprocs: g,
                spawned: Some(i.threads_spawned),
                spawned_by_these_calls: Some(e.spawned),
                held_now: held_known(e.held_now),
                held_now_unknown: held_unknown(),
                p_handoffs: Some(e.handoffs),
                threshold: Some(format!(
                    "peak above GOMAXPROCS + {EXPLOSION}, and these calls caused at least half \
                     the spawns or held more than {EXPLOSION} threads at once"
                )),
                ..Evidence::default()
            },
            syscall: (!syscall.is_empty()).then(|| syscall.clone()),
            call_site: site.clone(),
            cgo: None,
            summary: if e.spawned > 0 {
                format!(
                    "{} hold threads: {} of {} threads spawned while traced followed P handoffs \
                     from these calls{held}, most {at}; peak {} threads with GOMAXPROCS \
                     {g_text}. {}",
                    class.what(),
                    e.spawned,
                    i.threads_spawned,
                    i.peak_threads,
                    class.why()
                )
            } else {
                format!(
                    "{} hold threads: {} threads seen blocked in these calls at once, most {at}; \
                     peak {} threads with GOMAXPROCS {g_text} (the threads were created before \
                     tracing began). {}",
                    class.what(),
                    e.held_now,
                    i.peak_threads,
                    class.why()
                )
            },
            fix: Some(class.fix().to_owned()),
        });
    } else if !explosion
        && let Some((class, e)) = classes
            .iter()
            .filter(|(c, e)| c.blocks() && e.handoffs >= BOUNDED_MIN_HANDOFFS)
            .max_by_key(|(_, e)| e.handoffs)
    {
        let site_row = i
            .blocking
            .iter()
            .filter(|r| WaitClass::of_row(r) == *class && r.cgo.is_none())
            .max_by_key(|r| r.p_handoffs);
        let (syscall, site) = site_row.map_or((String::new(), None), |r| {
            (r.syscall.clone(), r.call_site.clone())
        });
        out.push(Verdict {
            kind: VerdictKind::BlockingBounded {
                wait: class.clone(),
            },
            severity: Severity::Ok,
            evidence: Evidence {
                peak_threads: Some(i.peak_threads),
                gomaxprocs: g,
                p_handoffs: Some(e.handoffs),
                threshold: Some(format!(
                    "at least {BOUNDED_MIN_HANDOFFS} P handoffs, peak within GOMAXPROCS + \
                     {EXPLOSION}"
                )),
                ..Evidence::default()
            },
            syscall: (!syscall.is_empty()).then(|| syscall.clone()),
            call_site: site.clone(),
            cgo: None,
            summary: format!(
                "{} are bounded: they lost their P {} times, most {}, without a thread \
                 explosion: peak {} threads = GOMAXPROCS {g_text} + {extra}.",
                class.what(),
                e.handoffs,
                describe_site(&syscall, site.as_ref()),
                i.peak_threads
            ),
            fix: None,
        });
    }
    if cgo.spawned > 0 || cgo.held_now > RUNTIME_THREADS {
        let site = cgo
            .sites
            .iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|((_, s), _)| s.clone())
            .or_else(|| {
                i.blocking
                    .iter()
                    .filter(|b| b.cgo.is_some() || b.cgo_unnamed)
                    .max_by_key(|b| b.calls)
                    .and_then(|b| b.call_site.clone())
            });
        let call = cgo_call.or_else(|| {
            i.blocking
                .iter()
                .filter(|b| b.cgo.is_some())
                .max_by_key(|b| b.calls)
                .and_then(|b| b.cgo.clone())
        });
        let severity = if explosion {
            Severity::Problem
        } else {
            Severity::Info
        };
        let what = match &call {
            Some(c) => {
                let api = c
                    .go_api
                    .as_ref()
                    .map_or_else(String::new, |a| format!(", called through {a}"));
                let known = c
                    .known
                    .map_or_else(String::new, |k| format!(" ({})", k.what()));
                format!("goroutines waiting in {}(){known} in C{api}", c.c_function)
            }
            None => "goroutines in C code (cgo calls)".to_owned(),
        };
        let at = match &site {
            Some(s) => format!("at {s}"),
            None => "(call site unknown: no cgo call was reported with its Go stack)".to_owned(),
        };
        let in_c = if sampled {
            format!("up to {} threads seen in C at once", cgo.held_now)
        } else {
            "threads in C at once not sampled (`tracer run` takes no thread samples)".to_owned()
        };
        let fix = match call.as_ref().and_then(|c| c.known) {
            Some(k) => k.fix().to_owned(),
            None => "bound concurrent cgo calls (a semaphore), or run the C work on a fixed pool \
                     of worker goroutines"
                .to_owned(),
        };
        out.push(Verdict {
            kind: VerdictKind::CgoHoldsThreads,
            severity,
            evidence: Evidence {
                peak_threads: Some(i.peak_threads),
                gomaxprocs: g,
                spawned: Some(i.threads_spawned),
                spawned_by_these_calls: Some(cgo.spawned),
                held_now: held_known(cgo.held_now),
                held_now_unknown: held_unknown(),
                threshold: Some(format!(
                    "a problem when the peak is above GOMAXPROCS + {EXPLOSION}"
                )),
                ..Evidence::default()
            },
            syscall: None,
            call_site: site,
            cgo: call,
            summary: format!(
                "cgo calls hold threads: {} threads spawned after P handoffs from {what}, {at}; \
                 {in_c}; peak {} threads with GOMAXPROCS {g_text}. A goroutine in C keeps its \
                 thread for the whole call.",
                cgo.spawned, i.peak_threads
            ),
            fix: explosion.then_some(fix),
        });
    }
}

fn describe_site(syscall: &str, site: Option<&CallSite>) -> String {
    let call = if syscall.is_empty() {
        "calls".to_owned()
    } else {
        syscall.to_owned()
    };
    match site {
        Some(s) => format!("{call} at {s}"),
        None => format!("{call} (call site unknown: no stack was captured for them)"),
    }
}

fn leaks(i: &Inputs<'_>, out: &mut Vec<Verdict>) {
    let l = i.leaks;
    if l.total == 0 {
        return;
    }
    let top = l.rows.first();
    let site = top.and_then(|r| r.call_site.clone());
    let at = match (&site, top.and_then(|r| r.why_no_site.as_deref())) {
        (Some(s), _) => format!("locked at {s}"),
        (None, Some(why)) => format!("lock site unknown: {why}"),
        (None, None) => "lock site unknown".to_owned(),
    };
    let cost = if l.main_thread_wedged {
        format!(
            "each one costs a thread: {} destroyed, and one ran on the main thread, which the \
             runtime cannot end: it wedged it, blocked for the rest of the process",
            l.total.saturating_sub(1)
        )
    } else {
        "each one costs a thread (destroyed; the runtime starts a new one when it needs one)"
            .to_owned()
    };
    // A rate over less than a second says nothing about a one-off burst.
    let per_second = (i.traced_seconds >= 1.0).then(|| l.total as f64 / i.traced_seconds);
    let rate = per_second.map_or_else(
        || format!("in {:.2} s", i.traced_seconds),
        |r| format!("{r:.1}/s"),
    );
    out.push(Verdict {
        kind: VerdictKind::LockosthreadLeak,
        severity: Severity::Problem,
        evidence: Evidence {
            count: Some(l.total),
            per_second,
            threshold: Some("any goroutine that exits while locked".into()),
            ..Evidence::default()
        },
        syscall: None,
        call_site: site,
        cgo: None,
        summary: format!(
            "LockOSThread leaks: {} goroutines exited while locked to their thread ({rate}), \
             {at}; {cost}.",
            l.total
        ),
        fix: Some(
            "pair every runtime.LockOSThread with `defer runtime.UnlockOSThread()`".to_owned(),
        ),
    });
}

fn netpoller(i: &Inputs<'_>, out: &mut Vec<Verdict>) {
    let Some(s) = &i.facts.sockets else {
        return;
    };
    let extra = i.peak_threads.saturating_sub(i.gomaxprocs.unwrap_or(1));
    if s.sockets < MANY_SOCKETS || extra > RUNTIME_THREADS + 4 {
        return;
    }
    let g = i
        .gomaxprocs
        .map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    out.push(Verdict {
        kind: VerdictKind::NetpollerParked,
        severity: Severity::Ok,
        evidence: Evidence {
            peak_threads: Some(i.peak_threads),
            gomaxprocs: i.gomaxprocs,
            count: Some(s.sockets),
            threshold: Some(format!(
                "at least {MANY_SOCKETS} sockets, peak within GOMAXPROCS + {}",
                RUNTIME_THREADS + 4
            )),
            ..Evidence::default()
        },
        syscall: None,
        call_site: None,
        cgo: None,
        summary: format!(
            "{} sockets ({} TCP connections established) but only {} threads at peak \
             (GOMAXPROCS {g}): network waits are parked in the netpoller and cost no thread. \
             Not the cause of a thread problem.",
            s.sockets, s.tcp_established, i.peak_threads
        ),
        fix: None,
    });
}

fn quota(i: &Inputs<'_>, out: &mut Vec<Verdict>) {
    let c = &i.facts.cpu;
    let (Some(q), Some(g)) = (c.quota_cpus, c.gomaxprocs.value()) else {
        return;
    };
    if f64::from(g) <= q {
        return;
    }
    let throttled = if c.periods > 0 {
        format!(
            "; throttled in {} of {} CFS periods ({:.0} ms) while traced",
            c.throttled_periods,
            c.periods,
            c.throttled_ns as f64 / 1e6
        )
    } else {
        String::new()
    };
    let version = i.go_version.unwrap_or("this Go");
    let rule = c.default_rule.as_deref().unwrap_or("default rule unknown");
    let follows = c.default_follows_quota && c.default_gomaxprocs == Some(g);
    out.push(Verdict {
        kind: VerdictKind::GomaxprocsAboveQuota,
        severity: Severity::Problem,
        evidence: Evidence {
            gomaxprocs: Some(u64::from(g)),
            count: Some(c.throttled_periods),
            threshold: Some(format!("GOMAXPROCS above the quota of {q:.2} CPUs")),
            ..Evidence::default()
        },
        syscall: None,
        call_site: None,
        cgo: None,
        summary: format!(
            "GOMAXPROCS {g} is above the cgroup CPU quota of {q:.2} CPUs ({}){throttled}. \
             {version}: {rule}. Up to {g} threads run Go code at once, so the quota runs out early \
             in each period and every thread waits for the next one: latency spikes of up to a \
             period (usually 100 ms).",
            c.quota_cgroup.as_deref().unwrap_or("cgroup unknown"),
        ),
        fix: Some(if follows {
            format!("Go keeps at least 2 Ps; give the container at least {g} CPUs")
        } else {
            format!(
                "set GOMAXPROCS={} (or build with Go 1.25+ and a go.mod at go 1.25 or later, whose \
                 default follows the quota)",
                (q.ceil() as u64).max(1)
            )
        }),
    });
}

fn limits(i: &Inputs<'_>, out: &mut Vec<Verdict>) {
    let l = &i.facts.limits;
    let peak = i.peak_threads;
    for (name, limit) in [
        (
            "the Go thread cap",
            l.go_max_threads.as_ref().and_then(|f| f.value()),
        ),
        ("cgroup pids.max", l.pids_max),
        ("RLIMIT_NPROC", l.nproc_soft.filter(|_| !l.nproc_exempt)),
    ] {
        let Some(limit) = limit.filter(|&n| n > 0) else {
            continue;
        };
        if (peak as f64) >= limit as f64 * LIMIT_FRACTION {
            out.push(Verdict {
                kind: VerdictKind::ThreadLimit,
                severity: Severity::Problem,
                evidence: Evidence {
                    peak_threads: Some(peak),
                    limit: Some(limit),
                    threshold: Some(format!("{:.0}% of the limit", LIMIT_FRACTION * 100.0)),
                    ..Evidence::default()
                },
                syscall: None,
                call_site: None,
                cgo: None,
                summary: format!(
                    "Threads peaked at {peak}, {:.0}% of {name} ({limit}): past it, thread \
                     creation fails and the Go runtime aborts (\"failed to create new OS thread\").",
                    peak as f64 * 100.0 / limit as f64
                ),
                fix: Some(
                    "find what holds the threads (above) and bound it; raise the limit only after"
                        .to_owned(),
                ),
            });
        }
    }
}

fn vdso(i: &Inputs<'_>, out: &mut Vec<Verdict>) {
    let v = i.vdso;
    let seconds = i.traced_seconds.max(1e-3);
    // Clocks the vDSO never serves are not fallbacks: only the others.
    let fallbacks: Vec<_> = v
        .fallbacks
        .iter()
        .filter(|r| r.kind != FallbackKind::ClockNotServed)
        .collect();
    let total: u64 = fallbacks.iter().map(|r| r.calls).sum();
    let per_second = total as f64 / seconds;
    if total < VDSO_MIN_CALLS || per_second < VDSO_MIN_PER_SECOND {
        return;
    }
    let top = fallbacks[0];
    let at = match &top.call_site {
        Some(s) => format!("at {s}"),
        None => "(call site unknown: not symbolized)".to_owned(),
    };
    let fix = match top.kind {
        FallbackKind::DirectSyscall => {
            "call time.Now()/clock_gettime through the vDSO (not syscall.Syscall)"
        }
        FallbackKind::RuntimeNoVdso => {
            "the process started without a usable vDSO (check AT_SYSINFO_EHDR, vdso=0 on the kernel \
             command line, or a sandbox)"
        }
        FallbackKind::VdsoClocksource => {
            "use a vDSO-readable clocksource (tsc, kvm-clock): check \
             /sys/devices/system/clocksource/clocksource0"
        }
        FallbackKind::ClockNotServed => "use CLOCK_MONOTONIC or CLOCK_REALTIME where possible",
    };
    out.push(Verdict {
        kind: VerdictKind::VdsoFallback,
        severity: Severity::Problem,
        evidence: Evidence {
            count: Some(total),
            per_second: Some(per_second),
            threshold: Some(format!(
                "at least {VDSO_MIN_CALLS} calls and {VDSO_MIN_PER_SECOND:.0} per second"
            )),
            ..Evidence::default()
        },
        syscall: Some(top.syscall.clone()),
        call_site: top.call_site.clone(),
        cgo: None,
        summary: format!(
            "{total} clock/cpu reads went to the kernel instead of the vDSO ({per_second:.0}/s, \
             ≈{:.2} ms of syscalls per second); most: {} {} {at}: {}.",
            v.est_cost_ns_per_second / 1e6,
            top.calls,
            top.syscall,
            top.why
        ),
        fix: Some(fix.to_owned()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        analysis::{
            cgo::{CgoCall, KnownPath},
            fd::FdKind,
            sites::FdCount,
            spawns::CauseRow,
            vdso::VdsoRow,
        },
        facts::{Fact, HolderRow, ThreadSample},
        gobin::symbolize::Frame,
    };

    fn site(function: &str) -> CallSite {
        CallSite {
            frames: vec![Frame {
                function: function.into(),
                file: "/src/app.go".into(),
                line: 10,
            }],
        }
    }

    fn row(
        syscall: &str,
        function: &str,
        fd: Option<(FdKind, bool)>,
        handoffs: u64,
    ) -> BlockingRow {
        BlockingRow {
            syscall: syscall.into(),
            call_site: Some(site(function)),
            why_no_site: None,
            calls: handoffs.max(1),
            goroutines: 1,
            goroutines_capped: false,
            total_ns: 1,
            p99_ns: 1,
            max_ns: 1,
            p_handoffs: handoffs,
            slow_exits: 0,
            runtime_calls: 0,
            cgo: None,
            cgo_unnamed: false,
            fds: fd
                .map(|(kind, nonblocking)| FdCount {
                    kind,
                    label: kind.label(),
                    nonblocking,
                    netpolled: kind.pollable().map(|p| p && nonblocking),
                    calls: 1,
                })
                .into_iter()
                .collect(),
            errors: Vec::new(),
            stack: Vec::new(),
        }
    }

    fn handoff_spawns(syscall: &str, function: &str, threads: u64, cgo: bool) -> CauseRow {
        let cause = ThreadCause::SyscallHandoff {
            taker: crate::analysis::handoffs::Taker::SysmonRetake,
            cgo,
        };
        CauseRow {
            label: cause.label(),
            cause,
            threads,
            syscall: Some(syscall.into()),
            call_site: Some(site(function)),
            why_no_site: None,
        }
    }

    struct Case {
        facts: Facts,
        spawns: SpawnCauses,
        blocking: Vec<BlockingRow>,
        leaks: Leaks,
        vdso: VdsoSection,
        spawned: u64,
        peak: u64,
    }

    impl Case {
        fn new() -> Self {
            Self {
                facts: Facts::default(),
                spawns: SpawnCauses::default(),
                blocking: Vec::new(),
                leaks: Leaks::default(),
                vdso: VdsoSection {
                    facts: Default::default(),
                    fallbacks: Vec::new(),
                    total_calls: 0,
                    fallback_calls: 0,
                    est_cost_ns_per_second: 0.0,
                },
                spawned: 0,
                peak: 4,
            }
        }

        fn verdicts(&self) -> Vec<Verdict> {
            let v = diagnose(&Inputs {
                facts: &self.facts,
                traced_seconds: 10.0,
                threads_spawned: self.spawned,
                peak_threads: self.peak,
                gomaxprocs: Some(2),
                spawns: &self.spawns,
                blocking: &self.blocking,
                leaks: &self.leaks,
                vdso: &self.vdso,
                execs: 0,
                executed: &[],
                go_version: Some("go1.27.3"),
            });
            for verdict in &v {
                assert!(
                    !verdict.summary.contains("at ?") && !verdict.summary.contains(" ? "),
                    "{}",
                    verdict.summary
                );
            }
            v
        }
    }

    #[test]
    fn file_growth_is_file_io_and_netpolled_sockets_are_never_blocking() {
        let mut c = Case::new();
        c.spawned = 100;
        c.peak = 102;
        c.spawns.rows = vec![handoff_spawns("read", "main.reader", 90, false)];
        c.blocking = vec![
            row(
                "read",
                "main.reader",
                Some((FdKind::RegularFile, false)),
                300,
            ),
            // Many handoffs from netpolled socket writes: not blocking.
            row(
                "write",
                "net.(*netFD).Write",
                Some((
                    FdKind::Socket {
                        family: crate::analysis::fd::SocketFamily::Inet,
                        kind: crate::analysis::fd::SocketType::Stream,
                        protocol: 6,
                    },
                    true,
                )),
                500,
            ),
        ];
        let v = c.verdicts();
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            v[0].kind,
            VerdictKind::BlockingHoldsThreads {
                wait: WaitClass::File
            }
        );
        assert_eq!(
            v[0].call_site.as_ref().unwrap().frame().function,
            "main.reader"
        );
        assert!(v[0].fix.as_ref().unwrap().contains("semaphore"));
        // Without the explosion, only the file calls can be "bounded".
        c.peak = 10;
        c.spawns.rows.clear();
        let v = c.verdicts();
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            v[0].kind,
            VerdictKind::BlockingBounded {
                wait: WaitClass::File
            }
        );
    }

    #[test]
    fn a_pipe_read_is_worded_as_a_pipe_and_few_handoffs_are_no_evidence() {
        let mut c = Case::new();
        c.peak = 6;
        c.blocking = vec![row("read", "main.main", Some((FdKind::Pipe, false)), 60)];
        let v = c.verdicts();
        assert_eq!(
            v[0].kind,
            VerdictKind::BlockingBounded {
                wait: WaitClass::Pipe
            }
        );
        assert!(
            v[0].summary.starts_with("Blocking pipe/FIFO"),
            "{}",
            v[0].summary
        );
        c.blocking = vec![row("mkdirat", "os.MkdirAll", None, 3)];
        assert!(c.verdicts().is_empty());
    }

    #[test]
    fn an_attach_after_the_explosion_rests_on_what_holds_the_threads() {
        let mut c = Case::new();
        c.peak = 205;
        c.facts.samples = vec![ThreadSample {
            elapsed_seconds: 0.0,
            threads: 205,
            holders: vec![HolderRow {
                holder: Holder::Syscall,
                syscall: Some("nanosleep".into()),
                call_site: Some(site("main.sleeper")),
                fd: None,
                go_stack: Vec::new(),
                threads: 200,
            }],
        }];
        let v = c.verdicts();
        assert_eq!(v.len(), 1, "{v:#?}");
        assert_eq!(
            v[0].kind,
            VerdictKind::BlockingHoldsThreads {
                wait: WaitClass::Sleep
            }
        );
        assert_eq!(v[0].evidence.held_now, Some(200));
        assert_eq!(
            v[0].call_site.as_ref().unwrap().frame().function,
            "main.sleeper"
        );
    }

    #[test]
    fn the_cgo_dns_explosion_is_named_with_its_fix() {
        let mut c = Case::new();
        c.spawned = 198;
        c.peak = 203;
        c.spawns.rows = vec![handoff_spawns("poll", "main.main.func1", 198, true)];
        let mut dns = row("poll", "main.main.func1", None, 198);
        dns.cgo = Some(CgoCall {
            c_function: "getaddrinfo".into(),
            go_api: Some("net.LookupHost".into()),
            known: Some(KnownPath::LibcDns),
        });
        c.blocking = vec![dns];
        let v = c.verdicts();
        let cgo = v
            .iter()
            .find(|v| v.kind == VerdictKind::CgoHoldsThreads)
            .expect("a cgo verdict");
        assert_eq!(cgo.severity, Severity::Problem);
        assert!(cgo.summary.contains("getaddrinfo()"), "{}", cgo.summary);
        assert!(cgo.summary.contains("net.LookupHost"), "{}", cgo.summary);
        assert!(cgo.fix.as_ref().unwrap().contains("netdns=go"));
        assert!(
            !v.iter()
                .any(|v| matches!(v.kind, VerdictKind::BlockingHoldsThreads { .. })),
            "{v:#?}"
        );
        // No thread was sampled (`run`): what held them is unknown, not 0.
        assert_eq!(cgo.evidence.held_now, None);
        assert_eq!(cgo.evidence.held_now_unknown.as_deref(), Some(NOT_SAMPLED));
        assert!(!cgo.summary.contains("up to 0"), "{}", cgo.summary);
        assert!(cgo.summary.contains("not sampled"), "{}", cgo.summary);
    }

    #[test]
    fn threads_seen_in_c_name_the_c_function_after_the_explosion() {
        let mut c = Case::new();
        c.peak = 203;
        let frame = |f: &str| Frame {
            function: f.into(),
            file: "x.go".into(),
            line: 1,
        };
        c.facts.samples = vec![ThreadSample {
            elapsed_seconds: 0.0,
            threads: 203,
            holders: vec![HolderRow {
                holder: Holder::Cgo,
                syscall: Some("poll".into()),
                call_site: Some(site("main.main.func1")),
                fd: None,
                go_stack: [
                    "runtime.cgocall",
                    "net._C2func_getaddrinfo",
                    "net.cgoLookupHostIP",
                    "net.(*Resolver).LookupHost",
                    "net.LookupHost",
                    "main.main.func1",
                ]
                .iter()
                .map(|f| frame(f))
                .collect(),
                threads: 198,
            }],
        }];
        let v = c.verdicts();
        let cgo = v
            .iter()
            .find(|v| v.kind == VerdictKind::CgoHoldsThreads)
            .expect("a cgo verdict");
        assert_eq!(cgo.evidence.held_now, Some(198));
        assert_eq!(cgo.evidence.held_now_unknown, None);
        assert!(
            cgo.summary.contains("up to 198 threads seen in C at once"),
            "{}",
            cgo.summary
        );
        assert_eq!(
            cgo.call_site.as_ref().unwrap().frame().function,
            "main.main.func1"
        );
        let call = cgo.cgo.as_ref().unwrap();
        assert_eq!(call.c_function, "getaddrinfo");
        assert_eq!(call.known, Some(KnownPath::LibcDns));
    }

    #[test]
    fn clocks_the_vdso_never_serves_and_single_calls_are_no_verdict() {
        let mut c = Case::new();
        let fallback = |kind, calls| VdsoRow {
            syscall: "clock_gettime".into(),
            clock: None,
            calls,
            calls_per_second: calls as f64 / 10.0,
            kind,
            why: "",
            call_site: None,
            stack: Vec::new(),
        };
        c.vdso.fallbacks = vec![fallback(FallbackKind::ClockNotServed, 1_000_000)];
        assert!(c.verdicts().is_empty());
        c.vdso.fallbacks = vec![fallback(FallbackKind::DirectSyscall, 1)];
        assert!(c.verdicts().is_empty());
        c.vdso.fallbacks = vec![fallback(FallbackKind::DirectSyscall, 5_000)];
        let v = c.verdicts();
        assert_eq!(v[0].kind, VerdictKind::VdsoFallback);
        assert!(
            v[0].summary.contains("call site unknown"),
            "{}",
            v[0].summary
        );
    }

    #[test]
    fn a_leak_on_the_main_thread_is_said_and_an_unknown_site_is_said_unknown() {
        let mut c = Case::new();
        c.leaks = Leaks {
            total: 3,
            main_thread_wedged: true,
            rows: vec![crate::analysis::leaks::LeakRow {
                call_site: None,
                why_no_site: Some("locked before tracing began".into()),
                threads: 3,
                goroutines: 3,
                main_thread: 1,
            }],
            sites_dropped: 0,
        };
        c.facts.cpu.gomaxprocs = Fact::known(2, "test");
        let v = c.verdicts();
        assert_eq!(v[0].kind, VerdictKind::LockosthreadLeak);
        assert!(v[0].summary.contains("main thread"), "{}", v[0].summary);
        assert!(
            v[0].summary.contains("lock site unknown"),
            "{}",
            v[0].summary
        );
    }
}
