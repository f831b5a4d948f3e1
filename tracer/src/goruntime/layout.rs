//! Struct offsets of the Go runtime, one row per Go minor release: every
//! byte offset into `runtime.g`, `runtime.m`, `runtime.p` and
//! `runtime.schedt` that the tracer reads or will read (linux/amd64,
//! default GOEXPERIMENTs). What each field is and why the tracer needs it
//! is in the module docs (`super`); the integration test
//! `goruntime::layout_matches_dwarf` checks every value of every row,
//! member path and width included, against the DWARF of a program built
//! by that release's toolchain.

use tracer_common::GoOffsets;

use crate::gobin::GoVersion;

/// Where the tracer finds what it reads in the runtime's structs, for one
/// Go minor release. Every field but `minor` and `p_stays_wired` is a byte
/// offset from the start of the struct its name begins with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuntimeLayout {
    /// Go 1.`minor`.
    pub minor: u32,
    pub g_m: u32,
    pub g_goid: u32,
    pub g_atomicstatus: u32,
    pub g_sched_sp: u32,
    pub g_sched_pc: u32,
    pub g_sched_bp: u32,
    pub g_lockedm: u32,
    pub m_g0: u32,
    pub m_procid: u32,
    pub m_curg: u32,
    pub m_p: u32,
    pub m_oldp: u32,
    pub m_id: u32,
    pub m_incgo: u32,
    pub m_alllink: u32,
    pub m_lockedg: u32,
    pub m_locked_ext: u32,
    pub m_locked_int: u32,
    pub m_syscalltick: u32,
    pub p_id: u32,
    pub p_status: u32,
    pub p_syscalltick: u32,
    pub p_m: u32,
    pub schedt_maxmcount: u32,
    /// The runtime keeps the P wired to its M during a syscall (Go 1.26+,
    /// where `_Psyscall` is gone): the P was lost iff `m.p` was cleared.
    /// Before, `entersyscall` parks the P in `m.oldp` as `_Psyscall`.
    pub p_stays_wired: bool,
}

/// One offset of a [`RuntimeLayout`], named by its member path in the
/// runtime's own spelling, with the width in bytes the tracer reads there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// `struct.member[.member]`, e.g. `g.sched.bp` (struct `runtime.g`).
    pub path: &'static str,
    pub offset: u32,
    pub size: u32,
}

impl RuntimeLayout {
    /// Every offset of this row with its member path, for checks against
    /// DWARF. The destructuring is exhaustive: a new field does not compile
    /// until it is listed here (and so checked).
    pub fn fields(&self) -> Vec<Field> {
        let Self {
            minor: _,
            g_m,
            g_goid,
            g_atomicstatus,
            g_sched_sp,
            g_sched_pc,
            g_sched_bp,
            g_lockedm,
            m_g0,
            m_procid,
            m_curg,
            m_p,
            m_oldp,
            m_id,
            m_incgo,
            m_alllink,
            m_lockedg,
            m_locked_ext,
            m_locked_int,
            m_syscalltick,
            p_id,
            p_status,
            p_syscalltick,
            p_m,
            schedt_maxmcount,
            p_stays_wired: _,
        } = *self;
        let f = |path, offset, size| Field { path, offset, size };
        vec![
            f("g.m", g_m, 8),
            f("g.goid", g_goid, 8),
            f("g.atomicstatus", g_atomicstatus, 4),
            f("g.sched.sp", g_sched_sp, 8),
            f("g.sched.pc", g_sched_pc, 8),
            f("g.sched.bp", g_sched_bp, 8),
            f("g.lockedm", g_lockedm, 8),
            f("m.g0", m_g0, 8),
            f("m.procid", m_procid, 8),
            f("m.curg", m_curg, 8),
            f("m.p", m_p, 8),
            f("m.oldp", m_oldp, 8),
            f("m.id", m_id, 8),
            f("m.incgo", m_incgo, 1),
            f("m.alllink", m_alllink, 8),
            f("m.lockedg", m_lockedg, 8),
            f("m.lockedExt", m_locked_ext, 4),
            f("m.lockedInt", m_locked_int, 4),
            f("m.syscalltick", m_syscalltick, 4),
            f("p.id", p_id, 4),
            f("p.status", p_status, 4),
            f("p.syscalltick", p_syscalltick, 4),
            f("p.m", p_m, 8),
            f("schedt.maxmcount", schedt_maxmcount, 4),
        ]
    }
}

