//! The paper's question in numbers: how the gain from fine-tuning changes with the distance
//! between the bin trained on and the bin evaluated. The gap is signed, eval bin minus train
//! bin: positive when the model was trained on easier items than it is evaluated on.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::matrix::MatrixCell;
use super::uncertainty::percentile_interval;

/// What a row of the profile estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapMeasure {
    /// The mean delta of the cells at one signed gap.
    MeanDelta,
    /// The least-squares slope of delta against |gap|, over every cell.
    Slope,
}

impl GapMeasure {
    pub fn name(self) -> &'static str {
        match self {
            Self::MeanDelta => "mean_delta",
            Self::Slope => "slope_per_bin",
        }
    }
}

/// One row of the profile: an estimate with its bootstrap interval.
#[derive(Debug, Clone, PartialEq)]
pub struct GapRow {
    pub measure: GapMeasure,
    /// The signed gap (`None` for the slope).
    pub gap: Option<i64>,
    pub n_cells: usize,
    pub estimate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// The direction a signed gap stands for.
pub fn direction(gap: i64) -> &'static str {
    match gap.signum() {
        1 => "trained easier",
        -1 => "trained harder",
        _ => "same bin",
    }
}

fn signed_gap(cell: &MatrixCell) -> i64 {
    cell.eval_bin as i64 - cell.train_bin as i64
}

