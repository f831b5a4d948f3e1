//! Per-syscall counts, errors by errno and latency histograms, kept apart
//! for the calls the program made and the Go runtime's idle waits.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use tracer_common::{SYS_RT_SIGRETURN, buckets};

/// Highest duration the histograms resolve (about 18 minutes); longer calls
/// saturate at it (the exact maximum is kept separately).
const HIST_MAX_NS: u64 = 1 << 40;
/// Significant figures of the HdrHistograms: 2 gives 128 sub-buckets per
/// power of two (0.8% resolution), finer than the kernel's own buckets
/// (64 per power of two, `tracer_common::buckets`), so nothing the kernel
/// counted is blurred. 3 would cost 8 times the memory (254 KB per
/// histogram instead of 35 KB) for precision the data does not have.
const HIST_SIGFIG: u8 = 2;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIST_MAX_NS, HIST_SIGFIG)
        .expect("static histogram bounds are valid")
}

/// Everything known about one syscall number (of one kind of call).
#[derive(Clone, Debug)]
pub struct SyscallStats {
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub max_ns: u64,
    /// Failed calls by errno (0: an errno outside the counted range).
    pub errnos: BTreeMap<u32, u64>,
    pub histogram: Histogram<u64>,
}

impl Default for SyscallStats {
    fn default() -> Self {
        Self {
            calls: 0,
            errors: 0,
            total_ns: 0,
            max_ns: 0,
            errnos: BTreeMap::new(),
            histogram: new_histogram(),
        }
    }
}

impl SyscallStats {
    /// Adds another's calls to these (the same syscall, another part).
    pub fn add(&mut self, other: &Self) {
        self.calls = self.calls.saturating_add(other.calls);
        self.errors = self.errors.saturating_add(other.errors);
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        for (&errno, &n) in &other.errnos {
            let e = self.errnos.entry(errno).or_default();
            *e = e.saturating_add(n);
        }
        // Same bounds on both sides: adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
    }
}

/// Who waited in a call: the program (its goroutines, or a non-Go
/// program's threads), or the Go runtime with nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Waiter {
    Program,
    /// The runtime's idle waits (parked Ms, the netpoller, sysmon, the
    /// os/signal receiver): read for calls of at least
    /// `tracer_common::HANDOFF_MIN_NS`, shorter ones count as program.
    RuntimeIdle,
}

impl Waiter {
    pub fn from_idle(idle: bool) -> Self {
        if idle {
            Self::RuntimeIdle
        } else {
            Self::Program
        }
    }
}

/// All syscalls of the target.
#[derive(Clone, Debug, Default)]
pub struct SyscallTable {
    /// The kernel's cumulative histograms as last read (replaced on every
    /// reading, never added to).
    kernel: BTreeMap<(Waiter, u32), SyscallStats>,
    /// Calls streamed one by one (syscalls without a kernel slot yet).
    streamed: BTreeMap<(Waiter, u32), SyscallStats>,
}

impl SyscallTable {
    /// One call streamed from the kernel.
    pub fn record(&mut self, waiter: Waiter, sysno: u32, ret: i64, duration_ns: u64) {
        let s = self.streamed.entry((waiter, sysno)).or_default();
        s.calls += 1;
        s.total_ns = s.total_ns.saturating_add(duration_ns);
        s.max_ns = s.max_ns.max(duration_ns);
        s.histogram.saturating_record(duration_ns.max(1));
        if (-4095..0).contains(&ret) && sysno != SYS_RT_SIGRETURN {
            s.errors += 1;
            *s.errnos.entry(ret.unsigned_abs() as u32).or_default() += 1;
        }
    }

