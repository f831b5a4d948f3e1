//! What one target's series say, taken from its [`Report`] (and, for the
//! latency buckets, from the same per-syscall HdrHistograms the report's
//! percentiles come from), and their encoding with `prometheus-client`:
//! OpenMetrics for Prometheus, the 0.0.4 text format for anything else.
//!
//! Labels are per target only (`pid`, `comm`, `go_version`, `cgroup`) plus
//! one small key per family (`syscall`, `errno`, `cause`, `taker`): never call sites,
//! goroutines or anything else a process can make unbounded.

use std::{collections::BTreeMap, fmt, sync::Arc};

use hdrhistogram::Histogram;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};

use super::flight::FlightStats;
use crate::{
    model::{Model, syscalls::Waiter},
    report::Report,
};

/// Upper bounds of the latency histograms, in nanoseconds: one per decade
/// from 1 µs to 10 s (syscalls shorter than 1 µs are in the first bucket,
/// longer than 10 s only in `+Inf`).
pub const BUCKET_BOUNDS_NS: [u64; 8] = [
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
];

/// The `go_version` label of a target that is not a Go program.
pub const NOT_GO: &str = "none";

/// The `cgroup` label of a target whose cgroup v2 path could not be read.
pub const NO_CGROUP: &str = "none";

/// Who a target is, as its series are labelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetLabels {
    pub pid: u32,
    pub comm: String,
    /// The Go release that built it (`go1.21.13`), or [`NOT_GO`].
    pub go_version: String,
    /// Its cgroup v2 path as /proc/PID/cgroup shows it
    /// (`/system.slice/x.service`, a container's cgroup), or
    /// [`NO_CGROUP`]: one value per service or container, so few.
    pub cgroup: String,
}

impl TargetLabels {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("pid", self.pid.to_string()),
            ("comm", self.comm.clone()),
            ("go_version", self.go_version.clone()),
            ("cgroup", self.cgroup.clone()),
        ]
    }
}

/// One syscall of the program (the report's syscall table).
#[derive(Clone, Debug, PartialEq)]
pub struct SyscallSeries {
    pub name: String,
    pub calls: u64,
    /// By errno name (`ENOENT`), as the report counts them.
    pub errors_by_errno: Vec<(String, u64)>,
    pub total_ns: u64,
    /// Calls at most each of [`BUCKET_BOUNDS_NS`] long (cumulative).
    pub cumulative: [u64; BUCKET_BOUNDS_NS.len()],
}

/// A target's figures at one moment: everything its series say.
#[derive(Clone, Debug, PartialEq)]
pub struct TargetSnapshot {
    pub labels: TargetLabels,
    /// Its probes are live (false once it exited: its last figures stay).
    pub up: bool,
    pub syscalls: Vec<SyscallSeries>,
    pub threads_alive: u64,
    pub threads_peak: u64,
    /// Thread spawns by the report's cause label (summed over call sites).
    pub spawns_by_cause: Vec<(String, u64)>,
    pub handoffs_by_taker: Vec<(String, u64)>,
    pub slow_exits: u64,
    pub vdso_fallbacks: u64,
    pub lockosthread_leaks: u64,
    pub lost_events: u64,
}

/// The cause label of spawns the model counted but did not keep.
pub const SPAWNS_NOT_KEPT: &str = "not kept (cause unknown)";

impl TargetSnapshot {
    /// From the report of the model as last read (`model`: the same model,
    /// for the latency histograms the report's percentiles come from).
    pub fn new(labels: TargetLabels, up: bool, report: &Report, model: &Model) -> Self {
        let histograms = model.syscalls.by_syscall(Waiter::Program);
        let syscalls = report
            .syscalls
            .iter()
            .map(|row| SyscallSeries {
                name: row.name.clone(),
                calls: row.calls,
                errors_by_errno: row
                    .errors_by_errno
                    .iter()
                    .map(|e| (e.errno.clone(), e.calls))
                    .collect(),
                total_ns: row.total_ns,
                cumulative: histograms
                    .get(&row.number)
                    .map_or([0; BUCKET_BOUNDS_NS.len()], |s| {
                        cumulative_buckets(&s.histogram, row.calls)
                    }),
            })
            .collect();
        let mut spawns_by_cause: Vec<(String, u64)> = Vec::new();
        for row in &report.threads_by_cause.rows {
            add(&mut spawns_by_cause, &row.label, row.threads);
        }
        if report.threads_by_cause.not_kept > 0 {
            add(
                &mut spawns_by_cause,
                SPAWNS_NOT_KEPT,
                report.threads_by_cause.not_kept,
            );
        }
        let go = report.go.as_ref();
        let handoffs_by_taker = go
            .and_then(|g| g.handoffs.as_ref())
            .map(|h| {
                let mut v = Vec::new();
                for c in &h.by_taker {
                    add(&mut v, &c.key.label(), c.count);
                }
                v
            })
            .unwrap_or_default();
        Self {
            labels,
            up,
            syscalls,
            threads_alive: report.threads.at_end,
            threads_peak: report.threads.peak,
            spawns_by_cause,
            handoffs_by_taker,
            slow_exits: go.map_or(0, |g| g.slow_exits.total),
            vdso_fallbacks: report.vdso.fallback_calls,
            lockosthread_leaks: report.lockosthread_leaks.total,
            lost_events: report.events.lost,
        }
    }
}

