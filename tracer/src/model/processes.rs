//! The processes traced beside the target (followed with `-f`, or targets
//! beside the first: more `-p`, `--comm`, `--cgroup`): one section per
//! process and program (an exec starts a new section: another program,
//! another table), each with its syscall table, threads and end. The
//! target itself is not here: the rest of the model is about it.

use std::collections::HashMap;

use super::{
    ThreadEnd,
    event::JoinedBy,
    syscalls::{SyscallTable, Waiter},
};

/// Sections kept; past this many, calls of new processes are counted in
/// [`Processes::calls_without_section`] (a build forks a few hundred).
pub const MAX_SECTIONS: usize = 16_384;

/// How a section began.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionStart {
    /// The process was forked (it runs its parent's program).
    Fork,
    /// The process executed a new program.
    Exec,
    /// Its first event was not its fork (a fork record lost to a full ring
    /// buffer): parent and command unknown.
    Unseen,
    /// A target beside the first (more `-p`, `--comm`, `--cgroup`).
    Joined(JoinedBy),
}

/// One followed process running one program.
#[derive(Clone, Debug)]
pub struct Section {
    pub pid: u32,
    /// `None` when its fork was not seen.
    pub parent_pid: Option<u32>,
    /// The comm at the fork, or the executed program's file name.
    pub command: Option<String>,
    /// The executed program's path (`Exec` sections).
    pub program: Option<String>,
    pub start: SectionStart,
    pub started_ns: u64,
    pub syscalls: SyscallTable,
    /// Threads started in this section (the process's first not counted).
    pub threads_spawned: u64,
    pub threads_alive: u64,
    pub threads_peak: u64,
    /// How the section ended.
    pub end: Option<SectionEnd>,
    /// A thread called exit_group: the process's end is that, whichever
    /// thread exits last.
    exit_group_seen: bool,
}

/// How a section ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SectionEnd {
    /// The process's last thread exited, as it did (`exit_group`...).
    Exited { ts_ns: u64, how: ThreadEnd },
    /// The process executed another program (the next section).
    Executed { ts_ns: u64 },
}

impl Section {
    fn new(pid: u32, parent_pid: Option<u32>, start: SectionStart, ts_ns: u64) -> Self {
        Self {
            pid,
            parent_pid,
            command: None,
            program: None,
            start,
            started_ns: ts_ns,
            syscalls: SyscallTable::default(),
            threads_spawned: 0,
            threads_alive: 1,
            threads_peak: 1,
            end: None,
            exit_group_seen: false,
        }
    }
}

/// Every followed process's sections, in the order they began.
#[derive(Clone, Debug, Default)]
pub struct Processes {
    pub sections: Vec<Section>,
    /// pid → its current (last) section.
    current: HashMap<u32, usize>,
    /// Calls of processes past [`MAX_SECTIONS`].
    pub calls_without_section: u64,
    pub errors_without_section: u64,
    pub ns_without_section: u64,
}

impl Processes {
    /// The current section of `pid`, begun as `Unseen` when its fork was not
    /// seen; `None` past the cap.
    fn section(&mut self, pid: u32, ts_ns: u64) -> Option<&mut Section> {
        let index = match self.current.get(&pid) {
            Some(&i) => i,
            None => self.begin(Section::new(pid, None, SectionStart::Unseen, ts_ns))?,
        };
        self.sections.get_mut(index)
    }

    fn begin(&mut self, section: Section) -> Option<usize> {
        if self.sections.len() >= MAX_SECTIONS {
            return None;
        }
        let pid = section.pid;
        self.sections.push(section);
        let index = self.sections.len() - 1;
        self.current.insert(pid, index);
        Some(index)
    }

    pub fn fork(&mut self, parent_pid: u32, pid: u32, ts_ns: u64, command: &str) {
        let mut s = Section::new(pid, Some(parent_pid), SectionStart::Fork, ts_ns);
        s.command = Some(command.to_owned());
        // A pid seen again is a new process (the old one's end was missed).
        self.begin(s);
    }

    pub fn syscall(&mut self, pid: u32, ts_ns: u64, sysno: u32, ret: i64, duration_ns: u64) {
        let errors = u64::from((-4095..0).contains(&ret));
        match self.section(pid, ts_ns) {
            Some(s) => s.syscalls.record(Waiter::Program, sysno, ret, duration_ns),
            None => {
                self.calls_without_section += 1;
                self.errors_without_section += errors;
                self.ns_without_section = self.ns_without_section.saturating_add(duration_ns);
            }
        }
    }

    pub fn thread_spawn(&mut self, pid: u32, ts_ns: u64) {
        if let Some(s) = self.section(pid, ts_ns) {
            s.threads_spawned += 1;
            s.threads_alive += 1;
            s.threads_peak = s.threads_peak.max(s.threads_alive);
        }
    }

    pub fn thread_exit(&mut self, pid: u32, ts_ns: u64, how: ThreadEnd, last: bool) {
        let Some(s) = self.section(pid, ts_ns) else {
            return;
        };
        s.threads_alive = s.threads_alive.saturating_sub(1);
        s.exit_group_seen |= how == ThreadEnd::ExitGroup;
        if last {
            s.threads_alive = 0;
            let how = if s.exit_group_seen {
                ThreadEnd::ExitGroup
            } else {
                how
            };
            s.end = Some(SectionEnd::Exited { ts_ns, how });
            self.current.remove(&pid);
        }
    }

