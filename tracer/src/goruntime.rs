//! Per-version knowledge of the Go runtime, as data: the struct offsets the
//! kernel programs need to read a goroutine's id and its P state, one row
//! per Go minor release (from DWARF of each release; see
//! shared/reference/go-runtime.md §4.2 and §9.5). A version without a row
//! degrades to syscall-only tracing with one warning, never wrong numbers.

use tracer_common::GoOffsets;

use crate::gobin::GoVersion;

/// One row: offsets into `runtime.g`, `runtime.m`, `runtime.p`.
struct Row {
    minor: u32,
    g_m: u32,
    g_goid: u32,
    g_atomicstatus: u32,
    m_procid: u32,
    m_p: u32,
    m_oldp: u32,
    p_status: u32,
    m_syscalltick: u32,
    m_curg: u32,
    m_incgo: u32,
    /// `g.sched.bp`: 0x38 + 0x30 up to 1.24, 0x38 + 0x28 from 1.25.
    g_sched_bp: u32,
    /// Go 1.26 removed `_Psyscall`: the P stays wired to the M in a syscall.
    p_stays_wired: bool,
}

#[rustfmt::skip]
const TABLE: &[Row] = &[
    //   minor, then g.m g.goid g.status m.procid m.p m.oldp p.status m.syscalltick m.curg m.incgo g.sched.bp wired
    Row { minor: 19, g_m: 0x30, g_goid: 0x98, g_atomicstatus: 0x90, m_procid: 0x48, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x29c, m_curg: 0xc0, m_incgo: 0x118, g_sched_bp: 0x68, p_stays_wired: false },
    // 1.20 is not in the table: no toolchain here to verify its layout.
    Row { minor: 21, g_m: 0x30, g_goid: 0x98, g_atomicstatus: 0x90, m_procid: 0x48, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x298, m_curg: 0xc0, m_incgo: 0x118, g_sched_bp: 0x68, p_stays_wired: false },
    Row { minor: 22, g_m: 0x30, g_goid: 0x98, g_atomicstatus: 0x90, m_procid: 0x48, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x3b8, m_curg: 0xc0, m_incgo: 0x118, g_sched_bp: 0x68, p_stays_wired: false },
    Row { minor: 23, g_m: 0x30, g_goid: 0xa0, g_atomicstatus: 0x98, m_procid: 0x48, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x2e4, m_curg: 0xc0, m_incgo: 0x118, g_sched_bp: 0x68, p_stays_wired: false },
    Row { minor: 24, g_m: 0x30, g_goid: 0xa0, g_atomicstatus: 0x98, m_procid: 0x48, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x2fc, m_curg: 0xc0, m_incgo: 0x118, g_sched_bp: 0x68, p_stays_wired: false },
    Row { minor: 25, g_m: 0x30, g_goid: 0x98, g_atomicstatus: 0x90, m_procid: 0x40, m_p: 0xc8, m_oldp: 0xd8, p_status: 0x4, m_syscalltick: 0x2f4, m_curg: 0xb8, m_incgo: 0x110, g_sched_bp: 0x60, p_stays_wired: false },
    Row { minor: 26, g_m: 0x30, g_goid: 0x98, g_atomicstatus: 0x90, m_procid: 0x40, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x314, m_curg: 0xb8, m_incgo: 0x118, g_sched_bp: 0x60, p_stays_wired: true },
    Row { minor: 27, g_m: 0x30, g_goid: 0x98, g_atomicstatus: 0x90, m_procid: 0x40, m_p: 0xd0, m_oldp: 0xe0, p_status: 0x4, m_syscalltick: 0x314, m_curg: 0xb8, m_incgo: 0x118, g_sched_bp: 0x60, p_stays_wired: true },
];

/// The offsets for a Go release, or `None` when this tracer has no verified
/// layout for it.
pub fn offsets(version: &GoVersion) -> Option<GoOffsets> {
    if version.major != 1 {
        return None;
    }
    let row = TABLE.iter().find(|r| r.minor == version.minor)?;
    Some(GoOffsets {
        enabled: 1,
        p_stays_wired: u32::from(row.p_stays_wired),
        g_m: row.g_m,
        g_goid: row.g_goid,
        g_atomicstatus: row.g_atomicstatus,
        m_procid: row.m_procid,
        m_p: row.m_p,
        m_oldp: row.m_oldp,
        p_status: row.p_status,
        m_syscalltick: row.m_syscalltick,
        p_syscalltick: 0x14,
        m_curg: row.m_curg,
        m_incgo: row.m_incgo,
        g_sched_pc: 0x40,
        g_sched_bp: row.g_sched_bp,
        m_id: m_extra(version.minor).0,
        m_alllink: m_extra(version.minor).1,
        m_locked_ext: m_extra(version.minor).2,
        m_locked_int: m_extra(version.minor).2 + 4,
        m_g0: 0,
        p_id: 0,
        execs_expected: 0,
        allp_link: 0,
        allm_link: 0,
        stw_fn_link: 0,
        handoffp_link: 0,
    })
}

/// `m.id`, `m.alllink`, `m.lockedExt` (`lockedInt` follows it).
fn m_extra(minor: u32) -> (u32, u32, u32) {
    match minor {
        19 | 21 => (0xe8, 0x150, 0x268),
        22 | 23 => (0xe8, 0x148, 0x260),
        24 => (0xe8, 0x160, 0x278),
        25 => (0xe0, 0x158, 0x270),
        _ => (0xe8, 0x160, 0x288),
    }
}

/// Offset of `maxmcount` (the `debug.SetMaxThreads` cap) in `runtime.schedt`
/// (Appendix A of go-runtime.md; 1.19 shares 1.21's prefix of schedt,
/// checked live by the integration tests, which read 10 000 from every
/// release).
pub fn sched_maxmcount_offset(version: &GoVersion) -> Option<u64> {
    match (version.major, version.minor) {
        (1, 19 | 21..=24) => Some(0x38),
        (1, 25) => Some(0x40),
        (1, 26 | 27) => Some(0x50),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(minor: u32) -> GoVersion {
        GoVersion {
            major: 1,
            minor,
            patch: 0,
        }
    }

    #[test]
    fn known_versions_have_offsets_and_unknown_ones_do_not() {
        assert_eq!(offsets(&v(21)).unwrap().g_goid, 0x98);
        assert_eq!(offsets(&v(23)).unwrap().g_goid, 0xa0);
        assert_eq!(offsets(&v(25)).unwrap().m_p, 0xc8);
        assert_eq!(offsets(&v(27)).unwrap().p_stays_wired, 1);
        assert_eq!(offsets(&v(19)).unwrap().p_stays_wired, 0);
        assert!(offsets(&v(20)).is_none());
        assert!(offsets(&v(28)).is_none());
        assert!(
            offsets(&GoVersion {
                major: 2,
                minor: 0,
                patch: 0
            })
            .is_none()
        );
    }
}
