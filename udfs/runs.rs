//! `runs([run_store])` and `run_items(run_id [, run_store])`: the run store from SQL.

use std::sync::Arc;

use datafusion::arrow::array::{
    Float64Array, RecordBatch, StringArray, TimestampSecondArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result};

use super::error::exec_error;
use super::experiment_source::lazy_table;
use super::{string_arg, TableFunctionDoc};
use crate::experiment::RunStore;
use crate::settings::Settings;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "runs",
    syntax: "runs([run_store])",
    description: "Every run in the run store (default $CROSSDIFF_RUNS or ~/.cache/crossdiff/runs), newest first: \
id, kind ('fine_tune' | 'evaluate'), model, status ('running' | 'interrupted' | 'failed' | 'done'), created, updated, \
seconds, rows, options and summary (JSON text), path. `crossdiff runs clean` removes old runs.",
    example: "SELECT kind, status, count(*) FROM runs() GROUP BY kind, status;",
};

pub const ITEMS_DOC: TableFunctionDoc = TableFunctionDoc {
    name: "run_items",
    syntax: "run_items(run_id [, run_store])",
    description:
        "The per-item outcomes an evaluation run stored (its items.parquet): item_id, prediction, \
correct, correct_norm, log_likelihoods, output.",
    example: "SELECT * FROM run_items('ev-0123456789abcdef01234567') WHERE NOT correct;",
};

#[derive(Debug, Default)]
pub struct Runs;

#[derive(Debug, Default)]
pub struct RunItems;

fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Second, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("created", ts.clone(), false),
        Field::new("updated", ts, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("options", DataType::Utf8, false),
        Field::new("summary", DataType::Utf8, false),
        Field::new("path", DataType::Utf8, false),
    ]))
}

/// The store an argument names, else the session's `crossdiff.run_store`, else the default.
fn store_arg(function: &str, args: &TableFunctionArgs, index: usize) -> Result<RunStore> {
    let exprs = args.exprs();
    let named = match exprs.len() > index {
        true => Some(string_arg(function, exprs, index, "run_store")?),
        false => None,
    };
    Ok(Settings::of(args.session()).run_store(named.as_deref()))
}

impl TableFunctionImpl for Runs {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 0..=1)?;
        let store = store_arg(DOC.name, &args, 0)?;
        Ok(lazy_table(schema(), move |_ctx| {
            let store = store.clone();
            async move {
                let listing = store.list().map_err(|e| exec_error("runs", e))?;
                // A broken record hides nothing else: it is reported and skipped.
                for b in &listing.broken {
                    eprintln!(
                        "runs: skipped run {}: {} (crossdiff runs clean removes it)",
                        b.id, b.message
                    );
                }
                let runs = listing.runs;
                let text = |f: &dyn Fn(&crate::experiment::RunRecord) -> String| {
                    Arc::new(StringArray::from_iter_values(runs.iter().map(f)))
                };
                let tz = "UTC";
                Ok(RecordBatch::try_new(
                    schema(),
                    vec![
                        text(&|r| r.id.clone()),
                        text(&|r| r.kind.name().to_string()),
                        text(&|r| r.model.clone()),
                        text(&|r| r.status.name().to_string()),
                        Arc::new(
                            TimestampSecondArray::from_iter_values(
                                runs.iter().map(|r| r.created as i64),
                            )
                            .with_timezone(tz),
                        ),
                        Arc::new(
                            TimestampSecondArray::from_iter_values(
                                runs.iter().map(|r| r.updated as i64),
                            )
                            .with_timezone(tz),
                        ),
                        Arc::new(Float64Array::from_iter_values(
                            runs.iter().map(|r| r.seconds),
                        )),
                        Arc::new(UInt64Array::from_iter_values(
                            runs.iter().map(|r| r.rows as u64),
                        )),
                        text(&|r| r.options.to_string()),
                        text(&|r| r.summary.to_string()),
                        text(&|r| store.run_dir(&r.id).display().to_string()),
                    ],
                )?)
            }
        }))
    }
}

impl TableFunctionImpl for RunItems {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        ITEMS_DOC.check_arg_count(exprs, 1..=2)?;
        let id = string_arg(ITEMS_DOC.name, exprs, 0, "run_id")?;
        let store = store_arg(ITEMS_DOC.name, &args, 1)?;
        let path = store.run_dir(&id).join("items.parquet");
        if !path.exists() {
            return plan_err!(
                "run_items: run {id} has no stored items ({} is missing; only finished evaluations have them)",
                path.display()
            );
        }
        Ok(lazy_table(
            crate::experiment::evaluation::items_schema(),
            move |_ctx| {
                let path = path.clone();
                async move {
                    let batches = crate::experiment::evaluation::read_items_batches(&path)
                        .map_err(|e| exec_error("run_items", e))?;
                    Ok(datafusion::arrow::compute::concat_batches(
                        &crate::experiment::evaluation::items_schema(),
                        &batches,
                    )?)
                }
            },
        ))
    }
}
