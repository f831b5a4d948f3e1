//! `/proc/kallsyms` text: `FopsMap::parse` (on the input read as UTF-8,
//! lossily, as `fs::read_to_string` would refuse the rest).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::procinfo::kallsyms::FopsMap;

const MAX_INPUT: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let text = String::from_utf8_lossy(data);
    if let Ok(map) = FopsMap::parse(&text) {
        assert!(!map.is_empty());
        for &(_, addr) in map.symbols() {
            assert!(map.kind(addr).is_some());
        }
    }
});
