//! The GOMAXPROCS a Go program picks when nothing in it calls
//! `runtime.GOMAXPROCS(n)`: the number of Ps, the threads that can run Go
//! code at once.
//!
//! The rules, as read in the Go sources (Go 1.25.5; 1.27.3 has the same
//! `runtime/cgroup_linux.go`; 1.21.13 for before 1.25):
//!
//! 1. A `GOMAXPROCS` environment variable that parses as a positive 32-bit
//!    integer wins (`runtime/proc.go:921-923` in 1.25,
//!    `runtime/proc.go:760-762` in 1.21: `strconv.Atoi32`/`atoi32`, `n > 0`;
//!    an optional `-` and decimal digits only, so `+4`, ` 4` and `4.0` are
//!    ignored, and so are 0 and negatives).
//! 2. Before Go 1.25: the number of CPUs in the affinity mask at start
//!    (`getproccount`, `runtime/os_linux.go:97-122` in 1.21: the bits set by
//!    `sched_getaffinity(0)`, at least 1).
//! 3. Go 1.25 and later, on Linux: `min(affinity, max(2, ceil(quota / period)))`
//!    when the process's CPU cgroup has a quota, else the affinity count
//!    (`defaultGOMAXPROCS` and `adjustCgroupGOMAXPROCS`,
//!    `runtime/cgroup_linux.go:85-119`: "A limit less than 2 is rounded up
//!    to 2, and any fractional component is rounded up"; so a process whose
//!    affinity is 1 CPU still gets 1). A v1 `cpu.cfs_quota_us` of -1 or a v2
//!    `cpu.max` of `max` is no quota
//!    (`internal/runtime/cgroup/cgroup_linux.go:162-190, 263-294`).
//! 4. That cgroup rule applies only while the GODEBUG setting
//!    `containermaxprocs` is greater than 0 (`runtime/cgroup_linux.go:52`);
//!    otherwise rule 2 applies. The runtime's own default is 1
//!    (`runtime/runtime1.go:375`); then the binary's `DefaultGODEBUG` is
//!    applied, then the `GODEBUG` environment variable, each left to right,
//!    a later value of a key replacing an earlier one, and a value that is
//!    not an integer ignored (`runtime/runtime1.go:423-438, 496-551`).
//!    `go build` puts `containermaxprocs=0` into `DefaultGODEBUG` when the
//!    main module's `go` line is below 1.25 (`internal/godebugs/table.go:31`
//!    says `Changed: 25, Old: "0"`, and `cmd/go/internal/load/godebug.go:128-149`
//!    adds `Old` for every setting whose `Changed` is above that version),
//!    unless a `godebug` line in go.mod or a `//go:debug` directive says
//!    otherwise. The build info records the result as the
//!    `DefaultGODEBUG=` build setting (verified: Go 1.25.5 with `go 1.24` in
//!    go.mod records `DefaultGODEBUG=containermaxprocs=0,decoratemappings=0,
//!    tlssha1=1,updatemaxprocs=0,x509sha256skid=0`; with `go 1.25`, no
//!    `DefaultGODEBUG` at all).
//!
//! Two details of the Go runtime to keep in mind when passing the quota:
//!
//! - It reads the quota of the process's *own* cgroup only, not the
//!   ancestors' (`runtime/cgroup_linux.go:20-23`; golang/go#81180 is open
//!   about it), so pass [`super::cgroup::CpuQuota::leaf_cpus`], not the
//!   effective `cpus`, to predict what it picks.
//! - It picks the v1 hierarchy that has `cpu` over v2
//!   (`internal/runtime/cgroup/cgroup_linux.go:379-381`), as
//!   [`super::cgroup`] does. Go 1.25.5 ignores the mount's root when it
//!   builds the cgroup's path (a v1 container without a cgroup namespace
//!   then sees no quota, golang/go#76390); 1.27.3 strips it, as
//!   [`super::cgroup`] does.
//!
//! With `updatemaxprocs` on (the default from Go 1.25, off with a go.mod
//! below 1.25) the runtime recomputes the default about once a second, so
//! today's affinity and quota give today's value; with it off, the value
//! is the one computed at start.

/// The default GOMAXPROCS of a Go program and the rule that chose it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GomaxprocsDefault {
    pub value: u32,
    pub rule: GomaxprocsRule,
    /// One sentence saying why, with the numbers.
    pub explanation: String,
}

/// Which rule decided the default GOMAXPROCS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GomaxprocsRule {
    /// A valid `GOMAXPROCS` environment variable.
    Environment,
    /// Go before 1.25: the affinity count.
    AffinityBeforeGo125,
    /// Go 1.25+ with `containermaxprocs=0` (from the build's
    /// `DefaultGODEBUG` or the `GODEBUG` environment variable): the
    /// affinity count.
    ContainerMaxprocsOff,
    /// Go 1.25+ and no CPU quota: the affinity count.
    NoCpuQuota,
    /// Go 1.25+ and a CPU quota that is not below the affinity count: the
    /// affinity count.
    AffinityBelowQuota,
    /// Go 1.25+ and a CPU quota below the affinity count:
    /// `max(2, ceil(quota))`.
    CpuQuota,
}

