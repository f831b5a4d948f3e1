//! Checks every JSON report the suite reads (`support::read_report`): it
//! must validate against the report's JSON Schema
//! (`tracer::report::SCHEMA_JSON`), and every total must be the sum of its
//! parts, as `report/json.rs` promises. A failure names the field.
//!
//! The tracer's unit tests include this file too (the schema tests), so the
//! checks themselves are tested without root.

use std::sync::OnceLock;

use serde_json::Value;

/// The compiled schema, once per test binary.
fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: Value =
            serde_json::from_str(tracer::report::SCHEMA_JSON).expect("schema.json is JSON");
        jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("schema.json is not a valid draft 2020-12 schema: {e}"))
    })
}

/// Where `report` does not match the schema (empty: it does).
pub fn schema_errors(report: &Value) -> Vec<String> {
    validator()
        .iter_errors(report)
        .map(|e| {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            format!("schema: at {at}: {e}")
        })
        .collect()
}

/// The integer at a dot-separated path (the schema has checked the types).
fn n(v: &Value, path: &str) -> u64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_u64()
        .unwrap_or_else(|| panic!("no integer at {path}: {at}"))
}

fn rows<'a>(v: &'a Value, path: &str) -> &'a [Value] {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_array()
        .unwrap_or_else(|| panic!("no array at {path}: {at}"))
}

/// The sum of `field` over the rows of the array at `path`.
fn sum(v: &Value, path: &str, field: &str) -> u64 {
    rows(v, path).iter().map(|r| n(r, field)).sum()
}

/// Records `what` unless `left == right`.
fn equal(errors: &mut Vec<String>, what: &str, left: u64, right: u64) {
    if left != right {
        errors.push(format!("{what}: {left} != {right}"));
    }
}

