//! The symbols a recording carries: for every address its stacks hold,
//! what the live symbolizer said of it (its logical frames, the physical
//! function), so the report needs neither the binary nor the process.
//! Function and file names repeat across addresses: each is written once,
//! as the recording goes, and later frames name it by number.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::{
    gobin::symbolize::{CachedFrame, ExportedPc, Frame, RecordedSymbols, Symbolizer},
    model::{Event, Input},
};

/// The symbols first needed by one batch of inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolsChunk {
    /// New names, numbered on from the last chunk's.
    pub strings: Vec<String>,
    pub pcs: Vec<PcSymbols>,
}

/// One lookup address (see [`Symbolizer::lookup_pc`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcSymbols {
    pub lookup: u64,
    /// The physical function (a string number).
    pub function: Option<u32>,
    /// The logical frames, innermost first.
    pub frames: Vec<FrameSymbols>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameSymbols {
    pub function: u32,
    pub file: u32,
    pub line: u32,
    pub wrapper: bool,
    pub panics: bool,
}

/// The addresses an input's stacks hold, as the analysis looks them up:
/// `(pc, is a return address)`.
pub fn addresses(input: &Input, mut each: impl FnMut(u64, bool)) {
    let Input::Event(event) = input else {
        return;
    };
    // A stack taken at a syscall: the innermost frame is the instruction,
    // the others are return addresses.
    let mut syscall_stack = |frames: &[u64]| {
        for (i, &pc) in frames.iter().enumerate() {
            each(pc, i > 0);
        }
    };
    match event {
        Event::SlowCall { frames, .. } | Event::VdsoCalls { frames, .. } => syscall_stack(frames),
        // Taken at a function entry: every frame is a return address.
        Event::NewM { frames, .. } => frames.iter().for_each(|&pc| each(pc, true)),
        Event::Mexit {
            lock_frames: Some(frames),
            ..
        } => frames.iter().for_each(|&pc| each(pc, true)),
        Event::Handoff { caller, .. } | Event::PTaken { caller, .. } => each(*caller, true),
        _ => {}
    }
}

/// Writes each address's symbols once.
#[derive(Debug, Default)]
pub struct SymbolWriter {
    string_ids: HashMap<String, u32>,
    done: HashSet<u64>,
}

impl SymbolWriter {
    /// The symbols `inputs` need that no earlier chunk gave.
    pub fn chunk(&mut self, sym: &Symbolizer, inputs: &[Input]) -> SymbolsChunk {
        let mut chunk = SymbolsChunk::default();
        for input in inputs {
            addresses(input, |pc, is_return| {
                let Some(lookup) = sym.lookup_pc(pc, is_return) else {
                    return;
                };
                if !self.done.insert(lookup) {
                    return;
                }
                let Some((_, exported)) = sym.export(pc, is_return) else {
                    return;
                };
                let pc = self.pc(&mut chunk.strings, lookup, exported);
                chunk.pcs.push(pc);
            });
        }
        chunk
    }

    fn pc(&mut self, strings: &mut Vec<String>, lookup: u64, pc: ExportedPc) -> PcSymbols {
        let mut id = |s: String| {
            let next = self.string_ids.len() as u32;
            *self.string_ids.entry(s).or_insert_with_key(|s| {
                strings.push(s.clone());
                next
            })
        };
        PcSymbols {
            lookup,
            function: pc.function.map(&mut id),
            frames: pc
                .frames
                .into_iter()
                .map(|f| FrameSymbols {
                    function: id(f.frame.function),
                    file: id(f.frame.file),
                    line: f.frame.line,
                    wrapper: f.wrapper,
                    panics: f.panics,
                })
                .collect(),
        }
    }
}

/// A chunk names a string no chunk before it gave: the file is corrupt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a symbol names string {0}, which the recording never gave")]
pub struct UnknownString(pub u32);

/// Reads the chunks back into the symbols a [`Symbolizer`] answers from.
#[derive(Debug, Default)]
pub struct SymbolReader {
    strings: Vec<String>,
    pub table: RecordedSymbols,
}

impl SymbolReader {
    pub fn add(&mut self, chunk: SymbolsChunk) -> Result<(), UnknownString> {
        self.strings.extend(chunk.strings);
        for pc in chunk.pcs {
            let name = |id: u32| {
                self.strings
                    .get(id as usize)
                    .cloned()
                    .ok_or(UnknownString(id))
            };
            let frames = pc
                .frames
                .iter()
                .map(|f| {
                    Ok(CachedFrame {
                        frame: Frame {
                            function: name(f.function)?,
                            file: name(f.file)?,
                            line: f.line,
                        },
                        wrapper: f.wrapper,
                        panics: f.panics,
                    })
                })
                .collect::<Result<Vec<_>, UnknownString>>()?;
            let function = pc.function.map(name).transpose()?;
            self.table
                .insert(pc.lookup, ExportedPc { function, frames });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        gobin::symbolize::testing::{TEXT, ret, symbolizer},
        model::{PHandoff, RawFd, TakenFlags},
    };

    const FUNCTIONS: &[&str] = &["syscall.Syscall6", "os.ReadFile", "main.load", "main.main"];

    fn slow_call(frames: Vec<u64>) -> Input {
        Input::Event(Event::SlowCall {
            tid: 1,
            ts_ns: 1,
            sysno: 0,
            ret: 0,
            duration_ns: 5_000_000,
            goid: 1,
            p: PHandoff::Kept,
            cgo: false,
            taken: TakenFlags::default(),
            p_id: Some(0),
            fd: RawFd::default(),
            frames,
        })
    }

    #[test]
    fn recorded_symbols_give_the_same_stacks_and_functions_as_the_binary() {
        let live = symbolizer(FUNCTIONS);
        let stack = vec![TEXT + 4, ret(1), ret(2), ret(3)];
        let inputs = [
            slow_call(stack.clone()),
            // The same stack again adds nothing.
            slow_call(stack.clone()),
        ];
        let mut writer = SymbolWriter::default();
        let chunk = writer.chunk(&live, &inputs);
        assert_eq!(chunk.pcs.len(), 4);
        // Each name once.
        assert_eq!(
            chunk.strings.iter().filter(|s| *s == "main.load").count(),
            1
        );
        let again = writer.chunk(&live, &inputs);
        assert!(again.pcs.is_empty() && again.strings.is_empty());

        let mut reader = SymbolReader::default();
        reader.add(chunk).unwrap();
        let recorded = Symbolizer::recorded(
            live.build.clone(),
            live.symbols,
            live.cgo,
            live.bias(),
            reader.table,
        );
        let names = |s: &Symbolizer| -> Vec<String> {
            s.syscall_stack(&stack)
                .into_iter()
                .map(|f| f.function)
                .collect()
        };
        assert_eq!(names(&recorded), FUNCTIONS);
        assert_eq!(recorded.syscall_stack(&stack), live.syscall_stack(&stack));
        assert_eq!(recorded.function_name(ret(2), true), Some("main.load"));
        assert_eq!(recorded.frame(ret(2), true), live.frame(ret(2), true));
        // An address the recording never held is outside the binary.
        assert!(recorded.frames_at(ret(0) + 0x1000, true).is_empty());
        assert!(recorded.binary().is_none());
    }

    #[test]
    fn a_chunk_naming_a_missing_string_is_refused() {
        let chunk = SymbolsChunk {
            strings: vec!["main.main".into()],
            pcs: vec![PcSymbols {
                lookup: 0x401000,
                function: Some(7),
                frames: Vec::new(),
            }],
        };
        assert_eq!(SymbolReader::default().add(chunk), Err(UnknownString(7)));
    }
}
