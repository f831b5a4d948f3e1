//! `schema.json` against real serializations: synthetic reports built
//! through the model and `analysis::analyze` (a non-Go run, a Go program
//! with P handoffs, slow exits, spawns, leaks and a cgo call, a thread
//! explosion, an attach with losses and vDSO fallbacks), and one value of
//! every enum variant the report can hold. Each report must validate and
//! add up (the integration suite's `report_check`, included below); a
//! renamed or missing field, an unknown enum value or a total that does not
//! add up must not.

use serde_json::{Value, json};
use tracer_common::Counter;

use super::{GoContext, Mode, Report, TargetInfo, tests::sample};
use crate::{
    analysis::{
        self,
        cgo::{CgoCall, KnownPath},
        fd::{FdKind, SocketFamily, SocketType},
        handoffs::{Count, OwnCount, OwnHandoff, Taker, Unattributed},
        sites::FdCount,
        spawns::{CauseRow, ThreadCause},
        vdso::{FallbackKind, VdsoRow},
        verdicts::{Evidence, Severity, Verdict, VerdictKind, WaitClass},
    },
    facts::{Fact, Facts, Holder, HolderRow, SocketFacts, ThreadSample},
    gobin::{
        pclntab::{FLAG_TOPFRAME, synthetic},
        symbolize::{CallSite, Symbolizer},
    },
    model::{Event, Model, PHandoff, RawFd, TakenFlags, ThreadEnd, Victim, event::MState},
    procinfo::fds::FdTarget,
};

#[path = "../../../tests/integration/report_check.rs"]
mod report_check;

/// The synthetic Go binary's functions: name, file (index into [`FILES`])
/// and line. Function `i` spans `[TEXT + 0x40 i, TEXT + 0x40 (i + 1))`.
const FUNCS: &[(&str, i64, i64)] = &[
    ("runtime.goexit", 2, 1700),
    ("internal/runtime/syscall.Syscall6", 1, 28),
    ("syscall.read", 1, 1230),
    ("os.(*File).Read", 3, 118),
    ("main.reader", 0, 12),
    ("main.worker", 0, 22),
    ("main.main", 0, 32),
    ("runtime.retake", 2, 6300),
    ("runtime.handoffp", 2, 3000),
    ("runtime.startm", 2, 2900),
    ("runtime.newm", 2, 2800),
    ("runtime.exitsyscall", 2, 4500),
    ("runtime.LockOSThread", 2, 5100),
    ("main.locker", 0, 42),
    ("runtime.forEachP", 2, 1900),
    ("runtime.wakep", 2, 3100),
    ("time.now", 4, 340),
    ("main.clock", 0, 52),
    ("net._C2func_getaddrinfo", 5, 60),
    ("net.cgoLookupHostIP", 5, 70),
    ("net.LookupHost", 5, 80),
    ("main.resolve", 0, 62),
    ("runtime.stoplockedm", 2, 2700),
    ("runtime.mexit", 2, 1600),
    ("runtime.gcStart", 2, 600),
];
const FILES: &[&str] = &[
    "/src/main.go",
    "/go/src/syscall/syscall_linux.go",
    "/go/src/runtime/proc.go",
    "/go/src/os/file.go",
    "/go/src/time/time.go",
    "/go/src/net/cgo_unix.go",
];
const TEXT: u64 = 0x40_1000;

/// An address inside function `name` (a return address, or the syscall's).
fn pc(name: &str) -> u64 {
    let i = FUNCS
        .iter()
        .position(|f| f.0 == name)
        .unwrap_or_else(|| panic!("no function {name}"));
    TEXT + 0x40 * i as u64 + 0x10
}

fn pcs(names: &[&str]) -> Vec<u64> {
    names.iter().map(|n| pc(n)).collect()
}

/// A Go 1.27 binary with [`FUNCS`], cgo or not.
fn go_binary(cgo: bool) -> Symbolizer {
    type Table = [(i64, u32); 1];
    let tables: Vec<(Table, Table)> = FUNCS
        .iter()
        .map(|&(_, file, line)| ([(line, 0x40)], [(file, 0x40)]))
        .collect();
    let funcs: Vec<synthetic::Func<'_>> = FUNCS
        .iter()
        .zip(&tables)
        .enumerate()
        .map(|(i, ((name, ..), (lines, files)))| synthetic::Func {
            name,
            entry: 0x40 * i as u32,
            end: 0x40 * (i as u32 + 1),
            flag: if i == 0 { FLAG_TOPFRAME } else { 0 },
            pcsp: &[(0, 0x40)],
            lines,
            files,
            ..Default::default()
        })
        .collect();
    let tab = synthetic::build(TEXT, FILES, &funcs, crate::gobin::pclntab::InlLayout::Go120);
    let mut sym = crate::gobin::symbolize::tests::symbolizer(tab, 0);
    sym.cgo = cgo;
    sym
}

/// A blocking regular file, as the kernel reads it.
fn regular_file() -> RawFd {
    RawFd {
        fd: 7,
        state: tracer_common::FD_READ,
        i_mode: 0o100_644,
        sb_magic: 0xef53,
        ..RawFd::default()
    }
}

/// A TCP socket in blocking mode.
fn tcp_socket() -> RawFd {
    RawFd {
        fd: 9,
        state: tracer_common::FD_READ,
        i_mode: 0o140_777,
        sock_family: 2,
        sock_type: 1,
        sock_protocol: 6,
        ..RawFd::default()
    }
}

/// Records the events of a Go program on a model.
struct GoEvents {
    model: Model,
    ts: u64,
}

impl GoEvents {
    fn new(threads: u64) -> Self {
        let mut model = Model::new(threads);
        model.apply(&Event::MainStart {
            tid: 1,
            ts_ns: 10,
            values: Default::default(),
        });
        Self {
            model,
            ts: 1_000_000_000,
        }
    }

    fn apply(&mut self, e: Event) {
        self.model.apply(&e);
    }

    fn tick(&mut self) -> u64 {
        self.ts += 1_000_000;
        self.ts
    }

    /// A call at `stack` on `tid` of `duration_ns`; returns its start.
    #[expect(clippy::too_many_arguments)]
    fn call(
        &mut self,
        tid: u32,
        sysno: u32,
        ret: i64,
        duration_ns: u64,
        p: PHandoff,
        cgo: bool,
        fd: RawFd,
        stack: &[&str],
    ) -> u64 {
        let end = self.tick();
        let start = end - duration_ns;
        self.apply(Event::Syscall {
            tid,
            ts_ns: end,
            sysno,
            ret,
            duration_ns,
            idle: false,
        });
        self.apply(Event::SlowCall {
            tid,
            ts_ns: end,
            sysno,
            ret,
            duration_ns,
            goid: u64::from(tid) + 100,
            p,
            cgo,
            taken: TakenFlags {
                handoff: p == PHandoff::Lost,
                stw: false,
            },
            p_id: Some(tid % 4),
            fd,
            frames: pcs(stack),
        });
        start
    }