/// A row from its columns, grouped by struct in the order of [`TABLE`]'s
/// header.
#[allow(clippy::too_many_arguments)]
const fn row(
    minor: u32,
    g: [u32; 7],
    m: [u32; 12],
    p: [u32; 4],
    schedt_maxmcount: u32,
    p_stays_wired: bool,
) -> RuntimeLayout {
    let [
        g_m,
        g_goid,
        g_atomicstatus,
        g_sched_sp,
        g_sched_pc,
        g_sched_bp,
        g_lockedm,
    ] = g;
    let [
        m_g0,
        m_procid,
        m_curg,
        m_p,
        m_oldp,
        m_id,
        m_incgo,
        m_alllink,
        m_lockedg,
        m_locked_ext,
        m_locked_int,
        m_syscalltick,
    ] = m;
    let [p_id, p_status, p_syscalltick, p_m] = p;
    RuntimeLayout {
        minor,
        g_m,
        g_goid,
        g_atomicstatus,
        g_sched_sp,
        g_sched_pc,
        g_sched_bp,
        g_lockedm,
        m_g0,
        m_procid,
        m_curg,
        m_p,
        m_oldp,
        m_id,
        m_incgo,
        m_alllink,
        m_lockedg,
        m_locked_ext,
        m_locked_int,
        m_syscalltick,
        p_id,
        p_status,
        p_syscalltick,
        p_m,
        schedt_maxmcount,
        p_stays_wired,
    }
}

/// The verified releases. Go 1.20 is missing: no toolchain to check it
/// against (a binary built by it degrades to syscall-only tracing).
#[rustfmt::skip]
const TABLE: &[RuntimeLayout] = &[
    // Go 1.x, then [runtime.g], [runtime.m], [runtime.p], runtime.schedt, whether the P stays wired
    //          m  goid  status  sched.sp   .pc   .bp  lockedm     g0  procid  curg     p  oldp    id  incgo  alllink  lockedg  lockedExt  lockedInt  syscalltick     id  status  syscalltick     m   maxmcount  wired
    row(19, [0x30, 0x98,   0x90,     0x38, 0x40, 0x68,    0xe8], [0x0,   0x48, 0xc0, 0xd0, 0xe0, 0xe8, 0x118,   0x150,   0x160,     0x268,     0x26c,       0x29c], [0x0,    0x4,        0x14, 0x38],      0x38, false),
    row(21, [0x30, 0x98,   0x90,     0x38, 0x40, 0x68,    0xd0], [0x0,   0x48, 0xc0, 0xd0, 0xe0, 0xe8, 0x118,   0x150,   0x160,     0x268,     0x26c,       0x298], [0x0,    0x4,        0x14, 0x38],      0x38, false),
    row(22, [0x30, 0x98,   0x90,     0x38, 0x40, 0x68,    0xd0], [0x0,   0x48, 0xc0, 0xd0, 0xe0, 0xe8, 0x118,   0x148,   0x158,     0x260,     0x264,       0x3b8], [0x0,    0x4,        0x14, 0x38],      0x38, false),
    row(23, [0x30, 0xa0,   0x98,     0x38, 0x40, 0x68,    0xd8], [0x0,   0x48, 0xc0, 0xd0, 0xe0, 0xe8, 0x118,   0x148,   0x158,     0x260,     0x264,       0x2e4], [0x0,    0x4,        0x14, 0x30],      0x38, false),
    row(24, [0x30, 0xa0,   0x98,     0x38, 0x40, 0x68,    0xd8], [0x0,   0x48, 0xc0, 0xd0, 0xe0, 0xe8, 0x118,   0x160,   0x170,     0x278,     0x27c,       0x2fc], [0x0,    0x4,        0x14, 0x30],      0x38, false),
    row(25, [0x30, 0x98,   0x90,     0x38, 0x40, 0x60,    0xd0], [0x0,   0x40, 0xb8, 0xc8, 0xd8, 0xe0, 0x110,   0x158,   0x168,     0x270,     0x274,       0x2f4], [0x0,    0x4,        0x14, 0x30],      0x40, false),
    row(26, [0x30, 0x98,   0x90,     0x38, 0x40, 0x60,    0xd0], [0x0,   0x40, 0xb8, 0xd0, 0xe0, 0xe8, 0x118,   0x160,   0x180,     0x288,     0x28c,       0x314], [0x0,    0x4,        0x14, 0x30],      0x50,  true),
    row(27, [0x30, 0x98,   0x90,     0x38, 0x40, 0x60,    0xd0], [0x0,   0x40, 0xb8, 0xd0, 0xe0, 0xe8, 0x118,   0x160,   0x180,     0x288,     0x28c,       0x314], [0x0,    0x4,        0x14, 0x30],      0x50,  true),
];

