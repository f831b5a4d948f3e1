//! `tracer diff BEFORE AFTER`: both recordings replayed through the model,
//! analysis and report as `tracer report` does, then compared
//! ([`crate::analysis::diff`]) and rendered as text or JSON.

use std::path::Path;

use anyhow::Context as _;

use super::replay::{Replayed, replay};
use crate::{
    analysis::diff::{Side, diff},
    cli::OutputConfig,
    model::syscalls::Waiter,
    report::diff as render,
};

pub fn execute(before: &Path, after: &Path, output: &OutputConfig) -> anyhow::Result<i32> {
    let load = |path: &Path| replay(path).with_context(|| format!("reading {}", path.display()));
    let (b, a) = (load(before)?, load(after)?);
    fn side(r: &Replayed) -> Side<'_> {
        Side {
            report: &r.report,
            program: r.model.syscalls.by_syscall(Waiter::Program),
        }
    }
    let d = diff(&side(&b), &side(&a));
    super::write_output(output.path.as_deref(), "the comparison", |out| {
        if output.json {
            render::json(&d, out)
        } else {
            render::text(&d, before, after, out)
        }
    })?;
    Ok(0)
}
