//! The arithmetic of `ipfs-bench`'s report: medians, ratios of pairs, percentiles and
//! the split of CPU per request between transport and engine, apart from the
//! processes so that it is tested alone.

/// The median of `values` (the mean of the middle two for an even count); `None` when
/// there are none or one is not a number.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 0 {
        (v[mid - 1] + v[mid]) / 2.0
    } else {
        v[mid]
    })
}

/// `a / b`, or `None` when `b` is not above 0.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// The median of the ratios of pairs run back to back (`a[i] / b[i]`): a slow spell of
/// the machine hits both members of a pair, so this is steadier than a ratio of
/// medians. Pairs with a zero `b` are left out.
pub fn median_ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    let ratios: Vec<f64> = a.iter().zip(b).filter_map(|(&x, &y)| ratio(x, y)).collect();
    median(&ratios)
}

/// The nearest-rank `q`-quantile of `samples` (unsorted; `dht_measure`'s rule).
pub fn percentile(samples: &[u64], q: f64) -> Option<u64> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    dht_measure::quantile(&sorted, q)
}

/// CPU microseconds per answered request, or `None` without answers or a CPU reading.
pub fn cpu_us_per_request(cpu_secs: Option<f64>, answered: u64) -> Option<f64> {
    let cpu = cpu_secs?;
    (answered > 0).then(|| cpu * 1e6 / answered as f64)
}

/// A server's CPU per request split into the transport's (the canned server's, which
/// runs the same transport without an engine) and the rest, the engine's (never below
/// zero: at the timer's 10 ms resolution a short run may put the two close).
pub fn split(server_us: f64, transport_us: f64) -> (f64, f64) {
    let transport = transport_us.min(server_us);
    (transport, server_us - transport)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_odd_even_and_empty_sets() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn ratio_of_pairs_is_the_median_of_each_pairs_ratio() {
        // Pairs: 2.0, 1.0, 1.5, 1.25 -> median 1.375; the ratio of the medians
        // (ours 150, rust 100) would be 1.5.
        let ours = [200.0, 100.0, 150.0, 250.0];
        let rust = [100.0, 100.0, 100.0, 200.0];
        assert_eq!(median_ratio(&ours, &rust), Some(1.375));
        // A pair whose second member answered nothing is left out, not infinite.
        assert_eq!(median_ratio(&[5.0, 3.0], &[0.0, 2.0]), Some(1.5));
        assert_eq!(median_ratio(&[5.0], &[0.0]), None);
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(3.0, 2.0), Some(1.5));
    }

    #[test]
    fn percentiles_are_nearest_rank_of_unsorted_samples() {
        let samples: Vec<u64> = (1..=200).rev().collect();
        assert_eq!(percentile(&samples, 0.5), Some(100));
        assert_eq!(percentile(&samples, 0.99), Some(198));
        assert_eq!(percentile(&samples, 1.0), Some(200));
        assert_eq!(percentile(&[42], 0.99), Some(42));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn cpu_per_request_and_its_split() {
        assert_eq!(cpu_us_per_request(Some(2.0), 40_000), Some(50.0));
        assert_eq!(cpu_us_per_request(Some(2.0), 0), None);
        assert_eq!(cpu_us_per_request(None, 10), None);
        assert_eq!(split(80.0, 50.0), (50.0, 30.0));
        assert_eq!(split(40.0, 50.0), (40.0, 0.0));
    }
}