/// Least-squares slope of `y` on `x`; `None` when `x` does not vary.
fn slope(points: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let points: Vec<(f64, f64)> = points.collect();
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Mean delta per signed gap, and the slope of delta against |gap|, each with a percentile
/// interval at `level` from `resamples` resamples drawn with `seed`. A resample draws, in this
/// order, each training bin's seeds (shared by its row: one fine-tune per seed), each eval
/// bin's items (shared by its column: the same items in every cell), then the cells: those at
/// each gap for its mean, all of them for the slope.
pub fn gap_profile(cells: &[MatrixCell], resamples: usize, level: f64, seed: u64) -> Vec<GapRow> {
    let mut at_gap: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (k, cell) in cells.iter().enumerate() {
        at_gap.entry(signed_gap(cell)).or_default().push(k);
    }
    let abs_gap: Vec<f64> = cells.iter().map(|c| signed_gap(c).abs() as f64).collect();
    let point_slope = slope(abs_gap.iter().zip(cells).map(|(&x, c)| (x, c.delta)));
    let train_seeds: BTreeMap<usize, usize> =
        cells.iter().map(|c| (c.train_bin, c.n_seeds)).collect();
    let eval_items: BTreeMap<usize, usize> =
        cells.iter().map(|c| (c.eval_bin, c.n_items)).collect();

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut gap_means: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
    let mut slopes = Vec::with_capacity(resamples);
    let mut delta = vec![0.0; cells.len()];
    for _ in 0..resamples {
        let seeds: BTreeMap<usize, Vec<usize>> = train_seeds
            .iter()
            .map(|(&b, &s)| (b, (0..s).map(|_| rng.random_range(0..s)).collect()))
            .collect();
        let items: BTreeMap<usize, Vec<usize>> = eval_items
            .iter()
            .map(|(&b, &n)| (b, (0..n).map(|_| rng.random_range(0..n)).collect()))
            .collect();
        for (d, cell) in delta.iter_mut().zip(cells) {
            *d = cell
                .outcomes
                .resampled_delta(&items[&cell.eval_bin], &seeds[&cell.train_bin]);
        }
        for (gap, members) in &at_gap {
            let m = members.len();
            let mean = (0..m)
                .map(|_| delta[members[rng.random_range(0..m)]])
                .sum::<f64>()
                / m as f64;
            gap_means.entry(*gap).or_default().push(mean);
        }
        let n = cells.len();
        let drawn: Vec<usize> = (0..n).map(|_| rng.random_range(0..n)).collect();
        slopes.push(slope(drawn.iter().map(|&k| (abs_gap[k], delta[k]))).unwrap_or(f64::NAN));
    }

    let mut rows: Vec<GapRow> = at_gap
        .iter()
        .map(|(&gap, members)| {
            let estimate =
                members.iter().map(|&k| cells[k].delta).sum::<f64>() / members.len() as f64;
            let (ci_low, ci_high) = percentile_interval(
                gap_means
                    .get_mut(&gap)
                    .map(std::mem::take)
                    .as_mut()
                    .unwrap_or(&mut vec![]),
                level,
            );
            GapRow {
                measure: GapMeasure::MeanDelta,
                gap: Some(gap),
                n_cells: members.len(),
                estimate,
                ci_low,
                ci_high,
            }
        })
        .collect();
    if let Some(estimate) = point_slope {
        let (ci_low, ci_high) = percentile_interval(&mut slopes, level);
        rows.push(GapRow {
            measure: GapMeasure::Slope,
            gap: None,
            n_cells: cells.len(),
            estimate,
            ci_low,
            ci_high,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::uncertainty::CellOutcomes;

    /// A 3 x 3 matrix whose delta falls by `fall` per bin of gap, over 200 items per bin.
    fn matrix(fall: f64, seeds: usize) -> Vec<MatrixCell> {
        let n = 200;
        let mut cells = Vec::new();
        for t in 0..3usize {
            for e in 0..3usize {
                let gain = 0.3 - fall * (t as f64 - e as f64).abs();
                let zero: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
                // Items flipped from wrong to right: gain * n of the zero-shot misses.
                let flips = (gain * n as f64).round() as usize;
                let tuned: Vec<Vec<bool>> = (0..seeds)
                    .map(|s| {
                        let mut right = 0;
                        (0..n)
                            .map(|i| {
                                let miss = i % 2 == 1;
                                let flip = miss && right < flips + s && {
                                    right += 1;
                                    true
                                };
                                !miss || flip
                            })
                            .collect()
                    })
                    .collect();
                let outcomes = CellOutcomes {
                    zero_shot: zero,
                    tuned,
                };
                cells.push(MatrixCell {
                    train_bin: t,
                    eval_bin: e,
                    n_items: n,
                    accuracy: outcomes.accuracy(),
                    zero_shot_accuracy: outcomes.zero_shot_accuracy(),
                    delta: outcomes.delta(),
                    n_seeds: seeds,
                    delta_seed_sd: outcomes.seed_sd(),
                    delta_ci_low: 0.0,
                    delta_ci_high: 0.0,
                    p_value: 1.0,
                    significant: false,
                    eval_bin_stable_share: None,
                    train_runs: vec![],
                    eval_runs: vec![],
                    outcomes,
                });
            }
        }
        cells
    }

    #[test]
    fn profile_by_gap_and_slope() {
        let cells = matrix(0.1, 1);
        let rows = gap_profile(&cells, 1000, 0.95, 3);
        let gaps: Vec<Option<i64>> = rows.iter().map(|r| r.gap).collect();
        assert_eq!(
            gaps,
            vec![Some(-2), Some(-1), Some(0), Some(1), Some(2), None]
        );
        let count: Vec<usize> = rows.iter().map(|r| r.n_cells).collect();
        assert_eq!(count, vec![1, 2, 3, 2, 1, 9]);
        for r in &rows[..5] {
            let want = 0.3 - 0.1 * r.gap.unwrap().abs() as f64;
            assert!((r.estimate - want).abs() < 1e-9, "{r:?}");
            assert!(r.ci_low <= r.estimate && r.estimate <= r.ci_high, "{r:?}");
            assert!(r.ci_high - r.ci_low < 0.25, "{r:?}");
        }
        let s = &rows[5];
        assert_eq!(s.measure, GapMeasure::Slope);
        assert!((s.estimate + 0.1).abs() < 1e-9, "{s:?}");
        assert!(
            s.ci_high < 0.0,
            "a steep fall excludes a flat profile: {s:?}"
        );
        // Seeded: the same rows twice; a flat matrix has a slope of zero inside its interval.
        assert_eq!(rows, gap_profile(&cells, 1000, 0.95, 3));
        let flat = gap_profile(&matrix(0.0, 2), 1000, 0.95, 3);
        let s = flat.last().unwrap();
        assert!(
            s.estimate.abs() < 0.01 && s.ci_low <= 0.0 && s.ci_high >= 0.0,
            "{s:?}"
        );
        assert_eq!(direction(2), "trained easier");
        assert_eq!(direction(-1), "trained harder");
        assert_eq!(direction(0), "same bin");
    }

    #[test]
    fn one_gap_has_no_slope() {
        let cells: Vec<MatrixCell> = matrix(0.1, 1)
            .into_iter()
            .filter(|c| c.train_bin == c.eval_bin)
            .collect();
        let rows = gap_profile(&cells, 200, 0.9, 1);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].gap, Some(0));
    }
}
