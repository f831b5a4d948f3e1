//! Inlined calls against the Go runtime's own answer: the `inline` workload
//! prints the program counters `runtime.Callers` recorded for a few stacks
//! and the frames `runtime.CallersFrames` made of them, and the tracer's
//! expansion of the same program counters from the pclntab's inline trees
//! must give exactly those frames (function, file, line), for every
//! installed toolchain, in the default, stripped and PIE builds. A second,
//! independent check compares the expansion with the compiler's DWARF.

use std::{
    collections::HashMap,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use object::{Object as _, ObjectSection as _, ObjectSymbol as _};
use tracer::gobin::{
    GoBinary,
    symbolize::{Frame, Symbolizer, call_site},
};

use crate::gobin::{build_go_with, toolchains};

/// One stack as the workload printed it.
#[derive(Debug)]
struct GoStack {
    name: String,
    /// Run-time addresses, as `runtime.Callers` recorded them: return
    /// addresses, plus one made-up address per inlined call (the call
    /// site's pc plus one).
    pcs: Vec<u64>,
    /// What `runtime.CallersFrames` made of them.
    frames: Vec<Frame>,
}

/// What the workload printed: where `main.anchor` is, and the stacks.
struct Printed {
    anchor: u64,
    stacks: Vec<GoStack>,
}

fn hex(s: &str) -> u64 {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap()
}

/// Runs the workload and, while it waits (so its memory map can be read),
/// makes the symbolizer for it.
fn run(path: &Path, context: &str) -> (Printed, Symbolizer) {
    let mut child = Command::new(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut printed = Printed {
        anchor: 0,
        stacks: Vec::new(),
    };
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "{context}: the workload ended early"
        );
        let line = line.trim_end_matches('\n');
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "anchor" => printed.anchor = hex(rest),
            "stack" => printed.stacks.push(GoStack {
                name: rest.to_owned(),
                pcs: Vec::new(),
                frames: Vec::new(),
            }),
            "pc" => printed.stacks.last_mut().unwrap().pcs.push(hex(rest)),
            "frame" => {
                let [function, file, line] = rest.split('\t').collect::<Vec<_>>()[..] else {
                    panic!("{context}: bad frame line {rest:?}");
                };
                printed.stacks.last_mut().unwrap().frames.push(Frame {
                    function: function.to_owned(),
                    file: file.to_owned(),
                    line: line.parse().unwrap(),
                });
            }
            "end" => {}
            "done" => break,
            _ => panic!("{context}: unexpected line {line:?}"),
        }
    }
    let bin = GoBinary::open(path).unwrap_or_else(|e| panic!("{context}: {e}"));
    let sym = Symbolizer::for_process(bin, child.id());
    drop(child.stdin.take());
    assert!(
        child.wait().unwrap().success(),
        "{context}: workload failed"
    );
    (printed, sym)
}

/// The lines of `tests/workloads/<file>` marked `// LINE name`, by name.
fn marked_lines(file: &str) -> HashMap<String, u32> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/workloads")
        .join(file);
    fs::read_to_string(src)
        .unwrap()
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let name = l.split("// LINE ").nth(1)?;
            Some((name.trim().to_owned(), u32::try_from(i + 1).unwrap()))
        })
        .collect()
}

/// Compares our expansion of one stack with the runtime's, and returns the
/// physical frames' pcs (the real return addresses among the runtime's).
fn check_stack(context: &str, sym: &Symbolizer, stack: &GoStack) -> Vec<u64> {
    let context = format!("{context}, stack {}", stack.name);
    let show = |frames: &[Frame]| {
        frames
            .iter()
            .map(|f| format!("\n    {} {}:{}", f.function, f.file, f.line))
            .collect::<String>()
    };
    assert_eq!(
        stack.pcs.len(),
        stack.frames.len(),
        "{context}: one frame per pc"
    );
    let mut physical = Vec::new();
    let mut i = 0;
    while i < stack.pcs.len() {
        let pc = stack.pcs[i];
        let ours = sym.frames_at(pc, true);
        let theirs = &stack.frames[i..(i + ours.len()).min(stack.frames.len())];
        assert!(
            !ours.is_empty() && ours == theirs,
            "{context}: at {pc:#x} (frame {i}) we have{}\nthe runtime has{}",
            show(&ours),
            show(&stack.frames[i..]),
        );
        assert_eq!(
            sym.frame(pc, true).as_ref(),
            ours.first(),
            "{context}: frame() is not the innermost frame at {pc:#x}"
        );
        // The runtime recorded the call site (plus one) of each inlined
        // call for its caller: that is the rest of the same chain.
        for k in 1..ours.len() {
            assert_eq!(
                sym.frames_at(stack.pcs[i + k], true),
                ours[k..],
                "{context}: at the runtime's inline pc {:#x}",
                stack.pcs[i + k]
            );
        }
        physical.push(pc);
        i += ours.len();
    }
    assert!(
        physical.len() < stack.pcs.len(),
        "{context}: no inlined call in the stack"
    );
    // A stack of return addresses (as a uprobe records it) expands to the
    // runtime's stack too.
    assert_eq!(
        sym.entry_stack(&physical),
        stack.frames,
        "{context}: entry_stack"
    );
    physical
}

