//! The `items` table: what each item of a responses table is, as the result files record it
//! (question, choices, target, content hash, the prompt the models saw), so difficulty from
//! IRT can be joined to the text. Read from the same files as the responses, by
//! `read_items` and `crossdiff ingest --items`.
//!
//! Also the check that ties the two together across models: one item must be the same
//! document in every model's file (lm-eval's `doc_hash`, a leaderboard v1 row's content
//! hash). Mixed lm-eval versions that rendered a doc_id differently are an error naming both
//! places, never a silent mix of two questions under one id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, ListBuilder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::error::{DataError, Result};

/// `items(benchmark, item_id, task, question, choices, target, doc_hash, prompt, doc)`;
/// benchmark and item_id are never NULL, the rest is NULL where the source does not say.
pub fn items_schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        text("task"),
        text("question"),
        Field::new(
            "choices",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        ),
        text("target"),
        text("doc_hash"),
        text("prompt"),
        text("doc"),
    ]))
}

/// One item as a result file describes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ItemRecord {
    pub task: String,
    pub question: Option<String>,
    pub choices: Option<Vec<String>>,
    pub target: Option<String>,
    pub doc_hash: Option<String>,
    /// The context the model was given (with its few-shot examples).
    pub prompt: Option<String>,
    /// The source's whole document, as JSON.
    pub doc: Option<String>,
}

/// Collects each (benchmark, item)'s first record, in order of first appearance.
#[derive(Debug, Default)]
pub struct ItemsBuilder {
    index: HashMap<String, HashMap<String, usize>>,
    /// The same ids by benchmark and task, so a reader can skip the documents of a task's
    /// items it already has.
    by_task: HashMap<String, HashMap<String, HashSet<String>>>,
    /// What `ids_of` lends for a task without items.
    none: HashSet<String>,
    rows: Vec<(String, String, ItemRecord)>,
}

impl ItemsBuilder {
    /// Whether the item has no record yet (so the caller need not build one).
    pub fn wants(&self, benchmark: &str, item_id: &str) -> bool {
        self.index
            .get(benchmark)
            .is_none_or(|items| !items.contains_key(item_id))
    }

    /// The ids of the items of `task` (under `benchmark`) that have a record.
    pub fn ids_of(&self, benchmark: &str, task: &str) -> &HashSet<String> {
        self.by_task
            .get(benchmark)
            .and_then(|tasks| tasks.get(task))
            .unwrap_or(&self.none)
    }

    /// Keeps the record if the item has none yet.
    pub fn push(&mut self, benchmark: &str, item_id: &str, record: ItemRecord) {
        if !self.wants(benchmark, item_id) {
            return;
        }
        self.index
            .entry(benchmark.to_string())
            .or_default()
            .insert(item_id.to_string(), self.rows.len());
        self.by_task
            .entry(benchmark.to_string())
            .or_default()
            .entry(record.task.clone())
            .or_default()
            .insert(item_id.to_string());
        self.rows
            .push((benchmark.to_string(), item_id.to_string(), record));
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, rows grouped by benchmark (in order of first appearance), items in the
    /// order first seen.
    pub fn finish(self, what: &str) -> Result<RecordBatch> {
        if self.rows.is_empty() {
            return Err(DataError::Empty {
                place: format!("{what} (no items)"),
            });
        }
        let mut order: Vec<usize> = (0..self.rows.len()).collect();
        let mut first_of: HashMap<&str, usize> = HashMap::new();
        for (i, (b, _, _)) in self.rows.iter().enumerate() {
            first_of.entry(b.as_str()).or_insert(i);
        }
        order.sort_by_key(|&i| (first_of[self.rows[i].0.as_str()], i));
        let rows: Vec<&(String, String, ItemRecord)> =
            order.iter().map(|&i| &self.rows[i]).collect();
        let text = |f: &dyn Fn(&ItemRecord) -> Option<&str>| -> ArrayRef {
            Arc::new(StringArray::from_iter(rows.iter().map(|r| f(&r.2))))
        };
        let mut choices = ListBuilder::new(StringBuilder::new());
        for (_, _, r) in &rows {
            match &r.choices {
                Some(list) => {
                    for c in list {
                        choices.values().append_value(c);
                    }
                    choices.append(true);
                }
                None => choices.append(false),
            }
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.0.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.1.as_str()),
            )),
            text(&|r| Some(r.task.as_str())),
            text(&|r| r.question.as_deref()),
            Arc::new(choices.finish()),
            text(&|r| r.target.as_deref()),
            text(&|r| r.doc_hash.as_deref()),
            text(&|r| r.prompt.as_deref()),
            text(&|r| r.doc.as_deref()),
        ];
        RecordBatch::try_new(items_schema(), columns)
            .map_err(|e| DataError::invalid(what, e.to_string()))
    }
}

/// The content hash each (benchmark, item) had where it was first seen.
#[derive(Debug, Default)]
pub struct ContentHashes {
    seen: HashMap<String, HashMap<String, (String, String)>>,
}

impl ContentHashes {
    /// Records `hash` for the item, or checks it against the one recorded; `place` names
    /// where this record is (called only when needed).
    pub fn check(
        &mut self,
        benchmark: &str,
        item_id: &str,
        hash: &str,
        place: impl FnOnce() -> String,
    ) -> Result<()> {
        let items = match self.seen.get_mut(benchmark) {
            Some(items) => items,
            None => self.seen.entry(benchmark.to_string()).or_default(),
        };
        match items.get(item_id) {
            Some((first, _)) if first == hash => Ok(()),
            Some((first, first_place)) => Err(DataError::invalid(
                place(),
                format!(
                    "item `{item_id}` of benchmark `{benchmark}` has doc_hash `{hash}`, but \
                     `{first}` at {first_place}: the two files hold different documents under \
                     one id (results of different lm-eval versions or task revisions?); ingest \
                     them separately"
                ),
            )),
            None => {
                items.insert(item_id.to_string(), (hash.to_string(), place()));
                Ok(())
            }
        }
    }
}