    /// A P handoff by `taker_fn` on sysmon's thread (2).
    fn handoff(&mut self, taker_fn: &str, victim: Victim) {
        let ts = self.tick();
        self.apply(Event::Handoff {
            tid: 2,
            ts_ns: ts,
            caller: pc(taker_fn),
            p_id: Some(1),
            victim,
        });
    }

    /// The runtime starts thread `tid` from thread `parent`, wanted by
    /// `stack` (return addresses, innermost first).
    fn spawn(&mut self, parent: u32, tid: u32, stack: &[&str], m: MState) {
        let ts = self.tick();
        for start in [false, true] {
            self.apply(Event::NewM {
                tid: parent,
                ts_ns: ts,
                start,
                m,
                frames: pcs(stack),
            });
        }
        self.apply(Event::ThreadSpawn {
            parent_tid: parent,
            tid,
            ts_ns: ts + 1,
        });
    }
}

const READER: &[&str] = &[
    "internal/runtime/syscall.Syscall6",
    "syscall.read",
    "os.(*File).Read",
    "main.reader",
    "main.worker",
    "runtime.goexit",
];
const RETAKE: &[&str] = &["runtime.startm", "runtime.handoffp", "runtime.retake"];

fn go_facts(gomaxprocs: u32) -> Facts {
    let mut facts = Facts::default();
    facts.cpu.gomaxprocs = Fact::known(gomaxprocs, "read from runtime.gomaxprocs");
    facts.cpu.affinity_cpus = Some(2);
    facts.limits.go_max_threads = Some(Fact::known(10_000, "read from runtime.sched.maxmcount"));
    facts.vdso.runtime_clock_gettime_sym = Fact::known(0x7fff_1000, "read from the process");
    facts.vdso.mapping = Some((0x7fff_0000, 0x7fff_2000));
    facts.vdso.clocksource = Some("tsc".into());
    facts.vdso.clocksource_vdso_capable = Some(true);
    facts
}

fn build_go(model: &Model, sym: &Symbolizer, facts: &Facts, exited: bool) -> Report {
    let traced = 2.5;
    let cx = analysis::Context {
        sym: Some(sym),
        attribution: true,
        fops: None,
        facts,
        traced_seconds: traced,
    };
    let a = analysis::analyze(model, &cx);
    let target = TargetInfo {
        pid: 4242,
        command: "/tmp/workload".into(),
        mode: Mode::Run,
        exited,
        exit_code: exited.then_some(0),
        execs: 0,
        executed: Vec::new(),
        follow_forks: false,
    };
    let go = GoContext {
        symbolizer: sym,
        attribution: true,
        slow_ns: 1_000_000,
    };
    Report::build(
        model,
        &a,
        target,
        traced,
        (!exited).then_some(0),
        Some(go),
        facts,
    )
}

/// A Go program whose blocking file reads lose their P over and over
/// without a thread explosion (a "bounded" verdict), with every kind of
/// handoff attribution, slow exits of each kind, spawns of several causes,
/// LockOSThread leaks (one on the main thread) and a cgo DNS lookup.
fn go_bounded() -> Report {
    let sym = go_binary(true);
    let mut g = GoEvents::new(4);
    // 60 reads that lose their P to sysmon (the kernel named the call).
    for _ in 0..60 {
        let start = g.call(
            10,
            0,
            4096,
            2_000_000,
            PHandoff::Lost,
            false,
            regular_file(),
            READER,
        );
        g.handoff(
            "runtime.retake",
            Victim::InSyscall {
                tid: 10,
                sysno: 0,
                start_ns: start,
            },
        );
    }
    // Slow exits: one tied to the last read, one after a cgo takeover, one
    // with no call.
    let ts = g.ts + 10;
    g.apply(Event::SlowExit { tid: 10, ts_ns: ts });
    // A read that lost its P with no taker seen: a steal-back.
    g.call(
        11,
        0,
        -11,
        3_000_000,
        PHandoff::Lost,
        false,
        tcp_socket(),
        &[
            "internal/runtime/syscall.Syscall6",
            "syscall.read",
            "main.worker",
            "runtime.goexit",
        ],
    );
    // The GC takes a P from a thread in C: a cgo handoff, not a syscall.
    g.handoff("runtime.forEachP", Victim::NotInSyscall { tid: 12 });
    let ts = g.tick();
    g.apply(Event::SlowExit { tid: 12, ts_ns: ts });
    g.apply(Event::SlowExit { tid: 99, ts_ns: ts });
    // Takeovers that cannot be tied to a call.
    g.handoff("runtime.retake", Victim::NotFound);
    g.handoff("runtime.retake", Victim::ScanLimit);
    g.handoff(
        "runtime.retake",
        Victim::InSyscall {
            tid: 13,
            sysno: 1,
            start_ns: 5,
        },
    );
    // A stop-the-world (Go 1.26+ releaseP to _Pgcstop) and an unnamed taker.
    for (caller, new_state) in [
        (pc("runtime.gcStart"), tracer_common::gostate::P_GCSTOP),
        (0x10, 0),
    ] {
        let ts = g.tick();
        g.apply(Event::PTaken {
            tid: 3,
            ts_ns: ts,
            caller,
            p_id: Some(2),
            new_state,
            victim: Victim::NotFound,
        });
    }
    // Handoffs that are not takeovers.
    for caller in ["runtime.stoplockedm", "runtime.mexit"] {
        g.handoff(caller, Victim::NotSearched);
    }
    // A cgo DNS lookup (the C code's syscall, with the Go stack).
    g.call(
        14,
        45,
        0,
        5_000_000,
        PHandoff::Kept,
        true,
        tcp_socket(),
        &[
            "net._C2func_getaddrinfo",
            "net.cgoLookupHostIP",
            "net.LookupHost",
            "main.resolve",
            "runtime.goexit",
        ],
    );
    // Spawns: the GC's forEachP handoff of a thread in C, runnable work,
    // the GC, a locked goroutine's exit, and one C created.
    g.handoff("runtime.forEachP", Victim::InC { tid: 15 });
    g.spawn(
        2,
        20,
        &["runtime.startm", "runtime.handoffp", "runtime.forEachP"],
        MState::default(),
    );
    g.spawn(
        3,
        21,
        &["runtime.startm", "runtime.wakep"],
        MState::default(),
    );
    g.spawn(
        3,
        22,
        &["runtime.startm", "runtime.gcStart"],
        MState::default(),
    );
    g.spawn(4, 23, &["runtime.mexit"], MState::default());
    let ts = g.tick();
    g.apply(Event::ThreadSpawn {
        parent_tid: 5,
        tid: 24,
        ts_ns: ts,
    });
    // LockOSThread leaks: one locked at main.locker, one locked before
    // tracing on the main thread.
    let ts = g.tick();
    g.apply(Event::Mexit {
        tid: 23,
        ts_ns: ts,
        m_id: Some(3),
        lock_goid: Some(77),
        lock_frames: Some(pcs(&["main.locker", "runtime.goexit"])),
    });
    g.apply(Event::Mexit {
        tid: 1,
        ts_ns: ts,
        m_id: Some(0),
        lock_goid: None,
        lock_frames: None,
    });
    g.apply(Event::ThreadExit {
        tid: 23,
        ts_ns: ts,
        how: ThreadEnd::ExitedItself,
    });
    // The runtime's idle waits.
    g.apply(Event::Syscall {
        tid: 2,
        ts_ns: ts,
        sysno: 202,
        ret: 0,
        duration_ns: 40_000_000,
        idle: true,
    });
    g.apply(Event::Syscall {
        tid: 3,
        ts_ns: ts,
        sysno: 232,
        ret: 0,
        duration_ns: 9_000_000,
        idle: true,
    });
    // vDSO fallbacks: the runtime's clock without a vDSO, and a CPU clock.
    g.apply(Event::VdsoCalls {
        sysno: 228,
        clock: 1,
        frames: pcs(&["time.now", "main.clock"]),
        calls: 40,
    });
    g.apply(Event::VdsoCalls {
        sysno: 228,
        clock: 2,
        frames: pcs(&["internal/runtime/syscall.Syscall6", "main.clock"]),
        calls: 3,
    });
    build_go(&g.model, &sym, &go_facts(4), true)
}

