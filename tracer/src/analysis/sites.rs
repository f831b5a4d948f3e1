//! Call sites: the reported calls grouped by syscall and by where the
//! program made them (the first frames in its own code, several deep so a
//! shared helper such as `fileutil.Fdatasync` does not hide its callers),
//! with what each call waited on (its descriptor's kind) and, for cgo
//! calls, the C function and the Go API that led to it.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{
    cgo::{CgoCall, cgo_call},
    fd::{self, FdInfo, FdKind},
    handoffs::Handoffs,
};
use crate::{
    gobin::symbolize::{CallSite, Frame, Symbolizer, call_site_of},
    model::{
        Model,
        calls::{SiteKey, new_site_histogram},
    },
    procinfo::kallsyms::FopsMap,
    syscall_names,
};

/// Why a call made after an exec has no call site.
const AFTER_EXEC: &str = "made by the program the process executed later (not symbolized)";

/// Symbolizes model call sites once each.
pub struct SiteNames<'a> {
    model: &'a Model,
    sym: Option<&'a Symbolizer>,
    cache: HashMap<usize, Result<CallSite, String>>,
}

impl<'a> SiteNames<'a> {
    pub fn new(model: &'a Model, sym: Option<&'a Symbolizer>) -> Self {
        Self {
            model,
            sym,
            cache: HashMap::new(),
        }
    }

    /// The call site of model site `index`, or why there is none.
    pub fn site(&mut self, index: usize) -> Result<CallSite, String> {
        if let Some(s) = self.cache.get(&index) {
            return s.clone();
        }
        let named = match self.sym {
            None => Err("not a Go program: no symbols read".to_owned()),
            Some(_) if self.model.calls.sites[index].0.after_exec => Err(AFTER_EXEC.to_owned()),
            Some(sym) => {
                let key = &self.model.calls.sites[index].0;
                call_site_of(&stack_of(sym, key))
            }
        };
        self.cache.insert(index, named.clone());
        named
    }
}

/// The symbolized stack of a site key, innermost first.
/// (For a cgo call, the Go stack saved at the call: its first frame is
/// the saved pc, the others return addresses, as for a syscall.)
pub fn stack_of(sym: &Symbolizer, key: &SiteKey) -> Vec<Frame> {
    sym.syscall_stack(&key.frames)
}

/// Calls of one kind of descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FdCount {
    pub kind: FdKind,
    pub label: &'static str,
    pub nonblocking: bool,
    /// Whether Go's netpoller would wait for this descriptor (the thread
    /// is free); `false`: the thread waits in the syscall. Always `false`
    /// (or `None`) for calls made by C code in a cgo call: C waits on its
    /// own descriptors, which Go's netpoller never sees.
    pub netpolled: Option<bool>,
    pub calls: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ErrnoCount {
    pub errno: String,
    pub number: u32,
    pub calls: u64,
}

/// Reported calls from one call site.
#[derive(Clone, Debug, Serialize)]
pub struct BlockingRow {
    pub syscall: String,
    pub call_site: Option<CallSite>,
    pub why_no_site: Option<String>,
    pub calls: u64,
    /// Distinct goroutines (a lower bound when `goroutines_capped`).
    pub goroutines: u64,
    pub goroutines_capped: bool,
    pub total_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    /// Ps taken from these calls (reconciled: see `handoffs`).
    pub p_handoffs: u64,
    /// Of them, exits on the slow path (no P free: the goroutine was
    /// queued and its thread parked).
    pub slow_exits: u64,
    /// Calls the runtime made on its own stack (no goroutine).
    pub runtime_calls: u64,
    /// A cgo call: the syscall was made by C code.
    pub cgo: Option<CgoCall>,
    pub cgo_unnamed: bool,
    /// What the calls waited on, most calls first.
    pub fds: Vec<FdCount>,
    pub errors: Vec<ErrnoCount>,
    /// The symbolized stack of the first call seen here, innermost first.
    pub stack: Vec<Frame>,
}

pub fn errno_counts(errnos: &BTreeMap<u32, u64>) -> Vec<ErrnoCount> {
    let mut v: Vec<ErrnoCount> = errnos
        .iter()
        .map(|(&number, &calls)| ErrnoCount {
            errno: super::errno::name(number),
            number,
            calls,
        })
        .collect();
    v.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.number.cmp(&b.number)));
    v
}