    /// `pid` became a target beside the first: its section begins here,
    /// unless one already has (a repeated announcement, or a fork seen).
    pub fn join(&mut self, pid: u32, ts_ns: u64, by: JoinedBy, command: &str) {
        if self.current.contains_key(&pid) {
            return;
        }
        let mut s = Section::new(pid, None, SectionStart::Joined(by), ts_ns);
        s.command = Some(command.to_owned());
        self.begin(s);
    }

    /// An exec ends the process's section and begins one for the new
    /// program (the exec'ing thread is the only one left).
    pub fn exec(&mut self, pid: u32, ts_ns: u64, program: &str) {
        let parent = match self.section(pid, ts_ns) {
            Some(s) => {
                s.end = Some(SectionEnd::Executed { ts_ns });
                s.threads_alive = 0;
                s.parent_pid
            }
            None => None,
        };
        let mut s = Section::new(pid, parent, SectionStart::Exec, ts_ns);
        let name = program.rsplit('/').next().unwrap_or(program);
        s.command = Some(name.to_owned());
        s.program = Some(program.to_owned());
        self.begin(s);
    }

    /// (calls, errors, total ns) over every section and the calls without
    /// one.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.sections.iter().fold(
            (
                self.calls_without_section,
                self.errors_without_section,
                self.ns_without_section,
            ),
            |(c, e, t), s| {
                let (sc, se, st) = s.syscalls.totals(None);
                (c + sc, e + se, t.saturating_add(st))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_then_exec_makes_two_sections_and_totals_add_up() {
        let mut p = Processes::default();
        p.fork(100, 200, 1, "sh");
        p.syscall(200, 2, 56, 0, 10); // the child's own calls as sh
        p.syscall(200, 3, 13, -4, 10);
        p.exec(200, 4, "/usr/bin/dd");
        for i in 0..5 {
            p.syscall(200, 5 + i, 0, 1, 100);
        }
        p.thread_spawn(200, 9);
        p.thread_spawn(200, 9);
        p.thread_exit(200, 10, ThreadEnd::ExitedItself, false);
        // The exit_group caller need not be the last thread out.
        p.thread_exit(200, 11, ThreadEnd::ExitGroup, false);
        p.thread_exit(200, 11, ThreadEnd::KilledWithProcess, true);
        assert_eq!(p.sections.len(), 2);
        let (sh, dd) = (&p.sections[0], &p.sections[1]);
        assert_eq!((sh.pid, sh.parent_pid), (200, Some(100)));
        assert_eq!(sh.command.as_deref(), Some("sh"));
        assert_eq!(sh.start, SectionStart::Fork);
        assert_eq!(sh.end, Some(SectionEnd::Executed { ts_ns: 4 }));
        assert_eq!(sh.syscalls.totals(None), (2, 1, 20));
        assert_eq!(dd.command.as_deref(), Some("dd"));
        assert_eq!(dd.program.as_deref(), Some("/usr/bin/dd"));
        assert_eq!(dd.parent_pid, Some(100));
        assert_eq!(dd.syscalls.totals(None), (5, 0, 500));
        assert_eq!((dd.threads_spawned, dd.threads_peak), (2, 3));
        assert_eq!(
            dd.end,
            Some(SectionEnd::Exited {
                ts_ns: 11,
                how: ThreadEnd::ExitGroup
            })
        );
        assert_eq!(p.totals(), (7, 1, 520));
    }

    #[test]
    fn a_process_whose_fork_was_not_seen_gets_a_section_anyway() {
        let mut p = Processes::default();
        p.syscall(7, 1, 0, 0, 5);
        assert_eq!(p.sections.len(), 1);
        assert_eq!(p.sections[0].start, SectionStart::Unseen);
        assert_eq!(p.sections[0].parent_pid, None);
        // A pid reused after its exit is a new section.
        p.thread_exit(7, 2, ThreadEnd::ExitGroup, true);
        p.fork(1, 7, 3, "x");
        p.syscall(7, 4, 0, 0, 5);
        assert_eq!(p.sections.len(), 2);
        assert_eq!(p.sections[1].syscalls.totals(None), (1, 0, 5));
    }

    #[test]
    fn a_joined_process_begins_its_section_once() {
        let mut p = Processes::default();
        p.join(40, 1, JoinedBy::Cgroup, "etcd");
        p.join(40, 2, JoinedBy::Cgroup, "etcd");
        p.syscall(40, 3, 0, 0, 5);
        assert_eq!(p.sections.len(), 1);
        let s = &p.sections[0];
        assert_eq!(
            (s.start, s.command.as_deref(), s.parent_pid),
            (SectionStart::Joined(JoinedBy::Cgroup), Some("etcd"), None)
        );
        assert_eq!(s.syscalls.totals(None), (1, 0, 5));
    }

    #[test]
    fn calls_past_the_cap_are_counted_in_the_totals() {
        let mut p = Processes::default();
        for pid in 0..MAX_SECTIONS as u32 + 3 {
            p.syscall(pid, 1, 0, -2, 10);
        }
        assert_eq!(p.sections.len(), MAX_SECTIONS);
        assert_eq!(p.calls_without_section, 3);
        assert_eq!(
            p.totals(),
            (
                MAX_SECTIONS as u64 + 3,
                MAX_SECTIONS as u64 + 3,
                10 * (MAX_SECTIONS as u64 + 3)
            )
        );
    }
}
