//! Turning user program counters of a Go process into function, file and
//! line, from the binary's own pclntab (works on stripped binaries, and after
//! the process has exited).
//! Every program counter is expanded into the calls the compiler inlined
//! there, as the Go runtime's own tracebacks show them.

use std::{
    collections::HashMap,
    fs,
    sync::{Arc, Mutex, PoisonError},
};

use super::{
    BuildInfo, Function, GoBinary, SymbolsSource,
    pclntab::LogicalFrame,
    unwind::{self, MAX_FRAMES},
};

/// One symbolized frame.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Frame {
    pub function: String,
    pub file: String,
    pub line: u32,
}

impl std::fmt::Display for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let file = self.file.rsplit('/').next().unwrap_or(&self.file);
        write!(f, "{} ({file}:{})", self.function, self.line)
    }
}

/// A Go binary and where it is loaded in one process: from the binary's
/// own tables, or from the frames a recording kept of it.
#[derive(Debug)]
pub struct Symbolizer {
    /// The Go version and build settings the binary records.
    pub build: BuildInfo,
    /// Where its function names come from.
    pub symbols: SymbolsSource,
    /// Uses cgo.
    pub cgo: bool,
    source: Source,
    /// Load address minus link address (0 for the usual non-PIE Go build).
    bias: u64,
    /// The logical frames decoded so far, by link-time lookup address:
    /// stacks repeat the same call sites, and decoding walks the pc tables
    /// from the function's entry. Cleared when it holds [`CACHE_LIMIT`].
    cache: Mutex<HashMap<u64, Arc<[CachedFrame]>>>,
}

/// Where a [`Symbolizer`] finds its frames.
#[derive(Debug)]
enum Source {
    /// The binary's pclntab (a live process, or a binary on disk).
    Binary(Box<GoBinary>),
    /// What a recording kept: the frames at each address its stacks hold,
    /// so its report needs neither the binary nor the process.
    Recorded(RecordedSymbols),
}

/// The symbolization of the addresses a recording's stacks hold, by
/// link-time lookup address (see [`Symbolizer::lookup_pc`]).
#[derive(Debug, Default)]
pub struct RecordedSymbols {
    frames: HashMap<u64, Arc<[CachedFrame]>>,
    /// The physical function holding each address.
    functions: HashMap<u64, String>,
}

impl RecordedSymbols {
    /// Adds what [`Symbolizer::export`] gave for `lookup`.
    pub fn insert(&mut self, lookup: u64, pc: ExportedPc) {
        self.frames.insert(lookup, pc.frames.into());
        if let Some(f) = pc.function {
            self.functions.insert(lookup, f);
        }
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Everything the symbolizer says about one lookup address: what a
/// recording keeps of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedPc {
    /// The physical function holding it.
    pub function: Option<String>,
    /// Its logical frames, innermost first, wrappers included.
    pub frames: Vec<CachedFrame>,
}

/// Lookup addresses [`Symbolizer`] keeps the frames of.
const CACHE_LIMIT: usize = 1 << 16;

/// A logical frame, with what wrapper elision needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedFrame {
    pub frame: Frame,
    /// An inlined wrapper: left out unless it called a panic function.
    pub wrapper: bool,
    /// One of [`PANIC_FUNCTIONS`].
    pub panics: bool,
}

impl Symbolizer {
    /// For a live process: PIE binaries are relocated, so the load bias is
    /// read from `/proc/PID/maps` (the lowest mapping of the executable).
    pub fn for_process(binary: GoBinary, pid: u32) -> Self {
        // Load bias = where the lowest segment was mapped - where it was
        // linked (Go's PIE links at 0x400000 too, but is moved at load).
        let bias = if binary.pie {
            // A process caught in its exec (a discovered one that just
            // started) may not have its executable mapped yet: a moment.
            let mut start = exe_load_address(pid);
            for _ in 0..100 {
                if start.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
                start = exe_load_address(pid);
            }
            start.map_or(0, |start| start.wrapping_sub(binary.link_base))
        } else {
            0
        };
        Self::with_bias(binary, bias)
    }

