//! The calls reported one by one (slow, P-losing, or flagged by a P-taking
//! probe), grouped by call site: the syscall, the user stack, whether C code
//! made it, and what its descriptor was.

use std::collections::{BTreeMap, HashMap, HashSet};

use hdrhistogram::Histogram;

use super::event::{PHandoff, RawFd, TakenFlags};

/// Frames kept per call site key: enough to tell call sites apart.
const SITE_FRAMES: usize = 12;
/// Distinct call sites kept (past it, calls are counted as dropped).
const MAX_SITES: usize = 4_096;
/// Goroutine ids kept per site (past it, the count is a lower bound and
/// `goroutines_capped` says so).
const MAX_GOROUTINES_PER_SITE: usize = 512;

/// A call site's latency histogram: 2 significant figures (1%, enough for
/// its p99) and 32-bit counts, a few KB each, so thousands of sites stay
/// small (a syscall's own histogram has 3 figures).
pub fn new_site_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1_000, 1 << 40, 2).expect("static histogram bounds are valid")
}
/// Calls kept by (thread, start) for joining P handoffs to them.
const MAX_INDEXED_CALLS: usize = 200_000;

/// A syscall made from one user stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SiteKey {
    pub sysno: u32,
    /// Made after the process executed another program: its stack belongs
    /// to a binary the tracer did not read.
    pub after_exec: bool,
    /// Made by C code in a cgo call (frames: the Go stack that called C).
    pub cgo: bool,
    /// Program counters, innermost first (frame 0 is the syscall
    /// instruction's function, later ones are return addresses).
    pub frames: Vec<u64>,
}

/// Reported calls from one call site.
#[derive(Clone, Debug)]
pub struct SiteStats {
    pub calls: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Calls during which the goroutine's P was taken.
    pub p_lost: u64,
    /// Calls that then exited on the slow path (no P: queued, thread parked).
    pub slow_exits: u64,
    /// Calls made by the runtime on its system stack (no goroutine).
    pub runtime: u64,
    pub goroutines: HashSet<u64>,
    /// More goroutines made calls here than were kept.
    pub goroutines_capped: bool,
    pub histogram: Histogram<u32>,
    /// Calls by descriptor kind ([`RawFd::kind_key`]).
    pub fds: HashMap<RawFd, u64>,
    /// Calls by errno (failed ones).
    pub errnos: BTreeMap<u32, u64>,
}

impl Default for SiteStats {
    fn default() -> Self {
        Self {
            calls: 0,
            total_ns: 0,
            max_ns: 0,
            p_lost: 0,
            slow_exits: 0,
            runtime: 0,
            goroutines: HashSet::new(),
            goroutines_capped: false,
            histogram: new_site_histogram(),
            fds: HashMap::new(),
            errnos: BTreeMap::new(),
        }
    }
}

/// One reported call as the P-handoff reconciliation needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRef {
    /// Index into [`Calls::sites`].
    pub site: usize,
    pub p: PHandoff,
    pub taken: TakenFlags,
    /// The P the call started with, when read.
    pub p_id: Option<u32>,
    pub end_ns: u64,
}

/// Reported calls by site.
#[derive(Clone, Debug, Default)]
pub struct Calls {
    /// Sites in first-seen order (an index is stable).
    pub sites: Vec<(SiteKey, SiteStats)>,
    site_index: HashMap<SiteKey, usize>,
    /// Calls past the site cap (counted, not kept).
    pub dropped: u64,
    /// (thread, call start) → the call, for joining P handoffs.
    by_start: HashMap<(u32, u64), CallRef>,
    pub unindexed: u64,
    /// Per syscall: calls during which the P was taken.
    pub p_lost: BTreeMap<u32, u64>,
    /// The last reported call per thread (where a slow exit belongs).
    pub last_on_thread: HashMap<u32, (u64, usize)>,
    /// The highest P id a reported call held (GOMAXPROCS is above it).
    pub max_p_id: Option<u32>,
}

/// A reported call, as decoded.
pub struct ReportedCall<'a> {
    pub tid: u32,
    pub ts_ns: u64,
    pub sysno: u32,
    pub ret: i64,
    pub duration_ns: u64,
    pub goid: u64,
    pub p: PHandoff,
    pub cgo: bool,
    pub taken: TakenFlags,
    pub p_id: Option<u32>,
    pub fd: &'a RawFd,
    pub frames: &'a [u64],
    pub after_exec: bool,
}

impl SiteKey {
    /// The site of a call of `sysno` made from `frames` (innermost first).
    pub fn new(sysno: u32, after_exec: bool, cgo: bool, frames: &[u64]) -> Self {
        Self {
            sysno,
            after_exec,
            cgo,
            frames: frames.iter().take(SITE_FRAMES).copied().collect(),
        }
    }
}

impl Calls {
    /// Whether a call at `key` would be kept: its site is known, or there
    /// is room for a new one (past [`MAX_SITES`] it is only counted in
    /// `dropped`).
    pub fn admits(&self, key: &SiteKey) -> bool {
        self.site_index.contains_key(key) || self.sites.len() < MAX_SITES
    }

    pub fn record(&mut self, c: &ReportedCall<'_>) {
        let key = SiteKey::new(c.sysno, c.after_exec, c.cgo, c.frames);
        if !self.admits(&key) {
            self.dropped += 1;
            return;
        }
        let index = match self.site_index.get(&key) {
            Some(&i) => i,
            None => {
                self.sites.push((key.clone(), SiteStats::default()));
                self.site_index.insert(key, self.sites.len() - 1);
                self.sites.len() - 1
            }
        };
        let start = c.ts_ns.saturating_sub(c.duration_ns);
        if self.by_start.len() < MAX_INDEXED_CALLS {
            self.by_start.insert(
                (c.tid, start),
                CallRef {
                    site: index,
                    p: c.p,
                    taken: c.taken,
                    p_id: c.p_id,
                    end_ns: c.ts_ns,
                },
            );
        } else {
            self.unindexed += 1;
        }
        self.last_on_thread.insert(c.tid, (c.ts_ns, index));
        if let Some(id) = c.p_id {
            self.max_p_id = Some(self.max_p_id.map_or(id, |m| m.max(id)));
        }
        let site = &mut self.sites[index].1;
        site.calls += 1;
        site.total_ns = site.total_ns.saturating_add(c.duration_ns);
        site.max_ns = site.max_ns.max(c.duration_ns);
        site.histogram.saturating_record(c.duration_ns.max(1));
        if c.goid != 0 && !site.goroutines.contains(&c.goid) {
            if site.goroutines.len() < MAX_GOROUTINES_PER_SITE {
                site.goroutines.insert(c.goid);
            } else {
                site.goroutines_capped = true;
            }
        }
        if c.p == PHandoff::Lost {
            site.p_lost += 1;
            *self.p_lost.entry(c.sysno).or_default() += 1;
        }
        if c.p == PHandoff::Runtime {
            site.runtime += 1;
        }
        *site.fds.entry(c.fd.kind_key()).or_default() += 1;
        if (-4095..0).contains(&c.ret) {
            *site.errnos.entry(c.ret.unsigned_abs() as u32).or_default() += 1;
        }
    }

    /// The reported call that began at `start_ns` on thread `tid`.
    pub fn call(&self, tid: u32, start_ns: u64) -> Option<CallRef> {
        self.by_start.get(&(tid, start_ns)).copied()
    }

    /// Every indexed call (for reconciliation).
    pub fn indexed(&self) -> impl Iterator<Item = (&(u32, u64), &CallRef)> {
        self.by_start.iter()
    }
}
