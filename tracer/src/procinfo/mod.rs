//! Facts about a live process read from /proc, /sys and its cgroups, with
//! no probes: its threads and what each is blocked in, its memory, limits,
//! CPU quota, sockets and vDSO. Parsers are separate from the file reads so
//! each is tested on real formats.

pub mod cgroup;
pub mod cpus;
pub mod gomaxprocs;
pub mod limits;
pub mod mem;
pub mod sockets;
pub mod tasks;
pub mod vdso;

use std::{fs, io, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read {path}: {source} (is the process still running, and are we root?)")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("unexpected format in {path}: {what}")]
    Format { path: String, what: &'static str },
}

/// Reads a whole /proc or /sys file as text.
fn read(path: impl AsRef<Path>) -> Result<String, ProcError> {
    let path = path.as_ref();
    fs::read_to_string(path).map_err(|source| ProcError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn format_error(path: impl AsRef<Path>, what: &'static str) -> ProcError {
    ProcError::Format {
        path: path.as_ref().display().to_string(),
        what,
    }
}
