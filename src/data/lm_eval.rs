//! lm-eval-harness per-sample logs (`samples_<task>_<timestamp>.jsonl`, or the same records
//! as Parquet, as in Open LLM Leaderboard "details").
//!
//! Layout conventions, as lm-eval-harness writes them: the model's folder is named after the
//! model with `/` replaced by `__`; a file name carries the task and a timestamp. When a
//! folder holds several runs of one task for one model, the latest timestamp wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::error::{DataError, Result};
use super::files::{files_with_extension, open_parquet};
use super::options::{Format, IngestOptions};
use super::responses::{parse_correct_json, parse_correct_number, ResponsesBuilder};

/// One per-sample file and what its path says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    pub path: PathBuf,
    pub model_id: String,
    pub task: String,
    pub timestamp: String,
}

/// Splits `samples_<task>_<timestamp>.<ext>` into task and timestamp.
/// A name without the prefix or timestamp yields the stem as task and an empty timestamp.
pub fn parse_sample_file_name(file_name: &str) -> (String, String) {
    let stem = file_name
        .rsplit_once('.')
        .map(|(s, _)| s)
        .unwrap_or(file_name);
    let body = stem.strip_prefix("samples_").unwrap_or(stem);
    // The timestamp starts at the last '_' followed by a date: YYYY-MM-DD...
    for (pos, _) in body
        .match_indices('_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        let rest = &body[pos + 1..];
        let b = rest.as_bytes();
        if b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
        {
            return (body[..pos].to_string(), rest.to_string());
        }
    }
    (body.to_string(), String::new())
}

/// lm-eval-harness writes `org/model` as the folder `org__model`.
pub fn model_id_from_folder(name: &str) -> String {
    name.replace("__", "/")
}

/// Finds the sample files under `root` and assigns each a model id: the first folder below
/// `root` that holds it, or `root`'s own name for files directly inside (or `root` itself
/// when it is a file). Keeps the latest timestamp per (model, task).
pub fn discover(root: &Path, format: Format, opts: &IngestOptions) -> Result<Vec<SampleFile>> {
    let files = files_with_extension(root, format.extension())?;
    let root_name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default()
    };
    let mut latest: BTreeMap<(String, String), SampleFile> = BTreeMap::new();
    for path in files {
        let model_id = if let Some(m) = &opts.model_id {
            m.clone()
        } else if root.is_file() {
            let parent = root.parent().map(root_name).unwrap_or_default();
            model_id_from_folder(&parent)
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let mut parts = rel.components();
            let first = parts
                .next()
                .map(|c| c.as_os_str().to_string_lossy().to_string());
            match (first, parts.next()) {
                (Some(folder), Some(_)) => model_id_from_folder(&folder),
                _ => model_id_from_folder(&root_name(root)),
            }
        };
        if model_id.is_empty() {
            return Err(DataError::invalid(
                path.display().to_string(),
                "cannot tell the model id from the path; pass the option model_id",
            ));
        }
        let (task, timestamp) = parse_sample_file_name(&root_name(&path));
        let file = SampleFile {
            path,
            model_id,
            task,
            timestamp,
        };
        let key = (file.model_id.clone(), file.task.clone());
        match latest.get(&key) {
            Some(prev) if prev.timestamp >= file.timestamp => {}
            _ => {
                latest.insert(key, file);
            }
        }
    }
    Ok(latest.into_values().collect())
}

/// Reads every per-sample file under `root` into `out`.
pub fn read(
    root: &Path,
    format: Format,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    for file in discover(root, format, opts)? {
        let benchmark = opts.benchmark.clone().unwrap_or_else(|| file.task.clone());
        match format {
            Format::LmEvalParquet => read_parquet_file(&file, &benchmark, opts, out)?,
            _ => read_jsonl_file(&file, &benchmark, opts, out)?,
        }
    }
    Ok(())
}

