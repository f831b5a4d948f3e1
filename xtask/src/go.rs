//! Building the Go workloads in `tests/workloads` with a chosen toolchain.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::util;

/// Builds `tests/workloads/<name>.go` into `<dir>/<name>` and returns its path.
pub fn build(go: &Path, name: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let out = dir.join(name);
    let src = util::root()
        .join("tests/workloads")
        .join(format!("{name}.go"));
    let mut cmd = Command::new(go);
    cmd.arg("build").arg("-o").arg(&out).arg(&src);
    env(&mut cmd, dir);
    util::output(&mut cmd)?;
    Ok(out)
}

/// A self-contained Go environment: the given toolchain only (never a
/// download), caches under `dir`.
pub fn env(cmd: &mut Command, dir: &Path) {
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOCACHE", dir.join("gocache"))
        .env("GOPATH", dir.join("gopath"))
        .env("GOFLAGS", "")
        .env("GO111MODULE", "auto");
}
