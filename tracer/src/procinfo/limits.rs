//! Per-process resource limits that bound thread creation.

use super::{ProcError, format_error, read, tasks::status_field};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Nproc {
    /// `None`: unlimited.
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// RLIMIT_NPROC ("Max processes") from /proc/PID/limits.
pub fn nproc(pid: u32) -> Result<Nproc, ProcError> {
    let path = format!("/proc/{pid}/limits");
    parse_nproc(&read(&path)?).ok_or_else(|| format_error(&path, "no `Max processes` line"))
}

pub fn parse_nproc(limits: &str) -> Option<Nproc> {
    let line = limits.lines().find(|l| l.starts_with("Max processes"))?;
    let mut fields = line["Max processes".len()..].split_whitespace();
    let value = |s: Option<&str>| -> Option<Option<u64>> {
        match s? {
            "unlimited" => Some(None),
            n => n.parse().ok().map(Some),
        }
    };
    Some(Nproc {
        soft: value(fields.next())?,
        hard: value(fields.next())?,
    })
}

/// The real uid (`Uid:` first field): whose RLIMIT_NPROC count applies.
pub fn real_uid(pid: u32) -> Result<u32, ProcError> {
    let path = format!("/proc/{pid}/status");
    status_field(&read(&path)?, "Uid:")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format_error(&path, "no Uid: line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_file() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max processes             63432                63432                processes \n\
                    Max open files            20000                20000                files     \n";
        assert_eq!(
            parse_nproc(text),
            Some(Nproc {
                soft: Some(63432),
                hard: Some(63432)
            })
        );
        let unlimited =
            "Max processes             unlimited            unlimited            processes\n";
        assert_eq!(parse_nproc(unlimited).unwrap().soft, None);
        assert!(nproc(std::process::id()).is_ok());
        assert!(real_uid(std::process::id()).is_ok());
    }
}
