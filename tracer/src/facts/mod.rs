//! Facts about the traced process read from outside the probes (/proc,
//! cgroups, the process's memory), gathered while it runs and kept with
//! the model so the report can explain what the probes saw.
//!
//! A fact that could not be read is [`Fact::Unknown`] with the reason,
//! never a value: a failed read does not become 0. The Go runtime's
//! variables are read only once the runtime has started (`main.main` has
//! begun, or the process was already running when the tracer attached):
//! before that they hold their zero values, which mean nothing.

pub mod threads;

use serde::{Deserialize, Serialize};

use crate::{
    gobin::symbolize::Symbolizer,
    procinfo::{cgroup, cpus, gomaxprocs, limits, mem, sockets, vdso},
};
pub use threads::{Holder, HolderRow, ThreadSample};

/// How often the sockets (a readlink per descriptor, and the network
/// namespace's TCP tables) are re-read at most.
const SOCKETS_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// ...and at least this far apart in proportion to what a reading cost: 3%
/// of a core for the count, 1% for the TCP tables. The TCP tables list every socket of the namespace, and each
/// page of them the kernel serves walks its whole hash table: on a busy
/// server (wrk on loopback) reading them twice a second took 1.5% of a core,
/// half the tracer's CPU; they are read for a new peak only.
const SOCKETS_CPU_BUDGET: f64 = 0.03;
const TABLES_CPU_BUDGET: f64 = 0.01;

/// Ticks that read every fact (a short-lived process's only chance), and
/// how often the slow-changing facts are read after them.
const FULL_TICKS: u32 = 8;
const SLOW_FACTS_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The Go runtime's own thread cap (`debug.SetMaxThreads` default).
pub const GO_DEFAULT_MAX_THREADS: u64 = 10_000;

/// A value read from the process, or why it is not known.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Fact<T> {
    Known {
        value: T,
        /// Where it comes from ("read from runtime.gomaxprocs", "the
        /// runtime's default rule", ...).
        source: String,
    },
    Unknown {
        why: String,
    },
}

impl<T> Default for Fact<T> {
    fn default() -> Self {
        Self::Unknown {
            why: "not read yet".into(),
        }
    }
}

impl<T: Copy> Fact<T> {
    pub fn value(&self) -> Option<T> {
        match self {
            Self::Known { value, .. } => Some(*value),
            Self::Unknown { .. } => None,
        }
    }
}

impl<T> Fact<T> {
    pub fn known(value: T, source: impl Into<String>) -> Self {
        Self::Known {
            value,
            source: source.into(),
        }
    }

    pub fn unknown(why: impl Into<String>) -> Self {
        Self::Unknown { why: why.into() }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Fact<U> {
        match self {
            Self::Known { value, source } => Fact::Known {
                value: f(value),
                source,
            },
            Self::Unknown { why } => Fact::Unknown { why },
        }
    }

    pub fn is_known(&self) -> bool {
        matches!(self, Self::Known { .. })
    }

    /// Keeps a known value over a later failure (a process that exited
    /// keeps its last reading).
    fn update(&mut self, new: Self) {
        if new.is_known() || !self.is_known() {
            *self = new;
        }
    }
}

/// Everything read about the process besides the event stream.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Facts {
    pub vdso: VdsoFacts,
    pub limits: LimitFacts,
    pub cpu: CpuFacts,
    pub sockets: Option<SocketFacts>,
    /// Thread counts (and, in `threads`/`top`, what holds them) over time.
    pub samples: Vec<ThreadSample>,
}

/// What the process and the machine say about the vDSO, read while the
/// target ran.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VdsoFacts {
    /// The `[vdso]` mapping `(start, end)`; `None` when not mapped.
    pub mapping: Option<(u64, u64)>,
    /// `AT_SYSINFO_EHDR` from the process's auxiliary vector (0: absent).
    pub auxv_sysinfo_ehdr: Option<u64>,
    /// The machine's current clocksource, and whether the vDSO can read it
    /// from user space (otherwise every clock read is a syscall).
    pub clocksource: Option<String>,
    pub clocksource_vdso_capable: Option<bool>,
    /// `runtime.vdsoClockgettimeSym` read from the Go process once its
    /// runtime started: 0 means the runtime found no vDSO and makes every
    /// clock read a syscall.
    pub runtime_clock_gettime_sym: Fact<u64>,
}

