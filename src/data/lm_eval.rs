//! lm-eval-harness per-sample logs (`samples_<task>_<timestamp>.jsonl`, or the same records
//! as Parquet), and the Open LLM Leaderboard v2 "details", which are the same logs
//! (`samples_leaderboard_<task>_<timestamp>.jsonl`, early runs `.json`).
//!
//! Layout conventions, as lm-eval-harness writes them: the model's folder is named after the
//! model with `/` replaced by `__`; a file name carries the task and a timestamp. When a
//! folder holds several runs of one task for one model, the latest timestamp wins.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{DataError, Result};
use super::files::{files_with_extension, open_parquet};
use super::items::{choices_of, question_of, value_text, ItemRecord};
use super::options::{leaderboard_metric, Format, IngestOptions};
use super::responses::{parse_correct_json, parse_correct_number, Provenance};
use super::sink::{read_files, Sink};

/// One per-sample file and what its path says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleFile {
    pub path: PathBuf,
    pub model_id: String,
    /// The task as rows are named by it (a leaderboard's without its `leaderboard_` prefix).
    pub task: String,
    /// The task as the file name has it (the key of the results file's `n-shot`).
    pub file_task: String,
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
        if is_timestamp(rest) {
            return (body[..pos].to_string(), rest.to_string());
        }
    }
    (body.to_string(), String::new())
}

/// Whether a name starts with a date, `YYYY-MM-DD` (run timestamps, their folders).
pub fn is_timestamp(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
}

/// lm-eval-harness writes `org/model` as the folder `org__model`; the leaderboards' details
/// repositories add `details_` (v1) or `-details` (v2) around it.
pub fn model_id_from_folder(name: &str) -> String {
    let name = name.strip_prefix("details_").unwrap_or(name);
    let name = name.strip_suffix("-details").unwrap_or(name);
    name.replace("__", "/")
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The model a result file belongs to: the `model_id` option; else, for lm-eval's layout, the
/// first folder below `root` (or `root`'s own name for files directly inside it); for the
/// leaderboards' layouts, the nearest folder above the file that is not a run timestamp.
pub fn model_of(root: &Path, path: &Path, format: Format, opts: &IngestOptions) -> Result<String> {
    let model_id = if let Some(m) = &opts.model_id {
        m.clone()
    } else if root.is_file() {
        let mut folder = root.parent();
        while let Some(f) = folder.filter(|f| is_timestamp(&file_name(f))) {
            folder = f.parent();
        }
        model_id_from_folder(&folder.map(file_name).unwrap_or_default())
    } else if matches!(format, Format::LmEval | Format::LmEvalParquet) {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let mut parts = rel.components();
        let first = parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().to_string());
        match (first, parts.next()) {
            (Some(folder), Some(_)) => model_id_from_folder(&folder),
            _ => model_id_from_folder(&file_name(root)),
        }
    } else {
        let mut folder = path.parent();
        while let Some(f) = folder.filter(|f| is_timestamp(&file_name(f)) && *f != root) {
            folder = f.parent();
        }
        model_id_from_folder(&folder.map(file_name).unwrap_or_default())
    };
    if model_id.is_empty() {
        return Err(DataError::invalid(
            path.display().to_string(),
            "cannot tell the model id from the path; pass the option model_id",
        ));
    }
    Ok(model_id)
}

/// Keeps, per (model, task), the run with the latest timestamp (of equal ones, the first).
pub fn keep_latest<T>(
    latest: &mut BTreeMap<(String, String), T>,
    key: (String, String),
    file: T,
    timestamp: fn(&T) -> &String,
) {
    match latest.get(&key) {
        Some(prev) if timestamp(prev) >= timestamp(&file) => {}
        _ => {
            latest.insert(key, file);
        }
    }
}

