//! The fuzz targets' committed seeds (`fuzz/seeds/`, made by
//! `fuzz/make-corpus.sh`) are inputs the parsers accept whole, so that
//! fuzzing starts deep in them: a parser change that turned them away
//! would leave the fuzzer at the first check.

use std::{fs, path::PathBuf};

use crate::{
    gobin::{GoBinary, GoVersion, Pclntab, SymbolsSource, VDSO_CLOCK_GETTIME_SYM},
    model::{
        Input,
        event::{DecodeError, Event},
    },
    probes::{btf::Btf, kernel_layout::KernelLayout},
    procinfo::kallsyms::{FopsMap, FopsUnavailable, KNOWN_FOPS},
    record::Recording,
};

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no seeds in {}", dir.display());
    out
}

/// Some pc of the table is in code the compiler inlined.
fn has_inlined_code(tab: &Pclntab) -> bool {
    tab.functions
        .iter()
        .any(|f| (f.entry..f.end).any(|pc| tab.logical_frames(pc).len() > 1))
}

#[test]
fn go_binary_seeds_parse_whole() {
    for (name, data) in seeds("gobinary") {
        let bin = GoBinary::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        if let Some(v) = name.split('-').next().and_then(|v| v.strip_prefix("go")) {
            assert!(bin.build.raw_version.ends_with(v), "{name}");
        }
        assert!(bin.pclntab.functions.len() >= 50, "{name}");
        assert!(bin.pclntab.entry("runtime.main").is_some(), "{name}");
        assert!(bin.data_symbol(VDSO_CLOCK_GETTIME_SYM).is_some(), "{name}");
        assert!(bin.pclntab.gofunc().is_some(), "{name}");
        assert!(has_inlined_code(&bin.pclntab), "{name}");
        let stripped = name.contains("stripped");
        let symbols = if stripped {
            SymbolsSource::Pclntab
        } else {
            SymbolsSource::Symtab
        };
        assert_eq!(bin.symbols, symbols, "{name}");
        assert_eq!(
            bin.data_symbol("runtime.sched").is_some(),
            !stripped,
            "{name}"
        );
        assert_eq!(bin.cgo, name.contains("cgo"), "{name}");
        assert_eq!(bin.pie, name.contains("pie"), "{name}");
        let entry = bin.pclntab.entry("runtime.main").unwrap();
        assert!(bin.file_offset(entry).is_some(), "{name}");
    }
}

#[test]
fn pclntab_seeds_parse_whole() {
    for (name, data) in seeds("pclntab_tables") {
        let version = GoVersion {
            major: 1,
            minor: u32::from(data[0]),
            patch: 0,
        };
        let len = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
        let (tab, gofunc) = data[5..].split_at(len);
        let mut tab = Pclntab::parse(tab, &version).unwrap_or_else(|e| panic!("{name}: {e}"));
        tab.set_gofunc(0, gofunc.to_vec());
        assert!(tab.functions.len() >= 50, "{name}");
        assert!(has_inlined_code(&tab), "{name}");
    }
}

#[test]
fn btf_seeds_hold_the_kernel_layout() {
    for (name, data) in seeds("btf") {
        let btf = Btf::parse(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        btf.member_offset("sock", "__sk_common.skc_family")
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "vmlinux-layout" {
            KernelLayout::from_btf(&btf).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn kallsyms_seeds_reach_each_outcome() {
    for (name, data) in seeds("kallsyms") {
        let parsed = FopsMap::parse(std::str::from_utf8(&data).unwrap());
        match name.as_str() {
            // Every known table, and one more address with an LTO suffix.
            "with-tables" => assert_eq!(parsed.unwrap().len(), KNOWN_FOPS.len() + 1),
            "hidden" => assert!(matches!(parsed, Err(FopsUnavailable::AddressesHidden))),
            "functions-only" => assert!(matches!(parsed, Err(FopsUnavailable::NoDataSymbols))),
            _ => {}
        }
    }
}

#[test]
fn event_seeds_are_each_kind() {
    for (name, data) in seeds("event_decode") {
        let decoded = Event::decode(&data);
        match name
            .strip_prefix("kind-")
            .map(|k| k.parse::<u32>().unwrap())
        {
            Some(k @ 1..=14) => assert!(decoded.is_ok(), "{name} (kind {k}): {decoded:?}"),
            // A followed process's record: its `what` is a random word here.
            Some(15) => assert!(
                matches!(decoded, Ok(_) | Err(DecodeError::UnknownProcRecord(_))),
                "{name}: {decoded:?}"
            ),
            Some(_) => assert!(
                matches!(decoded, Err(DecodeError::UnknownKind(_))),
                "{name}"
            ),
            None => assert!(
                matches!(decoded, Err(DecodeError::TooShort { .. })),
                "{name}"
            ),
        }
    }
}

#[test]
fn recording_seeds_read_whole_or_cut() {
    for (name, data) in seeds("recording") {
        let input = Box::new(std::io::Cursor::new(data));
        // A seed of this format that no longer reads whole means the
        // recorded types changed: that is a new format version.
        let hint = "a change to what recordings hold needs record::FORMAT_VERSION bumped \
                    and the seeds made again (fuzz/make-corpus.sh)";
        let mut rec = Recording::from_reader(std::path::Path::new(&name), input)
            .unwrap_or_else(|e| panic!("{name}: {e}; {hint}"));
        let mut slow_calls = 0;
        while let Some(input) = rec.next_input() {
            slow_calls += usize::from(matches!(input, Input::Event(Event::SlowCall { .. })));
        }
        assert!(rec.start.go.is_some(), "{name}");
        if name.contains("cut") {
            assert!(rec.cut_short.is_some() && rec.end.is_none(), "{name}");
        } else {
            // Whole, past its --max-size, with symbols for its stacks.
            assert!(
                rec.cut_short.is_none(),
                "{name}: {:?}; {hint}",
                rec.cut_short
            );
            assert!(rec.end.is_some() && rec.size_limit.is_some(), "{name}");
            assert!(!rec.symbols.table.is_empty(), "{name}");
            assert!(slow_calls > 0, "{name}");
        }
    }
}
