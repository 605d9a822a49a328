//! A task's difficulty bins: given per item, cut from a difficulty column, or cut from an
//! IRT fit of a leaderboard's responses (with each item's chance of staying in its bin).

use std::collections::BTreeMap;

use super::{ExperimentError, Result};
use crate::irt::batches::fit_all;
use crate::irt::{FitOptions, ResponseMatrix};

/// An item's IRT difficulty and its standard error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FittedDifficulty {
    pub difficulty: f64,
    pub difficulty_se: f64,
}

/// Where a task's bins come from, one value per item in task order (`None` is SQL NULL).
#[derive(Debug, Clone, Copy)]
pub enum BinSource<'a> {
    /// A 0-based bin per item.
    Given(&'a [Option<i64>]),
    /// A difficulty per item, cut into equal-size bins.
    Difficulty(&'a [Option<f64>]),
    /// Difficulties by item id from an IRT fit, cut into equal-size bins.
    Irt(&'a BTreeMap<String, FittedDifficulty>),
}

fn null_at<T>(values: &[Option<T>], column: &str, ids: &[String]) -> Result<()> {
    match values.iter().position(Option::is_none) {
        Some(r) => Err(ExperimentError::Input(format!(
            "`{column}` is NULL in row {} (item {})",
            r + 1,
            ids[r]
        ))),
        None => Ok(()),
    }
}

/// The paper's equal-size bins of `difficulty`, ties broken by item id.
fn cut(difficulty: &[f64], ids: &[String], n_bins: usize) -> Vec<usize> {
    crate::stats::equal_size_bins(difficulty, n_bins, |a, b| ids[a].cmp(&ids[b]))
}

/// Each item's bin (items named by `ids`, in task order).
pub fn task_bins(source: BinSource, ids: &[String], n_bins: usize) -> Result<Vec<usize>> {
    match source {
        BinSource::Given(bins) => {
            null_at(bins, "bin", ids)?;
            bins.iter()
                .zip(ids)
                .map(|(b, id)| match b {
                    Some(b) if *b >= 0 => Ok(*b as usize),
                    b => Err(ExperimentError::Input(format!(
                        "bin {} of item {id} is negative",
                        b.unwrap_or_default()
                    ))),
                })
                .collect()
        }
        BinSource::Difficulty(d) => {
            null_at(d, "difficulty", ids)?;
            let d: Vec<f64> = d.iter().map(|x| x.unwrap_or_default()).collect();
            if let Some(r) = d.iter().position(|x| x.is_nan()) {
                return Err(ExperimentError::Input(format!(
                    "`difficulty` is NaN in row {} (item {})",
                    r + 1,
                    ids[r]
                )));
            }
            Ok(cut(&d, ids, n_bins))
        }
        BinSource::Irt(fitted) => {
            let mut d = Vec::with_capacity(ids.len());
            for id in ids {
                let Some(f) = fitted.get(id) else {
                    return Err(ExperimentError::Input(format!(
                        "item {id} of the task has no IRT difficulty (it is not in the \
                         responses, or everyone got it right or wrong)"
                    )));
                };
                d.push(f.difficulty);
            }
            Ok(cut(&d, ids, n_bins))
        }
    }
}

/// Fits the responses' matrices and returns every item's difficulty by item id. With several
/// benchmarks an item id must name one item: one found in two benchmarks is an error.
pub fn irt_difficulties(
    matrices: Vec<(Option<String>, ResponseMatrix)>,
    options: &FitOptions,
) -> Result<BTreeMap<String, FittedDifficulty>> {
    let mut out: BTreeMap<String, FittedDifficulty> = BTreeMap::new();
    let mut home: BTreeMap<String, Option<String>> = BTreeMap::new();
    for fit in fit_all(matrices, options)? {
        for (id, p) in fit.matrix.items.iter().zip(&fit.fit.items) {
            if let Some(other) = home.insert(id.clone(), fit.benchmark.clone()) {
                return Err(ExperimentError::Input(format!(
                    "item {id} is in benchmarks {} and {} of the IRT responses; give responses \
                     of one benchmark",
                    other.as_deref().unwrap_or("(none)"),
                    fit.benchmark.as_deref().unwrap_or("(none)")
                )));
            }
            out.insert(
                id.clone(),
                FittedDifficulty {
                    difficulty: p.difficulty,
                    // An unknown error makes the item's bin stability unknown (NaN).
                    difficulty_se: p.difficulty_se,
                },
            );
        }
    }
    Ok(out)
}

/// The probability that each item stays in its bin given its difficulty's standard error, by
/// item id (`None` when an error is unknown or not finite).
pub fn bin_stability(
    ids: &[String],
    fitted: &BTreeMap<String, FittedDifficulty>,
    n_bins: usize,
    seed: u64,
) -> Option<BTreeMap<String, f64>> {
    // Sorted ids: ties are broken by item id, as the bins are.
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let (d, se): (Vec<f64>, Vec<f64>) = sorted
        .iter()
        .map(|id| {
            let f = fitted[id.as_str()];
            (f.difficulty, f.difficulty_se)
        })
        .unzip();
    if se.iter().any(|e| !e.is_finite() || *e < 0.0) {
        return None;
    }
    let draws = crate::stats::DEFAULT_STABILITY_DRAWS;
    let p = crate::stats::bin_stability(&d, &se, n_bins, draws, seed);
    Some(sorted.into_iter().cloned().zip(p).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("i{i}")).collect()
    }

    #[test]
    fn difficulty_ties_are_broken_by_item_id() {
        let d = [Some(1.0), Some(0.0), Some(1.0), Some(2.0)];
        let names: Vec<String> = ["d", "c", "a", "b"].map(String::from).to_vec();
        let bins = task_bins(BinSource::Difficulty(&d), &names, 2).unwrap();
        // Order: c (0.0), a (1.0), d (1.0), b (2.0).
        assert_eq!(bins, vec![1, 0, 0, 1]);
    }

    #[test]
    fn bad_bins_name_the_item() {
        let e = task_bins(BinSource::Given(&[Some(0), None]), &ids(2), 2)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "`bin` is NULL in row 2 (item i1)");
        let e = task_bins(BinSource::Given(&[Some(-1)]), &ids(1), 2)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "bin -1 of item i0 is negative");
        let e = task_bins(BinSource::Irt(&BTreeMap::new()), &ids(1), 2)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("item i0 of the task has no IRT difficulty"),
            "{e}"
        );
    }
}