/// `go:func.*` (1.20+) or `go.func.*` (1.18, 1.19) from `.symtab`.
fn gofunc_symbol(path: &Path) -> Option<u64> {
    let data = fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    file.symbols()
        .find(|s| matches!(s.name(), Ok("go:func.*" | "go.func.*")))
        .map(|s| s.address())
}

#[test]
fn inlined_frames_match_the_go_runtime() {
    let chains = toolchains();
    crate::skip_unless!(
        chains
            .is_empty()
            .then_some("no Go toolchain (run `cargo xtask setup`)")
    );
    let lines = marked_lines("inline.go");
    let site = |function: &str, line: &str| (function.to_owned(), lines[line]);
    for (version, go) in &chains {
        for flavour in ["default", "stripped", "pie"] {
            let context = format!("go {version} {flavour}");
            let path = build_go_with(go, version, "inline.go", flavour);
            let (printed, sym) = run(&path, &context);
            let tab = &sym.binary().unwrap().pclntab;
            // The load bias the symbolizer read from the process's maps.
            let anchor = tab.entry("main.anchor").unwrap();
            assert_eq!(
                printed.anchor.wrapping_sub(sym.bias()),
                anchor,
                "{context}: load bias"
            );
            // The funcdata base, found from the moduledata, is where the
            // symbol table says `go:func.*` is. (Stripped, it may move:
            // Go 1.26+ puts it after the pclntab's own tables.)
            let gofunc = tab.gofunc();
            assert!(gofunc.is_some(), "{context}: no moduledata.gofunc");
            if flavour != "stripped" {
                assert_eq!(gofunc, gofunc_symbol(&path), "{context}: gofunc");
            }
            let mut sites = HashMap::new();
            for stack in &printed.stacks {
                let physical = check_stack(&context, &sym, stack);
                let site = call_site(&sym.entry_stack(&physical))
                    .unwrap_or_else(|| panic!("{context}: no call site in {}", stack.name));
                assert!(
                    site.file.ends_with("/inline.go"),
                    "{context}: call site {site}"
                );
                sites.insert(stack.name.as_str(), (site.function, site.line));
            }
            // runtime.Callers (runtime code, inlined) is not the call
            // site: the program's function it is inlined in is, at the
            // program's own line.
            assert_eq!(
                sites["deep"],
                site("main.captureInto", "captureInto"),
                "{context}"
            );
            assert_eq!(
                sites["physical"],
                site("main.capture", "capture"),
                "{context}"
            );
            assert_eq!(
                sites["searched"],
                site("main.capture", "capture"),
                "{context}"
            );
        }
    }
}

/// The report names who took a P by the function that called
/// `runtime.handoffp` or (Go 1.26+) `runtime.syscallingThread.releaseP`:
/// the physical function, as `go tool objdump` lists the call in it, even
/// where the call is in an inlined helper (`syscallingThread.takeP` in Go
/// 1.26+ is inlined into sysmon's `retake` and the others).
#[test]
fn p_takers_are_the_physical_callers() {
    let chains = toolchains();
    crate::skip_unless!(
        chains
            .is_empty()
            .then_some("no Go toolchain (run `cargo xtask setup`)")
    );
    for (version, go) in &chains {
        let context = format!("go {version}");
        let path = build_go_with(go, version, "threads.go", "default");
        let out = Command::new(go)
            .args(["tool", "objdump", "-s", "^runtime\\."])
            .arg(&path)
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap();
        assert!(out.status.success(), "{context}: go tool objdump failed");
        let sym = Symbolizer::for_process(GoBinary::open(&path).unwrap(), std::process::id());
        let (mut text, mut callers) = (String::new(), Vec::new());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            if let Some(rest) = line.strip_prefix("TEXT ") {
                text = rest.split("(SB)").next().unwrap().to_owned();
                continue;
            }
            // `  file:line  0xADDR  BYTES  CALL runtime.handoffp(SB)`
            let fields: Vec<&str> = line.split('\t').map(str::trim).collect();
            let fields: Vec<&str> = fields.into_iter().filter(|f| !f.is_empty()).collect();
            let [_, addr, bytes, call] = fields[..] else {
                continue;
            };
            if call != "CALL runtime.handoffp(SB)"
                && call != "CALL runtime.syscallingThread.releaseP(SB)"
            {
                continue;
            }
            let ret = hex(addr) + u64::try_from(bytes.len() / 2).unwrap();
            let function = sym.function(ret, true).map(|f| f.name.clone());
            assert_eq!(
                function.as_deref(),
                Some(text.as_str()),
                "{context}: {line}"
            );
            callers.push(text.clone());
        }
        assert!(
            callers.iter().any(|c| c == "runtime.retake"),
            "{context}: sysmon's retake takes no P: {callers:?}"
        );
    }
}

