//! The report's `processes`: the target and every process followed with
//! `-f` or selected beside it (more `-p`, `--comm`, `--cgroup`), a section
//! each (an exec in a followed process starts a new one),
//! with the total over all of them, the sum of the sections.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{SyscallRow, Total};
use crate::model::{
    Model, ThreadEnd,
    event::JoinedBy,
    processes::{Section, SectionEnd, SectionStart},
    syscalls::{SyscallStats, SyscallTable, Waiter},
};

#[derive(Clone, Debug, Serialize)]
pub struct Processes {
    /// Child processes of the target (forks without `CLONE_THREAD`) that
    /// were not followed: following was off (`-f` follows them).
    pub children_not_followed: u64,
    /// Child processes not followed because their PID was past the
    /// kernel's array of followed processes (sized to `pid_max` at load:
    /// the limit was raised since).
    pub not_followed_map_full: u64,
    /// The target first, then the followed processes in the order their
    /// sections began.
    pub sections: Vec<ProcessSection>,
    /// Calls of followed processes past the sections kept.
    pub calls_without_section: Total,
    /// Every section's `totals` and `calls_without_section`, summed.
    pub total: Total,
}

#[derive(Clone, Debug, Serialize)]
pub struct ProcessSection {
    pub pid: u32,
    /// `None` for the target, and for a process whose fork was not seen.
    pub parent_pid: Option<u32>,
    /// The target's command; the comm at the fork; or the executed
    /// program's file name.
    pub command: Option<String>,
    /// The executed program's path (`began` `exec`).
    pub program: Option<String>,
    pub began: Began,
    /// Every call of the section (the target's: its program's calls and
    /// the runtime's idle waits together), by total time.
    pub syscalls: Vec<SyscallRow>,
    /// The sum of `syscalls`.
    pub totals: Total,
    pub threads: SectionThreads,
    pub end: SectionEndRow,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Began {
    /// The traced process itself.
    Target,
    Fork,
    Exec,
    /// Its first record was not its fork (lost to a full ring buffer).
    Unseen,
    /// A target given with `-p` beside the first.
    GivenPid,
    /// Its comm is a `--comm` name.
    Comm,
    /// It is in a `--cgroup`.
    Cgroup,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct SectionThreads {
    /// Threads started in the section (the process's first not counted).
    pub spawned: u64,
    pub peak: u64,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SectionEndRow {
    /// The last thread exited (`how`: as it did).
    Exited { how: Option<ThreadEnd> },
    /// The process executed another program: the next section of its pid.
    Executed,
    /// Still running when tracing stopped (left alone), or its end was not
    /// seen.
    Running,
}

fn rows(by: BTreeMap<u32, SyscallStats>) -> (Vec<SyscallRow>, Total) {
    let mut rows: Vec<SyscallRow> = by.iter().map(|(&n, s)| SyscallRow::new(n, s)).collect();
    rows.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(b.calls.cmp(&a.calls)));
    let total = rows.iter().fold(Total::default(), |t, r| Total {
        calls: t.calls + r.calls,
        errors: t.errors + r.errors,
        total_ns: t.total_ns.saturating_add(r.total_ns),
    });
    (rows, total)
}

/// Every call of a table, both waiters together.
fn all_calls(table: &SyscallTable) -> BTreeMap<u32, SyscallStats> {
    let mut by = table.by_syscall(Waiter::Program);
    for (n, s) in table.by_syscall(Waiter::RuntimeIdle) {
        by.entry(n).or_default().add(&s);
    }
    by
}

fn section(s: &Section) -> ProcessSection {
    let (syscalls, totals) = rows(all_calls(&s.syscalls));
    ProcessSection {
        pid: s.pid,
        parent_pid: s.parent_pid,
        command: s.command.clone(),
        program: s.program.clone(),
        began: match s.start {
            SectionStart::Fork => Began::Fork,
            SectionStart::Exec => Began::Exec,
            SectionStart::Unseen => Began::Unseen,
            SectionStart::Joined(JoinedBy::Pid) => Began::GivenPid,
            SectionStart::Joined(JoinedBy::Comm) => Began::Comm,
            SectionStart::Joined(JoinedBy::Cgroup) => Began::Cgroup,
        },
        syscalls,
        totals,
        threads: SectionThreads {
            spawned: s.threads_spawned,
            peak: s.threads_peak,
        },
        end: match s.end {
            Some(SectionEnd::Exited { how, .. }) => SectionEndRow::Exited { how: Some(how) },
            Some(SectionEnd::Executed { .. }) => SectionEndRow::Executed,
            None => SectionEndRow::Running,
        },
    }
}

impl Processes {
    /// `None` when there is nothing to say: following was off and the
    /// target forked no child.
    pub fn build(
        model: &Model,
        target: &super::TargetInfo,
        threads: &super::ThreadRow,
    ) -> Option<Self> {
        let c = &model.counters;
        let p = &model.processes;
        if !target.follow_forks && c.children_not_followed() == 0 && p.sections.is_empty() {
            return None;
        }
        let (syscalls, totals) = rows(all_calls(&model.syscalls));
        let mut sections = vec![ProcessSection {
            pid: target.pid,
            parent_pid: None,
            command: Some(target.command.clone()),
            program: None,
            began: Began::Target,
            syscalls,
            totals,
            threads: SectionThreads {
                spawned: threads.spawned,
                peak: threads.peak,
            },
            end: if target.exited {
                SectionEndRow::Exited { how: None }
            } else {
                SectionEndRow::Running
            },
        }];
        sections.extend(p.sections.iter().map(section));
        let without = Total {
            calls: p.calls_without_section,
            errors: p.errors_without_section,
            total_ns: p.ns_without_section,
        };
        let total = sections.iter().fold(without, |t, s| Total {
            calls: t.calls + s.totals.calls,
            errors: t.errors + s.totals.errors,
            total_ns: t.total_ns.saturating_add(s.totals.total_ns),
        });
        Some(Self {
            children_not_followed: c.children_not_followed(),
            not_followed_map_full: c.follow_map_full(),
            sections,
            calls_without_section: without,
            total,
        })
    }
}
