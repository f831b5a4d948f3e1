//! The kernel BTF parser: `Btf::parse`, then every struct member path the
//! kernel programs need (`KernelLayout`), and type sizes and names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracer::probes::{
    btf::Btf,
    kernel_layout::{FIELDS, KernelLayout},
};

const MAX_INPUT: usize = 4 << 20;
/// Type ids whose names and sizes are looked up per input.
const MAX_IDS: u32 = 512;

fuzz_target!(|data: &[u8]| {
    if data.len() > MAX_INPUT {
        return;
    }
    let Ok(btf) = Btf::parse(data) else {
        return;
    };
    let _ = btf.is_empty();
    let last = u32::try_from(btf.len()).unwrap_or(u32::MAX).min(MAX_IDS);
    for id in 0..=last.saturating_add(1) {
        let _ = btf.kind_and_name(id);
        let _ = btf.type_size(id);
    }
    let _ = KernelLayout::report(&btf);
    if let Ok(layout) = KernelLayout::from_btf(&btf) {
        let _ = layout.to_kernel();
    }
    for spec in FIELDS.iter().take(4) {
        let _ = btf.struct_size(spec.ty);
        let _ = btf.member_offset(spec.ty, spec.member);
        let _ = btf.member_size(spec.ty, spec.member);
    }
    let _ = btf.member("");
    let _ = btf.member("sock..x");
});
