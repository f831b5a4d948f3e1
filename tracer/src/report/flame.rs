//! Flame graphs of a recording (`tracer report --format folded|flamegraph`):
//! stacks folded as Brendan Gregg's `stackcollapse` tools write them, one
//! line per distinct stack, `outermost;caller;...;leaf weight`, and the
//! SVG the `inferno` crate draws from those lines.
//!
//! Two views ([`FlameView`]):
//! - `blocking`: the calls the report lists one by one (its `blocking`
//!   rows: at least `--slow`, or they lost their P), by Go stack; the leaf
//!   is the syscall, `nanosleep [P lost]` when the runtime handed the
//!   goroutine's P to another thread during the call; the weight is
//!   nanoseconds in the call. The weights add up to the rows' `total_ns`.
//! - `spawns`: the threads started while traced, by the runtime stack that
//!   asked for them (`newm`); the leaf is the cause as the report's
//!   `threads_by_cause` labels it; the weight is threads. They add up to
//!   `threads_by_cause.total`.
//!
//! A call or spawn without a stack (not a Go program, a program the process
//! executed later, an unreadable stack) is under [`UNKNOWN_STACK`], so the
//! weights still add up.

use std::{
    collections::{BTreeMap, HashMap},
    io::{self, Write},
};

use crate::{
    analysis::{sites::SiteNames, spawns::cause_of},
    gobin::symbolize::{Frame, Symbolizer},
    model::{Model, PHandoff},
    report::TargetInfo,
    syscall_names, units,
};

/// What a flame graph weighs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FlameView {
    /// Nanoseconds blocked in the calls the report lists (slow, or that
    /// lost their P), by Go stack; the leaf is the syscall, `read [P lost]`
    /// when the runtime handed the goroutine's P to another thread.
    #[default]
    Blocking,
    /// Threads started, by the runtime stack that asked for them; the leaf
    /// is the cause.
    Spawns,
}

/// The frame of a call or spawn whose stack is not known.
pub const UNKNOWN_STACK: &str = "[unknown stack]";
/// Marks the syscall leaf of a call during which its P was taken.
pub const P_LOST: &str = "[P lost]";
/// The one frame of the spawns the model counted but did not keep.
pub const SPAWNS_NOT_KEPT: &str = "[spawns not kept]";

/// Weighted stacks, each outermost frame first: the folded lines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Folded {
    stacks: BTreeMap<Vec<String>, u64>,
}

impl Folded {
    /// Adds `weight` to `stack` (outermost frame first). Each frame is
    /// made safe for the format (no `;`, no line breaks); a weight of 0
    /// adds nothing.
    pub fn add(&mut self, stack: impl IntoIterator<Item = String>, weight: u64) {
        if weight == 0 {
            return;
        }
        let stack: Vec<String> = stack.into_iter().map(|f| clean_frame(&f)).collect();
        let w = self.stacks.entry(stack).or_default();
        *w = w.saturating_add(weight);
    }

    /// The sum of the weights.
    pub fn total(&self) -> u64 {
        self.stacks.values().fold(0, |a, &w| a.saturating_add(w))
    }

    pub fn is_empty(&self) -> bool {
        self.stacks.is_empty()
    }

    /// The stacks and their weights, sorted by stack.
    pub fn stacks(&self) -> impl Iterator<Item = (&[String], u64)> {
        self.stacks.iter().map(|(s, &w)| (s.as_slice(), w))
    }

    /// The folded lines, `outermost;...;leaf weight`, sorted.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.stacks
            .iter()
            .map(|(stack, w)| format!("{} {w}", stack.join(";")))
    }

    /// Writes the folded lines, one per stack.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        for line in self.lines() {
            writeln!(out, "{line}")?;
        }
        Ok(())
    }

    /// Draws the stacks as an SVG flame graph titled by `titles`.
    pub fn write_svg(&self, titles: &Titles, out: &mut dyn Write) -> io::Result<()> {
        if self.is_empty() {
            // inferno would draw an error picture and fail without saying
            // which input was empty.
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no stacks to draw",
            ));
        }
        let mut options = inferno::flamegraph::Options::default();
        options.title = titles.title.clone();
        options.subtitle = Some(titles.subtitle.clone());
        options.count_name = titles.count_name.to_owned();
        // A frame's colour follows its name: the same function has the
        // same colour in every graph, and the output is reproducible.
        options.hash = true;
        let lines: Vec<String> = self.lines().collect();
        inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), out)
    }
}

