//! `difficulty_bin_stability(difficulty, difficulty_se, n [, draws]) OVER (...)`: how likely an
//! item's difficulty bin is to hold given the uncertainty of the difficulties.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{exec_err, plan_err, Result};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{Documentation, PartitionEvaluator, Signature, WindowUDFImpl};

use super::{doc_section, input_types, lenient, listed_signature, partition_constant};
use crate::stats;

const NAME: &str = "difficulty_bin_stability";

/// Fixed seed: the same partition always gets the same stabilities.
const SEED: u64 = 42;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DifficultyBinStability {
    signature: Signature,
}

impl Default for DifficultyBinStability {
    fn default() -> Self {
        Self {
            signature: listed_signature(vec![
                vec![DataType::Float64, DataType::Float64, DataType::Int64],
                vec![
                    DataType::Float64,
                    DataType::Float64,
                    DataType::Int64,
                    DataType::Int64,
                ],
            ]),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "The probability that an item stays in its difficulty_bin when every difficulty of the \
         window partition is redrawn from N(difficulty, difficulty_se^2), re-ranked and re-binned \
         (seeded draws; ties by the window's row order). Use irt_fit's difficulty_se (jml, mml) or \
         posterior sd (vi). 1 for items far from bin edges with small errors, about 0.5 for an \
         item on an edge.",
        "difficulty_bin_stability(difficulty, difficulty_se, n [, draws]) OVER (PARTITION BY benchmark)",
    )
    .with_argument("difficulty", "Item difficulty; higher is harder.")
    .with_argument("difficulty_se", "Its standard error, non-negative.")
    .with_argument("n", "Number of bins, as for difficulty_bin.")
    .with_argument("draws", "Redraws (default 1000).")
    .with_sql_example(
        "SELECT benchmark, avg(CASE WHEN s >= 0.9 THEN 1.0 ELSE 0.0 END) AS stable\nFROM (SELECT benchmark, difficulty_bin_stability(difficulty, difficulty_se, 10) OVER (PARTITION BY benchmark ORDER BY item_id) AS s\n      FROM irt_fit('responses', '1pl', 'jml')) GROUP BY benchmark;",
    )
    .with_related_udf("difficulty_bin")
    .build()
});

impl WindowUDFImpl for DifficultyBinStability {
    fn name(&self) -> &str {
        "difficulty_bin_stability"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        lenient(check_args(arg_types), arg_types)
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        Ok(Box::new(StabilityEvaluator))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        check_args(&input_types(&field_args))?;
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

/// Argument types: difficulty, difficulty_se (numeric), n, [draws] (integers).
fn check_args(arg_types: &[DataType]) -> Result<Vec<DataType>> {
    let names = ["difficulty", "difficulty_se", "n", "draws"];
    if !(3..=4).contains(&arg_types.len()) {
        return plan_err!(
            "difficulty_bin_stability expects 3 or 4 arguments ({}), got {}",
            names.join(", "),
            arg_types.len()
        );
    }
    let mut out = Vec::with_capacity(arg_types.len());
    for (k, t) in arg_types.iter().enumerate() {
        let numeric = t.is_numeric() || matches!(t, DataType::Null);
        let integer = t.is_integer() || matches!(t, DataType::Null);
        if (k < 2 && !numeric) || (k >= 2 && !integer) {
            return plan_err!(
                "difficulty_bin_stability: argument {} ({}) must be {}, got {t}",
                k + 1,
                names[k],
                if k < 2 { "numeric" } else { "an integer" }
            );
        }
        out.push(if k < 2 {
            DataType::Float64
        } else {
            DataType::Int64
        });
    }
    Ok(out)
}

#[derive(Debug)]
struct StabilityEvaluator;

impl PartitionEvaluator for StabilityEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], num_rows: usize) -> Result<ArrayRef> {
        if num_rows == 0 {
            return Ok(Arc::new(Float64Array::from(Vec::<f64>::new())));
        }
        let n_bins = partition_constant(NAME, &values[2], "n")? as usize;
        let draws = match values.get(3) {
            Some(d) => partition_constant(NAME, d, "draws")?,
            None => stats::DEFAULT_STABILITY_DRAWS as i64,
        };
        if draws > 1_000_000 {
            return exec_err!(
                "difficulty_bin_stability: draws must be at most 1000000, got {draws}"
            );
        }
        let d = values[0].as_primitive::<Float64Type>();
        let se = values[1].as_primitive::<Float64Type>();
        // Rows with a NULL difficulty take no part (and get NULL), as in difficulty_bin.
        let rows: Vec<usize> = (0..num_rows).filter(|&i| d.is_valid(i)).collect();
        for &i in &rows {
            if d.value(i).is_nan() {
                return exec_err!(
                    "difficulty_bin_stability: difficulty is NaN at row {} of the window partition",
                    i + 1
                );
            }
            if !(se.is_valid(i) && se.value(i) >= 0.0 && se.value(i).is_finite()) {
                return exec_err!(
                    "difficulty_bin_stability: difficulty_se must be finite and non-negative, got {} at row {} of the window partition",
                    if se.is_valid(i) { se.value(i).to_string() } else { "NULL".into() },
                    i + 1
                );
            }
        }
        let mean: Vec<f64> = rows.iter().map(|&i| d.value(i)).collect();
        let sd: Vec<f64> = rows.iter().map(|&i| se.value(i)).collect();
        let p = stats::bin_stability(&mean, &sd, n_bins, draws as usize, SEED);
        let mut out = vec![None; num_rows];
        for (k, &i) in rows.iter().enumerate() {
            out[i] = Some(p[k]);
        }
        Ok(Arc::new(Float64Array::from(out)))
    }
}
