//! Long tables, one response per row, as Parquet or CSV: the canonical layout, or any layout
//! whose columns the options name.

use std::path::Path;

use arrow::array::{Array, RecordBatch};

use super::columns::{ids, CorrectCells};
use super::error::{DataError, Result};
use super::files::{files_with_extension, open_parquet};
use super::options::{Format, IngestOptions};
use super::responses::{ResponsesBuilder, BENCHMARK, CORRECT, ITEM_ID, MODEL_ID};

struct Columns<'a> {
    model: &'a str,
    benchmark: Option<&'a str>,
    item: &'a str,
    correct: &'a str,
}

impl<'a> Columns<'a> {
    fn from(opts: &'a IngestOptions) -> Self {
        Columns {
            model: opts.model_column.as_deref().unwrap_or(MODEL_ID),
            // A fixed benchmark name replaces the column.
            benchmark: match &opts.benchmark {
                Some(_) => None,
                None => Some(opts.benchmark_column.as_deref().unwrap_or(BENCHMARK)),
            },
            item: opts.item_column.as_deref().unwrap_or(ITEM_ID),
            correct: opts.correct_column.as_deref().unwrap_or(CORRECT),
        }
    }

    fn names(&self) -> Vec<&'a str> {
        let mut v = vec![self.model, self.item, self.correct];
        v.extend(self.benchmark);
        v
    }
}

pub fn read(
    root: &Path,
    format: Format,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    for path in files_with_extension(root, format.extensions())? {
        match format {
            Format::Csv => read_csv(&path, opts, out)?,
            _ => read_parquet(&path, opts, out)?,
        }
    }
    Ok(())
}

fn read_parquet(path: &Path, opts: &IngestOptions, out: &mut ResponsesBuilder) -> Result<()> {
    let cols = Columns::from(opts);
    let source = out.begin_source(path.display().to_string(), "row");
    let mut row = 0u64;
    for batch in open_parquet(path, &cols.names())? {
        push_batch(&batch?, &cols, opts, source, &mut row, out)?;
    }
    Ok(())
}

/// Pushes rows of a batch whose columns are (model, item, correct[, benchmark]).
fn push_batch(
    batch: &RecordBatch,
    cols: &Columns,
    opts: &IngestOptions,
    source: u32,
    row: &mut u64,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    let bad = |e| DataError::column(out.place(source, *row + 1), e);
    let models = ids(batch.column(0), cols.model).map_err(bad)?;
    let items = ids(batch.column(1), cols.item).map_err(bad)?;
    let correct = CorrectCells::new(batch.column(2), cols.correct).map_err(bad)?;
    let benchmarks = match cols.benchmark {
        Some(name) => Some(ids(batch.column(3), name).map_err(bad)?),
        None => None,
    };
    for i in 0..batch.num_rows() {
        *row += 1;
        let place = || format!("{} (column `{}`)", out.place(source, *row), cols.correct);
        let value = match correct.get(i) {
            Ok(Some(v)) => v,
            Ok(None) => return Err(DataError::NullCorrect { place: place() }),
            Err(value) => {
                return Err(DataError::BadCorrect {
                    place: place(),
                    value,
                })
            }
        };
        let key = |a: &arrow::array::StringArray, column: &'static str| {
            if a.is_null(i) {
                Err(DataError::NullKey {
                    place: out.place(source, *row),
                    column,
                })
            } else {
                Ok(a.value(i).to_string())
            }
        };
        let model = key(&models, MODEL_ID)?;
        let item = key(&items, ITEM_ID)?;
        let benchmark = match &benchmarks {
            Some(b) => key(b, BENCHMARK)?,
            None => opts
                .benchmark
                .clone()
                .expect("benchmark option set when no column"),
        };
        out.push(source, *row, &model, &benchmark, &item, value)?;
    }
    Ok(())
}

fn read_csv(path: &Path, opts: &IngestOptions, out: &mut ResponsesBuilder) -> Result<()> {
    let cols = Columns::from(opts);
    let name = path.display().to_string();
    let source = out.begin_source(name.clone(), "line");
    let mut reader = csv::Reader::from_path(path).map_err(|source| DataError::Csv {
        place: name.clone(),
        source,
    })?;
    let header = reader
        .headers()
        .map_err(|source| DataError::Csv {
            place: format!("{name}, line 1"),
            source,
        })?
        .clone();
    let mut index = Vec::new();
    for col in cols.names() {
        let i = header.iter().position(|h| h.trim() == col).ok_or_else(|| {
            DataError::invalid(
                format!("{name}, line 1"),
                format!(
                    "missing column `{col}` (columns present: {})",
                    header.iter().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        index.push(i);
    }
    for record in reader.records() {
        let record = record.map_err(|source| {
            let line = source.position().map(|p| p.line()).unwrap_or(0);
            DataError::Csv {
                place: format!("{name}, line {line}"),
                source,
            }
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let cell = |k: usize| record.get(index[k]).unwrap_or("");
        let correct = match super::responses::parse_correct_text(cell(2)) {
            Ok(Some(v)) => v,
            Ok(None) => {
                return Err(DataError::NullCorrect {
                    place: format!("{}, column `{}`", out.place(source, line), cols.correct),
                })
            }
            Err(value) => {
                return Err(DataError::BadCorrect {
                    place: format!("{}, column `{}`", out.place(source, line), cols.correct),
                    value,
                })
            }
        };
        let benchmark = match cols.benchmark {
            Some(_) => cell(3).to_string(),
            None => opts
                .benchmark
                .clone()
                .expect("benchmark option set when no column"),
        };
        out.push(source, line, cell(0), &benchmark, cell(1), correct)?;
    }
    Ok(())
}
