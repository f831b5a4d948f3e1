//! The dispatcher (`tracer serve`): the only programs attached to the
//! syscall tracepoints, routing each target's calls to its own programs
//! by a tail call (see the kernel side's `dispatch.rs`). Every target keeps
//! its own object, maps and window; only the two syscall programs' entry
//! point is shared, so the cost of a syscall of any other process does not
//! grow with the number of targets.

use std::sync::{Arc, Mutex, PoisonError};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, ProgramArray},
    programs::ProgramFd,
};
use tracer_common::{MAX_DISPATCH_SLOTS, maps};

use super::{EBPF_OBJECT, ProbeError, attach_raw, followed_entries, program_ref, take};

/// The loaded and attached dispatcher, shared by every target's session.
pub struct Dispatcher {
    /// Holds the attached programs (dropping it detaches them).
    _ebpf: Ebpf,
    slot_of: Array<MapData, u32>,
    enter: ProgramArray<MapData>,
    exit: ProgramArray<MapData>,
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
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::DISPATCH_SLOT, followed_entries(true))
            .map_max_entries(maps::DISPATCH_ENTER, MAX_DISPATCH_SLOTS)
            .map_max_entries(maps::DISPATCH_EXIT, MAX_DISPATCH_SLOTS)
            .map_max_entries(maps::INFLIGHT, 1)
            .map_max_entries(maps::EVENTS, 4096)
            .map_max_entries(maps::HISTS, 1)
            .load(EBPF_OBJECT)
            .map_err(ProbeError::Load)?;
        let slot_of = take(&mut ebpf, maps::DISPATCH_SLOT)?;
        let enter = take(&mut ebpf, maps::DISPATCH_ENTER)?;
        let exit = take(&mut ebpf, maps::DISPATCH_EXIT)?;
        for (program, tracepoint) in [
            ("gt_dispatch_enter", "sys_enter"),
            ("gt_dispatch_exit", "sys_exit"),
        ] {
            let what = format!("loading {program}");
            let prog: &mut aya::programs::RawTracePoint = program_ref(&mut ebpf, program, &what)?;
            prog.load().map_err(super::failed(&what))?;
            attach_raw(&mut ebpf, program, tracepoint)?;
        }
        Ok(Self(Arc::new(Mutex::new(Dispatcher {
            _ebpf: ebpf,
            slot_of,
            enter,
            exit,
            free: (0..MAX_DISPATCH_SLOTS).rev().collect(),
        }))))
    }

    /// Routes `tgid`'s syscalls to `enter` and `exit` (loaded, not
    /// attached) from now on; both take effect at once. Dropping the
    /// returned value stops it.
    pub fn add(
        &self,
        tgid: u32,
        enter: &ProgramFd,
        exit: &ProgramFd,
    ) -> Result<DispatchSlot, ProbeError> {
        let mut d = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = d.free.pop().ok_or(ProbeError::DispatcherFull)?;
        let map_err = |name| move |source| ProbeError::Map { name, source };
        let routed = d
            .enter
            .set(slot, enter, 0)
            .map_err(map_err(maps::DISPATCH_ENTER))
            .and_then(|()| {
                d.exit
                    .set(slot, exit, 0)
                    .map_err(map_err(maps::DISPATCH_EXIT))
            })
            // Last: the switch that makes both live together.
            .and_then(|()| {
                d.slot_of
                    .set(tgid, slot + 1, 0)
                    .map_err(map_err(maps::DISPATCH_SLOT))
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
        let _ = self.enter.clear_index(&slot);
        let _ = self.exit.clear_index(&slot);
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
