//! Loading and attaching the kernel programs. A [`Links`] value owns the
//! loaded object: dropping it detaches everything, and since nothing is
//! pinned, the kernel also frees every program and link when the tracer
//! dies in any way (even SIGKILL).

pub mod btf;
pub mod dispatch;
pub mod kernel_layout;
pub mod privileges;
pub mod tracefs;

use std::{io, path::PathBuf, time::Instant};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
    programs::{
        ProgramFd, RawTracePoint, TracePoint, UProbe,
        uprobe::{UProbeAttachLocation, UProbeScope},
    },
};
use tracer_common::{
    DEFAULT_HIST_SLOTS, GoOffsets, INFLIGHT_SLOTS, KernelOffsets, MAX_SELECTORS, SyscallHist,
    VdsoKey, globals, maps,
};

/// The compiled kernel programs (empty when built without bpf-linker).
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tracer-ebpf"));

/// `false` when this build carries a stub instead of the kernel programs
/// (bpf-linker was missing at build time).
pub fn programs_built() -> bool {
    !EBPF_OBJECT.is_empty()
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "tracing needs root (or the CAP_BPF and CAP_PERFMON capabilities): run the tracer with \
         sudo or as root"
    )]
    NoPrivileges,
    #[error("at most {MAX_SELECTORS} --comm and {MAX_SELECTORS} --cgroup selectors")]
    TooManySelectors,
    #[error(
        "{} targets are served already: stop some, or run another tracer",
        tracer_common::MAX_DISPATCH_SLOTS
    )]
    DispatcherFull,
    #[error(
        "tracefs is not mounted and mounting it at /sys/kernel/tracing failed ({0}): mount it \
         with `mount -t tracefs nodev /sys/kernel/tracing`"
    )]
    Tracefs(#[source] io::Error),
    #[error(
        "tracefs is mounted at {root} but this user cannot read it ({source}): run as root, or \
         add CAP_DAC_READ_SEARCH to CAP_BPF and CAP_PERFMON (tracefs is root-only by default)"
    )]
    TracefsUnreadable {
        root: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read tracepoint format {path}: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("tracepoint {tracepoint} has no field `{field}` on this kernel")]
    Field { tracepoint: String, field: String },
    #[error(
        "this tracer was built without its eBPF programs (bpf-linker was missing): run \
         `cargo xtask setup` and rebuild"
    )]
    NotBuilt,
    #[error("loading the eBPF programs failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("{what} failed: {source}")]
    Program {
        what: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF program {0} is missing from the object")]
    MissingProgram(String),
}

/// Which programs to attach to the syscall tracepoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProbeSet {
    /// Timing, histograms and thread events (the tracer).
    Full,
    /// Only a tgid filter and a counter: the overhead floor of the attach
    /// points, for benchmarks.
    Floor,
    /// The floor plus timing each call (a start time per thread, a
    /// duration at exit): what any latency tracer pays, for benchmarks.
    TimedFloor,
}

/// The maps userspace reads and writes while the programs run.
pub struct ProbeMaps {
    pub events: RingBuf<MapData>,
    pub hist_slot: Array<MapData, u32>,
    /// Slots `0..hist_slots` for the program's calls, then as many for the
    /// Go runtime's idle waits.
    pub hists: PerCpuArray<MapData, SyscallHist>,
    pub hist_slots: u32,
    pub counters: PerCpuArray<MapData, u64>,
    pub vdso_calls: PerCpuHashMap<MapData, VdsoKey, u64>,
    /// Set at the stop: the programs ignore the target from then on.
    pub window_closed: Array<MapData, u32>,
    /// What the kernel programs log (`aya-log`), drained by the session.
    pub logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
}

/// The attached programs: dropping this value detaches them all.
pub struct Links {
    /// First: dropped before the object, so no call is routed to its
    /// programs once they go.
    _dispatch: Option<dispatch::DispatchSlot>,
    _ebpf: Ebpf,
    /// Just before the syscall probes went live: every call counted began
    /// after this instant (the start of the traced window).
    pub live_since: Instant,
}

impl Links {
    /// Whether the syscall and task programs are reached through a
    /// dispatcher (`serve`).
    pub fn is_dispatched(&self) -> bool {
        self._dispatch.is_some()
    }

    /// Stops the dispatcher's routing to these programs now (fast); the
    /// rest (uprobes, which take the kernel a grace period each to detach)
    /// goes when this value is dropped.
    pub fn stop_routing(&mut self) {
        self._dispatch = None;
    }
}

