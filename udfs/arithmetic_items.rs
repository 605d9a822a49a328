//! `arithmetic_items(per_level, max_digits [, seed])`: the synthetic arithmetic benchmark.

use std::sync::Arc;

use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result, ScalarValue};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;

use super::TableFunctionDoc;
use crate::data::arithmetic::arithmetic_items;

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

fn positive(exprs: &[Expr], index: usize, name: &str, max: i64) -> Result<i64> {
    match exprs.get(index) {
        Some(Expr::Literal(ScalarValue::Int64(Some(n)), _)) if (1..=max).contains(n) => Ok(*n),
        Some(other) => plan_err!(
            "arithmetic_items: argument {} ({name}) must be an integer from 1 to {max}, got {other}",
            index + 1
        ),
        None => plan_err!("arithmetic_items: missing argument {} ({name})", index + 1),
    }
}

impl TableFunctionImpl for ArithmeticItems {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if !(2..=3).contains(&exprs.len()) {
            return plan_err!(
                "{} expects 2 or 3 arguments, got {}",
                DOC.syntax,
                exprs.len()
            );
        }
        let per_level = positive(exprs, 0, "per_level", 100_000)? as usize;
        let max_digits = positive(exprs, 1, "max_digits", 18)? as u32;
        let seed = if exprs.len() == 3 {
            positive(exprs, 2, "seed", i64::MAX)? as u64
        } else {
            42
        };
        // Generated at planning time: cheap, deterministic and bounded by the arguments.
        let items = arithmetic_items(per_level, max_digits, seed);
        let schema = Arc::new(Schema::new(vec![
            Field::new("benchmark", DataType::Utf8, false),
            Field::new("item_id", DataType::Utf8, false),
            Field::new("question", DataType::Utf8, false),
            Field::new("answer", DataType::Utf8, false),
            Field::new("n_digits", DataType::UInt32, false),
            Field::new("n_carries", DataType::UInt32, false),
            Field::new("subtraction", DataType::Boolean, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    items.iter().map(|_| "arithmetic"),
                )),
                Arc::new(StringArray::from_iter_values(
                    items.iter().map(|i| i.item_id.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    items.iter().map(|i| i.question.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    items.iter().map(|i| i.answer.as_str()),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    items.iter().map(|i| i.n_digits),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    items.iter().map(|i| i.n_carries),
                )),
                Arc::new(BooleanArray::from(
                    items.iter().map(|i| i.subtraction).collect::<Vec<_>>(),
                )),
            ],
        )?;
        Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
    }
}
