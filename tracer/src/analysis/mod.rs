//! The analysis layer: typed inferences from the model (what happened) and
//! the process facts — what each descriptor was ([`fd`]), who took each P
//! and from which call ([`handoffs`], reconciled so every breakdown sums to
//! its total), why each thread was created ([`spawns`]), where calls
//! blocked ([`sites`], with [`cgo`] paths named), LockOSThread leaks
//! ([`leaks`]), vDSO fallbacks ([`vdso`]), and the verdicts with their
//! evidence ([`verdicts`]); and what changed between two sessions
//! ([`diff`]). Reports only render what is here.

pub mod cgo;
pub mod diff;
pub mod errno;
pub mod fd;
pub mod handoffs;
pub mod leaks;
pub mod sites;
pub mod spawns;
pub mod vdso;
pub mod verdicts;

use crate::{
    facts::Facts, gobin::symbolize::Symbolizer, model::Model, procinfo::kallsyms::FopsMap,
};

/// What the analysis needs besides the model.
pub struct Context<'a> {
    /// The Go binary, when the target is one.
    pub sym: Option<&'a Symbolizer>,
    /// Whether goroutines and P handoffs were read (a known Go release).
    pub attribution: bool,
    pub fops: Option<&'a FopsMap>,
    pub facts: &'a Facts,
    pub traced_seconds: f64,
}

/// Every inference of one session.
#[derive(Clone, Debug)]
pub struct Analysis {
    /// Go targets with attribution: the P takeovers, reconciled.
    pub handoffs: Option<handoffs::Handoffs>,
    pub spawns: spawns::SpawnCauses,
    pub blocking: Vec<sites::BlockingRow>,
    pub leaks: leaks::Leaks,
    pub vdso: vdso::VdsoSection,
    /// The most threads alive at once, from the probes' count and the
    /// samples.
    pub peak_threads: u64,
    /// GOMAXPROCS as read (or estimated), else at least the Ps seen.
    pub gomaxprocs: Option<u64>,
    pub verdicts: Vec<verdicts::Verdict>,
}

pub fn analyze(model: &Model, cx: &Context<'_>) -> Analysis {
    let sym = cx.sym;
    let handoffs = sym
        .filter(|_| cx.attribution)
        .map(|s| handoffs::reconcile(model, s));
    let empty = handoffs::Handoffs::default();
    let blocking = sites::blocking_rows(model, sym, cx.fops, handoffs.as_ref().unwrap_or(&empty));
    let mut names = sites::SiteNames::new(model, sym);
    let spawns = spawns::causes_since(model, sym.filter(|_| cx.attribution), &mut names, 0);
    let leaks = leaks::leaks(model, sym);
    let vdso = vdso::VdsoSection::build(model, cx.facts.vdso.clone(), sym, cx.traced_seconds);
    let sampled_peak = cx
        .facts
        .samples
        .iter()
        .map(|s| s.threads)
        .max()
        .unwrap_or(0);
    let peak_threads = model.threads.peak.max(sampled_peak);
    let gomaxprocs = cx
        .facts
        .cpu
        .gomaxprocs
        .value()
        .map(u64::from)
        .or_else(|| ps_seen(model));
    let verdicts = verdicts::diagnose(&verdicts::Inputs {
        facts: cx.facts,
        traced_seconds: cx.traced_seconds,
        threads_spawned: model.threads.spawned,
        peak_threads,
        gomaxprocs,
        spawns: &spawns,
        blocking: &blocking,
        leaks: &leaks,
        vdso: &vdso,
        execs: model.runtime.execs_after_launch() as usize,
        executed: &model.runtime.programs_after_launch(),
        go_version: sym.map(|s| s.build.raw_version.as_str()),
    });
    Analysis {
        handoffs,
        spawns,
        blocking,
        leaks,
        vdso,
        peak_threads,
        gomaxprocs,
        verdicts,
    }
}

/// Ps seen in use (the highest P id a reported call held, plus one):
/// GOMAXPROCS is at least this. Not kept per call: from the model's sites.
pub fn ps_seen(model: &Model) -> Option<u64> {
    model.calls.max_p_id.map(|id| u64::from(id) + 1)
}
