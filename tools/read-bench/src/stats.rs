//! Percentiles and means of per-page measurements.

/// The `p`th percentile (0 < p ≤ 100) by nearest rank: the smallest value with at least p % of
/// the values at or below it. `None` for no values.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

pub fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 95.0), Some(95.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        // Order of the input does not matter.
        let five = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&five, 50.0), Some(3.0));
        assert_eq!(percentile(&five, 95.0), Some(5.0));
        assert_eq!(percentile(&five, 1.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn mean_and_max() {
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
        assert_eq!(max(&[1.0, 9.0, 6.0]), Some(9.0));
        assert_eq!(mean(&[]), None);
        assert_eq!(max(&[]), None);
    }
}
