//! `arithmetic_items(per_level, max_digits [, seed])`: the synthetic arithmetic benchmark.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;
use datafusion::datasource::MemTable;

use super::{positive_int_arg, TableFunctionDoc};
use crate::data::arithmetic::{arithmetic_items, items_batch};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "arithmetic_items",
    syntax: "arithmetic_items(per_level, max_digits [, seed])",
    description: "A synthetic benchmark whose difficulty small transformers feel: per_level additions and \
per_level subtractions (non-negative results) for each operand length 1..max_digits, seeded (default 42). \
Columns: benchmark ('arithmetic'), item_id ('add-3-017'), question ('Q: 482 + 77 ='), answer, n_digits, \
n_carries (carries or borrows of the column algorithm), subtraction. n_digits and n_carries are the \
human-style difficulty proxies.",
    example: "SELECT n_digits, avg(n_carries) FROM arithmetic_items(50, 5) GROUP BY n_digits ORDER BY n_digits;",
};

#[derive(Debug, Default)]
pub struct ArithmeticItems;

impl TableFunctionImpl for ArithmeticItems {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=3)?;
        let per_level = positive_int_arg(DOC.name, exprs, 0, "per_level", 100_000)? as usize;
        let max_digits = positive_int_arg(DOC.name, exprs, 1, "max_digits", 18)? as u32;
        let seed = if exprs.len() == 3 {
            positive_int_arg(DOC.name, exprs, 2, "seed", i64::MAX)? as u64
        } else {
            42
        };
        // Generated at planning time: cheap, deterministic and bounded by the arguments.
        let batch = items_batch(&arithmetic_items(per_level, max_digits, seed));
        let schema = batch.schema();
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
