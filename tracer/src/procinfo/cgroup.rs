//! The cgroup limits of a process, for cgroup v1 (one hierarchy per
//! controller), v2 (unified), and hybrid machines (v1 controllers beside an
//! empty v2): the controller's files are looked up where it is mounted.

use std::{
    fs,
    path::{Path, PathBuf},
};

use super::read;

/// One line of /proc/PID/cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Membership {
    /// Empty for v2 (`0::/path`).
    pub controllers: Vec<String>,
    pub path: String,
}

pub fn parse_cgroup(text: &str) -> Vec<Membership> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let _id = f.next()?;
            let controllers = f.next()?;
            let path = f.next()?;
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// A cgroup filesystem mount from /proc/self/mountinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the hierarchy that is mounted (usually `/`).
    pub root: String,
    pub mount_point: PathBuf,
    pub v2: bool,
    /// v1: the controllers of this hierarchy (from the super options).
    pub options: Vec<String>,
}

pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let left: Vec<&str> = left.split_whitespace().collect();
            let mut right = right.split_whitespace();
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(Mount {
                root: (*left.get(3)?).to_owned(),
                mount_point: PathBuf::from(*left.get(4)?),
                v2,
                options: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// The directory of `pid`'s cgroup for `controller`, with the mount point
/// (the top of what can be walked), when the controller is mounted and
/// `probe_file` exists there.
fn controller_dir(pid: u32, controller: &str, probe_file: &str) -> Option<(PathBuf, PathBuf)> {
    let memberships = parse_cgroup(&read(format!("/proc/{pid}/cgroup")).ok()?);
    let mounts = parse_mountinfo(&read("/proc/self/mountinfo").ok()?);
    let v1 = memberships
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == controller))
        .and_then(|m| {
            let mount = mounts
                .iter()
                .find(|mt| !mt.v2 && mt.options.iter().any(|o| o == controller))?;
            Some((m, mount))
        });
    let v2 = memberships
        .iter()
        .find(|m| m.controllers.is_empty())
        .and_then(|m| Some((m, mounts.iter().find(|mt| mt.v2)?)));
    [v1, v2].into_iter().flatten().find_map(|(m, mount)| {
        let rel = m
            .path
            .strip_prefix(mount.root.trim_end_matches('/'))
            .unwrap_or(&m.path);
        let dir = mount.mount_point.join(rel.trim_start_matches('/'));
        dir.join(probe_file)
            .exists()
            .then(|| (dir, mount.mount_point.clone()))
    })
}

/// `dir` and its ancestors up to `top`, innermost first.
fn ancestors<'a>(dir: &'a Path, top: &'a Path) -> impl Iterator<Item = &'a Path> {
    dir.ancestors().take_while(move |d| d.starts_with(top))
}

