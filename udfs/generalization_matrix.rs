//! `generalization_matrix(task_source, base_model [, options])`: the paper's matrix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result};

use super::evaluate::eval_items;
use super::experiment_source::{
    lazy_table, read_source, required_text, run_blocking, ExperimentCall,
};
use super::TableFunctionDoc;
use crate::experiment::matrix::{
    generalization_matrix, MatrixOptions, MatrixResult, TaskItem, STABLE_BIN,
};
use crate::experiment::{Cancel, RunStore};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "generalization_matrix",
    syntax: "generalization_matrix(task_source, base_model [, options])",
    description: "The paper's experiment: evaluates base_model zero-shot on the task's items once, fine-tunes a \
fresh copy of it on each difficulty bin's items, evaluates every fine-tune on every bin, and returns one row \
per (train_bin, eval_bin): n_items, accuracy, zero_shot_accuracy, delta = accuracy - zero_shot_accuracy, \
evaluated_on, train_run, eval_run, and the cell's uncertainty: delta_ci_low, delta_ci_high (paired bootstrap \
over the cell's items of fine-tuned minus zero-shot outcome, seeded), p_value (exact two-sided McNemar test on the \
discordant items; with several seeds the exact sign-flip test of the per-item differences), significant (after \
the correction across the matrix's cells, at level 1 - ci), n_seeds, delta_seed_sd (NULL with one seed), \
zero_shot_run (the zero-shot evaluation's run id: run_items of it and of an eval_run pair each item's \
outcomes), eval_bin_stable_share (with irt: the share of the eval bin's items that stay in it with probability >= 0.9 \
given their difficulty's standard error; else NULL). With several seeds accuracy and delta are means over \
seeds, the interval resamples seeds then items, and train_run / eval_run list the runs comma-separated in seed \
order. task_source (a table name or a query) has item_id, prompt, response (the \
training target), answer, optional choices, and either a `bin` column (0-based) or a `difficulty` column that is \
cut into n_bins equal-size bins (ties broken by item_id). Every fine-tune and evaluation is a cached run: a \
re-run reuses them and an interrupted one resumes. options (JSON): n_bins (10), train_bins (default: all), \
held_out (share of each bin kept out of training and used for evaluation; default 0: evaluate on all items, \
training items included, as the paper's code does), seed (42), train (fine_tune's options), evaluate \
(evaluate's options), irt ({responses, model ('1pl'), method ('jml'), options}: compute the difficulty with \
irt_fit over those responses instead of reading a bin or difficulty column), seeds (a list: one fine-tune per \
training bin and seed, each its own cached run; default: one, with train.seed), bootstrap (resamples per cell, \
2000, at least 100), ci (interval level, 0.95), correction ('holm' | 'bh' | 'none'), run_store.",
    example: "SELECT * FROM generalization_matrix('SELECT * FROM task', 'models/tiny', '{\"n_bins\": 3, \"train\": {\"epochs\": 2}}');",
};

#[derive(Debug, Default)]
pub struct GeneralizationMatrix;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("train_bin", DataType::Int64, false),
        Field::new("eval_bin", DataType::Int64, false),
        Field::new("n_items", DataType::UInt64, false),
        Field::new("accuracy", DataType::Float64, false),
        Field::new("zero_shot_accuracy", DataType::Float64, false),
        Field::new("delta", DataType::Float64, false),
        Field::new("evaluated_on", DataType::Utf8, false),
        Field::new("train_run", DataType::Utf8, false),
        Field::new("eval_run", DataType::Utf8, false),
        Field::new("delta_ci_low", DataType::Float64, false),
        Field::new("delta_ci_high", DataType::Float64, false),
        Field::new("p_value", DataType::Float64, false),
        Field::new("significant", DataType::Boolean, false),
        Field::new("n_seeds", DataType::UInt64, false),
        Field::new("delta_seed_sd", DataType::Float64, true),
        Field::new("eval_bin_stable_share", DataType::Float64, true),
        Field::new("zero_shot_run", DataType::Utf8, false),
    ]))
}

