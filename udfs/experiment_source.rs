//! What the model and experiment table functions share: argument parsing, reading a source
//! (table name or query) into rows, and running the blocking work so that dropping the query
//! stops it.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::Session;
use datafusion::common::cast::{as_list_array, as_string_array};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use super::error::{exec_error, plan_error};
use super::source::source_frame;
use super::string_arg;
use crate::experiment::{Cancel, ExperimentError};

/// `(first, second [, options])` of an experiment function (a model folder and a source, in
/// the function's order): the options as JSON (an object).
pub struct ExperimentCall {
    pub first: String,
    pub second: String,
    pub options: serde_json::Value,
}

impl ExperimentCall {
    /// `names`: the two string arguments' names, for errors.
    pub fn parse(function: &str, syntax: &str, names: [&str; 2], exprs: &[Expr]) -> Result<Self> {
        if !(2..=3).contains(&exprs.len()) {
            return plan_err!("{syntax} expects 2 or 3 arguments, got {}", exprs.len());
        }
        let first = string_arg(function, exprs, 0, names[0])?;
        let second = string_arg(function, exprs, 1, names[1])?;
        let options = match exprs.len() {
            3 => crate::options::parse_object(&string_arg(function, exprs, 2, "options")?)
                .map_err(|e| plan_error(function, e))?,
            _ => serde_json::json!({}),
        };
        Ok(Self {
            first,
            second,
            options,
        })
    }
}

/// The rows of a source (a table name or a read-only query).
pub async fn read_source(
    function: &str,
    ctx: &SessionContext,
    source: &str,
) -> Result<Vec<RecordBatch>> {
    let df = source_frame(ctx, function, source).await?;
    let mut stream = df.execute_stream().await?;
    let mut out = Vec::new();
    while let Some(batch) = stream.next().await {
        out.push(batch?);
    }
    Ok(out)
}

/// A column of a batch as text (any type cast to Utf8), or an error naming it.
pub fn text_column(function: &str, batch: &RecordBatch, name: &str) -> Result<Option<StringArray>> {
    let Ok(index) = batch.schema().index_of(name) else {
        return Ok(None);
    };
    let array = cast(batch.column(index), &DataType::Utf8).map_err(|e| {
        DataFusionError::Execution(format!(
            "{function}: column `{name}` cannot be read as text: {e}"
        ))
    })?;
    Ok(Some(as_string_array(&array)?.clone()))
}

/// Like [`text_column`], but the column must exist and hold no NULL.
pub fn required_text(
    function: &str,
    batch: &RecordBatch,
    name: &str,
    row_offset: usize,
) -> Result<StringArray> {
    let Some(array) = text_column(function, batch, name)? else {
        let have: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        return Err(DataFusionError::Execution(format!(
            "{function}: the source has no `{name}` column (it has: {})",
            have.join(", ")
        )));
    };
    if let Some(row) = (0..array.len()).find(|&r| array.is_null(r)) {
        return Err(DataFusionError::Execution(format!(
            "{function}: `{name}` is NULL in row {} of the source",
            row_offset + row + 1
        )));
    }
    Ok(array)
}

/// The `choices` column (a list of strings) if the source has one.
pub fn choices_column(
    function: &str,
    batch: &RecordBatch,
) -> Result<Option<Vec<Option<Vec<String>>>>> {
    let Ok(index) = batch.schema().index_of("choices") else {
        return Ok(None);
    };
    let target = DataType::List(Arc::new(datafusion::arrow::datatypes::Field::new(
        "item",
        DataType::Utf8,
        true,
    )));
    let array: ArrayRef = cast(batch.column(index), &target).map_err(|e| {
        DataFusionError::Execution(format!(
            "{function}: column `choices` must be a list of strings: {e}"
        ))
    })?;
    let list = as_list_array(&array)?;
    let strings = as_string_array(list.values())?;
    let offsets = list.value_offsets();
    Ok(Some(
        (0..list.len())
            .map(|r| {
                list.is_valid(r).then(|| {
                    (offsets[r] as usize..offsets[r + 1] as usize)
                        .map(|k| strings.value(k).to_string())
                        .collect()
                })
            })
            .collect(),
    ))
}

pub use crate::cancel::CancelOnDrop;

/// Runs `work` on a blocking thread; dropping the returned future stops the work at its next
/// check of `cancel`.
pub async fn run_blocking<T: Send + 'static>(
    function: &'static str,
    cancel: Cancel,
    work: impl FnOnce(Cancel) -> Result<T, ExperimentError> + Send + 'static,
) -> Result<T> {
    let guard = CancelOnDrop(cancel.clone());
    let out = tokio::task::spawn_blocking(move || work(cancel))
        .await
        .map_err(|e| DataFusionError::External(Box::new(e)))?
        .map_err(|e| exec_error(function, e));
    // Finished: the guard's flag no longer matters.
    drop(guard);
    out
}

/// The session as a context (for reading sources).
pub fn session_context(state: &dyn Session) -> Result<SessionContext> {
    super::irt_source::context(state)
}

/// A table whose one batch `work(session)` computes when the query executes.
pub fn lazy_table<F, Fut>(
    schema: datafusion::arrow::datatypes::SchemaRef,
    work: F,
) -> Arc<dyn datafusion::catalog::TableProvider>
where
    F: Fn(SessionContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<RecordBatch>> + Send + 'static,
{
    let work = Arc::new(work);
    Arc::new(super::lazy::LazyTable::new(
        schema,
        Arc::new(move |state: &dyn Session| {
            let ctx = session_context(state)?;
            let work = work.clone();
            let job: super::lazy::Job = Arc::new(move || {
                let (ctx, work) = (ctx.clone(), work.clone());
                Box::pin(async move { work(ctx).await })
            });
            Ok(job)
        }),
    ))
}