    /// For a binary not loaded anywhere: addresses are link-time ones (no
    /// load bias), as for a non-PIE process or a stack captured offline.
    pub fn at_link_addresses(binary: GoBinary) -> Self {
        Self::with_bias(binary, 0)
    }

    fn with_bias(binary: GoBinary, bias: u64) -> Self {
        Self {
            build: binary.build.clone(),
            symbols: binary.symbols,
            cgo: binary.cgo,
            source: Source::Binary(Box::new(binary)),
            bias,
            cache: Mutex::default(),
        }
    }

    /// A symbolizer answering from a recording's symbols: the binary
    /// described by `build`, `symbols` and `cgo`, loaded `bias` above its
    /// link address in the recorded process.
    pub fn recorded(
        build: BuildInfo,
        symbols: SymbolsSource,
        cgo: bool,
        bias: u64,
        table: RecordedSymbols,
    ) -> Self {
        Self {
            build,
            symbols,
            cgo,
            source: Source::Recorded(table),
            bias,
            cache: Mutex::default(),
        }
    }

    /// The binary itself; `None` for a recording's symbolizer.
    pub fn binary(&self) -> Option<&GoBinary> {
        match &self.source {
            Source::Binary(b) => Some(b),
            Source::Recorded(_) => None,
        }
    }

    /// What a recording keeps of address `pc` (see [`RecordedSymbols`]),
    /// and the lookup address it is kept under.
    pub fn export(&self, pc: u64, is_return_address: bool) -> Option<(u64, ExportedPc)> {
        let lookup = self.lookup_pc(pc, is_return_address)?;
        let exported = ExportedPc {
            function: self.function_name(pc, is_return_address).map(str::to_owned),
            frames: self.decode(lookup).to_vec(),
        };
        Some((lookup, exported))
    }

    /// Load address minus link address: add it to a link-time address
    /// (a [`GoBinary::data_symbol`], a pclntab entry) to get the address in
    /// this process.
    /// Where a runtime variable is in this process (its link address plus
    /// the load bias), when the binary says where it is.
    pub fn runtime_address(&self, variable: &str) -> Option<u64> {
        Some(self.binary()?.data_symbol(variable)? + self.bias)
    }

    pub fn bias(&self) -> u64 {
        self.bias
    }

    /// The link-time address to look `pc` up at. Return addresses (every
    /// frame but the innermost) point after the call, so they are looked
    /// up one byte earlier, inside the call instruction.
    pub fn lookup_pc(&self, pc: u64, is_return_address: bool) -> Option<u64> {
        let pc = pc.checked_sub(self.bias)?;
        Some(if is_return_address {
            pc.saturating_sub(1)
        } else {
            pc
        })
    }

    /// The innermost logical frame at `pc`: for a pc in code the compiler
    /// inlined, the inlined function, with its own file and line (the
    /// first of [`Self::frames_at`]).
    pub fn frame(&self, pc: u64, is_return_address: bool) -> Option<Frame> {
        let lookup = self.lookup_pc(pc, is_return_address)?;
        let cached = self.lock_cache().get(&lookup).cloned();
        let first =
            |frames: &[CachedFrame]| frames.iter().find(|f| !f.wrapper).map(|f| f.frame.clone());
        if let Some(frames) = cached {
            return first(&frames);
        }
        let Some(binary) = self.binary() else {
            return first(&self.decode(lookup));
        };
        // Only the innermost frame is decoded, unless it is a wrapper, which
        // the logical stack leaves out (its caller is the innermost there).
        let tab = &binary.pclntab;
        let f = tab.innermost_frame(lookup)?;
        if f.inlined && f.func_id == tab.wrapper_func_id() {
            return first(&self.decode(lookup));
        }
        Some(to_frame(&f))
    }

