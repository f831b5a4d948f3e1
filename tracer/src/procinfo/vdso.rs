//! The vDSO: where the kernel mapped it into a process, and whether it can
//! answer `clock_gettime` by itself or has to fall back to a real syscall.
//!
//! Go calls `clock_gettime` through the vDSO (`runtime.nanotime1`,
//! `runtime.walltime`). With a clocksource the vDSO cannot read, every such
//! call becomes a syscall, which a syscall tracer then sees by the
//! thousands.

use std::path::Path;

use super::{Owner, Result, malformed, pid_path, read_bytes, read_pid_file, read_text};

/// `AT_SYSINFO_EHDR`: the auxiliary vector entry holding the vDSO's address.
pub const AT_SYSINFO_EHDR: u64 = 33;

/// A half-open address range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub start: u64,
    pub end: u64,
}

impl AddrRange {
    pub fn contains(&self, addr: u64) -> bool {
        (self.start..self.end).contains(&addr)
    }
}

/// Whether the vDSO can read a clocksource (x86_64 and arm64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdsoClock {
    /// The vDSO reads it: `clock_gettime` makes no syscall.
    Capable,
    /// The vDSO reads it only when the condition described holds (the
    /// kernel decides at boot); otherwise every call is a syscall.
    Conditional(&'static str),
    /// The vDSO cannot read it: every `clock_gettime` (other than the
    /// `_COARSE` clocks) is a real syscall.
    Syscall,
}

/// Where the `[vdso]` mapping of `pid` is (`/proc/PID/maps`); `None` when
/// it has none (a kernel booted with `vdso=0`).
pub fn vdso_range(pid: u32) -> Result<Option<AddrRange>> {
    let maps = read_pid_file(pid, "maps")?;
    parse_maps_vdso(&maps).map_err(|line| {
        malformed(
            &pid_path(pid, "maps"),
            format!("bad `[vdso]` line {line:?}"),
        )
    })
}

/// The vDSO address the kernel gave `pid` at exec (`AT_SYSINFO_EHDR` in
/// `/proc/PID/auxv`); `None` without a vDSO. Reading another process's
/// auxv needs ptrace access (root, or the same user).
pub fn sysinfo_ehdr(pid: u32) -> Result<Option<u64>> {
    let path = pid_path(pid, "auxv");
    let auxv = read_bytes(&path, Owner::Process(pid))?;
    parse_auxv(&auxv)
        .map(|entries| {
            entries
                .into_iter()
                .find_map(|(k, v)| (k == AT_SYSINFO_EHDR).then_some(v))
        })
        .ok_or_else(|| {
            malformed(
                &path,
                format!(
                    "{} bytes is not a whole number of (type, value) pairs",
                    auxv.len()
                ),
            )
        })
}

/// The machine's current clocksource
/// (`/sys/devices/system/clocksource/clocksource0/current_clocksource`),
/// such as `tsc` or `kvm-clock`.
pub fn current_clocksource() -> Result<String> {
    let path = Path::new("/sys/devices/system/clocksource/clocksource0/current_clocksource");
    let name = read_text(path, Owner::None)?.trim().to_owned();
    if name.is_empty() {
        return Err(malformed(path, "empty"));
    }
    Ok(name)
}

/// Whether the vDSO can read clocksource `name`. From the kernel's
/// `vdso_clock_mode` assignments: `tsc` (`VDSO_CLOCKMODE_TSC`),
/// `hyperv_clocksource_tsc_page` (`VDSO_CLOCKMODE_HVCLOCK`), and on arm64
/// `arch_sys_counter` (`VDSO_CLOCKMODE_ARCHTIMER`, unless a timer erratum
/// workaround turns it off); `kvm-clock` and `xen` use
/// `VDSO_CLOCKMODE_PVCLOCK` only when the hypervisor marks the TSC stable
/// (`kvm_setup_vsyscall_timeinfo`, `xen_setup_vsyscall_time_info`).
/// Everything else (`hpet`, `acpi_pm`, `jiffies`, ...) has no vDSO mode
/// since Linux 5.6 (HPET's was removed then).
pub fn vdso_clock(name: &str) -> VdsoClock {
    match name {
        "tsc" | "hyperv_clocksource_tsc_page" => VdsoClock::Capable,
        "kvm-clock" | "xen" => {
            VdsoClock::Conditional("the hypervisor marks the TSC stable (PVCLOCK_TSC_STABLE_BIT)")
        }
        "arch_sys_counter" => {
            VdsoClock::Conditional("no timer erratum workaround is active (arm64)")
        }
        _ => VdsoClock::Syscall,
    }
}