/// A frame name as the folded format can hold it: `;` separates frames
/// and a line break ends the stack, so neither may appear in one.
fn clean_frame(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            ';' => ':',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect();
    if cleaned.trim().is_empty() {
        "?".to_owned()
    } else {
        cleaned
    }
}

/// The frames of `stack` (innermost first, as the symbolizer gives them)
/// outermost first, then `leaf`; [`UNKNOWN_STACK`] when it is empty.
fn outermost_first(stack: &[Frame], leaf: String) -> Vec<String> {
    let mut out: Vec<String> = if stack.is_empty() {
        vec![UNKNOWN_STACK.to_owned()]
    } else {
        stack.iter().rev().map(|f| f.function.clone()).collect()
    };
    out.push(leaf);
    out
}

/// The blocking view's calls, by raw stack, before symbolizing: a
/// recording's stacks can be symbolized only once it is read whole.
#[derive(Clone, Debug, Default)]
pub struct BlockingCalls {
    nanoseconds: HashMap<RawCall, u64>,
}

/// What the blocking view tells calls apart by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RawCall {
    sysno: u32,
    p_lost: bool,
    /// Program counters, innermost first (a syscall stack); `None` when
    /// they are not the symbolized binary's.
    frames: Option<Vec<u64>>,
}

impl BlockingCalls {
    /// Adds one call the report lists (see [`Model::lists`]): `frames`,
    /// innermost first, is `None` when they are another program's (made
    /// after an exec).
    pub fn add(&mut self, sysno: u32, p: PHandoff, duration_ns: u64, frames: Option<&[u64]>) {
        let key = RawCall {
            sysno,
            p_lost: p == PHandoff::Lost,
            frames: frames.map(<[u64]>::to_vec),
        };
        let ns = self.nanoseconds.entry(key).or_default();
        *ns = ns.saturating_add(duration_ns);
    }

    /// The calls folded by symbolized stack (`sym`: `None` for a program
    /// that is not Go), the syscall as leaf.
    pub fn fold(&self, sym: Option<&Symbolizer>) -> Folded {
        let mut folded = Folded::default();
        for (call, &ns) in &self.nanoseconds {
            let stack = match (sym, &call.frames) {
                (Some(sym), Some(frames)) => sym.syscall_stack(frames),
                _ => Vec::new(),
            };
            let name = syscall_names::name(call.sysno);
            let leaf = if call.p_lost {
                format!("{name} {P_LOST}")
            } else {
                name
            };
            folded.add(outermost_first(&stack, leaf), ns);
        }
        folded
    }
}

/// The spawns view of a finished model: each kept spawn under the stack of
/// the runtime's request for its thread, its cause as leaf; the spawns
/// not kept under [`SPAWNS_NOT_KEPT`].
pub fn spawn_stacks(model: &Model, sym: Option<&Symbolizer>) -> Folded {
    let mut names = SiteNames::new(model, sym);
    let mut folded = Folded::default();
    for spawn in model.threads.spawns.iter() {
        let cause = cause_of(spawn, model, sym, &mut names);
        let stack = match (sym, spawn.request()) {
            (Some(sym), Some(request)) => sym.entry_stack(&request.frames),
            _ => Vec::new(),
        };
        folded.add(outermost_first(&stack, cause.label()), 1);
    }
    folded.add([SPAWNS_NOT_KEPT.to_owned()], model.threads.spawns.dropped);
    folded
}

/// What a flame graph says of itself: the target, and what the widths
/// weigh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Titles {
    pub title: String,
    pub subtitle: String,
    /// The unit of a weight, shown with each frame's.
    pub count_name: &'static str,
}