/// Which totals are not the sum of their parts, and which verdicts name a
/// call site they do not have (empty: none). Assumes a report that
/// validates against the schema.
pub fn invariant_errors(r: &Value) -> Vec<String> {
    let mut e = Vec::new();
    // Totals: every call is the program's or an idle wait.
    for f in ["calls", "errors", "total_ns"] {
        equal(
            &mut e,
            &format!("totals.all.{f} vs totals.program.{f} + totals.idle.{f}"),
            n(r, &format!("totals.all.{f}")),
            n(r, &format!("totals.program.{f}")) + n(r, &format!("totals.idle.{f}")),
        );
        equal(
            &mut e,
            &format!("totals.program.{f} vs the sum of syscalls[].{f}"),
            n(r, &format!("totals.program.{f}")),
            sum(r, "syscalls", f),
        );
    }
    for row in rows(r, "syscalls") {
        equal(
            &mut e,
            &format!(
                "syscalls[{}].errors vs the sum of its errors_by_errno[].calls",
                row["name"]
            ),
            n(row, "errors"),
            sum(row, "errors_by_errno", "calls"),
        );
    }
    for row in rows(r, "idle_waits") {
        equal(
            &mut e,
            &format!(
                "idle_waits[{}].errors vs the sum of its errors_by_errno[].calls",
                row["syscall"]
            ),
            n(row, "errors"),
            sum(row, "errors_by_errno", "calls"),
        );
    }
    for f in ["calls", "errors", "total_ns"] {
        equal(
            &mut e,
            &format!("totals.idle.{f} vs the sum of idle_waits[].{f}"),
            n(r, &format!("totals.idle.{f}")),
            sum(r, "idle_waits", f),
        );
    }
    // Records a full ring buffer lost, by kind: the thread figures below
    // may be short by those of the thread kinds (and say so).
    let lost_of = |kind: &str| -> u64 {
        r["events"]["ringbuf_full_by_kind"]
            .as_array()
            .map_or(0, |a| {
                a.iter()
                    .filter(|k| k["name"] == kind)
                    .filter_map(|k| k["count"].as_u64())
                    .sum()
            })
    };
    let thread_records_lost = lost_of("thread_spawn") + lost_of("thread_exit");
    // Threads: start + spawned - exited - ended = end.
    let (started, ended) = (
        n(r, "threads.at_start") + n(r, "threads.spawned"),
        n(r, "threads.at_end") + n(r, "threads.exited_itself") + n(r, "threads.ended_with_process"),
    );
    if thread_records_lost == 0 {
        equal(
            &mut e,
            "threads.at_start + threads.spawned vs threads.at_end + threads.exited_itself + \
             threads.ended_with_process",
            started,
            ended,
        );
    } else if started.abs_diff(ended) > thread_records_lost {
        e.push(format!(
            "threads: start + spawned ({started}) and end + exits ({ended}) differ by more than \
             the {thread_records_lost} thread records the ring buffer lost"
        ));
    }
    // Threads.
    let in_progress = n(r, "threads.in_progress_at_attach_total");
    equal(
        &mut e,
        "threads.in_progress_at_attach_total vs the sum of threads.in_progress_at_attach[].count",
        in_progress,
        sum(r, "threads.in_progress_at_attach", "count"),
    );
    // A thread whose spawn record was lost returns from clone unseen: its
    // first exit counts as in progress.
    if in_progress > n(r, "threads.at_start") + lost_of("thread_spawn") {
        e.push(format!(
            "threads.in_progress_at_attach_total ({in_progress}) > threads.at_start ({})",
            n(r, "threads.at_start")
        ));
    }
    // Go: P handoffs and slow exits, each breakdown summing to its total.
    if !r["go"].is_null() {
        let h = &r["go"]["handoffs"];
        if !h.is_null() {
            let total = n(h, "total");
            equal(
                &mut e,
                "go.handoffs.total vs the sum of go.handoffs.by_taker[].count",
                total,
                sum(h, "by_taker", "count"),
            );
            equal(
                &mut e,
                "go.handoffs.total vs the sum of go.handoffs.by_syscall[].count",
                total,
                sum(h, "by_syscall", "count"),
            );
            equal(
                &mut e,
                "go.handoffs.total vs go.handoffs.attributed_to_calls + the sum of \
                 go.handoffs.unattributed[].count",
                total,
                n(h, "attributed_to_calls") + sum(h, "unattributed", "count"),
            );
            equal(
                &mut e,
                "go.handoffs.attributed_to_calls vs the sum of blocking[].p_handoffs",
                n(h, "attributed_to_calls"),
                sum(r, "blocking", "p_handoffs"),
            );
        }
        let s = &r["go"]["slow_exits"];
        equal(
            &mut e,
            "go.slow_exits.total vs attributed + in_cgo_outside_syscall + outside_kernel + no_call",
            n(s, "total"),
            n(s, "attributed")
                + n(s, "in_cgo_outside_syscall")
                + n(s, "outside_kernel")
                + n(s, "no_call"),
        );
        equal(
            &mut e,
            "go.slow_exits.attributed vs the sum of blocking[].slow_exits",
            n(s, "attributed"),
            sum(r, "blocking", "slow_exits"),
        );
    }
    // Spawns and leaks.
    let causes = &r["threads_by_cause"];
    equal(
        &mut e,
        "threads_by_cause.total vs the sum of threads_by_cause.rows[].threads + not_kept",
        n(causes, "total"),
        sum(causes, "rows", "threads") + n(causes, "not_kept"),
    );
    equal(
        &mut e,
        "threads_by_cause.total vs threads.spawned",
        n(causes, "total"),
        n(r, "threads.spawned"),
    );
    let leaks = &r["lockosthread_leaks"];
    equal(
        &mut e,
        "lockosthread_leaks.total vs the sum of lockosthread_leaks.rows[].threads + sites_dropped",
        n(leaks, "total"),
        sum(leaks, "rows", "threads") + n(leaks, "sites_dropped"),
    );
    // Events: the losses, and the exits whose entry was not seen.
    let ev = &r["events"];
    equal(
        &mut e,
        "events.lost vs ringbuf_full + inflight_collisions + undecodable + unknown_syscalls + \
         vdso_map_full",
        n(ev, "lost"),
        [
            "ringbuf_full",
            "inflight_collisions",
            "undecodable",
            "unknown_syscalls",
            "vdso_map_full",
        ]
        .iter()
        .map(|f| n(ev, f))
        .sum(),
    );
    equal(
        &mut e,
        "events.ringbuf_full vs the sum of events.ringbuf_full_by_kind[].count",
        n(ev, "ringbuf_full"),
        sum(ev, "ringbuf_full_by_kind", "count"),
    );
    let explained = in_progress
        + [
            "clone_returns",
            "collided_entries",
            "unexplained_exits",
            "launcher_exits",
        ]
        .iter()
        .map(|f| n(ev, f))
        .sum::<u64>();
    if n(ev, "exits_without_entry") < explained {
        e.push(format!(
            "events.exits_without_entry ({}) < threads.in_progress_at_attach_total + \
             clone_returns + collided_entries + unexplained_exits + launcher_exits ({explained})",
            n(ev, "exits_without_entry")
        ));
    }
    equal(
        &mut e,
        "vdso.total_calls vs the sum of vdso.fallbacks[].calls",
        n(r, "vdso.total_calls"),
        sum(r, "vdso.fallbacks", "calls"),
    );
    let not_served: u64 = rows(r, "vdso.fallbacks")
        .iter()
        .filter(|f| f["kind"] == "clock_not_served")
        .map(|f| f["calls"].as_u64().unwrap_or(0))
        .sum();
    equal(
        &mut e,
        "vdso.fallback_calls vs vdso.total_calls - the clock_not_served rows",
        n(r, "vdso.fallback_calls"),
        n(r, "vdso.total_calls") - not_served,
    );
    // Processes (-f): each section's totals are the sum of its rows, the
    // target's section holds every call of the target, and the total is
    // the sum of the sections and the calls without one.
    if !r["processes"].is_null() {
        let p = &r["processes"];
        let sections = rows(p, "sections");
        for f in ["calls", "errors", "total_ns"] {
            for (i, s) in sections.iter().enumerate() {
                equal(
                    &mut e,
                    &format!("processes.sections[{i}].totals.{f} vs the sum of its syscalls"),
                    n(s, &format!("totals.{f}")),
                    sum(s, "syscalls", f),
                );
            }
            if let Some(target) = sections.first() {
                equal(
                    &mut e,
                    &format!("processes.sections[0].totals.{f} vs totals.all.{f}"),
                    n(target, &format!("totals.{f}")),
                    n(r, &format!("totals.all.{f}")),
                );
            }
            equal(
                &mut e,
                &format!(
                    "processes.total.{f} vs the sum of the sections and calls_without_section"
                ),
                n(p, &format!("total.{f}")),
                sections
                    .iter()
                    .map(|s| n(s, &format!("totals.{f}")))
                    .sum::<u64>()
                    + n(p, &format!("calls_without_section.{f}")),
            );
        }
        if sections.first().is_none_or(|s| s["began"] != "target") {
            e.push("processes.sections[0] is not the target's".into());
        }
    }
    // Verdicts never name an unknown call site "?".
    for (i, v) in rows(r, "verdicts").iter().enumerate() {
        let summary = v["summary"].as_str().unwrap_or_default();
        if summary.contains("at ?") || summary.contains("from ? ") {
            e.push(format!(
                "verdicts[{i}] ({}).summary names an unknown call site \"?\": {summary}",
                v["kind"]
            ));
        }
        if !v["call_site"].is_null() && rows(&v["call_site"], "frames").is_empty() {
            e.push(format!(
                "verdicts[{i}] ({}).call_site has no frame",
                v["kind"]
            ));
        }
    }
    e
}

/// Every schema and invariant failure of `report` (empty: it passes).
pub fn errors(report: &Value) -> Vec<String> {
    let errors = schema_errors(report);
    if !errors.is_empty() {
        // The sums assume the shape the schema checks.
        return errors;
    }
    invariant_errors(report)
}

/// Panics, naming each failing field, unless `report` validates against
/// the schema and all its totals add up.
pub fn check(report: &Value) {
    let errors = errors(report);
    assert!(
        errors.is_empty(),
        "the report of {} ({} mode) fails its checks:\n  {}",
        report["target"]["command"],
        report["target"]["mode"],
        errors.join("\n  ")
    );
}