/// Adds `n` under `key`, keeping the first-seen order.
fn add(v: &mut Vec<(String, u64)>, key: &str, n: u64) {
    match v.iter_mut().find(|(k, _)| k == key) {
        Some((_, c)) => *c = c.saturating_add(n),
        None => v.push((key.to_owned(), n)),
    }
}

/// Calls at most each bound long, counted from the HdrHistogram: a
/// recorded value counts up to a bound when its bin starts at or below it
/// (a call of exactly 1 µs is `le="1e-6"`; a bin is 1/128 of its value
/// wide, finer than the kernel's buckets). Clamped to `calls`, the exact
/// count, which `+Inf` is.
pub fn cumulative_buckets(h: &Histogram<u64>, calls: u64) -> [u64; BUCKET_BOUNDS_NS.len()] {
    let mut out = [0u64; BUCKET_BOUNDS_NS.len()];
    for v in h.iter_recorded() {
        let value = h.lowest_equivalent(v.value_iterated_to());
        let first = BUCKET_BOUNDS_NS.partition_point(|&b| b < value);
        for c in &mut out[first..] {
            *c = c.saturating_add(v.count_at_value());
        }
    }
    out.map(|c| c.min(calls))
}

/// The agent's own figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct AgentStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    /// Targets with live probes.
    pub targets: u64,
}

impl AgentStats {
    /// This process's CPU time (user + system) and resident memory now.
    pub fn read(targets: u64) -> Self {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        let cpu_seconds = if ok {
            secs(usage.ru_utime) + secs(usage.ru_stime)
        } else {
            0.0
        };
        // statm's second field: resident pages.
        let pages = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        Self {
            cpu_seconds,
            resident_bytes: pages.saturating_mul(page),
            targets,
        }
    }
}

/// Which text format a scraper gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (what Prometheus asks for first).
    OpenMetrics,
    /// The Prometheus text format 0.0.4 (curl, promtool).
    Text004,
}

impl Format {
    /// From a request's `Accept` header: OpenMetrics when it is offered.
    pub fn negotiate(accept: Option<&str>) -> Self {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Self::OpenMetrics,
            _ => Self::Text004,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text004 => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// Everything one scrape shows.
#[derive(Debug)]
struct Exposition {
    targets: Vec<Arc<TargetSnapshot>>,
    agent: AgentStats,
    flight: Option<FlightStats>,
}

/// Encodes the targets' last snapshots and the agent's figures.
pub fn encode(
    targets: Vec<Arc<TargetSnapshot>>,
    agent: AgentStats,
    flight: Option<FlightStats>,
    format: Format,
) -> String {
    let mut registry = Registry::with_prefix("gotracer");
    registry.register_collector(Box::new(Exposition {
        targets,
        agent,
        flight,
    }));
    let mut out = String::new();
    // Writing to a String cannot fail; the collector's own errors are the
    // encoder's.
    let encoded = match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry),
        Format::Text004 => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
        }
    };
    if let Err(e) = encoded {
        log::warn!("cannot encode the metrics: {e}");
    }
    out
}

/// The families being encoded, over the targets shown.
struct Families<'e, 'a, 't> {
    encoder: &'e mut DescriptorEncoder<'a>,
    targets: &'t [Arc<TargetSnapshot>],
}