/// Finds the sample files under `root` and assigns each a model id ([`model_of`]). Keeps the
/// latest timestamp per (model, task).
pub fn discover(root: &Path, format: Format, opts: &IngestOptions) -> Result<Vec<SampleFile>> {
    let leaderboard = format == Format::LeaderboardV2;
    let mut files = files_with_extension(root, format.extensions())?;
    if leaderboard {
        // The details folders also hold `results_<timestamp>.json`.
        files.retain(|p| file_name(p).starts_with("samples_"));
        if files.is_empty() {
            return Err(DataError::Empty {
                place: format!(
                    "{} (no samples_*.jsonl or samples_*.json files)",
                    root.display()
                ),
            });
        }
    }
    let mut latest: BTreeMap<(String, String), SampleFile> = BTreeMap::new();
    for path in files {
        let model_id = model_of(root, &path, format, opts)?;
        let (file_task, timestamp) = parse_sample_file_name(&file_name(&path));
        let task = match file_task.strip_prefix("leaderboard_") {
            Some(t) if leaderboard && !t.is_empty() => t.to_string(),
            _ => file_task.clone(),
        };
        let file = SampleFile {
            path,
            model_id,
            task,
            file_task,
            timestamp,
        };
        let key = (file.model_id.clone(), file.task.clone());
        keep_latest(&mut latest, key, file, |f| &f.timestamp);
    }
    Ok(latest.into_values().collect())
}

/// Reads every per-sample file under `root` into the sink: parsed in parallel, merged in
/// file order ([`read_files`]).
pub fn read(root: &Path, format: Format, opts: &IngestOptions, sink: &mut Sink) -> Result<()> {
    let files = discover(root, format, opts)?;
    let mut shots = NShots::default();
    read_files(
        &files,
        sink,
        |file| {
            let n_shot = if opts.provenance {
                shots.of(file)?
            } else {
                None
            };
            Ok(TaskInfo::new(file, format, opts, n_shot))
        },
        |file, task, table| {
            let known = table.map(|t| t.ids_of(task.benchmark, &file.task));
            match format {
                Format::LmEvalParquet => read_parquet_file(file, task, opts, known),
                _ => read_json_file(file, task, opts, known),
            }
        },
        |out, sink| out.merge(sink),
    )
}

/// What every row of one task file shares.
struct TaskInfo<'a> {
    /// The benchmark the rows go to and the subtask that qualifies item ids (groups).
    benchmark: &'a str,
    subtask: Option<&'a str>,
    /// Metrics to look for, in order, and whether only these may be used.
    metrics: Vec<&'a str>,
    strict: bool,
    n_shot: Option<u32>,
}

impl<'a> TaskInfo<'a> {
    fn new(
        file: &'a SampleFile,
        format: Format,
        opts: &'a IngestOptions,
        n_shot: Option<u32>,
    ) -> Self {
        let (benchmark, subtask) = opts.benchmark_of(&file.task);
        let (metrics, strict) =
            opts.metrics_for(&file.task, leaderboard_metric(format, &file.task));
        Self {
            benchmark,
            subtask,
            metrics,
            strict,
            n_shot,
        }
    }
}

/// Few-shot counts from lm-eval's `results_<timestamp>.json` beside the sample files (its
/// `n-shot` map, else each task config's `num_fewshot`), read once per folder; the latest
/// results file wins for a task.
#[derive(Default)]
struct NShots {
    by_folder: HashMap<PathBuf, HashMap<String, u32>>,
}

#[derive(serde::Deserialize, Default)]
struct ResultsFile {
    #[serde(rename = "n-shot", default)]
    n_shot: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    configs: BTreeMap<String, TaskConfig>,
}

#[derive(serde::Deserialize)]
struct TaskConfig {
    num_fewshot: Option<serde_json::Value>,
}

impl NShots {
    fn of(&mut self, file: &SampleFile) -> Result<Option<u32>> {
        let folder = file.path.parent().unwrap_or(Path::new(".")).to_path_buf();
        if !self.by_folder.contains_key(&folder) {
            let shots = Self::read_folder(&folder)?;
            self.by_folder.insert(folder.clone(), shots);
        }
        Ok(self.by_folder[&folder].get(&file.file_task).copied())
    }

