//! `crossdiff_functions()`: every crossdiff function with its documentation, as a table.

use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::MemTable;

use super::TableFunctionDoc;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "crossdiff_functions",
    syntax: "crossdiff_functions()",
    description: "Every crossdiff SQL function, one row each: name, kind ('scalar' | 'aggregate' | 'window' | \
'table'), syntax, description and example. SHOW FUNCTIONS and information_schema.routines list the same \
functions; DataFusion keeps no description for table functions, so this table is where theirs are.",
    example: "SELECT name, syntax FROM crossdiff_functions() WHERE kind = 'table' ORDER BY name;",
};

#[derive(Debug, Default)]
pub struct CrossdiffFunctions;

impl TableFunctionImpl for CrossdiffFunctions {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        DOC.check_arg_count(args.exprs(), 0..=0)?;
        let docs = super::function_docs();
        let column = |get: fn(&super::FunctionDoc) -> &str| {
            Arc::new(StringArray::from_iter_values(docs.iter().map(get))) as _
        };
        let schema = Arc::new(Schema::new(
            ["name", "kind", "syntax", "description", "example"]
                .map(|n| Field::new(n, DataType::Utf8, false))
                .to_vec(),
        ));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                column(|d| &d.name),
                column(|d| d.kind),
                column(|d| &d.syntax),
                column(|d| &d.description),
                column(|d| &d.example),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
