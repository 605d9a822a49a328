//! `tiny_model(path, text_source [, options])`: writes a tiny random-init model folder.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::cast::as_string_array;
use datafusion::common::{plan_err, DataFusionError, Result};

use super::error::{exec_error, plan_error};
use super::experiment_source::{lazy_table, read_source};
use super::{string_arg, TableFunctionDoc};
use crate::lm::tiny::{create_tiny_model, TinySpec};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "tiny_model",
    syntax: "tiny_model(path, text_source [, options])",
    description: "Writes a randomly initialised Qwen2-architecture model to the folder path, in the Hugging Face \
layout (config.json, model.safetensors, tokenizer.json, tokenizer_config.json with a ChatML chat template, \
generation_config.json), with a byte-level BPE tokenizer trained on the text of text_source (a table name or a \
query; its `text` column, else every string column of a row joined by newlines). An existing folder is replaced. \
options is a JSON object: vocab_size (4096), hidden_size (256), num_hidden_layers (5), num_attention_heads (4), \
num_key_value_heads (2), intermediate_size (768), max_position_embeddings (2048), seed (42); the defaults make \
about 5 M parameters. Returns one row: path, parameters, vocab_size.",
    example: "SELECT * FROM tiny_model('models/tiny', 'SELECT question AS text FROM gsm8k.items');",
};

#[derive(Debug, Default)]
pub struct TinyModel;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("parameters", DataType::UInt64, false),
        Field::new("vocab_size", DataType::UInt64, false),
    ]))
}

/// The texts of a batch: its `text` column, or all string columns of a row joined.
fn texts_of(batch: &RecordBatch, out: &mut Vec<String>) -> Result<()> {
    let schema = batch.schema();
    let columns: Vec<usize> = match schema.index_of("text") {
        Ok(i) => vec![i],
        Err(_) => (0..schema.fields().len())
            .filter(|&i| {
                matches!(
                    schema.field(i).data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                )
            })
            .collect(),
    };
    if columns.is_empty() {
        return plan_err!("tiny_model: the text source has no `text` column and no string column");
    }
    let strings: Vec<StringArray> = columns
        .iter()
        .map(|&i| {
            let array = cast(batch.column(i), &DataType::Utf8)?;
            Ok(as_string_array(&array)?.clone())
        })
        .collect::<Result<_>>()?;
    for row in 0..batch.num_rows() {
        let parts: Vec<&str> = strings
            .iter()
            .filter(|a| a.is_valid(row))
            .map(|a| a.value(row))
            .collect();
        out.push(parts.join("\n"));
    }
    Ok(())
}

impl TableFunctionImpl for TinyModel {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=3)?;
        let path = PathBuf::from(string_arg(DOC.name, exprs, 0, "path")?);
        let source = string_arg(DOC.name, exprs, 1, "text_source")?;
        let spec: TinySpec = if exprs.len() == 3 {
            let json = string_arg(DOC.name, exprs, 2, "options")?;
            crate::options::parse(&json).map_err(|e| plan_error(DOC.name, e))?
        } else {
            TinySpec::default()
        };
        Ok(lazy_table(schema(), move |ctx| {
            let (source, path, spec) = (source.clone(), path.clone(), spec.clone());
            async move {
                let mut texts = Vec::new();
                for batch in read_source(DOC.name, &ctx, &source).await? {
                    texts_of(&batch, &mut texts)?;
                }
                let written = path.clone();
                let made =
                    tokio::task::spawn_blocking(move || create_tiny_model(&written, &texts, &spec))
                        .await
                        .map_err(|e| DataFusionError::External(Box::new(e)))?
                        .map_err(|e| exec_error("tiny_model", e))?;
                Ok(RecordBatch::try_new(
                    schema(),
                    vec![
                        Arc::new(StringArray::from(vec![path.display().to_string()])),
                        Arc::new(UInt64Array::from(vec![made.parameters as u64])),
                        Arc::new(UInt64Array::from(vec![made.vocab_size as u64])),
                    ],
                )?)
            }
        }))
    }
}