    fn read_folder(folder: &Path) -> Result<HashMap<String, u32>> {
        let mut results: Vec<PathBuf> = std::fs::read_dir(folder)
            .map_err(|e| DataError::io(folder, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                let n = file_name(p);
                n.starts_with("results") && n.ends_with(".json")
            })
            .collect();
        results.sort();
        let mut shots = HashMap::new();
        for path in results {
            let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
            let parsed: ResultsFile =
                serde_json::from_str(&text).map_err(|source| DataError::Json {
                    place: path.display().to_string(),
                    source,
                })?;
            let number = |v: &serde_json::Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
            for (task, config) in &parsed.configs {
                if let Some(n) = config.num_fewshot.as_ref().and_then(number) {
                    shots.insert(task.clone(), n);
                }
            }
            for (task, v) in &parsed.n_shot {
                if let Some(n) = number(v) {
                    shots.insert(task.clone(), n);
                }
            }
        }
        Ok(shots)
    }
}

/// The fields of one sample record that ingest reads; the rest is skipped without being
/// built (a record's `doc` and `resps` are most of its bytes).
#[derive(Debug, Default)]
struct SampleRecord {
    doc_id: Option<serde_json::Value>,
    filter: Option<serde_json::Value>,
    doc_hash: Option<String>,
    prompt_hash: Option<String>,
    /// The wanted metrics present (their index in the list), in the record's order.
    metrics: Vec<(usize, serde_json::Value)>,
    /// Every top-level key, comma-separated, for the message when no wanted metric is present.
    keys: String,
    /// Kept for the items table only.
    doc: Option<serde_json::Value>,
    target: Option<serde_json::Value>,
    arguments: Option<serde_json::Value>,
}

/// Parses a [`SampleRecord`], keeping the named metrics and, for items the items table still
/// lacks, the document (`wanted` says from the doc_id, which lm-eval writes first).
#[derive(Clone, Copy)]
struct RecordSeed<'a> {
    metrics: &'a [&'a str],
    wanted: Option<&'a dyn Fn(&serde_json::Value) -> bool>,
}

impl<'de> DeserializeSeed<'de> for RecordSeed<'_> {
    type Value = SampleRecord;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<SampleRecord, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_> {
    type Value = SampleRecord;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an lm-eval sample record (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<SampleRecord, A::Error> {
        let mut r = SampleRecord::default();
        let mut keep: Option<bool> = None;
        while let Some(field) = map.next_key_seed(FieldSeed {
            metrics: self.metrics,
            names: &mut r.keys,
        })? {
            let mut keep_item = || {
                *keep.get_or_insert_with(|| match (self.wanted, &r.doc_id) {
                    (Some(wanted), Some(id)) => wanted(id),
                    (wanted, None) => wanted.is_some(),
                    (None, _) => false,
                })
            };
            match field {
                Field::DocId => r.doc_id = Some(map.next_value()?),
                Field::Filter => r.filter = Some(map.next_value()?),
                Field::DocHash => r.doc_hash = map.next_value()?,
                Field::PromptHash => r.prompt_hash = map.next_value()?,
                Field::Doc if keep_item() => r.doc = Some(map.next_value()?),
                Field::Target if keep_item() => r.target = Some(map.next_value()?),
                Field::Arguments if keep_item() => r.arguments = Some(map.next_value()?),
                Field::Metric(k) => r.metrics.push((k, map.next_value()?)),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// A record's key, recognised without allocating.
enum Field {
    DocId,
    Filter,
    DocHash,
    PromptHash,
    Doc,
    Target,
    Arguments,
    /// One of the wanted metrics, by its index in the list.
    Metric(usize),
    Other,
}

/// Reads a key as a [`Field`], appending its name to `names` (for messages).
struct FieldSeed<'a> {
    metrics: &'a [&'a str],
    names: &'a mut String,
}

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Field;
    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        d: D,
    ) -> std::result::Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> std::result::Result<Field, E> {
        if !self.names.is_empty() {
            self.names.push_str(", ");
        }
        self.names.push_str(key);
        Ok(match key {
            "doc_id" => Field::DocId,
            "filter" => Field::Filter,
            "doc_hash" => Field::DocHash,
            "prompt_hash" => Field::PromptHash,
            "doc" => Field::Doc,
            "target" => Field::Target,
            "arguments" => Field::Arguments,
            k => match self.metrics.iter().position(|m| *m == k) {
                Some(i) => Field::Metric(i),
                None => Field::Other,
            },
        })
    }
}

/// The records of a `.json` file holding an array of them.
struct RecordArray<'a, F> {
    seed: RecordSeed<'a>,
    each: F,
}