/// The GOMAXPROCS a Go program of `version` (major, minor) picks by
/// default, given its affinity CPU count, the CPU quota of its own cgroup
/// in CPUs (`quota / period`, `None` for no quota), its `GOMAXPROCS`
/// environment variable, and its effective GODEBUG string: the binary's
/// `DefaultGODEBUG` build setting then the `GODEBUG` environment variable,
/// joined with a comma (see [`effective_godebug`]). The rules and their
/// sources are in the [module documentation](self).
pub fn default_gomaxprocs(
    version: (u32, u32),
    affinity_cpus: u32,
    quota: Option<f64>,
    env_gomaxprocs: Option<&str>,
    godebug: &str,
) -> GomaxprocsDefault {
    let result = |value: u32, rule, explanation: String| GomaxprocsDefault {
        value,
        rule,
        explanation,
    };
    if let Some(n) = env_gomaxprocs.and_then(go_atoi32).filter(|n| *n > 0) {
        let n = n.unsigned_abs();
        return result(
            n,
            GomaxprocsRule::Environment,
            format!("GOMAXPROCS={n} in the environment"),
        );
    }
    let ignored_env = match env_gomaxprocs {
        Some(v) => {
            format!(" (GOMAXPROCS={v:?} in the environment is ignored: not a positive integer)")
        }
        None => String::new(),
    };
    // getCPUCount reports at least 1.
    let affinity = affinity_cpus.max(1);
    let (major, minor) = version;
    if major == 1 && minor < 25 {
        return result(
            affinity,
            GomaxprocsRule::AffinityBeforeGo125,
            format!(
                "Go {major}.{minor} uses the {affinity} CPUs of the affinity mask{ignored_env}"
            ),
        );
    }
    if godebug_value(godebug, "containermaxprocs").is_some_and(|v| v <= 0) {
        return result(
            affinity,
            GomaxprocsRule::ContainerMaxprocsOff,
            format!(
                "GODEBUG containermaxprocs=0 (a go.mod `go` line below 1.25 sets it) turns off \
                 the cgroup CPU limit: the {affinity} CPUs of the affinity mask{ignored_env}"
            ),
        );
    }
    let Some(quota) = quota.filter(|q| q.is_finite() && *q >= 0.0) else {
        return result(
            affinity,
            GomaxprocsRule::NoCpuQuota,
            format!("no cgroup CPU quota: the {affinity} CPUs of the affinity mask{ignored_env}"),
        );
    };
    // ceil, then at least 2; the quota is at most 2^44 µs / 1000 µs, far
    // below u32::MAX, but saturate anyway.
    let limit = quota.ceil().max(2.0);
    let limit = if limit >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // Integral and within 2..u32::MAX here, so the cast is exact.
        limit as u32
    };
    if limit < affinity {
        result(
            limit,
            GomaxprocsRule::CpuQuota,
            format!(
                "the cgroup CPU quota of {quota} CPUs, rounded up to {limit} (and never below 2), \
                 is below the {affinity} CPUs of the affinity mask{ignored_env}"
            ),
        )
    } else {
        result(
            affinity,
            GomaxprocsRule::AffinityBelowQuota,
            format!(
                "the {affinity} CPUs of the affinity mask, fewer than the cgroup CPU quota of \
                 {quota} CPUs (counted as {limit}){ignored_env}"
            ),
        )
    }
}

/// The GODEBUG string the Go runtime applies at start: the binary's
/// `DefaultGODEBUG` build setting, then the process's `GODEBUG`
/// environment variable, so that the environment wins.
pub fn effective_godebug(default_godebug: Option<&str>, env_godebug: Option<&str>) -> String {
    [default_godebug, env_godebug]
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// The integer value of `key` in a GODEBUG string as the runtime reads it
/// at start: comma-separated `key=value` pairs, left to right, the last
/// valid one winning; values that are not 32-bit integers are skipped.
pub fn godebug_value(godebug: &str, key: &str) -> Option<i32> {
    godebug
        .split(',')
        .filter_map(|field| field.split_once('='))
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, v)| go_atoi32(v))
        .next_back()
}

