//! `attach`'s and `record`'s targets when there are several: the first
//! (whose Go runtime is read), and the others, which join the kernel's
//! set of followed processes (a section each in the report). Given PIDs
//! and processes already running under a `--comm` name are written into
//! the set before the probes attach; later ones (an exec or fork that
//! takes a `--comm` name, a process's first call in a `--cgroup`) are
//! added by the kernel itself.

use anyhow::Context as _;

use crate::{
    cli::Select,
    probes::{Given, Selection, privileges},
    serve::discover::{Discovery, GoCache, Selector},
    target::{Process, TargetError},
};

/// The first target and the selection beside it.
pub struct Targets {
    pub first: u32,
    pub selection: Selection,
}

impl Targets {
    /// `first`: the first `-p`, if given; else the first match (a Go
    /// program first, then the lowest PID).
    pub fn choose(select: &Select, first: Option<u32>) -> anyhow::Result<Self> {
        let by_name_or_cgroup = !select.comms.is_empty() || !select.cgroups.is_empty();
        if by_name_or_cgroup && !privileges::can_ptrace_any() {
            anyhow::bail!(
                "--comm and --cgroup trace processes whoever owns them: they need root (or \
                 CAP_SYS_PTRACE); give the processes with -p instead"
            );
        }
        let running = if by_name_or_cgroup {
            matches(select)
        } else {
            Vec::new()
        };
        let first = match first {
            Some(pid) => pid,
            None => pick_first(&running).with_context(|| nothing_matches(select))?,
        };
        let mut given = Vec::new();
        for &pid in &select.pids {
            if pid == first {
                continue;
            }
            // The same check as the first's: it exists, and the caller may
            // see it.
            Process::validate(pid).map_err(|e: TargetError| anyhow::anyhow!("-p {pid}: {e}"))?;
            given.push((pid, Given::Pid));
        }
        for m in &running {
            let known = m.pid == first || given.iter().any(|&(p, _)| p == m.pid);
            if m.by_comm && !known {
                given.push((m.pid, Given::Comm));
            }
        }
        let selection = Selection {
            given,
            comms: select.comms.iter().map(|c| comm_bytes(c)).collect(),
            cgroups: select
                .cgroups
                .iter()
                .map(|c| tracer_common::CgroupSelector {
                    id: c.id(),
                    level: c.level(),
                    _pad: 0,
                })
                .collect(),
        };
        Ok(Self { first, selection })
    }
}

/// A running process that a `--comm` or `--cgroup` selects.
struct Match {
    pid: u32,
    by_comm: bool,
}

/// The running processes (not this one) whose comm is a `--comm` name or
/// that are in a `--cgroup`: `serve`'s scan, once for each kind.
fn matches(select: &Select) -> Vec<Match> {
    let scan = |comms: Vec<String>, cgroups| {
        let selector = Selector {
            comms,
            cgroups,
            all_go: false,
        };
        Discovery::new(selector, "/proc", std::process::id()).scan()
    };
    let by_comm = if select.comms.is_empty() {
        Vec::new()
    } else {
        scan(select.comms.clone(), Vec::new())
    };
    let in_cgroup = if select.cgroups.is_empty() {
        Vec::new()
    } else {
        scan(Vec::new(), select.cgroups.clone())
    };
    let mut found: Vec<Match> = by_comm
        .iter()
        .map(|&pid| Match { pid, by_comm: true })
        .chain(
            in_cgroup
                .iter()
                .filter(|p| !by_comm.contains(p))
                .map(|&pid| Match {
                    pid,
                    by_comm: false,
                }),
        )
        .collect();
    found.sort_by_key(|m| m.pid);
    found
}

/// The first target among the matches: the first Go program (its runtime
/// is what the report explains), else the lowest PID.
fn pick_first(running: &[Match]) -> Option<u32> {
    let mut go = GoCache::default();
    running
        .iter()
        .find(|m| {
            go.go_version(std::path::Path::new(&format!("/proc/{}/exe", m.pid)))
                .is_some()
        })
        .or_else(|| running.first())
        .map(|m| m.pid)
}

fn nothing_matches(select: &Select) -> String {
    let mut what: Vec<String> = select.comms.iter().map(|c| format!("--comm {c}")).collect();
    what.extend(
        select
            .cgroups
            .iter()
            .map(|c| format!("--cgroup {}", c.path())),
    );
    format!(
        "no running process matches {}: attach needs one to start from; start it first, give \
         one with -p, or use `tracer serve`, which waits for them",
        what.join(", ")
    )
}

/// A `--comm` name as the kernel keeps a comm (checked to fit by the CLI).
fn comm_bytes(name: &str) -> tracer_common::CommSelector {
    let mut out = [0u8; 16];
    let n = name.len().min(15);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_comm_is_nul_padded_as_the_kernel_keeps_it() {
        let c = comm_bytes("etcd");
        assert_eq!(&c[..5], b"etcd\0");
        assert!(c[4..].iter().all(|&b| b == 0));
        assert_eq!(comm_bytes("abcdefghijklmno")[15], 0);
    }

    #[test]
    fn the_first_target_is_a_go_program_before_a_lower_pid() {
        // This test process is a Rust program; PID 1 is not Go either on a
        // test machine, so the lowest PID wins.
        let own = std::process::id();
        let m = [
            Match {
                pid: own,
                by_comm: true,
            },
            Match {
                pid: own + 1_000_000,
                by_comm: true,
            },
        ];
        assert_eq!(pick_first(&m), Some(own));
        assert_eq!(pick_first(&[]), None);
    }
}
