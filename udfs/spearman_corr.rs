//! `spearman_corr(x, y)`: Spearman's rank correlation, average ranks for ties.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};

use super::paired::{state_fields, PairsAccumulator};
use super::{coerce_numeric, doc_section};
use crate::stats;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SpearmanCorr {
    signature: Signature,
}

impl Default for SpearmanCorr {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Spearman's rank correlation of x and y: the Pearson correlation of their ranks, tied values \
         sharing the average of their ranks (as scipy.stats.spearmanr). Rows where either side is NULL \
         or NaN are skipped; NULL when fewer than two pairs remain or a side is constant.",
        "spearman_corr(x, y)",
    )
    .with_argument("x", "Numeric expression, e.g. IRT difficulty.")
    .with_argument("y", "Numeric expression, e.g. a human difficulty proxy.")
    .with_sql_example("SELECT benchmark, spearman_corr(difficulty, n_solution_steps) FROM items GROUP BY benchmark;")
    .with_related_udf("kendall_tau")
    .build()
});

impl AggregateUDFImpl for SpearmanCorr {
    fn name(&self) -> &str {
        "spearman_corr"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        coerce_numeric(self.name(), &["x", "y"], 2, arg_types)
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PairsAccumulator::new(stats::spearman)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