fn read_jsonl_file(
    file: &SampleFile,
    benchmark: &str,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    let metrics = opts.metrics();
    let name = file.path.display().to_string();
    let source = out.begin_source(name.clone(), "line");
    super::files::for_each_line(&file.path, |line_no, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let place = || out.place(source, line_no);
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|e| DataError::Json {
                place: place(),
                message: e.to_string(),
            })?;
        let serde_json::Value::Object(fields) = &record else {
            return Err(DataError::invalid(
                place(),
                "expected a JSON object per line",
            ));
        };
        if let Some(wanted) = &opts.filter {
            match fields.get("filter") {
                Some(serde_json::Value::String(f)) if f == wanted => {}
                Some(_) => return Ok(()),
                // Tasks with one filter log no `filter` field: keep their records.
                None => {}
            }
        }
        let item_id = match fields.get("doc_id") {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(DataError::invalid(
                    place(),
                    format!("`doc_id` must be a number or string, found {other}"),
                ))
            }
            None => {
                return Err(DataError::Missing {
                    place: place(),
                    what: "field",
                    name: "doc_id".into(),
                })
            }
        };
        let Some((metric, value)) = metrics.iter().find_map(|m| fields.get(*m).map(|v| (*m, v)))
        else {
            let present: Vec<&str> = fields.keys().map(String::as_str).collect();
            return Err(DataError::invalid(
                place(),
                format!("missing metric field `{}` (fields present: {}); choose one with the option metric", metrics.join("` or `"), present.join(", ")),
            ));
        };
        let correct = match parse_correct_json(value) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(DataError::NullCorrect { place: place() }),
            Err(v) => {
                return Err(DataError::BadCorrect {
                    place: format!("{} (field `{metric}`)", place()),
                    value: v,
                })
            }
        };
        out.push(
            source,
            line_no,
            &file.model_id,
            benchmark,
            &item_id,
            correct,
        )?;
        Ok(())
    })
}

fn read_parquet_file(
    file: &SampleFile,
    benchmark: &str,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    let name = file.path.display().to_string();
    let present = super::files::parquet_columns(&file.path)?;
    let metrics = opts.metrics();
    let metric = metrics
        .iter()
        .copied()
        .find(|m| present.iter().any(|p| p == m))
        .ok_or_else(|| {
            DataError::invalid(
                &name,
                format!(
                    "missing metric column `{}` (columns present: {})",
                    metrics.join("` or `"),
                    present.join(", ")
                ),
            )
        })?;
    let source = out.begin_source(name.clone(), "row");
    let mut row = 0u64;
    let mut columns = vec!["doc_id", metric];
    if opts.filter.is_some() {
        columns.push("filter");
    }
    for batch in open_parquet(&file.path, &columns)? {
        let batch = batch?;
        let filters = match opts.filter {
            Some(_) => Some(
                super::columns::ids(batch.column(2), "filter")
                    .map_err(|m| DataError::invalid(&name, m))?,
            ),
            None => None,
        };
        let ids = cast(batch.column(0), &DataType::Utf8)
            .map_err(|e| DataError::invalid(&name, format!("column `doc_id`: {e}")))?;
        let ids = ids.as_string::<i32>();
        let values = batch.column(1);
        let numbers = if matches!(values.data_type(), DataType::Boolean) {
            None
        } else {
            Some(cast(values, &DataType::Float64).map_err(|e| {
                DataError::invalid(
                    &name,
                    format!("column `{metric}` is not numeric or boolean: {e}"),
                )
            })?)
        };
        for i in 0..batch.num_rows() {
            row += 1;
            if let (Some(f), Some(wanted)) = (&filters, &opts.filter) {
                if f.is_null(i) || f.value(i) != wanted {
                    continue;
                }
            }
            if ids.is_null(i) {
                return Err(DataError::NullKey {
                    place: out.place(source, row),
                    column: "doc_id",
                });
            }
            if values.is_null(i) {
                return Err(DataError::NullCorrect {
                    place: out.place(source, row),
                });
            }
            let correct = match &numbers {
                None => values.as_boolean().value(i),
                Some(n) => {
                    let x = n.as_primitive::<arrow::datatypes::Float64Type>().value(i);
                    parse_correct_number(x).map_err(|value| DataError::BadCorrect {
                        place: format!("{} (column `{metric}`)", out.place(source, row)),
                        value,
                    })?
                }
            };
            out.push(
                source,
                row,
                &file.model_id,
                benchmark,
                ids.value(i),
                correct,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_sample_file_name("samples_gsm8k_2024-05-27T12-34-56.123456.jsonl"),
            (
                "gsm8k".to_string(),
                "2024-05-27T12-34-56.123456".to_string()
            )
        );
        assert_eq!(
            parse_sample_file_name(
                "samples_leaderboard_bbh_date_understanding_2024-06-26T13-00-00.jsonl"
            )
            .0,
            "leaderboard_bbh_date_understanding"
        );
        assert_eq!(
            parse_sample_file_name("arc_easy.jsonl"),
            ("arc_easy".to_string(), String::new())
        );
        assert_eq!(
            model_id_from_folder("Qwen__Qwen2.5-7B-Instruct"),
            "Qwen/Qwen2.5-7B-Instruct"
        );
    }
}
