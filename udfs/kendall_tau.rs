//! `kendall_tau(x, y)`: Kendall's tau-b rank correlation.

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
pub struct KendallTau {
    signature: Signature,
}

impl Default for KendallTau {
    fn default() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Kendall's tau-b rank correlation of x and y, corrected for ties on either side (as \
         scipy.stats.kendalltau), computed in O(n log n). Rows where either side is NULL or NaN are \
         skipped; NULL when fewer than two pairs remain or a side is constant.",
        "kendall_tau(x, y)",
    )
    .with_argument("x", "Numeric expression, e.g. IRT difficulty.")
    .with_argument("y", "Numeric expression, e.g. a human difficulty proxy.")
    .with_sql_example("SELECT benchmark, kendall_tau(difficulty, n_solution_steps) FROM items GROUP BY benchmark;")
    .with_related_udf("spearman_corr")
    .build()
});

impl AggregateUDFImpl for KendallTau {
    fn name(&self) -> &str {
        "kendall_tau"
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
        Ok(Box::new(PairsAccumulator::new(stats::kendall_tau_b)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
