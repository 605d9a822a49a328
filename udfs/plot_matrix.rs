//! `plot_matrix(source, path_stem [, title])`: the paper's heatmap of a matrix result.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result};

use super::error::exec_error;
use super::experiment_source::{lazy_table, read_source};
use super::{string_arg, TableFunctionDoc};
use crate::plot::{write_matrix, MatrixGrid};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "plot_matrix",
    syntax: "plot_matrix(source, path_stem [, title])",
    description: "Draws a generalization matrix (source: a table name or a query with train_bin, eval_bin, delta \
and optionally zero_shot_accuracy, such as a generalization_matrix result) as the paper's heatmap, \
<path_stem>_heatmap.svg/.png (rows: train bin, columns: eval bin, diverging colours centred on zero, the delta \
in each cell), and per-bin zero-shot accuracy as bars, <path_stem>_zero_shot.svg/.png. Returns one row per \
file written (file). Text needs a TrueType font: a system one, or $CROSSDIFF_FONT.",
    example: "SELECT * FROM plot_matrix('matrix', 'out/demo/matrix', 'Arithmetic, tiny model');",
};

#[derive(Debug, Default)]
pub struct PlotMatrix;

/// The `(file)` table the plot functions return.
pub(crate) fn files_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("file", DataType::Utf8, false)]))
}

pub(crate) fn files_batch(files: &[PathBuf]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        files_schema(),
        vec![Arc::new(StringArray::from_iter_values(
            files.iter().map(|f| f.display().to_string()),
        ))],
    )?)
}

/// The arguments `(source, path_stem [, title])` of a plot function.
pub(crate) fn parse_plot_call(
    doc: &TableFunctionDoc,
    args: &TableFunctionArgs,
    default_title: &str,
) -> Result<(String, PathBuf, String)> {
    let exprs = args.exprs();
    doc.check_arg_count(exprs, 2..=3)?;
    let source = string_arg(doc.name, exprs, 0, "source")?;
    let stem = PathBuf::from(string_arg(doc.name, exprs, 1, "path_stem")?);
    let title = match exprs.len() {
        3 => string_arg(doc.name, exprs, 2, "title")?,
        _ => default_title.to_string(),
    };
    Ok((source, stem, title))
}

impl TableFunctionImpl for PlotMatrix {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (source, stem, title) = parse_plot_call(&DOC, &args, "Accuracy change vs zero-shot")?;
        Ok(lazy_table(files_schema(), move |ctx| {
            let (source, stem, title) = (source.clone(), stem.clone(), title.clone());
            async move {
                let batches = read_source(DOC.name, &ctx, &source).await?;
                let grid = MatrixGrid::from_batches(&batches).ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "plot_matrix: {source} needs train_bin, eval_bin and delta columns with at \
                         least one row (a generalization_matrix result)"
                    ))
                })?;
                let files =
                    write_matrix(&grid, &stem, &title).map_err(|e| exec_error("plot_matrix", e))?;
                files_batch(&files)
            }
        }))
    }
}
