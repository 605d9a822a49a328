//! py-irt jsonlines, read and written, so any fit can be cross-checked with py-irt:
//! one line per subject, `{"subject_id": "...", "responses": {"item": 0 or 1, ...}}`.
//!
//! py-irt has one item namespace. A file of one benchmark uses plain item ids (the benchmark
//! comes from the `benchmark` option or the file name); a file of several benchmarks writes
//! `benchmark::item_id` keys, which the reader splits again.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use arrow::array::{AsArray, RecordBatch};

use super::error::{DataError, Result};
use super::files::{files_with_extension, write_atomically};
use super::options::{Format, IngestOptions};
use super::responses::{parse_correct_json, ResponsesBuilder};

/// Separates benchmark and item in keys of multi-benchmark files.
pub const KEY_SEPARATOR: &str = "::";

pub fn read(root: &Path, opts: &IngestOptions, out: &mut ResponsesBuilder) -> Result<()> {
    for path in files_with_extension(root, Format::PyIrt.extensions())? {
        read_file(&path, opts, out)?;
    }
    Ok(())
}

fn read_file(path: &Path, opts: &IngestOptions, out: &mut ResponsesBuilder) -> Result<()> {
    let name = path.display().to_string();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let source = out.begin_source(name, "line");
    super::files::for_each_line(path, |line_no, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let place = out.place(source, line_no);
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|source| DataError::Json {
                place: place.clone(),
                source,
            })?;
        let subject = match record.get("subject_id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(DataError::invalid(
                    place,
                    format!("`subject_id` must be a string, found {other}"),
                ))
            }
            None => {
                return Err(DataError::Missing {
                    place,
                    what: "field",
                    name: "subject_id".into(),
                })
            }
        };
        let Some(serde_json::Value::Object(responses)) = record.get("responses") else {
            return Err(DataError::Missing {
                place,
                what: "object",
                name: "responses".into(),
            });
        };
        for (key, value) in responses {
            let (benchmark, item) = match (&opts.benchmark, key.split_once(KEY_SEPARATOR)) {
                (Some(b), _) => (b.as_str(), key.as_str()),
                (None, Some((b, i))) => (b, i),
                (None, None) => (stem.as_str(), key.as_str()),
            };
            let correct = match parse_correct_json(value) {
                Ok(Some(v)) => v,
                Ok(None) => {
                    return Err(DataError::NullCorrect {
                        place: format!("{place}, item `{key}`"),
                    })
                }
                Err(v) => {
                    return Err(DataError::BadCorrect {
                        place: format!("{place}, item `{key}`"),
                        value: v,
                    })
                }
            };
            out.push(source, line_no, &subject, benchmark, item, correct)?;
        }
        Ok(())
    })
}

/// Writes canonical responses as py-irt jsonlines, one line per model in order of first
/// appearance, atomically. Returns the number of subjects written.
pub fn write(path: &Path, batches: &[RecordBatch]) -> Result<usize> {
    let mut benchmarks = std::collections::HashSet::new();
    for b in batches {
        for v in b.column(1).as_string::<i32>().iter().flatten() {
            benchmarks.insert(v.to_string());
        }
    }
    let qualify = benchmarks.len() > 1;
    let mut order: Vec<String> = Vec::new();
    let mut subjects: HashMap<String, serde_json::Map<String, serde_json::Value>> = HashMap::new();
    for b in batches {
        let (models, benches, items, correct) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
            b.column(2).as_string::<i32>(),
            b.column(3).as_boolean(),
        );
        for i in 0..b.num_rows() {
            let model = models.value(i);
            let key = if qualify {
                format!("{}{KEY_SEPARATOR}{}", benches.value(i), items.value(i))
            } else {
                items.value(i).to_string()
            };
            let entry = subjects.entry(model.to_string()).or_insert_with(|| {
                order.push(model.to_string());
                serde_json::Map::new()
            });
            entry.insert(key, serde_json::Value::from(correct.value(i) as u8));
        }
    }
    write_atomically(path, |out| {
        for model in &order {
            let line = serde_json::json!({ "subject_id": model, "responses": subjects[model] });
            writeln!(out, "{line}").map_err(|e| DataError::io(path, e))?;
        }
        Ok(())
    })?;
    Ok(order.len())
}
