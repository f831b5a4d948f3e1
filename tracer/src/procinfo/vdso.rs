//! The process's vDSO and the machine's clocksource.

use std::fs;

use super::{ProcError, read};

/// `AT_SYSINFO_EHDR`: where the kernel mapped the vDSO's ELF header.
const AT_SYSINFO_EHDR: u64 = 33;

/// The `[vdso]` mapping `(start, end)` of /proc/PID/maps.
pub fn vdso_mapping(pid: u32) -> Result<Option<(u64, u64)>, ProcError> {
    Ok(parse_vdso_mapping(&read(format!("/proc/{pid}/maps"))?))
}

pub fn parse_vdso_mapping(maps: &str) -> Option<(u64, u64)> {
    let line = maps.lines().find(|l| l.trim_end().ends_with("[vdso]"))?;
    let (start, end) = line.split_whitespace().next()?.split_once('-')?;
    Some((
        u64::from_str_radix(start, 16).ok()?,
        u64::from_str_radix(end, 16).ok()?,
    ))
}

/// `AT_SYSINFO_EHDR` from /proc/PID/auxv (`None`: the kernel gave none).
pub fn sysinfo_ehdr(pid: u32) -> Result<Option<u64>, ProcError> {
    let path = format!("/proc/{pid}/auxv");
    let bytes = fs::read(&path).map_err(|source| ProcError::Read { path, source })?;
    Ok(parse_auxv(&bytes, AT_SYSINFO_EHDR))
}

pub fn parse_auxv(bytes: &[u8], key: u64) -> Option<u64> {
    bytes.chunks_exact(16).find_map(|pair| {
        let k = u64::from_ne_bytes(pair[..8].try_into().ok()?);
        let v = u64::from_ne_bytes(pair[8..].try_into().ok()?);
        (k == key).then_some(v)
    })
}

pub fn current_clocksource() -> Result<String, ProcError> {
    Ok(
        read("/sys/devices/system/clocksource/clocksource0/current_clocksource")?
            .trim()
            .to_owned(),
    )
}

/// Whether the x86_64 vDSO reads this clocksource in user space; others
/// (hpet, acpi_pm, jiffies) make every clock read a syscall.
pub fn clocksource_vdso_capable(name: &str) -> bool {
    matches!(name, "tsc" | "kvm-clock" | "hyperv_clocksource_tsc_page")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_auxv() {
        let maps = "7ffd1000-7ffd3000 r--p 00000000 00:00 0                          [vvar]\n\
                    7ffd3000-7ffd5000 r-xp 00000000 00:00 0                          [vdso]\n";
        assert_eq!(parse_vdso_mapping(maps), Some((0x7ffd3000, 0x7ffd5000)));
        let mut auxv = Vec::new();
        for (k, v) in [(6u64, 4096u64), (33, 0x7ffd3000), (0, 0)] {
            auxv.extend_from_slice(&k.to_ne_bytes());
            auxv.extend_from_slice(&v.to_ne_bytes());
        }
        assert_eq!(parse_auxv(&auxv, 33), Some(0x7ffd3000));
        assert!(clocksource_vdso_capable("tsc") && !clocksource_vdso_capable("hpet"));
        let own = std::process::id();
        assert_eq!(
            vdso_mapping(own).unwrap().map(|m| m.0),
            sysinfo_ehdr(own).unwrap()
        );
    }
}
