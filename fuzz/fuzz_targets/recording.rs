//! Recordings as `tracer record` writes them: `Recording::from_reader`,
//! every input, the symbols and the kernel map read back, and the
//! recording's interval log (`report --format hdrlog`) written.
#![no_main]

use std::{io::Cursor, path::Path};

use libfuzzer_sys::fuzz_target;
use tracer::{commands::replay::write_hdrlog, record::Recording, report::hdrlog::LogHeader};

fuzz_target!(|data: &[u8]| {
    let input = Box::new(Cursor::new(data.to_vec()));
    let Ok(mut recording) = Recording::from_reader(Path::new("fuzz.rec"), input) else {
        return;
    };
    let mut model = tracer::model::Model::new(recording.start.threads_at_start);
    while let Some(input) = recording.next_input() {
        model.feed(&input);
    }
    let _ = format!("{recording:?} {:?}", recording.fops());
    if let Some((sym, _)) = recording.symbolizer() {
        let _ = sym.syscall_stack(&[0x40_1000, 0x40_2000]);
    }
    // Read again, interval by interval: errors are fine, panics are not.
    let input = Box::new(Cursor::new(data.to_vec()));
    if let Ok(mut again) = Recording::from_reader(Path::new("fuzz.rec"), input) {
        let header = LogHeader {
            command: "fuzz".into(),
            pid: 1,
            started: None,
        };
        let _ = write_hdrlog(&mut again, &header, &mut std::io::sink());
    }
});
