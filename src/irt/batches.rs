//! From Arrow record batches of responses to one response matrix per benchmark (or one
//! joint matrix), and the fits of them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::error::{IrtError, Result};
use super::{fit, Fit, FitOptions, MatrixBuilder, ResponseMatrix};

/// One fitted benchmark (`None` for a source without a benchmark column).
pub struct BenchmarkFit {
    pub benchmark: Option<String>,
    pub matrix: ResponseMatrix,
    pub fit: Fit,
}

fn text(batch: &RecordBatch, name: &'static str, row0: usize) -> Result<Option<StringArray>> {
    let Ok(index) = batch.schema().index_of(name) else {
        return Ok(None);
    };
    let column = cast(batch.column(index), &DataType::Utf8)
        .map_err(|e| IrtError::Invalid(format!("column `{name}` cannot be read as text: {e}")))?;
    let column = column.as_string::<i32>().clone();
    if let Some(i) = (0..column.len()).find(|&i| column.is_null(i)) {
        return Err(IrtError::NullKey {
            place: format!("source row {}", row0 + i + 1),
            column: name,
        });
    }
    Ok(Some(column))
}

/// Groups responses by benchmark (all in one matrix when `joint`, with items keyed
/// `benchmark/item_id`). The source needs `model_id`, `item_id`, `correct` and, optionally,
/// `benchmark`.
pub fn matrices(
    batches: &[RecordBatch],
    joint: bool,
) -> Result<Vec<(Option<String>, ResponseMatrix)>> {
    let mut builders: BTreeMap<Option<String>, MatrixBuilder> = BTreeMap::new();
    let mut row0 = 0;
    for batch in batches {
        let schema = batch.schema();
        for needed in ["model_id", "item_id", "correct"] {
            if schema.index_of(needed).is_err() {
                let present: Vec<&str> =
                    schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(IrtError::Invalid(format!(
                    "the source has no column `{needed}` (columns: {}); it needs model_id, item_id, correct and optionally benchmark",
                    present.join(", ")
                )));
            }
        }
        let models = text(batch, "model_id", row0)?.expect("checked");
        let items = text(batch, "item_id", row0)?.expect("checked");
        let benchmarks = text(batch, "benchmark", row0)?;
        let correct = batch.column(schema.index_of("correct").expect("checked"));
        let correct = match correct.data_type() {
            DataType::Boolean => correct.as_boolean().clone(),
            t if t.is_integer() || t.is_floating() => {
                let f = cast(correct, &DataType::Float64)
                    .map_err(|e| IrtError::Invalid(e.to_string()))?;
                let f = f.as_primitive::<arrow::datatypes::Float64Type>();
                if let Some(i) =
                    (0..f.len()).find(|&i| f.is_valid(i) && f.value(i) != 0.0 && f.value(i) != 1.0)
                {
                    return Err(IrtError::Invalid(format!(
                        "source row {}: `correct` must be 0 or 1, found {}",
                        row0 + i + 1,
                        f.value(i)
                    )));
                }
                cast(correct, &DataType::Boolean)
                    .map_err(|e| IrtError::Invalid(e.to_string()))?
                    .as_boolean()
                    .clone()
            }
            other => {
                return Err(IrtError::Invalid(format!(
                    "column `correct` has type {other}; expected boolean or 0/1"
                )))
            }
        };
        for i in 0..batch.num_rows() {
            if correct.is_null(i) {
                return Err(IrtError::NullResponse {
                    place: format!("source row {}", row0 + i + 1),
                });
            }
            let benchmark = benchmarks.as_ref().map(|b| b.value(i));
            let (key, item) = match (joint, benchmark) {
                (true, Some(b)) => (None, format!("{b}/{}", items.value(i))),
                (_, b) => (b.map(str::to_string), items.value(i).to_string()),
            };
            builders
                .entry(key)
                .or_default()
                .push(models.value(i), &item, correct.value(i));
        }
        row0 += batch.num_rows();
    }
    if builders.is_empty() {
        return Err(IrtError::Empty("irt source".into()));
    }
    builders
        .into_iter()
        .map(|(benchmark, b)| {
            let name = benchmark.clone().unwrap_or_else(|| "the source".into());
            Ok((benchmark, b.build(&name)?))
        })
        .collect()
}

/// Fits every matrix, one after another (each fit is parallel inside).
pub fn fit_all(
    batches: &[RecordBatch],
    joint: bool,
    options: &FitOptions,
) -> Result<Vec<BenchmarkFit>> {
    matrices(batches, joint)?
        .into_iter()
        .map(|(benchmark, matrix)| {
            let fit = fit(&matrix, options)?;
            Ok(BenchmarkFit {
                benchmark,
                matrix,
                fit,
            })
        })
        .collect()
}