    /// The physical function holding `pc` (a return address is looked up
    /// inside its call): the function a call was made from, whatever the
    /// compiler inlined into it around the call (unlike [`Self::frame`],
    /// which names the innermost inlined function).
    /// `None` for a recording's symbolizer: see [`Self::function_name`].
    pub fn function(&self, pc: u64, is_return_address: bool) -> Option<&Function> {
        let lookup = self.lookup_pc(pc, is_return_address)?;
        self.binary()?.pclntab.function_at(lookup)
    }

    /// The name of [`Self::function`], from the binary or a recording.
    pub fn function_name(&self, pc: u64, is_return_address: bool) -> Option<&str> {
        match &self.source {
            Source::Binary(_) => self
                .function(pc, is_return_address)
                .map(|f| f.name.as_str()),
            Source::Recorded(t) => {
                let lookup = self.lookup_pc(pc, is_return_address)?;
                t.functions.get(&lookup).map(String::as_str)
            }
        }
    }

    /// All logical frames at `pc`, innermost first: the inlined calls it
    /// is in, then the function that holds the code, each with its own
    /// function, file and line (the call site in the outer ones), as
    /// `runtime.CallersFrames` gives them. Inlined wrappers are left out,
    /// as the runtime does. Empty outside the binary's functions.
    pub fn frames_at(&self, pc: u64, is_return_address: bool) -> Vec<Frame> {
        let mut frames = Vec::new();
        self.expand(pc, is_return_address, false, &mut frames);
        frames
    }

    /// Appends the logical frames at `pc` to `out`. An inlined wrapper is
    /// dropped unless its callee is a panic function (runtime
    /// `elideWrapperCalling`); `callee_panics` says whether the frame
    /// called from the innermost one here is. Returns whether the
    /// outermost frame is one.
    fn expand(
        &self,
        pc: u64,
        is_return_address: bool,
        mut callee_panics: bool,
        out: &mut Vec<Frame>,
    ) -> bool {
        let Some(lookup) = self.lookup_pc(pc, is_return_address) else {
            return false;
        };
        for f in self.decode(lookup).iter() {
            if !f.wrapper || callee_panics {
                out.push(f.frame.clone());
            }
            callee_panics = f.panics;
        }
        callee_panics
    }

    /// The logical frames at link-time address `lookup`, from the cache or
    /// decoded into it.
    fn decode(&self, lookup: u64) -> Arc<[CachedFrame]> {
        let binary = match &self.source {
            Source::Binary(b) => b,
            // An address the recording did not keep: outside the binary.
            Source::Recorded(t) => return t.frames.get(&lookup).cloned().unwrap_or_default(),
        };
        if let Some(frames) = self.lock_cache().get(&lookup) {
            return Arc::clone(frames);
        }
        let tab = &binary.pclntab;
        let frames: Arc<[CachedFrame]> = tab
            .logical_frames(lookup)
            .iter()
            .map(|f| CachedFrame {
                frame: to_frame(f),
                wrapper: f.inlined && f.func_id == tab.wrapper_func_id(),
                panics: PANIC_FUNCTIONS.contains(&f.function),
            })
            .collect();
        let mut cache = self.lock_cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(lookup, Arc::clone(&frames));
        frames
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<[CachedFrame]>>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The logical stack of physical frames `(pc, is return address)`,
    /// innermost first.
    fn logical_stack(&self, pcs: impl Iterator<Item = (u64, bool)>) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut callee_panics = false;
        for (pc, is_return_address) in pcs {
            callee_panics = self.expand(pc, is_return_address, callee_panics, &mut out);
        }
        out
    }
}

/// The functions an inlined wrapper calling them is shown in front of.
const PANIC_FUNCTIONS: &[&str] = &["runtime.gopanic", "runtime.sigpanic", "runtime.panicwrap"];

