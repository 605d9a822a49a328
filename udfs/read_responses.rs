//! `read_responses(path, format [, options])`: responses from result files, as the canonical
//! `responses` table. The arguments are checked when the query is planned; the files are read
//! when it runs, so `EXPLAIN` reads nothing.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, DataFusionError, Result};

use super::error::{exec_error, plan_error};
use super::lazy::{Job, LazyTable};
use super::{string_arg, TableFunctionDoc};
use crate::cancel::{Cancel, CancelOnDrop};
use crate::data::{
    self, responses_schema, responses_schema_with_provenance, Format, IngestOptions,
};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "read_responses",
    syntax: "read_responses(path, format [, options])",
    description: "Reads per-item results into the canonical responses(model_id, benchmark, item_id, correct) \
table. path is a file or a folder (read recursively). format is one of 'lm_eval' (lm-eval-harness \
samples_<task>_<timestamp>.jsonl; model id from the folder name, org__model -> org/model; benchmark from \
the task in the file name; the latest timestamp wins), 'lm_eval_parquet' (the same records as Parquet), \
'leaderboard_v2' (Open LLM Leaderboard v2 details: samples_leaderboard_<task>_<timestamp>.jsonl or .json \
per model folder; task names without 'leaderboard_'; metric acc_norm for bbh, gpqa and musr, \
prompt_level_strict_acc for ifeval, exact_match for math, acc for mmlu_pro), 'leaderboard_v1' (v1 \
details: details_harness|<task>|<n_shot>_<timestamp>.parquet; item id = row position, checked against \
the row's content hash across models; metric acc_norm for arc and hellaswag, mc1 for truthfulqa, acc \
otherwise), 'parquet' or 'csv' (long tables), 'wide_csv' or 'wide_parquet' (one row per model, one \
column per item; empty cells are missing responses), 'pyirt' (py-irt jsonlines). options is a JSON \
object: metric (a name or comma list tried before the defaults 'acc' (multiple choice) and \
'exact_match' (generation), or an object of one strict metric per task), filter (lm_eval: the answer \
filter kept of a task that logs several, e.g. 'strict-match'; default the task's first; or an object \
per task), group (lm_eval and leaderboards: subtasks read as one benchmark with item ids \
'<subtask>/<doc_id>': a name such as 'bbh' for every task bbh_*, a list of names, or an object \
benchmark -> task-name prefix such as {\"mmlu\": \"hendrycksTest-\"}), provenance (true adds the \
columns metric, n_shot and prompt_hash), align (leaderboard_v1: 'position' (default) or 'content', \
item id = the row's content hash), model_id, benchmark, model_column, benchmark_column, item_column, \
correct_column, on_duplicate ('error' (default), 'first', 'last', 'any', 'all'). Unknown keys are errors.",
    example: "SELECT benchmark, count(*) FROM read_responses('details/', 'leaderboard_v2', '{\"group\": [\"bbh\", \"math\", \"musr\"]}') GROUP BY benchmark;",
};

/// The path, format and options of a call, checked when the query is planned.
pub struct SourceArgs {
    pub path: PathBuf,
    pub format: Format,
    pub options: IngestOptions,
}

impl SourceArgs {
    pub fn parse(doc: &TableFunctionDoc, args: &TableFunctionArgs) -> Result<Self> {
        let exprs = args.exprs();
        doc.check_arg_count(exprs, 2..=3)?;
        let path = PathBuf::from(string_arg(doc.name, exprs, 0, "path")?);
        let format = Format::parse(&string_arg(doc.name, exprs, 1, "format")?)
            .map_err(|e| plan_error(doc.name, e))?;
        let options = match exprs.len() {
            3 => string_arg(doc.name, exprs, 2, "options")?,
            _ => String::new(),
        };
        let options =
            IngestOptions::from_json(&options, format).map_err(|e| plan_error(doc.name, e))?;
        if !path.exists() {
            return plan_err!("{}: path {} does not exist", doc.name, path.display());
        }
        Ok(Self {
            path,
            format,
            options,
        })
    }

    /// A job that reads the files when the query runs; dropping the query stops the read
    /// between files.
    pub fn job(
        self,
        name: &'static str,
        pick: fn(RecordBatch, Option<RecordBatch>) -> RecordBatch,
        items: bool,
    ) -> Job {
        Arc::new(move || {
            let (paths, format, options) =
                (vec![self.path.clone()], self.format, self.options.clone());
            Box::pin(async move {
                let cancel = Cancel::default();
                let _stop = CancelOnDrop(cancel.clone());
                let (responses, items) = tokio::task::spawn_blocking(move || {
                    data::read(&paths, format, &options, items, &cancel)
                })
                .await
                .map_err(|e| DataFusionError::External(Box::new(e)))?
                .map_err(|e| exec_error(name, e))?;
                Ok(pick(responses, items))
            })
        })
    }
}

#[derive(Debug, Default)]
pub struct ReadResponses;

impl TableFunctionImpl for ReadResponses {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let source = SourceArgs::parse(&DOC, &args)?;
        let schema = if source.options.provenance {
            responses_schema_with_provenance()
        } else {
            responses_schema()
        };
        let job = source.job(DOC.name, |responses, _| responses, false);
        Ok(Arc::new(LazyTable::new(
            schema,
            Arc::new(move |_| Ok(job.clone())),
        )))
    }
}
