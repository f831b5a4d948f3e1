//! What the tracer knows about each x86_64 syscall: its name (from the
//! `syscalls` crate's tables, generated from the kernel sources; unknown
//! numbers print as `syscall_<n>`), which argument is the descriptor it
//! waits on, and whether it is one of the waits the Go runtime makes when
//! it has nothing to do. The kernel programs get the classes as a table
//! (`tracer_common::class`), so this is the one place they are decided.

use tracer_common::class;

/// The name of an x86_64 syscall number.
pub fn name(number: u32) -> String {
    syscalls::x86_64::Sysno::new(number as usize)
        .map_or_else(|| format!("syscall_{number}"), |s| s.name().to_owned())
}

/// The `tracer_common::class` bits of a syscall.
pub fn class(number: u32) -> u8 {
    let Some(sysno) = syscalls::x86_64::Sysno::new(number as usize) else {
        return 0;
    };
    use syscalls::x86_64::Sysno as S;
    match sysno {
        // The descriptor is the first argument.
        S::read
        | S::write
        | S::pread64
        | S::pwrite64
        | S::readv
        | S::writev
        | S::preadv
        | S::pwritev
        | S::preadv2
        | S::pwritev2
        | S::fsync
        | S::fdatasync
        | S::sync_file_range
        | S::syncfs
        | S::ftruncate
        | S::fallocate
        | S::fstat
        | S::fstatfs
        | S::getdents64
        | S::flock
        | S::fcntl
        | S::ioctl
        | S::lseek
        | S::fadvise64
        | S::sendto
        | S::recvfrom
        | S::sendmsg
        | S::recvmsg
        | S::sendmmsg
        | S::recvmmsg
        | S::connect
        | S::shutdown
        | S::close
        | S::copy_file_range
        | S::splice
        | S::tee => class::FD_ARG0,
        // The one it waits on is the second (sendfile's input; splice's
        // output is the fourth, its input the first).
        S::sendfile => class::FD_ARG1,
        // The descriptor it returns: what was opened or accepted.
        S::openat | S::open | S::openat2 | S::creat | S::accept | S::accept4 => class::FD_RET,
        // The waits of a runtime with nothing to do: a parked M (futex), the
        // netpoller (epoll), sysmon and spinning Ms (nanosleep, usleep).
        S::futex | S::futex_waitv => class::IDLE_WAIT,
        S::epoll_wait | S::epoll_pwait | S::epoll_pwait2 => class::IDLE_WAIT | class::FD_ARG0,
        // A spinning M yields while it looks for work.
        S::nanosleep | S::clock_nanosleep | S::sched_yield => class::IDLE_WAIT,
        _ => 0,
    }
}

/// Every syscall number's class, for the kernel's `SYSCALL_CLASS` map.
pub fn class_table() -> Vec<u8> {
    (0..tracer_common::MAX_SYSCALLS).map(class).collect()
}

/// The first argument of `syscall` is a path (the call works on the file
/// system by name: no descriptor to classify).
pub fn is_path_call(syscall: &str) -> bool {
    matches!(
        syscall,
        "openat"
            | "open"
            | "openat2"
            | "creat"
            | "newfstatat"
            | "statx"
            | "stat"
            | "lstat"
            | "mkdirat"
            | "mkdir"
            | "unlinkat"
            | "unlink"
            | "rmdir"
            | "renameat"
            | "renameat2"
            | "rename"
            | "readlinkat"
            | "readlink"
            | "faccessat"
            | "faccessat2"
            | "access"
            | "fchmodat"
            | "fchownat"
            | "linkat"
            | "symlinkat"
            | "utimensat"
            | "truncate"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_known_and_unknown_numbers() {
        assert_eq!(name(0), "read");
        assert_eq!(name(17), "pread64");
        assert_eq!(name(35), "nanosleep");
        assert_eq!(name(257), "openat");
        assert_eq!(name(511), "syscall_511");
    }

    #[test]
    fn classes() {
        assert_eq!(class(0), class::FD_ARG0);
        assert_eq!(class(257), class::FD_RET);
        assert_eq!(class(202), class::IDLE_WAIT);
        assert_eq!(class(281) & class::IDLE_WAIT, class::IDLE_WAIT);
        assert_eq!(class(39), 0);
        assert_eq!(class_table().len(), 512);
        assert!(is_path_call("mkdirat") && !is_path_call("read"));
    }
}
