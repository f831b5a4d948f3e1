//! Builds the kernel programs (`tracer-ebpf`) with aya-build and puts the
//! object in `OUT_DIR`. Without bpf-linker (a machine where `cargo xtask
//! setup` has not run) it writes an empty stub instead, so `cargo check`,
//! clippy and the unprivileged tests still work; the tracer then refuses to
//! load with a message that says to run the setup.

use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};

const STUB_ENV: &str = "TRACER_EBPF_STUB";
/// Set by `cargo xtask`: the kernel programs must build (never a stub).
const REQUIRE_ENV: &str = "TRACER_REQUIRE_EBPF";

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed={STUB_ENV}");
    println!("cargo:rerun-if-env-changed={REQUIRE_ENV}");
    let required = env::var_os(REQUIRE_ENV).is_some_and(|v| v == "1");
    println!("cargo:rerun-if-env-changed=PATH");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let object = out_dir.join("tracer-ebpf");

    let want_stub = env::var_os(STUB_ENV).is_some_and(|v| v == "1");
    if required && which::which("bpf-linker").is_err() {
        anyhow::bail!("{REQUIRE_ENV}=1 but bpf-linker is not on PATH: run `cargo xtask setup`");
    }
    if !required && (want_stub || which::which("bpf-linker").is_err()) {
        println!(
            "cargo:warning=bpf-linker not found (or {STUB_ENV}=1): building tracer without \
             its eBPF programs; run `cargo xtask setup` to build them"
        );
        fs::write(&object, []).context("writing the eBPF stub")?;
        return Ok(());
    }

    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let package = metadata
        .packages
        .into_iter()
        .find(|p| p.name.as_str() == "tracer-ebpf")
        .ok_or_else(|| anyhow!("tracer-ebpf package not found in the workspace"))?;
    let root_dir = package
        .manifest_path
        .parent()
        .context("tracer-ebpf manifest has no parent directory")?
        .as_str()
        .to_owned();
    // aya-build relays every stderr line of the inner cargo as a warning:
    // keep the inner build quiet so only real problems show.
    // SAFETY: build scripts are single-threaded here; no one reads env concurrently.
    unsafe { env::set_var("CARGO_TERM_QUIET", "true") };
    let built = aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    );
    match built {
        Ok(()) => Ok(()),
        // A plain build on a machine without the nightly pieces still gets
        // a usable (probe-less) binary; xtask builds insist.
        Err(err) if !required => {
            println!(
                "cargo:warning=building the eBPF programs failed ({err:#}); using a stub: run `cargo xtask setup`"
            );
            fs::write(&object, []).context("writing the eBPF stub")?;
            Ok(())
        }
        Err(err) => Err(err),
    }
}