/// The question text of an lm-eval `doc`: the first of the fields benchmarks use for it.
pub fn question_of(doc: &serde_json::Value) -> Option<String> {
    const FIELDS: [&str; 10] = [
        "question", "Question", "problem", "input", "prompt", "query", "sentence", "ctx", "goal",
        "text",
    ];
    FIELDS
        .iter()
        .find_map(|f| doc.get(*f).and_then(|v| v.as_str()).map(str::to_string))
}

/// The answer options of an lm-eval `doc`: `choices` as a list of strings, ARC's
/// `{"text": [...]}` or MuSR's Python list literal (`"['a', 'b']"`); `options` (MMLU-Pro);
/// or GPQA's `choice1`, `choice2`, ... as the leaderboard's task shuffled them.
pub fn choices_of(doc: &serde_json::Value) -> Option<Vec<String>> {
    let strings = |v: &serde_json::Value| -> Option<Vec<String>> {
        if let Some(text) = v.as_str() {
            return python_string_list(text);
        }
        let list = v.as_array()?;
        list.iter()
            .map(|x| x.as_str().map(str::to_string))
            .collect()
    };
    let listed = ["choices", "options"].iter().find_map(|f| {
        let v = doc.get(*f)?;
        strings(v).or_else(|| v.get("text").and_then(strings))
    });
    listed.or_else(|| {
        let numbered: Vec<String> = (1..)
            .map_while(|k| doc.get(format!("choice{k}"))?.as_str().map(str::to_string))
            .collect();
        (!numbered.is_empty()).then_some(numbered)
    })
}

/// A Python list literal of strings, `['a', "b's"]`, as Python's repr writes it (either
/// quote, backslash escapes); `None` for anything else.
pub fn python_string_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(quote) = chars.next() else {
            return Some(out);
        };
        if quote != '\'' && quote != '"' {
            return None;
        }
        let mut item = String::new();
        loop {
            match chars.next()? {
                '\\' => item.push(match chars.next()? {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                }),
                c if c == quote => break,
                c => item.push(c),
            }
        }
        out.push(item);
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Some(out),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// A JSON value as item text: strings as they are, anything else as JSON.
pub fn value_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};

    #[test]
    fn first_record_wins_and_benchmarks_stay_together() {
        let mut b = ItemsBuilder::default();
        let rec = |q: &str| ItemRecord {
            task: "t".into(),
            question: Some(q.into()),
            choices: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        b.push("bbh", "x/1", rec("first"));
        b.push("gsm8k", "1", rec("g"));
        b.push("bbh", "x/2", rec("second"));
        b.push("bbh", "x/1", rec("again"));
        assert!(!b.wants("bbh", "x/1") && b.wants("bbh", "x/3"));
        let batch = b.finish("test").unwrap();
        let ids = batch.column(1).as_string::<i32>();
        let questions = batch.column(3).as_string::<i32>();
        assert_eq!(
            ids.iter().flatten().collect::<Vec<_>>(),
            ["x/1", "x/2", "1"]
        );
        assert_eq!(questions.value(0), "first");
        let choices = batch.column(4).as_list::<i32>();
        assert_eq!(choices.value(0).len(), 2);
        assert!(batch.column(5).is_null(0));
    }

    #[test]
    fn a_changed_hash_names_both_places() {
        let mut h = ContentHashes::default();
        h.check("arc", "1", "aa", || "a.jsonl, line 1".into())
            .unwrap();
        h.check("arc", "1", "aa", || "b.jsonl, line 1".into())
            .unwrap();
        h.check("mmlu", "1", "bb", || "c.jsonl, line 1".into())
            .unwrap();
        let e = h
            .check("arc", "1", "cc", || "d.jsonl, line 4".into())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d.jsonl, line 4"), "{e}");
        assert!(
            e.contains("`aa` at a.jsonl, line 1") && e.contains("`cc`"),
            "{e}"
        );
    }

    #[test]
    fn docs_give_question_and_choices() {
        let arc: serde_json::Value = serde_json::json!({
            "question": "Why?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}
        });
        assert_eq!(question_of(&arc).as_deref(), Some("Why?"));
        assert_eq!(choices_of(&arc), Some(vec!["a".into(), "b".into()]));
        let pro = serde_json::json!({"question": "q", "options": ["x", "y", "z"]});
        assert_eq!(choices_of(&pro).map(|c| c.len()), Some(3));
        let math = serde_json::json!({"problem": "1+1", "solution": "2"});
        assert_eq!(question_of(&math).as_deref(), Some("1+1"));
        assert_eq!(choices_of(&math), None);
        let musr = serde_json::json!({"choices": "['Cook: Alice', \"Bob's tent\", 'a\\'b']"});
        assert_eq!(
            choices_of(&musr),
            Some(vec![
                "Cook: Alice".into(),
                "Bob's tent".into(),
                "a'b".into()
            ])
        );
        let gpqa = serde_json::json!({"Question": "q", "choice1": "x", "choice2": "y"});
        assert_eq!(choices_of(&gpqa), Some(vec!["x".into(), "y".into()]));
        assert_eq!(
            python_string_list("['a', 'b',]"),
            Some(vec!["a".into(), "b".into()])
        );
        assert_eq!(python_string_list("[1, 2]"), None);
        assert_eq!(python_string_list("['open"), None);
        assert_eq!(python_string_list("[]"), Some(vec![]));
    }
}
