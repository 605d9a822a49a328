//! The generalization matrix: the zero-shot model evaluated once, one fine-tune of the base
//! model per training bin, each evaluated on every bin; cell (i, j) is the accuracy on bin j
//! of the model trained on bin i, minus the zero-shot accuracy on bin j.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::evaluation::{run_evaluation, EvalItem, EvalOptions, EvaluationResult};
use super::finetune::{run_fine_tune, FineTuneOptions};
use super::store::{ContentHash, RunStore};
use super::uncertainty::{mcnemar_exact, paired_bootstrap, significant, Correction, Pair};
use super::{Cancel, ExperimentError, Result};

/// One item of a task: what the model is asked, what it is trained to answer, how its answer
/// is judged, and its difficulty bin.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskItem {
    pub item: EvalItem,
    /// The training target for this item (the paper trains on the reference solution).
    pub response: String,
    pub bin: usize,
}

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
    /// Seeds the held-out split (the fine-tunes use `train.seed`).
    pub seed: u64,
    /// Fine-tuning options (see `fine_tune`).
    pub train: serde_json::Value,
    /// Evaluation options (see `evaluate`).
    pub evaluate: serde_json::Value,
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

/// Where IRT difficulties come from: `irt_fit(source, model, method, options)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrtDifficulty {
    /// A responses table name or query (model_id, item_id, correct[, benchmark]).
    pub responses: String,
    #[serde(default = "default_irt_model")]
    pub model: String,
    #[serde(default = "default_irt_method")]
    pub method: String,
    #[serde(default)]
    pub options: serde_json::Value,
}

fn default_irt_model() -> String {
    "1pl".into()
}

fn default_irt_method() -> String {
    "jml".into()
}

impl Default for MatrixOptions {
    fn default() -> Self {
        Self {
            n_bins: 10,
            train_bins: None,
            held_out: 0.0,
            seed: 42,
            train: serde_json::json!({}),
            evaluate: serde_json::json!({}),
            irt: None,
            run_store: None,
            bootstrap: 2000,
            ci: 0.95,
            correction: Correction::Holm,
        }
    }
}

impl MatrixOptions {
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let options: Self = serde_json::from_value(value.clone())
            .map_err(|e| ExperimentError::Input(format!("options: {e}")))?;
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
        FineTuneOptions::from_json(&options.train)?;
        EvalOptions::from_json(&options.evaluate)?;
        Ok(options)
    }
}

/// One cell of the matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCell {
    pub train_bin: usize,
    pub eval_bin: usize,
    pub n_items: usize,
    pub accuracy: f64,
    pub zero_shot_accuracy: f64,
    pub delta: f64,
    /// Paired bootstrap interval of `delta` over the cell's items.
    pub delta_ci_low: f64,
    pub delta_ci_high: f64,
    /// Exact McNemar test of the cell's paired outcomes, two-sided.
    pub p_value: f64,
    /// After the correction across the matrix's cells, at level 1 - `ci`.
    pub significant: bool,
    pub train_run: String,
    pub eval_run: String,
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
fn held_out(item_id: &str, share: f64, seed: u64) -> bool {
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

fn per_bin(
    result: &EvaluationResult,
    bins: &BTreeMap<&str, usize>,
) -> BTreeMap<usize, (usize, usize)> {
    let mut out: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for o in &result.items {
        if let Some(&b) = bins.get(o.item_id.as_str()) {
            let e = out.entry(b).or_default();
            e.0 += 1;
            e.1 += o.correct as usize;
        }
    }
    out
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
    let train_options = FineTuneOptions::from_json(&options.train)?;
    let mut eval_options = EvalOptions::from_json(&options.evaluate)?;
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
    let bins: BTreeMap<&str, usize> = items
        .iter()
        .map(|t| (t.item.item_id.as_str(), t.bin))
        .collect();
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
    let mut fine_tunes_run = 0;
    let mut evaluations_run = 0;
    cancel.check("generalization_matrix")?;
    let zero = run_evaluation(store, base, &eval_items, &eval_options, cancel, progress)?;
    evaluations_run += !zero.reused as usize;
    let zero_bins = per_bin(&zero, &bins);
    let zero_correct: BTreeMap<&str, bool> = zero
        .items
        .iter()
        .map(|o| (o.item_id.as_str(), o.correct))
        .collect();
    let mut cells = Vec::new();
    for &train_bin in &train_bins {
        cancel.check("generalization_matrix")?;
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
        let tuned = run_fine_tune(store, base, &pairs, &train_options, cancel, progress)?;
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
        for (eval_bin, (n, right)) in per_bin(&evaluated, &bins) {
            let (zn, zright) = zero_bins.get(&eval_bin).copied().unwrap_or((0, 0));
            let accuracy = right as f64 / n as f64;
            let zero_shot_accuracy = zright as f64 / zn.max(1) as f64;
            // The cell's items, each with the fine-tuned and the zero-shot outcome.
            let pairs: Vec<Pair> = evaluated
                .items
                .iter()
                .filter(|o| bins.get(o.item_id.as_str()) == Some(&eval_bin))
                .filter_map(|o| {
                    zero_correct
                        .get(o.item_id.as_str())
                        .map(|&z| (o.correct, z))
                })
                .collect();
            let seed = options.seed ^ ((train_bin as u64) << 32 | eval_bin as u64);
            let (delta_ci_low, delta_ci_high) =
                paired_bootstrap(&pairs, options.bootstrap, options.ci, seed);
            cells.push(MatrixCell {
                train_bin,
                eval_bin,
                n_items: n,
                accuracy,
                zero_shot_accuracy,
                delta: accuracy - zero_shot_accuracy,
                delta_ci_low,
                delta_ci_high,
                p_value: mcnemar_exact(&pairs),
                significant: false,
                train_run: tuned.run_id.clone(),
                eval_run: evaluated.run_id.clone(),
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
