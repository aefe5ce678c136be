//! The latency histogram and the quantile rule every tool of the workspace reports with.
//!
//! One bucket precision and one rank rule for everything that prints a p50 or a p99:
//! `cargo xtask load` (UDP) and `dht-quic-load` (QUIC) used to cut buckets at 1/32 and
//! 1/64, so their p99s could differ by a bucket on the same latencies.

/// Each power of two is split into this many equal buckets, so a quantile is off by at
/// most 1/64 of its value (1.6 %), whatever the range: from loopback microseconds to
/// seconds-long timeouts in one fixed-size table.
const STEPS: u64 = 64;
/// Values below `STEPS` get a bucket each (exact); above, one row of `STEPS` buckets per
/// power of two from 2^6 to 2^63.
const BUCKETS: usize = (STEPS as usize) * (64 - 6 + 1);

/// The 1-based rank of the q-quantile among `n` samples (nearest rank: the smallest value
/// with at least a share `q` of the samples at or below it). `q` is clamped to 0..=1 and
/// the rank to 1..=n; `n` must not be 0.
fn rank(q: f64, n: u64) -> u64 {
    ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// The nearest-rank q-quantile of `sorted` (ascending), or `None` when it is empty. The
/// same rule as [`Histogram::quantile`], exact because every sample is kept.
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    // rank is within 1..=len, so the index is in bounds.
    Some(sorted[rank(q, sorted.len() as u64) as usize - 1])
}

/// A log-linear histogram of microsecond values. Fixed size, so that recording millions
/// of requests costs no memory growth, and merging per-thread histograms is a sum.
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

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The value under which a share `q` (0..=1) of the samples lie, by the rank rule of
    /// [`quantile`]: the middle of the bucket holding that sample. `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = rank(q, self.total);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        let mut last = 0;
        for v in (0..100_000u64).chain([u64::MAX / 2, u64::MAX]) {
            let i = bucket(v);
            assert!(i >= last, "buckets out of order at {v}");
            last = i;
        }
        let edges = (6..64).flat_map(|s| {
            let p = 1u64 << s;
            [p - 1, p, p + 1, p | (p >> 1)]
        });
        for v in (0..100_000u64).chain(edges).chain([u64::MAX]) {
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
    fn merging_is_recording_both() {
        let (mut a, mut b, mut both) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for v in 0..1000 {
            if v % 3 == 0 {
                a.record(v * 7)
            } else {
                b.record(v * 7)
            }
            both.record(v * 7);
        }
        a.merge(&b);
        assert_eq!(a.len(), both.len());
        for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
            assert_eq!(a.quantile(q), both.quantile(q));
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(quantile(&v, 0.5), Some(50_000));
        assert_eq!(quantile(&v, 0.99), Some(99_000));
        assert_eq!(quantile(&v, 1.0), Some(100_000));
        assert_eq!(quantile(&v, 0.0), Some(1000));
        assert_eq!(quantile::<u64>(&[], 0.5), None);
    }

    #[test]
    fn the_histogram_and_the_exact_rule_pick_the_same_sample() {
        // Below STEPS every bucket is one value wide: the two must agree exactly.
        let mut h = Histogram::default();
        let v: Vec<u64> = (0..STEPS).collect();
        for &x in &v {
            h.record(x);
        }
        for q in [0.0, 0.01, 0.25, 0.5, 0.95, 0.99, 1.0] {
            assert_eq!(h.quantile(q), quantile(&v, q), "q{q}");
        }
    }
}