/// A Go program whose blocking file reads make the runtime start a thread
/// each (an explosion past GOMAXPROCS + 16, near the cgroup's pids.max,
/// with GOMAXPROCS above the CPU quota).
fn go_explosion() -> Report {
    let sym = go_binary(false);
    let mut g = GoEvents::new(4);
    for k in 0..24 {
        let start = g.call(
            100 + k,
            0,
            4096,
            30_000_000,
            PHandoff::Lost,
            false,
            regular_file(),
            READER,
        );
        g.handoff(
            "runtime.retake",
            Victim::InSyscall {
                tid: 100 + k,
                sysno: 0,
                start_ns: start,
            },
        );
        g.spawn(2, 200 + k, RETAKE, MState::default());
        let ts = g.tick();
        g.apply(Event::SlowExit {
            tid: 100 + k,
            ts_ns: ts,
        });
    }
    let mut facts = go_facts(2);
    facts.cpu.quota_cpus = Some(1.5);
    facts.cpu.quota_cgroup = Some("/system.slice/app.service".into());
    facts.cpu.periods = 20;
    facts.cpu.throttled_periods = 7;
    facts.cpu.throttled_ns = 150_000_000;
    facts.cpu.default_gomaxprocs = Some(2);
    facts.cpu.default_rule = Some("Go 1.25+: max(2, ceil(quota))".into());
    facts.cpu.default_follows_quota = true;
    facts.limits.pids_max = Some(30);
    facts.limits.pids_current = Some(28);
    facts.limits.pids_cgroup = Some("/system.slice/app.service".into());
    facts.limits.nproc_soft = Some(1_000_000);
    facts.limits.nproc_exempt = true;
    facts.samples.push(ThreadSample {
        elapsed_seconds: 1.0,
        threads: 28,
        holders: vec![
            HolderRow {
                holder: Holder::Syscall,
                syscall: Some("read".into()),
                call_site: sym_site(&sym, READER),
                fd: Some(FdTarget::RegularFile),
                go_stack: Vec::new(),
                threads: 20,
            },
            HolderRow {
                holder: Holder::Idle,
                syscall: Some("futex".into()),
                call_site: None,
                fd: None,
                go_stack: Vec::new(),
                threads: 8,
            },
        ],
    });
    build_go(&g.model, &sym, &facts, false)
}

fn sym_site(sym: &Symbolizer, stack: &[&str]) -> Option<CallSite> {
    crate::gobin::symbolize::call_site_of(&sym.syscall_stack(&pcs(stack))).ok()
}

/// A non-Go process traced by attaching: calls in progress at attach,
/// losses, an exec, many sockets, and clock reads the vDSO sent to the
/// kernel.
fn attached() -> Report {
    let mut model = Model::new(3);
    for (tid, sysno) in [(1, 7), (2, 202), (3, 202)] {
        model.apply(&Event::UnmatchedExit {
            tid,
            ts_ns: 1,
            sysno,
            ret: 0,
            collided: false,
        });
    }
    model.apply(&Event::UnmatchedExit {
        tid: 3,
        ts_ns: 2,
        sysno: 0,
        ret: 0,
        collided: false,
    });
    model.apply(&Event::UnmatchedExit {
        tid: 2,
        ts_ns: 3,
        sysno: 1,
        ret: 0,
        collided: true,
    });
    model.apply(&Event::ThreadSpawn {
        parent_tid: 1,
        tid: 4,
        ts_ns: 4,
    });
    model.apply(&Event::UnmatchedExit {
        tid: 4,
        ts_ns: 5,
        sysno: 56,
        ret: 0,
        collided: false,
    });
    model.apply(&Event::ThreadExit {
        tid: 4,
        ts_ns: 6,
        how: ThreadEnd::ExitedItself,
    });
    for (i, ret) in [0i64, -11, -11, -4, -9].into_iter().enumerate() {
        model.apply(&Event::Syscall {
            tid: 1,
            ts_ns: 10 + i as u64,
            sysno: 0,
            ret,
            duration_ns: 1_000 * (i as u64 + 1),
            idle: false,
        });
    }
    // The kernel's aggregate of writes (calls counted in the kernel).
    model.apply(&Event::SyscallAggregate {
        sysno: 1,
        idle: false,
        calls: 10,
        errors: 2,
        total_ns: 55_000,
        max_ns: 20_000,
        errnos: vec![(32, 1), (0, 1)],
        buckets: vec![(40, 6), (60, 4)],
    });
    model.apply(&Event::Exec {
        tid: 1,
        ts_ns: 20,
        program: "/bin/true".into(),
    });
    model.apply(&Event::VdsoCalls {
        sysno: 228,
        clock: 0,
        frames: vec![0x7fff_0100, 0x40_2000],
        calls: 5_000,
    });
    model.apply(&Event::VdsoCalls {
        sysno: 96,
        clock: 0,
        frames: vec![0x40_3000],
        calls: 250,
    });
    let c = &mut model.counters;
    c.kernel[Counter::RingBufFull as usize] = 3;
    c.kernel
        [tracer_common::ringbuf_full_slot(tracer_common::EventKind::SlowCall as u32) as usize] = 2;
    c.kernel[tracer_common::ringbuf_full_slot(tracer_common::EventKind::Syscall as u32) as usize] =
        1;
    c.kernel[Counter::InFlightCollision as usize] = 1;
    c.kernel[Counter::UnknownSyscall as usize] = 2;
    c.kernel[Counter::VdsoMapFull as usize] = 1;
    c.kernel[Counter::UnmatchedExit as usize] = 7;
    c.kernel[Counter::StackMissing as usize] = 4;
    c.kernel[Counter::NoGoContext as usize] = 2;
    c.undecodable = 1;
    let mut facts = Facts::default();
    facts.vdso.mapping = Some((0x7fff_0000, 0x7fff_2000));
    facts.vdso.auxv_sysinfo_ehdr = Some(0x7fff_0000);
    facts.vdso.clocksource = Some("hpet".into());
    facts.vdso.clocksource_vdso_capable = Some(false);
    facts.vdso.runtime_clock_gettime_sym = Fact::unknown("not a Go program");
    facts.cpu.gomaxprocs = Fact::unknown("not a Go program");
    facts.sockets = Some(SocketFacts {
        sockets: 120,
        tcp_established: 100,
        tcp_listen: 1,
    });
    facts.samples.push(ThreadSample {
        elapsed_seconds: 0.5,
        threads: 3,
        holders: vec![
            HolderRow {
                holder: Holder::Syscall,
                syscall: Some("epoll_wait".into()),
                call_site: None,
                fd: Some(FdTarget::Anon("eventpoll".into())),
                go_stack: Vec::new(),
                threads: 2,
            },
            HolderRow {
                holder: Holder::Running,
                syscall: None,
                call_site: None,
                fd: None,
                go_stack: Vec::new(),
                threads: 1,
            },
        ],
    });
    let cx = analysis::Context {
        sym: None,
        attribution: false,
        fops: None,
        facts: &facts,
        traced_seconds: 2.0,
    };
    let a = analysis::analyze(&model, &cx);
    let target = TargetInfo {
        pid: 77,
        command: "nginx".into(),
        mode: Mode::Attach,
        exited: false,
        exit_code: None,
        execs: 0,
        executed: Vec::new(),
        follow_forks: false,
    };
    Report::build(&model, &a, target, 2.0, Some(3), None, &facts)
}

