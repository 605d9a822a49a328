//! Wide response matrices: one row per model, one column per item, as CSV or Parquet.
//! An empty, NULL or NA cell means the model has no response to that item.

use std::path::Path;

use arrow::array::Array;

use super::columns::{ids, CorrectCells};
use super::error::{DataError, Result};
use super::files::{files_with_extension, open_parquet, parquet_columns};
use super::options::{Format, IngestOptions};
use super::responses::{parse_correct_text, ResponsesBuilder, MODEL_ID};

/// The model column: the option, else `model_id`, else `model`, else the first column.
fn model_column(columns: &[String], opts: &IngestOptions, place: &str) -> Result<usize> {
    if let Some(name) = &opts.model_column {
        return columns.iter().position(|c| c == name).ok_or_else(|| {
            DataError::invalid(
                place,
                format!(
                    "missing model column `{name}` (columns present: {})",
                    columns.join(", ")
                ),
            )
        });
    }
    Ok(columns
        .iter()
        .position(|c| c == MODEL_ID)
        .or_else(|| columns.iter().position(|c| c == "model"))
        .unwrap_or(0))
}

fn benchmark_for(path: &Path, opts: &IngestOptions) -> String {
    opts.benchmark.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default()
    })
}

pub fn read(
    root: &Path,
    format: Format,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    for path in files_with_extension(root, format.extensions())? {
        match format {
            Format::WideCsv => read_csv(&path, opts, out)?,
            _ => read_parquet(&path, opts, out)?,
        }
    }
    Ok(())
}

fn read_csv(path: &Path, opts: &IngestOptions, out: &mut ResponsesBuilder) -> Result<()> {
    let name = path.display().to_string();
    let benchmark = benchmark_for(path, opts);
    let source = out.begin_source(name.clone(), "line");
    let mut reader = csv::Reader::from_path(path).map_err(|source| DataError::Csv {
        place: name.clone(),
        source,
    })?;
    let header: Vec<String> = reader
        .headers()
        .map_err(|source| DataError::Csv {
            place: format!("{name}, line 1"),
            source,
        })?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let model_at = model_column(&header, opts, &format!("{name}, line 1"))?;
    if header.len() < 2 {
        return Err(DataError::invalid(
            format!("{name}, line 1"),
            "a wide matrix needs a model column and at least one item column",
        ));
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
        let model = record.get(model_at).unwrap_or("").trim();
        for (col, item) in header.iter().enumerate() {
            if col == model_at {
                continue;
            }
            let cell = record.get(col).unwrap_or("");
            match parse_correct_text(cell) {
                Ok(Some(v)) => out.push(source, line, model, &benchmark, item, v)?,
                Ok(None) => {}
                Err(value) => {
                    return Err(DataError::BadCorrect {
                        place: format!("{}, column `{item}`", out.place(source, line)),
                        value,
                    })
                }
            }
        }
    }
    Ok(())
}

fn read_parquet(path: &Path, opts: &IngestOptions, out: &mut ResponsesBuilder) -> Result<()> {
    let name = path.display().to_string();
    let benchmark = benchmark_for(path, opts);
    let columns = parquet_columns(path)?;
    let model_at = model_column(&columns, opts, &name)?;
    if columns.len() < 2 {
        return Err(DataError::invalid(
            &name,
            "a wide matrix needs a model column and at least one item column",
        ));
    }
    let mut names: Vec<&str> = vec![columns[model_at].as_str()];
    names.extend(
        columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != model_at)
            .map(|(_, c)| c.as_str()),
    );
    let source = out.begin_source(name.clone(), "row");
    let mut row = 0u64;
    for batch in open_parquet(path, &names)? {
        let batch = batch?;
        let bad = |e| DataError::column(&name, e);
        let models = ids(batch.column(0), names[0]).map_err(bad)?;
        let cells: Vec<CorrectCells> = (1..names.len())
            .map(|c| CorrectCells::new(batch.column(c), names[c]).map_err(bad))
            .collect::<Result<_>>()?;
        for i in 0..batch.num_rows() {
            row += 1;
            if models.is_null(i) {
                return Err(DataError::NullKey {
                    place: out.place(source, row),
                    column: MODEL_ID,
                });
            }
            for (k, column) in cells.iter().enumerate() {
                let item = names[k + 1];
                match column.get(i) {
                    Ok(Some(v)) => out.push(source, row, models.value(i), &benchmark, item, v)?,
                    Ok(None) => {}
                    Err(value) => {
                        return Err(DataError::BadCorrect {
                            place: format!("{}, column `{item}`", out.place(source, row)),
                            value,
                        })
                    }
                }
            }
        }
    }
    Ok(())
}
