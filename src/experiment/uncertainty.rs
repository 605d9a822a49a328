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

/// Read from the option's text; an unknown name is an error (its path names the option).
impl<'de> Deserialize<'de> for Correction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        match name.as_str() {
            "holm" => Ok(Self::Holm),
            "bh" => Ok(Self::Bh),
            "none" => Ok(Self::None),
            other => Err(serde::de::Error::custom(format!(
                "must be 'holm', 'bh' or 'none', got '{other}'"
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

/// A cell's per-item outcomes: the zero-shot model's, and the fine-tuned model's once per
/// seed, all on the same items in the same order.
#[derive(Debug, Clone, PartialEq)]
pub struct CellOutcomes {
    pub zero_shot: Vec<bool>,
    /// One outcome vector per fine-tuning seed, each as long as `zero_shot`.
    pub tuned: Vec<Vec<bool>>,
}

/// Above this many steps the exact sign-flip distribution gives way to its normal limit.
const EXACT_STEPS: usize = 200_000_000;

impl CellOutcomes {
    pub fn n_items(&self) -> usize {
        self.zero_shot.len()
    }

    pub fn n_seeds(&self) -> usize {
        self.tuned.len()
    }

    fn share(outcomes: &[bool]) -> f64 {
        outcomes.iter().filter(|&&c| c).count() as f64 / outcomes.len().max(1) as f64
    }

    /// The fine-tuned accuracy, averaged over seeds.
    pub fn accuracy(&self) -> f64 {
        self.tuned.iter().map(|t| Self::share(t)).sum::<f64>() / self.n_seeds().max(1) as f64
    }

    pub fn zero_shot_accuracy(&self) -> f64 {
        Self::share(&self.zero_shot)
    }

    /// Fine-tuned minus zero-shot accuracy, averaged over seeds.
    pub fn delta(&self) -> f64 {
        self.accuracy() - self.zero_shot_accuracy()
    }

    /// The sample standard deviation of delta across seeds (`None` with one seed).
    pub fn seed_sd(&self) -> Option<f64> {
        let s = self.n_seeds();
        if s < 2 {
            return None;
        }
        let zero = self.zero_shot_accuracy();
        let deltas: Vec<f64> = self.tuned.iter().map(|t| Self::share(t) - zero).collect();
        let mean = deltas.iter().sum::<f64>() / s as f64;
        let ss: f64 = deltas.iter().map(|d| (d - mean) * (d - mean)).sum();
        Some((ss / (s - 1) as f64).sqrt())
    }

    /// Delta on a resample: the items at `items` (indices, repeats allowed) and the seeds at
    /// `seeds`.
    pub fn resampled_delta(&self, items: &[usize], seeds: &[usize]) -> f64 {
        let mut sum = 0i64;
        for &s in seeds {
            let tuned = &self.tuned[s];
            sum += items
                .iter()
                .map(|&i| tuned[i] as i64 - self.zero_shot[i] as i64)
                .sum::<i64>();
        }
        sum as f64 / (items.len() * seeds.len()).max(1) as f64
    }

    /// A percentile bootstrap interval at `level` of delta from `resamples` hierarchical
    /// resamples drawn with `seed`: seeds with replacement, then items with replacement (with
    /// one seed: the paired bootstrap over items).
    pub fn interval(&self, resamples: usize, level: f64, seed: u64) -> (f64, f64) {
        let (n, s) = (self.n_items(), self.n_seeds());
        if n == 0 || s == 0 {
            return (f64::NAN, f64::NAN);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut items, mut seeds) = (Vec::with_capacity(n), Vec::with_capacity(s));
        let mut deltas: Vec<f64> = (0..resamples)
            .map(|_| {
                seeds.clear();
                if s == 1 {
                    seeds.push(0);
                } else {
                    seeds.extend((0..s).map(|_| rng.random_range(0..s)));
                }
                items.clear();
                items.extend((0..n).map(|_| rng.random_range(0..n)));
                self.resampled_delta(&items, &seeds)
            })
            .collect();
        percentile_interval(&mut deltas, level)
    }

    /// The two-sided exact sign-flip test of the per-item differences (fine-tuned correct
    /// counts over seeds minus seeds times zero-shot correct): under no effect each item's
    /// difference is equally likely either sign. With one seed it is the exact McNemar test.
    /// Seed-to-seed variance is not part of the test; it is in `interval` and `seed_sd`.
    pub fn p_value(&self) -> f64 {
        let s = self.n_seeds();
        if s == 1 {
            let pairs: Vec<Pair> = self.tuned[0]
                .iter()
                .zip(&self.zero_shot)
                .map(|(&t, &z)| (t, z))
                .collect();
            return mcnemar_exact(&pairs);
        }
        let k: Vec<i64> = (0..self.n_items())
            .map(|i| {
                self.tuned.iter().filter(|t| t[i]).count() as i64
                    - s as i64 * self.zero_shot[i] as i64
            })
            .collect();
        sign_flip_exact(&k)
    }
}

/// P(|sum of e_i k_i| >= |sum of k_i|) for independent fair signs e_i, by convolution over
/// the integer sums (a normal limit when that would take more than `EXACT_STEPS` steps).
fn sign_flip_exact(k: &[i64]) -> f64 {
    let observed = k.iter().sum::<i64>().unsigned_abs() as usize;
    let sizes: Vec<usize> = k
        .iter()
        .filter(|&&v| v != 0)
        .map(|v| v.unsigned_abs() as usize)
        .collect();
    let total: usize = sizes.iter().sum();
    if total == 0 {
        return 1.0;
    }
    if sizes.len().saturating_mul(total) > EXACT_STEPS {
        let variance: f64 = sizes.iter().map(|&v| (v * v) as f64).sum();
        // Continuity-corrected: the sums move in steps of at least 1.
        let z = (observed as f64 - 0.5).max(0.0) / variance.sqrt();
        return erfc(z / std::f64::consts::SQRT_2).min(1.0);
    }
    // dist[t] = P(sum = t - total); `reach` bounds the sums reached so far.
    let mut dist = vec![0.0f64; 2 * total + 1];
    let mut next = dist.clone();
    dist[total] = 1.0;
    let mut reach = 0;
    for &v in &sizes {
        let (lo, hi) = (total - reach, total + reach);
        next[lo - v..=hi + v].iter_mut().for_each(|p| *p = 0.0);
        for t in lo..=hi {
            let p = dist[t];
            if p != 0.0 {
                next[t - v] += 0.5 * p;
                next[t + v] += 0.5 * p;
            }
        }
        reach += v;
        std::mem::swap(&mut dist, &mut next);
    }
    let p: f64 = dist
        .iter()
        .enumerate()
        .filter(|(t, _)| t.abs_diff(total) >= observed)
        .map(|(_, p)| p)
        .sum();
    p.min(1.0)
}

/// The complementary error function (Numerical Recipes' Chebyshev fit, relative error below
/// 1.2e-7), enough for a p-value from a normal limit.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The percentile interval at `level` of `values` (sorted in place; NaNs, from resamples
/// where the statistic is undefined, are left out).
pub fn percentile_interval(values: &mut Vec<f64>, level: f64) -> (f64, f64) {
    values.retain(|v| !v.is_nan());
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let n = values.len();
    let at = |q: f64| values[((q * n as f64).floor() as usize).min(n - 1)];
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
                .next_back();
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
            let sample = CellOutcomes {
                tuned: vec![(0..n).map(|_| rng.random_bool(p_tuned)).collect()],
                zero_shot: (0..n).map(|_| rng.random_bool(p_zero)).collect(),
            };
            let (lo, hi) = sample.interval(1000, 0.95, t);
            covered += (lo <= truth && truth <= hi) as usize;
        }
        let coverage = covered as f64 / trials as f64;
        assert!((0.93..=0.97).contains(&coverage), "coverage {coverage}");
        // Seeded: the same interval twice.
        let sample = outcomes(&[pairs(10, 4, 20)]);
        assert_eq!(sample.interval(2000, 0.9, 1), sample.interval(2000, 0.9, 1));
    }

    /// Cell outcomes of one zero-shot vector and one fine-tuned vector per seed, from pairs
    /// that share their zero-shot outcomes.
    fn outcomes(seeds: &[Vec<Pair>]) -> CellOutcomes {
        CellOutcomes {
            zero_shot: seeds[0].iter().map(|p| p.1).collect(),
            tuned: seeds
                .iter()
                .map(|s| s.iter().map(|p| p.0).collect())
                .collect(),
        }
    }

    #[test]
    fn seeds_average_and_spread() {
        // Zero-shot right on the first 10 of 40 items; seed 1 right on 20, seed 2 on 30.
        let zero: Vec<bool> = (0..40).map(|i| i < 10).collect();
        let cell = CellOutcomes {
            tuned: vec![
                (0..40).map(|i| i < 20).collect(),
                (0..40).map(|i| i < 30).collect(),
            ],
            zero_shot: zero,
        };
        assert_eq!(cell.accuracy(), 0.625);
        assert_eq!(cell.delta(), 0.375);
        // Deltas 0.25 and 0.5: sd = 0.25 / sqrt(2).
        assert!((cell.seed_sd().unwrap() - 0.25 / 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(outcomes(&[pairs(3, 1, 4)]).seed_sd(), None);
        // The hierarchical interval is wider than either seed's item-only interval.
        let (lo, hi) = cell.interval(4000, 0.95, 7);
        assert!(lo <= 0.25 && hi >= 0.5, "({lo}, {hi})");
        for one in &cell.tuned {
            let single = CellOutcomes {
                zero_shot: cell.zero_shot.clone(),
                tuned: vec![one.clone()],
            };
            let (l, h) = single.interval(4000, 0.95, 7);
            assert!(h - l < hi - lo, "{l} {h} vs {lo} {hi}");
        }
    }

    /// The sign-flip test on identical seeds is McNemar's; by hand on a small case; the
    /// normal limit agrees with the exact value on a large one.
    #[test]
    fn sign_flip_test_by_hand() {
        for (b, c, same) in [(8, 2, 7), (5, 0, 0), (0, 0, 9), (30, 12, 50)] {
            let one = outcomes(&[pairs(b, c, same)]);
            let two = outcomes(&[pairs(b, c, same), pairs(b, c, same)]);
            assert!(
                (one.p_value() - two.p_value()).abs() < 1e-12,
                "{b} {c}: {} vs {}",
                one.p_value(),
                two.p_value()
            );
        }
        // k = (2, 1): sums 3, 1, -1, -3 equally likely; |sum| >= 3 has p = 1/2.
        assert!((sign_flip_exact(&[2, 1]) - 0.5).abs() < 1e-12);
        // k = (2, 2, -1): observed 3; sums +-5, +-3, +-1 (each pair of signs of the 2s: 4, 0,
        // 0, -4, then +-1): |sum| >= 3 when the 2s agree: p = 1/2.
        assert!((sign_flip_exact(&[2, 2, -1]) - 0.5).abs() < 1e-12);
        assert_eq!(sign_flip_exact(&[0, 0]), 1.0);
        // Near the 5% level: 3,000 balanced differences and 136 that lean one way.
        let mut k: Vec<i64> = (0..3000).map(|i| [1, -1, 2, -2, 3, -3][i % 6]).collect();
        k.extend(std::iter::repeat_n(2, 100).chain(std::iter::repeat_n(1, 36)));
        let exact = sign_flip_exact(&k);
        let variance: f64 = k.iter().map(|&v| (v * v) as f64).sum();
        let observed = k.iter().sum::<i64>() as f64;
        let normal = erfc((observed - 0.5) / variance.sqrt() / std::f64::consts::SQRT_2);
        assert!((0.02..0.1).contains(&exact), "{exact}");
        assert!((exact - normal).abs() < 0.03 * exact, "{exact} vs {normal}");
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
