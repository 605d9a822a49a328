//! An evaluation as a run: a model answers items (multiple choice or generation, lm-eval
//! conventions); the per-item outcomes are written to the run's `items.parquet`.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Builder, ListBuilder,
    RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde::{Deserialize, Serialize};

use super::store::{hash_model, now, ContentHash, RunKind, RunRecord, RunStatus, RunStore};
use super::{Cancel, ExperimentError, Result, VERSION};
use crate::lm::answers::{AnswerFilter, ExactMatch, Take};
use crate::lm::evaluate::{ChoiceItem, Evaluator, GenerationItem, GenerationOptions};
use crate::lm::template::Message;
use crate::lm::tokenizer::TextTokenizer;

/// One item to evaluate. For multiple choice `answer` is the gold choice's 0-based index or
/// its text; for generation, the reference answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalItem {
    pub item_id: String,
    pub prompt: String,
    pub choices: Option<Vec<String>>,
    pub answer: String,
}

/// lm-eval's two kinds of task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    /// The choice with the highest log likelihood.
    MultipleChoice,
    /// Greedy generation, filtered and compared with the answer.
    GenerateUntil,
}

impl OutputType {
    pub fn name(self) -> &'static str {
        match self {
            Self::MultipleChoice => "multiple_choice",
            Self::GenerateUntil => "generate_until",
        }
    }
}

/// How a generated answer is compared with the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExactMatchKind {
    /// As the strings are (with the ignore_* options).
    Plain,
    /// GSM8K's: strip `,`, `$`, everything up to `#### ` and a trailing `.`; ignore case.
    Gsm8k,
    /// MATH's: final answers (last `\boxed{}`) normalised by Minerva's rules, equal as text
    /// or value (`math_equal`).
    Math,
}

/// What `correct` means for multiple choice: lm-eval's `acc` (the most likely choice) or
/// `acc_norm` (the most likely per character of the choice), as the task's metric says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChoiceMetric {
    Acc,
    AccNorm,
}

/// Options of `evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalOptions {
    /// Default: multiple choice when every item has choices.
    pub output_type: Option<OutputType>,
    /// Render prompts through the model's chat template. Default: no, as lm-eval without
    /// `--apply_chat_template` (generalization_matrix defaults it to its fine-tunes' choice).
    pub chat_template: Option<bool>,
    /// Put between the prompt and each choice (lm-eval's target_delimiter). Default: " ",
    /// or "" with the chat template (lm-eval drops the delimiter when it applies one).
    pub target_delimiter: Option<String>,
    pub stop: Vec<String>,
    pub max_new_tokens: usize,
    /// Answer filter: "none" (the whole output), "gsm8k_strict", "gsm8k_flexible",
    /// "first_letter" (MMLU-Pro's, as the paper's task file), "standalone_letter" (the first
    /// A-J standing alone), or a regex (its first group, or the whole match).
    pub filter: String,
    /// Which regex match the filter keeps.
    pub take: Take,
    pub exact_match: ExactMatchKind,
    /// Multiple choice: the metric `correct` holds (default acc; `correct_norm` is always
    /// acc_norm). Left out of the run's identity when unset, so older runs keep their ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<ChoiceMetric>,
    pub ignore_case: bool,
    pub ignore_punctuation: bool,
    pub regexes_to_ignore: Vec<String>,
    pub batch_size: usize,
    pub run_store: Option<String>,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self {
            output_type: None,
            chat_template: None,
            target_delimiter: None,
            stop: Vec::new(),
            max_new_tokens: 256,
            filter: "none".into(),
            take: Take::First,
            exact_match: ExactMatchKind::Plain,
            metric: None,
            ignore_case: false,
            ignore_punctuation: false,
            regexes_to_ignore: Vec::new(),
            batch_size: 16,
            run_store: None,
        }
    }
}