// One value of every variant of the report's enums. Each list is checked
// complete by an exhaustive match: a new variant does not compile until it
// is listed here, and then must validate against the schema.

fn every_taker() -> Vec<Taker> {
    let all = vec![
        Taker::SysmonRetake,
        Taker::GcForEachP,
        Taker::StopTheWorld,
        Taker::EnteredDuringStopTheWorld,
        Taker::StealBack,
        Taker::Other("runtime.someday".into()),
    ];
    for t in &all {
        match t {
            Taker::SysmonRetake
            | Taker::GcForEachP
            | Taker::StopTheWorld
            | Taker::EnteredDuringStopTheWorld
            | Taker::StealBack
            | Taker::Other(_) => {}
        }
    }
    all
}

fn every_cause() -> Vec<ThreadCause> {
    let mut all = vec![
        ThreadCause::StartUp,
        ThreadCause::RuntimeWait,
        ThreadCause::LockedGoroutineBlocked,
        ThreadCause::RuntimeLockedBlocked,
        ThreadCause::LockedGoroutineExited,
        ThreadCause::TemplateThread,
        ThreadCause::RunnableWork,
        ThreadCause::GarbageCollector,
        ThreadCause::NotGoRuntime,
        ThreadCause::OtherRuntime {
            function: "runtime.somewhere".into(),
        },
        ThreadCause::Unknown,
    ];
    for taker in every_taker() {
        for cgo in [false, true] {
            all.push(ThreadCause::SyscallHandoff {
                taker: taker.clone(),
                cgo,
            });
        }
    }
    for c in &all {
        match c {
            ThreadCause::StartUp
            | ThreadCause::SyscallHandoff { .. }
            | ThreadCause::RuntimeWait
            | ThreadCause::LockedGoroutineBlocked
            | ThreadCause::RuntimeLockedBlocked
            | ThreadCause::LockedGoroutineExited
            | ThreadCause::TemplateThread
            | ThreadCause::RunnableWork
            | ThreadCause::GarbageCollector
            | ThreadCause::NotGoRuntime
            | ThreadCause::OtherRuntime { .. }
            | ThreadCause::Unknown => {}
        }
    }
    all
}

fn every_fd_kind() -> Vec<FdKind> {
    let mut all = vec![
        FdKind::RegularFile,
        FdKind::Directory,
        FdKind::Pipe,
        FdKind::CharDevice,
        FdKind::BlockDevice,
        FdKind::Symlink,
        FdKind::EventFd,
        FdKind::Epoll,
        FdKind::TimerFd,
        FdKind::SignalFd,
        FdKind::Inotify,
        FdKind::PidFd,
        FdKind::IoUring,
        FdKind::OtherAnon,
        FdKind::Unknown,
    ];
    let families = [
        SocketFamily::Unix,
        SocketFamily::Inet,
        SocketFamily::Inet6,
        SocketFamily::Netlink,
        SocketFamily::Packet,
        SocketFamily::Vsock,
        SocketFamily::Other(44),
    ];
    let kinds = [
        SocketType::Stream,
        SocketType::Dgram,
        SocketType::Raw,
        SocketType::Rdm,
        SocketType::SeqPacket,
        SocketType::Other(10),
    ];
    for (i, family) in families.into_iter().enumerate() {
        all.push(FdKind::Socket {
            family,
            kind: kinds[i % kinds.len()],
            protocol: 6,
        });
    }
    for kind in kinds {
        all.push(FdKind::Socket {
            family: SocketFamily::Inet,
            kind,
            protocol: u16::MAX,
        });
    }
    for k in &all {
        match k {
            FdKind::RegularFile
            | FdKind::Directory
            | FdKind::Pipe
            | FdKind::Socket { .. }
            | FdKind::CharDevice
            | FdKind::BlockDevice
            | FdKind::Symlink
            | FdKind::EventFd
            | FdKind::Epoll
            | FdKind::TimerFd
            | FdKind::SignalFd
            | FdKind::Inotify
            | FdKind::PidFd
            | FdKind::IoUring
            | FdKind::OtherAnon
            | FdKind::Unknown => {}
        }
        if let FdKind::Socket { family, kind, .. } = k {
            match family {
                SocketFamily::Unix
                | SocketFamily::Inet
                | SocketFamily::Inet6
                | SocketFamily::Netlink
                | SocketFamily::Packet
                | SocketFamily::Vsock
                | SocketFamily::Other(_) => {}
            }
            match kind {
                SocketType::Stream
                | SocketType::Dgram
                | SocketType::Raw
                | SocketType::Rdm
                | SocketType::SeqPacket
                | SocketType::Other(_) => {}
            }
        }
    }
    all
}