/// Groups the reported calls by syscall and call site.
pub fn blocking_rows(
    model: &Model,
    sym: Option<&Symbolizer>,
    fops: Option<&FopsMap>,
    handoffs: &Handoffs,
) -> Vec<BlockingRow> {
    type Key = (u32, bool, Option<CallSite>);
    let mut rows: BTreeMap<Key, (BlockingRow, hdrhistogram::Histogram<u32>)> = BTreeMap::new();
    let mut fds: BTreeMap<Key, BTreeMap<(FdKind, bool), u64>> = BTreeMap::new();
    let mut errnos: BTreeMap<Key, BTreeMap<u32, u64>> = BTreeMap::new();
    for (index, (key, site)) in model.calls.sites.iter().enumerate() {
        let stack = sym
            .filter(|_| !key.after_exec)
            .map(|s| stack_of(s, key))
            .unwrap_or_default();
        let named = match sym {
            Some(_) if key.after_exec => Err(AFTER_EXEC.to_owned()),
            Some(_) => call_site_of(&stack),
            None => Err("not a Go program: no symbols read".to_owned()),
        };
        let (call_site, why) = match named {
            Ok(s) => (Some(s), None),
            Err(w) => (None, Some(w)),
        };
        let group: Key = (key.sysno, key.cgo, call_site.clone());
        let (row, hist) = rows.entry(group.clone()).or_insert_with(|| {
            let cgo = key.cgo.then(|| cgo_call(&stack)).flatten();
            (
                BlockingRow {
                    syscall: syscall_names::name(key.sysno),
                    call_site,
                    why_no_site: why,
                    calls: 0,
                    goroutines: 0,
                    goroutines_capped: false,
                    total_ns: 0,
                    p99_ns: 0,
                    max_ns: 0,
                    p_handoffs: 0,
                    slow_exits: 0,
                    runtime_calls: 0,
                    cgo_unnamed: key.cgo && cgo.is_none(),
                    cgo,
                    fds: Vec::new(),
                    errors: Vec::new(),
                    stack,
                },
                new_site_histogram(),
            )
        });
        let _ = hist.add(&site.histogram);
        row.calls += site.calls;
        row.goroutines += site.goroutines.len() as u64;
        row.goroutines_capped |= site.goroutines_capped;
        row.total_ns = row.total_ns.saturating_add(site.total_ns);
        row.max_ns = row.max_ns.max(site.max_ns);
        row.p_handoffs += handoffs.by_site.get(&index).copied().unwrap_or(0);
        row.slow_exits += site.slow_exits;
        row.runtime_calls += site.runtime;
        let by_kind = fds.entry(group.clone()).or_default();
        for (raw, &n) in &site.fds {
            if raw.state == tracer_common::FD_NONE {
                continue;
            }
            let info = fd::classify(&fd::RawFd::from(raw), fops);
            *by_kind.entry((info.kind, info.nonblocking)).or_default() += n;
        }
        let e = errnos.entry(group).or_default();
        for (&errno, &n) in &site.errnos {
            *e.entry(errno).or_default() += n;
        }
    }
    let mut out: Vec<BlockingRow> = rows
        .into_iter()
        .map(|(key, (mut row, hist))| {
            row.p99_ns = if hist.is_empty() {
                0
            } else {
                hist.value_at_quantile(0.99).min(row.max_ns)
            };
            let mut kinds: Vec<FdCount> = fds
                .remove(&key)
                .unwrap_or_default()
                .into_iter()
                .map(|((kind, nonblocking), calls)| {
                    let info = FdInfo {
                        fd: 0,
                        kind,
                        nonblocking,
                    };
                    FdCount {
                        kind,
                        label: kind.label(),
                        nonblocking,
                        // C code (a cgo call: glibc's resolver polling its
                        // own UDP socket) made the call on a descriptor Go
                        // never registered: its thread waits, whatever the
                        // descriptor's mode.
                        netpolled: if key.1 {
                            info.netpoller_waits().map(|_| false)
                        } else {
                            info.netpoller_waits()
                        },
                        calls,
                    }
                })
                .collect();
            kinds.sort_by_key(|k| std::cmp::Reverse(k.calls));
            row.fds = kinds;
            row.errors = errno_counts(&errnos.remove(&key).unwrap_or_default());
            row
        })
        .collect();
    out.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(b.calls.cmp(&a.calls)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        gobin::symbolize::testing::{ret, symbolizer},
        model::{Event, PHandoff, RawFd, TakenFlags},
    };

    /// A UDP socket in non-blocking mode (what glibc's resolver opens).
    fn udp_nonblocking() -> RawFd {
        RawFd {
            fd: 5,
            state: tracer_common::FD_READ,
            i_mode: 0o140_777,
            f_flags: 0o4002,
            sock_family: 2,
            sock_type: 2,
            sock_protocol: 17,
            ..RawFd::default()
        }
    }

    fn call(model: &mut Model, tid: u32, cgo: bool, frame: usize) {
        model.apply(&Event::SlowCall {
            tid,
            ts_ns: 5_000_000,
            sysno: 7,
            ret: 0,
            duration_ns: 5_000_000,
            goid: 1,
            p: PHandoff::Kept,
            cgo,
            taken: TakenFlags::default(),
            p_id: Some(0),
            fd: udp_nonblocking(),
            frames: vec![ret(frame), ret(frame)],
        });
    }

    #[test]
    fn a_cgo_call_on_a_nonblocking_socket_is_never_netpolled() {
        let sym = symbolizer(&["main.fromGo", "main.fromC"]);
        let mut m = Model::new(1);
        call(&mut m, 10, false, 0);
        call(&mut m, 11, true, 1);
        let rows = blocking_rows(&m, Some(&sym), None, &Handoffs::default());
        assert_eq!(rows.len(), 2, "{rows:#?}");
        for row in &rows {
            let fd = &row.fds[0];
            assert!(fd.nonblocking, "{row:#?}");
            assert!(matches!(fd.kind, FdKind::Socket { .. }), "{row:#?}");
            // Go's own socket is netpolled; the one C polls is not.
            let cgo = row.cgo.is_some() || row.cgo_unnamed;
            assert_eq!(fd.netpolled, Some(!cgo), "{row:#?}");
        }
        assert!(rows.iter().any(|r| r.cgo.is_some() || r.cgo_unnamed));
    }
}