/// The range of the `[vdso]` line of a maps text; `Err(line)` when that
/// line's range does not parse.
fn parse_maps_vdso(maps: &str) -> Result<Option<AddrRange>, String> {
    let Some(line) = maps
        .lines()
        .find(|l| l.split_ascii_whitespace().nth(5) == Some("[vdso]"))
    else {
        return Ok(None);
    };
    let range = line.split_ascii_whitespace().next().unwrap_or("");
    let parsed = range.split_once('-').and_then(|(s, e)| {
        let start = u64::from_str_radix(s, 16).ok()?;
        let end = u64::from_str_radix(e, 16).ok()?;
        (start < end).then_some(AddrRange { start, end })
    });
    parsed.map(Some).ok_or_else(|| line.to_owned())
}

/// The `(type, value)` pairs of an auxv (native-endian `u64`s, as on every
/// 64-bit Linux), up to `AT_NULL`. `None` when the length is not a whole
/// number of pairs.
fn parse_auxv(auxv: &[u8]) -> Option<Vec<(u64, u64)>> {
    if !auxv.len().is_multiple_of(16) {
        return None;
    }
    let word = |b: &[u8]| u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
    Some(
        auxv.chunks_exact(16)
            .map(|pair| (word(&pair[..8]), word(&pair[8..])))
            .take_while(|(k, _)| *k != 0)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procinfo::{mem, testutil};

    const MAPS: &str = "\
55ab9733f000-55ab97341000 r--p 00000000 fe:00 1049                       /usr/bin/cat
7f217c88c000-7f217c890000 r--p 00000000 00:00 0                          [vvar]
7f217c890000-7f217c892000 r-xp 00000000 00:00 0                          [vdso]
7ffefb96c000-7ffefb98d000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn finds_the_vdso_in_maps() {
        let range = parse_maps_vdso(MAPS).unwrap().unwrap();
        assert_eq!(
            range,
            AddrRange {
                start: 0x7f21_7c89_0000,
                end: 0x7f21_7c89_2000
            }
        );
        assert!(range.contains(0x7f21_7c89_1000));
        assert!(!range.contains(0x7f21_7c89_2000));
        assert_eq!(parse_maps_vdso("").unwrap(), None);
        let no_vdso = MAPS.replace("[vdso]", "[anon]");
        assert_eq!(parse_maps_vdso(&no_vdso).unwrap(), None);
        assert!(parse_maps_vdso("zz-7f r-xp 00000000 00:00 0 [vdso]").is_err());
        assert!(parse_maps_vdso("2000-1000 r-xp 00000000 00:00 0 [vdso]").is_err());
    }

    #[test]
    fn parses_auxv() {
        // The first entries of `od -t x8 /proc/self/auxv`.
        let words: [u64; 8] = [0x21, 0x7f56_6400_a000, 0x33, 0x6f0, 0x10, 0x178b_fbff, 0, 0];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
        let entries = parse_auxv(&bytes).unwrap();
        assert_eq!(
            entries,
            [(33, 0x7f56_6400_a000), (0x33, 0x6f0), (0x10, 0x178b_fbff)]
        );
        assert_eq!(parse_auxv(&bytes[..20]), None);
        assert_eq!(parse_auxv(&[]), Some(vec![]));
    }

    #[test]
    fn classifies_clocksources() {
        assert_eq!(vdso_clock("tsc"), VdsoClock::Capable);
        assert_eq!(
            vdso_clock("hyperv_clocksource_tsc_page"),
            VdsoClock::Capable
        );
        assert!(matches!(vdso_clock("kvm-clock"), VdsoClock::Conditional(_)));
        assert_eq!(vdso_clock("hpet"), VdsoClock::Syscall);
        assert_eq!(vdso_clock("acpi_pm"), VdsoClock::Syscall);
        assert_eq!(vdso_clock(""), VdsoClock::Syscall);
    }

    #[test]
    fn own_vdso_matches_auxv() {
        let pid = std::process::id();
        let Some(range) = vdso_range(pid).unwrap() else {
            eprintln!("skipped: this kernel maps no vDSO");
            return;
        };
        assert_eq!(sysinfo_ehdr(pid).unwrap(), Some(range.start));
        assert!(!current_clocksource().unwrap().is_empty());
    }

    /// A child's auxv points at its vDSO, whose first bytes are an ELF
    /// header.
    #[test]
    fn reads_child_vdso() {
        if let Some(why) = testutil::cannot_inspect_children() {
            eprintln!("skipped: {why}");
            return;
        }
        let child = testutil::Sleeper::spawn(&[]);
        let pid = child.pid();
        let range = vdso_range(pid)
            .unwrap()
            .expect("the child has a [vdso] mapping");
        assert_eq!(sysinfo_ehdr(pid).unwrap(), Some(range.start));
        let magic = mem::read_u32(pid, range.start).unwrap();
        assert_eq!(magic, u32::from_ne_bytes(*b"\x7fELF"));
    }
}
