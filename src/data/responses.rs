//! The canonical `responses` table and a builder that validates rows as they arrive.
//!
//! Every reader in this layer pushes rows into a [`ResponsesBuilder`]: ids are interned once,
//! each row remembers where it came from (file and line or row), and duplicates of a
//! (model, benchmark, item) triple are an error that names both places unless the caller
//! chose a [`DuplicatePolicy`] that says how to combine them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::error::{DataError, Result};

/// Column names of the canonical table.
pub const MODEL_ID: &str = "model_id";
pub const BENCHMARK: &str = "benchmark";
pub const ITEM_ID: &str = "item_id";
pub const CORRECT: &str = "correct";

/// `responses(model_id, benchmark, item_id, correct)`, all non-null.
pub fn responses_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(MODEL_ID, DataType::Utf8, false),
        Field::new(BENCHMARK, DataType::Utf8, false),
        Field::new(ITEM_ID, DataType::Utf8, false),
        Field::new(CORRECT, DataType::Boolean, false),
    ]))
}

/// Provenance columns (the ingest option `provenance`): the metric that decided `correct`,
/// the number of few-shot examples and the hash of the prompt the model saw. NULL where the
/// source does not say.
pub const METRIC: &str = "metric";
pub const N_SHOT: &str = "n_shot";
pub const PROMPT_HASH: &str = "prompt_hash";

/// The canonical table plus the provenance columns.
pub fn responses_schema_with_provenance() -> SchemaRef {
    let mut fields: Vec<Field> = responses_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.extend([
        Field::new(METRIC, DataType::Utf8, true),
        Field::new(N_SHOT, DataType::Int64, true),
        Field::new(PROMPT_HASH, DataType::Utf8, true),
    ]);
    Arc::new(Schema::new(fields))
}

/// The protocol of one response, as its source records it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Provenance<'a> {
    pub metric: Option<&'a str>,
    pub n_shot: Option<u32>,
    pub prompt_hash: Option<&'a str>,
}

/// What to do when the same (model, benchmark, item) appears more than once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum DuplicatePolicy {
    /// Refuse the input, naming both places.
    #[default]
    Error,
    /// Keep the first response seen.
    First,
    /// Keep the last response seen.
    Last,
    /// Correct if any duplicate is correct (e.g. pass@k-style merges).
    Any,
    /// Correct only if every duplicate is correct.
    All,
}

impl DuplicatePolicy {
    pub const NAMES: &'static str = "'error', 'first', 'last', 'any', 'all'";

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "error" => Self::Error,
            "first" => Self::First,
            "last" => Self::Last,
            "any" => Self::Any,
            "all" => Self::All,
            _ => return None,
        })
    }
}

impl TryFrom<String> for DuplicatePolicy {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s)
            .ok_or_else(|| format!("unknown policy {s:?}; expected one of {}", Self::NAMES))
    }
}

/// Parses a cell of text as a 0/1 response. `Ok(None)` means "no response" (empty or NA).
pub fn parse_correct_text(text: &str) -> std::result::Result<Option<bool>, String> {
    let t = text.trim();
    match t {
        "" | "NA" | "na" | "N/A" | "NaN" | "nan" | "null" | "NULL" => Ok(None),
        "1" | "1.0" => Ok(Some(true)),
        "0" | "0.0" => Ok(Some(false)),
        _ if t.eq_ignore_ascii_case("true") => Ok(Some(true)),
        _ if t.eq_ignore_ascii_case("false") => Ok(Some(false)),
        _ => Err(format!("{t:?}")),
    }
}

/// Parses a number as a 0/1 response; anything but exactly 0 or 1 is an error.
pub fn parse_correct_number(x: f64) -> std::result::Result<bool, String> {
    if x == 1.0 {
        Ok(true)
    } else if x == 0.0 {
        Ok(false)
    } else {
        Err(format!("{x}"))
    }
}

/// Parses a JSON value as a 0/1 response. `Ok(None)` means JSON null.
pub fn parse_correct_json(v: &serde_json::Value) -> std::result::Result<Option<bool>, String> {
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::Bool(b) => Ok(Some(*b)),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) => parse_correct_number(x).map(Some),
            None => Err(n.to_string()),
        },
        serde_json::Value::String(s) => match parse_correct_text(s) {
            Ok(Some(b)) => Ok(Some(b)),
            _ => Err(format!("{s:?}")),
        },
        other => Err(other.to_string()),
    }
}

/// Maps strings to dense ids, once.
#[derive(Debug, Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), id);
        id
    }
}

/// One input unit (a file, a table) and how its positions are counted.
#[derive(Debug)]
struct Source {
    name: String,
    unit: &'static str,
}