impl EvalOptions {
    /// From a JSON object (unknown keys are an error naming them), checked.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let options: Self = crate::options::from_value(value)?;
        options.validate()?;
        Ok(options)
    }

    /// Checks what serde cannot: the filter's regex, the batch size.
    pub fn validate(&self) -> Result<()> {
        self.generation()?;
        if self.batch_size == 0 {
            return Err(ExperimentError::Input(
                "option `batch_size` must be at least 1, got 0".into(),
            ));
        }
        Ok(())
    }

    fn generation(&self) -> Result<GenerationOptions> {
        let take = self.take;
        let filter = match self.filter.as_str() {
            "none" => AnswerFilter::none(),
            "gsm8k_strict" => AnswerFilter::gsm8k_strict(),
            "gsm8k_flexible" => AnswerFilter::gsm8k_flexible(),
            "first_letter" => AnswerFilter::first_letter(),
            "standalone_letter" => AnswerFilter::standalone_letter(),
            pattern => AnswerFilter::new(pattern, take)?,
        };
        let mut matcher = match self.exact_match {
            ExactMatchKind::Plain => ExactMatch::default(),
            ExactMatchKind::Gsm8k => ExactMatch::gsm8k(),
            ExactMatchKind::Math => ExactMatch::math(),
        };
        matcher.ignore_case |= self.ignore_case;
        matcher.ignore_punctuation |= self.ignore_punctuation;
        for r in &self.regexes_to_ignore {
            matcher
                .regexes_to_ignore
                .push(regex::Regex::new(r).map_err(|e| {
                    ExperimentError::Input(format!("option `regexes_to_ignore`: {r:?}: {e}"))
                })?);
        }
        Ok(GenerationOptions {
            max_new_tokens: self.max_new_tokens,
            stop: self.stop.clone(),
            filter,
            matcher,
            batch_size: self.batch_size.max(1),
        })
    }

    /// The target delimiter: as given, else lm-eval's: " ", or "" when the prompt went
    /// through the chat template (lm-eval's construct_requests with apply_chat_template).
    pub fn delimiter(&self, chat: bool) -> String {
        self.target_delimiter
            .clone()
            .unwrap_or_else(|| if chat { String::new() } else { " ".into() })
    }

    /// The options that decide the result (the store's location does not).
    fn identity(&self) -> String {
        let mut copy = self.clone();
        copy.run_store = None;
        serde_json::to_string(&copy).unwrap_or_default()
    }
}

/// One item's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemOutcome {
    pub item_id: String,
    /// The chosen choice's text (multiple choice) or the filtered answer (generation).
    pub prediction: String,
    pub correct: bool,
    /// Multiple choice: correctness under acc_norm.
    pub correct_norm: Option<bool>,
    pub log_likelihoods: Option<Vec<f64>>,
    /// Generation: the raw output, cut at the first stop string.
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EvaluationResult {
    pub run_id: String,
    pub reused: bool,
    pub items: Vec<ItemOutcome>,
}

impl EvaluationResult {
    pub fn accuracy(&self) -> f64 {
        let right = self.items.iter().filter(|o| o.correct).count();
        right as f64 / self.items.len().max(1) as f64
    }
}

/// The schema of a run's `items.parquet` (and of `evaluate`'s output, with `run_id`).
pub fn items_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new("prediction", DataType::Utf8, false),
        Field::new("correct", DataType::Boolean, false),
        Field::new("correct_norm", DataType::Boolean, true),
        Field::new(
            "log_likelihoods",
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            true,
        ),
        Field::new("output", DataType::Utf8, true),
    ]))
}

pub fn outcomes_to_batch(items: &[ItemOutcome]) -> Result<RecordBatch> {
    let mut lls = ListBuilder::new(Float64Builder::new());
    let mut norm = BooleanBuilder::new();
    for o in items {
        match &o.log_likelihoods {
            Some(v) => {
                lls.values().append_slice(v);
                lls.append(true);
            }
            None => lls.append(false),
        }
        norm.append_option(o.correct_norm);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            items.iter().map(|o| o.item_id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            items.iter().map(|o| o.prediction.as_str()),
        )),
        Arc::new(BooleanArray::from(
            items.iter().map(|o| o.correct).collect::<Vec<_>>(),
        )),
        Arc::new(norm.finish()),
        Arc::new(lls.finish()),
        Arc::new(StringArray::from(
            items.iter().map(|o| o.output.clone()).collect::<Vec<_>>(),
        )),
    ];
    RecordBatch::try_new(items_schema(), columns)
        .map_err(|e| ExperimentError::Input(format!("evaluation output: {e}")))
}

fn batch_to_outcomes(batch: &RecordBatch) -> Result<Vec<ItemOutcome>> {
    let bad = || ExperimentError::Input("a stored evaluation has an unexpected schema".into());
    if batch.num_columns() < 6 {
        return Err(bad());
    }
    let text = |i: usize| batch.column(i).as_string_opt::<i32>().ok_or_else(bad);
    let flag = |i: usize| batch.column(i).as_boolean_opt().ok_or_else(bad);
    let (ids, preds, correct, norm, outputs) = (text(0)?, text(1)?, flag(2)?, flag(3)?, text(5)?);
    let lls = batch.column(4).as_list_opt::<i32>().ok_or_else(bad)?;
    let log_likelihoods = lls
        .values()
        .as_primitive_opt::<datafusion::arrow::datatypes::Float64Type>()
        .ok_or_else(bad)?;
    let offsets = lls.value_offsets();
    Ok((0..batch.num_rows())
        .map(|r| ItemOutcome {
            item_id: ids.value(r).to_string(),
            prediction: preds.value(r).to_string(),
            correct: correct.value(r),
            correct_norm: norm.is_valid(r).then(|| norm.value(r)),
            log_likelihoods: lls.is_valid(r).then(|| {
                let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
                log_likelihoods.values()[start..end].to_vec()
            }),
            output: outputs.is_valid(r).then(|| outputs.value(r).to_string()),
        })
        .collect())
}