impl Families<'_, '_, '_> {
    /// Encodes one family: `each` gives, per target, extra labels and a
    /// value.
    fn family<V: Copy>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<&Unit>,
        kind: MetricType,
        each: impl Fn(&TargetSnapshot) -> Vec<(Vec<(&'static str, String)>, V)>,
        put: impl Fn(prometheus_client::encoding::MetricEncoder<'_>, V) -> fmt::Result,
    ) -> fmt::Result {
        let mut metric = self.encoder.encode_descriptor(name, help, unit, kind)?;
        for t in self.targets {
            for (extra, value) in each(t) {
                let mut labels = t.labels.pairs();
                labels.extend(extra);
                put(metric.encode_family(&labels)?, value)?;
            }
        }
        Ok(())
    }
}

fn counter(m: prometheus_client::encoding::MetricEncoder<'_>, v: u64) -> fmt::Result {
    ConstCounter::new(v).encode(m)
}

fn counter_f(m: prometheus_client::encoding::MetricEncoder<'_>, v: f64) -> fmt::Result {
    ConstCounter::new(v).encode(m)
}

fn gauge(m: prometheus_client::encoding::MetricEncoder<'_>, v: i64) -> fmt::Result {
    ConstGauge::new(v).encode(m)
}

fn one<V>(v: V) -> Vec<(Vec<(&'static str, String)>, V)> {
    vec![(Vec::new(), v)]
}

fn by(key: &'static str, rows: &[(String, u64)]) -> Vec<(Vec<(&'static str, String)>, u64)> {
    rows.iter()
        .map(|(k, n)| (vec![(key, k.clone())], *n))
        .collect()
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let t = &self.targets;
        let mut f = Families {
            encoder: &mut encoder,
            targets: t,
        };
        f.family(
            "target_up",
            "1 while the target's probes are live; 0 for 5 minutes after it exited (its last figures stay).",
            None,
            MetricType::Gauge,
            |s| one(i64::from(s.up)),
            gauge,
        )?;
        f.family(
            "syscalls",
            "Syscalls the program made (its goroutines' calls; the Go runtime's idle waits are not counted), exact.",
            None,
            MetricType::Counter,
            |s| {
                s.syscalls
                    .iter()
                    .map(|c| (vec![("syscall", c.name.clone())], c.calls))
                    .collect()
            },
            counter,
        )?;
        f.family(
            "syscall_errors",
            "Failed syscalls of the program, by errno.",
            None,
            MetricType::Counter,
            |s| {
                s.syscalls
                    .iter()
                    .flat_map(|c| {
                        c.errors_by_errno.iter().map(|(errno, n)| {
                            (
                                vec![("syscall", c.name.clone()), ("errno", errno.clone())],
                                *n,
                            )
                        })
                    })
                    .collect()
            },
            counter,
        )?;
        let mut metric = f.encoder.encode_descriptor(
            "syscall_duration",
            "Time in the program's syscalls, entry to exit (buckets from the tracer's per-syscall HdrHistogram, within 1%).",
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?;
        for s in t {
            for c in &s.syscalls {
                let mut labels = s.labels.pairs();
                labels.push(("syscall", c.name.clone()));
                let mut buckets = Vec::with_capacity(BUCKET_BOUNDS_NS.len() + 1);
                let mut below = 0;
                for (bound, cum) in BUCKET_BOUNDS_NS.iter().zip(c.cumulative) {
                    buckets.push((*bound as f64 / 1e9, cum.saturating_sub(below)));
                    below = cum;
                }
                buckets.push((f64::INFINITY, c.calls.saturating_sub(below)));
                metric
                    .encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(
                        c.total_ns as f64 / 1e9,
                        c.calls,
                        &buckets,
                        None,
                    )?;
            }
        }
        f.family(
            "threads",
            "Threads of the target alive now (at its exit: 0).",
            None,
            MetricType::Gauge,
            |s| one(int(s.threads_alive)),
            gauge,
        )?;
        f.family(
            "threads_peak",
            "Most threads the target had at once while traced.",
            None,
            MetricType::Gauge,
            |s| one(int(s.threads_peak)),
            gauge,
        )?;
        f.family(
            "thread_spawns",
            "Threads spawned while traced, by cause (the report's labels, without call sites).",
            None,
            MetricType::Counter,
            |s| by("cause", &s.spawns_by_cause),
            counter,
        )?;
        f.family(
            "p_handoffs",
            "Ps taken from threads in syscalls (Go targets), by who took them.",
            None,
            MetricType::Counter,
            |s| by("taker", &s.handoffs_by_taker),
            counter,
        )?;
        f.family(
            "slow_syscall_exits",
            "Syscall exits that found no P free (Go targets): the goroutine queued and its thread parked.",
            None,
            MetricType::Counter,
            |s| one(s.slow_exits),
            counter,
        )?;
        f.family(
            "vdso_fallbacks",
            "Clock reads the vDSO would serve that were made as real syscalls.",
            None,
            MetricType::Counter,
            |s| one(s.vdso_fallbacks),
            counter,
        )?;
        f.family(
            "lockosthread_leaks",
            "Goroutines that exited while locked to their thread (one thread lost each).",
            None,
            MetricType::Counter,
            |s| one(s.lockosthread_leaks),
            counter,
        )?;
        f.family(
            "lost_events",
            "Events the tracer could not account for (ring buffer full, collisions, undecodable records).",
            None,
            MetricType::Counter,
            |s| one(s.lost_events),
            counter,
        )?;
        let cpu = f.encoder.encode_descriptor(
            "agent_cpu",
            "CPU time of the tracer agent (user and system).",
            Some(&Unit::Seconds),
            MetricType::Counter,
        )?;
        counter_f(cpu, self.agent.cpu_seconds)?;
        let rss = f.encoder.encode_descriptor(
            "agent_resident_memory",
            "Resident memory of the tracer agent.",
            Some(&Unit::Bytes),
            MetricType::Gauge,
        )?;
        gauge(rss, int(self.agent.resident_bytes))?;
        let targets = f.encoder.encode_descriptor(
            "agent_targets",
            "Targets whose probes are live.",
            None,
            MetricType::Gauge,
        )?;
        gauge(targets, int(self.agent.targets))?;
        if let Some(flight) = &self.flight {
            encode_flight(&mut encoder, flight)?;
        }
        Ok(())
    }
}

/// The flight recorder's families (only when it is on).
fn encode_flight(encoder: &mut DescriptorEncoder<'_>, f: &FlightStats) -> fmt::Result {
    let mut by_trigger = |name: &str, help: &str, rows: &BTreeMap<String, u64>| {
        let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (trigger, n) in rows {
            counter(metric.encode_family(&[("trigger", trigger.as_str())])?, *n)?;
        }
        fmt::Result::Ok(())
    };
    by_trigger(
        "flight_dumps",
        "Flight recorder dumps written, by the trigger that started them.",
        &f.dumps,
    )?;
    by_trigger(
        "flight_suppressed",
        "Triggers that fired with no dump written (the target's cooldown or the hourly cap).",
        &f.suppressed,
    )?;
    let failed = encoder.encode_descriptor(
        "flight_dump_failures",
        "Flight recorder dumps that could not be written (said on stderr).",
        None,
        MetricType::Counter,
    )?;
    counter(failed, f.failed)?;
    let dropped = encoder.encode_descriptor(
        "flight_dropped_chunks",
        "Seconds of events dropped from a flight recorder window to keep it within --flight-max-memory.",
        None,
        MetricType::Counter,
    )?;
    counter(dropped, f.dropped_chunks)?;
    let dropped = encoder.encode_descriptor(
        "flight_dropped_events",
        "Events dropped from a flight recorder window to keep it within --flight-max-memory.",
        None,
        MetricType::Counter,
    )?;
    counter(dropped, f.dropped_inputs)?;
    let ring = encoder.encode_descriptor(
        "flight_window_memory",
        "Memory the flight recorder's windows hold (all targets; estimated from what they hold).",
        Some(&Unit::Bytes),
        MetricType::Gauge,
    )?;
    gauge(ring, int(f.ring_bytes.values().sum()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::syscalls::new_histogram;

    /// The histogram's own count of the bins that start at or below
    /// `bound`.
    fn count_up_to(h: &Histogram<u64>, bound: u64) -> u64 {
        h.iter_recorded()
            .filter(|v| h.lowest_equivalent(v.value_iterated_to()) <= bound)
            .map(|v| v.count_at_value())
            .sum()
    }

    #[test]
    fn buckets_are_the_histograms_counts_up_to_each_bound() {
        let mut h = new_histogram();
        // (value ns, calls): under the first bound, on bounds, between,
        // past the last.
        let values = [
            (1, 3),
            (999, 2),
            (1_000, 4),
            (5_000, 7),
            (100_000, 1),
            (2_500_000, 11),
            (999_000_000, 2),
            (30_000_000_000, 5),
        ];
        let mut calls = 0;
        for (v, n) in values {
            h.record_n(v, n).unwrap();
            calls += n;
        }
        let c = cumulative_buckets(&h, calls);
        assert_eq!(c, [9, 16, 17, 17, 28, 28, 30, 30]);
        for (bound, got) in BUCKET_BOUNDS_NS.iter().zip(c) {
            assert_eq!(got, count_up_to(&h, *bound), "le {bound}");
        }
        // Never more than the exact calls (+Inf is the calls).
        assert_eq!(cumulative_buckets(&h, 10), [9, 10, 10, 10, 10, 10, 10, 10]);
        assert_eq!(cumulative_buckets(&new_histogram(), 0), [0; 8]);
    }

    fn target(pid: u32, go: &str, up: bool) -> Arc<TargetSnapshot> {
        let mut h = new_histogram();
        h.record_n(2_000, 3).unwrap();
        h.record_n(20_000_000, 1).unwrap();
        Arc::new(TargetSnapshot {
            labels: TargetLabels {
                pid,
                comm: "srv\"x".into(),
                go_version: go.into(),
                cgroup: "/system.slice/srv.service".into(),
            },
            up,
            syscalls: vec![SyscallSeries {
                name: "pread64".into(),
                calls: 4,
                errors_by_errno: vec![("EAGAIN".into(), 2)],
                total_ns: 20_006_000,
                cumulative: cumulative_buckets(&h, 4),
            }],
            threads_alive: 5,
            threads_peak: 9,
            spawns_by_cause: vec![("syscall handoff (sysmon retake)".into(), 3)],
            handoffs_by_taker: vec![("sysmon retake".into(), 6)],
            slow_exits: 2,
            vdso_fallbacks: 0,
            lockosthread_leaks: 1,
            lost_events: 0,
        })
    }

    fn agent() -> AgentStats {
        AgentStats {
            cpu_seconds: 1.5,
            resident_bytes: 4096,
            targets: 1,
        }
    }

    #[test]
    fn text_exposition_has_the_figures_and_only_target_labels() {
        let out = encode(
            vec![target(42, "go1.23.9", true), target(43, NOT_GO, false)],
            agent(),
            None,
            Format::Text004,
        );
        // The flight recorder off, none of its series.
        assert!(!out.contains("gotracer_flight"), "{out}");
        let want = [
            "# TYPE gotracer_syscalls_total counter".to_owned(),
            r#"gotracer_syscalls_total{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64"} 4"#.to_owned(),
            r#"gotracer_syscall_errors_total{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64",errno="EAGAIN"} 2"#.to_owned(),
            "# TYPE gotracer_syscall_duration_seconds histogram".to_owned(),
            r#"gotracer_syscall_duration_seconds_bucket{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64",le="1e-06"} 0"#.to_owned(),
            r#"gotracer_syscall_duration_seconds_bucket{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64",le="1e-05"} 3"#.to_owned(),
            r#"gotracer_syscall_duration_seconds_bucket{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64",le="0.01"} 3"#.to_owned(),
            r#"gotracer_syscall_duration_seconds_bucket{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64",le="0.1"} 4"#.to_owned(),
            r#"gotracer_syscall_duration_seconds_bucket{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64",le="+Inf"} 4"#.to_owned(),
            r#"gotracer_syscall_duration_seconds_count{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64"} 4"#.to_owned(),
            r#"gotracer_syscall_duration_seconds_sum{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",syscall="pread64"} 0.020006"#.to_owned(),
            r#"gotracer_threads{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service"} 5"#.to_owned(),
            r#"gotracer_threads_peak{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service"} 9"#.to_owned(),
            r#"gotracer_thread_spawns_total{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",cause="syscall handoff (sysmon retake)"} 3"#.to_owned(),
            r#"gotracer_p_handoffs_total{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service",taker="sysmon retake"} 6"#.to_owned(),
            r#"gotracer_slow_syscall_exits_total{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service"} 2"#.to_owned(),
            r#"gotracer_lockosthread_leaks_total{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service"} 1"#.to_owned(),
            r#"gotracer_target_up{pid="42",comm="srv\"x",go_version="go1.23.9",cgroup="/system.slice/srv.service"} 1"#.to_owned(),
            r#"gotracer_target_up{pid="43",comm="srv\"x",go_version="none",cgroup="/system.slice/srv.service"} 0"#.to_owned(),
            "# TYPE gotracer_agent_cpu_seconds_total counter".to_owned(),
            "gotracer_agent_cpu_seconds_total 1.5".to_owned(),
            "gotracer_agent_resident_memory_bytes 4096".to_owned(),
            "gotracer_agent_targets 1".to_owned(),
        ];
        let lines: Vec<&str> = out.lines().collect();
        for w in &want {
            assert!(lines.contains(&w.as_str()), "no line {w} in:\n{out}");
        }
        // Every sample's labels are the target's and one key per family.
        let allowed = [
            "pid",
            "comm",
            "go_version",
            "cgroup",
            "syscall",
            "errno",
            "cause",
            "taker",
            "le",
        ];
        for line in lines.iter().filter(|l| !l.starts_with('#')) {
            let Some((_, rest)) = line.split_once('{') else {
                continue;
            };
            let labels = rest.rsplit_once('}').unwrap().0;
            for pair in labels.split("\",") {
                let key = pair.split_once('=').unwrap().0;
                assert!(allowed.contains(&key), "label {key} in {line}");
            }
        }
        // The 0.0.4 format has no OpenMetrics markers.
        assert!(!out.contains("# EOF") && !out.contains("# UNIT"));
    }

    #[test]
    fn openmetrics_exposition_ends_with_eof() {
        let flight = FlightStats {
            dumps: BTreeMap::from([("threads".to_owned(), 2)]),
            suppressed: BTreeMap::from([("p99-read".to_owned(), 5)]),
            failed: 1,
            dropped_chunks: 3,
            dropped_inputs: 700,
            ring_bytes: BTreeMap::from([(1, 1000), (2, 24)]),
        };
        let out = encode(
            vec![target(7, NOT_GO, true)],
            agent(),
            Some(flight),
            Format::OpenMetrics,
        );
        assert!(out.ends_with("# EOF\n"), "{out}");
        for line in [
            r#"gotracer_flight_dumps_total{trigger="threads"} 2"#,
            r#"gotracer_flight_suppressed_total{trigger="p99-read"} 5"#,
            "gotracer_flight_dump_failures_total 1",
            "gotracer_flight_dropped_chunks_total 3",
            "gotracer_flight_dropped_events_total 700",
            "gotracer_flight_window_memory_bytes 1024",
        ] {
            assert!(out.lines().any(|l| l == line), "no line {line} in:\n{out}");
        }
        assert!(out.contains("# TYPE gotracer_syscalls counter\n"));
        assert!(out.contains("# UNIT gotracer_syscall_duration_seconds seconds\n"));
        assert!(out.contains(
            r#"gotracer_syscalls_total{pid="7",comm="srv\"x",go_version="none",cgroup="/system.slice/srv.service",syscall="pread64"} 4"#
        ));
    }

    #[test]
    fn snapshot_takes_the_reports_figures() {
        let report = crate::report::tests::sample();
        // The model the sample report came from is rebuilt the same way.
        let mut model = Model::new(1);
        for (i, d) in [1_000u64, 2_000, 3_000, 50_000].iter().enumerate() {
            model.apply(&crate::model::Event::Syscall {
                tid: 1,
                ts_ns: i as u64,
                sysno: 17,
                ret: 64,
                duration_ns: *d,
                idle: false,
            });
        }
        let labels = TargetLabels {
            pid: 42,
            comm: "demo".into(),
            go_version: NOT_GO.into(),
            cgroup: NO_CGROUP.into(),
        };
        let s = TargetSnapshot::new(labels, true, &report, &model);
        let pread = s.syscalls.iter().find(|c| c.name == "pread64").unwrap();
        assert_eq!((pread.calls, pread.total_ns), (4, 56_000));
        // 1 µs (on the bound), 2 and 3 µs, 50 µs.
        assert_eq!(pread.cumulative, [1, 3, 4, 4, 4, 4, 4, 4]);
        let openat = s.syscalls.iter().find(|c| c.name == "openat").unwrap();
        assert_eq!(openat.errors_by_errno, vec![("ENOENT".to_owned(), 1)]);
        // Only the program's calls: the idle futex waits are not here.
        assert!(s.syscalls.iter().all(|c| c.name != "futex"));
        assert_eq!(s.threads_peak, report.threads.peak);
        assert_eq!(s.threads_alive, report.threads.at_end);
        let spawned: u64 = s.spawns_by_cause.iter().map(|(_, n)| n).sum();
        assert_eq!(spawned, report.threads_by_cause.total);
    }
}
