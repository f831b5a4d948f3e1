//! A process's cgroups and the limits they set: the number of tasks
//! (`pids.max`), the CPU bandwidth (quota / period) and how often it was
//! throttled. And a cgroup v2 directory the user names ([`CgroupDir`]: its
//! path, its kernel id and level, whether it holds a process), with a
//! process's cgroup v2 path ([`of_process`]).
//!
//! Works on cgroup v2 (one hierarchy, usually at `/sys/fs/cgroup`), v1 (one
//! hierarchy per controller or group of controllers, such as
//! `/sys/fs/cgroup/cpu,cpuacct`) and hybrids of both (v1 controllers plus a
//! controller-less v2 at `/sys/fs/cgroup/unified`). For each controller it
//! uses the hierarchy that actually has it: a v1 hierarchy mounted with that
//! controller, else the v2 hierarchy when its `cgroup.controllers` lists it
//! (a controller is in one hierarchy at a time).
//!
//! Paths in `/proc/PID/cgroup` are relative to the *reader's* cgroup
//! namespace, and the mounts come from the reader's `/proc/self/mountinfo`,
//! so both are taken from the tracer's point of view, which is the one the
//! files are opened from. A cgroup above the mount's root (a container's
//! view of a cgroup outside it) cannot be read and is reported as
//! [`ProcInfoError::CgroupNotVisible`].
//!
//! Limits are *effective* limits: the kernel enforces every ancestor's limit
//! too, so the tightest one between the process's cgroup and the top of the
//! mount wins (ancestors above the mount are out of sight).

use std::path::{Component, Path, PathBuf};

use super::{
    Owner, ProcInfoError, Result, malformed, pid_path, read_optional, read_pid_file, read_text,
};

/// The cgroup version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// One line of `/proc/PID/cgroup`: `hierarchy-ID:controller-list:cgroup-path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLine {
    /// 0 for the v2 hierarchy.
    pub hierarchy_id: u32,
    /// The v1 controllers of this hierarchy (`cpu`, `cpuacct`,
    /// `name=systemd`...); empty for v2.
    pub controllers: Vec<String>,
    /// The cgroup, relative to the reader's cgroup namespace root.
    pub path: String,
}

/// A cgroup file system mount (from `/proc/self/mountinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub version: CgroupVersion,
    /// The cgroup shown at the mount point (`/` unless a subtree is
    /// bind-mounted, as in a container without a cgroup namespace).
    pub root: String,
    pub mount_point: PathBuf,
    /// The super options (for v1: the controllers, plus flags such as `rw`
    /// and `name=systemd`).
    pub super_options: Vec<String>,
}

impl CgroupMount {
    /// True for a v1 mount of `controller`.
    pub fn has_v1_controller(&self, controller: &str) -> bool {
        self.version == CgroupVersion::V1 && self.super_options.iter().any(|o| o == controller)
    }
}

/// Where a process's cgroup for one controller is in the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControllerCgroup {
    pub version: CgroupVersion,
    /// The directory of the process's cgroup, such as
    /// `/sys/fs/cgroup/pids/user.slice` or `/sys/fs/cgroup/system.slice/x.service`.
    pub dir: PathBuf,
    /// The mount point of the hierarchy: the highest ancestor visible.
    pub mount_point: PathBuf,
}

impl ControllerCgroup {
    /// The process's cgroup directory and its ancestors up to the mount
    /// point, the process's own first.
    pub fn ancestors(&self) -> impl Iterator<Item = &Path> {
        self.dir
            .ancestors()
            .take_while(|d| d.starts_with(&self.mount_point))
    }
}

/// The task limit of the `pids` controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidsLimit {
    /// The effective limit: the smallest `pids.max` of the process's cgroup
    /// and its ancestors; `None` when all are `max` (unlimited).
    pub max: Option<u64>,
    /// `pids.current` (tasks, that is threads, counted) in the cgroup that
    /// sets `max`, or in the process's own cgroup when there is no limit;
    /// `None` when that cgroup has no `pids.current` (the root cgroup).
    pub current: Option<u64>,
    /// The process's cgroup directory.
    pub cgroup_path: PathBuf,
    /// The cgroup directory whose `pids.max` is `max` (the process's own or
    /// an ancestor), when there is a limit.
    pub limited_by: Option<PathBuf>,
}

/// A CPU bandwidth limit (CFS quota).
#[derive(Debug, Clone, PartialEq)]
pub struct CpuQuota {
    /// The effective limit in CPUs: the smallest `quota / period` of the
    /// process's cgroup and its ancestors.
    pub cpus: f64,
    pub quota_us: u64,
    pub period_us: u64,
    /// The cgroup directory that sets this limit.
    pub cgroup_path: PathBuf,
    /// The limit of the process's own cgroup alone, if it has one. This is
    /// what the Go runtime reads for its default GOMAXPROCS (it ignores
    /// ancestors; see [`super::gomaxprocs`]), so it can differ from `cpus`.
    pub leaf_cpus: Option<f64>,
    pub version: CgroupVersion,
}

/// CPU bandwidth throttling counters (`cpu.stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Throttling {
    /// Enforcement periods that elapsed with runnable tasks.
    pub periods: u64,
    /// Periods in which the cgroup used up its quota and was stopped.
    pub throttled_periods: u64,
    /// Total time its tasks were held back, in nanoseconds.
    pub throttled_ns: u64,
    /// The cgroup directory these counters are from.
    pub cgroup_path: PathBuf,
}

/// The lines of `/proc/PID/cgroup`.
pub fn cgroups(pid: u32) -> Result<Vec<CgroupLine>> {
    let text = read_pid_file(pid, "cgroup")?;
    parse_cgroup_file(&text).ok_or_else(|| {
        malformed(
            &pid_path(pid, "cgroup"),
            "expected `ID:controllers:/path` lines",
        )
    })
}

