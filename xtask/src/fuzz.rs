//! `cargo xtask fuzz`: the cargo-fuzz targets in `fuzz/` (the binary and
//! record parsers), each run for a while from the committed seeds
//! (`fuzz/seeds/<target>`) plus the corpus it grew before
//! (`fuzz/corpus/<target>`, not committed). `cargo xtask test` runs each
//! for a few seconds from the seeds alone, as CI's fresh clone does. A
//! crash, a timeout or an oversized allocation fails the task; the input is
//! left in `fuzz/artifacts/<target>/`.

use std::{fs, path::Path, process::Command, time::Instant};

use anyhow::{Context as _, bail};

use crate::util::{root, step};

/// Every fuzz target (`fuzz/fuzz_targets/<name>.rs`).
pub const TARGETS: &[&str] = &[
    "gobinary",
    "pclntab_tables",
    "btf",
    "event_decode",
    "kallsyms",
    "recording",
];

/// Seconds per target in `cargo xtask test`.
pub const TEST_SECONDS: u64 = 6;

/// Where a run's new inputs go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corpus {
    /// `fuzz/corpus/<target>`, kept between runs and read at the start.
    Kept,
    /// A fresh directory under `target/xtask/`: the run starts from the
    /// seeds alone (the short run of `cargo xtask test`).
    Fresh,
}

/// libFuzzer's limits: an input taking this long is a hang, and one
/// allocation above this many MB (or a process above the RSS limit) is a
/// bug: every parser reads lengths from its input.
const TIMEOUT_SECONDS: u64 = 10;
const MALLOC_LIMIT_MB: u64 = 512;
const RSS_LIMIT_MB: u64 = 2048;

/// `cargo +nightly fuzz ...` from the workspace root, with the eBPF
/// programs stubbed (the parsers do not need them) and none of the
/// variables of the `cargo` that runs xtask (a stable one).
fn cargo_fuzz() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root())
        .args(["+nightly", "fuzz"])
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("TRACER_REQUIRE_EBPF")
        .env("RUSTUP_TOOLCHAIN", "nightly")
        .env("TRACER_EBPF_STUB", "1");
    cmd
}

/// What one target did: its name and the inputs it tried.
pub struct Outcome {
    pub target: String,
    pub executions: u64,
}

/// Builds the targets, then runs each of `targets` for `seconds`; fails
/// on the first crash.
pub fn run(targets: &[String], seconds: u64, corpus: Corpus) -> anyhow::Result<Vec<Outcome>> {
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!("no fuzz target `{t}` (the targets: {})", TARGETS.join(", "));
        }
    }
    step("building the fuzz targets (cargo +nightly fuzz build)");
    crate::util::run(cargo_fuzz().arg("build"))?;
    let mut outcomes = Vec::new();
    for t in targets {
        outcomes.push(run_one(t, seconds, corpus)?);
    }
    let total: u64 = outcomes.iter().map(|o| o.executions).sum();
    step(&format!(
        "fuzzing: {} inputs tried in all, no crash ({})",
        total,
        outcomes
            .iter()
            .map(|o| format!("{} {}", o.target, o.executions))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    Ok(outcomes)
}

fn run_one(target: &str, seconds: u64, kind: Corpus) -> anyhow::Result<Outcome> {
    let fuzz = root().join("fuzz");
    let corpus = match kind {
        Corpus::Kept => fuzz.join("corpus").join(target),
        Corpus::Fresh => {
            let dir = root().join("target/xtask/fuzz-corpus").join(target);
            let _ = fs::remove_dir_all(&dir);
            dir
        }
    };
    let seeds = fuzz.join("seeds").join(target);
    fs::create_dir_all(&corpus)?;
    let log_dir = root().join("target/xtask");
    fs::create_dir_all(&log_dir)?;
    let log = log_dir.join(format!("fuzz-{target}.log"));
    step(&format!("fuzzing {target} for {seconds} s"));
    let started = Instant::now();
    let out = cargo_fuzz()
        .args(["run", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={TIMEOUT_SECONDS}"))
        .arg(format!("-malloc_limit_mb={MALLOC_LIMIT_MB}"))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg("-print_final_stats=1")
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run cargo fuzz for {target}"))?;
    let seconds = started.elapsed().as_secs_f64();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    fs::write(&log, &text)?;
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        for line in tail.iter().rev() {
            eprintln!("  {line}");
        }
        bail!(
            "fuzz target {target} failed ({}): the input is in {}, the whole output in {}",
            out.status,
            fuzz.join("artifacts").join(target).display(),
            log.display()
        );
    }
    let executions = stat(&text, "number_of_executed_units").with_context(|| {
        format!(
            "{target}: libFuzzer printed no final stats ({})",
            log.display()
        )
    })?;
    let new_units = stat(&text, "new_units_added").unwrap_or(0);
    step(&format!(
        "ok: {target}: {executions} inputs in {seconds:.0} s ({new_units} new in {}), no crash",
        short(&corpus)
    ));
    Ok(Outcome {
        target: target.to_owned(),
        executions,
    })
}

/// A `stat::NAME: N` line of libFuzzer's final stats.
fn stat(output: &str, name: &str) -> Option<u64> {
    output.lines().find_map(|l| {
        l.trim()
            .strip_prefix("stat::")?
            .strip_prefix(name)?
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
    })
}

fn short(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_stats() {
        let out = "#65536\tpulse  cov: 35\nDone 1196558 runs in 6 second(s)\n\
                   stat::number_of_executed_units: 1196558\n\
                   stat::average_exec_per_sec:     199426\n\
                   stat::new_units_added:          12\n";
        assert_eq!(stat(out, "number_of_executed_units"), Some(1_196_558));
        assert_eq!(stat(out, "new_units_added"), Some(12));
        assert_eq!(stat(out, "peak_rss_mb"), None);
    }

    #[test]
    fn every_target_has_a_source_and_seeds() {
        for t in TARGETS {
            let fuzz = root().join("fuzz");
            assert!(fuzz.join(format!("fuzz_targets/{t}.rs")).is_file(), "{t}");
            let seeds = fs::read_dir(fuzz.join("seeds").join(t)).unwrap().count();
            assert!(seeds > 0, "{t} has no seeds");
        }
    }
}
