//! The generalization matrix: the zero-shot model evaluated once, one fine-tune of the base
//! model per training bin, each evaluated on every bin; cell (i, j) is the accuracy on bin j
//! of the model trained on bin i, minus the zero-shot accuracy on bin j.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::evaluation::{run_evaluation, EvalItem, EvalOptions, EvaluationResult};
use super::finetune::{run_fine_tune, FineTuneOptions};
use super::store::{ContentHash, RunStore};
use super::uncertainty::{significant, CellOutcomes, Correction};
use super::{Cancel, ExperimentError, Result};
use crate::irt::options::IrtOptions;
use crate::irt::{IrtModel, Method};
use crate::options::OptionsError;

/// One item of a task: what the model is asked, what it is trained to answer, how its answer
/// is judged, and its difficulty bin.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskItem {
    pub item: EvalItem,
    /// The training target for this item (the paper trains on the reference solution).
    pub response: String,
    pub bin: usize,
    /// The probability that the item belongs to `bin` given its difficulty's error
    /// (`crate::stats::bin_stability`), when the bins come from an IRT fit.
    pub bin_stability: Option<f64>,
}

/// An item is in a stable bin when it stays there with at least this probability.
pub const STABLE_BIN: f64 = 0.9;

/// Options of `generalization_matrix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatrixOptions {
    /// Bins when they are computed from a `difficulty` column.
    pub n_bins: usize,
    /// Which bins to fine-tune on (default: every bin present).
    pub train_bins: Option<Vec<usize>>,
    /// Share of each bin held out for evaluation (0: evaluate on every item, training items
    /// included, as the paper's code does).
    pub held_out: f64,
    /// Seeds the held-out split and the bootstrap (the fine-tunes use `seeds` or `train.seed`).
    pub seed: u64,
    /// Fine-tune every training bin once per seed (each its own cached run); cells report the
    /// mean over seeds. Default: once, with `train.seed`.
    pub seeds: Option<Vec<u64>>,
    /// Fine-tuning options (see `fine_tune`).
    pub train: FineTuneOptions,
    /// Evaluation options (see `evaluate`).
    pub evaluate: EvalOptions,
    /// Compute each item's difficulty with IRT from these responses instead of reading a
    /// `bin` or `difficulty` column.
    pub irt: Option<IrtDifficulty>,
    pub run_store: Option<String>,
    /// Bootstrap resamples of each cell's items for its interval (at least 100).
    pub bootstrap: usize,
    /// Level of each cell's interval, and 1 - the significance level of its test.
    pub ci: f64,
    /// Correction of the cells' p-values for their number.
    pub correction: Correction,
}

/// Where IRT difficulties come from: `irt_fit(responses, model, method, options)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrtDifficulty {
    /// A responses table name or query (model_id, item_id, correct[, benchmark]).
    pub responses: String,
    #[serde(default = "default_irt_model")]
    pub model: IrtModel,
    #[serde(default = "default_irt_method")]
    pub method: Method,
    #[serde(default)]
    pub options: IrtOptions,
}

fn default_irt_model() -> IrtModel {
    IrtModel::OnePl
}

fn default_irt_method() -> Method {
    Method::Jml
}

impl Default for MatrixOptions {
    fn default() -> Self {
        Self {
            n_bins: 10,
            train_bins: None,
            held_out: 0.0,
            seed: 42,
            seeds: None,
            train: FineTuneOptions::default(),
            evaluate: EvalOptions::default(),
            irt: None,
            run_store: None,
            bootstrap: 2000,
            ci: 0.95,
            correction: Correction::Holm,
        }
    }
}

