//! Ring-buffer records as the kernel programs write them: `Event::decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::model::event::Event;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data) {
        let _ = format!("{event:?}");
    }
});
