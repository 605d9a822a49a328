//! A fine-tune as a run: cached by the hash of base model, rows and options; resumed from its
//! checkpoint when an earlier attempt was stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::store::{hash_model, now, ContentHash, RunKind, RunRecord, RunStatus, RunStore};
use super::{Cancel, ExperimentError, Result, VERSION};
use crate::lm::tokenizer::TextTokenizer;
use crate::lm::train::{encode_examples, fine_tune, Control, SftOptions};

/// Options of `fine_tune`: the trainer's, plus whether to use the chat template and where the
/// run store is. Read from one JSON object: the two keys of its own, the rest the trainer's
/// (unknown keys are an error).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct FineTuneOptions {
    #[serde(flatten)]
    pub sft: SftOptions,
    /// Render pairs through the model's chat template (default: when it has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_store: Option<String>,
}

/// The keys that are `fine_tune`'s own, the rest are [`SftOptions`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnKeys {
    chat_template: Option<bool>,
    run_store: Option<String>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for FineTuneOptions {
    type Error = String;

    fn try_from(mut map: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let mut own = serde_json::Map::new();
        for key in ["chat_template", "run_store"] {
            if let Some(v) = map.remove(key) {
                own.insert(key.into(), v);
            }
        }
        let own: OwnKeys = crate::options::nested(own.into())?;
        Ok(Self {
            sft: crate::options::nested(map.into())?,
            chat_template: own.chat_template,
            run_store: own.run_store,
        })
    }
}

impl FineTuneOptions {
    /// From a JSON object; unknown keys are an error naming them.
    pub fn from_json(value: &serde_json::Value) -> Result<Self> {
        let options: Self = crate::options::from_value(value)?;
        options.sft.validate()?;
        Ok(options)
    }
}

/// What `fine_tune` returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FineTuneResult {
    pub run_id: String,
    pub model_path: PathBuf,
    pub steps: usize,
    pub epochs: usize,
    pub final_loss: f64,
    pub seconds: f64,
    /// True when a finished run was found and nothing was trained.
    pub reused: bool,
}

/// The run id of fine-tuning `base` on `pairs` with `options`.
pub fn fine_tune_id(
    base: &Path,
    pairs: &[(String, String)],
    options: &FineTuneOptions,
    chat: bool,
) -> Result<String> {
    let mut h = ContentHash::new();
    h.field("fine_tune").field(VERSION);
    hash_model(base, &mut h)?;
    h.field(&serde_json::to_string(&options.sft).unwrap_or_default())
        .field(if chat { "chat" } else { "plain" });
    for (p, r) in pairs {
        h.field(p).field(r);
    }
    Ok(format!("ft-{}", &h.hex()[..24]))
}

/// Fine-tunes `base` on `pairs` (or returns the finished run that already did).
pub fn run_fine_tune(
    store: &RunStore,
    base: &Path,
    pairs: &[(String, String)],
    options: &FineTuneOptions,
    cancel: &Cancel,
    progress: bool,
) -> Result<FineTuneResult> {
    if pairs.is_empty() {
        return Err(ExperimentError::Input(
            "the train source has no rows".into(),
        ));
    }
    let tokenizer = TextTokenizer::load(base)?;
    let chat = options
        .chat_template
        .unwrap_or_else(|| tokenizer.has_chat_template());
    let id = fine_tune_id(base, pairs, options, chat)?;
    let dir = store.run_dir(&id);
    let model_path = dir.join("model");
    let finished = |record: &RunRecord| -> FineTuneResult {
        let get = |k: &str| {
            record
                .summary
                .get(k)
                .and_then(|v| v.as_f64())
                .unwrap_or(f64::NAN)
        };
        FineTuneResult {
            run_id: id.clone(),
            model_path: model_path.clone(),
            steps: get("steps") as usize,
            epochs: get("epochs") as usize,
            final_loss: get("final_loss"),
            seconds: record.seconds,
            reused: true,
        }
    };
    // A done run is reused only while its model files are as they were written.
    let reusable =
        |record: &RunRecord| record.reusable(&dir, &model_path.join("config.json"), "fine_tune");
    if let Some(record) = store.record(&id)? {
        if reusable(&record) {
            return Ok(finished(&record));
        }
    }
    let _lock = store.lock(&id)?;
    // Another process may have finished it while we waited for nothing: look again.
    let earlier = store.record(&id)?;
    if let Some(record) = &earlier {
        if reusable(record) {
            return Ok(finished(record));
        }
    }
    let mut record = RunRecord {
        id: id.clone(),
        kind: RunKind::FineTune,
        model: base.display().to_string(),
        options: serde_json::json!({"train": options.sft, "chat_template": chat}),
        status: RunStatus::Running,
        created: earlier.as_ref().map_or_else(now, |r| r.created),
        updated: now(),
        seconds: earlier.as_ref().map_or(0.0, |r| r.seconds),
        rows: pairs.len(),
        summary: serde_json::json!({}),
        crossdiff_version: VERSION.into(),
        files: Default::default(),
    };
    store.write_record(&record)?;
    let trained = (|| {
        let examples = encode_examples(&tokenizer, pairs, chat)?;
        let control = Control {
            cancel: cancel.clone(),
            stop_after_steps: None,
            progress,
        };
        let device = crate::lm::device::select();
        Ok::<_, ExperimentError>(fine_tune(
            base,
            &examples,
            &options.sft,
            &model_path,
            &device,
            &control,
        )?)
    })();
    let report = match trained {
        Ok(report) => report,
        Err(e) => {
            // Diverged, out of disk, bad data: never left looking like a live run.
            store.record_failure(&mut record, &e);
            return Err(e);
        }
    };
    record.updated = now();
    record.seconds = report.seconds;
    record.summary = serde_json::json!({
        "steps": report.steps,
        "total_steps": report.total_steps,
        "epochs": report.epochs,
        "final_loss": report.final_loss,
        "tokens": report.tokens,
        "trainable_parameters": report.trainable_parameters,
        "losses": report.losses,
    });
    if !report.completed {
        record.status = RunStatus::Interrupted;
        store.write_record(&record)?;
        return Err(ExperimentError::Cancelled(format!(
            "fine-tune {id} after step {} of {}; the same query resumes it",
            report.steps, report.total_steps
        )));
    }
    if let Err(e) = record.add_files(&dir, "model") {
        store.record_failure(&mut record, &e);
        return Err(e);
    }
    record.status = RunStatus::Done;
    store.write_record(&record)?;
    Ok(FineTuneResult {
        run_id: id,
        model_path,
        steps: report.steps,
        epochs: report.epochs,
        final_loss: report.final_loss,
        seconds: report.seconds,
        reused: false,
    })
}