/// The cgroup mounts the tracer sees.
pub fn cgroup_mounts() -> Result<Vec<CgroupMount>> {
    let path = Path::new("/proc/self/mountinfo");
    let text = read_text(path, Owner::None)?;
    parse_mountinfo(&text)
        .ok_or_else(|| malformed(path, "a line has fewer fields than mountinfo(5) lists"))
}

/// Where `pid`'s cgroup for `controller` (`cpu`, `pids`, `memory`...) is;
/// `None` when no mounted hierarchy has that controller.
pub fn controller_cgroup(pid: u32, controller: &str) -> Result<Option<ControllerCgroup>> {
    let lines = cgroups(pid)?;
    let mounts = cgroup_mounts()?;
    let v2_offers = |mount_point: &Path| {
        std::fs::read_to_string(mount_point.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_ascii_whitespace().any(|c| c == controller))
    };
    resolve(&lines, &mounts, controller, &v2_offers)
        .map_err(|cgroup| ProcInfoError::CgroupNotVisible { pid, cgroup })
}

/// The effective `pids` limit of `pid`; `None` when no hierarchy has the
/// `pids` controller.
pub fn pids_limit(pid: u32) -> Result<Option<PidsLimit>> {
    let Some(cg) = controller_cgroup(pid, "pids")? else {
        return Ok(None);
    };
    let mut limit: Option<(u64, &Path)> = None;
    for dir in cg.ancestors() {
        let path = dir.join("pids.max");
        let Some(text) = read_optional(&path)? else {
            continue;
        };
        match parse_max_or_number(&text) {
            Some(Some(n)) if limit.is_none_or(|(m, _)| n < m) => limit = Some((n, dir)),
            Some(_) => {}
            None => {
                return Err(malformed(
                    &path,
                    format!("expected `max` or a number, got {:?}", text.trim()),
                ));
            }
        }
    }
    let current_dir = limit.map_or(cg.dir.as_path(), |(_, d)| d);
    let current_path = current_dir.join("pids.current");
    let current = match read_optional(&current_path)? {
        Some(text) => Some(text.trim().parse().map_err(|_| {
            malformed(
                &current_path,
                format!("expected a number, got {:?}", text.trim()),
            )
        })?),
        None => None,
    };
    Ok(Some(PidsLimit {
        max: limit.map(|(n, _)| n),
        current,
        limited_by: limit.map(|(_, d)| d.to_owned()),
        cgroup_path: cg.dir,
    }))
}

/// The effective CPU quota of `pid`; `None` when there is none (no `cpu`
/// controller, or no quota on the process's cgroup or any ancestor).
pub fn cpu_quota(pid: u32) -> Result<Option<CpuQuota>> {
    match controller_cgroup(pid, "cpu")? {
        Some(cg) => quota_in(&cg),
        None => Ok(None),
    }
}

/// The CPU throttling counters of `pid`'s CPU cgroup: the one that sets the
/// effective quota (where the kernel accounts the throttling), else the
/// process's own. `None` without a `cpu` controller, or when that cgroup's
/// `cpu.stat` has no bandwidth counters (a v2 root cgroup).
pub fn cpu_throttling(pid: u32) -> Result<Option<Throttling>> {
    let Some(cg) = controller_cgroup(pid, "cpu")? else {
        return Ok(None);
    };
    let dir = match quota_in(&cg)? {
        Some(q) => q.cgroup_path,
        None => cg.dir.clone(),
    };
    let path = dir.join("cpu.stat");
    let Some(text) = read_optional(&path)? else {
        return Ok(None);
    };
    Ok(
        parse_cpu_stat(&text, cg.version).map(|(periods, throttled_periods, throttled_ns)| {
            Throttling {
                periods,
                throttled_periods,
                throttled_ns,
                cgroup_path: dir,
            }
        }),
    )
}

/// The tightest quota of `cg` and its ancestors.
fn quota_in(cg: &ControllerCgroup) -> Result<Option<CpuQuota>> {
    let mut best: Option<CpuQuota> = None;
    let mut leaf_cpus = None;
    for (depth, dir) in cg.ancestors().enumerate() {
        let Some((quota_us, period_us)) = read_quota(cg.version, dir)? else {
            continue;
        };
        // Both are below 2^44 µs (the kernel's bounds), exact in an f64.
        let cpus = quota_us as f64 / period_us as f64;
        if depth == 0 {
            leaf_cpus = Some(cpus);
        }
        if best.as_ref().is_none_or(|b| cpus < b.cpus) {
            best = Some(CpuQuota {
                cpus,
                quota_us,
                period_us,
                cgroup_path: dir.to_owned(),
                leaf_cpus: None,
                version: cg.version,
            });
        }
    }
    Ok(best.map(|b| CpuQuota { leaf_cpus, ..b }))
}

/// `(quota_us, period_us)` of one cgroup directory, or `None` when it sets
/// no quota (or has no quota files).
fn read_quota(version: CgroupVersion, dir: &Path) -> Result<Option<(u64, u64)>> {
    match version {
        CgroupVersion::V2 => {
            let path = dir.join("cpu.max");
            let Some(text) = read_optional(&path)? else {
                return Ok(None);
            };
            parse_cpu_max(&text).ok_or_else(|| {
                malformed(
                    &path,
                    format!(
                        "expected `max PERIOD` or `QUOTA PERIOD`, got {:?}",
                        text.trim()
                    ),
                )
            })
        }
        CgroupVersion::V1 => {
            let quota_path = dir.join("cpu.cfs_quota_us");
            let Some(quota) = read_optional(&quota_path)? else {
                return Ok(None);
            };
            let Some(quota) = parse_v1_quota(&quota) else {
                return Err(malformed(
                    &quota_path,
                    format!("expected -1 or a number, got {:?}", quota.trim()),
                ));
            };
            let Some(quota) = quota else {
                return Ok(None);
            };
            let period_path = dir.join("cpu.cfs_period_us");
            let period = read_optional(&period_path)?.unwrap_or_default();
            match period.trim().parse::<u64>() {
                Ok(p) if p > 0 => Ok(Some((quota, p))),
                _ => Err(malformed(
                    &period_path,
                    format!("expected a positive number, got {:?}", period.trim()),
                )),
            }
        }
    }
}