/// The record batches of a run's `items.parquet`.
pub fn read_items_batches(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path).map_err(|e| ExperimentError::io(path, e))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| ExperimentError::io(path, e))?;
    reader
        .map(|b| b.map_err(|e| ExperimentError::io(path, e)))
        .collect()
}

fn read_items(path: &Path) -> Result<Vec<ItemOutcome>> {
    let mut out = Vec::new();
    for batch in read_items_batches(path)? {
        out.extend(batch_to_outcomes(&batch)?);
    }
    Ok(out)
}

/// The gold index of a multiple-choice item.
fn gold_index(item: &EvalItem, choices: &[String]) -> Result<usize> {
    let answer = item.answer.trim();
    if let Ok(k) = answer.parse::<usize>() {
        if k < choices.len() {
            return Ok(k);
        }
    }
    choices
        .iter()
        .position(|c| c.trim() == answer)
        .ok_or_else(|| {
            ExperimentError::Input(format!(
                "item {}: answer {:?} is neither a choice index below {} nor one of the choices",
                item.item_id,
                item.answer,
                choices.len()
            ))
        })
}

/// The run id of evaluating `model` on `items` with `options`.
pub fn evaluation_id(model: &Path, items: &[EvalItem], options: &EvalOptions) -> Result<String> {
    let mut h = ContentHash::new();
    h.field("evaluate").field(VERSION);
    hash_model(model, &mut h)?;
    h.field(&options.identity());
    for item in items {
        h.field(&item.item_id)
            .field(&item.prompt)
            .field(&item.answer);
        for c in item.choices.iter().flatten() {
            h.field(c);
        }
        h.field("|");
    }
    Ok(format!("ev-{}", &h.hex()[..24]))
}

/// Evaluates `model` on `items` (or returns the finished run that already did).
pub fn run_evaluation(
    store: &RunStore,
    model: &Path,
    items: &[EvalItem],
    options: &EvalOptions,
    cancel: &Cancel,
    progress: bool,
) -> Result<EvaluationResult> {
    if items.is_empty() {
        return Err(ExperimentError::Input("the eval source has no rows".into()));
    }
    let id = evaluation_id(model, items, options)?;
    let dir = store.run_dir(&id);
    let items_path = dir.join("items.parquet");
    // A done run is reused only while its items file is as it was written.
    let done = |r: &Option<RunRecord>| {
        r.as_ref()
            .is_some_and(|r| r.reusable(&dir, &items_path, "evaluate"))
    };
    if done(&store.record(&id)?) {
        return Ok(EvaluationResult {
            run_id: id,
            reused: true,
            items: read_items(&items_path)?,
        });
    }
    let _lock = store.lock(&id)?;
    if done(&store.record(&id)?) {
        return Ok(EvaluationResult {
            run_id: id,
            reused: true,
            items: read_items(&items_path)?,
        });
    }
    let started = std::time::Instant::now();
    let created = now();
    let mut record = RunRecord {
        id: id.clone(),
        kind: RunKind::Evaluate,
        model: model.display().to_string(),
        options: serde_json::to_value(options).unwrap_or_default(),
        status: RunStatus::Running,
        created,
        updated: created,
        seconds: 0.0,
        rows: items.len(),
        summary: serde_json::json!({}),
        crossdiff_version: VERSION.into(),
        files: Default::default(),
    };
    store.write_record(&record)?;
    match evaluate_into(model, items, options, cancel, progress, &items_path) {
        Ok((outcomes, multiple_choice, chat)) => {
            let result = EvaluationResult {
                run_id: id,
                reused: false,
                items: outcomes,
            };
            if let Err(e) = record.add_files(&dir, "items.parquet") {
                store.record_failure(&mut record, &e);
                return Err(e);
            }
            record.status = RunStatus::Done;
            record.updated = now();
            record.seconds = started.elapsed().as_secs_f64();
            record.summary = serde_json::json!({
                "accuracy": result.accuracy(),
                "output_type": if multiple_choice { "multiple_choice" } else { "generate_until" },
                "chat_template": chat,
            });
            store.write_record(&record)?;
            Ok(result)
        }
        Err(e) => {
            record.seconds = started.elapsed().as_secs_f64();
            store.record_failure(&mut record, &e);
            Err(e)
        }
    }
}

