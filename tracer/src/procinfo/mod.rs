//! Facts about a live process read from `/proc`, `/sys` and the cgroup
//! file systems, for diagnostics (`tracer threads -p PID`, the vDSO report).
//! Nothing here loads eBPF or needs the tracer's probes.
//!
//! Each submodule keeps its parsers (pure functions over the text or bytes
//! of one file, unit-tested on fixtures copied from a real machine) apart
//! from the functions that read the files:
//!
//! - [`tasks`]: thread ids and count, what syscall a thread is in, its
//!   state letter and wait channel.
//! - [`limits`]: `RLIMIT_NPROC`, the real uid, and how many tasks a uid owns
//!   (what `RLIMIT_NPROC` counts).
//! - [`cgroup`]: the process's cgroups (v1, v2 or hybrid), the effective
//!   `pids.max`, the CPU quota and CPU throttling; a user-given cgroup v2
//!   directory and whether a process is in it.
//! - [`cpus`]: the CPU affinity count, the online CPU count, and the
//!   process's environment variables.
//! - [`gomaxprocs`]: the GOMAXPROCS value the Go runtime picks by default,
//!   by Go version, from the facts above.
//! - [`sockets`]: socket file descriptors, and TCP sockets by state.
//! - [`vdso`]: where the vDSO is mapped, and whether the clocksource lets it
//!   answer `clock_gettime` without a syscall.
//! - [`mem`]: reading another process's memory (`process_vm_readv`).
//! - [`fds`]: what an open descriptor of a process refers to.
//!
//! Every function returns [`ProcInfoError`] on failure; none panics on odd
//! input. A process or thread that exits while it is read is reported as
//! [`ProcInfoError::NoSuchProcess`] or [`ProcInfoError::NoSuchThread`].

pub mod cgroup;
pub mod cpus;
pub mod fds;
pub mod gomaxprocs;
pub mod kallsyms;
pub mod limits;
pub mod mem;
pub mod sockets;
pub mod tasks;
pub mod vdso;

use std::{
    fs, io,
    path::{Path, PathBuf},
};

/// What went wrong reading facts about a process.
#[derive(Debug, thiserror::Error)]
pub enum ProcInfoError {
    #[error(
        "no process with PID {pid} (it may have exited): check the PID, for example with `ps -e`"
    )]
    NoSuchProcess { pid: u32 },
    #[error("no thread {tid} in PID {pid} (it may have exited): list the threads again")]
    NoSuchThread { pid: u32, tid: u32 },
    #[error(
        "not permitted to {what}: run as root, or as the user that owns the process \
         (with /proc/sys/kernel/yama/ptrace_scope at 0, or the process a child of the reader); \
         even root is refused a process in another user namespace it does not own"
    )]
    PermissionDenied { what: String },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "unexpected contents in {path}: {detail}; this kernel's format is not understood \
         (please report it with the file's contents)"
    )]
    Malformed { path: PathBuf, detail: String },
    #[error("{call} failed for PID {pid}: {source}")]
    Syscall {
        call: &'static str,
        pid: u32,
        #[source]
        source: io::Error,
    },
    #[error(
        "read {got} of {wanted} bytes at {addr:#x} in PID {pid}: the range is not fully \
         mapped; check the address against /proc/{pid}/maps"
    )]
    ShortRead {
        pid: u32,
        addr: u64,
        wanted: usize,
        got: usize,
    },
    #[error(
        "cgroup {cgroup} of PID {pid} is not under any cgroup mount visible here (it is \
         outside this cgroup namespace or mount): run the tracer in the host's cgroup namespace"
    )]
    CgroupNotVisible { pid: u32, cgroup: String },
}

pub type Result<T, E = ProcInfoError> = std::result::Result<T, E>;

/// Who a `/proc` file belongs to, so that "not found" (or `ESRCH` from a
/// process exiting mid-read) becomes the right error.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Process(u32),
    Thread(u32, u32),
    /// A file that is not about one process (`/sys`, cgroup files).
    None,
}

fn map_io(path: &Path, owner: Owner, source: io::Error) -> ProcInfoError {
    let gone =
        source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ESRCH);
    match owner {
        Owner::Process(pid) if gone => ProcInfoError::NoSuchProcess { pid },
        Owner::Thread(pid, tid) if gone => {
            if Path::new(&format!("/proc/{pid}")).exists() {
                ProcInfoError::NoSuchThread { pid, tid }
            } else {
                ProcInfoError::NoSuchProcess { pid }
            }
        }
        _ if source.kind() == io::ErrorKind::PermissionDenied => ProcInfoError::PermissionDenied {
            what: format!("read {}", path.display()),
        },
        _ => ProcInfoError::Read {
            path: path.to_owned(),
            source,
        },
    }
}

