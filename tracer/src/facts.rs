//! Facts about the traced process read from outside the probes (/proc,
//! cgroups, the process's memory), gathered while it runs and kept with
//! the model so the report can explain what the probes saw.

use serde::Serialize;

use crate::report::vdso::VdsoFacts;

/// Everything read about the process besides the event stream.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Facts {
    pub vdso: VdsoFacts,
}

/// Re-reads the facts while the process runs (each tick), keeping the last
/// values read, so a process that exits before the report still has them.
pub struct FactsCollector {
    pid: u32,
    /// Where `runtime.vdsoClockgettimeSym` is in the process (Go targets).
    vdso_sym_addr: Option<u64>,
    pub facts: Facts,
}

impl FactsCollector {
    pub fn new(pid: u32, vdso_sym_addr: Option<u64>) -> Self {
        Self {
            pid,
            vdso_sym_addr,
            facts: Facts::default(),
        }
    }

    /// Reads what can be read now; values that cannot be read (the process
    /// is gone) keep their last reading.
    pub fn refresh(&mut self) {
        let v = &mut self.facts.vdso;
        if let Ok(mapping) = tmp::vdso_mapping(self.pid) {
            v.mapping = mapping;
        }
        if let Ok(ehdr) = tmp::sysinfo_ehdr(self.pid) {
            v.auxv_sysinfo_ehdr = ehdr;
        }
        if v.clocksource.is_none()
            && let Ok(source) = tmp::current_clocksource()
        {
            v.clocksource_vdso_capable = Some(tmp::clocksource_vdso_capable(&source));
            v.clocksource = Some(source);
        }
        if let Some(addr) = self.vdso_sym_addr
            && let Ok(value) = tmp::read_u64(self.pid, addr)
        {
            v.runtime_clock_gettime_sym = Some(value);
        }
    }
}

// TEMPORARY until procinfo lands.
mod tmp {
    use std::io;
    pub fn vdso_mapping(pid: u32) -> io::Result<Option<(u64, u64)>> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
        Ok(maps.lines().find(|l| l.ends_with("[vdso]")).and_then(|l| {
            let (a, b) = l.split_whitespace().next()?.split_once('-')?;
            Some((
                u64::from_str_radix(a, 16).ok()?,
                u64::from_str_radix(b, 16).ok()?,
            ))
        }))
    }
    pub fn sysinfo_ehdr(_pid: u32) -> io::Result<Option<u64>> {
        Ok(None)
    }
    pub fn current_clocksource() -> io::Result<String> {
        Ok(std::fs::read_to_string(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource",
        )?
        .trim()
        .to_owned())
    }
    pub fn clocksource_vdso_capable(s: &str) -> bool {
        matches!(s, "tsc" | "kvm-clock")
    }
    pub fn read_u64(pid: u32, addr: u64) -> io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(format!("/proc/{pid}/mem"))?;
        let mut b = [0u8; 8];
        f.read_exact_at(&mut b, addr)?;
        Ok(u64::from_ne_bytes(b))
    }
}
