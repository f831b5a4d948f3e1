//! Flame graphs of a recording (`tracer report --format folded|flamegraph`).
//! The workload is sleeper.go with 16 goroutines x 10 sleeps of 20 ms from
//! main.sleeper: 160 nanosleep, each slow, most losing their P (2 CPUs, 16
//! goroutines: sysmon retakes the Ps of the sleeping ones). One recording:
//! - the folded blocking time adds up, to the nanosecond, to the report's
//!   `blocking` rows (the calls it lists), and main.sleeper's share to its
//!   nanosleep rows; that share is at least the sleeps' 20 ms each;
//! - the spawns view adds up to `threads_by_cause`, cause by cause;
//! - the SVG names the target and the frames, and headless Chromium draws
//!   it: the screenshot has the flame graph's colours over a real area.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::PoisonError,
    time::Duration,
};

use serde_json::Value;

use crate::{skip_unless, support::*};

const GOROUTINES: u64 = 16;
const SLEEPS_EACH: u64 = 10;
const SLEEP_NS: u64 = 20_000_000;

/// A folded line: its frames (outermost first) and its weight.
struct Line {
    frames: Vec<String>,
    weight: u64,
}

impl Line {
    fn parse(line: &str) -> Self {
        let (stack, weight) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no weight in folded line {line:?}"));
        Self {
            frames: stack.split(';').map(str::to_owned).collect(),
            weight: weight
                .parse()
                .unwrap_or_else(|e| panic!("weight of {line:?}: {e}")),
        }
    }

    fn leaf(&self) -> &str {
        self.frames.last().map_or("", String::as_str)
    }

    fn has(&self, function: &str) -> bool {
        self.frames.iter().any(|f| f == function)
    }
}