    /// The kernel's cumulative aggregate of one syscall, replacing the
    /// previous reading.
    #[allow(clippy::too_many_arguments)]
    pub fn set_kernel(
        &mut self,
        waiter: Waiter,
        sysno: u32,
        calls: u64,
        errors: u64,
        total_ns: u64,
        max_ns: u64,
        errnos: &[(u32, u64)],
        bucket_counts: &[(u32, u64)],
    ) {
        // Each reading replaces the last: in place, so a session refreshed
        // every interval for weeks allocates nothing new per reading.
        // Saturating, and indexes checked: a recording can hold anything.
        let s = self.kernel.entry((waiter, sysno)).or_default();
        s.calls = calls;
        s.errors = errors;
        s.total_ns = total_ns;
        s.max_ns = max_ns;
        s.errnos.clear();
        for &(errno, n) in errnos {
            let e = s.errnos.entry(errno).or_default();
            *e = e.saturating_add(n);
        }
        s.histogram.reset();
        for &(index, count) in bucket_counts {
            if (index as usize) < buckets::NUM_BUCKETS {
                let value = buckets::bucket_value(index as usize).max(1);
                s.histogram.saturating_record_n(value, count);
            }
        }
    }

    /// Every syscall with calls for one waiter, kernel and streamed parts
    /// together.
    pub fn by_syscall(&self, waiter: Waiter) -> BTreeMap<u32, SyscallStats> {
        let mut out: BTreeMap<u32, SyscallStats> = BTreeMap::new();
        for ((w, sysno), s) in self.kernel.iter().chain(&self.streamed) {
            if *w == waiter && s.calls > 0 {
                out.entry(*sysno).or_default().add(s);
            }
        }
        out
    }

    /// (calls, errors, total ns) over everything, or one waiter.
    pub fn totals(&self, waiter: Option<Waiter>) -> (u64, u64, u64) {
        self.kernel
            .iter()
            .chain(&self.streamed)
            .filter(|((w, _), _)| waiter.is_none_or(|x| x == *w))
            .fold((0, 0, 0), |(c, e, t), (_, s)| {
                (
                    c.saturating_add(s.calls),
                    e.saturating_add(s.errors),
                    t.saturating_add(s.total_ns),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_readings_replace_and_streams_add() {
        let mut t = SyscallTable::default();
        t.set_kernel(Waiter::Program, 0, 10, 1, 100, 20, &[(11, 1)], &[(10, 10)]);
        t.set_kernel(Waiter::Program, 0, 12, 2, 130, 20, &[(11, 2)], &[(10, 12)]);
        t.record(Waiter::Program, 0, -11, 5);
        t.record(Waiter::RuntimeIdle, 202, 0, 50_000);
        t.record(Waiter::Program, SYS_RT_SIGRETURN, -4, 1);
        let read = &t.by_syscall(Waiter::Program)[&0];
        assert_eq!((read.calls, read.errors, read.total_ns), (13, 3, 135));
        assert_eq!(read.errnos[&11], 3);
        assert_eq!(read.histogram.len(), 13);
        // rt_sigreturn's "error" is a restored register.
        assert_eq!(t.by_syscall(Waiter::Program)[&SYS_RT_SIGRETURN].errors, 0);
        assert_eq!(t.totals(Some(Waiter::RuntimeIdle)), (1, 0, 50_000));
        assert_eq!(t.totals(None).0, 15);
    }

    /// A recording's readings can hold anything: a bucket past the scheme
    /// is left out, and counts saturate (found by the recording fuzzer).
    #[test]
    fn impossible_readings_are_no_panic() {
        let mut t = SyscallTable::default();
        let past = buckets::NUM_BUCKETS as u32;
        let max = u64::MAX;
        t.set_kernel(
            Waiter::Program,
            0,
            max,
            max,
            max,
            max,
            &[(4, max), (4, 1)],
            &[(past, 1)],
        );
        t.record(Waiter::Program, 0, -4, 5);
        let read = &t.by_syscall(Waiter::Program)[&0];
        assert_eq!((read.calls, read.errors), (max, max));
        assert_eq!(read.errnos[&4], max);
        assert_eq!(read.histogram.len(), 1);
        assert_eq!(t.totals(None).0, max);
    }
}
