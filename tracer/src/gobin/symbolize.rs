//! Turning user program counters of a Go process into function, file and
//! line, from the binary's own pclntab (works on stripped binaries, and after
//! the process has exited).

use std::fs;

use super::GoBinary;

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
    /// Where a runtime variable is in this process (its link address plus
    /// the load bias), when the binary says where it is.
    pub fn runtime_address(&self, variable: &str) -> Option<u64> {
        Some(self.binary.data_symbol(variable)? + self.bias)
    }

    /// Unwinds a Go stack from a thread's `pc` and `sp` the way the
    /// runtime's traceback does (frame sizes from pclntab, no frame
    /// pointers needed), reading stack words with `read`. Returns process
    /// addresses, innermost first (like a captured syscall stack); stops at
    /// the bottom of a goroutine or system stack, or at non-Go code.
    pub fn unwind(
        &self,
        pc: u64,
        sp: u64,
        mut read: impl FnMut(u64) -> Option<u64>,
        max_frames: usize,
    ) -> Vec<u64> {
        let tab = &self.binary.pclntab;
        let mut frames = vec![pc];
        let (mut pc, mut sp) = (pc, sp);
        while frames.len() < max_frames {
            let Some(link_pc) = pc.checked_sub(self.bias) else {
                break;
            };
            // Return addresses point after the call: look up the call.
            let lookup = if frames.len() == 1 {
                link_pc
            } else {
                link_pc - 1
            };
            let Some(function) = tab.function_at(lookup) else {
                break;
            };
            if is_stack_bottom(&function.name) {
                break;
            }
            let Some(delta) = tab.sp_delta(lookup) else {
                break;
            };
            let Some(ret) = read(sp + delta) else { break };
            sp += delta + 8;
            pc = ret;
            frames.push(ret);
        }
        frames
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

/// Functions below which a Go stack does not continue (the goroutine's or
/// thread's first frame, or a switch to another stack).
fn is_stack_bottom(function: &str) -> bool {
    matches!(
        function,
        "runtime.goexit"
            | "runtime.mstart"
            | "runtime.mstart0"
            | "runtime.rt0_go"
            | "runtime.systemstack"
            | "runtime.mcall"
            | "runtime.morestack"
            | "runtime.asmcgocall"
    )
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
    use super::*;

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
