//! Which processes `serve` traces: `-p PID`s, and, found by scanning
//! /proc (every [`SCAN_EVERY`]), processes whose comm is a `--comm` name,
//! that are in a `--cgroup` (its cgroup v2 path in /proc/PID/cgroup is the
//! cgroup's or below it) or (`--all-go`) every Go program. Whether an
//! executable is a Go program is read once per file (its `.go.buildinfo`
//! section) and cached by device and inode, so a scan costs a directory
//! listing and a small read or two per process.

use std::{
    collections::{HashMap, HashSet},
    fs,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use object::{Object as _, ObjectSection as _};

use crate::{
    gobin::BuildInfo,
    procinfo::cgroup::{self, CgroupDir},
};

/// How often /proc is scanned for new targets: a process that starts is
/// traced within this (plus the time its probes take to attach).
pub const SCAN_EVERY: Duration = Duration::from_millis(200);

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// Exact comm names (at most 15 bytes, as the kernel keeps them).
    pub comms: Vec<String>,
    /// Every process in these cgroups or below them.
    pub cgroups: Vec<CgroupDir>,
    /// Every Go program.
    pub all_go: bool,
}

impl Selector {
    pub fn scans(&self) -> bool {
        !self.comms.is_empty() || !self.cgroups.is_empty() || self.all_go
    }
}

/// An executable's identity: a verdict holds while the file is the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
}

/// Go verdicts by executable: `Some(version)` for a Go program.
#[derive(Debug, Default)]
pub struct GoCache {
    /// With the file's mtime and size when read: a file rewritten in
    /// place (same inode) is read again.
    verdicts: HashMap<FileKey, ((i64, u64), Option<String>)>,
    /// How many executables were read (the cache's misses).
    pub reads: u64,
}

impl GoCache {
    /// The Go version of the executable at `exe` (`/proc/PID/exe`), or
    /// `None` when it is not a Go program (or cannot be read).
    pub fn go_version(&mut self, exe: &Path) -> Option<String> {
        let meta = fs::metadata(exe).ok()?;
        let key = FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let stamp = (meta.mtime(), meta.size());
        if let Some((s, verdict)) = self.verdicts.get(&key)
            && *s == stamp
        {
            return verdict.clone();
        }
        self.reads += 1;
        let verdict = read_go_version(exe);
        self.verdicts.insert(key, (stamp, verdict.clone()));
        verdict
    }
}

/// Reads only the ELF headers and `.go.buildinfo` (a few KiB), never the
/// whole executable.
fn read_go_version(exe: &Path) -> Option<String> {
    let file = fs::File::open(exe).ok()?;
    let cache = object::ReadCache::new(file);
    let elf = object::File::parse(&cache).ok()?;
    let data = elf.section_by_name(".go.buildinfo")?.data().ok()?;
    BuildInfo::parse(data).ok().map(|b| b.raw_version)
}

/// The scanner's memory: which PIDs were already handed out or turned
/// down, so each process is considered once.
#[derive(Debug)]
pub struct Discovery {
    selector: Selector,
    proc_root: PathBuf,
    /// This process (never a target).
    own_pid: u32,
    handled: HashSet<u32>,
    pub go: GoCache,
}

impl Discovery {
    pub fn new(selector: Selector, proc_root: impl Into<PathBuf>, own_pid: u32) -> Self {
        Self {
            selector,
            proc_root: proc_root.into(),
            own_pid,
            handled: HashSet::new(),
            go: GoCache::default(),
        }
    }

    /// Marks a PID as taken care of (a `-p` target): never offered again
    /// while it lives.
    pub fn handled(&mut self, pid: u32) {
        self.handled.insert(pid);
    }

