//! Finding (or mounting) tracefs, and reading tracepoint record layouts from
//! it, so field offsets come from this kernel rather than from constants.

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

use super::ProbeError;

const MOUNT_POINT: &str = "/sys/kernel/tracing";
const LEGACY: &str = "/sys/kernel/debug/tracing";

/// Returns the tracefs root, mounting tracefs at `/sys/kernel/tracing` when
/// it is not mounted anywhere.
pub fn ensure_mounted() -> Result<PathBuf, ProbeError> {
    for root in [MOUNT_POINT, LEGACY] {
        if Path::new(root).join("events").is_dir() {
            return Ok(PathBuf::from(root));
        }
    }
    // Mounted but not readable by this user (tracefs is root-only, mode
    // 0700, unless its mount says otherwise): say so, not "not mounted".
    for root in [MOUNT_POINT, LEGACY] {
        if is_tracefs(Path::new(root)) {
            let source = fs::read_dir(Path::new(root).join("events"))
                .err()
                .unwrap_or_else(|| io::Error::from(io::ErrorKind::PermissionDenied));
            return Err(ProbeError::TracefsUnreadable {
                root: PathBuf::from(root),
                source,
            });
        }
    }
    let target = CString::new(MOUNT_POINT).expect("no NUL");
    let fstype = CString::new("tracefs").expect("no NUL");
    // SAFETY: mount(2) with valid C strings and no data.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(ProbeError::Tracefs(io::Error::last_os_error()));
    }
    Ok(PathBuf::from(MOUNT_POINT))
}

/// Whether `path` is a tracefs mount (its file-system magic), readable or not.
fn is_tracefs(path: &Path) -> bool {
    const TRACEFS_MAGIC: i64 = 0x7472_6163;
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs(2) on a valid C string into a zeroed struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &raw mut st) == 0 && st.f_type == TRACEFS_MAGIC }
}

/// The byte offset of `field` in the record of tracepoint `category/name`.
pub fn field_offset(
    root: &Path,
    category: &str,
    name: &str,
    field: &str,
) -> Result<u32, ProbeError> {
    let path = root.join("events").join(category).join(name).join("format");
    let text = fs::read_to_string(&path).map_err(|source| ProbeError::Format {
        path: path.clone(),
        source,
    })?;
    parse_field_offset(&text, field).ok_or_else(|| ProbeError::Field {
        tracepoint: format!("{category}:{name}"),
        field: field.to_owned(),
    })
}

/// Finds `field:<type> <field>;\toffset:<n>;` in a tracepoint format file.
fn parse_field_offset(format: &str, field: &str) -> Option<u32> {
    format.lines().find_map(|line| {
        let decl = line.trim().strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        let ident = decl.split_whitespace().last()?;
        let ident = ident.split('[').next()?;
        if ident != field {
            return None;
        }
        rest.trim()
            .strip_prefix("offset:")?
            .split(';')
            .next()?
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEWTASK: &str = "name: task_newtask
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:pid_t pid;\toffset:8;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:u64 clone_flags;\toffset:32;\tsize:8;\tsigned:0;
";

    #[test]
    fn finds_offsets_in_format_files() {
        assert_eq!(parse_field_offset(NEWTASK, "pid"), Some(8));
        assert_eq!(parse_field_offset(NEWTASK, "clone_flags"), Some(32));
        assert_eq!(parse_field_offset(NEWTASK, "comm"), Some(12));
        assert_eq!(parse_field_offset(NEWTASK, "missing"), None);
    }
}