/// Go's runtime `Atoi32`: an optional `-`, then at least one decimal
/// digit, nothing else, within `i32`.
fn go_atoi32(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `DefaultGODEBUG` of a binary built by Go 1.25.5 from a go.mod that
    /// says `go 1.24` (from `go version -m`).
    const GO124_DEFAULT: &str =
        "containermaxprocs=0,decoratemappings=0,tlssha1=1,updatemaxprocs=0,x509sha256skid=0";

    fn value(
        version: (u32, u32),
        affinity: u32,
        quota: Option<f64>,
        env: Option<&str>,
        godebug: &str,
    ) -> (u32, GomaxprocsRule) {
        let d = default_gomaxprocs(version, affinity, quota, env, godebug);
        assert!(!d.explanation.is_empty());
        (d.value, d.rule)
    }

    #[test]
    fn environment_wins_when_valid() {
        use GomaxprocsRule::*;
        assert_eq!(
            value((1, 25), 8, Some(1.0), Some("7"), ""),
            (7, Environment)
        );
        assert_eq!(value((1, 21), 8, None, Some("64"), ""), (64, Environment));
        assert_eq!(value((1, 25), 8, None, Some("007"), ""), (7, Environment));
        // Ignored: not a positive decimal int32.
        for bad in ["0", "-3", "+3", " 3", "3 ", "3.0", "", "x", "2147483648"] {
            assert_eq!(value((1, 25), 8, None, Some(bad), "").0, 8, "{bad:?}");
        }
        let d = default_gomaxprocs((1, 25), 8, None, Some("+3"), "");
        assert!(d.explanation.contains("ignored"), "{}", d.explanation);
    }

    #[test]
    fn before_go_125_uses_affinity() {
        use GomaxprocsRule::*;
        assert_eq!(
            value((1, 19), 16, Some(2.0), None, ""),
            (16, AffinityBeforeGo125)
        );
        assert_eq!(
            value((1, 24), 16, Some(0.5), None, ""),
            (16, AffinityBeforeGo125)
        );
        assert_eq!(value((1, 24), 0, None, None, ""), (1, AffinityBeforeGo125));
    }

    #[test]
    fn go_125_rounds_the_quota_up_and_never_below_two() {
        use GomaxprocsRule::*;
        assert_eq!(value((1, 25), 16, Some(4.0), None, ""), (4, CpuQuota));
        assert_eq!(value((1, 25), 16, Some(2.5), None, ""), (3, CpuQuota));
        assert_eq!(value((1, 25), 16, Some(0.25), None, ""), (2, CpuQuota));
        assert_eq!(value((1, 27), 16, Some(1.0), None, ""), (2, CpuQuota));
        assert_eq!(
            value((1, 25), 16, Some(15.01), None, ""),
            (16, AffinityBelowQuota)
        );
        // The floor of 2 never exceeds the affinity count.
        assert_eq!(
            value((1, 25), 1, Some(0.5), None, ""),
            (1, AffinityBelowQuota)
        );
        assert_eq!(
            value((1, 25), 2, Some(0.5), None, ""),
            (2, AffinityBelowQuota)
        );
        assert_eq!(
            value((1, 25), 4, Some(100.0), None, ""),
            (4, AffinityBelowQuota)
        );
        assert_eq!(value((1, 25), 4, None, None, ""), (4, NoCpuQuota));
        assert_eq!(value((1, 25), 4, Some(f64::NAN), None, ""), (4, NoCpuQuota));
        assert_eq!(value((2, 0), 16, Some(3.0), None, ""), (3, CpuQuota));
    }

    #[test]
    fn containermaxprocs_zero_turns_the_quota_off() {
        use GomaxprocsRule::*;
        assert_eq!(
            value((1, 25), 16, Some(2.0), None, GO124_DEFAULT),
            (16, ContainerMaxprocsOff)
        );
        // The environment's GODEBUG comes after DefaultGODEBUG and wins.
        let godebug = effective_godebug(Some(GO124_DEFAULT), Some("containermaxprocs=1"));
        assert_eq!(value((1, 25), 16, Some(2.0), None, &godebug), (2, CpuQuota));
        let godebug = effective_godebug(None, Some("gctrace=1,containermaxprocs=0"));
        assert_eq!(
            value((1, 26), 16, Some(2.0), None, &godebug),
            (16, ContainerMaxprocsOff)
        );
        // A value that is not an integer is skipped.
        assert_eq!(
            value((1, 25), 16, Some(2.0), None, "containermaxprocs=off"),
            (2, CpuQuota)
        );
        // GOMAXPROCS still wins over everything.
        assert_eq!(
            value((1, 25), 16, Some(2.0), Some("5"), GO124_DEFAULT),
            (5, Environment)
        );
    }

    #[test]
    fn reads_godebug_values() {
        assert_eq!(godebug_value(GO124_DEFAULT, "containermaxprocs"), Some(0));
        assert_eq!(godebug_value(GO124_DEFAULT, "updatemaxprocs"), Some(0));
        assert_eq!(godebug_value("a=1,a=2,a=x", "a"), Some(2));
        assert_eq!(godebug_value("", "a"), None);
        assert_eq!(godebug_value("a", "a"), None);
        assert_eq!(godebug_value("ab=1", "a"), None);
        assert_eq!(effective_godebug(None, None), "");
        assert_eq!(effective_godebug(Some("a=1"), Some("")), "a=1");
        assert_eq!(effective_godebug(Some("a=1"), Some("b=2")), "a=1,b=2");
    }

    #[test]
    fn parses_like_go_atoi32() {
        assert_eq!(go_atoi32("42"), Some(42));
        assert_eq!(go_atoi32("-7"), Some(-7));
        assert_eq!(go_atoi32("2147483647"), Some(i32::MAX));
        for bad in ["", "-", "+1", "1_0", "0x10", "2147483648", " 1"] {
            assert_eq!(go_atoi32(bad), None, "{bad:?}");
        }
    }
}