    /// The processes that match and were not offered before. The comm and
    /// cgroup of every other process are read again at each scan: an
    /// `exec` changes the comm (a shell's child becomes the program), and
    /// a process can be moved into a cgroup.
    pub fn scan(&mut self) -> Vec<u32> {
        let Ok(dir) = fs::read_dir(&self.proc_root) else {
            return Vec::new();
        };
        let mut alive = HashSet::new();
        let mut found = Vec::new();
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            alive.insert(pid);
            if pid == self.own_pid || self.handled.contains(&pid) {
                continue;
            }
            if self.matches(&entry.path()) {
                self.handled.insert(pid);
                found.push(pid);
            }
        }
        // A PID that is gone may come back as another process.
        self.handled.retain(|pid| alive.contains(pid));
        found.sort_unstable();
        found
    }

    fn matches(&mut self, proc_dir: &Path) -> bool {
        if !self.selector.comms.is_empty() {
            let comm = fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
            let comm = comm.strip_suffix('\n').unwrap_or(&comm);
            if self.selector.comms.iter().any(|c| c == comm) {
                return true;
            }
        }
        if !self.selector.cgroups.is_empty() {
            let text = fs::read_to_string(proc_dir.join("cgroup")).unwrap_or_default();
            // Kernel threads (no executable) sit in the root cgroup: `--cgroup /`
            // must not offer them.
            if let Some(path) = cgroup::v2_path(&text)
                && self.selector.cgroups.iter().any(|c| c.holds(path))
                && fs::read_link(proc_dir.join("exe")).is_ok()
            {
                return true;
            }
        }
        self.selector.all_go && self.go.go_version(&proc_dir.join("exe")).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_proc(dir: &Path, pid: u32, comm: &str, exe: Option<&Path>) {
        let p = dir.join(pid.to_string());
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join("comm"), format!("{comm}\n")).unwrap();
        fs::write(p.join("cgroup"), "0::/user.slice\n").unwrap();
        if let Some(exe) = exe {
            std::os::unix::fs::symlink(exe, p.join("exe")).unwrap();
        }
    }

    /// A minimal ELF with a `.go.buildinfo` section holding `version`.
    fn go_elf(version: &str) -> Vec<u8> {
        let mut info = Vec::new();
        info.extend_from_slice(b"\xff Go buildinf:");
        info.push(8); // pointer size
        info.push(2); // flags: inline strings
        info.resize(32, 0);
        info.push(version.len() as u8);
        info.extend_from_slice(version.as_bytes());
        info.push(0); // empty module info
        let mut obj = object::write::Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::X86_64,
            object::Endianness::Little,
        );
        let section = obj.add_section(
            Vec::new(),
            b".go.buildinfo".to_vec(),
            object::SectionKind::ReadOnlyData,
        );
        obj.append_section_data(section, &info, 16);
        obj.write().unwrap()
    }

    #[test]
    fn comm_matches_exactly_and_once() {
        let dir = tempfile::tempdir().unwrap();
        fake_proc(dir.path(), 10, "worker", None);
        fake_proc(dir.path(), 11, "worker2", None);
        fake_proc(dir.path(), 12, "other", None);
        fake_proc(dir.path(), 13, "worker", None);
        fs::create_dir_all(dir.path().join("self")).unwrap();
        let selector = Selector {
            comms: vec!["worker".into()],
            cgroups: Vec::new(),
            all_go: false,
        };
        // 13 is the agent itself.
        let mut d = Discovery::new(selector, dir.path(), 13);
        assert_eq!(d.scan(), vec![10]);
        // Offered once; a later process of that name is found.
        fake_proc(dir.path(), 14, "worker", None);
        assert_eq!(d.scan(), vec![14]);
        // An exec renames a process already seen: it is found then.
        fs::write(dir.path().join("12/comm"), "worker\n").unwrap();
        assert_eq!(d.scan(), vec![12]);
        // A PID that went and came back is a new process.
        fs::remove_dir_all(dir.path().join("10")).unwrap();
        assert!(d.scan().is_empty());
        fake_proc(dir.path(), 10, "worker", None);
        assert_eq!(d.scan(), vec![10]);
        // A -p target is never offered again.
        fake_proc(dir.path(), 15, "worker", None);
        d.handled(15);
        assert!(d.scan().is_empty());
    }

    /// Moves a fake process into `cgroup` (a v1 line too, as on a hybrid
    /// host: only the `0::` line counts).
    fn move_to(dir: &Path, pid: u32, cgroup: &str) {
        let text = format!("4:memory:/elsewhere\n0::{cgroup}\n");
        fs::write(dir.join(pid.to_string()).join("cgroup"), text).unwrap();
    }

    #[test]
    fn cgroup_matches_it_and_below_including_later_moves() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let exe = d.join("w");
        fs::write(&exe, b"").unwrap();
        for pid in [10, 11, 12, 13, 14] {
            fake_proc(d, pid, "w", Some(&exe));
        }
        // A kernel thread: no executable.
        fake_proc(d, 2, "kworker/0:1", None);
        move_to(d, 2, "/system.slice/app.service");
        move_to(d, 10, "/system.slice/app.service");
        move_to(d, 11, "/system.slice/app.service/worker");
        move_to(d, 12, "/system.slice/app.service2");
        move_to(d, 13, "/system.slice");
        // A process gone mid-scan has no readable cgroup file.
        fs::remove_file(d.join("14/cgroup")).unwrap();
        let selector = Selector {
            comms: Vec::new(),
            cgroups: vec![CgroupDir::for_test("/system.slice/app.service")],
            all_go: false,
        };
        let mut disc = Discovery::new(selector, d, 1);
        assert_eq!(disc.scan(), vec![10, 11]);
        assert!(disc.scan().is_empty());
        // Moved into the cgroup later: found at the next scan.
        move_to(d, 13, "/system.slice/app.service");
        assert_eq!(disc.scan(), vec![13]);
        // Started in it later.
        fake_proc(d, 15, "w", Some(&exe));
        move_to(d, 15, "/system.slice/app.service/worker");
        assert_eq!(disc.scan(), vec![15]);
    }

    #[test]
    fn go_programs_are_read_once_per_executable() {
        let dir = tempfile::tempdir().unwrap();
        let bins = dir.path().join("bin");
        fs::create_dir_all(&bins).unwrap();
        let go = bins.join("goprog");
        fs::write(&go, go_elf("go1.23.9")).unwrap();
        let c = bins.join("cprog");
        fs::write(&c, b"\x7fELF not really").unwrap();
        let procs = dir.path().join("proc");
        for pid in [20, 21, 22] {
            fake_proc(&procs, pid, "goprog", Some(&go));
        }
        fake_proc(&procs, 30, "cprog", Some(&c));
        // A kernel thread: no readable exe.
        fake_proc(&procs, 2, "kthreadd", None);
        let selector = Selector {
            comms: Vec::new(),
            cgroups: Vec::new(),
            all_go: true,
        };
        let mut d = Discovery::new(selector, &procs, 1);
        assert_eq!(d.scan(), vec![20, 21, 22]);
        // Two executables read, whatever the number of processes.
        assert_eq!(d.go.reads, 2);
        assert_eq!(d.go.go_version(&go).as_deref(), Some("go1.23.9"));
        assert_eq!(d.go.go_version(&c), None);
        fake_proc(&procs, 23, "goprog", Some(&go));
        assert_eq!(d.scan(), vec![23]);
        assert_eq!(d.go.reads, 2);
        // A file rewritten in place is read again.
        fs::write(&go, go_elf("go1.25.5")).unwrap();
        let t = filetime_later(&go);
        assert!(t);
        assert_eq!(d.go.go_version(&go).as_deref(), Some("go1.25.5"));
        assert_eq!(d.go.reads, 3);
    }

    /// Moves a file's mtime a second ahead (a rewrite within the same
    /// second must still be seen as new by the test).
    fn filetime_later(path: &Path) -> bool {
        let meta = fs::metadata(path).unwrap();
        let times = [
            libc::timespec {
                tv_sec: meta.atime(),
                tv_nsec: 0,
            },
            libc::timespec {
                tv_sec: meta.mtime() + 1,
                tv_nsec: 0,
            },
        ];
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid path and two timespecs.
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) == 0 }
    }
}
