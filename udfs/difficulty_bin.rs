//! `difficulty_bin(difficulty, n [, tie_key]) OVER (...)`: the paper's equal-size difficulty bins.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, Int32Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::Result;
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Documentation, PartitionEvaluator, Signature, WindowUDFImpl};

use super::{
    coerce_ranking_args, doc_section, input_types, lenient, listed_signature, partition_constant,
    rank_partition,
};
use crate::stats;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DifficultyBin {
    signature: Signature,
}

impl Default for DifficultyBin {
    fn default() -> Self {
        Self {
            signature: listed_signature(vec![
                vec![DataType::Float64, DataType::Int64],
                vec![DataType::Float64, DataType::Int64, DataType::Utf8],
            ]),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Equal-size difficulty bin 0..n-1 of an item within its window partition, with the paper's \
         semantics: bin k holds the items whose difficulty_quantile q satisfies k/n <= q < (k+1)/n, \
         and the top bin includes q = 1. Bin 0 is the easiest. Ties are broken by tie_key, then by \
         the window's row order, so `OVER (PARTITION BY benchmark ORDER BY difficulty, item_id)` or \
         an explicit item_id tie_key makes the bins deterministic.",
        "difficulty_bin(difficulty, n [, tie_key]) OVER (PARTITION BY benchmark)",
    )
    .with_argument("difficulty", "Item difficulty; higher is harder.")
    .with_argument("n", "Number of bins, a positive integer (the paper uses 10).")
    .with_argument("tie_key", "Optional deterministic tie-break, usually item_id.")
    .with_sql_example(
        "SELECT item_id, difficulty_bin(difficulty, 10, item_id) OVER (PARTITION BY benchmark) AS bin\nFROM item_difficulty;",
    )
    .with_related_udf("difficulty_quantile")
    .build()
});

impl WindowUDFImpl for DifficultyBin {
    fn name(&self) -> &str {
        "difficulty_bin"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        lenient(coerce_ranking_args(self.name(), true, arg_types), arg_types)
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(BinEvaluator))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        coerce_ranking_args(self.name(), true, &input_types(&field_args))?;
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Int32,
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}

#[derive(Debug)]
struct BinEvaluator;

impl PartitionEvaluator for BinEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        let n_bins = if num_rows == 0 {
            1
        } else {
            partition_constant("difficulty_bin", &values[1], "n")? as usize
        };
        let ranked = rank_partition("difficulty_bin", &values[0], values.get(2), num_rows)?;
        let out: Int32Array = ranked
            .positions
            .iter()
            .map(|p| p.map(|p| stats::equal_size_bin(p, ranked.count, n_bins) as i32))
            .collect();
        Ok(Arc::new(out))
    }
}