type DwarfReader = addr2line::gimli::EndianSlice<'static, addr2line::gimli::LittleEndian>;

/// The DWARF of a Go binary (zlib-compressed sections), for addr2line. The
/// decompressed sections are leaked: a few MiB a binary, for the test run.
fn dwarf(path: &Path) -> addr2line::Context<DwarfReader> {
    let data = fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let dwarf = addr2line::gimli::Dwarf::load(|id| -> Result<DwarfReader, object::Error> {
        let bytes = match file.section_by_name(id.name()) {
            Some(section) => section.uncompressed_data()?.into_owned(),
            None => Vec::new(),
        };
        Ok(DwarfReader::new(
            Box::leak(bytes.into_boxed_slice()),
            addr2line::gimli::LittleEndian,
        ))
    })
    .unwrap();
    addr2line::Context::from_dwarf(dwarf).unwrap()
}

/// `(function, file, line)` of the frames DWARF has at `pc`, innermost
/// first (inlined subroutines, then the subprogram).
fn dwarf_frames(ctx: &addr2line::Context<DwarfReader>, pc: u64) -> Vec<(String, String, u32)> {
    let mut frames = ctx.find_frames(pc).skip_all_loads().unwrap();
    let mut out = Vec::new();
    while let Some(frame) = frames.next().unwrap() {
        let function = frame
            .function
            .as_ref()
            .and_then(|n| n.raw_name().ok())
            .map(|n| n.into_owned())
            .unwrap_or_default();
        let location = frame.location.as_ref();
        out.push((
            function,
            location.and_then(|l| l.file).unwrap_or("?").to_owned(),
            location.and_then(|l| l.line).unwrap_or(0),
        ));
    }
    out
}

/// Whether a pclntab function name is DWARF's: the pclntab writes `[...]`
/// for bracketed text (array lengths, type arguments).
fn same_name(pclntab: &str, dwarf: &str) -> bool {
    match pclntab.split_once("[...]") {
        None => pclntab == dwarf,
        Some((before, after)) => {
            dwarf.len() >= before.len() + after.len()
                && dwarf.starts_with(before)
                && dwarf.ends_with(after)
        }
    }
}

/// The inline expansion agrees with the compiler's DWARF (inlined
/// subroutines with their call sites) at every byte of the workload's own
/// functions and at every 37th byte of all the others, in the builds that
/// have DWARF (default and PIE), for every installed toolchain.
#[test]
fn inlined_frames_match_dwarf() {
    let chains = toolchains();
    crate::skip_unless!(
        chains
            .is_empty()
            .then_some("no Go toolchain (run `cargo xtask setup`)")
    );
    for (version, go) in &chains {
        for flavour in ["default", "pie"] {
            let context = format!("go {version} {flavour}");
            let path = build_go_with(go, version, "inline.go", flavour);
            let ctx = dwarf(&path);
            let bin = GoBinary::open(&path).unwrap();
            let tab = &bin.pclntab;
            let (mut checked, mut inlined) = (0, 0);
            // The compiler writes no inlining DWARF for the wrappers it
            // generates: DWARF names the wrapper where the pclntab (and the
            // runtime) name what was inlined into it.
            let functions = tab
                .functions
                .iter()
                .filter(|f| f.func_id != tab.wrapper_func_id());
            for f in functions {
                let step = if f.name.starts_with("main.") { 1 } else { 37 };
                for pc in (f.entry..f.end).step_by(step) {
                    let ours = tab.logical_frames(pc);
                    let theirs = dwarf_frames(&ctx, pc);
                    // Padding after the code, and code without DWARF lines
                    // (a few entries, assembly).
                    if ours.iter().any(|f| f.file_line.is_none()) || theirs.iter().any(|t| t.2 == 0)
                    {
                        continue;
                    }
                    let same = ours.len() == theirs.len()
                        && ours.iter().zip(&theirs).all(|(o, (function, file, line))| {
                            // addr2line joins the compilation directory.
                            let file = file.strip_prefix("./").unwrap_or(file);
                            same_name(o.function, function) && o.file_line == Some((file, *line))
                        });
                    assert!(
                        same,
                        "{context}: at {pc:#x} ours {ours:#?}\nDWARF {theirs:#?}"
                    );
                    checked += 1;
                    inlined += usize::from(ours.len() > 1);
                }
            }
            eprintln!("{context}: {checked} pcs agree with DWARF, {inlined} in inlined code");
            assert!(
                checked > 10_000 && inlined > 1_000,
                "{context}: {checked} pcs, {inlined} inlined"
            );
        }
    }
}