impl<'de, F> Visitor<'de> for RecordArray<'_, F>
where
    F: FnMut(u64, SampleRecord) -> Result<()>,
{
    type Value = Result<()>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of lm-eval sample records")
    }

    fn visit_seq<A: SeqAccess<'de>>(
        mut self,
        mut seq: A,
    ) -> std::result::Result<Result<()>, A::Error> {
        let mut n = 0u64;
        while let Some(record) = seq.next_element_seed(self.seed)? {
            n += 1;
            if let Err(e) = (self.each)(n, record) {
                // Stop reading; the caller reports the first error.
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }
}

/// One record under a filter.
struct FilterRow<'a> {
    position: u64,
    item: String,
    correct: bool,
    metric: &'a str,
    prompt_hash: Option<String>,
}

/// What one file yields, gathered apart from the sink so that files can be parsed in
/// parallel and merged in order.
struct FileOut<'a> {
    file: &'a SampleFile,
    task: TaskInfo<'a>,
    name: String,
    /// How positions are counted: "line", "record" (JSON arrays), "row" (Parquet).
    unit: &'static str,
    /// Kept rows (the chosen filter's), by position.
    rows: Vec<FilterRow<'a>>,
    /// What was skipped or fell back, for stderr.
    notes: Vec<String>,
    /// (position, item, doc_hash) of every record that has a hash.
    hashes: Vec<(u64, String, String)>,
    /// Records of items the items table lacked (`None`: no items table asked for).
    items: Option<Vec<(String, ItemRecord)>>,
}

impl<'a> FileOut<'a> {
    fn new(file: &'a SampleFile, task: TaskInfo<'a>, unit: &'static str, items: bool) -> Self {
        Self {
            file,
            task,
            name: file.path.display().to_string(),
            unit,
            rows: Vec::new(),
            notes: Vec::new(),
            hashes: Vec::new(),
            items: items.then(Vec::new),
        }
    }

    /// As the responses builder names a place, `file, line 12`.
    fn place(&self, position: u64) -> String {
        format!("{}, {} {position}", self.name, self.unit)
    }

    /// Adds the file to the sink: its doc hashes checked against every earlier file's, its
    /// items, its notes on stderr, its responses.
    fn merge(self, sink: &mut Sink) -> Result<()> {
        let benchmark = self.task.benchmark;
        for (position, item, hash) in &self.hashes {
            sink.hashes
                .check(benchmark, item, hash, || self.place(*position))?;
        }
        if let (Some(items), Some(table)) = (self.items, sink.items.as_deref_mut()) {
            for (item, record) in items {
                table.push(benchmark, &item, record);
            }
        }
        for note in &self.notes {
            eprintln!("{note}");
        }
        let source = sink.responses.begin_source(self.name, self.unit);
        for row in self.rows {
            sink.responses.push_with(
                source,
                row.position,
                &self.file.model_id,
                benchmark,
                &row.item,
                row.correct,
                Provenance {
                    metric: Some(row.metric),
                    n_shot: self.task.n_shot,
                    prompt_hash: row.prompt_hash.as_deref(),
                },
            )?;
        }
        Ok(())
    }
}