/// Finds the directory of the cgroup in `lines` for `controller`, given
/// the mounts; `v2_offers(mount_point)` says whether a v2 hierarchy has the
/// controller. `Err(cgroup)` when the cgroup lies outside every mount.
fn resolve(
    lines: &[CgroupLine],
    mounts: &[CgroupMount],
    controller: &str,
    v2_offers: &dyn Fn(&Path) -> bool,
) -> Result<Option<ControllerCgroup>, String> {
    let v1 = lines
        .iter()
        .find(|l| l.hierarchy_id != 0 && l.controllers.iter().any(|c| c == controller));
    if let Some(line) = v1 {
        let candidates = mounts.iter().filter(|m| m.has_v1_controller(controller));
        return place(line, candidates, CgroupVersion::V1);
    }
    let Some(line) = lines.iter().find(|l| l.hierarchy_id == 0) else {
        return Ok(None);
    };
    let candidates = mounts
        .iter()
        .filter(|m| m.version == CgroupVersion::V2 && v2_offers(&m.mount_point));
    place(line, candidates, CgroupVersion::V2)
}

/// The directory of `line`'s cgroup under the first of `mounts` whose root
/// contains it; `Ok(None)` when there is no such mount at all.
fn place<'a>(
    line: &CgroupLine,
    mounts: impl Iterator<Item = &'a CgroupMount>,
    version: CgroupVersion,
) -> Result<Option<ControllerCgroup>, String> {
    let mut any = false;
    for mount in mounts {
        any = true;
        let Some(rel) = strip_root(&line.path, &mount.root) else {
            continue;
        };
        if rel.split('/').any(|c| c == "..") {
            continue;
        }
        let rel = rel.trim_start_matches('/');
        let dir = if rel.is_empty() {
            mount.mount_point.clone()
        } else {
            mount.mount_point.join(rel)
        };
        return Ok(Some(ControllerCgroup {
            version,
            dir,
            mount_point: mount.mount_point.clone(),
        }));
    }
    if any {
        Err(line.path.clone())
    } else {
        Ok(None)
    }
}

/// `path` relative to the mount's `root`, if the root contains it.
fn strip_root<'a>(path: &'a str, root: &str) -> Option<&'a str> {
    if root == "/" {
        return Some(path);
    }
    let rest = path.strip_prefix(root.trim_end_matches('/'))?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

fn parse_cgroup_file(text: &str) -> Option<Vec<CgroupLine>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy_id = parts.next()?.parse().ok()?;
            let controllers = parts
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            let path = parts.next()?;
            path.starts_with('/').then(|| CgroupLine {
                hierarchy_id,
                controllers,
                path: path.to_owned(),
            })
        })
        .collect()
}

/// The `cgroup` and `cgroup2` mounts of a mountinfo text (proc_pid_mountinfo(5)):
///
/// ```text
/// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
/// (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
/// ```
///
/// `None` when a line is not of that shape.
fn parse_mountinfo(text: &str) -> Option<Vec<CgroupMount>> {
    let mut mounts = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(' ').collect();
        let sep = fields.iter().position(|f| *f == "-")?;
        if sep < 6 {
            return None;
        }
        let (root, mount_point) = (fields[3], fields[4]);
        let fs_type = *fields.get(sep + 1)?;
        let super_options = fields.get(sep + 3).copied().unwrap_or("");
        let version = match fs_type {
            "cgroup" => CgroupVersion::V1,
            "cgroup2" => CgroupVersion::V2,
            _ => continue,
        };
        mounts.push(CgroupMount {
            version,
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mount_point)),
            super_options: super_options.split(',').map(str::to_owned).collect(),
        });
    }
    Some(mounts)
}

/// Undoes the kernel's `show_path` escaping: space, tab, newline and
/// backslash appear as `\040`, `\011`, `\012` and `\134`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `max` → `Some(None)`, a number → `Some(Some(n))` (`pids.max`).
fn parse_max_or_number(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        n => n.parse().ok().map(Some),
    }
}

/// v2 `cpu.max`: `max 100000` (no quota) or `50000 100000`.
/// `Some(None)` without a quota, `Some(Some((quota, period)))` with one.
fn parse_cpu_max(text: &str) -> Option<Option<(u64, u64)>> {
    let mut words = text.split_ascii_whitespace();
    let quota = words.next()?;
    let period = words.next().map(str::parse::<u64>);
    if words.next().is_some() {
        return None;
    }
    if quota == "max" {
        return match period {
            None | Some(Ok(_)) => Some(None),
            Some(Err(_)) => None,
        };
    }
    match (quota.parse::<u64>(), period) {
        (Ok(q), Some(Ok(p))) if p > 0 => Some(Some((q, p))),
        _ => None,
    }
}

/// v1 `cpu.cfs_quota_us`: `-1` (no quota) or microseconds.
fn parse_v1_quota(text: &str) -> Option<Option<u64>> {
    let n: i64 = text.trim().parse().ok()?;
    if n < 0 {
        Some(None)
    } else {
        u64::try_from(n).ok().map(Some)
    }
}

/// `(periods, throttled periods, throttled ns)` from `cpu.stat`. v2 has
/// `nr_periods`, `nr_throttled`, `throttled_usec`; v1 has `nr_periods`,
/// `nr_throttled`, `throttled_time` (ns). `None` when they are absent.
fn parse_cpu_stat(text: &str, version: CgroupVersion) -> Option<(u64, u64, u64)> {
    let get = |key: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok())?
        })
    };
    let throttled_ns = match version {
        CgroupVersion::V2 => get("throttled_usec")?.checked_mul(1000)?,
        CgroupVersion::V1 => get("throttled_time")?,
    };
    Some((get("nr_periods")?, get("nr_throttled")?, throttled_ns))
}

