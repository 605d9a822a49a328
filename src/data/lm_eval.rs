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

/// A task file's responses grouped by answer filter, before one filter is chosen: lm-eval
/// logs one record per (document, filter), `none` for multiple choice, one per filter of the
/// task's filter list for generation.
/// One record under a filter: (position, item_id, correct).
type FilterRow = (u64, String, bool);

#[derive(Default)]
struct TaskRows {
    /// (filter, rows), in order of first appearance.
    groups: Vec<(Option<String>, Vec<FilterRow>)>,
    /// Records whose metric came from the defaults, not the `metric` option: (metric, count).
    fallbacks: BTreeMap<String, usize>,
}

impl TaskRows {
    fn push(&mut self, filter: Option<&str>, position: u64, item: String, correct: bool) {
        let k = match self.groups.iter().position(|(f, _)| f.as_deref() == filter) {
            Some(k) => k,
            None => {
                self.groups.push((filter.map(String::from), Vec::new()));
                self.groups.len() - 1
            }
        };
        self.groups[k].1.push((position, item, correct));
    }

    /// Keeps the chosen filter's rows (and rows that name no filter), saying on stderr what
    /// was skipped and why.
    fn finish(
        self,
        file: &SampleFile,
        benchmark: &str,
        opts: &IngestOptions,
        source: u32,
        out: &mut ResponsesBuilder,
    ) -> Result<()> {
        let name = file.path.display().to_string();
        let task = &file.task;
        let filters: Vec<&str> = self
            .groups
            .iter()
            .filter_map(|(f, _)| f.as_deref())
            .collect();
        let listed = || format!("`{}`", filters.join("`, `"));
        let chosen: Option<String> = if let Some(wanted) = opts.filter_by_task.get(task) {
            if !filters.contains(&wanted.as_str()) {
                return Err(DataError::invalid(
                    &name,
                    format!(
                        "task `{task}` has no records of filter `{wanted}` (filters: {})",
                        listed()
                    ),
                ));
            }
            Some(wanted.clone())
        } else if let Some(wanted) = &opts.filter {
            if filters.contains(&wanted.as_str()) {
                Some(wanted.clone())
            } else if filters.len() == 1 {
                eprintln!(
                    "ingest: {name}: task `{task}` logs only filter `{}`; kept it (not `{wanted}`)",
                    filters[0]
                );
                Some(filters[0].to_string())
            } else if filters.is_empty() {
                None
            } else {
                return Err(DataError::invalid(
                    &name,
                    format!(
                        "task `{task}` has no records of filter `{wanted}` (filters: {}); choose \
                         per task with {{\"filter\": {{\"{task}\": \"...\"}}}}",
                        listed()
                    ),
                ));
            }
        } else {
            filters.first().map(|f| f.to_string())
        };
        let mut kept = Vec::new();
        let mut skipped: Vec<(String, usize)> = Vec::new();
        for (filter, rows) in self.groups {
            if filter.is_none() || filter == chosen {
                kept.extend(rows);
            } else {
                skipped.push((filter.unwrap_or_default(), rows.len()));
            }
        }
        if !skipped.is_empty() {
            let n: usize = skipped.iter().map(|s| s.1).sum();
            let which: Vec<String> = skipped
                .iter()
                .map(|(f, c)| format!("`{f}` ({c})"))
                .collect();
            eprintln!(
                "ingest: {name}: task `{task}`: kept the records of filter `{}`; skipped {n} \
                 records of filter {} (the option filter chooses)",
                chosen.as_deref().unwrap_or(""),
                which.join(", ")
            );
        }
        for (metric, n) in &self.fallbacks {
            eprintln!(
                "ingest: {name}: task `{task}` has none of the metrics asked for ({}); used \
                 `{metric}` for {n} records",
                opts.metric.as_deref().unwrap_or("")
            );
        }
        kept.sort_by_key(|r| r.0);
        for (position, item, correct) in kept {
            out.push(source, position, &file.model_id, benchmark, &item, correct)?;
        }
        Ok(())
    }
}