/// A task file's responses grouped by answer filter, before one filter is chosen: lm-eval
/// logs one record per (document, filter), `none` for multiple choice, one per filter of the
/// task's filter list for generation.
#[derive(Default)]
struct TaskRows<'a> {
    /// (filter, rows), in order of first appearance.
    groups: Vec<(Option<String>, Vec<FilterRow<'a>>)>,
    /// Records whose metric came from the defaults, not the `metric` option: (metric, count).
    fallbacks: BTreeMap<String, usize>,
}

impl<'a> TaskRows<'a> {
    fn push(&mut self, filter: Option<&str>, row: FilterRow<'a>) {
        let k = match self.groups.iter().position(|(f, _)| f.as_deref() == filter) {
            Some(k) => k,
            None => {
                self.groups.push((filter.map(String::from), Vec::new()));
                self.groups.len() - 1
            }
        };
        self.groups[k].1.push(row);
    }

    /// Keeps the chosen filter's rows (and rows that name no filter) in `out`, noting what
    /// was skipped and why.
    fn finish(self, opts: &IngestOptions, out: &mut FileOut<'a>) -> Result<()> {
        let name = out.name.clone();
        let task_name = &out.file.task;
        let filters: Vec<&str> = self
            .groups
            .iter()
            .filter_map(|(f, _)| f.as_deref())
            .collect();
        let listed = || format!("`{}`", filters.join("`, `"));
        let chosen: Option<String> = if let Some(wanted) = opts.filter_by_task.get(task_name) {
            if !filters.contains(&wanted.as_str()) {
                return Err(DataError::invalid(
                    &name,
                    format!(
                        "task `{task_name}` has no records of filter `{wanted}` (filters: {})",
                        listed()
                    ),
                ));
            }
            Some(wanted.clone())
        } else if let Some(wanted) = &opts.filter {
            if filters.contains(&wanted.as_str()) {
                Some(wanted.clone())
            } else if filters.len() == 1 {
                out.notes.push(format!(
                    "ingest: {name}: task `{task_name}` logs only filter `{}`; kept it (not `{wanted}`)",
                    filters[0]
                ));
                Some(filters[0].to_string())
            } else if filters.is_empty() {
                None
            } else {
                return Err(DataError::invalid(
                    &name,
                    format!(
                        "task `{task_name}` has no records of filter `{wanted}` (filters: {}); choose \
                         per task with {{\"filter\": {{\"{task_name}\": \"...\"}}}}",
                        listed()
                    ),
                ));
            }
        } else {
            filters.first().map(|f| f.to_string())
        };
        let mut skipped: Vec<(String, usize)> = Vec::new();
        for (filter, rows) in self.groups {
            if filter.is_none() || filter == chosen {
                out.rows.extend(rows);
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
            out.notes.push(format!(
                "ingest: {name}: task `{task_name}`: kept the records of filter `{}`; skipped {n} \
                 records of filter {} (the option filter chooses)",
                chosen.as_deref().unwrap_or(""),
                which.join(", ")
            ));
        }
        for (metric, n) in &self.fallbacks {
            out.notes.push(format!(
                "ingest: {name}: task `{task_name}` has none of the metrics asked for ({}); used \
                 `{metric}` for {n} records",
                opts.metric.as_deref().unwrap_or("")
            ));
        }
        out.rows.sort_by_key(|r| r.position);
        Ok(())
    }
}

/// The metric to read among `present` names: the first of the task's list; with `strict`
/// (the task's own list, or the leaderboard's metric) nothing else. Also says whether it came
/// from the defaults although the option named others.
fn pick_metric<'a>(
    task_name: &str,
    task: &TaskInfo<'a>,
    present: impl Fn(&str) -> bool,
    opts: &IngestOptions,
) -> std::result::Result<(&'a str, bool), String> {
    let asked = opts
        .metric
        .as_deref()
        .map_or(0, |m| m.split(',').filter(|x| !x.trim().is_empty()).count());
    match task.metrics.iter().position(|m| present(m)) {
        Some(k) => Ok((
            task.metrics[k],
            !task.strict && opts.metric.is_some() && k >= asked,
        )),
        None => Err(format!(
            "no metric `{}` for task `{task_name}`; choose one with the option metric (per task: \
             {{\"metric\": {{\"{task_name}\": \"...\"}}}})",
            task.metrics.join("` or `")
        )),
    }
}

