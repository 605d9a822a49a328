//! How sure a cell of the generalization matrix is: the per-item paired outcomes of the
//! fine-tuned and the zero-shot model on the cell's items give a bootstrap interval of the
//! accuracy difference and an exact McNemar test; a correction across the matrix's cells says
//! which differences survive multiple comparisons.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The multiple-comparison correction across a matrix's cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm's step-down procedure (family-wise error rate).
    #[default]
    Holm,
    /// Benjamini-Hochberg (false discovery rate).
    Bh,
    /// Each cell tested on its own.
    None,
}

/// Read from the option's text; an unknown name is an error naming the option.
impl<'de> Deserialize<'de> for Correction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match name.as_str() {
            "holm" => Ok(Self::Holm),
            "bh" => Ok(Self::Bh),
            "none" => Ok(Self::None),
            other => Err(serde::de::Error::custom(format!(
                "option `correction` must be 'holm', 'bh' or 'none', got '{other}'"
            ))),
        }
    }
}

/// One item's outcomes: (fine-tuned correct, zero-shot correct).
pub type Pair = (bool, bool);

/// The exact two-sided McNemar test: under no difference each discordant pair is equally
/// likely either way, so the smaller discordant count is Binomial(b + c, 1/2); the p-value is
/// twice its lower tail, at most 1. All pairs concordant: p = 1.
pub fn mcnemar_exact(pairs: &[Pair]) -> f64 {
    let b = pairs.iter().filter(|&&(t, z)| t && !z).count();
    let c = pairs.iter().filter(|&&(t, z)| !t && z).count();
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    // Sum C(n, k) / 2^n for k <= min(b, c), in logs (n can be in the thousands).
    let ln_half_n = n as f64 * 0.5f64.ln();
    let mut ln_choose = 0.0; // ln C(n, 0)
    let mut tail = 0.0;
    for k in 0..=b.min(c) {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

/// A percentile bootstrap interval at `level` of the mean paired difference (fine-tuned minus
/// zero-shot, per item), from `resamples` resamples of the items drawn with `seed`.
pub fn paired_bootstrap(pairs: &[Pair], resamples: usize, level: f64, seed: u64) -> (f64, f64) {
    let n = pairs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let diffs: Vec<i32> = pairs.iter().map(|&(t, z)| t as i32 - z as i32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| {
            let sum: i32 = (0..n).map(|_| diffs[rng.random_range(0..n)]).sum();
            sum as f64 / n as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| {
        let k = ((q * resamples as f64).floor() as usize).min(resamples - 1);
        means[k]
    };
    (at(tail), at(1.0 - tail))
}

/// Which of `p_values` are significant at `alpha` after `correction`.
pub fn significant(p_values: &[f64], alpha: f64, correction: Correction) -> Vec<bool> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]).then(a.cmp(&b)));
    let mut out = vec![false; m];
    match correction {
        Correction::None => {
            for (k, p) in p_values.iter().enumerate() {
                out[k] = *p <= alpha;
            }
        }
        // Reject in ascending order while p_(k) <= alpha / (m - k); stop at the first failure.
        Correction::Holm => {
            for (rank, &k) in order.iter().enumerate() {
                if p_values[k] <= alpha / (m - rank) as f64 {
                    out[k] = true;
                } else {
                    break;
                }
            }
        }
        // Reject every hypothesis up to the largest rank r with p_(r) <= r alpha / m.
        Correction::Bh => {
            let largest = order
                .iter()
                .enumerate()
                .filter(|&(rank, &k)| p_values[k] <= (rank + 1) as f64 * alpha / m as f64)
                .map(|(rank, _)| rank)
                .last();
            if let Some(r) = largest {
                for &k in &order[..=r] {
                    out[k] = true;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(b: usize, c: usize, same: usize) -> Vec<Pair> {
        let mut v = vec![(true, false); b];
        v.extend(vec![(false, true); c]);
        v.extend(vec![(true, true); same]);
        v
    }

    #[test]
    fn mcnemar_by_hand() {
        assert_eq!(mcnemar_exact(&pairs(0, 0, 30)), 1.0);
        assert_eq!(mcnemar_exact(&pairs(1, 0, 3)), 1.0);
        // 5 vs 0: 2 / 2^5.
        assert!((mcnemar_exact(&pairs(5, 0, 0)) - 0.0625).abs() < 1e-12);
        // 8 vs 2: 2 (1 + 10 + 45) / 1024.
        assert!((mcnemar_exact(&pairs(8, 2, 7)) - 112.0 / 1024.0).abs() < 1e-12);
        assert_eq!(
            mcnemar_exact(&pairs(2, 8, 0)),
            mcnemar_exact(&pairs(8, 2, 0))
        );
        // Large counts stay finite and tiny.
        let p = mcnemar_exact(&pairs(900, 600, 0));
        assert!(p > 0.0 && p < 1e-10, "{p}");
    }

    /// 95% intervals cover the true difference about 95% of the time.
    #[test]
    fn bootstrap_intervals_cover_at_the_nominal_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (p_tuned, p_zero, n) = (0.55, 0.40, 120);
        let truth = p_tuned - p_zero;
        let trials = 1000;
        let mut covered = 0;
        for t in 0..trials {
            let sample: Vec<Pair> = (0..n)
                .map(|_| (rng.random_bool(p_tuned), rng.random_bool(p_zero)))
                .collect();
            let (lo, hi) = paired_bootstrap(&sample, 1000, 0.95, t);
            covered += (lo <= truth && truth <= hi) as usize;
        }
        let coverage = covered as f64 / trials as f64;
        assert!((0.93..=0.97).contains(&coverage), "coverage {coverage}");
        // Seeded: the same interval twice.
        let sample = pairs(10, 4, 20);
        assert_eq!(
            paired_bootstrap(&sample, 2000, 0.9, 1),
            paired_bootstrap(&sample, 2000, 0.9, 1)
        );
    }

    /// The textbook example (Holm 1979 style; Benjamini and Hochberg 1995's procedure).
    #[test]
    fn holm_and_bh_by_hand() {
        let p = [0.01, 0.04, 0.03, 0.005];
        // Holm at 0.05: sorted 0.005 <= 0.0125, 0.01 <= 0.0167, 0.03 > 0.025 -> stop.
        assert_eq!(
            significant(&p, 0.05, Correction::Holm),
            vec![true, false, false, true]
        );
        // BH at 0.05: thresholds 0.0125, 0.025, 0.0375, 0.05; the largest rank passing is 4.
        assert_eq!(
            significant(&p, 0.05, Correction::Bh),
            vec![true, true, true, true]
        );
        assert_eq!(
            significant(&[0.2, 0.04], 0.05, Correction::None),
            vec![false, true]
        );
        let q = [0.011, 0.02, 0.04, 0.5];
        // BH: 0.011 <= 0.0125, 0.02 <= 0.025, 0.04 > 0.0375, 0.5 > 0.05 -> first two.
        assert_eq!(
            significant(&q, 0.05, Correction::Bh),
            vec![true, true, false, false]
        );
    }
}