fn to_frame(f: &LogicalFrame<'_>) -> Frame {
    let (file, line) = f.file_line.unwrap_or(("?", 0));
    Frame {
        function: f.function.to_owned(),
        file: file.to_owned(),
        line,
    }
}

impl Symbolizer {
    /// The call stack of a thread of this process stopped at `pc` with
    /// stack pointer `sp` (run-time addresses, e.g. from
    /// `/proc/PID/task/TID/syscall` for a thread blocked in a system call),
    /// unwound from the binary's pcsp tables (see [`unwind::unwind`]),
    /// reading stack words with `read_u64`. Run-time addresses again, `pc`
    /// first and return addresses after it, as [`Self::syscall_stack`]
    /// takes them.
    pub fn unwind(
        &self,
        pc: u64,
        sp: u64,
        mut read_u64: impl FnMut(u64) -> Option<u64>,
    ) -> Vec<u64> {
        let Some(binary) = self.binary() else {
            return Vec::new();
        };
        // The unwinder reads nothing but return addresses: made link-time
        // here, like the pc. Stack addresses are not biased.
        let mut frames = unwind::unwind(
            &binary.pclntab,
            pc.wrapping_sub(self.bias),
            sp,
            |addr| read_u64(addr).map(|ret| ret.wrapping_sub(self.bias)),
            MAX_FRAMES,
        );
        if let Some((first, callers)) = frames.split_first_mut() {
            *first = pc;
            for ret in callers {
                *ret = ret.wrapping_add(self.bias);
            }
        }
        frames
    }

    /// [`Self::unwind`] reading the stack of the live process `pid` (the
    /// one this symbolizer was made for), with ptrace-attach permission.
    pub fn unwind_live(&self, pid: u32, pc: u64, sp: u64) -> Vec<u64> {
        self.unwind(pc, sp, |addr| {
            crate::procinfo::mem::read_u64(pid, addr).ok()
        })
    }

    /// A stack captured at a syscall: the innermost frame is the
    /// interrupted instruction, the others are return addresses. Each is
    /// expanded into its logical frames (see [`Self::frames_at`]).
    pub fn syscall_stack(&self, frames: &[u64]) -> Vec<Frame> {
        self.logical_stack(frames.iter().enumerate().map(|(i, &pc)| (pc, i > 0)))
    }

    /// A stack captured at a function entry (uprobe): every frame, the
    /// first included, is a return address. Each is expanded into its
    /// logical frames (see [`Self::frames_at`]).
    pub fn entry_stack(&self, frames: &[u64]) -> Vec<Frame> {
        self.logical_stack(frames.iter().map(|&pc| (pc, true)))
    }
}

fn exe_load_address(pid: u32) -> Option<u64> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_str()?.trim_end_matches(" (deleted)").to_owned();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    // A binary replaced on disk while it runs (an upgrade, a rebuild) is
    // "PATH (deleted)" in both places.
    maps.lines()
        .filter(|l| l.trim_end_matches(" (deleted)").ends_with(&exe))
        .filter_map(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
        .min()
}

/// Frames shown (and grouped by) from the call site outwards.
const CONTEXT_FRAMES: usize = 3;

/// Where the program made a call: the call-site frame (the first in the
/// program's own code, else the first outside the runtime and syscall
/// plumbing) and its callers, outermost last.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct CallSite {
    /// The call site and up to two callers.
    pub frames: Vec<Frame>,
}

impl CallSite {
    pub fn frame(&self) -> &Frame {
        &self.frames[0]
    }
}

impl std::fmt::Display for CallSite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, frame) in self.frames.iter().enumerate() {
            if i > 0 {
                f.write_str(" ← ")?;
            }
            write!(f, "{frame}")?;
        }
        Ok(())
    }
}

