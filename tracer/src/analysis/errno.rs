//! Error numbers by name (`EAGAIN`, not 11), including the kernel's
//! restart codes a traced exit can show for a call a signal interrupted.

/// The name of a Linux errno; `errno N` when it has none, `other` for 0
/// (an error number outside the counted range).
pub fn name(errno: u32) -> String {
    match errno {
        0 => "other".to_owned(),
        512 => "ERESTARTSYS".to_owned(),
        513 => "ERESTARTNOINTR".to_owned(),
        514 => "ERESTARTNOHAND".to_owned(),
        515 => "ENOIOCTLCMD".to_owned(),
        516 => "ERESTART_RESTARTBLOCK".to_owned(),
        517 => "EPROBE_DEFER".to_owned(),
        n => i32::try_from(n)
            .ok()
            .and_then(|n| syscalls::Errno::new(n).name())
            .map_or_else(|| format!("errno {n}"), str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert_eq!(super::name(11), "EAGAIN");
        assert_eq!(super::name(1), "EPERM");
        assert_eq!(super::name(104), "ECONNRESET");
        assert_eq!(super::name(512), "ERESTARTSYS");
        assert_eq!(super::name(0), "other");
        assert_eq!(super::name(300), "errno 300");
    }
}
