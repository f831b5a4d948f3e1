//! Launching a command for `tracer run`: fork, hold the child before exec
//! until the probes are live, then let it exec. The child keeps its PID
//! across exec, so probes filtered by that PID see its very first syscalls.
//!
//! `std::process::Command` cannot do this (spawn waits for exec to happen),
//! so this is a small fork/exec with two pipes: one the child waits on, and
//! one (close-on-exec) that carries an exec failure back to the parent.

use std::{
    ffi::{CString, OsString},
    io,
    os::unix::ffi::{OsStrExt, OsStringExt},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot execute `{0}`: no such file in the current directory or in PATH")]
    NotFound(String),
    #[error("cannot execute `{path}`: {reason}")]
    NotExecutable { path: String, reason: String },
    #[error("cannot execute `{path}`: {source}")]
    Exec {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the command: {0}")]
    Fork(#[source] io::Error),
    #[error("the command has a NUL byte in an argument or the environment")]
    Nul,
}

/// A forked child that waits for [`HeldChild::release`] before it execs.
#[derive(Debug)]
pub struct HeldChild {
    pub pid: u32,
    pub program: PathBuf,
    release_fd: i32,
    error_fd: i32,
    released: bool,
}

/// Resolves `program` like execvp would and checks it can be executed, so
/// the common mistakes fail before anything is forked or loaded.
pub fn resolve(program: &Path) -> Result<PathBuf, LaunchError> {
    let display = program.display().to_string();
    let candidates: Vec<PathBuf> = if program.as_os_str().as_bytes().contains(&b'/') {
        vec![program.to_path_buf()]
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
            .unwrap_or_default()
    };
    let mut denied = None;
    for candidate in candidates {
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        if meta.is_dir() {
            denied = Some(format!("{} is a directory", candidate.display()));
            continue;
        }
        let c = CString::new(candidate.as_os_str().as_bytes()).map_err(|_| LaunchError::Nul)?;
        // SAFETY: access(2) on a valid C string.
        if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
            return Ok(candidate);
        }
        denied = Some(format!(
            "{} is not executable (permission denied)",
            candidate.display()
        ));
    }
    match denied {
        Some(reason) => Err(LaunchError::NotExecutable {
            path: display,
            reason,
        }),
        None => Err(LaunchError::NotFound(display)),
    }
}

fn pipe_cloexec() -> io::Result<[i32; 2]> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fds)
}

