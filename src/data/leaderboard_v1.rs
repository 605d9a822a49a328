//! Open LLM Leaderboard v1 details: per model, `<timestamp>/details_harness|<task>|<n_shot>_
//! <timestamp>.parquet` (the folder may write the timestamp with `:`), rows in lighteval's
//! detail record: `example`, `full_prompt`, `predictions`, `gold`, `choices`, `gold_index`,
//! `metrics` (a struct, or flattened `metrics.<name>` columns) and content hashes.
//!
//! The rows carry no document id: an item is its row position, and every model's row at that
//! position must hold the same example, checked by content hash (of `example`, else the
//! file's `hash_example`, else of `full_prompt`). A model whose rows differ
//! from the first model's is an error naming it and the first differing row, unless the
//! option `align` is `content`: then an item is its content hash wherever it sits.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, ArrayRef, AsArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

use super::error::{DataError, Result};
use super::files::{files_with_extension, open_parquet, parquet_columns};
use super::items::ItemRecord;
use super::lm_eval::{keep_latest, model_of};
use super::options::{leaderboard_metric, Align, Format, IngestOptions};
use super::responses::{parse_correct_number, Provenance};
use super::sink::{read_files, Sink};
use crate::checksum::bytes_checksum;

/// One details file and what its name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetailsFile {
    pub path: PathBuf,
    pub model_id: String,
    pub task: String,
    pub n_shot: Option<u32>,
    pub timestamp: String,
}

/// Splits `details_<suite>|<task>|<n_shot>_<timestamp>.parquet` into (task, n_shot,
/// timestamp); `None` for other names.
pub fn parse_details_file_name(name: &str) -> Option<(String, Option<u32>, String)> {
    let stem = name.strip_suffix(".parquet")?.strip_prefix("details_")?;
    let mut parts = stem.splitn(3, '|');
    let (_suite, task, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if task.is_empty() {
        return None;
    }
    let (shots, timestamp) = rest.split_once('_').unwrap_or((rest, ""));
    Some((task.to_string(), shots.parse().ok(), timestamp.to_string()))
}

/// The details files under `root`, the latest timestamp per (model, task).
pub fn discover(root: &Path, opts: &IngestOptions) -> Result<Vec<DetailsFile>> {
    let mut latest: BTreeMap<(String, String), DetailsFile> = BTreeMap::new();
    for path in files_with_extension(root, Format::LeaderboardV1.extensions())? {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let Some((task, n_shot, timestamp)) = parse_details_file_name(&name) else {
            continue;
        };
        let file = DetailsFile {
            model_id: model_of(root, &path, Format::LeaderboardV1, opts)?,
            path,
            task,
            n_shot,
            timestamp,
        };
        let key = (file.model_id.clone(), file.task.clone());
        keep_latest(&mut latest, key, file, |f| &f.timestamp);
    }
    if latest.is_empty() {
        return Err(DataError::Empty {
            place: format!(
                "{} (no details_<suite>|<task>|<n_shot>_<timestamp>.parquet files)",
                root.display()
            ),
        });
    }
    Ok(latest.into_values().collect())
}

/// The first model's content hashes per task, which every other model's rows must repeat.
#[derive(Default)]
struct Reference {
    by_task: HashMap<String, (String, String, Vec<String>)>,
}

/// Reads every details file under `root` into the sink: parsed in parallel, merged (and
/// checked against the first model's rows) in file order ([`read_files`]).
pub fn read(root: &Path, opts: &IngestOptions, sink: &mut Sink) -> Result<()> {
    let files = discover(root, opts)?;
    let mut reference = Reference::default();
    read_files(
        &files,
        sink,
        |_| Ok(()),
        |file, (), table| {
            let (benchmark, _) = opts.benchmark_of(&file.task);
            read_file(file, opts, table.map(|t| t.ids_of(benchmark, &file.task)))
        },
        |out, sink| out.merge(opts, sink, &mut reference),
    )
}

/// One row's response.
struct DetailsRow {
    position: u64,
    item: String,
    correct: bool,
    prompt_hash: Option<String>,
}

/// What one details file yields, apart from the sink (files are parsed in parallel).
struct DetailsOut<'a> {
    file: &'a DetailsFile,
    name: String,
    benchmark: &'a str,
    metric: String,
    rows: Vec<DetailsRow>,
    /// Every row's content hash, in order (for the position check).
    hashes: Vec<String>,
    items: Vec<(String, ItemRecord)>,
}

