//! The dispatcher (`tracer serve`): the only programs attached to the
//! syscall and task tracepoints, routing each target's calls and thread
//! events to its own programs by a tail call (see the kernel side's
//! `dispatch.rs`). Every target keeps its own object, maps and window;
//! only the entry points are shared, so the cost of a syscall (or a
//! thread's creation or end) of any other process does not grow with the
//! number of targets, and a target comes and goes without attaching or
//! detaching a tracepoint (a kernel grace period each). Its uprobes are
//! its own: they fire in its process only.

use std::{
    sync::{Arc, Mutex, PoisonError},
    thread::JoinHandle,
    time::Duration,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, ProgramArray},
    programs::ProgramFd,
};
use tracer_common::{MAX_DISPATCH_SLOTS, maps};

use super::{
    EBPF_OBJECT, Links, ProbeError, TASK_TRACEPOINTS, attach_raw, attach_tracepoint,
    followed_entries, program_ref, take,
};

/// The program arrays, in the order of [`Routes`]' fields.
const ARRAYS: [&str; 5] = [
    maps::DISPATCH_ENTER,
    maps::DISPATCH_EXIT,
    maps::DISPATCH_NEWTASK,
    maps::DISPATCH_TASK_EXIT,
    maps::DISPATCH_EXEC,
];

/// A target's programs the dispatcher routes to (loaded, not attached).
pub struct Routes {
    pub enter: ProgramFd,
    pub exit: ProgramFd,
    pub newtask: ProgramFd,
    pub task_exit: ProgramFd,
    pub exec: ProgramFd,
}

impl Routes {
    fn in_order(&self) -> [&ProgramFd; 5] {
        [
            &self.enter,
            &self.exit,
            &self.newtask,
            &self.task_exit,
            &self.exec,
        ]
    }
}

/// The loaded and attached dispatcher, shared by every target's session.
pub struct Dispatcher {
    /// Holds the attached programs (dropping it detaches them).
    _ebpf: Ebpf,
    slot_of: Array<MapData, u32>,
    /// As [`ARRAYS`].
    arrays: Vec<ProgramArray<MapData>>,
    /// Slots not in use.
    free: Vec<u32>,
}

/// A dispatcher several sessions share (each adds and removes its slot).
#[derive(Clone)]
pub struct SharedDispatcher(Arc<Mutex<Dispatcher>>);

impl std::fmt::Debug for SharedDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedDispatcher")
    }
}