fn succeeded(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `tracer report RECORDING --format FORMAT [EXTRA...] -o OUT`: what it
/// wrote.
fn report_file(recording: &Path, format: &str, extra: &[&str], out: &Path) -> String {
    let run = tracer()
        .arg("report")
        .arg(recording)
        .args(["--format", format])
        .args(extra)
        .arg("-o")
        .arg(out)
        .output()
        .expect("run tracer report");
    succeeded(&run, &format!("tracer report --format {format} {extra:?}"));
    std::fs::read_to_string(out).unwrap_or_else(|e| panic!("{}: {e}", out.display()))
}

fn folded(recording: &Path, view: &str, dir: &Path) -> Vec<Line> {
    let out = dir.join(format!("{view}.folded"));
    let text = report_file(recording, "folded", &["--view", view], &out);
    text.lines().map(Line::parse).collect()
}

fn sum(lines: &[Line]) -> u64 {
    lines.iter().map(|l| l.weight).sum()
}

/// The report's total of the calls it lists one by one: its `blocking`
/// rows' `total_ns`.
fn blocking_ns(report: &Value, keep: impl Fn(&Value) -> bool) -> u64 {
    rows(&report["blocking"], "blocking")
        .iter()
        .filter(|r| keep(r))
        .map(|r| u64_at(r, "total_ns"))
        .sum()
}

#[test]
fn folded_stacks_add_up_to_the_report_and_chromium_draws_the_svg() {
    skip_unless!(cannot_trace_go());
    let chromium = chromium();
    let _guard = PROBES.read().unwrap_or_else(PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("sleeper.rec");
    let run = tracer()
        .args(["record", "-o"])
        .arg(&recording)
        .arg("--")
        .arg(go_workload("sleeper"))
        .args([
            "-g",
            &GOROUTINES.to_string(),
            "-n",
            &SLEEPS_EACH.to_string(),
        ])
        .args(["-ms", &(SLEEP_NS / 1_000_000).to_string()])
        .output()
        .expect("run tracer record");
    succeeded(&run, "tracer record");
    let json = dir.path().join("report.json");
    report_file(&recording, "json", &[], &json);
    let report = read_report(&json);

    // Blocking: every listed call, to the nanosecond.
    let blocking = folded(&recording, "blocking", dir.path());
    let listed = blocking_ns(&report, |_| true);
    eprintln!(
        "folded blocking total {} ns, report blocking rows {listed} ns, {} stacks",
        sum(&blocking),
        blocking.len()
    );
    assert!(listed > 0, "no blocking rows: {:#}", report["blocking"]);
    assert_eq!(sum(&blocking), listed);

    // main.sleeper's sleeps: the same share as its rows; at least 20 ms
    // each unless a signal cut it short (EINTR), at most one goroutine's
    // whole trace each.
    let is_sleep = |l: &&Line| l.has("main.sleeper") && l.leaf().starts_with("nanosleep");
    let sleeps: Vec<&Line> = blocking.iter().filter(is_sleep).collect();
    let at_sleeper = |r: &Value| r["syscall"] == "nanosleep" && site_fn(r) == "main.sleeper";
    let sleeper_ns = blocking_ns(&report, at_sleeper);
    let folded_sleeper_ns: u64 = sleeps.iter().map(|l| l.weight).sum();
    assert_eq!(folded_sleeper_ns, sleeper_ns);
    let (calls, interrupted) = rows(&report["blocking"], "blocking")
        .iter()
        .filter(|r| at_sleeper(r))
        .fold((0, 0), |(c, i), r| {
            let eintr: u64 = rows(&r["errors"], "errors")
                .iter()
                .filter(|e| e["errno"] == "EINTR")
                .map(|e| u64_at(e, "calls"))
                .sum();
            (c + u64_at(r, "calls"), i + eintr)
        });
    assert!(calls <= GOROUTINES * SLEEPS_EACH, "{calls} sleeps listed");
    assert!(
        folded_sleeper_ns >= (calls - interrupted) * SLEEP_NS,
        "{folded_sleeper_ns} ns for {calls} sleeps ({interrupted} interrupted)"
    );
    let traced_ns = (report["traced_seconds"].as_f64().unwrap() * 1e9) as u64;
    assert!(folded_sleeper_ns <= GOROUTINES * traced_ns);
    // Outermost first: main.sleeper calls syscall.Nanosleep.
    for line in &sleeps {
        let at = |f: &str| line.frames.iter().position(|x| x == f);
        assert!(
            matches!(
                (at("main.sleeper"), at("syscall.Nanosleep")),
                (Some(caller), Some(callee)) if caller < callee
            ),
            "{:?}",
            line.frames
        );
    }
    let p_lost: u64 = sleeps
        .iter()
        .filter(|l| l.leaf() == "nanosleep [P lost]")
        .map(|l| l.weight)
        .sum();
    eprintln!("main.sleeper: {folded_sleeper_ns} ns in {calls} sleeps, {p_lost} ns of it P lost");
    assert!(p_lost > 0, "no sleep lost its P");
    assert!(
        sleeps
            .iter()
            .all(|l| matches!(l.leaf(), "nanosleep" | "nanosleep [P lost]")),
        "leaves: {:?}",
        sleeps.iter().map(|l| l.leaf()).collect::<Vec<_>>()
    );

    // Spawns: cause by cause, as the report counts them.
    let spawns = folded(&recording, "spawns", dir.path());
    let causes = &report["threads_by_cause"];
    assert_eq!(sum(&spawns), u64_at(causes, "total"));
    assert!(sum(&spawns) > 0, "no spawn in {causes:#}");
    let mut by_leaf: BTreeMap<String, u64> = BTreeMap::new();
    for l in &spawns {
        *by_leaf.entry(l.leaf().to_owned()).or_default() += l.weight;
    }
    let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
    for r in rows(&causes["rows"], "threads_by_cause.rows") {
        let label = r["label"].as_str().unwrap().to_owned();
        *by_label.entry(label).or_default() += u64_at(r, "threads");
    }
    let not_kept = u64_at(causes, "not_kept");
    if not_kept > 0 {
        by_label.insert("[spawns not kept]".into(), not_kept);
    }
    assert_eq!(by_leaf, by_label);

    // The SVG: the target in the title, the frames, and drawn.
    let svg_path = dir.path().join("blocking.svg");
    let svg = report_file(&recording, "flamegraph", &[], &svg_path);
    let target = &report["target"];
    let title = format!(
        "Blocking in syscalls: {} (pid {})",
        target["command"].as_str().unwrap(),
        target["pid"]
    );
    for needle in [&title, "main.sleeper", "nanosleep [P lost]", " ns,"] {
        assert!(svg.contains(needle), "no {needle:?} in the SVG");
    }
    let Some(chromium) = chromium else {
        return;
    };
    let png = screenshot(&chromium, &svg_path, dir.path());
    let drawn = Drawn::of(&png);
    eprintln!(
        "screenshot {}x{}: {:.1}% not white, {:.1}% flame colours, {} distinct flame colours",
        drawn.width,
        drawn.height,
        drawn.not_white * 100.0,
        drawn.flame * 100.0,
        drawn.flame_colours
    );
    // The frames: rows over the whole width, in the palette's colours
    // (one per function name).
    assert!(drawn.not_white > 0.05, "{drawn:?}");
    assert!(drawn.flame > 0.02, "{drawn:?}");
    assert!(drawn.flame_colours >= 4, "{drawn:?}");
}

/// Headless Chromium, or why not: `None` (printing why) when it is not
/// installed, except under `cargo xtask test`, whose setup installs it.
fn chromium() -> Option<PathBuf> {
    let works = Command::new("chromium")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if works {
        return Some(PathBuf::from("chromium"));
    }
    assert!(
        std::env::var_os("TRACER_REQUIRE_EBPF").is_none(),
        "no chromium under `cargo xtask test` (its setup installs Debian's chromium)"
    );
    eprintln!("not drawing the SVG: no chromium (run `cargo xtask setup`)");
    None
}

/// `svg` drawn by headless Chromium in a 1200x800 window: the PNG bytes.
fn screenshot(chromium: &Path, svg: &Path, dir: &Path) -> Vec<u8> {
    let png = dir.join("blocking.png");
    let log = dir.join("chromium.log");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,800",
        ])
        // Its own profile: other Chromiums on this host hold theirs.
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", svg.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn chromium");
    let status = wait_timeout(&mut child, Duration::from_secs(120));
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}): {said}");
    std::fs::read(&png).unwrap_or_else(|e| panic!("no screenshot ({e}): {said}"))
}

