//! Source formats and the options each one accepts.
//!
//! Options arrive as a JSON object (from SQL) or as command-line flags; unknown keys and keys
//! that do not apply to the chosen format are errors, never silently ignored.

use super::error::{DataError, Result};
use super::responses::DuplicatePolicy;
use std::collections::BTreeMap;

/// The formats `read_responses` and `crossdiff ingest` understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// lm-eval-harness per-sample logs, `samples_<task>_<timestamp>.jsonl`.
    LmEval,
    /// The same per-sample records stored as Parquet.
    LmEvalParquet,
    /// The canonical long table (or any long table, with column options) as Parquet.
    Parquet,
    /// The canonical long table as CSV with a header.
    Csv,
    /// One row per model, one column per item, as CSV.
    WideCsv,
    /// One row per model, one column per item, as Parquet.
    WideParquet,
    /// py-irt jsonlines: `{"subject_id": ..., "responses": {"item": 0 or 1}}`.
    PyIrt,
}

impl Format {
    pub const ALL: [Format; 7] = [
        Format::LmEval,
        Format::LmEvalParquet,
        Format::Parquet,
        Format::Csv,
        Format::WideCsv,
        Format::WideParquet,
        Format::PyIrt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::LmEval => "lm_eval",
            Format::LmEvalParquet => "lm_eval_parquet",
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::WideCsv => "wide_csv",
            Format::WideParquet => "wide_parquet",
            Format::PyIrt => "pyirt",
        }
    }

    pub fn parse(s: &str) -> Result<Format> {
        let lower = s.trim().to_ascii_lowercase();
        Format::ALL
            .into_iter()
            .find(|f| f.name() == lower)
            .ok_or_else(|| DataError::BadOption {
                key: "format".into(),
                message: format!("unknown format {s:?}; expected one of {}", Self::names()),
            })
    }

    pub fn names() -> String {
        Format::ALL
            .iter()
            .map(|f| format!("'{}'", f.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// File extension searched for when the path is a folder.
    pub fn extension(self) -> &'static str {
        match self {
            Format::LmEval | Format::PyIrt => "jsonl",
            Format::LmEvalParquet | Format::Parquet | Format::WideParquet => "parquet",
            Format::Csv | Format::WideCsv => "csv",
        }
    }

    /// Option keys that apply to this format.
    pub fn known_options(self) -> &'static [&'static str] {
        match self {
            Format::LmEval | Format::LmEvalParquet => {
                &["metric", "filter", "model_id", "benchmark", "on_duplicate"]
            }
            Format::Parquet | Format::Csv => &[
                "model_column",
                "benchmark_column",
                "item_column",
                "correct_column",
                "benchmark",
                "on_duplicate",
            ],
            Format::WideCsv | Format::WideParquet => &["model_column", "benchmark", "on_duplicate"],
            Format::PyIrt => &["benchmark", "on_duplicate"],
        }
    }
}

/// lm-eval's metric of a multiple-choice task, then of a generation task.
pub const DEFAULT_METRICS: [&str; 2] = ["acc", "exact_match"];

/// Options of one ingest; `None` means "use the format's default".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IngestOptions {
    /// lm-eval metric whose value means "correct", for every task: a comma-separated list
    /// takes the first metric a record has, then the defaults (`acc`, then `exact_match`).
    pub metric: Option<String>,
    /// The metric of named tasks (`{"metric": {"gsm8k": "exact_match"}}`), strictly.
    pub metric_by_task: BTreeMap<String, String>,
    /// lm-eval filter to keep (`strict-match`, `flexible-extract`) among a task's several:
    /// generation tasks log one record per filter and document. A task with one filter (a
    /// multiple-choice task's `none`) keeps it. Default: the task's first filter.
    pub filter: Option<String>,
    /// The filter of named tasks, strictly.
    pub filter_by_task: BTreeMap<String, String>,
    /// Model id for every row (lm-eval files of one model).
    pub model_id: Option<String>,
    /// Benchmark name for every row (otherwise taken from the file name or a column).
    pub benchmark: Option<String>,
    pub model_column: Option<String>,
    pub benchmark_column: Option<String>,
    pub item_column: Option<String>,
    pub correct_column: Option<String>,
    pub on_duplicate: DuplicatePolicy,
}

/// One value for every task, or one per task (`{"gsm8k": "exact_match"}`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
enum PerTask {
    All(String),
    ByTask(BTreeMap<String, String>),
}

/// The options object as written: every key optional, each checked against the format after.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IngestOptionsJson {
    metric: Option<PerTask>,
    filter: Option<PerTask>,
    model_id: Option<String>,
    benchmark: Option<String>,
    model_column: Option<String>,
    benchmark_column: Option<String>,
    item_column: Option<String>,
    correct_column: Option<String>,
    on_duplicate: Option<DuplicatePolicy>,
}