impl MatrixOptions {
    /// From a JSON object (unknown keys, at any depth, are an error naming them), checked.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let options: Self = crate::options::from_value(value)?;
        // `train.seed` has a default, so whether it was given is read from the JSON itself.
        let train_seed_given = value.pointer("/train/seed").is_some();
        if !(0.0..1.0).contains(&options.held_out) {
            return Err(ExperimentError::Input(format!(
                "option `held_out` must be in [0, 1), got {}",
                options.held_out
            )));
        }
        if options.n_bins == 0 {
            return Err(ExperimentError::Input(
                "option `n_bins` must be at least 1".into(),
            ));
        }
        if options.bootstrap < 100 {
            return Err(ExperimentError::Input(format!(
                "option `bootstrap` must be at least 100 resamples, got {}",
                options.bootstrap
            )));
        }
        if !(options.ci > 0.0 && options.ci < 1.0) {
            return Err(ExperimentError::Input(format!(
                "option `ci` must be in (0, 1), got {}",
                options.ci
            )));
        }
        if let Some(seeds) = &options.seeds {
            if seeds.is_empty() {
                return Err(ExperimentError::Input(
                    "option `seeds` is empty: give at least one seed, or leave it out for one \
                     fine-tune per bin with `train.seed`"
                        .into(),
                ));
            }
            if let Some(k) = (1..seeds.len()).find(|&k| seeds[..k].contains(&seeds[k])) {
                return Err(ExperimentError::Input(format!(
                    "option `seeds` lists seed {} twice",
                    seeds[k]
                )));
            }
            if train_seed_given {
                return Err(ExperimentError::Input(
                    "give the fine-tunes' seeds as `seeds` or as `train.seed`, not both".into(),
                ));
            }
        }
        options.train.sft.validate()?;
        options.evaluate.validate()?;
        if let Some(irt) = &options.irt {
            if irt.options.joint {
                return Err(ExperimentError::Input(
                    "option `irt.options.joint`: the matrix needs one difficulty per item id; \
                     give responses of one benchmark instead"
                        .into(),
                ));
            }
            irt.options
                .fit_options(irt.model, irt.method)
                .map_err(|e| match e {
                    OptionsError::Invalid { path, message } => OptionsError::Invalid {
                        path: format!("irt.options.{path}"),
                        message,
                    },
                    other => other,
                })?;
        }
        Ok(options)
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCell {
    pub train_bin: usize,
    pub eval_bin: usize,
    pub n_items: usize,
    /// Mean over seeds.
    pub accuracy: f64,
    pub zero_shot_accuracy: f64,
    /// Mean over seeds.
    pub delta: f64,
    pub n_seeds: usize,
    /// Standard deviation of delta across seeds (`None` with one seed).
    pub delta_seed_sd: Option<f64>,
    /// Bootstrap interval of `delta`: seeds, then the cell's items, resampled.
    pub delta_ci_low: f64,
    pub delta_ci_high: f64,
    /// Exact two-sided test of the cell's paired outcomes (McNemar's with one seed).
    pub p_value: f64,
    /// After the correction across the matrix's cells, at level 1 - `ci`.
    pub significant: bool,
    /// Share of the eval bin's items that stay in it with probability >= `STABLE_BIN`
    /// (when the bins come from an IRT fit).
    pub eval_bin_stable_share: Option<f64>,
    /// The fine-tunes' and their evaluations' run ids, one per seed, in seed order.
    pub train_runs: Vec<String>,
    pub eval_runs: Vec<String>,
    /// The per-item outcomes behind the numbers.
    pub outcomes: CellOutcomes,
}

/// The matrix and how much work it took.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixResult {
    pub cells: Vec<MatrixCell>,
    pub zero_shot_run: String,
    /// "all items" or "held-out items".
    pub evaluated_on: String,
    pub fine_tunes_run: usize,
    pub evaluations_run: usize,
}

/// Whether `item_id` is held out for evaluation (a seeded hash, so the split is stable).
pub fn held_out(item_id: &str, share: f64, seed: u64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let mut h = ContentHash::new();
    h.field(&seed.to_string()).field(item_id);
    let top = u64::from_str_radix(&h.hex()[..16], 16).unwrap_or(0);
    // FNV's high bits barely move with an id's last character, so consecutive ids
    // ("add-2-010", "add-2-011", ...) would land on the same side: mix them first.
    (mix64(top) as f64 / u64::MAX as f64) < share
}

