//! `.go.buildinfo`: a 32-byte header (`"\xff Go buildinf:"`, pointer size,
//! flags) followed, since Go 1.18 (flags bit 1), by two varint-prefixed
//! strings: the Go version and the module info framed by 16-byte sentinels.
//! Older binaries (pointers instead of strings) are rejected as unsupported.

use object::read::File;

use super::{GoBinError, section};

const MAGIC: &[u8; 14] = b"\xff Go buildinf:";

/// A Go release, e.g. 1.27.3.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct GoVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl GoVersion {
    /// Parses `go1.27.3`, `go1.21`, `go1.26rc1`, or `devel ...` (None).
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix("go")?;
        let digits: Vec<u32> = rest
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map_while(|p| p.parse().ok())
            .collect();
        match digits.as_slice() {
            [major, minor, patch, ..] => Some(Self {
                major: *major,
                minor: *minor,
                patch: *patch,
            }),
            [major, minor] => Some(Self {
                major: *major,
                minor: *minor,
                patch: 0,
            }),
            _ => None,
        }
    }

    /// True for `1.minor` or newer.
    pub fn at_least(&self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }
}

impl std::fmt::Display for GoVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "go{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// What the Go linker recorded about the build.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BuildInfo {
    /// As recorded, e.g. `go1.27.3`.
    pub raw_version: String,
    pub version: GoVersion,
    /// The main package path (`path` line), if recorded.
    pub path: Option<String>,
    /// The main module (`mod` line: path and version), if recorded.
    pub main_module: Option<String>,
    /// Build settings (`build` lines), e.g. `CGO_ENABLED=1`, `-ldflags=-s -w`.
    pub settings: Vec<(String, String)>,
}

fn uvarint(data: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in data.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

fn varint_string(data: &[u8]) -> Option<(&[u8], usize)> {
    let (len, n) = uvarint(data)?;
    let end = n.checked_add(usize::try_from(len).ok()?)?;
    Some((data.get(n..end)?, end))
}

impl BuildInfo {
    pub fn from_elf(file: &File<'_>) -> Result<Self, GoBinError> {
        let (_, data) = section(file, &[".go.buildinfo"]).ok_or(GoBinError::NotGo)?;
        Self::parse(data)
    }

    /// Parses the contents of `.go.buildinfo`.
    pub fn parse(data: &[u8]) -> Result<Self, GoBinError> {
        if data.len() < 32 || &data[..14] != MAGIC {
            return Err(GoBinError::NotGo);
        }
        let flags = data[15];
        if flags & 0x2 == 0 {
            return Err(GoBinError::BuildInfo(
                "pre-1.18 build info (pointer format) is not supported",
            ));
        }
        let (version, n) =
            varint_string(&data[32..]).ok_or(GoBinError::BuildInfo("truncated version"))?;
        let (modinfo, _) =
            varint_string(&data[32 + n..]).ok_or(GoBinError::BuildInfo("truncated module info"))?;
        let raw_version = String::from_utf8_lossy(version).into_owned();
        let version =
            GoVersion::parse(&raw_version).ok_or(GoBinError::BuildInfo("unreadable Go version"))?;
        // The module info is framed by 16-byte sentinels.
        let modinfo = if modinfo.len() >= 33 {
            &modinfo[16..modinfo.len() - 16]
        } else {
            &[][..]
        };
        let modinfo = String::from_utf8_lossy(modinfo);
        let mut info = Self {
            raw_version,
            version,
            path: None,
            main_module: None,
            settings: Vec::new(),
        };
        for line in modinfo.lines() {
            let mut fields = line.splitn(2, '\t');
            match (fields.next(), fields.next()) {
                (Some("path"), Some(p)) => info.path = Some(p.to_owned()),
                (Some("mod"), Some(m)) => {
                    info.main_module = Some(m.replace('\t', " ").trim().to_owned())
                }
                (Some("build"), Some(kv)) => {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    info.settings
                        .push((k.to_owned(), v.trim_matches('"').to_owned()));
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// A build setting, e.g. `setting("CGO_ENABLED")`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        data.extend([8, 2]);
        data.resize(32, 0);
        data.push(version.len() as u8);
        data.extend(version.as_bytes());
        let framed = format!("{}{modinfo}{}", "0".repeat(16), "1".repeat(16));
        data.push(framed.len() as u8 | 0x80);
        data.push((framed.len() >> 7) as u8);
        data.extend(framed.as_bytes());
        data
    }

    #[test]
    fn parses_version_path_and_settings() {
        let data = blob(
            "go1.27.3",
            "path\texample.com/cmd/x\nmod\texample.com\t(devel)\t\nbuild\tCGO_ENABLED=1\nbuild\t-ldflags=\"-s -w\"\n",
        );
        let info = BuildInfo::parse(&data).unwrap();
        assert_eq!(
            info.version,
            GoVersion {
                major: 1,
                minor: 27,
                patch: 3
            }
        );
        assert_eq!(info.path.as_deref(), Some("example.com/cmd/x"));
        assert_eq!(info.main_module.as_deref(), Some("example.com (devel)"));
        assert_eq!(info.setting("CGO_ENABLED"), Some("1"));
        assert_eq!(info.setting("-ldflags"), Some("-s -w"));
    }

    #[test]
    fn rejects_non_go_and_old_formats() {
        assert!(matches!(BuildInfo::parse(&[0; 64]), Err(GoBinError::NotGo)));
        let mut old = blob("go1.17", "");
        old[15] = 0;
        assert!(matches!(
            BuildInfo::parse(&old),
            Err(GoBinError::BuildInfo(_))
        ));
    }

    #[test]
    fn versions() {
        assert_eq!(
            GoVersion::parse("go1.21"),
            Some(GoVersion {
                major: 1,
                minor: 21,
                patch: 0
            })
        );
        assert_eq!(
            GoVersion::parse("go1.26rc1"),
            Some(GoVersion {
                major: 1,
                minor: 26,
                patch: 0
            })
        );
        assert_eq!(GoVersion::parse("devel +abc"), None);
        assert!(GoVersion::parse("go1.19.8").unwrap().at_least(19));
        assert!(!GoVersion::parse("go1.19.8").unwrap().at_least(20));
    }
}
