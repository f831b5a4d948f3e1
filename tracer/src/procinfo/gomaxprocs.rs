//! What GOMAXPROCS the Go runtime picks by default, per version.
//!
//! Before Go 1.25: the CPUs in the process's affinity mask. From 1.25
//! (`runtime/cgroup_linux.go`, `defaultGOMAXPROCS` / `adjustCgroupGOMAXPROCS`):
//! the minimum of that and the cgroup CPU limit (quota / period) rounded
//! up, and at least 2; turned off by `GODEBUG=containermaxprocs=0`, which is
//! the default for a main module whose go.mod says `go 1.24` or older (the
//! binary's build info carries it as `DefaultGODEBUG`). The runtime reads
//! only the cgroup that holds the process, not tighter ancestors
//! (golang/go#81180). A valid `GOMAXPROCS` environment variable wins.

use std::borrow::Cow;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GomaxprocsDefault {
    pub value: u32,
    pub rule: Cow<'static, str>,
}

/// Whether `key=value` is set in a comma-separated GODEBUG string (the
/// last setting wins, as in the runtime).
fn godebug_is(godebug: &str, key: &str, value: &str) -> bool {
    godebug
        .split(',')
        .rev()
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .is_some_and(|(_, v)| v.trim() == value)
}

/// `quota_cpus`: the limit of the cgroup holding the process (what the
/// runtime reads), `None` when unlimited. `godebug`: the binary's
/// `DefaultGODEBUG` then the process's `GODEBUG`, comma-joined.
pub fn default_gomaxprocs(
    version: (u32, u32),
    affinity_cpus: u32,
    quota_cpus: Option<f64>,
    env_gomaxprocs: Option<&str>,
    godebug: &str,
) -> GomaxprocsDefault {
    if let Some(n) = env_gomaxprocs
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
    {
        return GomaxprocsDefault {
            value: n,
            rule: "set by the GOMAXPROCS environment variable".into(),
        };
    }
    let cpus = affinity_cpus.max(1);
    if version < (1, 25) {
        return GomaxprocsDefault {
            value: cpus,
            rule: format!(
                "Go {}.{} uses the CPU count ({cpus}) and ignores the cgroup CPU quota",
                version.0, version.1
            )
            .into(),
        };
    }
    if godebug_is(godebug, "containermaxprocs", "0") {
        return GomaxprocsDefault {
            value: cpus,
            rule: format!(
                "Go 1.25+ would follow the cgroup quota, but containermaxprocs=0 (GODEBUG, or a go.mod \
                 older than go 1.25): the CPU count ({cpus})"
            )
            .into(),
        };
    }
    match quota_cpus {
        Some(q) => {
            let limit = (q.ceil() as u32).max(2);
            GomaxprocsDefault {
                value: limit.min(cpus),
                rule: format!("Go 1.25+: min(CPUs {cpus}, max(2, ceil(cgroup quota {q:.2})))")
                    .into(),
            }
        }
        None => GomaxprocsDefault {
            value: cpus,
            rule: format!("Go 1.25+ with no cgroup CPU quota: the CPU count ({cpus})").into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_per_version() {
        let d = |v, q, env, dbg| default_gomaxprocs(v, 8, q, env, dbg).value;
        assert_eq!(d((1, 21), Some(0.5), None, ""), 8);
        assert_eq!(d((1, 25), Some(0.5), None, ""), 2);
        assert_eq!(d((1, 25), Some(2.5), None, ""), 3);
        assert_eq!(d((1, 27), Some(16.0), None, ""), 8);
        assert_eq!(d((1, 27), None, None, ""), 8);
        assert_eq!(
            d(
                (1, 25),
                Some(0.5),
                None,
                "containermaxprocs=0,updatemaxprocs=0"
            ),
            8
        );
        assert_eq!(
            d(
                (1, 25),
                Some(0.5),
                None,
                "containermaxprocs=0,containermaxprocs=1"
            ),
            2
        );
        assert_eq!(d((1, 21), Some(0.5), Some("3"), ""), 3);
        assert_eq!(d((1, 21), None, Some("junk"), ""), 8);
    }
}
