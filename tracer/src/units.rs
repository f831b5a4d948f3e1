//! Formatting of durations for people: the unit that keeps three
//! significant digits readable. Shared by every text output.

/// A duration in the unit that keeps 3 significant digits readable.
pub fn human_ns(ns: u64) -> String {
    let ns_f = ns as f64;
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.2}µs", ns_f / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2}ms", ns_f / 1e6)
    } else {
        format!("{:.2}s", ns_f / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(human_ns(999), "999ns");
        assert_eq!(human_ns(1_500), "1.50µs");
        assert_eq!(human_ns(20_100_000), "20.10ms");
        assert_eq!(human_ns(3_000_000_000), "3.00s");
    }
}
