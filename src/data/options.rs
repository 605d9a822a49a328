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
    /// Open LLM Leaderboard v2 details: lm-eval sample logs
    /// `samples_leaderboard_<task>_<timestamp>.jsonl` (early runs `.json`), one folder per
    /// model, the leaderboard's metric per task.
    LeaderboardV2,
    /// Open LLM Leaderboard v1 details: `details_harness|<task>|<n_shot>_<timestamp>.parquet`,
    /// lighteval's records, rows identified by position checked against their content.
    LeaderboardV1,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::LmEval,
        Format::LmEvalParquet,
        Format::Parquet,
        Format::Csv,
        Format::WideCsv,
        Format::WideParquet,
        Format::PyIrt,
        Format::LeaderboardV2,
        Format::LeaderboardV1,
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
            Format::LeaderboardV2 => "leaderboard_v2",
            Format::LeaderboardV1 => "leaderboard_v1",
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

    /// File extensions searched for when the path is a folder.
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::LmEval | Format::PyIrt => &["jsonl"],
            Format::LeaderboardV2 => &["jsonl", "json"],
            Format::LmEvalParquet
            | Format::Parquet
            | Format::WideParquet
            | Format::LeaderboardV1 => &["parquet"],
            Format::Csv | Format::WideCsv => &["csv"],
        }
    }

    /// Option keys that apply to this format.
    pub fn known_options(self) -> &'static [&'static str] {
        match self {
            Format::LmEval | Format::LmEvalParquet | Format::LeaderboardV2 => &[
                "metric",
                "filter",
                "model_id",
                "benchmark",
                "group",
                "provenance",
                "on_duplicate",
            ],
            Format::LeaderboardV1 => &[
                "metric",
                "model_id",
                "benchmark",
                "group",
                "provenance",
                "align",
                "on_duplicate",
            ],
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

/// The metric a leaderboard reports for a task (its name without the `leaderboard_` prefix),
/// when the options name none: v2 scores BBH, GPQA and MuSR by acc_norm, IFEval by the
/// strict prompt-level accuracy, MATH by exact match and MMLU-Pro by acc; v1 scores ARC and
/// HellaSwag by acc_norm, TruthfulQA by mc1 and the rest (MMLU, Winogrande, GSM8K) by acc.
pub fn leaderboard_metric(format: Format, task: &str) -> Option<&'static str> {
    let starts = |p: &str| task.starts_with(p);
    match format {
        Format::LeaderboardV2 => Some(if starts("bbh") || starts("gpqa") || starts("musr") {
            "acc_norm"
        } else if starts("ifeval") {
            "prompt_level_strict_acc"
        } else if starts("math") {
            "exact_match"
        } else if starts("mmlu_pro") {
            "acc"
        } else {
            return None;
        }),
        Format::LeaderboardV1 => Some(if starts("arc") || starts("hellaswag") {
            "acc_norm"
        } else if starts("truthfulqa") {
            "mc1"
        } else {
            "acc"
        }),
        _ => None,
    }
}

/// Tasks read as one benchmark: `bbh_date_understanding` and `bbh_navigate` become benchmark
/// `bbh` with item ids `date_understanding/<doc_id>`, `navigate/<doc_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskGroup {
    pub benchmark: String,
    /// A task belongs to the group when its name starts with this.
    pub prefix: String,
    /// Whether the prefix must be followed by a separator (`_`, `-`, `:`): a group given by
    /// name (`"bbh"`) is a whole word of the task name; a mapping's prefix is taken as written.
    pub word: bool,
}

impl TaskGroup {
    /// The subtask of `task` when it belongs to this group (the task itself when the prefix
    /// is the whole name).
    pub fn subtask<'t>(&self, task: &'t str) -> Option<&'t str> {
        let rest = task.strip_prefix(self.prefix.as_str())?;
        if rest.is_empty() {
            return Some(task);
        }
        let trimmed = rest.trim_start_matches(['_', '-', ':', '|']);
        if self.word && trimmed.len() == rest.len() {
            return None;
        }
        Some(if trimmed.is_empty() { task } else { trimmed })
    }
}

/// How leaderboard v1 rows (which carry no document id) are matched across models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Align {
    /// Item id = row position; every model's rows must hold the same content in the same
    /// order (checked by content hash), else an error names the model and the first row.
    #[default]
    Position,
    /// Item id = the content hash of the row's example, whatever its position.
    Content,
}

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
    /// Subtasks read as one benchmark each (lm-eval and leaderboard formats).
    pub groups: Vec<TaskGroup>,
    /// Add the columns `metric`, `n_shot` and `prompt_hash` to the responses table.
    pub provenance: bool,
    /// Leaderboard v1: how rows are matched across models.
    pub align: Align,
}

