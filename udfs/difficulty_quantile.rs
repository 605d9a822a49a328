//! `difficulty_quantile(difficulty [, tie_key]) OVER (...)`: the paper's `1pl_quantile`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Documentation, PartitionEvaluator, Signature, WindowUDFImpl};

use super::{
    coerce_ranking_args, doc_section, input_types, lenient, listed_signature, rank_partition,
};
use crate::stats;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DifficultyQuantile {
    signature: Signature,
}

impl Default for DifficultyQuantile {
    fn default() -> Self {
        Self {
            signature: listed_signature(vec![
                vec![DataType::Float64],
                vec![DataType::Float64, DataType::Utf8],
            ]),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Quantile of an item's difficulty within its window partition, as the paper's `1pl_quantile`: \
         items are ordered by difficulty (ties broken by tie_key, then by the window's row order) and \
         the item at 0-based position p of N gets p / (N - 1): 0 for the easiest, 1 for the hardest. \
         NULL difficulties get NULL and are not counted.",
        "difficulty_quantile(difficulty [, tie_key]) OVER (PARTITION BY benchmark)",
    )
    .with_argument("difficulty", "Item difficulty (e.g. the IRT b parameter); higher is harder.")
    .with_argument("tie_key", "Optional deterministic tie-break, usually item_id.")
    .with_sql_example(
        "SELECT item_id, difficulty_quantile(difficulty, item_id) OVER (PARTITION BY benchmark) AS q\nFROM item_difficulty;",
    )
    .with_related_udf("difficulty_bin")
    .build()
});

impl WindowUDFImpl for DifficultyQuantile {
    fn name(&self) -> &str {
        "difficulty_quantile"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        lenient(
            coerce_ranking_args(self.name(), false, arg_types),
            arg_types,
        )
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(QuantileEvaluator))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        coerce_ranking_args(self.name(), false, &input_types(&field_args))?;
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Float64,
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[derive(Debug)]
struct QuantileEvaluator;

impl PartitionEvaluator for QuantileEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let tie_key = values.get(1);
        let ranked = rank_partition("difficulty_quantile", &values[0], tie_key, num_rows)?;
        let out: Float64Array = ranked
            .positions
            .iter()
            .map(|p| p.map(|p| stats::difficulty_quantile(p, ranked.count)))
            .collect();
        Ok(Arc::new(out))
    }
}
