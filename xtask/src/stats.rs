//! Latency histogram and a small random number generator for the load generator.

/// Values below this are recorded exactly; above, each power of two is cut into
/// `SUB_BUCKETS / 2` equal parts, so a recorded value is off by at most 1/32 (about 3 %).
const SUB_BUCKETS: usize = 64;
const HALF: usize = SUB_BUCKETS / 2;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();
const BUCKETS: usize = SUB_BUCKETS + (64 - SUB_BITS as usize) * HALF;

/// A log-linear histogram of microsecond latencies. Fixed size, so that recording several
/// million requests costs no memory growth and merging per-thread histograms is a sum.
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

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.counts[index(value)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.total
    }

    /// The value below which a fraction `q` (0..=1) of the samples fall, or `None` if empty.
    /// Reports the middle of the bucket that holds the q-th sample.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let (low, width) = bucket_range(i);
                return Some(low + width / 2);
            }
        }
        None
    }
}

fn index(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent + 1 - SUB_BITS;
    let mantissa = (value >> shift) as usize;
    SUB_BUCKETS + (shift as usize - 1) * HALF + (mantissa - HALF)
}

fn bucket_range(index: usize) -> (u64, u64) {
    if index < SUB_BUCKETS {
        return (index as u64, 1);
    }
    let shift = ((index - SUB_BUCKETS) / HALF + 1) as u32;
    let mantissa = ((index - SUB_BUCKETS) % HALF + HALF) as u64;
    (mantissa << shift, 1 << shift)
}

/// xoshiro-style generators would do as well; splitmix64 is short, passes BigCrush, and the
/// load generator only needs unpredictable-enough targets, not cryptographic ones.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A seed that differs between runs and between threads, without a dependency.
    pub fn from_entropy(stream: u64) -> SplitMix64 {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS once per process and then per thread.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(stream);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        hasher.write_u64(nanos);
        SplitMix64(hasher.finish())
    }

    /// A generator that replays the same sequence for the same seed (`testnet --seed`).
    pub fn seeded(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// Uniform enough in `0..n` for picking nodes (`n` is far below 2^64); `n` must not be 0.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn fill_20(&mut self, out: &mut [u8; 20]) {
        let (a, b, c) = (self.next_u64(), self.next_u64(), self.next_u64());
        out[..8].copy_from_slice(&a.to_le_bytes());
        out[8..16].copy_from_slice(&b.to_le_bytes());
        out[16..].copy_from_slice(&c.to_le_bytes()[..4]);
    }
}

/// CPU time (user + system) used so far by this process, all threads together, read from
/// `/proc/self/stat`. `None` off Linux or if the file does not parse. Resolution 10 ms.
///
/// The load report divides by this to show whether the load generator itself was the
/// bottleneck, which std cannot tell otherwise (it has no getrusage).
pub fn process_cpu_time() -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces and parentheses: start after the last ')'.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // Fields 14 and 15 of proc(5), counted from 1, are the 12th and 13th after the name.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    // /proc reports in USER_HZ, which the kernel ABI fixes at 100 on every mainstream arch.
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut last = 0;
        for value in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let i = index(value);
            assert!(i < BUCKETS);
            assert!(i >= last, "{value}");
            last = i;
            let (low, width) = bucket_range(i);
            assert!(
                low <= value && value - low < width,
                "{value} in {low}+{width}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_bucket_precision() {
        let mut h = Histogram::default();
        for v in 1..=10_000 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 / 5_000.0 - 1.0).abs() < 0.04, "{p50}");
        assert!((p99 / 9_900.0 - 1.0).abs() < 0.04, "{p99}");
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn process_cpu_time_grows_with_work() {
        let Some(before) = process_cpu_time() else {
            return; // not Linux
        };
        let spin_until = std::time::Instant::now() + std::time::Duration::from_millis(50);
        let mut x = 0u64;
        while std::time::Instant::now() < spin_until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_time().unwrap() >= before);
    }
}
