//! The tracer's Go runtime facts (`tracer::goruntime`) against the truth of
//! each installed toolchain: a program built by it, with and without cgo,
//! non-stripped with uncompressed DWARF. Every offset of the release's
//! layout row is the DWARF member offset of its path (and the width the
//! tracer reads is the member's size), every status constant is the DWARF
//! constant of that name and no G or P status there is unlisted, and the
//! runtime functions of the release are in the pclntab while the others
//! are not. A toolchain whose release has no layout row fails. No root and
//! no eBPF needed: `TRACER_EBPF_STUB=1 cargo test -p tracer --test
//! integration goruntime::`.

use std::{
    borrow::Cow,
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::{Mutex, OnceLock},
};

use gimli::{AttributeValue, EndianSlice, LittleEndian};
use object::{Object as _, ObjectSection as _};
use tracer::{
    gobin::{GoBinary, GoVersion},
    goruntime::{self, functions::FUNCTIONS, states},
};

use crate::gobin::{build_go_with, toolchains};

/// The test programs of one toolchain: `(flavour, path)`.
type Programs = Vec<(&'static str, PathBuf)>;

/// The default build of a program that calls `runtime.LockOSThread` and,
/// when a C compiler is there, a cgo one. Built once per test run.
fn programs(version: &str, go: &PathBuf) -> Programs {
    static BUILT: OnceLock<Mutex<HashMap<String, Programs>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    built
        .entry(version.to_owned())
        .or_insert_with(|| {
            let cc = Command::new("cc")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success());
            let mut out = vec![("go", build_go_with(go, version, "threads.go", "dwarf"))];
            if cc {
                out.push((
                    "cgo",
                    build_go_with(go, version, "cgo/sleep.go", "cgo-dwarf"),
                ));
            }
            out
        })
        .clone()
}

fn minor_of(version: &str) -> GoVersion {
    GoVersion::parse(&format!("go{version}"))
        .unwrap_or_else(|| panic!("unreadable toolchain version {version}"))
}

/// One debugging entry, reduced to what the checks read.
struct Die {
    tag: gimli::DwTag,
    name: Option<String>,
    byte_size: Option<u64>,
    /// The referenced type, as a `.debug_info` offset.
    type_ref: Option<usize>,
    member_offset: Option<u64>,
    const_value: Option<i64>,
    children: Vec<usize>,
}

/// The types and constants of a program's DWARF.
struct Types {
    dies: HashMap<usize, Die>,
    structs: HashMap<String, usize>,
    constants: HashMap<String, i64>,
}

