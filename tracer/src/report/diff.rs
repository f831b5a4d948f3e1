//! The sinks of a comparison ([`Diff`]): text for a person, JSON (schema
//! `gotracer.diff/1`, the serialized [`Diff`]) for scripts.

use std::{io, path::Path};

use crate::{
    analysis::diff::{Basis, Diff, QuantileChange, RateChange, VerdictRef},
    units::human_ns,
};

/// Syscall rows the text shows (the JSON has them all).
const TEXT_ROWS: usize = 25;

pub fn json(d: &Diff, out: &mut dyn io::Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, d)?;
    writeln!(out)
}

pub fn text(d: &Diff, before: &Path, after: &Path, out: &mut dyn io::Write) -> io::Result<()> {
    for (label, path, s) in [("before", before, &d.before), ("after", after, &d.after)] {
        write!(
            out,
            "{label:<7} {}: {} (pid {}), {:.1} s traced",
            path.display(),
            s.command,
            s.pid,
            s.traced_seconds
        )?;
        if let Some(v) = &s.go_version {
            write!(out, ", {v}")?;
        }
        if s.lost > 0 {
            write!(out, ", {} calls or events lost (see its report)", s.lost)?;
        }
        writeln!(out)?;
    }
    let basis = match d.basis {
        Basis::PerRun => "counts per run (both traced whole runs)",
        Basis::PerSecond => "rates per second of traced time",
    };
    writeln!(
        out,
        "* marks a change beyond the noise of what was counted ({} σ of the {basis}; a \
         percentile's band of ranks and histogram buckets)\n",
        d.z
    )?;
    writeln!(
        out,
        "{:<18} {:>24} {:>24} {:>24} {:>24} {:>20}",
        "syscall", "calls/s", "p50", "p99", "p99.9", "errors/s"
    )?;
    for s in d.syscalls.iter().take(TEXT_ROWS) {
        writeln!(
            out,
            "{:<18} {:>24} {:>24} {:>24} {:>24} {:>20}",
            s.name,
            per_s(&s.calls),
            quantile(&s.p50),
            quantile(&s.p99),
            quantile(&s.p999),
            per_s(&s.errors),
        )?;
    }
    if d.syscalls.len() > TEXT_ROWS {
        let hidden = &d.syscalls[TEXT_ROWS..];
        writeln!(
            out,
            "... {} more syscalls ({} of them changed; --json lists all)",
            hidden.len(),
            hidden.iter().filter(|s| s.changed).count()
        )?;
    }
    let t = &d.threads;
    writeln!(
        out,
        "\nthreads spawned {} ({}), peak {} → {}",
        count(&t.spawned),
        per_s(&t.spawned),
        t.peak.before,
        t.peak.after
    )?;
    for c in &t.spawned_by_cause {
        writeln!(out, "  {:<50} {}", c.cause, count(&c.threads))?;
    }
    if let Some(h) = &d.handoffs {
        writeln!(out, "P handoffs {} ({})", count(h), per_s(h))?;
    }
    if let Some(s) = &d.slow_exits {
        writeln!(
            out,
            "slow syscall exits (no free P) {} ({})",
            count(s),
            per_s(s)
        )?;
    }
    verdicts(out, "verdicts gone", '-', &d.verdicts_gone)?;
    verdicts(out, "verdicts appeared", '+', &d.verdicts_appeared)?;
    verdicts(out, "verdicts on both sides", '=', &d.verdicts_kept)
}

fn verdicts(
    out: &mut dyn io::Write,
    title: &str,
    mark: char,
    list: &[VerdictRef],
) -> io::Result<()> {
    if list.is_empty() {
        return writeln!(out, "\n{title}: none");
    }
    writeln!(out, "\n{title}:")?;
    for v in list {
        let kind = serde_json::to_value(&v.kind)
            .ok()
            .and_then(|k| k["kind"].as_str().map(str::to_owned))
            .unwrap_or_default();
        writeln!(out, "  {mark} [{kind}] {}", v.summary)?;
    }
    Ok(())
}

fn star(beyond: bool) -> &'static str {
    if beyond { " *" } else { "" }
}

fn count(r: &RateChange) -> String {
    format!("{} → {}{}", r.before, r.after, star(r.beyond_noise))
}

fn per_s(r: &RateChange) -> String {
    let f = |v: f64| {
        if v >= 100.0 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    format!(
        "{} → {}{}",
        f(r.before_per_s),
        f(r.after_per_s),
        star(r.beyond_noise)
    )
}

fn quantile(q: &QuantileChange) -> String {
    let f = |b: Option<crate::analysis::diff::Band>| {
        b.map_or_else(|| "-".to_owned(), |b| human_ns(b.ns))
    };
    format!("{} → {}{}", f(q.before), f(q.after), star(q.beyond_noise))
}