/// Loads the programs filtered on `tgid`, attaches them, and returns the
/// attachment and the maps separately, so the maps stay readable after the
/// programs are detached.
/// Load-time settings of the kernel programs.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    pub set: ProbeSet,
    /// Calls at least this long are reported with their user stack.
    pub slow_ns: u64,
    /// Where the goroutine state is, when the target is a known Go release.
    pub go: Option<GoOffsets>,
    /// Uprobes on rare Go runtime paths: `(program, binary, file offset)`.
    pub uprobes: Vec<(&'static str, PathBuf, u64)>,
    /// Size of the `EVENTS` ring buffer (a power of two of at least a page).
    pub ring_buffer_bytes: u32,
    /// `-f`: the kernel follows the target's child processes.
    pub follow_forks: bool,
    /// Targets beside the first (more `-p`, `--comm`, `--cgroup`).
    pub selection: Selection,
    /// `serve`: the syscall programs are reached through this dispatcher
    /// instead of being attached themselves.
    pub dispatcher: Option<dispatch::SharedDispatcher>,
}

/// The targets beside the first: they join the kernel's set of followed
/// processes (their calls streamed, a section each in the report).
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Running processes, given with `-p` or found by a `--comm` name at
    /// the start; each announces itself with its first event.
    pub given: Vec<(u32, Given)>,
    /// `--comm` names, for processes that take one later (exec or fork).
    pub comms: Vec<tracer_common::CommSelector>,
    /// `--cgroup`s: a process is a target from its first call in one.
    pub cgroups: Vec<tracer_common::CgroupSelector>,
}

/// Why a running process was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Given {
    Pid,
    Comm,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.given.is_empty() && self.comms.is_empty() && self.cgroups.is_empty()
    }

    /// Writes the selectors into the loaded object, before its programs
    /// attach (so no call of a given process is missed).
    fn load_into(&self, ebpf: &mut Ebpf) -> Result<(), ProbeError> {
        let given = self.given.iter().map(|&(pid, why)| {
            let value = match why {
                Given::Pid => tracer_common::FOLLOWED_GIVEN,
                Given::Comm => tracer_common::FOLLOWED_GIVEN_COMM,
            };
            (pid, value)
        });
        fill(ebpf, maps::FOLLOWED, given)?;
        fill(
            ebpf,
            maps::SELECT_COMMS,
            (0..).zip(self.comms.iter().copied()),
        )?;
        fill(
            ebpf,
            maps::SELECT_CGROUPS,
            (0..).zip(self.cgroups.iter().copied()),
        )
    }
}

/// Writes `(index, value)` entries into the object's array `name`.
fn fill<T: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &'static str,
    entries: impl IntoIterator<Item = (u32, T)>,
) -> Result<(), ProbeError> {
    let mut array: Array<_, T> = borrow(ebpf, name)?;
    for (i, v) in entries {
        array
            .set(i, v, 0)
            .map_err(|source| ProbeError::Map { name, source })?;
    }
    Ok(())
}