/// The limits a growing thread count runs into.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LimitFacts {
    /// The Go runtime's thread cap: 10 000 unless the program called
    /// `debug.SetMaxThreads` (read from `runtime.sched.maxmcount` when the
    /// binary has symbols).
    pub go_max_threads: Option<Fact<u64>>,
    /// The cgroup's effective `pids.max` (threads count as pids) and its
    /// current count.
    pub pids_max: Option<u64>,
    pub pids_current: Option<u64>,
    pub pids_cgroup: Option<String>,
    /// RLIMIT_NPROC (counts every thread of the user), and whether the
    /// process is exempt (root).
    pub nproc_soft: Option<u64>,
    pub nproc_exempt: bool,
}

/// CPUs, the cgroup's CPU quota, and GOMAXPROCS.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct CpuFacts {
    pub affinity_cpus: Option<u32>,
    /// The cgroup CPU quota in CPUs (quota / period), when limited.
    pub quota_cpus: Option<f64>,
    pub quota_cgroup: Option<String>,
    /// CFS throttling while traced: periods, throttled periods, time.
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
    /// GOMAXPROCS: read from the process, or (a binary without symbols)
    /// the runtime's default rule for this version, said so.
    pub gomaxprocs: Fact<u32>,
    /// What the runtime's default would be here, and the rule (per Go
    /// version: 1.25+ follow the cgroup quota).
    pub default_gomaxprocs: Option<u32>,
    pub default_rule: Option<String>,
    /// The default came from the cgroup quota (Go 1.25+, quota below the
    /// CPU count): `max(2, ceil(quota))`.
    pub default_follows_quota: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SocketFacts {
    pub sockets: u64,
    pub tcp_established: u64,
    pub tcp_listen: u64,
}

/// Where the runtime variables are in the process (`None`: the binary has
/// no symbol for it).
#[derive(Clone, Copy, Debug, Default)]
struct RuntimeVars {
    vdso_clock_gettime_sym: Option<u64>,
    gomaxprocs: Option<u64>,
    maxmcount: Option<u64>,
}

/// The runtime's variables as read once (`None`: the binary has no symbol
/// for it; `Err`: why it could not be read).
#[derive(Clone, Debug, Default)]
struct RuntimeReading {
    vdso_clock_gettime_sym: Option<Result<u64, String>>,
    gomaxprocs: Option<Result<u32, String>>,
    maxmcount: Option<Result<u32, String>>,
}

/// When the runtime's variables were read.
#[derive(Clone, Copy, Debug)]
enum ReadAt {
    /// By the kernel, as `main.main` began.
    MainStart,
    /// From the process's memory, on a facts tick.
    Tick,
}

impl ReadAt {
    /// Said after the variable's name in a fact's source.
    fn said(self) -> &'static str {
        match self {
            Self::MainStart => " as main.main began",
            Self::Tick => "",
        }
    }
}

/// A runtime variable that is never 0 once the runtime has started: 0
/// means it was read too early, and is no value.
fn nonzero(read: &Result<u32, String>, name: &str, when: &str) -> Fact<u32> {
    match read {
        Ok(n) if *n > 0 => Fact::known(*n, format!("read from {name}{when}")),
        Ok(_) => Fact::unknown(format!("{name} read 0{when} (not initialised)")),
        Err(e) => Fact::unknown(format!("reading {name}{when}: {e}")),
    }
}

/// Re-reads the facts while the process runs (each tick), keeping the last
/// values read, so a process that exits before the report still has them.
pub struct FactsCollector {
    pid: u32,
    vars: RuntimeVars,
    go_version: Option<(u32, u32)>,
    godebug: String,
    /// The Go runtime has started: its variables mean something.
    runtime_ready: bool,
    /// CFS counters at the first reading: the report shows the difference.
    throttle_base: Option<cgroup::Throttling>,
    /// When the sockets, and the TCP tables, may be read next.
    sockets_due: Option<std::time::Instant>,
    tables_due: Option<std::time::Instant>,
    /// [`FactsCollector::tick`]s so far, and when its slow-changing facts
    /// are read next.
    ticks: u32,
    slow_due: Option<std::time::Instant>,
    pub facts: Facts,
}