fn read_bytes(path: &Path, owner: Owner) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| map_io(path, owner, e))
}

/// Reads a text file. Invalid UTF-8 (a comm or a path can hold any bytes)
/// is replaced rather than refused.
fn read_text(path: &Path, owner: Owner) -> Result<String> {
    read_bytes(path, owner).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// `/proc/PID/<rel>`.
fn read_pid_file(pid: u32, rel: &str) -> Result<String> {
    read_text(&pid_path(pid, rel), Owner::Process(pid))
}

fn pid_path(pid: u32, rel: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{rel}"))
}

/// A file that may legitimately be absent (a cgroup knob the controller
/// does not offer at this level): `Ok(None)` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(map_io(path, Owner::None, e)),
    }
}

fn malformed(path: &Path, detail: impl Into<String>) -> ProcInfoError {
    ProcInfoError::Malformed {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

/// The value of `Key:` in a `/proc/PID/status`-style text (tab-separated
/// `Key:\tvalue` lines), trimmed.
fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k == key).then_some(v.trim())
    })
}

/// Helpers for the tests that look at a child process.
#[cfg(test)]
pub(crate) mod testutil {
    use std::{
        process::{Child, Command},
        thread,
        time::{Duration, Instant},
    };

    /// A `sleep 30` child, returned once its exec has finished: `spawn`
    /// returns when the exec has replaced the child's memory but possibly
    /// before the new program is mapped (the parent sees the close-on-exec
    /// pipe close in between), when `/proc/PID/maps` holds only the stack.
    /// Killed on drop.
    pub(crate) struct Sleeper(pub Child);

    impl Sleeper {
        pub(crate) fn spawn(env: &[(&str, &str)]) -> Self {
            let child = Command::new("sleep")
                .arg("30")
                .envs(env.iter().copied())
                .spawn()
                .unwrap();
            let sleeper = Self(child);
            let maps = format!("/proc/{}/maps", sleeper.pid());
            let deadline = Instant::now() + Duration::from_secs(10);
            while !std::fs::read_to_string(&maps)
                .is_ok_and(|m| m.contains("sleep") && m.contains("[vdso]"))
            {
                assert!(
                    Instant::now() < deadline,
                    "the child never finished its exec"
                );
                thread::sleep(Duration::from_millis(5));
            }
            sleeper
        }

        pub(crate) fn pid(&self) -> u32 {
            self.0.id()
        }
    }

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Why this test process may not read its children's memory, auxv or
    /// environment, if it may not: only Yama's `ptrace_scope` 2 or 3
    /// forbids it to a non-root parent.
    pub(crate) fn cannot_inspect_children() -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return None;
        }
        let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope").ok()?;
        let scope: u32 = scope.trim().parse().ok()?;
        (scope >= 2).then(|| format!("Yama ptrace_scope is {scope} and this is not root"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_field_finds_exact_keys() {
        let status = "Name:\tcat\nThreads:\t1\nUid:\t0\t0\t0\t0\nNSpid:\t22783\n";
        assert_eq!(status_field(status, "Threads"), Some("1"));
        assert_eq!(status_field(status, "Uid"), Some("0\t0\t0\t0"));
        assert_eq!(status_field(status, "Thread"), None);
        assert_eq!(status_field("", "Threads"), None);
    }

    #[test]
    fn missing_files_map_to_the_owner() {
        let path = Path::new("/proc/4194305/status");
        let e = io::Error::from(io::ErrorKind::NotFound);
        assert!(matches!(
            map_io(path, Owner::Process(4_194_305), e),
            ProcInfoError::NoSuchProcess { pid: 4_194_305 }
        ));
        let e = io::Error::from_raw_os_error(libc::ESRCH);
        assert!(matches!(
            map_io(path, Owner::Thread(4_194_305, 7), e),
            ProcInfoError::NoSuchProcess { .. }
        ));
        let e = io::Error::from(io::ErrorKind::PermissionDenied);
        let msg = map_io(path, Owner::Process(1), e).to_string();
        assert!(msg.contains("run as root"), "{msg}");
        assert!(matches!(
            read_optional(Path::new("/proc/self/no-such-file")),
            Ok(None)
        ));
    }
}