/// The statfs magic of a cgroup v2 file system.
const CGROUP2_MAGIC: i64 = 0x6367_7270;

/// Why a cgroup v2 directory given by the user cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "this host has no cgroup v2 hierarchy (no cgroup2 mount in /proc/self/mountinfo): \
         mount one (`mount -t cgroup2 none /sys/fs/cgroup/unified`) or boot with \
         systemd.unified_cgroup_hierarchy=1; until then select processes another way"
    )]
    NoCgroup2,
    #[error(
        "no cgroup {given}: it is neither a directory under the cgroup v2 mount ({mounts}) nor \
         a cgroup path as the `0::` line of /proc/PID/cgroup shows it (`/system.slice/x.service`); \
         list the cgroups with `ls {first}` or `systemd-cgls`, or read a process's with \
         `cat /proc/PID/cgroup`"
    )]
    NotFound {
        given: PathBuf,
        mounts: String,
        first: String,
    },
    #[error("{given} is not a directory: a cgroup is a directory; give the one that holds it")]
    NotDirectory { given: PathBuf },
    #[error(
        "{given} is not in the cgroup v2 hierarchy (mounted at {mounts}; a v1 hierarchy such as \
         /sys/fs/cgroup/cpu, or another file system, is not): give a directory under {first}, or \
         the cgroup's path as the `0::` line of /proc/PID/cgroup shows it"
    )]
    NotCgroup2 {
        given: PathBuf,
        mounts: String,
        first: String,
    },
    #[error("cannot read {path}: {source}; run as root")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Mounts(#[from] ProcInfoError),
}

/// A cgroup v2 directory given by the user: it holds every process in it
/// or in any cgroup below it.
///
/// Given either as the directory under the cgroup2 mount
/// (`/sys/fs/cgroup/system.slice/x.service`) or as the cgroup's path
/// relative to the hierarchy's root, as the `0::` line of
/// `/proc/PID/cgroup` shows it (`/system.slice/x.service`). A path under a
/// cgroup2 mount point is taken as the directory; any other as a cgroup
/// path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupDir {
    dir: PathBuf,
    path: String,
    id: u64,
}

impl CgroupDir {
    /// Finds and checks `given` (see the type's doc) against the cgroup2
    /// mounts of `/proc/self/mountinfo`.
    pub fn open(given: &Path) -> Result<Self, CgroupError> {
        let mounts = cgroup_mounts()?;
        let v2: Vec<&CgroupMount> = mounts
            .iter()
            .filter(|m| m.version == CgroupVersion::V2)
            .collect();
        let given_abs = std::fs::canonicalize(given)
            .or_else(|_| std::path::absolute(given))
            .unwrap_or_else(|_| given.to_owned());
        let (dir, path) = locate(given, &given_abs, &v2, &|p: &Path| p.exists())?;
        let meta = std::fs::metadata(&dir).map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => not_found(given, &v2),
            _ => CgroupError::Read {
                path: dir.clone(),
                source,
            },
        })?;
        if !meta.is_dir() {
            return Err(CgroupError::NotDirectory {
                given: given.to_owned(),
            });
        }
        // A mount point's path alone could be shadowed by another mount.
        if !is_cgroup2(&dir) {
            return Err(not_cgroup2(given, &v2));
        }
        Ok(Self {
            dir,
            path,
            id: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }

    /// The directory (`/sys/fs/cgroup/system.slice/x.service`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup's path as `/proc/PID/cgroup` shows it
    /// (`/system.slice/x.service`; `/` for the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The directory's inode number: on cgroup v2 (64-bit kernels) the
    /// kernel's cgroup id, as `bpf_get_current_cgroup_id` returns it.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Its depth below the hierarchy's root (the root is 0): for
    /// `bpf_get_current_ancestor_cgroup_id(level) == id()`. Counted from
    /// the root the tracer sees, which is the kernel's root when the
    /// tracer runs in the host's cgroup namespace.
    pub fn level(&self) -> u32 {
        let depth = self.path.split('/').filter(|c| !c.is_empty()).count();
        u32::try_from(depth).unwrap_or(u32::MAX)
    }

    /// `pid` is in this cgroup or one below it (false once it is gone).
    pub fn contains(&self, pid: u32) -> bool {
        of_process(pid).is_some_and(|p| self.holds(&p))
    }

    /// The cgroup at `v2_path` (a `/proc/PID/cgroup` path) is this one or
    /// below it. A path outside the reader's cgroup namespace (with `..`)
    /// is in none.
    pub fn holds(&self, v2_path: &str) -> bool {
        !v2_path.split('/').any(|c| c == "..") && strip_root(v2_path, &self.path).is_some()
    }

    /// A cgroup that was never checked against the file system.
    #[cfg(test)]
    pub(crate) fn for_test(path: &str) -> Self {
        Self {
            dir: PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/')),
            path: path.to_owned(),
            id: 1,
        }
    }
}

/// The cgroup v2 path of `pid` (`/system.slice/x.service`), as the `0::`
/// line of `/proc/PID/cgroup` shows it; `None` when the process is gone
/// or the kernel has no such line.
pub fn of_process(pid: u32) -> Option<String> {
    let text = read_pid_file(pid, "cgroup").ok()?;
    v2_path(&text).map(str::to_owned)
}

/// The path of the `0::` line of a `/proc/PID/cgroup` text.
pub fn v2_path(cgroup_file: &str) -> Option<&str> {
    cgroup_file
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .filter(|p| p.starts_with('/'))
}