fn non_empty(key: &str, value: Option<String>) -> Result<Option<String>> {
    match value {
        Some(v) if v.trim().is_empty() => Err(DataError::BadOption {
            key: key.to_string(),
            message: "expected a non-empty string, got \"\"".into(),
        }),
        other => Ok(other),
    }
}

/// A value for every task, and the values of named tasks.
fn per_task(
    key: &str,
    value: Option<PerTask>,
) -> Result<(Option<String>, BTreeMap<String, String>)> {
    match value {
        None => Ok((None, BTreeMap::new())),
        Some(PerTask::All(v)) => Ok((non_empty(key, Some(v))?, BTreeMap::new())),
        Some(PerTask::ByTask(map)) => {
            let mut out = BTreeMap::new();
            for (task, v) in map {
                let v = non_empty(&format!("{key}.{task}"), Some(v))?.unwrap_or_default();
                out.insert(task, v.trim().to_string());
            }
            Ok((None, out))
        }
    }
}

impl IngestOptions {
    /// Parses a JSON object of options (an empty string is none), refusing keys that no
    /// format knows and keys the format does not use.
    pub fn from_json(json: &str, format: Format) -> Result<Self> {
        Self::from_value(&crate::options::parse_object(json)?, format)
    }

    /// [`Self::from_json`] of a parsed object (the command line builds one from its flags).
    pub fn from_value(value: &serde_json::Value, format: Format) -> Result<Self> {
        // Keys the format does not use first: that error names the format's own keys.
        let known = format.known_options();
        if let Some(key) = value
            .as_object()
            .and_then(|m| m.keys().find(|k| !known.contains(&k.as_str())))
        {
            return Err(DataError::UnknownOption {
                key: key.clone(),
                context: format!("format '{}'", format.name()),
                known: known.join(", "),
            });
        }
        let parsed: IngestOptionsJson = crate::options::from_value(value)?;
        let (metric, metric_by_task) = per_task("metric", parsed.metric)?;
        let (filter, filter_by_task) = per_task("filter", parsed.filter)?;
        Ok(Self {
            metric,
            metric_by_task,
            filter,
            filter_by_task,
            model_id: non_empty("model_id", parsed.model_id)?,
            benchmark: non_empty("benchmark", parsed.benchmark)?,
            model_column: non_empty("model_column", parsed.model_column)?,
            benchmark_column: non_empty("benchmark_column", parsed.benchmark_column)?,
            item_column: non_empty("item_column", parsed.item_column)?,
            correct_column: non_empty("correct_column", parsed.correct_column)?,
            on_duplicate: parsed.on_duplicate.unwrap_or_default(),
        })
    }

    /// The metric names to look for, in order: `metric` may list several, comma-separated
    /// (e.g. `acc,exact_match` for a folder that mixes tasks); the first one present is used.
    pub fn metrics(&self) -> Vec<&str> {
        self.metric
            .as_deref()
            .unwrap_or("acc")
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// The metrics to look for in `task`'s records, in order, and whether the list is the
    /// task's own (strict: no fallback). Otherwise the `metric` option's list comes first and
    /// lm-eval's usual metrics follow: `acc` (multiple choice), `exact_match` (generation).
    pub fn metrics_for(&self, task: &str) -> (Vec<&str>, bool) {
        fn split(s: &str) -> Vec<&str> {
            s.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .collect()
        }
        if let Some(own) = self.metric_by_task.get(task) {
            return (split(own), true);
        }
        let mut list = self.metric.as_deref().map(split).unwrap_or_default();
        for default in DEFAULT_METRICS {
            if !list.contains(&default) {
                list.push(default);
            }
        }
        (list, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_inapplicable_keys_are_errors() {
        let err = IngestOptions::from_json(r#"{"metrc": "acc"}"#, Format::LmEval)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`metrc`") && err.contains("metric"), "{err}");
        let err = IngestOptions::from_json(r#"{"metric": "acc"}"#, Format::WideCsv)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`metric`") && err.contains("wide_csv"),
            "{err}"
        );
    }

    #[test]
    fn parses_policy_and_strings() {
        let o = IngestOptions::from_json(
            r#"{"metric": "exact_match", "on_duplicate": "last"}"#,
            Format::LmEval,
        )
        .unwrap();
        assert_eq!(o.metrics(), vec!["exact_match"]);
        assert_eq!(o.on_duplicate, DuplicatePolicy::Last);
        assert!(IngestOptions::from_json(r#"{"metric": 3}"#, Format::LmEval).is_err());
        assert!(IngestOptions::from_json("[1]", Format::LmEval).is_err());
    }
}