/// The metric to read among `present` names: the first of the task's list; with `strict`
/// (the task's own list) nothing else. Also says whether it came from the defaults although
/// the option named others.
fn pick_metric<'a>(
    task: &str,
    present: impl Fn(&str) -> bool,
    opts: &'a IngestOptions,
) -> std::result::Result<(&'a str, bool), String> {
    let (list, strict) = opts.metrics_for(task);
    let asked = opts
        .metric
        .as_deref()
        .map_or(0, |m| m.split(',').filter(|x| !x.trim().is_empty()).count());
    match list.iter().position(|m| present(m)) {
        Some(k) => Ok((list[k], !strict && opts.metric.is_some() && k >= asked)),
        None => Err(format!(
            "no metric `{}` for task `{task}`; choose one with the option metric (per task: \
             {{\"metric\": {{\"{task}\": \"...\"}}}})",
            list.join("` or `")
        )),
    }
}

fn read_jsonl_file(
    file: &SampleFile,
    benchmark: &str,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    let name = file.path.display().to_string();
    let source = out.begin_source(name.clone(), "line");
    let mut rows = TaskRows::default();
    super::files::for_each_line(&file.path, |line_no, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let place = || out.place(source, line_no);
        let record: serde_json::Value =
            serde_json::from_str(line).map_err(|source| DataError::Json {
                place: place(),
                source,
            })?;
        let serde_json::Value::Object(fields) = &record else {
            return Err(DataError::invalid(
                place(),
                "expected a JSON object per line",
            ));
        };
        let filter = match fields.get("filter") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(f)) => Some(f.as_str()),
            Some(other) => {
                return Err(DataError::invalid(
                    place(),
                    format!("`filter` must be a string, found {other}"),
                ))
            }
        };
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
        let (metric, fallback) = pick_metric(&file.task, |m| fields.contains_key(m), opts)
            .map_err(|message| {
                let present: Vec<&str> = fields.keys().map(String::as_str).collect();
                DataError::invalid(
                    place(),
                    format!("{message} (fields present: {})", present.join(", ")),
                )
            })?;
        if fallback {
            *rows.fallbacks.entry(metric.to_string()).or_default() += 1;
        }
        let correct = match parse_correct_json(&fields[metric]) {
            Ok(Some(b)) => b,
            Ok(None) => return Err(DataError::NullCorrect { place: place() }),
            Err(v) => {
                return Err(DataError::BadCorrect {
                    place: format!("{} (field `{metric}`)", place()),
                    value: v,
                })
            }
        };
        rows.push(filter, line_no, item_id, correct);
        Ok(())
    })?;
    rows.finish(file, benchmark, opts, source, out)
}

fn read_parquet_file(
    file: &SampleFile,
    benchmark: &str,
    opts: &IngestOptions,
    out: &mut ResponsesBuilder,
) -> Result<()> {
    let name = file.path.display().to_string();
    let present = super::files::parquet_columns(&file.path)?;
    let (metric, fallback) = pick_metric(&file.task, |m| present.iter().any(|p| p == m), opts)
        .map_err(|message| {
            DataError::invalid(
                &name,
                format!("{message} (columns present: {})", present.join(", ")),
            )
        })?;
    let source = out.begin_source(name.clone(), "row");
    let mut rows = TaskRows::default();
    let mut row = 0u64;
    let mut columns = vec!["doc_id", metric];
    let has_filter = present.iter().any(|p| p == "filter");
    if has_filter {
        columns.push("filter");
    }
    for batch in open_parquet(&file.path, &columns)? {
        let batch = batch?;
        let filters = if has_filter {
            Some(
                super::columns::ids(batch.column(2), "filter")
                    .map_err(|e| DataError::column(&name, e))?,
            )
        } else {
            None
        };
        let ids = super::columns::ids(batch.column(0), "doc_id")
            .map_err(|e| DataError::column(&name, e))?;
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
            let filter = filters
                .as_ref()
                .and_then(|f| (!f.is_null(i)).then(|| f.value(i)));
            if fallback {
                *rows.fallbacks.entry(metric.to_string()).or_default() += 1;
            }
            rows.push(filter, row, ids.value(i).to_string(), correct);
        }
    }
    rows.finish(file, benchmark, opts, source, out)
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
