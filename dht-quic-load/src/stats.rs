//! Latency histogram and what /proc tells about processes (CPU time, resident memory).

use std::time::Duration;

/// Each power of two is split into this many equal buckets, so a quantile is off by at
/// most 1/64 of its value (1.6 %), whatever the range: from loopback microseconds to
/// seconds-long timeouts in one fixed-size table.
const STEPS: u64 = 64;
/// Values below `STEPS` get a bucket each (exact).
const BUCKETS: usize = (STEPS as usize) * (64 - 6 + 1);

/// A log-linear histogram of microsecond values. Fixed size, so a long run does not
/// grow it, and every connection of a run records into one shared histogram.
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

/// The bucket of `v`: `v` itself below `STEPS`; above, the power of two (row) and which
/// of its `STEPS` equal parts (column) holds it.
fn bucket(v: u64) -> usize {
    if v < STEPS {
        return v as usize;
    }
    let log = 63 - u64::from(v.leading_zeros()); // >= 6
    let shift = log - 6;
    let column = (v >> shift) - STEPS; // 0..STEPS: the 6 bits under the leading one
    ((shift + 1) * STEPS + column) as usize
}

/// The smallest value in bucket `i`, and the bucket's width.
fn bounds(i: usize) -> (u64, u64) {
    let i = i as u64;
    if i < STEPS {
        return (i, 1);
    }
    let shift = i / STEPS - 1;
    let column = i % STEPS;
    ((STEPS + column) << shift, 1 << shift)
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, v: u64) {
        // `bucket` is below BUCKETS for every u64 (tested), so the index is in range.
        self.counts[bucket(v)] += 1;
        self.total += 1;
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value under which a share `q` (0..=1) of the samples lie: the middle of the
    /// bucket holding the q-th sample. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, width) = bounds(i);
                return Some(low + width / 2);
            }
        }
        None
    }
}

/// CPU time (user + system) this process has used; `None` off Linux.
pub fn process_cpu_time() -> Option<Duration> {
    cpu_time_of("self")
}

/// CPU time (user + system) process `pid` has used, all threads together; `None` off
/// Linux or for a process that is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    cpu_time_of(&pid.to_string())
}

/// Reads `/proc/PID/stat`: std has no getrusage and the workspace forbids unsafe code,
/// and another process's time is only in /proc anyway. Resolution 10 ms.
fn cpu_time_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces or ')': count fields after the last ')'.
    let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // utime and stime are fields 14 and 15 of proc(5): the 12th and 13th after the name.
    let user: u64 = rest.nth(11)?.parse().ok()?;
    let system: u64 = rest.next()?.parse().ok()?;
    // In USER_HZ ticks, which Linux fixes at 100 for user space on every architecture.
    Some(Duration::from_millis((user + system).saturating_mul(10)))
}

/// Resident memory of process `pid` in bytes (`VmRSS` of `/proc/PID/status`).
pub fn rss_bytes(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| {
            let kib = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?;
            kib.trim().parse::<u64>().ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| std::io::Error::other(format!("/proc/{pid}/status has no VmRSS line")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        let mut last = 0;
        for v in 0..70_000u64 {
            let i = bucket(v);
            assert!(i >= last, "buckets out of order at {v}");
            last = i;
        }
        let edges = (6..64).flat_map(|s| {
            let p = 1u64 << s;
            [p - 1, p, p + 1, p | (p >> 1)]
        });
        for v in (0..70_000u64).chain(edges).chain([u64::MAX]) {
            let i = bucket(v);
            assert!(i < BUCKETS, "{v}");
            let (low, width) = bounds(i);
            assert!(low <= v && v - low < width, "{v} not in {low}+{width}");
        }
    }

    #[test]
    fn quantiles_within_two_percent() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=100_000 {
            h.record(v);
        }
        assert_eq!(h.len(), 100_000);
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.001, 100.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got / want - 1.0).abs() < 0.02, "q{q}: {got} vs {want}");
        }
    }

    #[test]
    fn own_rss_is_read() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes(std::process::id()).unwrap() > 0);
            assert!(rss_bytes(u32::MAX).is_err());
            assert!(cpu_time(std::process::id()).is_some());
            assert!(process_cpu_time().is_some());
        }
    }
}
