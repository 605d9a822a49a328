//! From Arrow record batches of responses to one response matrix per benchmark (or one
//! joint matrix), and the fits of them.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::error::{IrtError, Result};
use super::{fit, Fit, FitOptions, MatrixBuilder, ResponseMatrix};

/// One fitted benchmark (`None` for a source without a benchmark column, or a joint fit).
pub struct BenchmarkFit {
    pub benchmark: Option<String>,
    pub matrix: ResponseMatrix,
    pub fit: Fit,
}

/// Between the benchmark and the item id in a joint fit's item keys: it sorts before every
/// other character (so keys sort by benchmark, then item) and no benchmark name holds it.
const JOINT_SEPARATOR: char = '\0';

impl BenchmarkFit {
    /// The benchmark and item id of item `index`.
    pub fn item(&self, index: usize) -> (Option<&str>, &str) {
        let key = self.matrix.items[index].as_str();
        match &self.benchmark {
            Some(b) => (Some(b.as_str()), key),
            None => match key.split_once(JOINT_SEPARATOR) {
                Some((b, i)) => (Some(b), i),
                None => (None, key),
            },
        }
    }
}

/// Reads string cells of any Arrow string layout without copying the column.
enum Text<'a> {
    Utf8(&'a arrow::array::StringArray),
    Large(&'a arrow::array::LargeStringArray),
    View(&'a arrow::array::StringViewArray),
    Cast(StringArray),
}

impl<'a> Text<'a> {
    /// A column the source may have.
    fn optional(batch: &'a RecordBatch, name: &'static str, row0: usize) -> Result<Option<Self>> {
        match batch.schema().index_of(name) {
            Ok(index) => Self::new(batch.column(index), name, row0).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn new(column: &'a arrow::array::ArrayRef, name: &'static str, row0: usize) -> Result<Self> {
        if let Some(i) = (0..column.len()).find(|&i| column.is_null(i)) {
            return Err(IrtError::NullKey {
                place: format!("source row {}", row0 + i + 1),
                column: name,
            });
        }
        Ok(match column.data_type() {
            DataType::Utf8 => Text::Utf8(column.as_string::<i32>()),
            DataType::LargeUtf8 => Text::Large(column.as_string::<i64>()),
            DataType::Utf8View => Text::View(column.as_string_view()),
            _ => {
                let cast = cast(column, &DataType::Utf8).map_err(|source| IrtError::Cast {
                    column: name,
                    to: "text",
                    source,
                })?;
                Text::Cast(cast.as_string::<i32>().clone())
            }
        })
    }

    #[inline]
    fn value(&self, i: usize) -> &str {
        match self {
            Text::Utf8(a) => a.value(i),
            Text::Large(a) => a.value(i),
            Text::View(a) => a.value(i),
            Text::Cast(a) => a.value(i),
        }
    }
}

/// The error for a source without column `needed`, listing the columns it has.
fn missing_column(batch: &RecordBatch, needed: &'static str) -> IrtError {
    let schema = batch.schema();
    IrtError::MissingColumn {
        needed,
        present: schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// Responses grouped by benchmark as they stream in (all in one matrix when `joint`, with
/// items keyed by benchmark and item id, see [`BenchmarkFit::item`]). The source needs `model_id`, `item_id`, `correct` and,
/// optionally, `benchmark`.
pub struct MatrixSet {
    joint: bool,
    builders: BTreeMap<Option<String>, MatrixBuilder>,
    rows: usize,
}

impl MatrixSet {
    pub fn new(joint: bool) -> Self {
        Self {
            joint,
            builders: BTreeMap::new(),
            rows: 0,
        }
    }

    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        // Every required column is found before any is read, so the first missing one is named.
        let column = |name: &'static str| match batch.schema().index_of(name) {
            Ok(index) => Ok(batch.column(index)),
            Err(_) => Err(missing_column(batch, name)),
        };
        let (models, items, correct) =
            (column("model_id")?, column("item_id")?, column("correct")?);
        let row0 = self.rows;
        let models = Text::new(models, "model_id", row0)?;
        let items = Text::new(items, "item_id", row0)?;
        let benchmarks = Text::optional(batch, "benchmark", row0)?;
        let correct_cast = |to: DataType, name: &'static str| {
            cast(correct, &to).map_err(|source| IrtError::Cast {
                column: "correct",
                to: name,
                source,
            })
        };
        let correct = match correct.data_type() {
            DataType::Boolean => correct.as_boolean().clone(),
            t if t.is_integer() || t.is_floating() => {
                let f = correct_cast(DataType::Float64, "numbers")?;
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
                correct_cast(DataType::Boolean, "booleans")?
                    .as_boolean()
                    .clone()
            }
            other => {
                return Err(IrtError::Invalid(format!(
                    "column `correct` has type {other}; expected boolean or 0/1"
                )))
            }
        };
        if let Some(i) = (0..correct.len()).find(|&i| correct.is_null(i)) {
            return Err(IrtError::NullResponse {
                place: format!("source row {}", row0 + i + 1),
            });
        }
        // Rows of one benchmark usually come together: keep its builder at hand.
        let mut current: Option<(Option<String>, MatrixBuilder)> = None;
        for i in 0..batch.num_rows() {
            let key = if self.joint {
                None
            } else {
                benchmarks.as_ref().map(|b| b.value(i))
            };
            if !matches!(&current, Some((k, _)) if k.as_deref() == key) {
                if let Some((k, b)) = current.take() {
                    self.builders.insert(k, b);
                }
                let k = key.map(str::to_string);
                let mut builder = self.builders.remove(&k).unwrap_or_default();
                builder.reserve(batch.num_rows() - i);
                current = Some((k, builder));
            }
            let builder = &mut current.as_mut().expect("set above").1;
            match (&benchmarks, self.joint) {
                (Some(b), true) => {
                    let benchmark = b.value(i);
                    if benchmark.contains(JOINT_SEPARATOR) {
                        return Err(IrtError::Invalid(format!(
                            "source row {}: the benchmark name holds a NUL character",
                            row0 + i + 1
                        )));
                    }
                    builder.push(
                        models.value(i),
                        &format!("{benchmark}{JOINT_SEPARATOR}{}", items.value(i)),
                        correct.value(i),
                    )
                }
                _ => builder.push(models.value(i), items.value(i), correct.value(i)),
            }
        }
        if let Some((k, b)) = current.take() {
            self.builders.insert(k, b);
        }
        self.rows += batch.num_rows();
        Ok(())
    }

    pub fn finish(self) -> Result<Vec<(Option<String>, ResponseMatrix)>> {
        if self.builders.values().all(MatrixBuilder::is_empty) {
            return Err(IrtError::Empty("irt source".into()));
        }
        self.builders
            .into_iter()
            .map(|(benchmark, b)| {
                let name = benchmark.clone().unwrap_or_else(|| "the source".into());
                Ok((benchmark, b.build(&name)?))
            })
            .collect()
    }
}

/// All batches at once (see [`MatrixSet`]).
pub fn matrices(
    batches: &[RecordBatch],
    joint: bool,
) -> Result<Vec<(Option<String>, ResponseMatrix)>> {
    let mut set = MatrixSet::new(joint);
    for b in batches {
        set.push_batch(b)?;
    }
    set.finish()
}

/// Fits every matrix, one after another (each fit is parallel inside).
pub fn fit_all(
    matrices: Vec<(Option<String>, ResponseMatrix)>,
    options: &FitOptions,
) -> Result<Vec<BenchmarkFit>> {
    matrices
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