impl FactsCollector {
    /// `runtime_ready`: the process's runtime has already started (attach
    /// mode); a launched process is ready once `main.main` begins.
    pub fn new(pid: u32, sym: Option<&Symbolizer>, runtime_ready: bool) -> Self {
        let vars = sym.map_or_else(RuntimeVars::default, |s| RuntimeVars {
            vdso_clock_gettime_sym: s.runtime_address(crate::gobin::VDSO_CLOCK_GETTIME_SYM),
            gomaxprocs: s.runtime_address("runtime.gomaxprocs"),
            maxmcount: s.runtime_address("runtime.sched").and_then(|sched| {
                let offset = crate::goruntime::sched_maxmcount_offset(&s.build.version)?;
                Some(sched + offset)
            }),
        });
        let go_version = sym.map(|s| (s.build.version.major, s.build.version.minor));
        let godebug = sym
            .and_then(|s| s.build.setting("DefaultGODEBUG"))
            .unwrap_or_default()
            .to_owned();
        let mut facts = Facts::default();
        if go_version.is_some() {
            facts.vdso.runtime_clock_gettime_sym = if vars.vdso_clock_gettime_sym.is_some() {
                Fact::unknown("not read: the Go runtime had not started yet")
            } else {
                Fact::unknown("the binary does not say where runtime.vdsoClockgettimeSym is")
            };
            facts.cpu.gomaxprocs = Fact::unknown("not read: the Go runtime had not started yet");
            if vars.maxmcount.is_some() {
                facts.limits.go_max_threads = Some(Fact::unknown(
                    "not read: the Go runtime had not started yet",
                ));
            }
        } else {
            facts.vdso.runtime_clock_gettime_sym = Fact::unknown("not a Go program");
            facts.cpu.gomaxprocs = Fact::unknown("not a Go program");
        }
        Self {
            pid,
            vars,
            go_version,
            godebug,
            runtime_ready,
            throttle_base: None,
            sockets_due: None,
            tables_due: None,
            ticks: 0,
            slow_due: None,
            facts,
        }
    }

    /// The Go runtime has started once `main.main` began (`at_main`: its
    /// variables as it began, read by the kernel then, so a process that
    /// exits at once has them too; `None`: not yet). Their values are
    /// taken from here, and refreshed from the process's memory from now on.
    pub fn runtime_started(&mut self, at_main: Option<&crate::model::RuntimeValues>) {
        if self.runtime_ready {
            return;
        }
        let Some(v) = at_main else {
            return;
        };
        self.runtime_ready = true;
        // A variable with a symbol the probe did not read: said so.
        fn by_probe<T>(symbol: Option<u64>, value: Option<T>) -> Option<Result<T, String>> {
            symbol.map(|_| value.ok_or_else(|| "the probe on main.main could not read it".into()))
        }
        let reading = RuntimeReading {
            vdso_clock_gettime_sym: by_probe(
                self.vars.vdso_clock_gettime_sym,
                v.vdso_clock_gettime_sym,
            ),
            gomaxprocs: by_probe(self.vars.gomaxprocs, v.gomaxprocs),
            maxmcount: by_probe(self.vars.maxmcount, v.maxmcount),
        };
        self.apply_runtime(&reading, ReadAt::MainStart);
    }

    /// The runtime's variables read from the process's memory now.
    fn read_runtime(&self) -> RuntimeReading {
        let pid = self.pid;
        let why = |e: crate::procinfo::ProcInfoError| e.to_string();
        RuntimeReading {
            vdso_clock_gettime_sym: self
                .vars
                .vdso_clock_gettime_sym
                .map(|a| mem::read_u64(pid, a).map_err(why)),
            gomaxprocs: self
                .vars
                .gomaxprocs
                .map(|a| mem::read_u32(pid, a).map_err(why)),
            maxmcount: self
                .vars
                .maxmcount
                .map(|a| mem::read_u32(pid, a).map_err(why)),
        }
    }