impl SharedDispatcher {
    /// Loads the object once more, for its two dispatch programs only
    /// (its other maps made as small as the kernel takes), and attaches
    /// them.
    pub fn load() -> Result<Self, ProbeError> {
        if EBPF_OBJECT.is_empty() {
            return Err(ProbeError::NotBuilt);
        }
        super::raise_memlock_limit();
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(maps::DISPATCH_SLOT, followed_entries(true))
            .map_max_entries(maps::INFLIGHT, 1)
            .map_max_entries(maps::EVENTS, 4096)
            .map_max_entries(maps::HISTS, 1);
        for array in ARRAYS {
            loader.map_max_entries(array, MAX_DISPATCH_SLOTS);
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(ProbeError::Load)?;
        let slot_of = take(&mut ebpf, maps::DISPATCH_SLOT)?;
        let arrays = ARRAYS
            .iter()
            .map(|&name| take(&mut ebpf, name))
            .collect::<Result<Vec<_>, _>>()?;
        for (program, tracepoint) in [
            ("gt_dispatch_enter", "sys_enter"),
            ("gt_dispatch_exit", "sys_exit"),
        ] {
            let what = format!("loading {program}");
            let prog: &mut aya::programs::RawTracePoint = program_ref(&mut ebpf, program, &what)?;
            prog.load().map_err(super::failed(&what))?;
            attach_raw(&mut ebpf, program, tracepoint)?;
        }
        let task = [
            "gt_dispatch_newtask",
            "gt_dispatch_task_exit",
            "gt_dispatch_exec",
        ];
        for (program, (_, category, name)) in task.into_iter().zip(TASK_TRACEPOINTS) {
            attach_tracepoint(&mut ebpf, program, category, name)?;
        }
        Ok(Self(Arc::new(Mutex::new(Dispatcher {
            _ebpf: ebpf,
            slot_of,
            arrays,
            free: (0..MAX_DISPATCH_SLOTS).rev().collect(),
        }))))
    }

    /// Routes `tgid`'s syscalls and thread events to `routes` from now on;
    /// all take effect at once. Dropping the returned value stops it.
    pub fn add(&self, tgid: u32, routes: &Routes) -> Result<DispatchSlot, ProbeError> {
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = d.free.pop().ok_or(ProbeError::DispatcherFull)?;
        let mut routed = Ok(());
        for ((array, name), fd) in d.arrays.iter_mut().zip(ARRAYS).zip(routes.in_order()) {
            routed = array
                .set(slot, fd, 0)
                .map_err(|source| ProbeError::Map { name, source });
            if routed.is_err() {
                break;
            }
        }
        // Last: the switch that makes them all live together.
        let routed = routed.and_then(|()| {
            d.slot_of
                .set(tgid, slot + 1, 0)
                .map_err(|source| ProbeError::Map {
                    name: maps::DISPATCH_SLOT,
                    source,
                })
        });
        if let Err(e) = routed {
            d.release(tgid, slot);
            return Err(e);
        }
        Ok(DispatchSlot {
            dispatcher: self.clone(),
            tgid,
            slot,
        })
    }
}

impl Dispatcher {
    /// Stops routing `tgid` to `slot` (unless the PID went to a newer
    /// target) and frees the slot, which drops the kernel's references to
    /// its programs.
    fn release(&mut self, tgid: u32, slot: u32) {
        if self.slot_of.get(&tgid, 0).ok() == Some(slot + 1) {
            let _ = self.slot_of.set(tgid, 0, 0);
        }
        for array in &mut self.arrays {
            let _ = array.clear_index(&slot);
        }
        self.free.push(slot);
    }
}

/// A target's place in the dispatcher: dropping it stops the routing.
pub struct DispatchSlot {
    dispatcher: SharedDispatcher,
    tgid: u32,
    slot: u32,
}

impl Drop for DispatchSlot {
    fn drop(&mut self) {
        self.dispatcher
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.tgid, self.slot);
    }
}

/// Detaches still under way on their own threads.
static DETACHING: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// How long a program that passed its checks just before its routing
/// stopped may still be writing: they run for microseconds, not preempted.
const QUIESCE: Duration = Duration::from_millis(5);

/// Ends a dispatched target's probes without holding up the caller (one
/// thread serves every target): the routing stops now, and once programs
/// already running are done, the rest detaches on a thread of its own
/// (a Go target's uprobes took the kernel 1.1 s, in series 11 s for 10
/// targets). [`wait_detached`] waits for it. An undispatched attachment
/// is dropped here.
pub fn detach(mut links: Links) {
    if !links.is_dispatched() {
        drop(links);
        return;
    }
    links.stop_routing();
    std::thread::sleep(QUIESCE);
    let spawned = std::thread::Builder::new()
        .name("detach".into())
        .spawn(move || drop(links));
    match spawned {
        Ok(handle) => {
            let mut all = DETACHING.lock().unwrap_or_else(PoisonError::into_inner);
            // Those done are joined (their threads' stacks freed): an agent
            // that runs for weeks sees many targets come and go.
            let (done, running): (Vec<_>, Vec<_>) = std::mem::take(&mut *all)
                .into_iter()
                .partition(|h| h.is_finished());
            *all = running;
            all.push(handle);
            drop(all);
            for h in done {
                let _ = h.join();
            }
        }
        // No thread: dropped (in the error) here, as before.
        Err(e) => log::warn!("detaching in place, no thread for it: {e}"),
    }
}

/// Waits until every [`detach`] has finished.
pub fn wait_detached() {
    let handles = std::mem::take(&mut *DETACHING.lock().unwrap_or_else(PoisonError::into_inner));
    for h in handles {
        let _ = h.join();
    }
}