fn every_fd_target() -> Vec<FdTarget> {
    let all = vec![
        FdTarget::RegularFile,
        FdTarget::Directory,
        FdTarget::Pipe,
        FdTarget::Socket,
        FdTarget::CharDevice,
        FdTarget::BlockDevice,
        FdTarget::Anon("eventfd".into()),
        FdTarget::Other("pidfd".into()),
    ];
    for t in &all {
        match t {
            FdTarget::RegularFile
            | FdTarget::Directory
            | FdTarget::Pipe
            | FdTarget::Socket
            | FdTarget::CharDevice
            | FdTarget::BlockDevice
            | FdTarget::Anon(_)
            | FdTarget::Other(_) => {}
        }
    }
    all
}

fn every_holder() -> Vec<Holder> {
    let all = vec![
        Holder::Syscall,
        Holder::Cgo,
        Holder::Locked,
        Holder::Idle,
        Holder::Netpoller,
        Holder::Sysmon,
        Holder::Running,
        Holder::Other,
    ];
    for h in &all {
        match h {
            Holder::Syscall
            | Holder::Cgo
            | Holder::Locked
            | Holder::Idle
            | Holder::Netpoller
            | Holder::Sysmon
            | Holder::Running
            | Holder::Other => {}
        }
    }
    all
}

fn every_wait_class() -> Vec<WaitClass> {
    let all = vec![
        WaitClass::File,
        WaitClass::Filesystem,
        WaitClass::Pipe,
        WaitClass::Socket,
        WaitClass::Device,
        WaitClass::OtherDescriptor("eventfd".into()),
        WaitClass::Sleep,
        WaitClass::Netpolled("TCP socket".into()),
        WaitClass::Syscall("flock".into()),
    ];
    for w in &all {
        match w {
            WaitClass::File
            | WaitClass::Filesystem
            | WaitClass::Pipe
            | WaitClass::Socket
            | WaitClass::Device
            | WaitClass::OtherDescriptor(_)
            | WaitClass::Sleep
            | WaitClass::Netpolled(_)
            | WaitClass::Syscall(_) => {}
        }
    }
    all
}

fn every_verdict_kind() -> Vec<VerdictKind> {
    let mut all = vec![
        VerdictKind::CgoHoldsThreads,
        VerdictKind::LockosthreadLeak,
        VerdictKind::NetpollerParked,
        VerdictKind::GomaxprocsAboveQuota,
        VerdictKind::ThreadLimit,
        VerdictKind::VdsoFallback,
        VerdictKind::Exec,
    ];
    for wait in every_wait_class() {
        all.push(VerdictKind::BlockingHoldsThreads { wait: wait.clone() });
        all.push(VerdictKind::BlockingBounded { wait });
    }
    for k in &all {
        match k {
            VerdictKind::BlockingHoldsThreads { .. }
            | VerdictKind::BlockingBounded { .. }
            | VerdictKind::CgoHoldsThreads
            | VerdictKind::LockosthreadLeak
            | VerdictKind::NetpollerParked
            | VerdictKind::GomaxprocsAboveQuota
            | VerdictKind::ThreadLimit
            | VerdictKind::VdsoFallback
            | VerdictKind::Exec => {}
        }
    }
    all
}

fn every_severity() -> Vec<Severity> {
    let all = vec![
        Severity::Problem,
        Severity::Warning,
        Severity::Info,
        Severity::Ok,
    ];
    for s in &all {
        match s {
            Severity::Problem | Severity::Warning | Severity::Info | Severity::Ok => {}
        }
    }
    all
}

fn every_mode() -> Vec<Mode> {
    let all = vec![Mode::Run, Mode::Attach, Mode::Threads, Mode::Top];
    for m in &all {
        match m {
            Mode::Run | Mode::Attach | Mode::Threads | Mode::Top => {}
        }
    }
    all
}

/// [`go_bounded`] with one row or value of every enum variant, each
/// counting 0 (so every total still adds up), and evidence of every kind.
fn catalogue() -> Report {
    let mut r = go_bounded();
    let site = r.blocking[0].call_site.clone();
    let h = r.go.as_mut().unwrap().handoffs.as_mut().unwrap();
    for key in every_taker() {
        h.by_taker.push(Count { key, count: 0 });
    }
    for key in [
        Unattributed::OutsideKernel,
        Unattributed::InC,
        Unattributed::CallEndedAsTaken,
        Unattributed::ThreadNotFound,
        Unattributed::TooManyThreads,
        Unattributed::ShortCallStripped,
        Unattributed::ListFull,
    ] {
        match key {
            Unattributed::OutsideKernel
            | Unattributed::InC
            | Unattributed::CallEndedAsTaken
            | Unattributed::ThreadNotFound
            | Unattributed::TooManyThreads
            | Unattributed::ShortCallStripped
            | Unattributed::ListFull => {}
        }
        h.unattributed.push(Count { key, count: 0 });
    }
    for key in [
        OwnHandoff::RuntimeWait,
        OwnHandoff::LockedGoroutineBlocked,
        OwnHandoff::LockedGoroutineExited,
        OwnHandoff::Other,
    ] {
        match key {
            OwnHandoff::RuntimeWait
            | OwnHandoff::LockedGoroutineBlocked
            | OwnHandoff::LockedGoroutineExited
            | OwnHandoff::Other => {}
        }
        h.own.push(OwnCount {
            key,
            count: 0,
            before_main: 0,
            after_main: 0,
            phase_unknown: 0,
        });
    }
    h.by_syscall.push(Count {
        key: None,
        count: 0,
    });
    for cause in every_cause() {
        r.threads_by_cause.rows.push(CauseRow {
            label: cause.label(),
            cause,
            threads: 0,
            syscall: Some("read".into()),
            call_site: site.clone(),
            why_no_site: None,
        });
    }
    let row = &mut r.blocking[0];
    for kind in every_fd_kind() {
        row.fds.push(FdCount {
            kind,
            label: kind.label(),
            nonblocking: true,
            netpolled: None,
            calls: 0,
        });
    }
    for known in [KnownPath::LibcDns, KnownPath::LibcUserLookup] {
        match known {
            KnownPath::LibcDns | KnownPath::LibcUserLookup => {}
        }
        let mut row = r.blocking[0].clone();
        row.calls = 0;
        row.p_handoffs = 0;
        row.slow_exits = 0;
        row.call_site = None;
        row.why_no_site = Some("only runtime frames (the runtime's own work)".into());
        row.stack = Vec::new();
        row.cgo = Some(CgoCall {
            c_function: "getpwnam_r".into(),
            go_api: None,
            known: Some(known),
        });
        r.blocking.push(row);
    }
    let mut holders = Vec::new();
    for (holder, fd) in every_holder().into_iter().zip(every_fd_target()) {
        holders.push(HolderRow {
            holder,
            syscall: None,
            call_site: site.clone(),
            fd: Some(fd),
            go_stack: Vec::new(),
            threads: 1,
        });
    }
    r.facts.samples.push(ThreadSample {
        elapsed_seconds: 0.0,
        threads: holders.len() as u64,
        holders,
    });
    let template = r.vdso.fallbacks[0].clone();
    for kind in [
        FallbackKind::DirectSyscall,
        FallbackKind::RuntimeNoVdso,
        FallbackKind::VdsoClocksource,
        FallbackKind::ClockNotServed,
    ] {
        match kind {
            FallbackKind::DirectSyscall
            | FallbackKind::RuntimeNoVdso
            | FallbackKind::VdsoClocksource
            | FallbackKind::ClockNotServed => {}
        }
        r.vdso.fallbacks.push(VdsoRow {
            kind,
            why: kind.explain(),
            calls: 0,
            calls_per_second: 0.0,
            clock: None,
            call_site: None,
            ..template.clone()
        });
    }
    let severities = every_severity();
    for (i, kind) in every_verdict_kind().into_iter().enumerate() {
        r.verdicts.push(Verdict {
            kind,
            severity: severities[i % severities.len()],
            evidence: Evidence {
                peak_threads: Some(5),
                gomaxprocs: Some(4),
                spawned: Some(1),
                spawned_by_these_calls: Some(1),
                held_now: (i % 2 == 0).then_some(0),
                held_now_unknown: (i % 2 == 1).then(|| "not sampled".into()),
                p_handoffs: Some(60),
                count: Some(3),
                per_second: Some(1.5),
                limit: Some(10_000),
                threshold: Some("any".into()),
            },
            syscall: Some("read".into()),
            call_site: site.clone(),
            cgo: r.blocking.last().unwrap().cgo.clone(),
            summary: "a verdict".into(),
            fix: Some("a fix".into()),
        });
    }
    r
}

