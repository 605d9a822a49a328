//! `gap_profile(task_source, base_model [, options])`: the generalization matrix read by the
//! distance between the bin trained on and the bin evaluated.

use std::sync::Arc;

use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::experiment_source::lazy_table;
use super::generalization_matrix::{parse_matrix_call, run_matrix};
use super::TableFunctionDoc;
use crate::experiment::gap_profile::{direction, gap_profile, GapRow};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "gap_profile",
    syntax: "gap_profile(task_source, base_model [, options])",
    description: "The paper's question with intervals: runs (or reuses from the run store) the same study as \
generalization_matrix with the same arguments and returns, per signed gap = eval_bin - train_bin (positive: \
trained on easier items than evaluated), one row with measure 'mean_delta', gap, direction ('trained easier', \
'same bin', 'trained harder'), n_cells and the mean delta of those cells as estimate; then one row with measure \
'slope_per_bin' (gap and direction NULL): the least-squares slope of delta against |gap| over every cell. \
ci_low and ci_high are percentile bootstrap intervals at the `ci` level from `bootstrap` resamples (seeded by \
`seed`) that resample each training bin's seeds, each eval bin's items (the same items for every cell of the \
bin), then the cells. Options as generalization_matrix's.",
    example: "SELECT * FROM gap_profile('task', 'models/tiny', '{\"n_bins\": 3, \"train\": {\"epochs\": 2}}');",
};

#[derive(Debug, Default)]
pub struct GapProfile;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("measure", DataType::Utf8, false),
        Field::new("gap", DataType::Int64, true),
        Field::new("direction", DataType::Utf8, true),
        Field::new("n_cells", DataType::UInt64, false),
        Field::new("estimate", DataType::Float64, false),
        Field::new("ci_low", DataType::Float64, true),
        Field::new("ci_high", DataType::Float64, true),
    ]))
}

fn batch(rows: &[GapRow]) -> Result<RecordBatch> {
    // An interval with no defined resample (NaN) is unknown: NULL.
    let known = |v: f64| (!v.is_nan()).then_some(v);
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.measure.name()),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.gap))),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.gap.map(direction)),
            )),
            Arc::new(UInt64Array::from_iter_values(
                rows.iter().map(|r| r.n_cells as u64),
            )),
            Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|r| r.estimate),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| known(r.ci_low)),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|r| known(r.ci_high)),
            )),
        ],
    )?)
}

impl TableFunctionImpl for GapProfile {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (source, model, options) = parse_matrix_call(&DOC, &args)?;
        Ok(lazy_table(schema(), move |ctx| {
            let (model, source, options) = (model.clone(), source.clone(), options.clone());
            async move {
                let (resamples, level, seed) = (options.bootstrap, options.ci, options.seed);
                let result = run_matrix(DOC.name, &ctx, &source, model, options).await?;
                batch(&gap_profile(&result.cells, resamples, level, seed))
            }
        }))
    }
}