/// The call site of a symbolized stack, or why there is none.
pub fn call_site_of(stack: &[Frame]) -> Result<CallSite, String> {
    if stack.is_empty() {
        return Err("no user stack (unreadable, or not Go code)".to_owned());
    }
    match call_site_index(stack) {
        // The call site, then its callers outside the runtime (not
        // runtime.goexit and the like).
        Some(i) => Ok(CallSite {
            frames: std::iter::once(&stack[i])
                .chain(stack[i + 1..].iter().filter(|f| !is_plumbing(&f.function)))
                .take(CONTEXT_FRAMES)
                .cloned()
                .collect(),
        }),
        None => Err("only runtime frames (the runtime's own work)".to_owned()),
    }
}

/// The frame to name as a call's call site: the first one in the program's
/// own code (package `main`, or a package outside the standard library,
/// whose import path starts with a domain), else the first one outside the
/// runtime and syscall plumbing.
///
/// The stacks [`Symbolizer`] makes are logical: a library function inlined
/// into the program's code is a frame of its own, with its own file and
/// line, so the program's frame after it has the program's line (where the
/// call is in its source).
pub fn call_site(stack: &[Frame]) -> Option<Frame> {
    call_site_index(stack).map(|i| stack[i].clone())
}

/// The index in `stack` of its [`call_site`].
pub fn call_site_index(stack: &[Frame]) -> Option<usize> {
    stack
        .iter()
        .position(|f| !is_plumbing(&f.function) && is_program_code(&f.function))
        .or_else(|| stack.iter().position(|f| !is_plumbing(&f.function)))
}

/// Package `main`, or a non-standard-library package (its import path's
/// first element has a dot: `github.com/...`).
fn is_program_code(function: &str) -> bool {
    function.starts_with("main.")
        || function
            .split('/')
            .next()
            .is_some_and(|first| first.contains('.') && function.contains('/'))
}

/// `true` for frames inside the runtime and syscall plumbing, which are the
/// same for every call; the call site is the first frame after them.
pub fn is_plumbing(function: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "runtime.",
        "syscall.",
        "internal/",
        "golang.org/x/sys/",
        "runtime/",
        "_cgo_",
    ];
    // `pkg._Cfunc_name` are the stubs cgo generates around each C call.
    PREFIXES.iter().any(|p| function.starts_with(p)) || function.contains("._Cfunc_")
}