fn to_json(r: &Report) -> Value {
    serde_json::to_value(r).expect("a report serializes")
}

/// Every synthetic report, by name.
/// A run with `-f`: the target (sample's calls) forked a child that
/// executed `dd` (two sections), a process whose fork was lost, and one
/// still running at the end.
fn followed() -> Report {
    let mut model = Model::new(1);
    model.apply(&Event::Syscall {
        tid: 42,
        ts_ns: 1,
        sysno: 57,
        ret: 43,
        duration_ns: 30_000,
        idle: false,
    });
    let events = [
        Event::ProcFork {
            parent_pid: 42,
            pid: 43,
            ts_ns: 2,
            command: "sh".into(),
        },
        Event::ProcSyscall {
            pid: 43,
            tid: 43,
            ts_ns: 3,
            sysno: 13,
            ret: 0,
            duration_ns: 500,
        },
        Event::ProcExec {
            pid: 43,
            tid: 43,
            ts_ns: 4,
            program: "/usr/bin/dd".into(),
        },
        Event::ProcThreadSpawn {
            pid: 43,
            tid: 44,
            ts_ns: 5,
        },
        Event::ProcThreadExit {
            pid: 43,
            tid: 44,
            ts_ns: 6,
            how: ThreadEnd::ExitedItself,
            last: false,
        },
        Event::ProcSyscall {
            pid: 90,
            tid: 91,
            ts_ns: 7,
            sysno: 1,
            ret: -9,
            duration_ns: 700,
        },
        Event::ProcFork {
            parent_pid: 43,
            pid: 50,
            ts_ns: 8,
            command: "dd".into(),
        },
    ];
    for e in &events {
        model.apply(e);
    }
    for i in 0..2000 {
        model.apply(&Event::ProcSyscall {
            pid: 43,
            tid: 43,
            ts_ns: 10 + i,
            sysno: 0,
            ret: 1,
            duration_ns: 1_000 + i,
        });
    }
    model.apply(&Event::ProcThreadExit {
        pid: 43,
        tid: 43,
        ts_ns: 3_000,
        how: ThreadEnd::ExitGroup,
        last: true,
    });
    let facts = Facts::default();
    let cx = analysis::Context {
        sym: None,
        attribution: false,
        fops: None,
        facts: &facts,
        traced_seconds: 1.0,
    };
    let a = analysis::analyze(&model, &cx);
    let target = TargetInfo {
        pid: 42,
        command: "/bin/sh".into(),
        mode: Mode::Run,
        exited: true,
        exit_code: Some(0),
        execs: 0,
        executed: Vec::new(),
        follow_forks: true,
    };
    Report::build(&model, &a, target, 1.0, None, None, &facts)
}

/// Without `-f`: the kernel counted the target's children.
fn not_followed() -> Report {
    let r = sample();
    let mut model = Model::new(1);
    let mut counters = vec![0; tracer_common::NUM_COUNTERS as usize];
    counters[tracer_common::CHILDREN_NOT_FOLLOWED_SLOT as usize] = 2;
    model.feed(&crate::model::Input::KernelCounters(counters));
    let facts = Facts::default();
    let cx = analysis::Context {
        sym: None,
        attribution: false,
        fops: None,
        facts: &facts,
        traced_seconds: 1.0,
    };
    let a = analysis::analyze(&model, &cx);
    Report::build(&model, &a, r.target, 1.0, None, None, &facts)
}

#[test]
fn followed_processes_have_a_section_per_program_and_add_up() {
    let r = followed();
    let p = r.processes.as_ref().expect("processes with -f");
    let summary: Vec<_> = p
        .sections
        .iter()
        .map(|s| (s.pid, s.parent_pid, s.command.clone(), s.totals.calls))
        .collect();
    assert_eq!(
        summary,
        [
            (42, None, Some("/bin/sh".to_owned()), 1),
            (43, Some(42), Some("sh".to_owned()), 1),
            (43, Some(42), Some("dd".to_owned()), 2000),
            (90, None, None, 1),
            (50, Some(43), Some("dd".to_owned()), 0),
        ]
    );
    let dd = &p.sections[2];
    assert_eq!(dd.program.as_deref(), Some("/usr/bin/dd"));
    assert_eq!(dd.syscalls[0].name, "read");
    assert_eq!(dd.syscalls[0].calls, 2000);
    assert_eq!((dd.threads.spawned, dd.threads.peak), (1, 2));
    assert!(matches!(
        dd.end,
        super::processes::SectionEndRow::Exited {
            how: Some(ThreadEnd::ExitGroup)
        }
    ));
    assert!(matches!(
        p.sections[1].end,
        super::processes::SectionEndRow::Executed
    ));
    assert!(matches!(
        p.sections[4].end,
        super::processes::SectionEndRow::Running
    ));
    assert_eq!(p.sections[3].totals.errors, 1);
    // The total is the sum of the sections; the target's section is the
    // report's own totals.
    assert_eq!(p.total.calls, 1 + 1 + 2000 + 1);
    assert_eq!(p.total.errors, 1);
    assert_eq!(p.sections[0].totals.calls, r.totals.all.calls);
    let mut text = Vec::new();
    super::Sink::write(&mut super::text::TextSink::new(&mut text), &r).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("pid 43 dd (exec /usr/bin/dd (child of 42)): 2000 calls"),
        "{text}"
    );
}