/// One value for every task, or one per task (`{"gsm8k": "exact_match"}`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "serde_json::Value")]
enum PerTask {
    All(String),
    ByTask(BTreeMap<String, String>),
}

/// The strings of a JSON object, or `None` when a value is not a string.
fn string_map(value: &serde_json::Value) -> Option<BTreeMap<String, String>> {
    value
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

impl TryFrom<serde_json::Value> for PerTask {
    type Error = String;
    fn try_from(value: serde_json::Value) -> std::result::Result<Self, String> {
        match &value {
            serde_json::Value::String(s) => Ok(Self::All(s.clone())),
            v => string_map(v).map(Self::ByTask).ok_or_else(|| {
                format!("expected a string, or an object of one string per task, found {value}")
            }),
        }
    }
}

/// `group` as written: a group name, several, or benchmark -> task-name prefix.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "serde_json::Value")]
enum GroupJson {
    One(String),
    Several(Vec<String>),
    Prefixes(BTreeMap<String, String>),
}

impl TryFrom<serde_json::Value> for GroupJson {
    type Error = String;
    fn try_from(value: serde_json::Value) -> std::result::Result<Self, String> {
        let names = |list: &Vec<serde_json::Value>| -> Option<Vec<String>> {
            list.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        match &value {
            serde_json::Value::String(s) => Some(Self::One(s.clone())),
            serde_json::Value::Array(list) => names(list).map(Self::Several),
            v => string_map(v).map(Self::Prefixes),
        }
        .ok_or_else(|| {
            format!(
                "expected a task group's name (\"bbh\"), a list of names, or an object of \
                 benchmark -> task-name prefix ({{\"mmlu\": \"hendrycksTest-\"}}), found {value}"
            )
        })
    }
}

impl GroupJson {
    fn groups(self) -> Result<Vec<TaskGroup>> {
        let named = |name: String| -> Result<TaskGroup> {
            let name = non_empty("group", Some(name))?.unwrap_or_default();
            Ok(TaskGroup {
                benchmark: name.clone(),
                prefix: name,
                word: true,
            })
        };
        match self {
            GroupJson::One(name) => Ok(vec![named(name)?]),
            GroupJson::Several(names) => names.into_iter().map(named).collect(),
            GroupJson::Prefixes(map) => map
                .into_iter()
                .map(|(benchmark, prefix)| {
                    let prefix =
                        non_empty(&format!("group.{benchmark}"), Some(prefix))?.unwrap_or_default();
                    Ok(TaskGroup {
                        benchmark,
                        prefix: prefix.trim_end_matches('*').to_string(),
                        word: false,
                    })
                })
                .collect(),
        }
    }
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
    group: Option<GroupJson>,
    provenance: Option<bool>,
    align: Option<Align>,
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
            groups: parsed
                .group
                .map(GroupJson::groups)
                .transpose()?
                .unwrap_or_default(),
            provenance: parsed.provenance.unwrap_or(false),
            align: parsed.align.unwrap_or_default(),
        })
    }

    /// The benchmark `task`'s rows go to and the subtask that qualifies their item ids: the
    /// `benchmark` option, else the first group the task belongs to, else the task itself.
    pub fn benchmark_of<'t>(&'t self, task: &'t str) -> (&'t str, Option<&'t str>) {
        if let Some(b) = &self.benchmark {
            return (b, None);
        }
        for group in &self.groups {
            if let Some(sub) = group.subtask(task) {
                return (&group.benchmark, Some(sub));
            }
        }
        (task, None)
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
    /// `leaderboard` is the metric the source's leaderboard reports for the task, used alone
    /// (strictly) when the options name no metric.
    pub fn metrics_for<'a>(
        &'a self,
        task: &str,
        leaderboard: Option<&'a str>,
    ) -> (Vec<&'a str>, bool) {
        fn split(s: &str) -> Vec<&str> {
            s.split(',')
                .map(str::trim)
                .filter(|m| !m.is_empty())
                .collect()
        }
        if let Some(own) = self.metric_by_task.get(task) {
            return (split(own), true);
        }
        if let (None, Some(metric)) = (&self.metric, leaderboard) {
            return (vec![metric], true);
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