#[derive(Debug, Clone, Copy)]
struct Row {
    model: u32,
    benchmark: u32,
    item: u32,
    correct: bool,
    source: u32,
    position: u64,
}

/// A row's provenance as interned ids; `NONE` where the source does not say.
#[derive(Debug, Clone, Copy)]
struct RowProvenance {
    metric: u32,
    n_shot: u32,
    prompt_hash: u32,
}

const NONE: u32 = u32::MAX;

/// Collects validated responses from any number of sources.
#[derive(Debug, Default)]
pub struct ResponsesBuilder {
    policy: DuplicatePolicy,
    models: Interner,
    benchmarks: Interner,
    items: Interner,
    sources: Vec<Source>,
    rows: Vec<Row>,
    /// One per row when provenance is kept (`with_provenance`), else empty.
    provenance: Option<Vec<RowProvenance>>,
    /// Metric names and prompt hashes.
    texts: Interner,
}

impl ResponsesBuilder {
    pub fn new(policy: DuplicatePolicy) -> Self {
        Self {
            policy,
            ..Default::default()
        }
    }

    /// Keeps each row's provenance and adds its columns to the table.
    pub fn with_provenance(mut self, keep: bool) -> Self {
        self.provenance = keep.then(Vec::new);
        self
    }

    /// Starts a new source; `unit` is how positions in it are named ("line", "row").
    pub fn begin_source(&mut self, name: impl Into<String>, unit: &'static str) -> u32 {
        self.sources.push(Source {
            name: name.into(),
            unit,
        });
        (self.sources.len() - 1) as u32
    }

    /// Describes a position in a source, e.g. `samples.jsonl, line 12`.
    pub fn place(&self, source: u32, position: u64) -> String {
        let s = &self.sources[source as usize];
        format!("{}, {} {}", s.name, s.unit, position)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Adds one response; empty ids are an error naming the place.
    pub fn push(
        &mut self,
        source: u32,
        position: u64,
        model_id: &str,
        benchmark: &str,
        item_id: &str,
        correct: bool,
    ) -> Result<()> {
        self.push_with(
            source,
            position,
            model_id,
            benchmark,
            item_id,
            correct,
            Provenance::default(),
        )
    }

    /// [`Self::push`] with the response's provenance (kept only `with_provenance`).
    #[allow(clippy::too_many_arguments)]
    pub fn push_with(
        &mut self,
        source: u32,
        position: u64,
        model_id: &str,
        benchmark: &str,
        item_id: &str,
        correct: bool,
        provenance: Provenance<'_>,
    ) -> Result<()> {
        for (column, value) in [
            (MODEL_ID, model_id),
            (BENCHMARK, benchmark),
            (ITEM_ID, item_id),
        ] {
            if value.trim().is_empty() {
                return Err(DataError::NullKey {
                    place: self.place(source, position),
                    column,
                });
            }
        }
        let row = Row {
            model: self.models.intern(model_id),
            benchmark: self.benchmarks.intern(benchmark),
            item: self.items.intern(item_id),
            correct,
            source,
            position,
        };
        self.rows.push(row);
        if let Some(kept) = &mut self.provenance {
            let texts = &mut self.texts;
            let mut id = |t: Option<&str>| t.map_or(NONE, |t| texts.intern(t));
            kept.push(RowProvenance {
                metric: id(provenance.metric),
                prompt_hash: id(provenance.prompt_hash),
                n_shot: provenance.n_shot.unwrap_or(NONE),
            });
        }
        Ok(())
    }

    /// Resolves duplicates and returns the canonical table, rows in input order.
    pub fn finish(mut self, what: &str) -> Result<RecordBatch> {
        if self.rows.is_empty() {
            return Err(DataError::Empty {
                place: what.to_string(),
            });
        }
        let kept = self.resolve_duplicates()?;
        let rows = || kept.iter().map(|&i| &self.rows[i]);
        let model = StringArray::from_iter_values(
            rows().map(|r| self.models.names[r.model as usize].as_str()),
        );
        let benchmark = StringArray::from_iter_values(
            rows().map(|r| self.benchmarks.names[r.benchmark as usize].as_str()),
        );
        let item = StringArray::from_iter_values(
            rows().map(|r| self.items.names[r.item as usize].as_str()),
        );
        let correct: BooleanArray = rows().map(|r| Some(r.correct)).collect();
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(model),
            Arc::new(benchmark),
            Arc::new(item),
            Arc::new(correct),
        ];
        let schema = match &self.provenance {
            None => responses_schema(),
            Some(all) => {
                let text = |id: u32| (id != NONE).then(|| self.texts.names[id as usize].as_str());
                let of = |i: &usize| all[*i];
                columns.push(Arc::new(StringArray::from_iter(
                    kept.iter().map(|i| text(of(i).metric)),
                )));
                columns.push(Arc::new(Int64Array::from_iter(kept.iter().map(|i| {
                    let n = of(i).n_shot;
                    (n != NONE).then_some(n as i64)
                }))));
                columns.push(Arc::new(StringArray::from_iter(
                    kept.iter().map(|i| text(of(i).prompt_hash)),
                )));
                responses_schema_with_provenance()
            }
        };
        RecordBatch::try_new(schema, columns).map_err(|e| DataError::invalid(what, e.to_string()))
    }