impl HeldChild {
    /// Forks a child that will exec `program` with `args` once released.
    /// Call this while the process is still single-threaded.
    pub fn spawn(program: &Path, args: &[OsString]) -> Result<Self, LaunchError> {
        let path = resolve(program)?;
        let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| LaunchError::Nul)?;
        let c_args = std::iter::once(program.as_os_str().to_owned())
            .chain(args.iter().cloned())
            .map(|a| CString::new(a.into_vec()).map_err(|_| LaunchError::Nul))
            .collect::<Result<Vec<_>, _>>()?;
        let c_env = std::env::vars_os()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                CString::new(kv).map_err(|_| LaunchError::Nul)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut argv: Vec<*const libc::c_char> = c_args.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());

        let [release_rd, release_wr] = pipe_cloexec().map_err(LaunchError::Fork)?;
        let [error_rd, error_wr] = pipe_cloexec().map_err(LaunchError::Fork)?;

        // SAFETY: the child only calls async-signal-safe functions (read,
        // execve, write, _exit, capset) on memory prepared before the
        // fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(LaunchError::Fork(io::Error::last_os_error()));
        }
        if pid == 0 {
            unsafe {
                // Drop our copies of the parent's ends, or EOF never comes.
                libc::close(release_wr);
                libc::close(error_rd);
                if libc::geteuid() != 0 {
                    drop_capabilities();
                }
                let mut byte = 0u8;
                // Wait for the go-ahead; EOF means the tracer died: give up.
                loop {
                    let n = libc::read(release_rd, (&raw mut byte).cast(), 1);
                    if n == 1 {
                        break;
                    }
                    if n == 0 || *libc::__errno_location() != libc::EINTR {
                        libc::_exit(127);
                    }
                }
                libc::execve(c_path.as_ptr(), argv.as_ptr(), envp.as_ptr());
                let errno = *libc::__errno_location();
                libc::write(error_wr, (&raw const errno).cast(), size_of::<i32>());
                libc::_exit(127);
            }
        }
        // SAFETY: closing our copies of the child's ends.
        unsafe {
            libc::close(release_rd);
            libc::close(error_wr);
        }
        Ok(Self {
            pid: pid as u32,
            program: path,
            release_fd: release_wr,
            error_fd: error_rd,
            released: false,
        })
    }

    /// Lets the child exec, and reports whether exec succeeded.
    pub fn release(&mut self) -> Result<(), LaunchError> {
        self.released = true;
        // SAFETY: fds are ours; closing after use.
        unsafe {
            let byte = 1u8;
            libc::write(self.release_fd, (&raw const byte).cast(), 1);
            libc::close(self.release_fd);
            let mut errno = 0i32;
            let n = loop {
                let n = libc::read(self.error_fd, (&raw mut errno).cast(), size_of::<i32>());
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            libc::close(self.error_fd);
            if n == size_of::<i32>() as isize {
                return Err(LaunchError::Exec {
                    path: self.program.display().to_string(),
                    source: io::Error::from_raw_os_error(errno),
                });
            }
        }
        Ok(())
    }

    /// Waits for the child (blocking) and returns its exit code, or 128 +
    /// the signal that killed it, as a shell would.
    pub fn wait(&self) -> io::Result<i32> {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid as i32, &raw mut status, 0) };
            if r >= 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
        Ok(exit_code(status))
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        if !self.released {
            // Never released (setup failed): the child is still waiting
            // before exec; closing our end makes it exit, then reap it.
            unsafe {
                libc::close(self.release_fd);
                libc::close(self.error_fd);
                libc::waitpid(self.pid as i32, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// Shell-style exit code from a wait status.
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// In the launched child of a tracer that is not root but holds
/// capabilities (CAP_BPF, CAP_PERFMON... as file or ambient capabilities):
/// the command must not inherit them. Ambient capabilities would otherwise
/// pass through its exec (a traced shell got CAP_SYS_ADMIN); dropping the
/// permitted and inheritable sets takes the ambient ones with them.
unsafe fn drop_capabilities() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capset(2) with valid pointers; no allocation. A child that
    // cannot drop them does not run the command.
    unsafe {
        if libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) != 0 {
            libc::_exit(126);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Forks in concurrent tests would inherit each other's pipe ends (they
    /// close only at exec) and delay each other's EOFs: one at a time.
    static FORK: Mutex<()> = Mutex::new(());

    #[test]
    fn resolves_commands_like_a_shell() {
        assert!(resolve(Path::new("sh")).is_ok());
        assert!(matches!(
            resolve(Path::new("no-such-command-xyz")),
            Err(LaunchError::NotFound(_))
        ));
        assert!(matches!(
            resolve(Path::new("/etc/passwd")),
            Err(LaunchError::NotExecutable { .. })
        ));
        assert!(matches!(
            resolve(Path::new("/")),
            Err(LaunchError::NotExecutable { .. })
        ));
    }

    #[test]
    fn held_child_runs_after_release_with_its_exit_code() {
        let _one = FORK.lock().unwrap();
        let mut child = HeldChild::spawn(Path::new("sh"), &["-c".into(), "exit 7".into()]).unwrap();
        child.release().unwrap();
        assert_eq!(child.wait().unwrap(), 7);
    }

    #[test]
    fn unreleased_child_is_reaped() {
        let _one = FORK.lock().unwrap();
        let child = HeldChild::spawn(Path::new("true"), &[]).unwrap();
        let pid = child.pid;
        drop(child);
        assert!(!crate::target::is_running(pid));
    }
}