/// Bins from a `bin` column, or equal-size bins of a `difficulty` column.
fn bins(
    batches: &[RecordBatch],
    ids: &[String],
    n_bins: usize,
    irt: Option<&BTreeMap<String, (f64, f64)>>,
) -> Result<Vec<usize>> {
    let column = |name: &str, t: &DataType| -> Result<Option<Vec<Option<f64>>>> {
        let mut out = Vec::new();
        for batch in batches {
            let Ok(i) = batch.schema().index_of(name) else {
                return Ok(None);
            };
            let a = cast(batch.column(i), t)?;
            let f = cast(&a, &DataType::Float64)?;
            let f = f.as_any().downcast_ref::<Float64Array>().expect("f64");
            out.extend((0..f.len()).map(|r| f.is_valid(r).then(|| f.value(r))));
        }
        Ok(Some(out))
    };
    let null_at = |v: &[Option<f64>], name: &str| -> Result<()> {
        match v.iter().position(Option::is_none) {
            Some(r) => Err(DataFusionError::Execution(format!(
                "generalization_matrix: `{name}` is NULL in row {} (item {})",
                r + 1,
                ids[r]
            ))),
            None => Ok(()),
        }
    };
    if let Some(fitted) = irt {
        let d: Vec<Option<f64>> = ids.iter().map(|id| fitted.get(id).map(|f| f.0)).collect();
        if let Some(r) = d.iter().position(Option::is_none) {
            return Err(DataFusionError::Execution(format!(
                "generalization_matrix: item {} of the task has no IRT difficulty (it is not in the \
                 responses, or everyone got it right or wrong)",
                ids[r]
            )));
        }
        return Ok(equal_size_bins(&d, ids, n_bins));
    }
    if let Some(b) = column("bin", &DataType::Int64)? {
        null_at(&b, "bin")?;
        return b
            .iter()
            .zip(ids)
            .map(|(v, id)| {
                let v = v.expect("checked");
                if v < 0.0 {
                    Err(DataFusionError::Execution(format!(
                        "generalization_matrix: bin {v} of item {id} is negative"
                    )))
                } else {
                    Ok(v as usize)
                }
            })
            .collect();
    }
    let Some(d) = column("difficulty", &DataType::Float64)? else {
        return Err(DataFusionError::Execution(
            "generalization_matrix: the task source needs a `bin` or a `difficulty` column".into(),
        ));
    };
    null_at(&d, "difficulty")?;
    Ok(equal_size_bins(&d, ids, n_bins))
}

/// The paper's equal-size bins of `d` (no NULLs), ties broken by item id.
fn equal_size_bins(d: &[Option<f64>], ids: &[String], n_bins: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..d.len()).collect();
    order.sort_by(|&a, &b| {
        d[a].partial_cmp(&d[b])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| ids[a].cmp(&ids[b]))
    });
    let mut out = vec![0; d.len()];
    for (position, &row) in order.iter().enumerate() {
        let q = crate::stats::difficulty_quantile(position, d.len());
        out[row] = crate::stats::difficulty_bin(q, n_bins);
    }
    out
}

/// Item difficulties and their standard errors from `irt_fit` over the responses the
/// options name.
async fn irt_difficulties(
    ctx: &datafusion::prelude::SessionContext,
    irt: &crate::experiment::matrix::IrtDifficulty,
) -> Result<BTreeMap<String, (f64, f64)>> {
    let quote = |s: &str| s.replace('\'', "''");
    let options = if irt.options.is_null() {
        "{}".to_string()
    } else {
        irt.options.to_string()
    };
    let q = format!(
        "SELECT CAST(item_id AS VARCHAR) AS item_id, difficulty, difficulty_se FROM irt_fit('{}', '{}', '{}', '{}')",
        quote(&irt.responses),
        quote(&irt.model),
        quote(&irt.method),
        quote(&options)
    );
    let batches = ctx.sql(&q).await?.collect().await?;
    let mut out = BTreeMap::new();
    for batch in &batches {
        let ids = required_text(DOC.name, batch, "item_id", out.len())?;
        let d = cast(batch.column(1), &DataType::Float64)?;
        let d = d.as_any().downcast_ref::<Float64Array>().expect("f64");
        let se = cast(batch.column(2), &DataType::Float64)?;
        let se = se.as_any().downcast_ref::<Float64Array>().expect("f64");
        for r in 0..batch.num_rows() {
            if d.is_valid(r) {
                // An unknown error makes the item's bin stability unknown (NaN).
                let e = if se.is_valid(r) {
                    se.value(r)
                } else {
                    f64::NAN
                };
                out.insert(ids.value(r).to_string(), (d.value(r), e));
            }
        }
    }
    Ok(out)
}

/// The probability that each item stays in its bin given its difficulty's standard error, by
/// item id (`None` when an error is unknown or not finite).
fn bin_stability(
    ids: &[String],
    fitted: &BTreeMap<String, (f64, f64)>,
    n_bins: usize,
    seed: u64,
) -> Option<BTreeMap<String, f64>> {
    // Sorted ids: ties are broken by item id, as the bins are.
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let (d, se): (Vec<f64>, Vec<f64>) = sorted.iter().map(|id| fitted[id.as_str()]).unzip();
    if se.iter().any(|e| !e.is_finite() || *e < 0.0) {
        return None;
    }
    let draws = crate::stats::DEFAULT_STABILITY_DRAWS;
    let p = crate::stats::bin_stability(&d, &se, n_bins, draws, seed);
    Some(sorted.into_iter().cloned().zip(p).collect())
}