pub fn attach(tgid: u32, opts: &AttachOptions) -> Result<(Links, ProbeMaps), ProbeError> {
    let pid = std::num::NonZeroU32::new(tgid).ok_or(ProbeError::Field {
        tracepoint: "target".into(),
        field: "pid 0".into(),
    })?;
    let set = opts.set;
    if !privileges::can_trace() {
        return Err(ProbeError::NoPrivileges);
    }
    let tracefs = tracefs::ensure_mounted()?;
    if EBPF_OBJECT.is_empty() {
        return Err(ProbeError::NotBuilt);
    }
    let pid_offset = tracefs::field_offset(&tracefs, "task", "task_newtask", "pid")?;
    let flags_offset = tracefs::field_offset(&tracefs, "task", "task_newtask", "clone_flags")?;
    let exec_name_offset =
        tracefs::field_offset(&tracefs, "sched", "sched_process_exec", "filename")?;
    raise_memlock_limit();

    let hist_slots = DEFAULT_HIST_SLOTS;
    let go = opts.go.unwrap_or_default();
    let kernel = kernel_offsets().unwrap_or_default();
    let log_level = aya_log_level();
    let sel = &opts.selection;
    if sel.comms.len() > MAX_SELECTORS as usize || sel.cgroups.len() > MAX_SELECTORS as usize {
        return Err(ProbeError::TooManySelectors);
    }
    let follow_any = opts.follow_forks || !sel.is_empty();
    let mut ebpf = EbpfLoader::new()
        .override_global(globals::TARGET_TGID, &tgid, true)
        .override_global(globals::NEWTASK_PID_OFFSET, &pid_offset, true)
        .override_global(globals::NEWTASK_FLAGS_OFFSET, &flags_offset, true)
        .override_global(globals::EXEC_FILENAME_OFFSET, &exec_name_offset, true)
        .override_global(globals::HIST_SLOTS, &hist_slots, true)
        .override_global(globals::SLOW_NS, &opts.slow_ns, true)
        .override_global(globals::GO_OFFSETS, &go, true)
        .override_global(globals::KERNEL_OFFSETS, &kernel, true)
        .override_global(globals::FOLLOW_FORKS, &u32::from(opts.follow_forks), true)
        .override_global(globals::FOLLOW_ANY, &u32::from(follow_any), true)
        .override_global(globals::SELECT_COMM_COUNT, &(sel.comms.len() as u32), true)
        .override_global(
            globals::SELECT_CGROUP_COUNT,
            &(sel.cgroups.len() as u32),
            true,
        )
        .override_global(globals::SELF_TGID, &std::process::id(), true)
        .override_global("AYA_LOG_LEVEL", &log_level, false)
        .map_max_entries(maps::INFLIGHT, INFLIGHT_SLOTS)
        .map_max_entries(maps::EVENTS, opts.ring_buffer_bytes)
        .map_max_entries(maps::HISTS, 2 * hist_slots)
        .map_max_entries(maps::FOLLOWED, followed_entries(follow_any))
        .map_max_entries(maps::DISPATCH_ENTER, 1)
        .map_max_entries(maps::DISPATCH_EXIT, 1)
        .map_max_entries(maps::DISPATCH_NEWTASK, 1)
        .map_max_entries(maps::DISPATCH_TASK_EXIT, 1)
        .map_max_entries(maps::DISPATCH_EXEC, 1)
        .load(EBPF_OBJECT)
        .map_err(ProbeError::Load)?;
    sel.load_into(&mut ebpf)?;
    // The logger holds the log map: it must exist before the programs load
    // and live as long as they run.
    let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            log::warn!("the kernel programs' log is unavailable: {e}");
            None
        }
    };
    let mut class: Array<_, u8> = take(&mut ebpf, maps::SYSCALL_CLASS)?;
    for (sysno, bits) in crate::syscall_names::class_table().into_iter().enumerate() {
        if bits != 0 {
            class
                .set(sysno as u32, bits, 0)
                .map_err(|source| ProbeError::Map {
                    name: maps::SYSCALL_CLASS,
                    source,
                })?;
        }
    }

    let (enter, exit) = match set {
        ProbeSet::Full => ("gt_sys_enter", "gt_sys_exit"),
        ProbeSet::Floor => ("gt_floor_enter", "gt_floor_exit"),
        ProbeSet::TimedFloor => ("gt_floor_timed_enter", "gt_floor_timed_exit"),
    };
    // Both verified first, then attached back to back: the entry first, so
    // no call is counted that began before `live_since`, and the gap in
    // which an entry is recorded but its exit could be missed is short.
    for program in [enter, exit] {
        let what = format!("loading {program}");
        let prog: &mut RawTracePoint = program_ref(&mut ebpf, program, &what)?;
        prog.load().map_err(failed(&what))?;
    }
    let live_since;
    let mut dispatch = None;
    match &opts.dispatcher {
        Some(d) if set == ProbeSet::Full => {
            for (program, ..) in TASK_TRACEPOINTS {
                let what = format!("loading {program}");
                let prog: &mut TracePoint = program_ref(&mut ebpf, program, &what)?;
                prog.load().map_err(failed(&what))?;
            }
            let fd = |program: &str| -> Result<ProgramFd, ProbeError> {
                let what = format!("routing to {program}");
                let prog = ebpf
                    .program(program)
                    .ok_or_else(|| ProbeError::MissingProgram(program.to_owned()))?;
                let fd = prog.fd().map_err(failed(&what))?;
                fd.try_clone().map_err(|e| ProbeError::Program {
                    what,
                    source: aya::programs::ProgramError::IOError(e),
                })
            };
            let routes = dispatch::Routes {
                enter: fd(enter)?,
                exit: fd(exit)?,
                newtask: fd(TASK_TRACEPOINTS[0].0)?,
                task_exit: fd(TASK_TRACEPOINTS[1].0)?,
                exec: fd(TASK_TRACEPOINTS[2].0)?,
            };
            // Every program goes live at once.
            live_since = Instant::now();
            dispatch = Some(d.add(tgid, &routes)?);
        }
        _ => {
            live_since = Instant::now();
            for (program, tracepoint) in [(enter, "sys_enter"), (exit, "sys_exit")] {
                attach_raw(&mut ebpf, program, tracepoint)?;
            }
            if set == ProbeSet::Full {
                for (program, category, name) in TASK_TRACEPOINTS {
                    attach_tracepoint(&mut ebpf, program, category, name)?;
                }
            }
        }
    }
    if set == ProbeSet::Full {
        for (program, binary, offset) in &opts.uprobes {
            let what = format!(
                "attaching uprobe {program} in {} at {offset:#x}",
                binary.display()
            );
            let prog: &mut UProbe = program_ref(&mut ebpf, program, &what)?;
            if prog.fd().is_err() {
                prog.load().map_err(failed(&what))?;
            }
            prog.attach(
                UProbeAttachLocation::AbsoluteOffset(*offset),
                binary,
                UProbeScope::OneProcess(pid),
            )
            .map_err(failed(&what))?;
        }
    }

    let maps = ProbeMaps {
        events: take(&mut ebpf, maps::EVENTS)?,
        hist_slot: take(&mut ebpf, maps::HIST_SLOT)?,
        hists: take(&mut ebpf, maps::HISTS)?,
        hist_slots,
        counters: take(&mut ebpf, maps::COUNTERS)?,
        vdso_calls: take(&mut ebpf, maps::VDSO_CALLS)?,
        window_closed: take(&mut ebpf, maps::WINDOW_CLOSED)?,
        logger,
    };
    Ok((
        Links {
            _dispatch: dispatch,
            _ebpf: ebpf,
            live_since,
        },
        maps,
    ))
}

