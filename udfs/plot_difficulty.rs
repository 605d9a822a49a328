//! `plot_difficulty(source, folder)`: difficulty histograms per benchmark.

use std::path::PathBuf;
use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::error::exec_error;
use super::experiment_source::{lazy_table, read_source};
use super::plot_matrix::{files_batch, files_schema};
use super::{string_arg, TableFunctionDoc};
use crate::plot::{difficulties_by_benchmark, write_difficulty};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "plot_difficulty",
    syntax: "plot_difficulty(source, folder)",
    description: "Draws the distribution of item difficulty (source: a table name or a query with a difficulty \
column and optionally benchmark, such as an irt_fit result) as one 20-bar histogram per benchmark, \
<folder>/difficulty_<benchmark>.svg/.png. Returns one row per file written (file).",
    example: "SELECT * FROM plot_difficulty('SELECT benchmark, difficulty FROM irt_fit(''responses'', ''1pl'', ''jml'')', 'out/plots');",
};

#[derive(Debug, Default)]
pub struct PlotDifficulty;

impl TableFunctionImpl for PlotDifficulty {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=2)?;
        let source = string_arg(DOC.name, exprs, 0, "source")?;
        let folder = PathBuf::from(string_arg(DOC.name, exprs, 1, "folder")?);
        Ok(lazy_table(files_schema(), move |ctx| {
            let (source, folder) = (source.clone(), folder.clone());
            async move {
                let batches = read_source(DOC.name, &ctx, &source).await?;
                let error = |e: crate::plot::PlotError| exec_error(DOC.name, e);
                let values = difficulties_by_benchmark(&batches).map_err(error)?;
                files_batch(&write_difficulty(&values, &folder).map_err(error)?)
            }
        }))
    }
}
