//! Turning user program counters of a Go process into function, file and
//! line, from the binary's own pclntab (works on stripped binaries, and after
//! the process has exited).

use std::fs;

use super::{
    GoBinary,
    unwind::{self, MAX_FRAMES},
};

/// One symbolized frame.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
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

/// A Go binary and where it is loaded in one process.
#[derive(Debug)]
pub struct Symbolizer {
    pub binary: GoBinary,
    /// Load address minus link address (0 for the usual non-PIE Go build).
    bias: u64,
}

impl Symbolizer {
    /// For a live process: PIE binaries are relocated, so the load bias is
    /// read from `/proc/PID/maps` (the lowest mapping of the executable).
    pub fn for_process(binary: GoBinary, pid: u32) -> Self {
        // Load bias = where the lowest segment was mapped - where it was
        // linked (Go's PIE links at 0x400000 too, but is moved at load).
        let bias = if binary.pie {
            exe_load_address(pid).map_or(0, |start| start.wrapping_sub(binary.link_base))
        } else {
            0
        };
        Self { binary, bias }
    }

    /// Load address minus link address: add it to a link-time address
    /// (a [`GoBinary::data_symbol`], a pclntab entry) to get the address in
    /// this process.
    /// Where a runtime variable is in this process (its link address plus
    /// the load bias), when the binary says where it is.
    pub fn runtime_address(&self, variable: &str) -> Option<u64> {
        Some(self.binary.data_symbol(variable)? + self.bias)
    }

    pub fn bias(&self) -> u64 {
        self.bias
    }

    /// The frame at `pc`. Return addresses (every frame but the innermost)
    /// point after the call, so they are looked up one byte earlier.
    pub fn frame(&self, pc: u64, is_return_address: bool) -> Option<Frame> {
        let pc = pc.checked_sub(self.bias)?;
        let lookup = if is_return_address {
            pc.saturating_sub(1)
        } else {
            pc
        };
        let tab = &self.binary.pclntab;
        let function = tab.function_at(lookup)?;
        let (file, line) = tab.file_line(lookup).unwrap_or(("?", 0));
        Some(Frame {
            function: function.name.clone(),
            file: file.to_owned(),
            line,
        })
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
        // The unwinder reads nothing but return addresses: made link-time
        // here, like the pc. Stack addresses are not biased.
        let mut frames = unwind::unwind(
            &self.binary.pclntab,
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
    /// interrupted instruction, the others are return addresses.
    pub fn syscall_stack(&self, frames: &[u64]) -> Vec<Frame> {
        frames
            .iter()
            .enumerate()
            .filter_map(|(i, &pc)| self.frame(pc, i > 0))
            .collect()
    }

    /// A stack captured at a function entry (uprobe): every frame, the
    /// first included, is a return address.
    pub fn entry_stack(&self, frames: &[u64]) -> Vec<Frame> {
        frames
            .iter()
            .filter_map(|&pc| self.frame(pc, true))
            .collect()
    }
}

fn exe_load_address(pid: u32) -> Option<u64> {
    let exe = fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let exe = exe.to_str()?.trim_end_matches(" (deleted)").to_owned();
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    maps.lines()
        .filter(|l| l.ends_with(&exe))
        .filter_map(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
        .min()
}

/// The frame to name as a call's call site: the first one in the program's
/// own code (package `main`, or a package outside the standard library,
/// whose import path starts with a domain), else the first one outside the
/// runtime and syscall plumbing.
pub fn call_site(stack: &[Frame]) -> Option<Frame> {
    stack
        .iter()
        .find(|f| !is_plumbing(&f.function) && is_program_code(&f.function))
        .or_else(|| stack.iter().find(|f| !is_plumbing(&f.function)))
        .cloned()
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{
        super::{
            BuildInfo, GoVersion, SymbolsSource,
            pclntab::{FLAG_TOPFRAME, synthetic},
        },
        *,
    };

    /// A PIE loaded `bias` above its link address, with goexit at 0x401000
    /// and a frameless syscall function after it.
    fn pie(bias: u64) -> Symbolizer {
        let version = GoVersion {
            major: 1,
            minor: 27,
            patch: 0,
        };
        let func = |name, entry, flag| synthetic::Func {
            name,
            entry,
            end: entry + 0x20,
            flag,
            pcsp: &[(0, 0x20)],
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
            pclntab: synthetic::pclntab(
                0x40_1000,
                &[
                    func("runtime.goexit", 0, FLAG_TOPFRAME),
                    func("syscall.Syscall6", 0x20, 0),
                ],
            ),
            cgo: false,
            pie: true,
            link_base: 0x40_0000,
            text_segment: None,
            data_symbols: HashMap::new(),
            vdso_clock_gettime_decoded: None,
        };
        Symbolizer { binary, bias }
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
