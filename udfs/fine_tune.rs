//! `fine_tune(base_model, train_source [, options])`: a cached, resumable fine-tune.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::error::plan_error;
use super::experiment_source::{
    lazy_table, read_source, required_text, run_blocking, ExperimentCall,
};
use super::TableFunctionDoc;
use crate::experiment::finetune::{run_fine_tune, FineTuneOptions};
use crate::experiment::{Cancel, RunStore};
use crate::settings::Settings;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "fine_tune",
    syntax: "fine_tune(base_model, train_source [, options])",
    description: "Fine-tunes the Hugging Face model folder base_model on the `prompt` / `response` rows of \
train_source (a table name or a query), through the model's chat template, with the loss on response tokens \
only. The run is stored in the run store under a hash of the model files, rows and options: a finished run is \
reused, an interrupted one resumes from its checkpoint. Work happens when the query runs; dropping the query \
stops it between steps. options (JSON): epochs (5), learning_rate (5e-6), warmup_ratio (0.1), beta1 (0.9), \
beta2 (0.99), weight_decay (0.1), max_grad_norm (0.1), batch_size (4), gradient_accumulation (4), max_seq_len \
(4096), seed (42), lora ({rank, alpha, dropout, target_modules}; default: full fine-tuning), checkpoint_every, \
chat_template (default: when the model has one), run_store (folder; default $CROSSDIFF_RUNS or \
~/.cache/crossdiff/runs). Returns one row: run_id, model_path, steps, epochs, final_loss, seconds, reused.",
    example: "SELECT * FROM fine_tune('models/tiny', 'SELECT prompt, response FROM train WHERE bin = 0', '{\"epochs\": 3, \"learning_rate\": 1e-4}');",
};

#[derive(Debug, Default)]
pub struct FineTune;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("model_path", DataType::Utf8, false),
        Field::new("steps", DataType::UInt64, false),
        Field::new("epochs", DataType::UInt64, false),
        Field::new("final_loss", DataType::Float64, false),
        Field::new("seconds", DataType::Float64, false),
        Field::new("reused", DataType::Boolean, false),
    ]))
}

impl TableFunctionImpl for FineTune {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = ExperimentCall::parse(
            DOC.name,
            DOC.syntax,
            ["base_model", "train_source"],
            args.exprs(),
        )?;
        let mut options =
            FineTuneOptions::from_json(&call.options).map_err(|e| plan_error("fine_tune", e))?;
        let settings = Settings::of(args.session());
        options.run_store = options.run_store.or(settings.run_store.clone());
        let (model, source) = (settings.model_path(&call.first), call.second);
        Ok(lazy_table(schema(), move |ctx| {
            let (model, source, options) = (model.clone(), source.clone(), options.clone());
            async move {
                let mut pairs = Vec::new();
                for batch in read_source(DOC.name, &ctx, &source).await? {
                    let p = required_text(DOC.name, &batch, "prompt", pairs.len())?;
                    let r = required_text(DOC.name, &batch, "response", pairs.len())?;
                    pairs.extend(
                        (0..batch.num_rows())
                            .map(|i| (p.value(i).to_string(), r.value(i).to_string())),
                    );
                }
                let store = RunStore::locate(options.run_store.as_deref());
                let result = run_blocking(DOC.name, Cancel::default(), move |cancel| {
                    run_fine_tune(&store, &model, &pairs, &options, &cancel, true)
                })
                .await?;
                Ok(RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(StringArray::from(vec![result.run_id])),
                        Arc::new(StringArray::from(vec![result
                            .model_path
                            .display()
                            .to_string()])),
                        Arc::new(UInt64Array::from(vec![result.steps as u64])),
                        Arc::new(UInt64Array::from(vec![result.epochs as u64])),
                        Arc::new(Float64Array::from(vec![result.final_loss])),
                        Arc::new(Float64Array::from(vec![result.seconds])),
                        Arc::new(BooleanArray::from(vec![result.reused])),
                    ],
                )?)
            }
        }))
    }
}