#[test]
fn children_not_followed_are_said_and_without_children_nothing_changes() {
    let r = not_followed();
    let p = r.processes.as_ref().expect("children were counted");
    assert_eq!(p.children_not_followed, 2);
    assert_eq!(p.sections.len(), 1);
    let mut text = Vec::new();
    super::Sink::write(&mut super::text::TextSink::new(&mut text), &r).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.contains("2 child processes not followed (use -f)"),
        "{text}"
    );
    // No child, no -f: the report is as before, without `processes`.
    let plain = to_json(&sample());
    assert!(plain.get("processes").is_none(), "{plain:#}");
}

fn reports() -> Vec<(&'static str, Value)> {
    let mut all = vec![
        ("sample", to_json(&sample())),
        ("followed", to_json(&followed())),
        ("not_followed", to_json(&not_followed())),
        ("go_bounded", to_json(&go_bounded())),
        ("go_explosion", to_json(&go_explosion())),
        ("attached", to_json(&attached())),
        ("catalogue", to_json(&catalogue())),
    ];
    for mode in every_mode() {
        let mut r = sample();
        r.target.mode = mode;
        all.push(("sample in every mode", to_json(&r)));
    }
    all
}

/// Prints the synthetic reports (`cargo test -p tracer --lib
/// dump_synthetic_reports -- --ignored --nocapture`).
#[test]
#[ignore = "prints the reports"]
fn dump_synthetic_reports() {
    for (name, report) in reports() {
        println!("=== {name}\n{report:#}");
    }
}

/// Checks report files, as the integration suite checks its reports:
/// `GOTRACER_REPORTS="a.json b.json" cargo test -p tracer --lib
/// check_report_files -- --ignored`.
#[test]
#[ignore = "checks the files named in GOTRACER_REPORTS"]
fn check_report_files() {
    let files = std::env::var("GOTRACER_REPORTS").expect("GOTRACER_REPORTS: report files");
    let mut failed = Vec::new();
    for path in files.split_whitespace() {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let report: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let errors = report_check::errors(&report);
        if errors.is_empty() {
            println!("{path}: ok");
        } else {
            println!("{path}:\n  {}", errors.join("\n  "));
            failed.push(path);
        }
    }
    assert!(failed.is_empty(), "failed: {failed:?}");
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema: Value = serde_json::from_str(super::SCHEMA_JSON).unwrap();
    assert_eq!(schema["title"], super::SCHEMA);
    assert_eq!(schema["properties"]["schema"]["const"], super::SCHEMA);
    jsonschema::meta::validate(&schema).expect("schema.json against the 2020-12 meta-schema");
    assert!(report_check::schema_errors(&json!({})).len() > 1);
}

#[test]
fn every_synthetic_report_validates_and_adds_up() {
    for (name, report) in reports() {
        let errors = report_check::errors(&report);
        assert!(
            errors.is_empty(),
            "{name}:\n  {}\n{report:#}",
            errors.join("\n  ")
        );
        report_check::check(&report);
    }
}