    /// The one place each runtime variable becomes a fact: a value read
    /// replaces what was known (the program may change it), a failure
    /// keeps a value read before.
    fn apply_runtime(&mut self, r: &RuntimeReading, at: ReadAt) {
        let when = at.said();
        if let Some(read) = &r.vdso_clock_gettime_sym {
            let name = "runtime.vdsoClockgettimeSym";
            // 0 is a value: the runtime found no vDSO.
            let new = match read {
                Ok(v) => Fact::known(*v, format!("read from {name}{when}")),
                Err(e) => Fact::unknown(format!("reading {name}{when}: {e}")),
            };
            self.facts.vdso.runtime_clock_gettime_sym.update(new);
        }
        if let Some(read) = &r.gomaxprocs {
            let new = nonzero(read, "runtime.gomaxprocs", when);
            self.facts.cpu.gomaxprocs.update(new);
        }
        if let Some(read) = &r.maxmcount {
            let new = nonzero(read, "runtime.sched.maxmcount", when).map(u64::from);
            match &mut self.facts.limits.go_max_threads {
                Some(f) => f.update(new),
                None => self.facts.limits.go_max_threads = Some(new),
            }
        }
    }

    /// The per-tick reading of a running session: the runtime's variables
    /// every tick; the rest (vDSO mapping, limits, cgroups, CPU quota and
    /// environment: files that rarely change, some large, such as the
    /// mount table a cgroup path is resolved through) every tick for the
    /// first [`FULL_TICKS`], then once every [`SLOW_FACTS_EVERY`]. Before,
    /// reading everything four times a second cost 1% of a core on a busy
    /// host.
    pub fn tick(&mut self) {
        let now = std::time::Instant::now();
        self.ticks += 1;
        if self.ticks <= FULL_TICKS || self.slow_due.is_none_or(|due| now >= due) {
            self.slow_due = Some(now + SLOW_FACTS_EVERY);
            self.refresh();
        } else {
            self.refresh_runtime();
        }
    }

    /// The Go runtime's variables, once its `main.main` has begun.
    fn refresh_runtime(&mut self) {
        if self.go_version.is_some() && self.runtime_ready {
            let reading = self.read_runtime();
            self.apply_runtime(&reading, ReadAt::Tick);
        }
    }

    /// Reads what can be read now; values that cannot be read (the process
    /// is gone) keep their last reading.
    pub fn refresh(&mut self) {
        let pid = self.pid;
        self.refresh_vdso();
        let l = &mut self.facts.limits;
        if let Ok(Some(p)) = cgroup::pids_limit(pid) {
            l.pids_max = p.max;
            l.pids_current = p.current;
            l.pids_cgroup = Some(p.limited_by.unwrap_or(p.cgroup_path).display().to_string());
        }
        if let Ok(n) = limits::nproc_limit(pid) {
            l.nproc_soft = n.soft;
        }
        if let Ok(c) = limits::credentials(pid) {
            l.nproc_exempt = c.nproc_exempt();
        }
        if self.go_version.is_some() && self.vars.maxmcount.is_none() {
            let new = Fact::known(
                GO_DEFAULT_MAX_THREADS,
                "the runtime's default (no symbol for runtime.sched: SetMaxThreads not readable)",
            );
            match &mut l.go_max_threads {
                Some(f) => f.update(new),
                None => l.go_max_threads = Some(new),
            }
        }
        self.refresh_runtime();
        self.refresh_cpu();
        self.refresh_sockets();
    }

