//! LockOSThread leaks: goroutines that exited while locked to their
//! thread, counted where the runtime handles it (`mexit`), so every leak
//! counts, whether the thread then exits, is still exiting when the
//! process ends, or is the main thread (m0), which the runtime wedges for
//! the rest of the process instead of ending it.

use serde::Serialize;

use crate::{
    gobin::symbolize::{CallSite, Symbolizer, call_site_of},
    model::Model,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeakRow {
    /// Where `runtime.LockOSThread` was called (`None`: locked before
    /// tracing began, or not symbolized; `why_no_site` says which).
    pub call_site: Option<CallSite>,
    pub why_no_site: Option<String>,
    pub threads: u64,
    pub goroutines: u64,
    /// Of the threads, the main thread: wedged, not ended.
    pub main_thread: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Leaks {
    /// Locked goroutines that exited (one thread lost each).
    pub total: u64,
    /// The main thread was wedged (a goroutine exited locked to it): it
    /// stays blocked for the life of the process.
    pub main_thread_wedged: bool,
    pub rows: Vec<LeakRow>,
    /// Lock sites past the kept limit (their leaks are in `total`).
    pub sites_dropped: u64,
}

pub fn leaks(model: &Model, sym: Option<&Symbolizer>) -> Leaks {
    let mut rows: Vec<LeakRow> = Vec::new();
    for (frames, site) in &model.runtime.leaks {
        let named = match (frames, sym) {
            (None, _) => Err("locked before tracing began".to_owned()),
            (Some(_), None) => Err("not symbolized".to_owned()),
            (Some(frames), Some(sym)) => call_site_of(&sym.entry_stack(frames)),
        };
        let (call_site, why_no_site) = match named {
            Ok(s) => (Some(s), None),
            Err(w) => (None, Some(w)),
        };
        match rows
            .iter_mut()
            .find(|r| r.call_site == call_site && call_site.is_some())
        {
            Some(row) => {
                row.threads += site.threads;
                row.goroutines += site.goroutines;
                row.main_thread += site.main_thread;
            }
            None => rows.push(LeakRow {
                call_site,
                why_no_site,
                threads: site.threads,
                goroutines: site.goroutines,
                main_thread: site.main_thread,
            }),
        }
    }
    rows.sort_by_key(|r| std::cmp::Reverse(r.threads));
    let total = rows.iter().map(|r| r.threads).sum::<u64>();
    Leaks {
        total: total + model.runtime.leak_sites_dropped,
        main_thread_wedged: rows.iter().any(|r| r.main_thread > 0),
        rows,
        sites_dropped: model.runtime.leak_sites_dropped,
    }
}