/// Reads the task, derives its bins, and runs (or reuses) the study: what
/// `generalization_matrix` and `gap_profile` share.
pub(crate) async fn run_matrix(
    name: &'static str,
    ctx: &datafusion::prelude::SessionContext,
    source: &str,
    model: PathBuf,
    options: MatrixOptions,
) -> Result<MatrixResult> {
    let batches = read_source(name, ctx, source).await?;
    let items = eval_items(name, &batches)?;
    let ids: Vec<String> = items.iter().map(|i| i.item_id.clone()).collect();
    let fitted = match &options.irt {
        Some(irt) => Some(irt_difficulties(ctx, irt).await?),
        None => None,
    };
    let bins = bins(&batches, &ids, options.n_bins, fitted.as_ref())?;
    let stability = fitted
        .as_ref()
        .and_then(|f| bin_stability(&ids, f, options.n_bins, options.seed));
    let mut responses = Vec::new();
    for batch in &batches {
        let r = required_text(name, batch, "response", responses.len())?;
        responses.extend((0..batch.num_rows()).map(|i| r.value(i).to_string()));
    }
    let tasks: Vec<TaskItem> = items
        .into_iter()
        .zip(responses)
        .zip(bins)
        .map(|((item, response), bin)| TaskItem {
            bin_stability: stability.as_ref().map(|s| s[&item.item_id]),
            item,
            response,
            bin,
        })
        .collect();
    let store = RunStore::locate(options.run_store.as_deref());
    let result = run_blocking(name, Cancel::default(), move |cancel| {
        generalization_matrix(&store, &model, &tasks, &options, &cancel, true)
    })
    .await?;
    if let Some(stable) = &stability {
        let n = stable.values().filter(|&&p| p >= STABLE_BIN).count();
        eprintln!(
            "{name}: {n} of {} items ({:.0}%) stay in their IRT difficulty bin with probability >= {STABLE_BIN}",
            stable.len(),
            100.0 * n as f64 / stable.len().max(1) as f64
        );
    }
    Ok(result)
}

/// The arguments `(task_source, base_model [, options])` of a function that runs the study.
pub(crate) fn parse_matrix_call(
    doc: &TableFunctionDoc,
    args: &TableFunctionArgs,
) -> Result<(String, PathBuf, MatrixOptions)> {
    let call = ExperimentCall::parse(
        doc.name,
        doc.syntax,
        ["task_source", "base_model"],
        args.exprs(),
    )?;
    let options = MatrixOptions::from_json(&call.options)
        .map_err(|e| DataFusionError::Plan(format!("{}: {e}", doc.name)))?;
    Ok((call.first, PathBuf::from(call.second), options))
}

impl TableFunctionImpl for GeneralizationMatrix {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (source, model, options) = parse_matrix_call(&DOC, &args)?;
        Ok(lazy_table(schema(), move |ctx| {
            let (model, source, options) = (model.clone(), source.clone(), options.clone());
            async move {
                let result = run_matrix(DOC.name, &ctx, &source, model, options).await?;
                let c = &result.cells;
                Ok(RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(Int64Array::from_iter_values(
                            c.iter().map(|x| x.train_bin as i64),
                        )),
                        Arc::new(Int64Array::from_iter_values(
                            c.iter().map(|x| x.eval_bin as i64),
                        )),
                        Arc::new(UInt64Array::from_iter_values(
                            c.iter().map(|x| x.n_items as u64),
                        )),
                        Arc::new(Float64Array::from_iter_values(c.iter().map(|x| x.accuracy))),
                        Arc::new(Float64Array::from_iter_values(
                            c.iter().map(|x| x.zero_shot_accuracy),
                        )),
                        Arc::new(Float64Array::from_iter_values(c.iter().map(|x| x.delta))),
                        Arc::new(StringArray::from_iter_values(
                            c.iter().map(|_| result.evaluated_on.as_str()),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            c.iter().map(|x| x.train_runs.join(",")),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            c.iter().map(|x| x.eval_runs.join(",")),
                        )),
                        Arc::new(Float64Array::from_iter_values(
                            c.iter().map(|x| x.delta_ci_low),
                        )),
                        Arc::new(Float64Array::from_iter_values(
                            c.iter().map(|x| x.delta_ci_high),
                        )),
                        Arc::new(Float64Array::from_iter_values(c.iter().map(|x| x.p_value))),
                        Arc::new(BooleanArray::from(
                            c.iter().map(|x| x.significant).collect::<Vec<_>>(),
                        )),
                        Arc::new(UInt64Array::from_iter_values(
                            c.iter().map(|x| x.n_seeds as u64),
                        )),
                        Arc::new(Float64Array::from_iter(c.iter().map(|x| x.delta_seed_sd))),
                        Arc::new(Float64Array::from_iter(
                            c.iter().map(|x| x.eval_bin_stable_share),
                        )),
                        Arc::new(StringArray::from_iter_values(
                            c.iter().map(|_| result.zero_shot_run.as_str()),
                        )),
                    ],
                )?)
            }
        }))
    }
}
