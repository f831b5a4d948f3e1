//! The JSON report, schema `gotracer.report/1`.
//!
//! # Format
//!
//! One JSON object per report:
//!
//! ```json
//! {
//!   "schema": "gotracer.report/1",
//!   "target": {"pid": 4242, "command": "workload", "mode": "run",
//!              "exited": true, "exit_code": 0},
//!   "traced_seconds": 1.25,
//!   "syscalls": [
//!     {"name": "pread64", "number": 17, "calls": 200000, "errors": 0,
//!      "total_ns": 123000000, "mean_ns": 615, "p50_ns": 580, "p90_ns": 700,
//!      "p99_ns": 1900, "p999_ns": 12000, "max_ns": 340000,
//!      "histogram": [{"low_ns": 512, "high_ns": 1024, "count": 190000}]}
//!   ],
//!   "threads": {"at_start": 1, "at_end": 0, "peak": 6, "spawned": 5,
//!               "exited": 0, "exited_at_process_exit": 6},
//!   "events": {"lost": 0, "ringbuf_full": 0, "inflight_collisions": 0,
//!              "undecodable": 0, "unknown_syscalls": 0, "unmatched_exits": 0}
//! }
//! ```
//!
//! - Durations are integer nanoseconds (`*_ns`); percentiles come from an
//!   HdrHistogram with 3 significant digits fed by buckets at most 1.6% wide.
//! - `syscalls` is sorted by `total_ns`, largest first.
//! - `events.lost` counts calls or thread changes missing from the report;
//!   `unmatched_exits` (calls in progress at attach) are not losses.
//! - New fields may be added within a schema version; a field is never
//!   removed or changed in meaning without a new `schema`.

use std::io::{self, Write};

use super::{Report, Sink};

pub struct JsonSink<W: Write> {
    out: W,
}

impl<W: Write> JsonSink<W> {
    pub fn new(out: W) -> Self {
        Self { out }
    }
}

impl<W: Write> Sink for JsonSink<W> {
    fn write(&mut self, report: &Report) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut self.out, report)?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_carries_schema_and_rows() {
        let mut out = Vec::new();
        JsonSink::new(&mut out)
            .write(&crate::report::tests::sample())
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["schema"], "gotracer.report/1");
        assert_eq!(v["syscalls"][0]["name"], "pread64");
        assert_eq!(v["syscalls"][0]["calls"], 4);
        assert_eq!(v["threads"]["spawned"], 1);
        assert_eq!(v["events"]["lost"], 0);
        assert_eq!(v["target"]["exit_code"], 0);
    }
}