/// A map of the object as its typed wrapper, left in the object.
fn borrow<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.map_mut(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { name, source })
}

/// The task tracepoints' programs: (program, category, tracepoint).
const TASK_TRACEPOINTS: [(&str, &str, &str); 3] = [
    ("gt_task_newtask", "task", "task_newtask"),
    ("gt_task_exit", "sched", "sched_process_exit"),
    ("gt_exec", "sched", "sched_process_exec"),
];

/// Takes a map out of the object as its typed wrapper.
fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(map).map_err(|source| ProbeError::Map { name, source })
}

/// A program of the object as its typed wrapper.
fn program_ref<'a, P>(ebpf: &'a mut Ebpf, name: &str, what: &str) -> Result<&'a mut P, ProbeError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| ProbeError::MissingProgram(name.to_owned()))?;
    program.try_into().map_err(failed(what))
}

/// Wraps a program error with what was being done.
fn failed(what: &str) -> impl Fn(aya::programs::ProgramError) -> ProbeError + '_ {
    move |source| ProbeError::Program {
        what: what.to_owned(),
        source,
    }
}

fn attach_raw(ebpf: &mut Ebpf, program: &str, tracepoint: &str) -> Result<(), ProbeError> {
    let what = format!("attaching {program} to raw tracepoint {tracepoint}");
    let prog: &mut RawTracePoint = program_ref(ebpf, program, &what)?;
    prog.attach(tracepoint).map_err(failed(&what))?;
    Ok(())
}

fn attach_tracepoint(
    ebpf: &mut Ebpf,
    program: &str,
    category: &str,
    name: &str,
) -> Result<(), ProbeError> {
    let what = format!("attaching {program} to tracepoint {category}:{name}");
    let prog: &mut TracePoint = program_ref(ebpf, program, &what)?;
    prog.load().map_err(failed(&what))?;
    prog.attach(category, name).map_err(failed(&what))?;
    Ok(())
}

/// This kernel's struct layout for describing descriptors, from its BTF
/// (`None`, with a warning, when it cannot be read: tracing goes on
/// without saying what blocking calls wait on).
fn kernel_offsets() -> Option<KernelOffsets> {
    match kernel_layout::KernelLayout::load() {
        Ok(layout) => Some(layout.to_kernel()),
        Err(e) => {
            eprintln!(
                "tracer: warning: cannot read this kernel's structure layout ({e}): what blocking \
                 calls wait on (file, socket, pipe) will be unknown"
            );
            None
        }
    }
}

/// The kernel programs' log level (`aya_log_common::Level`: error 1 ..
/// trace 5): records below the userspace level are not even written.
fn aya_log_level() -> u8 {
    match log::max_level() {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => 1,
        log::LevelFilter::Warn => 2,
        log::LevelFilter::Info => 3,
        log::LevelFilter::Debug => 4,
        log::LevelFilter::Trace => 5,
    }
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones use
/// memcg accounting, so a failure here (no CAP_SYS_RESOURCE) is only logged.
/// Entries of the `FOLLOWED` array: one per PID when it is in use (the
/// running kernel's `pid_max`, 4 bytes each: 16 MiB at the usual
/// 4 194 304), one otherwise (it is never read then).
fn followed_entries(in_use: bool) -> u32 {
    if !in_use {
        return 1;
    }
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(tracer_common::FOLLOWED_PID_LIMIT)
        .clamp(1, tracer_common::FOLLOWED_PID_LIMIT)
}

fn raise_memlock_limit() {
    let limit = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) } != 0 {
        log::debug!(
            "raising RLIMIT_MEMLOCK failed: {}",
            io::Error::last_os_error()
        );
    }
}