    /// The most sockets seen (a short-lived process may close them all
    /// before the last reading), with the TCP states of that peak. The count
    /// (a readlink per descriptor) is read every [`SOCKETS_EVERY`] at most,
    /// spaced to [`SOCKETS_CPU_BUDGET`] by its cost; the TCP tables only
    /// for a new peak, spaced to [`TABLES_CPU_BUDGET`] by theirs.
    fn refresh_sockets(&mut self) {
        let pid = self.pid;
        let start = std::time::Instant::now();
        if self.sockets_due.is_some_and(|due| start < due) {
            return;
        }
        let Ok(inodes) = sockets::socket_inodes(pid) else {
            return;
        };
        let spaced = |cost: std::time::Duration, budget: f64| {
            start + SOCKETS_EVERY.max(cost.div_f64(budget))
        };
        self.sockets_due = Some(spaced(start.elapsed(), SOCKETS_CPU_BUDGET));
        let total = inodes.len() as u64;
        let last = self.facts.sockets.as_ref();
        if last.is_some_and(|s| total <= s.sockets) {
            return;
        }
        let mut now = SocketFacts {
            sockets: total,
            // The states of the last peak read, until the tables are read.
            tcp_established: last.map_or(0, |s| s.tcp_established),
            tcp_listen: last.map_or(0, |s| s.tcp_listen),
        };
        if self.tables_due.is_none_or(|due| start >= due) {
            let begin = std::time::Instant::now();
            if let Ok(by_state) = sockets::tcp_states_of(pid, &inodes) {
                let count = |s: sockets::TcpState| by_state.get(&s).copied().unwrap_or(0) as u64;
                now.tcp_established = count(sockets::TcpState::Established);
                now.tcp_listen = count(sockets::TcpState::Listen);
            }
            self.tables_due = Some(spaced(begin.elapsed(), TABLES_CPU_BUDGET));
        }
        self.facts.sockets = Some(now);
    }

    fn refresh_vdso(&mut self) {
        let pid = self.pid;
        let v = &mut self.facts.vdso;
        // A read during the launch's exec can see no mapping yet: a later
        // read that finds one wins, none never replaces one.
        if let Ok(Some(r)) = vdso::vdso_range(pid) {
            v.mapping = Some((r.start, r.end));
        }
        if let Ok(ehdr) = vdso::sysinfo_ehdr(pid) {
            v.auxv_sysinfo_ehdr = ehdr;
        }
        if v.clocksource.is_none()
            && let Ok(source) = vdso::current_clocksource()
        {
            v.clocksource_vdso_capable = match vdso::vdso_clock(&source) {
                vdso::VdsoClock::Capable => Some(true),
                vdso::VdsoClock::Syscall => Some(false),
                vdso::VdsoClock::Conditional(_) => None,
            };
            v.clocksource = Some(source);
        }
    }

    fn refresh_cpu(&mut self) {
        let pid = self.pid;
        let c = &mut self.facts.cpu;
        if let Ok(n) = cpus::affinity_cpus(pid) {
            c.affinity_cpus = Some(n);
        }
        let mut leaf_quota = None;
        if let Ok(Some(q)) = cgroup::cpu_quota(pid) {
            c.quota_cpus = Some(q.cpus);
            c.quota_cgroup = Some(q.cgroup_path.display().to_string());
            leaf_quota = q.leaf_cpus;
        }
        if let Ok(Some(t)) = cgroup::cpu_throttling(pid) {
            let base = self.throttle_base.get_or_insert(t.clone()).clone();
            c.periods = t.periods.saturating_sub(base.periods);
            c.throttled_periods = t.throttled_periods.saturating_sub(base.throttled_periods);
            c.throttled_ns = t.throttled_ns.saturating_sub(base.throttled_ns);
        }
        let Some((major, minor)) = self.go_version else {
            return;
        };
        let env = cpus::env_var(pid, "GOMAXPROCS").ok().flatten();
        let env_godebug = cpus::env_var(pid, "GODEBUG").ok().flatten();
        let godebug = gomaxprocs::effective_godebug(
            Some(self.godebug.as_str()).filter(|s| !s.is_empty()),
            env_godebug.as_deref(),
        );
        // The runtime reads only its own cgroup's quota.
        let rule = gomaxprocs::default_gomaxprocs(
            (major, minor),
            c.affinity_cpus.unwrap_or(1),
            leaf_quota,
            env.as_deref(),
            &godebug,
        );
        c.default_gomaxprocs = Some(rule.value);
        c.default_rule = Some(rule.explanation.clone());
        c.default_follows_quota = rule.rule == gomaxprocs::GomaxprocsRule::CpuQuota;
        if self.vars.gomaxprocs.is_none() {
            c.gomaxprocs.update(Fact::known(
                rule.value,
                "estimated by the runtime's default rule (the binary has no symbol for \
                 runtime.gomaxprocs; a runtime.GOMAXPROCS call in the program would change it)",
            ));
        }
    }