impl DetailsOut<'_> {
    fn merge(self, opts: &IngestOptions, sink: &mut Sink, reference: &mut Reference) -> Result<()> {
        if opts.align == Align::Position {
            check_positions(self.file, &self.name, self.hashes, reference)?;
        }
        if let Some(table) = sink.items.as_deref_mut() {
            for (item, record) in self.items {
                table.push(self.benchmark, &item, record);
            }
        }
        let source = sink.responses.begin_source(self.name, "row");
        for row in self.rows {
            sink.responses.push_with(
                source,
                row.position,
                &self.file.model_id,
                self.benchmark,
                &row.item,
                row.correct,
                Provenance {
                    metric: Some(&self.metric),
                    n_shot: self.file.n_shot,
                    prompt_hash: row.prompt_hash.as_deref(),
                },
            )?;
        }
        Ok(())
    }
}

/// The columns of one file that ingest reads, found once.
struct Columns {
    metric: String,
    /// The metric is a field of the `metrics` struct rather than its own column.
    in_struct: bool,
    hash: HashSource,
    prompt_hash: Option<&'static str>,
    present: Vec<String>,
}

/// Where a row's content hash comes from.
#[derive(Clone, Copy)]
enum HashSource {
    Column(&'static str),
    TextOf(&'static str),
}

fn find_columns(file: &DetailsFile, opts: &IngestOptions) -> Result<Columns> {
    let name = file.path.display().to_string();
    let present = parquet_columns(&file.path)?;
    let has = |c: &str| present.iter().any(|p| p == c);
    let struct_fields: Vec<String> = if has("metrics") {
        let mut batches = open_parquet(&file.path, &["metrics"])?;
        match batches.next().transpose()? {
            Some(b) => match b.column(0).data_type() {
                DataType::Struct(fields) => fields.iter().map(|f| f.name().clone()).collect(),
                other => {
                    return Err(DataError::invalid(
                        &name,
                        format!(
                            "column `metrics` must be a struct of metric values, found {other}"
                        ),
                    ))
                }
            },
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let (list, _) = opts.metrics_for(
        &file.task,
        leaderboard_metric(Format::LeaderboardV1, &file.task),
    );
    let metric = list.iter().find_map(|m| {
        if has(&format!("metrics.{m}")) {
            Some((format!("metrics.{m}"), false))
        } else if struct_fields.iter().any(|f| f == m) {
            Some((m.to_string(), true))
        } else {
            None
        }
    });
    let Some((metric, in_struct)) = metric else {
        let mut offered: Vec<String> = struct_fields.clone();
        offered.extend(
            present
                .iter()
                .filter_map(|c| c.strip_prefix("metrics.").map(str::to_string)),
        );
        return Err(DataError::invalid(
            &name,
            format!(
                "no metric `{}` for task `{}` (metrics present: {}); choose one with the option \
                 metric (per task: {{\"metric\": {{\"{}\": \"...\"}}}})",
                list.join("` or `"),
                file.task,
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                },
                file.task
            ),
        ));
    };
    let pick = |names: &[&'static str]| names.iter().copied().find(|c| has(c));
    // The example's own text first, so that files which differ in which hash columns they
    // carry still compare alike.
    let hash = if let Some(c) = pick(&["example"]) {
        HashSource::TextOf(c)
    } else if let Some(c) = pick(&["hash_example", "example_hash"]) {
        HashSource::Column(c)
    } else if let Some(c) = pick(&["full_prompt"]) {
        HashSource::TextOf(c)
    } else {
        return Err(DataError::invalid(
            &name,
            format!(
                "no column to identify rows by content (hash_example, example or full_prompt; \
                 columns present: {})",
                present.join(", ")
            ),
        ));
    };
    Ok(Columns {
        metric,
        in_struct,
        hash,
        prompt_hash: pick(&["hash_full_prompt", "full_prompt_hash"]),
        present,
    })
}

/// A text column of a batch (any string type), if the file has it.
fn text_column(
    batch: &arrow::array::RecordBatch,
    names: &[String],
    column: &str,
    place: &str,
) -> Result<Option<StringArray>> {
    match names.iter().position(|n| n == column) {
        Some(k) => super::columns::ids(batch.column(k), column)
            .map(Some)
            .map_err(|e| DataError::column(place, e)),
        None => Ok(None),
    }
}

/// Reads one details file; `known` holds the ids of the task's items the items table has
/// (`None`: no items table).
fn read_file<'a>(
    file: &'a DetailsFile,
    opts: &'a IngestOptions,
    known: Option<&HashSet<String>>,
) -> Result<DetailsOut<'a>> {
    let name = file.path.display().to_string();
    let cols = find_columns(file, opts)?;
    let (benchmark, subtask) = opts.benchmark_of(&file.task);
    let metric_name = cols
        .metric
        .strip_prefix("metrics.")
        .unwrap_or(&cols.metric)
        .to_string();
    // What to read: the metric, the hash source, and what the items table shows.
    let mut wanted: Vec<String> = vec![if cols.in_struct {
        "metrics".to_string()
    } else {
        cols.metric.clone()
    }];
    let mut add = |c: &str| {
        if cols.present.iter().any(|p| p == c) && !wanted.iter().any(|w| w == c) {
            wanted.push(c.to_string());
        }
    };
    match cols.hash {
        HashSource::Column(c) | HashSource::TextOf(c) => add(c),
    }
    if let Some(c) = cols.prompt_hash {
        add(c);
    }
    if opts.provenance && cols.prompt_hash.is_none() {
        add("full_prompt");
    }
    if known.is_some() {
        for c in ["example", "full_prompt", "choices", "gold", "gold_index"] {
            add(c);
        }
    }
    let refs: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let mut out = DetailsOut {
        file,
        name: name.clone(),
        benchmark,
        metric: metric_name.clone(),
        rows: Vec::new(),
        hashes: Vec::new(),
        items: Vec::new(),
    };
    let mut row = 0u64;
    for batch in open_parquet(&file.path, &refs)? {
        let batch = batch?;
        let values = metric_values(batch.column(0), &cols, &name)?;
        let hash_text = match cols.hash {
            HashSource::Column(c) | HashSource::TextOf(c) => {
                text_column(&batch, &wanted, c, &name)?.expect("read")
            }
        };
        let prompt_hashes = match cols.prompt_hash {
            Some(c) => text_column(&batch, &wanted, c, &name)?,
            None => None,
        };
        let full_prompts = text_column(&batch, &wanted, "full_prompt", &name)?;
        let examples = text_column(&batch, &wanted, "example", &name)?;
        for i in 0..batch.num_rows() {
            let position = row;
            row += 1;
            let place = || format!("{name}, row {position}");
            if hash_text.is_null(i) {
                let column = match cols.hash {
                    HashSource::Column(c) | HashSource::TextOf(c) => c,
                };
                return Err(DataError::NullKey {
                    place: place(),
                    column,
                });
            }
            let hash = match cols.hash {
                HashSource::Column(_) => hash_text.value(i).to_string(),
                HashSource::TextOf(_) => bytes_checksum(hash_text.value(i).as_bytes()),
            };
            if values.is_null(i) {
                return Err(DataError::NullCorrect { place: place() });
            }
            let x = values.value(i);
            let correct = parse_correct_number(x).map_err(|value| DataError::BadCorrect {
                place: format!("{} (metric `{metric_name}`)", place()),
                value,
            })?;
            let key = match opts.align {
                Align::Position => position.to_string(),
                Align::Content => hash.clone(),
            };
            let item_id = match subtask {
                Some(sub) => format!("{sub}/{key}"),
                None => key,
            };
            let prompt_hash = match (&prompt_hashes, &full_prompts) {
                (Some(h), _) if !h.is_null(i) => Some(h.value(i).to_string()),
                (None, Some(p)) if opts.provenance && !p.is_null(i) => {
                    Some(bytes_checksum(p.value(i).as_bytes()))
                }
                _ => None,
            };
            if known.is_some_and(|k| !k.contains(&item_id)) {
                let cell = |a: &Option<StringArray>| {
                    a.as_ref()
                        .and_then(|a| (!a.is_null(i)).then(|| a.value(i).to_string()))
                };
                let item = ItemRecord {
                    task: file.task.clone(),
                    question: cell(&examples),
                    choices: list_cell(&batch, &wanted, "choices", i),
                    target: target_cell(&batch, &wanted, i),
                    doc_hash: Some(hash.clone()),
                    prompt: cell(&full_prompts),
                    doc: None,
                };
                out.items.push((item_id.clone(), item));
            }
            out.rows.push(DetailsRow {
                position,
                item: item_id,
                correct,
                prompt_hash,
            });
            if opts.align == Align::Position {
                out.hashes.push(hash);
            }
        }
    }
    Ok(out)
}

/// The metric of every row as numbers (booleans as 0/1).
fn metric_values(
    column: &ArrayRef,
    cols: &Columns,
    place: &str,
) -> Result<arrow::array::Float64Array> {
    let values = if cols.in_struct {
        column
            .as_struct()
            .column_by_name(&cols.metric)
            .cloned()
            .ok_or_else(|| {
                DataError::invalid(place, format!("`metrics` has no field `{}`", cols.metric))
            })?
    } else {
        column.clone()
    };
    let numbers = cast(&values, &DataType::Float64).map_err(|e| {
        DataError::invalid(
            place,
            format!("metric `{}` is not numeric or boolean: {e}", cols.metric),
        )
    })?;
    Ok(numbers.as_primitive::<Float64Type>().clone())
}

/// A list-of-text cell (`choices`), if the column is there and is a list.
fn list_cell(
    batch: &arrow::array::RecordBatch,
    names: &[String],
    column: &str,
    i: usize,
) -> Option<Vec<String>> {
    let k = names.iter().position(|n| n == column)?;
    let list = batch.column(k).as_list_opt::<i32>()?;
    if list.is_null(i) {
        return None;
    }
    let values = cast(&list.value(i), &DataType::Utf8).ok()?;
    let values = values.as_string::<i32>();
    Some(
        values
            .iter()
            .map(|v| v.unwrap_or_default().to_string())
            .collect(),
    )
}

/// The reference answer: `gold` (one text, or a list of one), else `gold_index`.
fn target_cell(batch: &arrow::array::RecordBatch, names: &[String], i: usize) -> Option<String> {
    if let Some(k) = names.iter().position(|n| n == "gold") {
        let gold = batch.column(k);
        if let Some(list) = list_cell(batch, names, "gold", i) {
            return Some(if list.len() == 1 {
                list[0].clone()
            } else {
                serde_json::to_string(&list).unwrap_or_default()
            });
        }
        if let Ok(text) = cast(gold, &DataType::Utf8) {
            let text = text.as_string::<i32>();
            if !text.is_null(i) {
                return Some(text.value(i).to_string());
            }
        }
    }
    let k = names.iter().position(|n| n == "gold_index")?;
    let gold = batch.column(k);
    let text = match gold.as_list_opt::<i32>() {
        Some(list) if !list.is_null(i) => cast(&list.value(i), &DataType::Utf8).ok()?,
        _ => cast(&gold.slice(i, 1), &DataType::Utf8).ok()?,
    };
    let text = text.as_string::<i32>();
    let parts: Vec<&str> = text.iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(","))
}

/// Compares a file's row hashes with the first model's for the task.
fn check_positions(
    file: &DetailsFile,
    name: &str,
    hashes: Vec<String>,
    reference: &mut Reference,
) -> Result<()> {
    let Some((model, first_file, expected)) = reference.by_task.get(&file.task) else {
        reference.by_task.insert(
            file.task.clone(),
            (file.model_id.clone(), name.to_string(), hashes),
        );
        return Ok(());
    };
    let hint = "leaderboard v1 rows carry no document id, so every model must list the same \
                examples in the same order; pass {\"align\": \"content\"} to match rows by \
                content instead";
    if let Some(row) = (0..hashes.len().min(expected.len())).find(|&r| hashes[r] != expected[r]) {
        return Err(DataError::invalid(
            format!("{name}, row {row}"),
            format!(
                "model `{}`: task `{}` row {row} holds a different example than model `{model}`'s \
                 row {row} ({first_file}); {hint}",
                file.model_id, file.task
            ),
        ));
    }
    if hashes.len() != expected.len() {
        return Err(DataError::invalid(
            name,
            format!(
                "model `{}`: task `{}` has {} rows, model `{model}` has {} ({first_file}); {hint}",
                file.model_id,
                file.task,
                hashes.len(),
                expected.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_details_file_name(
                "details_harness|arc:challenge|25_2023-10-08T19-41-47.870339.parquet"
            ),
            Some((
                "arc:challenge".into(),
                Some(25),
                "2023-10-08T19-41-47.870339".into()
            ))
        );
        assert_eq!(
            parse_details_file_name(
                "details_harness|hendrycksTest-abstract_algebra|5_2023-08-01.parquet"
            )
            .map(|p| (p.0, p.1)),
            Some(("hendrycksTest-abstract_algebra".into(), Some(5)))
        );
        assert_eq!(parse_details_file_name("results_2023-10-08.parquet"), None);
        assert_eq!(
            parse_details_file_name("details_harness||5_x.parquet"),
            None
        );
    }
}