/// What a screenshot shows.
#[derive(Debug)]
struct Drawn {
    width: u32,
    height: u32,
    /// Share of pixels that are not white.
    not_white: f64,
    /// Share of pixels in the flame graph's frame colours: saturated (the
    /// background is grey to pale yellow, text black).
    flame: f64,
    /// Distinct frame colours, each over at least 0.05% of the picture.
    flame_colours: usize,
}

impl Drawn {
    fn of(png: &[u8]) -> Self {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of sane size")];
        let info = reader.next_frame(&mut buf).expect("a PNG frame");
        let channels = info.color_type.samples();
        assert!(
            channels >= 3,
            "not an RGB screenshot: {:?}",
            info.color_type
        );
        let pixels = buf[..info.buffer_size()].chunks_exact(channels);
        let total = u64::from(info.width) * u64::from(info.height);
        let (mut not_white, mut flame) = (0u64, 0u64);
        let mut colours: BTreeMap<(u8, u8, u8), u64> = BTreeMap::new();
        for p in pixels {
            let (r, g, b) = (p[0], p[1], p[2]);
            if (r, g, b) != (255, 255, 255) {
                not_white += 1;
            }
            let (max, min) = (r.max(g).max(b), r.min(g).min(b));
            if max - min > 100 {
                flame += 1;
                *colours.entry((r, g, b)).or_default() += 1;
            }
        }
        // A frame's fill, not the shades anti-aliased text leaves on it.
        let fills = colours.values().filter(|&&n| n * 2000 >= total).count();
        Self {
            width: info.width,
            height: info.height,
            not_white: not_white as f64 / total as f64,
            flame: flame as f64 / total as f64,
            flame_colours: fills,
        }
    }
}
