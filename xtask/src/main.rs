//! Project tasks: `cargo xtask setup|build|test|fuzz|demo|bench`.
//! Every task that needs tools runs `setup` first, so each one works on a
//! fresh machine.

mod bench;
mod fuzz;
mod go;
mod setup;
mod util;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use setup::GoMatrix;

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what a fresh machine lacks (idempotent; fast when complete).
    Setup {
        /// Install every supported Go release, not only the default set.
        #[arg(long)]
        full: bool,
    },
    /// Set up, then build the tracer and its eBPF programs (release).
    Build,
    /// Set up, build, and run every test: unit and privileged integration,
    /// then each fuzz target for a few seconds (not with a test filter).
    Test {
        /// Test with every supported Go release (1.19, 1.21-1.27), not only
        /// the default set (1.19, 1.21, 1.23, 1.25, 1.26, 1.27).
        #[arg(long)]
        full: bool,
        /// The long variants: the soak for ten minutes instead of one, the
        /// stress matrix for 20 rounds on every toolchain installed.
        #[arg(long)]
        long: bool,
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the parsers' fuzz targets (`fuzz/`), from the committed seeds:
    /// every target, or the one named. A crash fails the task.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Start from the committed seeds alone, leaving the corpus the
        /// targets grew before (`fuzz/corpus/`) aside, as `test` does.
        #[arg(long)]
        fresh: bool,
        /// One of: gobinary, pclntab_tables, btf, event_decode, kallsyms,
        /// recording.
        target: Option<String>,
    },
    /// Set up, build, and trace the bundled Go demo workload.
    Demo,
    /// Set up, build, and time the syscall storm untraced, under the tracer,
    /// under the empty-probe floor and under bpftrace, as ratios.
    Bench {
        /// Alternating rounds (the median of each mode is reported).
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// pread calls per goroutine.
        #[arg(long, default_value_t = 500_000)]
        calls: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup { full } => setup::run(matrix(full)).map(drop),
        Task::Build => setup::run(GoMatrix::Default).and_then(|_| build()),
        Task::Test { full, long, args } => {
            setup::run(matrix(full)).and_then(|tools| test(&tools, long, &args))
        }
        Task::Fuzz {
            seconds,
            fresh,
            target,
        } => setup::fuzz_tools().and_then(|()| {
            let targets = match target {
                Some(t) => vec![t],
                None => fuzz::TARGETS.iter().map(|t| (*t).to_owned()).collect(),
            };
            let corpus = if fresh {
                fuzz::Corpus::Fresh
            } else {
                fuzz::Corpus::Kept
            };
            fuzz::run(&targets, seconds, corpus).map(drop)
        }),
        Task::Demo => setup::run(GoMatrix::Default).and_then(|tools| demo(&tools)),
        Task::Bench { rounds, calls } => setup::run(GoMatrix::Default)
            .and_then(|tools| build().and_then(|()| bench::run(&tools, rounds, calls))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn matrix(full: bool) -> GoMatrix {
    if full {
        GoMatrix::Full
    } else {
        GoMatrix::Default
    }
}

fn build() -> anyhow::Result<()> {
    util::step("building the tracer (release)");
    util::run(util::cargo().args(["build", "--release", "--package", "tracer"]))
}

fn test(tools: &setup::Tools, long: bool, args: &[String]) -> anyhow::Result<()> {
    util::step("running every test (unit + privileged integration)");
    let mut cmd = util::cargo();
    cmd.arg("test").args(args);
    tools.export(&mut cmd);
    cmd.env("TRACER_TEST_LONG", if long { "1" } else { "0" });
    util::run(&mut cmd)?;
    // A filtered run is someone after one test: no fuzzing then.
    if !args.is_empty() {
        return Ok(());
    }
    util::step(&format!(
        "a short fuzz run: each target for {} s",
        fuzz::TEST_SECONDS
    ));
    let targets: Vec<String> = fuzz::TARGETS.iter().map(|t| (*t).to_owned()).collect();
    fuzz::run(&targets, fuzz::TEST_SECONDS, fuzz::Corpus::Fresh).map(drop)
}

fn demo(tools: &setup::Tools) -> anyhow::Result<()> {
    build()?;
    let dir = util::root().join("target/xtask");
    let demo = go::build(
        &tools.go_newest().context("no Go toolchain")?.1,
        "demo",
        &dir,
    )?;
    util::step("tracing the demo workload: target/release/tracer run -- demo");
    util::run(
        std::process::Command::new(util::root().join("target/release/tracer"))
            .args(["run", "--"])
            .arg(demo),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_and_long_are_flags_before_the_test_arguments() {
        let cli = Cli::try_parse_from([
            "xtask",
            "test",
            "--full",
            "--long",
            "goruntime::",
            "--nocapture",
        ])
        .unwrap();
        let Task::Test { full, long, args } = cli.task else {
            panic!("not the test task");
        };
        assert!(full && long);
        assert_eq!(args, ["goruntime::", "--nocapture"]);
        let cli = Cli::try_parse_from(["xtask", "test", "gobin::"]).unwrap();
        assert!(matches!(
            cli.task,
            Task::Test {
                full: false,
                long: false,
                ..
            }
        ));
    }

    #[test]
    fn fuzz_takes_seconds_and_a_target() {
        let cli = Cli::try_parse_from(["xtask", "fuzz", "--seconds", "5", "btf"]).unwrap();
        let Task::Fuzz {
            seconds,
            fresh,
            target,
        } = cli.task
        else {
            panic!("not the fuzz task");
        };
        assert_eq!((seconds, fresh, target.as_deref()), (5, false, Some("btf")));
        let cli = Cli::try_parse_from(["xtask", "fuzz", "--fresh"]).unwrap();
        assert!(matches!(
            cli.task,
            Task::Fuzz {
                seconds: 60,
                fresh: true,
                target: None
            }
        ));
    }
}