/// The synthetic reports hold what they were built to show (so the schema
/// is exercised on filled rows, not empty lists).
#[test]
fn the_synthetic_reports_are_rich() {
    let bounded = to_json(&go_bounded());
    let h = &bounded["go"]["handoffs"];
    assert!(h["total"].as_u64().unwrap() >= 60, "{h:#}");
    let takers: Vec<&Value> = h["by_taker"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["key"])
        .collect();
    for taker in [
        "sysmon_retake",
        "steal_back",
        "gc_for_each_p",
        "stop_the_world",
    ] {
        assert!(takers.contains(&&json!(taker)), "{taker} in {takers:?}");
    }
    assert!(takers.contains(&&json!({"other": ""})), "{takers:?}");
    assert_eq!(h["unattributed"].as_array().unwrap().len(), 5, "{h:#}");
    assert_eq!(h["own"].as_array().unwrap().len(), 2, "{h:#}");
    assert_eq!(
        bounded["go"]["slow_exits"],
        json!({"total": 3, "attributed": 1, "in_cgo_outside_syscall": 0, "outside_kernel": 1, "no_call": 1})
    );
    let causes: Vec<&str> = bounded["threads_by_cause"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["cause"]["kind"].as_str().unwrap())
        .collect();
    for cause in [
        "syscall_handoff",
        "runnable_work",
        "garbage_collector",
        "locked_goroutine_exited",
        "not_go_runtime",
    ] {
        assert!(causes.contains(&cause), "{cause} in {causes:?}");
    }
    let leaks = &bounded["lockosthread_leaks"];
    assert_eq!(leaks["total"], 2);
    assert_eq!(leaks["main_thread_wedged"], true);
    assert!(
        leaks["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["call_site"]["frames"][0]["function"] == "main.locker"),
        "{leaks:#}"
    );
    let blocking = bounded["blocking"].as_array().unwrap();
    assert_eq!(
        blocking[0]["call_site"]["frames"][0]["function"],
        "main.reader"
    );
    assert_eq!(blocking[0]["fds"][0]["kind"], "regular_file");
    assert!(blocking.iter().any(|b| b["cgo"]["known"] == "libc_dns"));
    assert!(
        blocking
            .iter()
            .any(|b| b["fds"][0]["kind"]["socket"]["family"] == "inet"),
        "{blocking:#?}"
    );
    let kinds = |r: &Value| -> Vec<String> {
        r["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    let verdicts = kinds(&bounded);
    for kind in ["blocking_bounded", "lockosthread_leak", "cgo_holds_threads"] {
        assert!(
            verdicts.contains(&kind.to_owned()),
            "{kind} in {verdicts:?}"
        );
    }
    let explosion = to_json(&go_explosion());
    let verdicts = kinds(&explosion);
    for kind in [
        "blocking_holds_threads",
        "gomaxprocs_above_quota",
        "thread_limit",
    ] {
        assert!(
            verdicts.contains(&kind.to_owned()),
            "{kind} in {verdicts:?}"
        );
    }
    assert_eq!(explosion["verdicts"][0]["wait"], json!({"class": "file"}));
    let attached = to_json(&attached());
    let verdicts = kinds(&attached);
    for kind in ["vdso_fallback", "netpoller_parked", "exec"] {
        assert!(
            verdicts.contains(&kind.to_owned()),
            "{kind} in {verdicts:?}"
        );
    }
    assert_eq!(attached["threads"]["in_progress_at_attach_total"], 3);
    assert_eq!(attached["events"]["unexplained_exits"], 1);
    assert_eq!(attached["events"]["lost"], 8);
    assert_eq!(attached["facts"]["cpu"]["gomaxprocs"]["state"], "unknown");
    assert_eq!(
        attached["facts"]["samples"][0]["holders"][0]["fd"],
        json!({"kind": "anon", "name": "eventpoll"})
    );
    let catalogue = to_json(&catalogue());
    assert_eq!(
        catalogue["facts"]["samples"][0]["holders"][0]["fd"],
        json!({"kind": "regular_file"})
    );
}

/// Applies `edit` to a copy of the Go report and returns its schema errors.
fn schema_errors_after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut report = to_json(&go_bounded());
    assert!(report_check::schema_errors(&report).is_empty());
    edit(&mut report);
    report_check::schema_errors(&report)
}

fn rename(object: &mut Value, from: &str, to: &str) {
    let map = object.as_object_mut().expect("an object");
    let value = map
        .remove(from)
        .unwrap_or_else(|| panic!("no field {from}"));
    map.insert(to.to_owned(), value);
}

/// A change to a report's JSON.
type Edit = fn(&mut Value);

#[test]
fn a_renamed_or_missing_field_fails_validation() {
    let cases: &[(&str, Edit)] = &[
        ("renamed totals.program.calls", |r| {
            rename(&mut r["totals"]["program"], "calls", "count")
        }),
        ("renamed threads.spawned", |r| {
            rename(&mut r["threads"], "spawned", "spawns")
        }),
        ("renamed top-level go", |r| rename(r, "go", "golang")),
        ("renamed blocking[0].p_handoffs", |r| {
            rename(&mut r["blocking"][0], "p_handoffs", "handoffs")
        }),
        ("renamed a frame's function", |r| {
            rename(
                &mut r["blocking"][0]["call_site"]["frames"][0],
                "function",
                "func",
            )
        }),
        ("removed events.lost", |r| {
            r["events"].as_object_mut().unwrap().remove("lost");
        }),
        ("removed go.slow_exits.no_call", |r| {
            r["go"]["slow_exits"]
                .as_object_mut()
                .unwrap()
                .remove("no_call");
        }),
        ("removed a fact's source", |r| {
            r["facts"]["cpu"]["gomaxprocs"]
                .as_object_mut()
                .unwrap()
                .remove("source");
        }),
        ("removed a verdict's wait", |r| {
            let v = r["verdicts"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|v| v["kind"] == "blocking_bounded")
                .unwrap();
            v.as_object_mut().unwrap().remove("wait");
        }),
        ("null for a count", |r| {
            r["totals"]["all"]["calls"] = Value::Null
        }),
        ("a negative count", |r| r["threads"]["peak"] = json!(-1)),
        ("a count as a string", |r| r["events"]["lost"] = json!("0")),
        ("an unknown mode", |r| r["target"]["mode"] = json!("launch")),
        ("an unknown severity", |r| {
            r["verdicts"][0]["severity"] = json!("critical")
        }),
        ("an unknown verdict kind", |r| {
            r["verdicts"][0]["kind"] = json!("slow")
        }),
        ("a taker as a bare string", |r| {
            r["go"]["handoffs"]["by_taker"][0]["key"] = json!("sysmon")
        }),
        ("other taker without its object", |r| {
            r["go"]["handoffs"]["by_taker"][0]["key"] = json!("other")
        }),
        ("an unknown thread cause", |r| {
            r["threads_by_cause"]["rows"][0]["cause"] = json!({"kind": "gremlins"})
        }),
        ("a known fact without value", |r| {
            r["facts"]["cpu"]["gomaxprocs"] = json!({"state": "known", "source": "x"})
        }),
        ("an unknown fact with a value", |r| {
            r["facts"]["cpu"]["gomaxprocs"] = json!({"state": "unknown", "why": "x", "value": 4})
        }),
        ("an unknown fd kind", |r| {
            r["blocking"][0]["fds"][0]["kind"] = json!("file")
        }),
        ("an unknown evidence", |r| {
            r["verdicts"][0]["evidence"]["guess"] = json!(1)
        }),
        ("held_now both known and unknown", |r| {
            r["verdicts"][0]["evidence"]["held_now"] = json!(0);
            r["verdicts"][0]["evidence"]["held_now_unknown"] = json!("not sampled")
        }),
        ("an extra field", |r| r["target"]["user"] = json!("root")),
        ("an empty call site", |r| {
            r["blocking"][0]["call_site"]["frames"] = json!([])
        }),
        ("another schema version", |r| {
            r["schema"] = json!("gotracer.report/1")
        }),
    ];
    for &(what, edit) in cases {
        let errors = schema_errors_after(edit);
        assert!(!errors.is_empty(), "{what}: the schema accepted it");
    }
}

#[test]
fn a_total_that_does_not_add_up_fails_the_check_naming_the_field() {
    let bump = |path: &[&str]| {
        let mut r = to_json(&go_bounded());
        let mut at = &mut r;
        for key in path {
            at = match key.parse::<usize>() {
                Ok(i) => &mut at[i],
                Err(_) => &mut at[*key],
            };
        }
        *at = json!(at.as_u64().unwrap() + 1);
        assert!(report_check::schema_errors(&r).is_empty());
        report_check::invariant_errors(&r)
    };
    for (path, named) in [
        (&["totals", "all", "calls"][..], "totals.all.calls"),
        (&["totals", "idle", "total_ns"], "totals.idle.total_ns"),
        (&["syscalls", "0", "errors"], "syscalls[\"read\"].errors"),
        (&["go", "handoffs", "total"], "go.handoffs.total"),
        (
            &["go", "handoffs", "attributed_to_calls"],
            "go.handoffs.attributed_to_calls",
        ),
        (&["blocking", "0", "p_handoffs"], "blocking[].p_handoffs"),
        (&["go", "slow_exits", "no_call"], "go.slow_exits.total"),
        (&["blocking", "0", "slow_exits"], "blocking[].slow_exits"),
        (&["threads", "spawned"], "threads.spawned"),
        (&["threads_by_cause", "not_kept"], "threads_by_cause.total"),
        (
            &["lockosthread_leaks", "sites_dropped"],
            "lockosthread_leaks.total",
        ),
        (&["events", "ringbuf_full"], "events.lost"),
        (&["events", "ringbuf_full"], "events.ringbuf_full vs"),
        (&["events", "clone_returns"], "events.exits_without_entry"),
        (&["vdso", "total_calls"], "vdso.total_calls"),
        (
            &["threads", "in_progress_at_attach_total"],
            "threads.in_progress_at_attach_total",
        ),
    ] {
        let errors = bump(path);
        assert!(
            errors.iter().any(|e| e.contains(named)),
            "{path:?}: no error naming {named}: {errors:?}"
        );
    }
    let mut r = to_json(&go_bounded());
    let v = r["verdicts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|v| v["kind"] == "lockosthread_leak")
        .unwrap();
    v["summary"] = json!("LockOSThread leaks: 2 goroutines exited while locked, locked at ?");
    let errors = report_check::invariant_errors(&r);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("verdicts[") && e.contains("\"?\"")),
        "{errors:?}"
    );
}

#[test]
#[should_panic(expected = "go.handoffs.total vs the sum of go.handoffs.by_taker[].count")]
fn check_panics_on_a_breakdown_that_does_not_add_up() {
    let mut r = to_json(&go_bounded());
    r["go"]["handoffs"]["by_taker"][0]["count"] = json!(0);
    report_check::check(&r);
}