/// Where `given` is among the cgroup2 `mounts`: (directory, cgroup path).
/// `given_abs` is `given` made absolute (and resolved when it exists);
/// `exists` says whether a path exists.
fn locate(
    given: &Path,
    given_abs: &Path,
    mounts: &[&CgroupMount],
    exists: &dyn Fn(&Path) -> bool,
) -> Result<(PathBuf, String), CgroupError> {
    if mounts.is_empty() {
        return Err(CgroupError::NoCgroup2);
    }
    // The directory itself: under the deepest mount point holding it.
    let holder = mounts
        .iter()
        .filter(|m| given_abs.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count());
    if let Some(m) = holder {
        let rel = given_abs.strip_prefix(&m.mount_point).unwrap_or(given_abs);
        if !exists(given_abs) {
            return Err(not_found(given, mounts));
        }
        return Ok((given_abs.to_owned(), join_cgroup(&m.root, rel)));
    }
    // A cgroup path: under the first mount whose root holds it.
    if given.has_root() && !given.components().any(|c| c == Component::ParentDir) {
        let path = join_cgroup("/", given);
        for m in mounts {
            let Some(rel) = strip_root(&path, &m.root) else {
                continue;
            };
            let dir = m.mount_point.join(rel.trim_start_matches('/'));
            if exists(&dir) {
                return Ok((dir, path));
            }
        }
    }
    if exists(given_abs) {
        Err(not_cgroup2(given, mounts))
    } else {
        Err(not_found(given, mounts))
    }
}