/// The work of an evaluation run: every item's outcome, written to `items_path`; whether it
/// was multiple choice, and whether the chat template was used.
fn evaluate_into(
    model: &Path,
    items: &[EvalItem],
    options: &EvalOptions,
    cancel: &Cancel,
    progress: bool,
    items_path: &Path,
) -> Result<(Vec<ItemOutcome>, bool, bool)> {
    let tokenizer = TextTokenizer::load(model)?;
    let chat = options.chat_template.unwrap_or(false);
    let delimiter = options.delimiter(chat);
    let render = |prompt: &str| -> Result<String> {
        if chat {
            Ok(tokenizer
                .chat_template()?
                .render(&[Message::user(prompt)], true, &[])?)
        } else {
            Ok(prompt.to_string())
        }
    };
    let device = crate::lm::device::select();
    let dtype = crate::lm::device::inference_dtype(&device);
    let (decoder, _) = crate::lm::files::load(model, dtype, &device)?;
    let mut evaluator = Evaluator::new(&decoder, &tokenizer);
    evaluator.progress = progress;
    evaluator.cancel = cancel.clone();
    let multiple_choice = match options.output_type {
        Some(t) => t == OutputType::MultipleChoice,
        None => items
            .iter()
            .all(|i| i.choices.as_ref().is_some_and(|c| !c.is_empty())),
    };
    let outcomes: Vec<ItemOutcome> = if multiple_choice {
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let choices = item
                .choices
                .clone()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    ExperimentError::Input(format!(
                        "item {}: multiple choice needs a non-empty `choices` list",
                        item.item_id
                    ))
                })?;
            let gold = gold_index(item, &choices)?;
            requests.push(ChoiceItem {
                id: item.item_id.clone(),
                context: render(&item.prompt)?,
                delimiter: delimiter.clone(),
                choices,
                gold,
            });
        }
        let results = evaluator.multiple_choice(&requests).map_err(cancelled)?;
        let norm = options.metric == Some(ChoiceMetric::AccNorm);
        results
            .into_iter()
            .zip(requests)
            .map(|(r, request)| ItemOutcome {
                item_id: r.id,
                prediction: request.choices[if norm {
                    r.prediction_norm
                } else {
                    r.prediction
                }]
                .clone(),
                correct: if norm { r.acc_norm } else { r.acc },
                correct_norm: Some(r.acc_norm),
                log_likelihoods: Some(r.log_likelihoods),
                output: None,
            })
            .collect()
    } else {
        let requests: Vec<GenerationItem> = items
            .iter()
            .map(|item| {
                Ok(GenerationItem {
                    id: item.item_id.clone(),
                    prompt: render(&item.prompt)?,
                    reference: item.answer.clone(),
                })
            })
            .collect::<Result<_>>()?;
        let results = evaluator
            .generate(&requests, &options.generation()?)
            .map_err(cancelled)?;
        results
            .into_iter()
            .map(|r| ItemOutcome {
                item_id: r.id,
                prediction: r.prediction,
                correct: r.correct,
                correct_norm: None,
                log_likelihoods: None,
                output: Some(r.output),
            })
            .collect()
    };
    crate::data::files::write_parquet(items_path, &[outcomes_to_batch(&outcomes)?])
        .map_err(|e| ExperimentError::io(items_path, e))?;
    Ok((outcomes, multiple_choice, chat))
}

fn cancelled(e: crate::lm::LmError) -> ExperimentError {
    match e {
        crate::lm::LmError::Cancelled(what) => ExperimentError::Cancelled(what),
        other => ExperimentError::Lm(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// lm-eval's defaults: no chat template unless asked; the delimiter " " without it and ""
    /// with it; an explicit delimiter always wins.
    #[test]
    fn chat_template_and_delimiter_default_as_lm_eval() {
        let options = EvalOptions::from_json(&serde_json::json!({})).unwrap();
        assert_eq!(options.chat_template, None);
        assert_eq!(options.delimiter(false), " ");
        assert_eq!(options.delimiter(true), "");
        let given = EvalOptions::from_json(&serde_json::json!({"target_delimiter": ": "})).unwrap();
        assert_eq!(given.delimiter(true), ": ");
        let err = EvalOptions::from_json(&serde_json::json!({"batch_size": 0})).unwrap_err();
        assert!(err.to_string().contains("batch_size"), "{err}");
    }
}
