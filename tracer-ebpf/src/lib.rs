//! Empty on purpose: the programs are in the `tracer-ebpf` binary
//! (`src/main.rs`). This library target exists so `tracer` can name this crate
//! as a build-dependency and be rebuilt when it changes.
#![no_std]
