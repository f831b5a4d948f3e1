//! The JSON report (schema `gotracer.report/2`): one object per report,
//! the [`Report`] value serialized. Its JSON Schema is `schema.json` beside
//! this file ([`super::SCHEMA_JSON`]); the tests validate every report they
//! produce against it.
//!
//! - Durations are integer nanoseconds (`*_ns`); percentiles come from an
//!   HdrHistogram with 3 significant digits fed by buckets at most 1/64
//!   wide.
//! - Every total is the sum of its parts, and each part that cannot be
//!   attributed says why (`go.handoffs.unattributed`,
//!   `go.slow_exits`, `threads_by_cause.not_kept`...).
//! - A fact that could not be read is `{"state": "unknown", "why": ...}`,
//!   never a value.
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
        assert_eq!(v["schema"], "gotracer.report/2");
        assert_eq!(v["syscalls"][0]["name"], "pread64");
        assert_eq!(v["syscalls"][0]["calls"], 4);
        assert_eq!(v["threads"]["spawned"], 1);
        assert_eq!(v["events"]["lost"], 0);
        assert_eq!(v["target"]["exit_code"], 0);
        assert_eq!(v["target"]["mode"], "run");
        assert_eq!(v["totals"]["all"]["calls"], 7);
        assert_eq!(
            v["idle_waits"][0]["errors_by_errno"][0]["errno"],
            "ETIMEDOUT"
        );
    }
}