/// A `.jsonl` file, or a `.json` file holding either an array of records or one per line.
/// `known`: the ids of the task's items the items table has (`None`: no items table).
fn read_json_file<'a>(
    file: &'a SampleFile,
    task: TaskInfo<'a>,
    opts: &IngestOptions,
    known: Option<&HashSet<String>>,
) -> Result<FileOut<'a>> {
    let is_array = file.path.extension().is_some_and(|e| e == "json") && {
        use std::io::Read;
        let mut head = [0u8; 256];
        let n = std::fs::File::open(&file.path)
            .and_then(|mut f| f.read(&mut head))
            .map_err(|e| DataError::io(&file.path, e))?;
        head[..n]
            .iter()
            .find(|b| !b.is_ascii_whitespace() && !matches!(b, 0xEF | 0xBB | 0xBF))
            == Some(&b'[')
    };
    let mut out = FileOut::new(
        file,
        task,
        if is_array { "record" } else { "line" },
        known.is_some(),
    );
    // A record's document is parsed only for items the table lacks.
    let metrics = out.task.metrics.clone();
    let subtask = out.task.subtask;
    // The item id is written into one buffer per file: this runs for every record.
    let id_buffer = std::cell::RefCell::new(String::new());
    let wanted = |id: &serde_json::Value| -> bool {
        use std::fmt::Write;
        let Some(known) = known else {
            return false;
        };
        let mut buf = id_buffer.borrow_mut();
        buf.clear();
        if let Some(sub) = subtask {
            buf.push_str(sub);
            buf.push('/');
        }
        match id {
            serde_json::Value::Number(n) => {
                let _ = write!(buf, "{n}");
            }
            serde_json::Value::String(s) => buf.push_str(s),
            _ => return true,
        }
        !known.contains(buf.as_str())
    };
    let seed = RecordSeed {
        metrics: &metrics,
        wanted: known
            .is_some()
            .then_some(&wanted as &dyn Fn(&serde_json::Value) -> bool),
    };
    let mut rows = TaskRows::default();
    if is_array {
        let f = std::fs::File::open(&file.path).map_err(|e| DataError::io(&file.path, e))?;
        let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(f));
        let visitor = RecordArray {
            seed,
            each: |n, record| take_record(opts, known, &mut out, &mut rows, n, record),
        };
        let name = file.path.display().to_string();
        serde::Deserializer::deserialize_seq(&mut de, visitor).map_err(|source| {
            DataError::Json {
                place: name.clone(),
                source,
            }
        })??;
        de.end().map_err(|source| DataError::Json {
            place: name,
            source,
        })?;
    } else {
        super::files::for_each_line(&file.path, |line_no, line| {
            if line.trim().is_empty() {
                return Ok(());
            }
            let mut de = serde_json::Deserializer::from_str(line);
            let record = seed
                .deserialize(&mut de)
                .and_then(|r| de.end().map(|_| r))
                .map_err(|e| DataError::Json {
                    place: out.place(line_no),
                    source: e,
                })?;
            take_record(opts, known, &mut out, &mut rows, line_no, record)
        })?;
    }
    rows.finish(opts, &mut out)?;
    Ok(out)
}

/// An item id under its subtask, `navigate/3` (groups), else the doc_id.
fn qualified(subtask: Option<&str>, doc_id: &str) -> String {
    match subtask {
        Some(sub) => format!("{sub}/{doc_id}"),
        None => doc_id.to_string(),
    }
}

