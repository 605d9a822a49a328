//! `plot_gap_profile(source, path_stem [, title])`: the gap profile's picture.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{DataFusionError, Result};

use super::error::exec_error;
use super::experiment_source::{lazy_table, read_source};
use super::plot_matrix::{files_batch, files_schema, parse_plot_call};
use super::TableFunctionDoc;
use crate::plot::{write_gap_profile, GapProfilePoints};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "plot_gap_profile",
    syntax: "plot_gap_profile(source, path_stem [, title])",
    description: "Draws a gap_profile result (source: a table name or a query with measure, gap, estimate, ci_low \
and ci_high) as <path_stem>.svg/.png: the mean delta at each signed gap (eval bin - train bin) as a line, its \
interval as a band, zero marked, and the slope of delta against |gap| with its interval in the caption. Returns \
one row per file written (file).",
    example: "SELECT * FROM plot_gap_profile('profile', 'out/demo/gap_profile');",
};

#[derive(Debug, Default)]
pub struct PlotGapProfile;

impl TableFunctionImpl for PlotGapProfile {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let (source, stem, title) = parse_plot_call(
            &DOC,
            &args,
            "Accuracy change vs zero-shot by train/eval gap",
        )?;
        Ok(lazy_table(files_schema(), move |ctx| {
            let (source, stem, title) = (source.clone(), stem.clone(), title.clone());
            async move {
                let batches = read_source(DOC.name, &ctx, &source).await?;
                let profile = GapProfilePoints::from_batches(&batches).ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "plot_gap_profile: {source} needs measure, gap, estimate, ci_low and ci_high \
                         columns with at least one 'mean_delta' row (a gap_profile result)"
                    ))
                })?;
                let files = write_gap_profile(&profile, &stem, &title)
                    .map_err(|e| exec_error("plot_gap_profile", e))?;
                files_batch(&files)
            }
        }))
    }
}