impl Titles {
    /// `slow_ns`: the recording's `--slow`; `total`: the weights' sum.
    pub fn new(view: FlameView, target: &TargetInfo, slow_ns: u64, total: u64) -> Self {
        let who = format!("{} (pid {})", target.command, target.pid);
        match view {
            FlameView::Blocking => Self {
                title: format!("Blocking in syscalls: {who}"),
                // Short enough for the default 1200 px width.
                subtitle: format!(
                    "width: ns in calls of {} or more or that lost their P ({} in all); \
                     leaf: the syscall, {P_LOST}: its P went to another thread",
                    units::human_ns(slow_ns),
                    units::human_ns(total),
                ),
                count_name: "ns",
            },
            FlameView::Spawns => Self {
                title: format!("Thread spawns: {who}"),
                subtitle: format!(
                    "width: threads started while traced ({total} in all), by the runtime \
                     stack that asked for them; leaf: the cause"
                ),
                count_name: "threads",
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        gobin::symbolize::testing::{TEXT, ret, symbolizer},
        model::{Event, RawFd, TakenFlags, event::MState},
    };

    const FUNCTIONS: &[&str] = &[
        "syscall.Syscall6",
        "syscall.Nanosleep",
        "main.sleeper",
        "runtime.goexit",
        "main.reader",
    ];

    /// A syscall stack: the syscall instruction in function `inner`, then
    /// return addresses into `callers`.
    fn frames(inner: usize, callers: &[usize]) -> Vec<u64> {
        let mut v = vec![TEXT + 0x40 * inner as u64 + 4];
        v.extend(callers.iter().map(|&c| ret(c)));
        v
    }

    #[test]
    fn stacks_are_outermost_first_with_the_syscall_as_leaf() {
        let sym = symbolizer(FUNCTIONS);
        let mut calls = BlockingCalls::default();
        let sleeper = frames(0, &[1, 2, 3]);
        calls.add(35, PHandoff::Kept, 2_000_000, Some(&sleeper));
        calls.add(35, PHandoff::Kept, 3_000_000, Some(&sleeper));
        let folded = calls.fold(Some(&sym));
        let lines: Vec<String> = folded.lines().collect();
        assert_eq!(
            lines,
            ["runtime.goexit;main.sleeper;syscall.Nanosleep;syscall.Syscall6;nanosleep 5000000"]
        );
    }

    #[test]
    fn a_call_that_lost_its_p_has_its_own_marked_leaf() {
        let sym = symbolizer(FUNCTIONS);
        let mut calls = BlockingCalls::default();
        let sleeper = frames(0, &[1, 2, 3]);
        calls.add(35, PHandoff::Kept, 1_500_000, Some(&sleeper));
        calls.add(35, PHandoff::Lost, 20_000_000, Some(&sleeper));
        calls.add(35, PHandoff::Lost, 21_000_000, Some(&sleeper));
        // Only Lost is a P taken during the call.
        calls.add(35, PHandoff::RuntimeBlocked, 7, Some(&sleeper));
        let folded = calls.fold(Some(&sym));
        let leaves: Vec<(&str, u64)> = folded
            .stacks()
            .map(|(s, w)| (s.last().unwrap().as_str(), w))
            .collect();
        assert_eq!(
            leaves,
            [("nanosleep", 1_500_007), ("nanosleep [P lost]", 41_000_000)]
        );
        for (stack, _) in folded.stacks() {
            assert_eq!(stack[..2], ["runtime.goexit", "main.sleeper"]);
        }
    }

    #[test]
    fn calls_without_a_stack_are_under_unknown_and_still_weigh() {
        let sym = symbolizer(FUNCTIONS);
        let mut calls = BlockingCalls::default();
        // Another program's stack (after an exec), an address outside the
        // binary, and a program that is not Go.
        calls.add(0, PHandoff::Unknown, 4_000, None);
        calls.add(0, PHandoff::Unknown, 5_000, Some(&[0x10, 0x20]));
        let folded = calls.fold(Some(&sym));
        let lines: Vec<String> = folded.lines().collect();
        assert_eq!(lines, ["[unknown stack];read 9000"]);
        let not_go = calls.fold(None);
        assert_eq!(not_go, folded);
    }

    #[test]
    fn the_weights_add_up_to_the_durations_of_the_calls() {
        let sym = symbolizer(FUNCTIONS);
        let mut calls = BlockingCalls::default();
        let mut sum = 0;
        for i in 0..200u64 {
            let duration = 1_000_000 + i * 7_919;
            let p = if i % 3 == 0 {
                PHandoff::Lost
            } else {
                PHandoff::Kept
            };
            let stack = match i % 4 {
                0 => Some(frames(0, &[1, 2, 3])),
                1 => Some(frames(0, &[4, 3])),
                2 => Some(vec![0x10]),
                _ => None,
            };
            calls.add([0, 35, 7][i as usize % 3], p, duration, stack.as_deref());
            sum += duration;
        }
        let folded = calls.fold(Some(&sym));
        assert_eq!(folded.total(), sum);
        let from_lines: u64 = folded
            .lines()
            .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
            .sum();
        assert_eq!(from_lines, sum);
    }

    #[test]
    fn frames_cannot_break_the_format() {
        let mut folded = Folded::default();
        folded.add(["a;b".to_owned(), "c\nd".to_owned(), " ".to_owned()], 3);
        folded.add(["x".to_owned()], 0);
        let lines: Vec<String> = folded.lines().collect();
        assert_eq!(lines, ["a:b;c d;? 3"]);
    }

    /// The blocking view holds what the report's rows hold, to the
    /// nanosecond, when fed as `tracer report` feeds it.
    #[test]
    fn the_blocking_view_adds_up_to_the_report_s_rows() {
        let sym = symbolizer(FUNCTIONS);
        let mut model = Model::new(1);
        model.runtime.launched_by_exec = true;
        let call = |sysno, ret, duration_ns, p, frames| Event::SlowCall {
            tid: 4,
            ts_ns: 50_000_000,
            sysno,
            ret,
            duration_ns,
            goid: 9,
            p,
            cgo: false,
            taken: TakenFlags::default(),
            p_id: Some(0),
            fd: RawFd::default(),
            frames,
        };
        let events = [
            Event::Exec {
                tid: 4,
                ts_ns: 1,
                program: "/bin/sleeper".into(),
            },
            // The launch itself: counted, never listed.
            call(59, 0, 3_000_000, PHandoff::Unknown, Vec::new()),
            call(35, 0, 20_000_000, PHandoff::Lost, frames(0, &[1, 2, 3])),
            call(35, 0, 2_000_000, PHandoff::Kept, frames(0, &[1, 2, 3])),
            call(0, 5, 1_200_000, PHandoff::Kept, frames(0, &[4, 3])),
            call(0, 5, 1_300_000, PHandoff::Kept, Vec::new()),
        ];
        let mut calls = BlockingCalls::default();
        for e in &events {
            if model.lists(e)
                && let Event::SlowCall {
                    sysno,
                    p,
                    duration_ns,
                    frames,
                    ..
                } = e
            {
                calls.add(*sysno, *p, *duration_ns, Some(frames));
            }
            model.apply(e);
        }
        let folded = calls.fold(Some(&sym));
        let facts = crate::facts::Facts::default();
        let cx = crate::analysis::Context {
            sym: Some(&sym),
            attribution: true,
            fops: None,
            facts: &facts,
            traced_seconds: 1.0,
        };
        let analysis = crate::analysis::analyze(&model, &cx);
        let rows_ns: u64 = analysis.blocking.iter().map(|r| r.total_ns).sum();
        assert_eq!(rows_ns, 24_500_000);
        assert_eq!(folded.total(), rows_ns);
        assert!(folded.lines().all(|l| !l.contains("execve")));
    }

    #[test]
    fn spawns_are_folded_by_the_runtime_s_request_with_the_cause_as_leaf() {
        const STARTM: usize = 0;
        const WAKEP: usize = 1;
        const GOEXIT: usize = 2;
        let sym = symbolizer(&["runtime.startm", "runtime.wakep", "runtime.goexit"]);
        let mut model = Model::new(1);
        model.apply(&Event::MainStart {
            tid: 1,
            ts_ns: 10,
            values: Default::default(),
        });
        for new in [21, 22] {
            for start in [false, true] {
                model.apply(&Event::NewM {
                    tid: 3,
                    ts_ns: 100,
                    start,
                    m: MState::default(),
                    frames: vec![ret(STARTM), ret(WAKEP), ret(GOEXIT)],
                });
            }
            model.apply(&Event::ThreadSpawn {
                parent_tid: 3,
                tid: new,
                ts_ns: 101,
            });
        }
        // No runtime record: C code's thread, or the record was lost.
        model.apply(&Event::ThreadSpawn {
            parent_tid: 7,
            tid: 31,
            ts_ns: 200,
        });
        let folded = spawn_stacks(&model, Some(&sym));
        let lines: Vec<String> = folded.lines().collect();
        assert_eq!(
            lines,
            [
                "[unknown stack];unknown (no runtime record) 1",
                "runtime.goexit;runtime.wakep;runtime.startm;\
                 runnable goroutines, no idle thread (spinning M) 2",
            ]
        );
        assert_eq!(folded.total(), model.threads.spawned);
    }

    #[test]
    fn the_svg_names_the_target_the_weight_and_the_frames() {
        let mut folded = Folded::default();
        folded.add(
            ["main.sleeper".to_owned(), format!("nanosleep {P_LOST}")],
            20_000_000,
        );
        let target = TargetInfo::finished_run(77, "sleeper");
        let titles = Titles::new(FlameView::Blocking, &target, 1_000_000, folded.total());
        let mut svg = Vec::new();
        folded.write_svg(&titles, &mut svg).unwrap();
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.starts_with("<?xml"), "{}", &svg[..100]);
        for needle in [
            "Blocking in syscalls: sleeper (pid 77)",
            "main.sleeper",
            "nanosleep [P lost]",
            "20,000,000 ns",
        ] {
            assert!(svg.contains(needle), "no {needle:?} in the SVG");
        }
        let err = Folded::default().write_svg(&titles, &mut Vec::new());
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