/// Checks one record and files its response under its filter (and its item, when the items
/// table lacks it: `known` holds the ids it has).
fn take_record<'a>(
    opts: &IngestOptions,
    known: Option<&HashSet<String>>,
    out: &mut FileOut<'a>,
    rows: &mut TaskRows<'a>,
    position: u64,
    record: SampleRecord,
) -> Result<()> {
    let filter = match &record.filter {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(f)) => Some(f.as_str()),
        Some(other) => {
            return Err(DataError::invalid(
                out.place(position),
                format!("`filter` must be a string, found {other}"),
            ))
        }
    };
    let doc_id = match &record.doc_id {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(other) => {
            return Err(DataError::invalid(
                out.place(position),
                format!("`doc_id` must be a number or a non-empty string, found {other}"),
            ))
        }
        None => {
            return Err(DataError::Missing {
                place: out.place(position),
                what: "field",
                name: "doc_id".into(),
            })
        }
    };
    let item_id = qualified(out.task.subtask, &doc_id);
    let (metric, fallback) = pick_metric(
        &out.file.task,
        &out.task,
        |m| {
            record
                .metrics
                .iter()
                .any(|(k, _)| out.task.metrics[*k] == m)
        },
        opts,
    )
    .map_err(|message| {
        DataError::invalid(
            out.place(position),
            format!("{message} (fields present: {})", record.keys),
        )
    })?;
    if fallback {
        *rows.fallbacks.entry(metric.to_string()).or_default() += 1;
    }
    let value = &record
        .metrics
        .iter()
        .find(|(k, _)| out.task.metrics[*k] == metric)
        .expect("picked among present")
        .1;
    let correct = match parse_correct_json(value) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(DataError::NullCorrect {
                place: out.place(position),
            })
        }
        Err(v) => {
            return Err(DataError::BadCorrect {
                place: format!("{} (field `{metric}`)", out.place(position)),
                value: v,
            })
        }
    };
    if let Some(hash) = &record.doc_hash {
        out.hashes.push((position, item_id.clone(), hash.clone()));
    }
    if known.is_some_and(|k| !k.contains(&item_id)) {
        let item = item_record(&out.file.task, &record);
        if let Some(items) = &mut out.items {
            items.push((item_id.clone(), item));
        }
    }
    rows.push(
        filter,
        FilterRow {
            position,
            item: item_id,
            correct,
            metric,
            prompt_hash: record.prompt_hash,
        },
    );
    Ok(())
}

/// An lm-eval record's item: the doc's question and choices (else the continuations scored,
/// for multiple choice), the target, the context of the first request.
fn item_record(task: &str, record: &SampleRecord) -> ItemRecord {
    let doc = record.doc.as_ref();
    let requests: Vec<&serde_json::Value> = match &record.arguments {
        // 0.4 logs `{"gen_args_0": {"arg_0": context, "arg_1": continuation}, ...}`.
        Some(serde_json::Value::Object(args)) => {
            let mut keyed: Vec<(&String, &serde_json::Value)> = args.iter().collect();
            keyed.sort_by_key(|(k, _)| {
                k.rsplit('_')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
                    .unwrap_or(usize::MAX)
            });
            keyed.into_iter().map(|(_, v)| v).collect()
        }
        // Earlier versions log a list of [context, continuation] pairs.
        Some(serde_json::Value::Array(list)) => list.iter().collect(),
        _ => Vec::new(),
    };
    let arg = |request: &serde_json::Value, k: usize| -> Option<String> {
        match request {
            serde_json::Value::Object(m) => m.get(&format!("arg_{k}")).and_then(value_text),
            serde_json::Value::Array(a) => a.get(k).and_then(value_text),
            _ => None,
        }
    };
    let continuations = || -> Option<Vec<String>> {
        let list: Vec<String> = requests
            .iter()
            .filter_map(|r| match r {
                serde_json::Value::Object(m) => m.get("arg_1")?.as_str().map(str::to_string),
                serde_json::Value::Array(a) => a.get(1)?.as_str().map(str::to_string),
                _ => None,
            })
            .collect();
        (list.len() > 1).then_some(list)
    };
    ItemRecord {
        task: task.to_string(),
        question: doc.and_then(question_of),
        choices: doc.and_then(choices_of).or_else(continuations),
        target: record.target.as_ref().and_then(value_text),
        doc_hash: record.doc_hash.clone(),
        prompt: requests.first().and_then(|r| arg(r, 0)),
        doc: doc.map(|d| d.to_string()),
    }
}