/// `root` followed by `rel`'s names, `/`-separated, without a trailing
/// `/` (`/` alone for the root).
fn join_cgroup(root: &str, rel: &Path) -> String {
    let mut out = root.trim_end_matches('/').to_owned();
    for c in rel.components() {
        if let Component::Normal(name) = c {
            out.push('/');
            out.push_str(&name.to_string_lossy());
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn mount_list(mounts: &[&CgroupMount]) -> (String, String) {
    let all: Vec<String> = mounts
        .iter()
        .map(|m| m.mount_point.display().to_string())
        .collect();
    let first = all.first().cloned().unwrap_or_default();
    (all.join(", "), first)
}

fn not_found(given: &Path, mounts: &[&CgroupMount]) -> CgroupError {
    let (mounts, first) = mount_list(mounts);
    CgroupError::NotFound {
        given: given.to_owned(),
        mounts,
        first,
    }
}

fn not_cgroup2(given: &Path, mounts: &[&CgroupMount]) -> CgroupError {
    let (mounts, first) = mount_list(mounts);
    CgroupError::NotCgroup2 {
        given: given.to_owned(),
        mounts,
        first,
    }
}

/// The file system holding `dir` is cgroup v2.
fn is_cgroup2(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; all zeroes is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statfs struct to fill.
    let ok = unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0;
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    ok && magic == CGROUP2_MAGIC
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::procinfo::testutil::Sleeper;

    /// `/proc/self/cgroup` on this hybrid machine (v1 controllers and a
    /// controller-less v2).
    const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
7:blkio:/
6:freezer:/
5:devices:/
4:memory:/process_api/4578f5fdf2b50d878fef1f95807b984f
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    /// The cgroup lines of `/proc/self/mountinfo` on the same machine, plus
    /// an unrelated line.
    const HYBRID_MOUNTINFO: &str = "\
23 1 253:0 / / rw,relatime - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd machine with only cgroup v2 (Debian 12).
    const V2_MOUNTINFO: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,errors=remount-ro
31 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    /// A v1 container without a cgroup namespace: the host cgroup
    /// `/docker/abc` is bind-mounted at each hierarchy's mount point.
    const CONTAINER_MOUNTINFO: &str = "\
700 690 0:29 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime master:11 - cgroup cgroup rw,cpu,cpuacct
701 690 0:36 /docker/abc /sys/fs/cgroup/pids ro,nosuid,nodev,noexec,relatime master:17 - cgroup cgroup rw,pids
";

    fn mounts(text: &str) -> Vec<CgroupMount> {
        parse_mountinfo(text).unwrap()
    }

    fn v2_of(m: &[CgroupMount]) -> Vec<&CgroupMount> {
        m.iter()
            .filter(|m| m.version == CgroupVersion::V2)
            .collect()
    }

    /// `locate` with the paths in `existing` existing.
    fn locate_in(
        given: &str,
        mounts: &[&CgroupMount],
        existing: &[&str],
    ) -> Result<(PathBuf, String), CgroupError> {
        let exists = |p: &Path| existing.iter().any(|e| Path::new(e) == p);
        locate(Path::new(given), Path::new(given), mounts, &exists)
    }

    #[test]
    fn locates_a_directory_or_a_cgroup_path() {
        let m = mounts(V2_MOUNTINFO);
        let v2 = v2_of(&m);
        let dir = "/sys/fs/cgroup/system.slice/x.service";
        let want = (PathBuf::from(dir), "/system.slice/x.service".to_owned());
        for given in [dir, "/system.slice/x.service", "/system.slice/x.service/"] {
            assert_eq!(locate_in(given, &v2, &[dir]).unwrap(), want, "{given}");
        }
        // The mount point is the root, both ways.
        let root = (PathBuf::from("/sys/fs/cgroup"), "/".to_owned());
        assert_eq!(
            locate_in("/sys/fs/cgroup", &v2, &["/sys/fs/cgroup"]).unwrap(),
            root
        );
        assert_eq!(locate_in("/", &v2, &["/sys/fs/cgroup", "/"]).unwrap(), root);
        // A real directory elsewhere is not a cgroup; nothing is not found.
        let e = locate_in("/tmp", &v2, &["/tmp"]).unwrap_err();
        assert!(matches!(e, CgroupError::NotCgroup2 { .. }), "{e}");
        let e = locate_in("/no.slice", &v2, &[]).unwrap_err();
        assert!(matches!(e, CgroupError::NotFound { .. }), "{e}");
        let e = locate_in("/sys/fs/cgroup/gone", &v2, &[]).unwrap_err();
        assert!(matches!(e, CgroupError::NotFound { .. }), "{e}");
        // `..` never climbs out as a cgroup path.
        let e = locate_in("/../etc", &v2, &["/sys/fs/cgroup/etc"]).unwrap_err();
        assert!(matches!(e, CgroupError::NotFound { .. }), "{e}");
        let e = locate_in("/x", &[], &[]).unwrap_err();
        assert!(matches!(e, CgroupError::NoCgroup2), "{e}");
    }

    #[test]
    fn locates_in_hybrid_and_bind_mounted_hierarchies() {
        let m = mounts(HYBRID_MOUNTINFO);
        let v2 = v2_of(&m);
        let dir = "/sys/fs/cgroup/unified/gt";
        let want = (PathBuf::from(dir), "/gt".to_owned());
        assert_eq!(locate_in(dir, &v2, &[dir]).unwrap(), want);
        assert_eq!(locate_in("/gt", &v2, &[dir]).unwrap(), want);
        // A v1 hierarchy's directory is not a v2 cgroup.
        let v1 = "/sys/fs/cgroup/cpu/gt";
        let e = locate_in(v1, &v2, &[v1]).unwrap_err();
        assert!(matches!(e, CgroupError::NotCgroup2 { .. }), "{e}");
        // The host cgroup /docker/abc bind-mounted at the mount point.
        let c = mounts("1 2 0:9 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n");
        let v2 = v2_of(&c);
        let dir = "/sys/fs/cgroup/sub";
        let want = (PathBuf::from(dir), "/docker/abc/sub".to_owned());
        assert_eq!(locate_in(dir, &v2, &[dir]).unwrap(), want);
        assert_eq!(locate_in("/docker/abc/sub", &v2, &[dir]).unwrap(), want);
        let e = locate_in("/docker/other", &v2, &[]).unwrap_err();
        assert!(matches!(e, CgroupError::NotFound { .. }), "{e}");
    }

    #[test]
    fn errors_say_what_to_do() {
        let m = mounts(HYBRID_MOUNTINFO);
        let v2 = v2_of(&m);
        let e = locate_in("/nope", &v2, &[]).unwrap_err().to_string();
        assert!(
            e.contains("no cgroup /nope") && e.contains("ls /sys/fs/cgroup/unified"),
            "{e}"
        );
        let e = locate_in("/tmp", &v2, &["/tmp"]).unwrap_err().to_string();
        assert!(
            e.contains("/tmp is not in the cgroup v2 hierarchy")
                && e.contains("give a directory under /sys/fs/cgroup/unified"),
            "{e}"
        );
        let e = locate_in("/x", &[], &[]).unwrap_err().to_string();
        assert!(e.contains("no cgroup v2") && e.contains("mount"), "{e}");
    }

    #[test]
    fn holds_its_cgroup_and_those_below() {
        let c = CgroupDir::for_test("/system.slice/x.service");
        assert!(c.holds("/system.slice/x.service"));
        assert!(c.holds("/system.slice/x.service/sub/leaf"));
        assert!(!c.holds("/system.slice/x.service2"));
        assert!(!c.holds("/system.slice"));
        assert_eq!(c.level(), 2);
        let root = CgroupDir::for_test("/");
        assert!(root.holds("/") && root.holds("/a/b"));
        // Outside the reader's cgroup namespace.
        assert!(!root.holds("/../../kubepods"));
        assert_eq!(root.level(), 0);
        assert_eq!(v2_path(HYBRID_CGROUP), Some("/"));
        assert_eq!(v2_path("0::/a b/c\n1:cpu:/\n"), Some("/a b/c"));
        assert_eq!(v2_path("1:cpu:/\n"), None);
    }

    /// On this host's cgroup v2 hierarchy, if it has one: the root, this
    /// process's own cgroup, and the errors of what is not a cgroup.
    #[test]
    fn opens_real_cgroups() {
        let m = cgroup_mounts().unwrap();
        let Some(mount) = m
            .iter()
            .find(|m| m.version == CgroupVersion::V2 && m.root == "/")
        else {
            eprintln!("skipped: no cgroup v2 mount of the root here");
            return;
        };
        let root = CgroupDir::open(&mount.mount_point).unwrap();
        assert_eq!((root.path(), root.level()), ("/", 0));
        let ino = fs::metadata(&mount.mount_point).unwrap();
        assert_eq!(root.id(), std::os::unix::fs::MetadataExt::ino(&ino));
        let own = of_process(std::process::id()).unwrap();
        let mine = CgroupDir::open(Path::new(&own)).unwrap();
        assert_eq!(mine.path(), own);
        assert!(mine.contains(std::process::id()) && root.contains(std::process::id()));
        assert!(!mine.contains(4_194_305), "a PID past pid_max");
        let e = CgroupDir::open(Path::new("/proc")).unwrap_err();
        assert!(matches!(e, CgroupError::NotCgroup2 { .. }), "{e}");
        let e = CgroupDir::open(Path::new("/gotracer-no-such-cgroup")).unwrap_err();
        assert!(matches!(e, CgroupError::NotFound { .. }), "{e}");
        let e = CgroupDir::open(&mount.mount_point.join("cgroup.procs")).unwrap_err();
        assert!(matches!(e, CgroupError::NotDirectory { .. }), "{e}");
    }

    #[test]
    fn parses_cgroup_lines() {
        let lines = parse_cgroup_file(HYBRID_CGROUP).unwrap();
        assert_eq!(lines.len(), 10);
        assert_eq!(
            lines[0],
            CgroupLine {
                hierarchy_id: 9,
                controllers: vec!["name=systemd".to_owned()],
                path: "/".to_owned()
            }
        );
        assert_eq!(
            lines[5].path,
            "/process_api/4578f5fdf2b50d878fef1f95807b984f"
        );
        assert_eq!(
            lines[9],
            CgroupLine {
                hierarchy_id: 0,
                controllers: vec![],
                path: "/".to_owned()
            }
        );
        let co = parse_cgroup_file("1:cpu,cpuacct:/y\n0::/a:b\n").unwrap();
        assert_eq!(co[0].controllers, ["cpu", "cpuacct"]);
        assert_eq!(co[1].path, "/a:b");
    }

    #[test]
    fn rejects_odd_cgroup_lines() {
        for bad in ["x::/", "0:/", "0::relative", "1:cpu"] {
            assert_eq!(parse_cgroup_file(bad), None, "{bad:?}");
        }
        assert_eq!(parse_cgroup_file(""), Some(vec![]));
    }

    #[test]
    fn parses_mountinfo() {
        let m = mounts(HYBRID_MOUNTINFO);
        assert_eq!(m.len(), 10);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/cpu"));
        assert!(m[0].has_v1_controller("cpu"));
        assert!(!m[1].has_v1_controller("cpu"));
        assert_eq!(m[9].version, CgroupVersion::V2);
        assert!(!m[9].has_v1_controller("rw"));
        let c = mounts(CONTAINER_MOUNTINFO);
        assert_eq!(c[0].root, "/docker/abc");
        assert!(c[0].has_v1_controller("cpu") && c[0].has_v1_controller("cpuacct"));
        let esc = "1 2 0:1 /a\\040b /sys/fs/cgroup/my\\040dir rw - cgroup2 none rw\n";
        let e = mounts(esc);
        assert_eq!(e[0].root, "/a b");
        assert_eq!(e[0].mount_point, Path::new("/sys/fs/cgroup/my dir"));
        assert_eq!(parse_mountinfo("1 2 3 - x"), None);
        assert_eq!(parse_mountinfo("1 2 0:1 / /x rw no-separator"), None);
    }

    #[test]
    fn unescapes_mount_paths() {
        assert_eq!(unescape(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
        assert_eq!(unescape(r"\999"), r"\999");
        assert_eq!(unescape(r"\777"), "?");
    }

    #[test]
    fn resolves_hybrid_controllers_to_v1() {
        let lines = parse_cgroup_file(HYBRID_CGROUP).unwrap();
        let m = mounts(HYBRID_MOUNTINFO);
        let none = |_: &Path| false;
        let cpu = resolve(&lines, &m, "cpu", &none).unwrap().unwrap();
        assert_eq!(cpu.version, CgroupVersion::V1);
        assert_eq!(cpu.dir, Path::new("/sys/fs/cgroup/cpu"));
        let mem = resolve(&lines, &m, "memory", &none).unwrap().unwrap();
        assert_eq!(
            mem.dir,
            Path::new("/sys/fs/cgroup/memory/process_api/4578f5fdf2b50d878fef1f95807b984f")
        );
        assert_eq!(
            mem.ancestors().collect::<Vec<_>>(),
            [
                Path::new("/sys/fs/cgroup/memory/process_api/4578f5fdf2b50d878fef1f95807b984f"),
                Path::new("/sys/fs/cgroup/memory/process_api"),
                Path::new("/sys/fs/cgroup/memory"),
            ]
        );
        // The controller-less v2 hierarchy does not offer `io`.
        assert_eq!(resolve(&lines, &m, "io", &none), Ok(None));
        let all = |_: &Path| true;
        let io = resolve(&lines, &m, "io", &all).unwrap().unwrap();
        assert_eq!(io.version, CgroupVersion::V2);
        assert_eq!(io.dir, Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn resolves_pure_v2() {
        let lines = parse_cgroup_file("0::/system.slice/app.service\n").unwrap();
        let m = mounts(V2_MOUNTINFO);
        let offers = |p: &Path| p == Path::new("/sys/fs/cgroup");
        let pids = resolve(&lines, &m, "pids", &offers).unwrap().unwrap();
        assert_eq!(pids.version, CgroupVersion::V2);
        assert_eq!(
            pids.dir,
            Path::new("/sys/fs/cgroup/system.slice/app.service")
        );
        assert_eq!(pids.ancestors().count(), 3);
        assert_eq!(resolve(&lines, &m, "pids", &|_: &Path| false), Ok(None));
        // No cgroup lines at all (a kernel without cgroups).
        assert_eq!(resolve(&[], &m, "pids", &offers), Ok(None));
    }

    #[test]
    fn resolves_under_a_bind_mounted_root() {
        let lines =
            parse_cgroup_file("5:pids:/docker/abc\n4:cpu,cpuacct:/docker/abc/sub\n").unwrap();
        let m = mounts(CONTAINER_MOUNTINFO);
        let none = |_: &Path| false;
        let pids = resolve(&lines, &m, "pids", &none).unwrap().unwrap();
        assert_eq!(pids.dir, Path::new("/sys/fs/cgroup/pids"));
        let cpu = resolve(&lines, &m, "cpu", &none).unwrap().unwrap();
        assert_eq!(cpu.dir, Path::new("/sys/fs/cgroup/cpu,cpuacct/sub"));
        // A cgroup outside the mount's root, or above the namespace root.
        let outside = parse_cgroup_file("5:pids:/docker/other\n").unwrap();
        assert_eq!(
            resolve(&outside, &m, "pids", &none),
            Err("/docker/other".to_owned())
        );
        let above = parse_cgroup_file("0::/../../init.scope\n").unwrap();
        let v2 = mounts(V2_MOUNTINFO);
        assert_eq!(
            resolve(&above, &v2, "pids", &|_: &Path| true),
            Err("/../../init.scope".to_owned())
        );
    }

    #[test]
    fn strips_mount_roots() {
        assert_eq!(strip_root("/a/b", "/"), Some("/a/b"));
        assert_eq!(strip_root("/a/b", "/a"), Some("/b"));
        assert_eq!(strip_root("/a", "/a"), Some(""));
        assert_eq!(strip_root("/ab", "/a"), None);
        assert_eq!(strip_root("/b", "/a"), None);
    }

    #[test]
    fn parses_limit_files() {
        assert_eq!(parse_max_or_number("max\n"), Some(None));
        assert_eq!(parse_max_or_number("512\n"), Some(Some(512)));
        assert_eq!(parse_max_or_number("-1\n"), None);
        assert_eq!(parse_max_or_number(""), None);

        assert_eq!(parse_cpu_max("max 100000\n"), Some(None));
        assert_eq!(parse_cpu_max("max\n"), Some(None));
        assert_eq!(
            parse_cpu_max("50000 100000\n"),
            Some(Some((50_000, 100_000)))
        );
        assert_eq!(
            parse_cpu_max("150000 100000"),
            Some(Some((150_000, 100_000)))
        );
        for bad in [
            "",
            "50000",
            "50000 0",
            "x 100000",
            "max y",
            "1 2 3",
            "-5 100000",
        ] {
            assert_eq!(parse_cpu_max(bad), None, "{bad:?}");
        }

        assert_eq!(parse_v1_quota("-1\n"), Some(None));
        assert_eq!(parse_v1_quota("50000\n"), Some(Some(50_000)));
        assert_eq!(parse_v1_quota("lots"), None);
    }

    #[test]
    fn parses_cpu_stat() {
        // v1 `cpu.stat` on this machine.
        let v1 = "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n";
        assert_eq!(parse_cpu_stat(v1, CgroupVersion::V1), Some((0, 0, 0)));
        let v1 = "nr_periods 120\nnr_throttled 7\nthrottled_time 45000000\n";
        assert_eq!(
            parse_cpu_stat(v1, CgroupVersion::V1),
            Some((120, 7, 45_000_000))
        );
        // v2 `cpu.stat` of a service with a quota.
        let v2 = "usage_usec 1504\nuser_usec 737\nsystem_usec 767\ncore_sched.force_idle_usec 0\n\
                  nr_periods 12\nnr_throttled 3\nthrottled_usec 2500\nnr_bursts 0\nburst_usec 0\n";
        assert_eq!(
            parse_cpu_stat(v2, CgroupVersion::V2),
            Some((12, 3, 2_500_000))
        );
        // A v2 root cgroup only has usage.
        let root = "usage_usec 13405911\nuser_usec 6902140\nsystem_usec 6503770\n";
        assert_eq!(parse_cpu_stat(root, CgroupVersion::V2), None);
        assert_eq!(parse_cpu_stat("nr_periods x\n", CgroupVersion::V1), None);
    }

    #[test]
    fn reads_own_cgroups() {
        let pid = std::process::id();
        let lines = cgroups(pid).unwrap();
        assert!(!lines.is_empty());
        let _ = cgroup_mounts().unwrap();
        // Whatever this machine has, these must not fail.
        let pids = pids_limit(pid).unwrap();
        let quota = cpu_quota(pid).unwrap();
        let throttling = cpu_throttling(pid).unwrap();
        eprintln!("pids {pids:?}\nquota {quota:?}\nthrottling {throttling:?}");
        if let Some(q) = quota {
            assert!(q.cpus > 0.0);
        }
    }

    /// Puts a child process into a new cgroup with a pids limit and a CPU
    /// quota, and reads them back. Needs root.
    #[test]
    fn reads_limits_of_a_limited_cgroup() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: creating cgroups needs root");
            return;
        }
        let me = std::process::id();
        let (Some(pids_cg), Some(cpu_cg)) = (
            controller_cgroup(me, "pids").unwrap(),
            controller_cgroup(me, "cpu").unwrap(),
        ) else {
            eprintln!("skipped: this machine has no pids or cpu cgroup controller mounted");
            return;
        };
        let name = format!("procinfo-test-{me}");
        let child = Sleeper::spawn(&[]);
        let pid = child.pid();
        let guard = Cleanup {
            dirs: vec![pids_cg.dir.join(&name), cpu_cg.dir.join(&name)],
        };
        let setup = || -> std::io::Result<()> {
            for (cg, limit_file, limit) in [
                (&pids_cg, "pids.max", "40"),
                (
                    &cpu_cg,
                    if cpu_cg.version == CgroupVersion::V2 {
                        "cpu.max"
                    } else {
                        "cpu.cfs_quota_us"
                    },
                    if cpu_cg.version == CgroupVersion::V2 {
                        "50000 100000"
                    } else {
                        "50000"
                    },
                ),
            ] {
                let dir = cg.dir.join(&name);
                if !dir.exists() {
                    fs::create_dir(&dir)?;
                }
                fs::write(dir.join(limit_file), limit)?;
                fs::write(dir.join("cgroup.procs"), pid.to_string())?;
            }
            Ok(())
        };
        if let Err(e) = setup() {
            // v2 refuses controllers in a cgroup that holds processes (the
            // "no internal processes" rule) unless already delegated.
            eprintln!("skipped: cannot set up a test cgroup here: {e}");
            drop(child);
            drop(guard);
            return;
        }
        let pids = pids_limit(pid).unwrap().unwrap();
        let quota = cpu_quota(pid).unwrap().unwrap();
        let throttling = cpu_throttling(pid).unwrap();
        drop(child);
        drop(guard);

        assert_eq!(pids.max, Some(40));
        assert_eq!(pids.current, Some(1));
        assert_eq!(
            pids.limited_by.as_deref(),
            Some(pids_cg.dir.join(&name).as_path())
        );
        assert_eq!(pids.cgroup_path, pids_cg.dir.join(&name));
        assert!((quota.cpus - 0.5).abs() < 1e-9, "{quota:?}");
        assert_eq!((quota.quota_us, quota.period_us), (50_000, 100_000));
        assert_eq!(quota.leaf_cpus, Some(0.5));
        let throttling = throttling.expect("a cgroup with a quota has bandwidth counters");
        assert_eq!(throttling.cgroup_path, cpu_cg.dir.join(&name));
    }

    /// Removes test cgroups (after their processes are gone).
    struct Cleanup {
        dirs: Vec<PathBuf>,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for dir in &self.dirs {
                // The killed child leaves the cgroup asynchronously.
                for _ in 0..50 {
                    if !dir.exists() || fs::remove_dir(dir).is_ok() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        }
    }
}
