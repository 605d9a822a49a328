//! `read_responses(path, format [, options])`: responses from result files, as the canonical
//! `responses` table. The arguments are checked when the query is planned; the files are read
//! when it runs, so `EXPLAIN` reads nothing.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, DataFusionError, Result};

use super::error::{exec_error, plan_error};
use super::lazy::{Job, LazyTable};
use super::{string_arg, TableFunctionDoc};
use crate::data::{read_responses, responses_schema, Format, IngestOptions};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "read_responses",
    syntax: "read_responses(path, format [, options])",
    description: "Reads per-item results into the canonical responses(model_id, benchmark, item_id, correct) \
table. path is a file or a folder (read recursively). format is one of 'lm_eval' (lm-eval-harness \
samples_<task>_<timestamp>.jsonl; model id from the folder name, org__model -> org/model; benchmark from \
the task in the file name; the latest timestamp wins), 'lm_eval_parquet' (the same records as Parquet), \
'parquet' or 'csv' (long tables), 'wide_csv' or 'wide_parquet' (one row per model, one column per item; \
empty cells are missing responses), 'pyirt' (py-irt jsonlines). options is a JSON object: metric (lm_eval; \
a name or comma list tried before the defaults 'acc' (multiple choice) and 'exact_match' (generation), or \
an object of one strict metric per task), filter (lm_eval: the answer filter kept of a task that logs several, \
e.g. 'strict-match'; default the task's first; or an object per task), model_id, benchmark, model_column, benchmark_column, item_column, correct_column, \
on_duplicate ('error' (default), 'first', 'last', 'any', 'all'). Unknown keys are errors.",
    example: "SELECT benchmark, count(*) FROM read_responses('results/', 'lm_eval', '{\"metric\": \"acc_norm\"}') GROUP BY benchmark;",
};

#[derive(Debug, Default)]
pub struct ReadResponses;

impl TableFunctionImpl for ReadResponses {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=3)?;
        let path = PathBuf::from(string_arg(DOC.name, exprs, 0, "path")?);
        let format = Format::parse(&string_arg(DOC.name, exprs, 1, "format")?)
            .map_err(|e| plan_error(DOC.name, e))?;
        let options = match exprs.len() {
            3 => string_arg(DOC.name, exprs, 2, "options")?,
            _ => String::new(),
        };
        let options =
            IngestOptions::from_json(&options, format).map_err(|e| plan_error(DOC.name, e))?;
        if !path.exists() {
            return plan_err!("{}: path {} does not exist", DOC.name, path.display());
        }
        let job: Job = Arc::new(move || {
            let (paths, options) = (vec![path.clone()], options.clone());
            Box::pin(async move {
                tokio::task::spawn_blocking(move || read_responses(&paths, format, &options))
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))?
                    .map_err(|e| exec_error(DOC.name, e))
            })
        });
        Ok(Arc::new(LazyTable::new(
            responses_schema(),
            Arc::new(move |_| Ok(job.clone())),
        )))
    }
}