/// splitmix64's finalizer: every input bit flips about half of the output bits.
fn mix64(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Runs (or reuses) every fine-tune and evaluation of the matrix.
pub fn generalization_matrix(
    store: &RunStore,
    base: &Path,
    items: &[TaskItem],
    options: &MatrixOptions,
    cancel: &Cancel,
    progress: bool,
) -> Result<MatrixResult> {
    if items.is_empty() {
        return Err(ExperimentError::Input("the task source has no rows".into()));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = items.iter().find(|t| !seen.insert(t.item.item_id.as_str())) {
        return Err(ExperimentError::Input(format!(
            "item_id {} appears twice in the task source",
            dup.item.item_id
        )));
    }
    let train_options = options.train.clone();
    let mut eval_options = options.evaluate.clone();
    eval_options.run_store = None;
    // Evaluated as trained: with the chat template when the fine-tunes use it, unless the
    // evaluate options say otherwise.
    if eval_options.chat_template.is_none() {
        let chat = match train_options.chat_template {
            Some(chat) => chat,
            None => crate::lm::tokenizer::TextTokenizer::load(base)?.has_chat_template(),
        };
        eval_options.chat_template = Some(chat);
    }
    let present: Vec<usize> = {
        let mut b: Vec<usize> = items.iter().map(|t| t.bin).collect();
        b.sort_unstable();
        b.dedup();
        b
    };
    let train_bins = options
        .train_bins
        .clone()
        .unwrap_or_else(|| present.clone());
    if let Some(missing) = train_bins.iter().find(|b| !present.contains(b)) {
        return Err(ExperimentError::Input(format!(
            "train bin {missing} has no items (bins present: {present:?})"
        )));
    }
    let is_eval = |t: &TaskItem| {
        options.held_out == 0.0 || held_out(&t.item.item_id, options.held_out, options.seed)
    };
    let eval_items: Vec<EvalItem> = items
        .iter()
        .filter(|t| is_eval(t))
        .map(|t| t.item.clone())
        .collect();
    if eval_items.is_empty() {
        return Err(ExperimentError::Input(
            "held_out leaves no item to evaluate; raise it".into(),
        ));
    }
    let mut eval_bins: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for t in items.iter().filter(|t| is_eval(t)) {
        eval_bins
            .entry(t.bin)
            .or_default()
            .push(t.item.item_id.as_str());
    }
    if let Some(&empty) = present.iter().find(|b| !eval_bins.contains_key(b)) {
        let size = items.iter().filter(|t| t.bin == empty).count();
        return Err(ExperimentError::Input(format!(
            "bin {empty} has no item in the evaluation split (held_out {} keeps none of its \
             {size} items); raise held_out",
            options.held_out
        )));
    }
    let stable_share: BTreeMap<usize, f64> = present
        .iter()
        .filter_map(|&b| {
            let p: Option<Vec<f64>> = items
                .iter()
                .filter(|t| t.bin == b)
                .map(|t| t.bin_stability)
                .collect();
            let p = p?;
            let stable = p.iter().filter(|&&p| p >= STABLE_BIN).count();
            Some((b, stable as f64 / p.len() as f64))
        })
        .collect();
    let seeds = options
        .seeds
        .clone()
        .unwrap_or_else(|| vec![train_options.sft.seed]);
    // Each bin's outcomes in the order of `eval_bins`, so that every cell of an eval bin
    // pairs the same items.
    let by_bin = |result: &EvaluationResult| -> Result<BTreeMap<usize, Vec<bool>>> {
        let correct: BTreeMap<&str, bool> = result
            .items
            .iter()
            .map(|o| (o.item_id.as_str(), o.correct))
            .collect();
        eval_bins
            .iter()
            .map(|(&b, ids)| {
                let outcomes = ids
                    .iter()
                    .map(|id| {
                        correct.get(id).copied().ok_or_else(|| {
                            ExperimentError::Input(format!(
                                "evaluation run {} has no outcome for item {id}",
                                result.run_id
                            ))
                        })
                    })
                    .collect::<Result<Vec<bool>>>()?;
                Ok((b, outcomes))
            })
            .collect()
    };
    // Every training bin's pairs, checked before any work starts.
    let mut train_pairs: Vec<(usize, Vec<(String, String)>)> = Vec::new();
    for &train_bin in &train_bins {
        let pairs: Vec<(String, String)> = items
            .iter()
            .filter(|t| t.bin == train_bin && (options.held_out == 0.0 || !is_eval(t)))
            .map(|t| (t.item.prompt.clone(), t.response.clone()))
            .collect();
        if pairs.is_empty() {
            return Err(ExperimentError::Input(format!(
                "train bin {train_bin} keeps no training item after the held-out split"
            )));
        }
        train_pairs.push((train_bin, pairs));
    }
    let mut fine_tunes_run = 0;
    let mut evaluations_run = 0;
    cancel.check("generalization_matrix")?;
    let zero = run_evaluation(store, base, &eval_items, &eval_options, cancel, progress)?;
    evaluations_run += !zero.reused as usize;
    let zero_by_bin = by_bin(&zero)?;
    let mut cells = Vec::new();
    for (train_bin, pairs) in train_pairs {
        let (mut train_runs, mut eval_runs, mut tuned_by_bin) = (vec![], vec![], vec![]);
        for &seed in &seeds {
            cancel.check("generalization_matrix")?;
            let mut seeded = train_options.clone();
            seeded.sft.seed = seed;
            let tuned = run_fine_tune(store, base, &pairs, &seeded, cancel, progress)?;
            fine_tunes_run += !tuned.reused as usize;
            let evaluated = run_evaluation(
                store,
                &tuned.model_path,
                &eval_items,
                &eval_options,
                cancel,
                progress,
            )?;
            evaluations_run += !evaluated.reused as usize;
            tuned_by_bin.push(by_bin(&evaluated)?);
            train_runs.push(tuned.run_id);
            eval_runs.push(evaluated.run_id);
        }
        for (&eval_bin, zero_shot) in &zero_by_bin {
            let outcomes = CellOutcomes {
                zero_shot: zero_shot.clone(),
                tuned: tuned_by_bin.iter().map(|t| t[&eval_bin].clone()).collect(),
            };
            let seed = options.seed ^ ((train_bin as u64) << 32 | eval_bin as u64);
            let (delta_ci_low, delta_ci_high) =
                outcomes.interval(options.bootstrap, options.ci, seed);
            cells.push(MatrixCell {
                train_bin,
                eval_bin,
                n_items: outcomes.n_items(),
                accuracy: outcomes.accuracy(),
                zero_shot_accuracy: outcomes.zero_shot_accuracy(),
                delta: outcomes.delta(),
                n_seeds: outcomes.n_seeds(),
                delta_seed_sd: outcomes.seed_sd(),
                delta_ci_low,
                delta_ci_high,
                p_value: outcomes.p_value(),
                significant: false,
                eval_bin_stable_share: stable_share.get(&eval_bin).copied(),
                train_runs: train_runs.clone(),
                eval_runs: eval_runs.clone(),
                outcomes,
            });
        }
    }
    let p_values: Vec<f64> = cells.iter().map(|c| c.p_value).collect();
    for (cell, s) in
        cells
            .iter_mut()
            .zip(significant(&p_values, 1.0 - options.ci, options.correction))
    {
        cell.significant = s;
    }
    Ok(MatrixResult {
        cells,
        zero_shot_run: zero.run_id,
        evaluated_on: if options.held_out > 0.0 {
            format!(
                "held-out items ({:.0}% of each bin)",
                options.held_out * 100.0
            )
        } else {
            "all items (training items included, as in the paper)".into()
        },
        fine_tunes_run,
        evaluations_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split is near the asked share overall and within every run of consecutive ids.
    #[test]
    fn held_out_split_is_even_over_consecutive_ids() {
        let ids: Vec<String> = (0..400).map(|k| format!("add-2-{k:03}")).collect();
        let held: Vec<bool> = ids.iter().map(|id| held_out(id, 0.5, 42)).collect();
        let share = held.iter().filter(|&&h| h).count() as f64 / ids.len() as f64;
        assert!((share - 0.5).abs() < 0.06, "{share}");
        for block in held.chunks(20) {
            let n = block.iter().filter(|&&h| h).count();
            assert!((4..=16).contains(&n), "{n} of 20 held out: {block:?}");
        }
        assert!(!held_out("x", 0.0, 42));
        let other_seed = ids
            .iter()
            .filter(|id| held_out(id, 0.5, 7) != held_out(id, 0.5, 42));
        assert!(other_seed.count() > 100);
    }
}