    /// Adds a thread sample to the facts (kept for the report's timeline).
    pub fn record_sample(&mut self, sample: ThreadSample) {
        const MAX_SAMPLES: usize = 10_000;
        if self.facts.samples.len() < MAX_SAMPLES {
            self.facts.samples.push(sample);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_fact_survives_a_later_failure() {
        let mut f: Fact<u32> = Fact::unknown("not read yet");
        f.update(Fact::unknown("process gone"));
        assert_eq!(f, Fact::unknown("process gone"));
        f.update(Fact::known(4, "read"));
        f.update(Fact::unknown("process gone"));
        assert_eq!(f.value(), Some(4));
    }

    /// A Go 1.27 program whose runtime variables all have symbols, that
    /// has already exited (no such PID).
    fn exited_go_program() -> FactsCollector {
        let vars = RuntimeVars {
            vdso_clock_gettime_sym: Some(0x1000),
            gomaxprocs: Some(0x2000),
            maxmcount: Some(0x3000),
        };
        let mut facts = Facts::default();
        let early = "not read: the Go runtime had not started yet";
        facts.vdso.runtime_clock_gettime_sym = Fact::unknown(early);
        facts.cpu.gomaxprocs = Fact::unknown(early);
        facts.limits.go_max_threads = Some(Fact::unknown(early));
        FactsCollector {
            pid: u32::MAX - 1,
            vars,
            go_version: Some((1, 27)),
            godebug: String::new(),
            runtime_ready: false,
            throttle_base: None,
            sockets_due: None,
            tables_due: None,
            ticks: 0,
            slow_due: None,
            facts,
        }
    }

    #[test]
    fn values_read_as_main_began_outlive_the_process() {
        let mut c = exited_go_program();
        c.runtime_started(None);
        assert!(
            !c.facts.cpu.gomaxprocs.is_known(),
            "main.main not begun yet"
        );
        let at_main = crate::model::RuntimeValues {
            vdso_clock_gettime_sym: Some(0),
            gomaxprocs: Some(4),
            maxmcount: Some(10_000),
        };
        c.runtime_started(Some(&at_main));
        // The process is gone: its memory cannot be read, the values stay.
        c.refresh();
        let f = &c.facts;
        assert_eq!(
            f.cpu.gomaxprocs,
            Fact::known(4, "read from runtime.gomaxprocs as main.main began")
        );
        // 0 is a value here (no vDSO), not a failed read.
        assert_eq!(f.vdso.runtime_clock_gettime_sym.value(), Some(0));
        assert_eq!(
            f.limits.go_max_threads.as_ref().and_then(Fact::value),
            Some(10_000)
        );
    }

    #[test]
    fn a_value_the_probe_could_not_read_is_unknown_with_why() {
        let mut c = exited_go_program();
        let at_main = crate::model::RuntimeValues {
            vdso_clock_gettime_sym: Some(0x7fff_0000),
            gomaxprocs: None,
            maxmcount: Some(0),
        };
        c.runtime_started(Some(&at_main));
        let Fact::Unknown { why } = &c.facts.cpu.gomaxprocs else {
            panic!("{:?}", c.facts.cpu.gomaxprocs)
        };
        assert!(
            why.contains("the probe on main.main could not read it"),
            "{why}"
        );
        let Some(Fact::Unknown { why }) = &c.facts.limits.go_max_threads else {
            panic!("{:?}", c.facts.limits.go_max_threads)
        };
        assert!(why.contains("read 0"), "{why}");
        assert!(c.facts.vdso.runtime_clock_gettime_sym.is_known());
    }
}