/// Every verified layout, oldest release first.
pub fn all() -> &'static [RuntimeLayout] {
    TABLE
}

/// The layout of a Go release, or `None` when this tracer has no verified
/// row for it.
pub fn layout(version: &GoVersion) -> Option<&'static RuntimeLayout> {
    if version.major != 1 {
        return None;
    }
    TABLE.iter().find(|r| r.minor == version.minor)
}

/// The offsets the kernel programs read, for a Go release, or `None` when
/// this tracer has no verified layout for it.
pub fn offsets(version: &GoVersion) -> Option<GoOffsets> {
    let l = layout(version)?;
    Some(GoOffsets {
        enabled: 1,
        p_stays_wired: u32::from(l.p_stays_wired),
        g_m: l.g_m,
        g_goid: l.g_goid,
        g_atomicstatus: l.g_atomicstatus,
        m_procid: l.m_procid,
        m_p: l.m_p,
        m_oldp: l.m_oldp,
        p_status: l.p_status,
        m_syscalltick: l.m_syscalltick,
        p_syscalltick: l.p_syscalltick,
        m_curg: l.m_curg,
        m_incgo: l.m_incgo,
        g_sched_pc: l.g_sched_pc,
        g_sched_bp: l.g_sched_bp,
        m_id: l.m_id,
        m_alllink: l.m_alllink,
        m_locked_ext: l.m_locked_ext,
        m_locked_int: l.m_locked_int,
        m_g0: l.m_g0,
        p_id: l.p_id,
        execs_expected: 0,
        allp_link: 0,
        allm_link: 0,
        stw_fn_link: 0,
        handoffp_link: 0,
        main_link: 0,
        vdso_sym_link: 0,
        gomaxprocs_link: 0,
        maxmcount_link: 0,
    })
}

/// Offset of `maxmcount` (the `debug.SetMaxThreads` cap) in `runtime.schedt`.
pub fn sched_maxmcount_offset(version: &GoVersion) -> Option<u64> {
    layout(version).map(|l| u64::from(l.schedt_maxmcount))
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
        assert_eq!(sched_maxmcount_offset(&v(24)), Some(0x38));
        assert_eq!(sched_maxmcount_offset(&v(26)), Some(0x50));
        assert_eq!(sched_maxmcount_offset(&v(20)), None);
    }

    #[test]
    fn rows_are_sorted_and_unique() {
        assert!(TABLE.windows(2).all(|w| w[0].minor < w[1].minor));
    }

    /// What the kernel programs take for granted in every row, without an
    /// offset of their own: `m.g0` and `p.id` are the structs' first
    /// fields, `g.sched.pc` follows `g.sched.sp`, and the P stays wired
    /// exactly from 1.26 (where `_Psyscall` went away).
    #[test]
    fn kernel_assumptions_hold_in_every_row() {
        for l in TABLE {
            assert_eq!((l.m_g0, l.p_id), (0, 0), "1.{}", l.minor);
            assert_eq!(l.g_sched_pc, l.g_sched_sp + 8, "1.{}", l.minor);
            assert_eq!(l.p_stays_wired, l.minor >= 26, "1.{}", l.minor);
            assert_eq!(
                l.p_stays_wired,
                !super::super::states::P_SYSCALL_VERSIONS.contains(l.minor),
                "1.{}",
                l.minor
            );
        }
    }

    #[test]
    fn every_field_is_listed_once() {
        let fields = TABLE[0].fields();
        let mut paths: Vec<&str> = fields.iter().map(|f| f.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), fields.len());
    }
}
