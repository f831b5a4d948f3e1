//! The log-linear duration bucket scheme shared by the kernel (which counts)
//! and userspace (which turns counts into HdrHistogram records).
//!
//! Durations below 64 ns get one bucket per nanosecond. Above, every power of
//! two is split into 64 equal sub-buckets, so a bucket is at most 1/64 of its
//! lower bound wide; reporting a bucket by its midpoint is therefore within
//! 1/128 (0.78%) of any value in it. Durations of 2^38 ns (about 275 s) and
//! more share the last bucket (the exact maximum is kept separately).

/// log2 of the number of sub-buckets per power of two.
pub const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;
/// First power of two that is not split (values at or above share the last bucket).
pub const MAX_EXP: u32 = 38;
/// Total number of buckets.
pub const NUM_BUCKETS: usize = (SUB + (MAX_EXP - SUB_BITS) as u64 * SUB) as usize;

/// The bucket a duration in nanoseconds falls in. Branch-light and loop-free
/// so it verifies and runs cheaply in the kernel.
#[inline(always)]
pub fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    if ns >= 1 << MAX_EXP {
        return NUM_BUCKETS - 1;
    }
    let exp = 63 - ns.leading_zeros(); // SUB_BITS..MAX_EXP-1
    let shift = exp - SUB_BITS;
    let sub = (ns >> shift) - SUB; // 0..SUB-1
    (SUB + u64::from(shift) * SUB + sub) as usize
}

/// The half-open range `[low, high)` of nanoseconds a bucket covers.
pub fn bucket_range(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < SUB {
        return (index, index + 1);
    }
    let shift = (index - SUB) / SUB;
    let sub = (index - SUB) % SUB;
    let low = (SUB + sub) << shift;
    (low, low + (1 << shift))
}

/// The value that stands for a bucket: its midpoint.
pub fn bucket_value(index: usize) -> u64 {
    let (low, high) = bucket_range(index);
    low + (high - low) / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        for ns in 0..64 {
            assert_eq!(bucket_of(ns), ns as usize);
            assert_eq!(bucket_range(ns as usize), (ns, ns + 1));
        }
    }

    #[test]
    fn every_value_lands_in_its_bucket_within_one_percent() {
        let mut ns = 64u64;
        while ns < 1 << MAX_EXP {
            let index = bucket_of(ns);
            let (low, high) = bucket_range(index);
            assert!(
                low <= ns && ns < high,
                "{ns} not in [{low},{high}) ({index})"
            );
            let mid = bucket_value(index);
            let err = mid.abs_diff(ns) as f64 / ns as f64;
            assert!(err <= 0.01, "{ns}: midpoint {mid} off by {err}");
            ns = ns + ns / 97 + 1;
        }
    }

    #[test]
    fn buckets_are_contiguous_and_cover_the_range() {
        for index in 1..NUM_BUCKETS {
            assert_eq!(bucket_range(index - 1).1, bucket_range(index).0);
        }
        assert_eq!(bucket_range(NUM_BUCKETS - 1).1, 1 << MAX_EXP);
        assert_eq!(bucket_of(u64::MAX), NUM_BUCKETS - 1);
        assert_eq!(bucket_of((1 << MAX_EXP) - 1), NUM_BUCKETS - 1);
    }
}
