//! `read_items(path, format [, options])`: what each item is, from the same result files
//! `read_responses` reads, so difficulty from IRT can be joined to the question text.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result};

use super::lazy::LazyTable;
use super::read_responses::SourceArgs;
use super::TableFunctionDoc;
use crate::data::{has_items, items_schema};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "read_items",
    syntax: "read_items(path, format [, options])",
    description: "The items of result files: items(benchmark, item_id, task, question, choices, target, \
doc_hash, prompt, doc), one row per item of the responses read_responses gives for the same \
arguments (same item ids, groups and alignment), from the first file that has it. format is 'lm_eval', \
'lm_eval_parquet', 'leaderboard_v2' or 'leaderboard_v1'. question and choices come from the document \
(lm-eval's doc: question, problem, input, ...; choices or options; v1: example and choices), else the \
continuations scored; target is the reference answer as logged; prompt is the context the models saw; \
doc is the whole document as JSON (lm-eval formats). A doc_hash that differs between two files for one \
item is an error naming both.",
    example: "SELECT r.benchmark, i.question, avg(CAST(r.correct AS DOUBLE)) AS accuracy \
FROM read_responses('details/', 'leaderboard_v2') r JOIN read_items('details/', 'leaderboard_v2') i \
USING (benchmark, item_id) GROUP BY r.benchmark, i.question;",
};

#[derive(Debug, Default)]
pub struct ReadItems;

impl TableFunctionImpl for ReadItems {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let source = SourceArgs::parse(&DOC, &args)?;
        if !has_items(source.format) {
            return plan_err!(
                "{}: format '{}' does not describe items; use 'lm_eval', 'lm_eval_parquet', \
                 'leaderboard_v2' or 'leaderboard_v1'",
                DOC.name,
                source.format.name()
            );
        }
        let job = source.job(DOC.name, |_, items| items.expect("asked for"), true);
        Ok(Arc::new(LazyTable::new(
            items_schema(),
            Arc::new(move |_| Ok(job.clone())),
        )))
    }
}
