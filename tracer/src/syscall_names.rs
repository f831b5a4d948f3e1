//! Syscall numbers to names for x86_64, from the `syscalls` crate's tables
//! (generated from the kernel sources). Unknown numbers print as
//! `syscall_<n>` rather than failing.

/// The name of an x86_64 syscall number.
pub fn name(number: u32) -> String {
    syscalls::x86_64::Sysno::new(number as usize)
        .map_or_else(|| format!("syscall_{number}"), |s| s.name().to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_known_and_unknown_numbers() {
        assert_eq!(super::name(0), "read");
        assert_eq!(super::name(17), "pread64");
        assert_eq!(super::name(35), "nanosleep");
        assert_eq!(super::name(257), "openat");
        assert_eq!(super::name(511), "syscall_511");
    }
}
