//! What the benchmarks measure with: percentiles, thread CPU time, resident memory, and their
//! progress bars.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The nearest-rank percentile of `sorted` (ascending): the smallest value with at least a
/// fraction `q` (0 to 1) of the values at or below it, so always one of the values, never an
/// interpolation. `None` when `sorted` is empty. Works for durations, times in ms and byte counts.
pub fn percentile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = ((n as f64 * q).ceil() as usize).clamp(1, n);
    Some(sorted[rank - 1])
}

/// The median (nearest-rank 50th percentile, see [`percentile`]) of `values` in any order; NaN when
/// there are none (serialised as JSON `null`).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    percentile(&values, 0.5).unwrap_or(f64::NAN)
}

/// Milliseconds in `d`, as the reports give times.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CPU time consumed by the calling thread (Linux `CLOCK_THREAD_CPUTIME_ID`; zero if the clock
/// cannot be read). Unlike wall time it does not grow while the thread waits for a core, so on a
/// shared machine it shows what one operation costs on an idle one (memory stalls still count:
/// the thread is running while it waits for DRAM).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Resident memory of this process, from `/proc/self/status` (Linux; zeros elsewhere).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Resident {
    /// VmRSS: resident now, in bytes.
    pub now: u64,
    /// VmHWM: the most ever resident, in bytes.
    pub peak: u64,
}

impl Resident {
    /// Reads this process's resident memory now.
    pub fn now() -> Resident {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
                .map_or(0, |kb| kb * 1024)
        };
        Resident {
            now: field("VmRSS:"),
            peak: field("VmHWM:"),
        }
    }
}

/// Bytes in MiB, as the reports give memory.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

/// A progress bar of `len` steps on stderr drawn with `template` (indicatif's syntax; the default
/// style if it does not parse), hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.5), Some(5));
        assert_eq!(percentile(&v, 0.9), Some(9));
        assert_eq!(percentile(&v, 0.99), Some(10));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile::<u32>(&[], 0.5), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
    }
}