/// Symbolizers over synthetic binaries, for the unit tests of the layers
/// above (analysis of stacks and callers without a real program).
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::HashMap;

    use super::{
        super::{BuildInfo, GoBinary, GoVersion, SymbolsSource, pclntab::synthetic},
        Symbolizer,
    };

    /// Where the first function starts; each takes 0x40 bytes.
    pub const TEXT: u64 = 0x40_1000;

    /// A Go 1.27 binary with these functions, in order: function `i` is at
    /// `TEXT + 0x40 * i`. A return address into it is `entry(i) + 8`.
    pub fn symbolizer(functions: &[&str]) -> Symbolizer {
        let funcs: Vec<synthetic::Func<'_>> = functions
            .iter()
            .enumerate()
            .map(|(i, name)| synthetic::Func {
                name,
                entry: 0x40 * i as u32,
                end: 0x40 * (i as u32 + 1),
                pcsp: &[(0, 0x40)],
                ..Default::default()
            })
            .collect();
        let binary = GoBinary {
            build: BuildInfo {
                raw_version: "go1.27.0".into(),
                version: GoVersion {
                    major: 1,
                    minor: 27,
                    patch: 0,
                },
                path: None,
                main_module: None,
                settings: Vec::new(),
            },
            symbols: SymbolsSource::Pclntab,
            pclntab: synthetic::pclntab(TEXT, &funcs),
            cgo: false,
            pie: false,
            link_base: 0x40_0000,
            text_segment: None,
            data_symbols: HashMap::new(),
            vdso_clock_gettime_decoded: None,
        };
        Symbolizer::with_bias(binary, 0)
    }

    /// A return address inside function `i` (as a caller's frame).
    pub fn ret(i: usize) -> u64 {
        TEXT + 0x40 * i as u64 + 8
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;

    use super::{
        super::{
            BuildInfo, GoVersion, SymbolsSource,
            pclntab::{FLAG_TOPFRAME, InlLayout, synthetic},
        },
        *,
    };

    /// A Go 1.27 binary with `pclntab`, loaded `bias` above its link address
    /// (also used by the report's schema tests).
    pub(crate) fn symbolizer(pclntab: super::super::Pclntab, bias: u64) -> Symbolizer {
        let version = GoVersion {
            major: 1,
            minor: 27,
            patch: 0,
        };
        let binary = GoBinary {
            build: BuildInfo {
                raw_version: "go1.27.0".into(),
                version,
                path: None,
                main_module: None,
                settings: Vec::new(),
            },
            symbols: SymbolsSource::Pclntab,
            pclntab,
            cgo: false,
            pie: bias != 0,
            link_base: 0x40_0000,
            text_segment: None,
            data_symbols: HashMap::new(),
            vdso_clock_gettime_decoded: None,
        };
        Symbolizer::with_bias(binary, bias)
    }

    /// A PIE loaded `bias` above its link address, with goexit at 0x401000
    /// and a frameless syscall function after it.
    fn pie(bias: u64) -> Symbolizer {
        let func = |name, entry, flag| synthetic::Func {
            name,
            entry,
            end: entry + 0x20,
            flag,
            pcsp: &[(0, 0x20)],
            ..Default::default()
        };
        let pclntab = synthetic::pclntab(
            0x40_1000,
            &[
                func("runtime.goexit", 0, FLAG_TOPFRAME),
                func("syscall.Syscall6", 0x20, 0),
            ],
        );
        symbolizer(pclntab, bias)
    }

    fn frame(function: &str, file: &str, line: u32) -> Frame {
        Frame {
            function: function.into(),
            file: file.into(),
            line,
        }
    }

    #[test]
    fn inlined_calls_are_frames_of_their_own() {
        // syscall.Syscall called from a runtime helper inlined into
        // syscall.Read, itself inlined into main.readFd, in a PIE.
        let bias = 0x7f00_0000_0000;
        for layout in [InlLayout::Go118, InlLayout::Go120] {
            let sym = symbolizer(synthetic::inlined(layout), bias);
            let (syscall, ret) = (bias + 0x40_1090, bias + 0x40_1028);
            let helper = frame("runtime.helper", "/go/src/runtime/extern.go", 300);
            let read = frame("syscall.Read", "/go/src/syscall/syscall_unix.go", 183);
            let read_fd = frame("main.readFd", "/src/main.go", 12);
            assert_eq!(
                sym.frames_at(ret, true),
                [helper.clone(), read.clone(), read_fd.clone()]
            );
            // Not a return address: the byte after the call is readFd's.
            assert_eq!(sym.frames_at(ret, false), std::slice::from_ref(&read_fd));
            assert_eq!(sym.frame(ret, true), Some(helper.clone()));
            assert!(sym.frames_at(bias + 0x40_10a0, false).is_empty());
            assert_eq!(sym.frame(bias + 0x40_10a0, false), None);
            let syscall_frame = frame("syscall.Syscall", "?", 0);
            let stack = sym.syscall_stack(&[syscall, ret]);
            assert_eq!(
                stack,
                [syscall_frame.clone(), helper.clone(), read, read_fd.clone()]
            );
            assert_eq!(sym.entry_stack(&[syscall + 1, ret])[0], syscall_frame);
            // The call site is readFd, at its own line (not the inlined
            // syscall.Read's file and line under readFd's name).
            assert_eq!(call_site(&stack), Some(read_fd));
        }
    }

    #[test]
    fn inlined_wrappers_are_left_out_unless_they_called_a_panic() {
        // A method wrapper (funcID 23 in Go 1.27) inlined into main.caller,
        // calling runtime.gopanic there, or another function.
        let tab = synthetic::build(
            0x40_1000,
            &["/src/main.go", "<autogenerated>"],
            &[
                synthetic::Func {
                    name: "runtime.gopanic",
                    entry: 0,
                    end: 0x20,
                    pcsp: &[(0, 0x20)],
                    ..Default::default()
                },
                synthetic::Func {
                    name: "main.caller",
                    entry: 0x20,
                    end: 0x60,
                    pcsp: &[(0, 0x40)],
                    lines: &[(5, 0x10), (1, 0x20), (6, 0x40)],
                    files: &[(0, 0x10), (1, 0x20), (0, 0x40)],
                    inl_index: &[(-1, 0x10), (0, 0x20), (-1, 0x40)],
                    inl_tree: &[synthetic::Inlined {
                        name: "main.(*T).M",
                        func_id: 23,
                        parent_pc: 0x24,
                    }],
                    ..Default::default()
                },
            ],
            InlLayout::Go120,
        );
        let sym = symbolizer(tab, 0);
        let (panic, ret) = (0x40_1004, 0x40_1038);
        let wrapper = frame("main.(*T).M", "<autogenerated>", 1);
        let caller = frame("main.caller", "/src/main.go", 6);
        assert_eq!(sym.frames_at(ret, true), std::slice::from_ref(&caller));
        assert_eq!(sym.frame(ret, true), Some(caller.clone()));
        assert_eq!(
            sym.syscall_stack(&[panic, ret]),
            [frame("runtime.gopanic", "?", 0), wrapper, caller]
        );
    }

    #[test]
    fn unwinds_a_relocated_binary_in_run_time_addresses() {
        let bias = 0x7f00_0000_0000;
        let sym = pie(bias);
        let (pc, sp) = (bias + 0x40_102e, 0xc000_1000);
        let goexit_ret = bias + 0x40_1001;
        let frames = sym.unwind(pc, sp, |a| (a == sp).then_some(goexit_ret));
        assert_eq!(frames, [pc, goexit_ret]);
        let names: Vec<_> = sym
            .syscall_stack(&frames)
            .into_iter()
            .map(|f| f.function)
            .collect();
        assert_eq!(names, ["syscall.Syscall6", "runtime.goexit"]);
        // Not debiased, the same word is no return address.
        let frames = pie(0).unwind(pc - bias, sp, |a| (a == sp).then_some(goexit_ret));
        assert_eq!(frames, [pc - bias]);
    }

    #[test]
    fn plumbing_is_skipped_but_user_code_and_os_are_not() {
        assert!(is_plumbing("syscall.Syscall6"));
        assert!(is_plumbing("internal/runtime/syscall.Syscall6"));
        assert!(is_plumbing("runtime.entersyscall"));
        assert!(!is_plumbing("main.sleeper"));
        assert!(!is_plumbing("os.ReadFile"));
        assert!(is_plumbing("main._Cfunc_block_in_c"));
        let frame = |name: &str| Frame {
            function: name.into(),
            file: "f.go".into(),
            line: 1,
        };
        let stack = [
            frame("syscall.Syscall"),
            frame("os.Mkdir"),
            frame("github.com/x/y.Save"),
            frame("main.main"),
        ];
        assert_eq!(call_site(&stack).unwrap().function, "github.com/x/y.Save");
        let std_only = [
            frame("syscall.Syscall"),
            frame("os.Mkdir"),
            frame("net/http.(*conn).serve"),
        ];
        assert_eq!(call_site(&std_only).unwrap().function, "os.Mkdir");
        assert!(call_site(&[frame("runtime.goexit")]).is_none());
        let f = Frame {
            function: "main.main".into(),
            file: "/src/app/main.go".into(),
            line: 12,
        };
        assert_eq!(f.to_string(), "main.main (main.go:12)");
    }
}