fn read_parquet_file<'a>(
    file: &'a SampleFile,
    task: TaskInfo<'a>,
    opts: &IngestOptions,
    known: Option<&HashSet<String>>,
) -> Result<FileOut<'a>> {
    let name = file.path.display().to_string();
    let present = super::files::parquet_columns(&file.path)?;
    let has = |c: &str| present.iter().any(|p| p == c);
    let (metric, fallback) = pick_metric(&file.task, &task, has, opts).map_err(|message| {
        DataError::invalid(
            &name,
            format!("{message} (columns present: {})", present.join(", ")),
        )
    })?;
    let mut out = FileOut::new(file, task, "row", known.is_some());
    let mut rows = TaskRows::default();
    let mut row = 0u64;
    let mut columns = vec!["doc_id", metric];
    let optional = ["filter", "doc_hash", "prompt_hash", "target"];
    let mut at: HashMap<&str, usize> = HashMap::new();
    for c in optional {
        if has(c) {
            at.insert(c, columns.len());
            columns.push(c);
        }
    }
    for batch in open_parquet(&file.path, &columns)? {
        let batch = batch?;
        let text = |c: &str| -> Result<Option<arrow::array::StringArray>> {
            at.get(c)
                .map(|&k| {
                    super::columns::ids(batch.column(k), c).map_err(|e| DataError::column(&name, e))
                })
                .transpose()
        };
        let (filters, doc_hashes, prompt_hashes) =
            (text("filter")?, text("doc_hash")?, text("prompt_hash")?);
        // A target that is not text (a list of answers) is left out of the items table.
        let targets = at
            .get("target")
            .and_then(|&k| super::columns::ids(batch.column(k), "target").ok());
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
        let cell = |a: &Option<arrow::array::StringArray>, i: usize| -> Option<String> {
            a.as_ref()
                .and_then(|a| (!a.is_null(i)).then(|| a.value(i).to_string()))
        };
        for i in 0..batch.num_rows() {
            row += 1;
            if ids.is_null(i) || ids.value(i).trim().is_empty() {
                return Err(DataError::NullKey {
                    place: out.place(row),
                    column: "doc_id",
                });
            }
            if values.is_null(i) {
                return Err(DataError::NullCorrect {
                    place: out.place(row),
                });
            }
            let correct = match &numbers {
                None => values.as_boolean().value(i),
                Some(n) => {
                    let x = n.as_primitive::<arrow::datatypes::Float64Type>().value(i);
                    parse_correct_number(x).map_err(|value| DataError::BadCorrect {
                        place: format!("{} (column `{metric}`)", out.place(row)),
                        value,
                    })?
                }
            };
            let item_id = qualified(out.task.subtask, ids.value(i));
            let doc_hash = cell(&doc_hashes, i);
            if let Some(hash) = &doc_hash {
                out.hashes.push((row, item_id.clone(), hash.clone()));
            }
            let lacking = known.is_some_and(|k| !k.contains(&item_id));
            if let (true, Some(items)) = (lacking, &mut out.items) {
                let item = ItemRecord {
                    task: file.task.clone(),
                    target: cell(&targets, i),
                    doc_hash,
                    ..Default::default()
                };
                items.push((item_id.clone(), item));
            }
            if fallback {
                *rows.fallbacks.entry(metric.to_string()).or_default() += 1;
            }
            let filter = filters
                .as_ref()
                .and_then(|f| (!f.is_null(i)).then(|| f.value(i)));
            rows.push(
                filter,
                FilterRow {
                    position: row,
                    item: item_id,
                    correct,
                    metric,
                    prompt_hash: cell(&prompt_hashes, i),
                },
            );
        }
    }
    rows.finish(opts, &mut out)?;
    Ok(out)
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