fn read_trimmed(path: &Path) -> Option<String> {
    Some(fs::read_to_string(path).ok()?.trim().to_owned())
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PidsLimit {
    /// The tightest `pids.max` of the cgroup and its ancestors (`None`:
    /// unlimited).
    pub max: Option<u64>,
    /// Tasks in the process's cgroup now.
    pub current: u64,
    pub cgroup_path: String,
}

pub fn pids_limit(pid: u32) -> Option<PidsLimit> {
    let (dir, top) = controller_dir(pid, "pids", "pids.current")?;
    let current = read_trimmed(&dir.join("pids.current"))?.parse().ok()?;
    let max = ancestors(&dir, &top)
        .filter_map(|d| read_trimmed(&d.join("pids.max"))?.parse::<u64>().ok())
        .min();
    Some(PidsLimit {
        max,
        current,
        cgroup_path: dir.display().to_string(),
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct CpuQuota {
    /// The tightest quota / period of the cgroup and its ancestors: what
    /// the kernel enforces.
    pub cpus: f64,
    /// The quota of the process's own cgroup only (what Go 1.25+ reads),
    /// `None` when that one is unlimited.
    pub leaf_cpus: Option<f64>,
    pub cgroup_path: String,
}

/// v2 `cpu.max` ("max 100000" or "50000 100000") or v1
/// `cpu.cfs_quota_us` (-1: none) / `cpu.cfs_period_us`, in CPUs.
fn quota_at(dir: &Path) -> Option<f64> {
    if let Some(max) = read_trimmed(&dir.join("cpu.max")) {
        return parse_cpu_max(&max);
    }
    let quota: i64 = read_trimmed(&dir.join("cpu.cfs_quota_us"))?.parse().ok()?;
    let period: i64 = read_trimmed(&dir.join("cpu.cfs_period_us"))?.parse().ok()?;
    (quota > 0 && period > 0).then(|| quota as f64 / period as f64)
}

pub fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut f = text.split_whitespace();
    let quota = f.next()?;
    let period: f64 = f.next().unwrap_or("100000").parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    Some(quota.parse::<f64>().ok()? / period)
}

pub fn cpu_quota(pid: u32) -> Option<CpuQuota> {
    let (dir, top) = controller_dir(pid, "cpu", "cpu.cfs_quota_us")
        .or_else(|| controller_dir(pid, "cpu", "cpu.max"))?;
    let cpus = ancestors(&dir, &top)
        .filter_map(quota_at)
        .min_by(f64::total_cmp)?;
    Some(CpuQuota {
        cpus,
        leaf_cpus: quota_at(&dir),
        cgroup_path: dir.display().to_string(),
    })
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Throttling {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// CFS throttling counters (`cpu.stat`) of the process's cgroup.
pub fn cpu_throttling(pid: u32) -> Option<Throttling> {
    let (dir, _) = controller_dir(pid, "cpu", "cpu.stat")?;
    Some(parse_cpu_stat(&read_trimmed(&dir.join("cpu.stat"))?))
}

pub fn parse_cpu_stat(text: &str) -> Throttling {
    let mut t = Throttling::default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(k), Some(v)) = (f.next(), f.next().and_then(|v| v.parse::<u64>().ok())) else {
            continue;
        };
        match k {
            "nr_periods" => t.periods = v,
            "nr_throttled" => t.throttled_periods = v,
            "throttled_usec" => t.throttled_ns = v * 1_000, // v2
            "throttled_time" => t.throttled_ns = v,         // v1, in ns
            _ => {}
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memberships_v1_and_v2() {
        let text = "9:name=systemd:/\n8:pids:/gt\n1:cpu,cpuacct:/a/b\n0::/\n";
        let m = parse_cgroup(text);
        assert_eq!(m[1].controllers, vec!["pids"]);
        assert_eq!(m[2].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[2].path, "/a/b");
        assert!(m[3].controllers.is_empty());
    }

    #[test]
    fn cgroup_mounts() {
        let text = "35 25 0:30 / /sys/fs/cgroup/pids rw,relatime shared:14 - cgroup cgroup rw,pids\n\
                    36 25 0:31 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n\
                    22 1 8:1 / / rw - ext4 /dev/vda rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert!(!m[0].v2 && m[0].options.contains(&"pids".to_owned()));
        assert!(m[1].v2);
        assert_eq!(m[1].mount_point, PathBuf::from("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn cpu_files() {
        assert_eq!(parse_cpu_max("max 100000"), None);
        assert_eq!(parse_cpu_max("50000 100000"), Some(0.5));
        let v2 =
            parse_cpu_stat("usage_usec 10\nnr_periods 7\nnr_throttled 3\nthrottled_usec 1500\n");
        assert_eq!(
            (v2.periods, v2.throttled_periods, v2.throttled_ns),
            (7, 3, 1_500_000)
        );
        let v1 = parse_cpu_stat("nr_periods 4\nnr_throttled 1\nthrottled_time 999\n");
        assert_eq!(v1.throttled_ns, 999);
    }

    #[test]
    fn own_cgroup_reads_without_error() {
        // Whatever this machine has, reading must not fail or panic.
        let pid = std::process::id();
        let _ = pids_limit(pid);
        let _ = cpu_quota(pid);
        let _ = cpu_throttling(pid);
    }
}