impl Types {
    fn read(path: &PathBuf) -> Self {
        let data = std::fs::read(path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let sections = gimli::DwarfSections::load(|id| -> Result<Cow<[u8]>, object::Error> {
            match file.section_by_name(id.name()) {
                Some(s) => Ok(s.uncompressed_data().unwrap_or_else(|e| {
                    panic!(
                        "{}: {} ({e}): build with -compressdwarf=false",
                        path.display(),
                        id.name()
                    )
                })),
                None => Ok(Cow::Borrowed(&[])),
            }
        })
        .unwrap();
        let dwarf = sections.borrow(|s| EndianSlice::new(s, LittleEndian));
        let mut types = Self {
            dies: HashMap::new(),
            structs: HashMap::new(),
            constants: HashMap::new(),
        };
        let mut headers = dwarf.units();
        while let Some(header) = headers.next().unwrap() {
            let unit = dwarf.unit(header).unwrap();
            let global = |o: gimli::UnitOffset| o.to_debug_info_offset(&unit.header).unwrap().0;
            let mut parents: Vec<(isize, usize)> = Vec::new();
            let mut cursor = unit.entries();
            while let Some(entry) = cursor.next_dfs().unwrap() {
                let depth = entry.depth();
                let offset = global(entry.offset());
                while parents.last().is_some_and(|&(d, _)| d >= depth) {
                    parents.pop();
                }
                let mut die = Die {
                    tag: entry.tag(),
                    name: None,
                    byte_size: None,
                    type_ref: None,
                    member_offset: None,
                    const_value: None,
                    children: Vec::new(),
                };
                for attr in entry.attrs() {
                    let value = attr.value();
                    match attr.name() {
                        gimli::DW_AT_name => {
                            let s = dwarf.attr_string(&unit, value).unwrap();
                            die.name = Some(s.to_string_lossy().into_owned());
                        }
                        gimli::DW_AT_byte_size => die.byte_size = value.udata_value(),
                        gimli::DW_AT_data_member_location => {
                            die.member_offset = value.udata_value()
                        }
                        gimli::DW_AT_const_value => {
                            die.const_value = value
                                .udata_value()
                                .map(|v| v as i64)
                                .or(value.sdata_value());
                        }
                        gimli::DW_AT_type => {
                            die.type_ref = match value {
                                AttributeValue::UnitRef(o) => Some(global(o)),
                                AttributeValue::DebugInfoRef(o) => Some(o.0),
                                _ => None,
                            };
                        }
                        _ => {}
                    }
                }
                if let Some(&(_, parent)) = parents.last()
                    && let Some(p) = types.dies.get_mut(&parent)
                {
                    p.children.push(offset);
                }
                if let Some(name) = &die.name {
                    if die.tag == gimli::DW_TAG_structure_type {
                        types.structs.entry(name.clone()).or_insert(offset);
                    }
                    if die.tag == gimli::DW_TAG_constant
                        && let Some(v) = die.const_value
                    {
                        types.constants.insert(name.clone(), v);
                    }
                }
                if entry.has_children() {
                    parents.push((depth, offset));
                }
                types.dies.insert(offset, die);
            }
        }
        types
    }

    /// The byte size of a type, through typedefs.
    fn size_of(&self, t: usize) -> Option<u64> {
        let die = self.dies.get(&t)?;
        match die.byte_size {
            Some(size) => Some(size),
            None if die.tag == gimli::DW_TAG_typedef => self.size_of(die.type_ref?),
            None if die.tag == gimli::DW_TAG_pointer_type => Some(8),
            None => None,
        }
    }

    /// A type through typedefs.
    fn resolve(&self, mut t: usize) -> usize {
        while let Some(die) = self.dies.get(&t)
            && die.tag == gimli::DW_TAG_typedef
            && let Some(next) = die.type_ref
        {
            t = next;
        }
        t
    }

    /// `(offset, size)` of a member path such as `g.sched.bp` (struct
    /// `runtime.g`, member `sched`, its member `bp`).
    fn member(&self, path: &str) -> Result<(u64, u64), String> {
        let mut parts = path.split('.');
        let root = format!("runtime.{}", parts.next().unwrap());
        let mut t = *self
            .structs
            .get(&root)
            .ok_or_else(|| format!("no struct {root}"))?;
        let (mut offset, mut size) = (0, 0);
        for part in parts {
            let die = &self.dies[&self.resolve(t)];
            let member = die
                .children
                .iter()
                .map(|c| &self.dies[c])
                .find(|c| c.tag == gimli::DW_TAG_member && c.name.as_deref() == Some(part))
                .ok_or_else(|| format!("no member {part}"))?;
            offset += member.member_offset.ok_or("no member offset")?;
            t = member.type_ref.ok_or("no member type")?;
            size = self.size_of(t).ok_or("no size")?;
        }
        Ok((offset, size))
    }
}

/// Runs `check` on every program of every toolchain and fails with every
/// mismatch found, one per line.
fn for_every_toolchain(
    check: impl Fn(&str, &GoVersion, &[(&'static str, PathBuf)]) -> Vec<String>,
) {
    let chains = toolchains();
    if chains.is_empty() {
        eprintln!("skipped: no Go toolchain (run `cargo xtask setup`)");
        return;
    }
    let mut failures = Vec::new();
    for (version, go) in &chains {
        let v = minor_of(version);
        let found = check(version, &v, &programs(version, go));
        eprintln!("go {version}: {} mismatches", found.len());
        failures.extend(found.into_iter().map(|f| format!("go {version}: {f}")));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn layout_matches_dwarf() {
    for_every_toolchain(|version, v, programs| {
        let Some(layout) = goruntime::layout(v) else {
            return vec![format!(
                "no RuntimeLayout row for 1.{}: add one to tracer/src/goruntime/layout.rs",
                v.minor
            )];
        };
        let mut failures = Vec::new();
        for (flavour, path) in programs {
            let types = Types::read(path);
            for field in layout.fields() {
                match types.member(field.path) {
                    Ok((offset, size)) => {
                        if offset != u64::from(field.offset) || size != u64::from(field.size) {
                            failures.push(format!(
                                "{flavour}: {} is at {offset:#x} ({size} bytes) in DWARF, \
                                 the table says {:#x} ({} bytes)",
                                field.path, field.offset, field.size
                            ));
                        }
                    }
                    Err(e) => failures.push(format!("{flavour}: {}: {e}", field.path)),
                }
            }
            eprintln!(
                "go {version} {flavour}: {} offsets checked",
                layout.fields().len()
            );
        }
        failures
    });
}

/// A goroutine or P status constant's name (`_Gsyscall`, `_Pidle`...), not
/// another constant of the same prefix (`_GoidCacheBatch`, `_PageSize`).
fn is_status_name(name: &str) -> bool {
    let status = |prefix: &str, not: &str| {
        name.strip_prefix(prefix).is_some_and(|rest| {
            rest.starts_with(|c: char| c.is_ascii_lowercase()) && !rest.starts_with(not)
        })
    };
    status("_G", "oid") || status("_P", "age")
}

#[test]
fn states_match_dwarf() {
    for_every_toolchain(|_, v, programs| {
        let mut failures = Vec::new();
        for (flavour, path) in programs {
            let types = Types::read(path);
            let dwarf: HashMap<&str, i64> = types
                .constants
                .iter()
                .filter_map(|(n, &value)| Some((n.strip_prefix("runtime.")?, value)))
                .filter(|(n, _)| is_status_name(n))
                .collect();
            let listed: Vec<_> = states::G_STATUSES
                .iter()
                .chain(states::P_STATUSES)
                .collect();
            for s in &listed {
                let there = dwarf.get(s.name).copied();
                let want = s.versions.contains(v.minor).then_some(i64::from(s.value));
                if there != want {
                    failures.push(format!(
                        "{flavour}: {} is {there:?} in DWARF, listed {want:?}",
                        s.name
                    ));
                }
            }
            for (&name, &value) in &dwarf {
                // `_Gscan` + a state: exactly the scan bit on that state.
                if let Some(state) = name.strip_prefix("_Gscan").filter(|s| !s.is_empty()) {
                    let base = dwarf.get(format!("_G{state}").as_str());
                    if base.map(|b| b | i64::from(states::G_SCAN)) != Some(value) {
                        failures.push(format!(
                            "{flavour}: {name} = {value:#x} is not _Gscan|_G{state}"
                        ));
                    }
                } else if !listed.iter().any(|s| s.name == name) {
                    failures.push(format!(
                        "{flavour}: {name} = {value} is not in goruntime::states"
                    ));
                }
            }
        }
        failures
    });
}

#[test]
fn functions_match_each_release() {
    for_every_toolchain(|_, v, programs| {
        let binaries: Vec<GoBinary> = programs
            .iter()
            .map(|(_, path)| GoBinary::open(path).unwrap())
            .collect();
        let mut failures = Vec::new();
        for f in FUNCTIONS {
            let present = binaries.iter().any(|b| b.pclntab.entry(f.name).is_some());
            let expected = f.versions.contains(v.minor);
            if present != expected {
                failures.push(format!(
                    "{} is {} in the programs' pclntab, listed for {} releases",
                    f.name,
                    if present { "present" } else { "absent" },
                    f.versions
                ));
            }
        }
        failures
    });
}
