//! Privileged integration tests: they build real workloads (Go, and C where
//! Go's own runtime would blur the ground truth), run the real `tracer`
//! binary on them, and compare its report with what the workload is known to
//! do. Without root, a Go toolchain or the built eBPF programs, each test
//! prints why it is skipped and passes.

mod report_check;
mod support;

mod attribution;
mod bad_input;
mod clean_exit;
mod counts;
mod diagnosis;
mod diff;
mod faults;
mod field;
mod flamegraph;
mod flight;
mod follow;
mod gobin;
mod goruntime;
mod ground_truth;
mod harness;
mod hdrlog;
mod inline;
mod latency;
mod perfetto;
mod realprogs;
mod record;
mod serve;
mod soak;
mod stress;
mod targets;
