//! `evaluate(model, eval_source [, options])`: per-item outcomes of a cached evaluation.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::error::{exec_error, plan_error};
use super::experiment_source::{
    choices_column, lazy_table, read_source, required_text, run_blocking, ExperimentCall,
};
use super::TableFunctionDoc;
use crate::experiment::evaluation::{
    items_schema, outcomes_to_batch, run_evaluation, EvalItem, EvalOptions,
};
use crate::experiment::{Cancel, RunStore};
use crate::settings::Settings;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "evaluate",
    syntax: "evaluate(model, eval_source [, options])",
    description: "Evaluates the Hugging Face model folder model on the items of eval_source (a table name or a \
query with columns item_id, prompt, answer and, for multiple choice, choices LIST<VARCHAR>), the way \
lm-eval-harness does: multiple choice by summed log-likelihood of each choice after the prompt (correct = acc, \
or acc_norm with the option metric 'acc_norm'; correct_norm = acc_norm, the log-likelihood per character of the \
choice without the delimiter), or greedy generation until a stop string, an answer filter and \
exact_match. For multiple choice, answer is the gold choice's 0-based index or its text. Cached in the run \
store like fine_tune. options (JSON): output_type ('multiple_choice' | 'generate_until'; default: multiple \
choice when every item has choices), chat_template (default false, as lm-eval without --apply_chat_template), target_delimiter (' ', or '' with the \
chat template, as lm-eval), \
stop ([]), max_new_tokens (256), filter ('none': the output as generated | 'gsm8k_strict' | 'gsm8k_flexible' | \
'first_letter' | a regex in Python's syntax, applied as lm-eval's regex filter), take ('first' | 'last'), exact_match ('plain' | 'gsm8k' | 'math'), metric (multiple choice: 'acc' | \
'acc_norm', what correct holds), ignore_case, ignore_punctuation, \
regexes_to_ignore, batch_size (16), run_store. Returns per item: item_id, prediction, correct, correct_norm, \
log_likelihoods, output, run_id.",
    example: "SELECT avg(CAST(correct AS DOUBLE)) FROM evaluate('models/tiny', 'SELECT * FROM arc_items', '{\"output_type\": \"multiple_choice\"}');",
};

#[derive(Debug, Default)]
pub struct Evaluate;

fn schema() -> SchemaRef {
    let mut fields: Vec<Field> = items_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("run_id", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The items of an eval (or task) source.
pub(crate) fn eval_items(function: &str, batches: &[RecordBatch]) -> Result<Vec<EvalItem>> {
    let mut items = Vec::new();
    for batch in batches {
        let ids = required_text(function, batch, "item_id", items.len())?;
        let prompts = required_text(function, batch, "prompt", items.len())?;
        let answers = required_text(function, batch, "answer", items.len())?;
        let choices = choices_column(function, batch)?;
        for r in 0..batch.num_rows() {
            items.push(EvalItem {
                item_id: ids.value(r).to_string(),
                prompt: prompts.value(r).to_string(),
                choices: choices.as_ref().and_then(|c| c[r].clone()),
                answer: answers.value(r).to_string(),
            });
        }
    }
    Ok(items)
}

impl TableFunctionImpl for Evaluate {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call =
            ExperimentCall::parse(DOC.name, DOC.syntax, ["model", "eval_source"], args.exprs())?;
        let mut options =
            EvalOptions::from_json(&call.options).map_err(|e| plan_error("evaluate", e))?;
        let settings = Settings::of(args.session());
        options.run_store = options.run_store.or(settings.run_store.clone());
        let (model, source) = (settings.model_path(&call.first), call.second);
        Ok(lazy_table(schema(), move |ctx| {
            let (model, source, options) = (model.clone(), source.clone(), options.clone());
            async move {
                let items = eval_items(DOC.name, &read_source(DOC.name, &ctx, &source).await?)?;
                let store = RunStore::locate(options.run_store.as_deref());
                let result = run_blocking(DOC.name, Cancel::default(), move |cancel| {
                    run_evaluation(&store, &model, &items, &options, &cancel, true)
                })
                .await?;
                let batch =
                    outcomes_to_batch(&result.items).map_err(|e| exec_error(DOC.name, e))?;
                let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
                columns.push(Arc::new(StringArray::from(vec![
                    result.run_id.as_str();
                    batch.num_rows()
                ])));
                Ok(RecordBatch::try_new(schema(), columns)?)
            }
        }))
    }
}
