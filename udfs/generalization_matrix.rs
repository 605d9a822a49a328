//! `generalization_matrix(task_source, base_model [, options])`: the paper's matrix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result};

use super::error::{exec_error, plan_error};
use super::evaluate::eval_items;
use super::experiment_source::{
    lazy_table, read_source, required_text, run_blocking, ExperimentCall,
};
use super::irt_source::read_matrices;
use super::TableFunctionDoc;
use crate::experiment::bins::{
    bin_stability, irt_difficulties, task_bins, BinSource, FittedDifficulty,
};
use crate::experiment::matrix::{
    generalization_matrix, MatrixOptions, MatrixResult, TaskItem, STABLE_BIN,
};
use crate::experiment::{Cancel, RunStore};
use crate::settings::Settings;

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

/// A numeric column of the task as f64 values (`None` for NULL), or `None` when absent.
fn float_column(batches: &[RecordBatch], name: &str) -> Result<Option<Vec<Option<f64>>>> {
    let mut out = Vec::new();
    for batch in batches {
        let Ok(i) = batch.schema().index_of(name) else {
            return Ok(None);
        };
        let f = cast(batch.column(i), &DataType::Float64)?;
        let f = f.as_primitive::<Float64Type>();
        out.extend(f.iter());
    }
    Ok(Some(out))
}

/// An integer column of the task (`None` for NULL), or `None` when absent.
fn int_column(batches: &[RecordBatch], name: &str) -> Result<Option<Vec<Option<i64>>>> {
    let mut out = Vec::new();
    for batch in batches {
        let Ok(i) = batch.schema().index_of(name) else {
            return Ok(None);
        };
        let v = cast(batch.column(i), &DataType::Int64)?;
        out.extend(v.as_primitive::<Int64Type>().iter());
    }
    Ok(Some(out))
}

/// The task's bins: from the IRT fit, a `bin` column, or a `difficulty` column.
fn bins(
    name: &str,
    batches: &[RecordBatch],
    ids: &[String],
    n_bins: usize,
    irt: Option<&BTreeMap<String, FittedDifficulty>>,
) -> Result<Vec<usize>> {
    // Only the column that decides is read: an IRT fit, else `bin`, else `difficulty`.
    let (given, difficulty);
    let source = if let Some(fitted) = irt {
        BinSource::Irt(fitted)
    } else if let Some(b) = int_column(batches, "bin")? {
        given = b;
        BinSource::Given(&given)
    } else if let Some(d) = float_column(batches, "difficulty")? {
        difficulty = d;
        BinSource::Difficulty(&difficulty)
    } else {
        return Err(exec_error(
            name,
            "the task source needs a `bin` or a `difficulty` column",
        ));
    };
    task_bins(source, ids, n_bins).map_err(|e| exec_error(name, e))
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
        Some(irt) => {
            let set = read_matrices(ctx, name, &irt.responses, false).await?;
            let fit = irt
                .options
                .fit_options(irt.model, irt.method)
                .map_err(|e| plan_error(name, e))?;
            // A dropped query stops the fit at its next sweep.
            let _stop = crate::cancel::CancelOnDrop(fit.cancel.clone());
            let run = move || irt_difficulties(set.finish()?, &fit);
            Some(
                tokio::task::spawn_blocking(run)
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
                    .map_err(|e| exec_error(name, e))?,
            )
        }
        None => None,
    };
    let bins = bins(name, &batches, &ids, options.n_bins, fitted.as_ref())?;
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
    let settings = Settings::of(args.session());
    // The session's default options, with the call's own merged over them.
    let options = match &settings.matrix_options {
        Some(json) => {
            let defaults: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                plan_error(
                    doc.name,
                    format!("setting crossdiff.matrix_options: malformed JSON: {e}"),
                )
            })?;
            if !defaults.is_object() {
                return Err(plan_error(
                    doc.name,
                    "setting crossdiff.matrix_options must be a JSON object",
                ));
            }
            crate::settings::merge_options(&defaults, &call.options)
        }
        None => call.options.clone(),
    };
    let mut options = MatrixOptions::from_json(&options).map_err(|e| plan_error(doc.name, e))?;
    options.run_store = options.run_store.or(settings.run_store.clone());
    Ok((call.first, settings.model_path(&call.second), options))
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