    /// Sorts a permutation by key so duplicates are adjacent, then merges each run
    /// according to the policy into its first occurrence (which keeps its position and
    /// provenance). Returns the kept rows' indices in input order.
    fn resolve_duplicates(&mut self) -> Result<Vec<usize>> {
        let key = |r: &Row| (r.benchmark, r.model, r.item);
        let rows = &self.rows;
        let mut order: Vec<u32> = (0..rows.len() as u32).collect();
        order.sort_unstable_by_key(|&i| (key(&rows[i as usize]), i));
        let mut keep = vec![true; rows.len()];
        let mut merged: Vec<(usize, bool)> = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let first = rows[order[start] as usize];
            let mut end = start + 1;
            while end < order.len() && key(&rows[order[end] as usize]) == key(&first) {
                end += 1;
            }
            if end - start > 1 {
                let run: Vec<Row> = order[start..end]
                    .iter()
                    .map(|&i| rows[i as usize])
                    .collect();
                let correct = match self.policy {
                    DuplicatePolicy::Error => {
                        let second = run[1];
                        return Err(DataError::Duplicate {
                            model_id: self.models.names[first.model as usize].clone(),
                            benchmark: self.benchmarks.names[first.benchmark as usize].clone(),
                            item_id: self.items.names[first.item as usize].clone(),
                            first: self.place(first.source, first.position),
                            second: self.place(second.source, second.position),
                        });
                    }
                    DuplicatePolicy::First => first.correct,
                    DuplicatePolicy::Last => run[run.len() - 1].correct,
                    DuplicatePolicy::Any => run.iter().any(|r| r.correct),
                    DuplicatePolicy::All => run.iter().all(|r| r.correct),
                };
                merged.push((order[start] as usize, correct));
                for &i in &order[start + 1..end] {
                    keep[i as usize] = false;
                }
            }
            start = end;
        }
        for (i, correct) in merged {
            self.rows[i].correct = correct;
        }
        Ok((0..keep.len()).filter(|&i| keep[i]).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn text_cells() {
        assert_eq!(parse_correct_text("1"), Ok(Some(true)));
        assert_eq!(parse_correct_text(" False "), Ok(Some(false)));
        assert_eq!(parse_correct_text(""), Ok(None));
        assert!(parse_correct_text("0.5").is_err());
    }

    #[test]
    fn duplicates_error_names_both_places() {
        let mut b = ResponsesBuilder::new(DuplicatePolicy::Error);
        let s = b.begin_source("f.jsonl", "line");
        b.push(s, 1, "m", "gsm8k", "1", true).unwrap();
        b.push(s, 7, "m", "gsm8k", "1", false).unwrap();
        let err = b.finish("f.jsonl").unwrap_err().to_string();
        assert!(err.contains("f.jsonl, line 1"), "{err}");
        assert!(err.contains("f.jsonl, line 7"), "{err}");
        assert!(err.contains("on_duplicate"), "{err}");
    }

    #[test]
    fn duplicate_policies_combine() {
        for (policy, expected) in [
            (DuplicatePolicy::First, true),
            (DuplicatePolicy::Last, false),
            (DuplicatePolicy::Any, true),
            (DuplicatePolicy::All, false),
        ] {
            let mut b = ResponsesBuilder::new(policy);
            let s = b.begin_source("t", "row");
            b.push(s, 1, "m", "b", "i", true).unwrap();
            b.push(s, 2, "m", "b", "j", true).unwrap();
            b.push(s, 3, "m", "b", "i", false).unwrap();
            let batch = b.finish("t").unwrap();
            assert_eq!(batch.num_rows(), 2);
            let c = batch.column(3).as_boolean();
            assert_eq!(c.value(0), expected, "{policy:?}");
            assert_eq!(batch.column(2).as_string::<i32>().value(1), "j");
        }
    }

    #[test]
    fn empty_ids_are_refused() {
        let mut b = ResponsesBuilder::new(DuplicatePolicy::Error);
        let s = b.begin_source("x.csv", "line");
        let err = b.push(s, 3, "", "b", "i", true).unwrap_err().to_string();
        assert!(
            err.contains("x.csv, line 3") && err.contains("model_id"),
            "{err}"
        );
    }
}
