//! One training run of the zoo (random init -> AdamW steps over shuffled pairs, a callback at
//! each snapshot) and the record of a finished run that lets an interrupted build resume.

use std::path::PathBuf;

use candle_core::DType;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::{ZooControl, ZooResponse, ZooSpec};
use crate::experiment::{ExperimentError, Result};
use crate::lm::optim::AdamWParams;
use crate::lm::schedule::WarmupCosine;
use crate::lm::sft::{SftUpdater, TokenBatch};
use crate::lm::tiny::{create_tiny_model, TinySpec};
use crate::lm::tokenizer::TextTokenizer;
use crate::lm::train::{encode_examples, Example};
use crate::lm::Decoder;

/// One training run from random weights: `steps` AdamW steps over shuffled `pairs`, calling
/// `at_snapshot(step, model, tokenizer)` after each step of `snapshots`.
pub(super) struct TrainingRun<'a> {
    pub(super) dir: PathBuf,
    pub(super) size: &'a TinySpec,
    pub(super) pairs: &'a [(String, String)],
    /// The schedule's length (the run may stop earlier, at its last snapshot).
    pub(super) steps: usize,
    pub(super) snapshots: &'a [usize],
    pub(super) seed: u64,
    /// Where the trained model is written after the last snapshot, if anywhere.
    pub(super) keep: Option<PathBuf>,
}

impl TrainingRun<'_> {
    pub(super) fn train(
        &self,
        spec: &ZooSpec,
        control: &ZooControl,
        bar: &indicatif::ProgressBar,
        mut at_snapshot: impl FnMut(usize, f64, &Decoder, &TextTokenizer) -> Result<()>,
    ) -> Result<()> {
        let corpus: Vec<String> = self.pairs.iter().map(|(q, a)| format!("{q}{a}")).collect();
        create_tiny_model(&self.dir, &corpus, self.size)?;
        let tokenizer = TextTokenizer::load(&self.dir)?;
        let examples = encode_examples(&tokenizer, self.pairs, false)?;
        let (model, map) =
            crate::lm::files::load(&self.dir, DType::F32, &candle_core::Device::Cpu)?;
        let vars = crate::lm::files::vars_of(&map);
        let params = AdamWParams {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        // The schedule spans the full run even when a build stops early.
        let schedule = WarmupCosine::with_ratio(spec.learning_rate, self.steps, 0.05);
        let mut updater = SftUpdater::new(vars, schedule, params, 1.0)?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut order: Vec<usize> = Vec::new();
        let mut step = 0;
        let (mut loss_sum, mut loss_steps) = (0.0, 0usize);
        for &until in self.snapshots {
            while step < until {
                control.cancel.check("model zoo")?;
                if order.len() < spec.batch_size {
                    let mut next: Vec<usize> = (0..examples.len()).collect();
                    next.shuffle(&mut rng);
                    order.extend(next);
                }
                let batch: Vec<(Vec<u32>, Vec<u32>)> = order
                    .drain(..spec.batch_size.min(order.len()))
                    .map(|i| {
                        let Example { prompt, response } = &examples[i];
                        (prompt.clone(), response.clone())
                    })
                    .collect();
                let batch = TokenBatch::from_pairs(&batch, tokenizer.pad_id(), 64);
                let stats = updater.step(&model, std::slice::from_ref(&batch), None)?;
                step += 1;
                loss_sum += stats.loss;
                loss_steps += 1;
                bar.inc(1);
            }
            at_snapshot(
                step,
                loss_sum / loss_steps.max(1) as f64,
                &model,
                &tokenizer,
            )?;
            (loss_sum, loss_steps) = (0.0, 0);
        }
        if let Some(out) = &self.keep {
            let config = crate::lm::files::read_config(&self.dir)?;
            let weights = crate::lm::files::tensors_of(&map);
            crate::lm::files::save(out, &config, &weights, DType::F32, Some(&self.dir))?;
        }
        Ok(())
    }
}

/// The responses of one finished training run, kept in the scratch folder so that an
/// interrupted build resumes after its last finished run. `key` (the spec, the run, the
/// snapshots) must match for them to be reused.
pub(super) struct FinishedRun {
    pub(super) path: PathBuf,
    pub(super) key: serde_json::Value,
}

impl FinishedRun {
    pub(super) fn load(&self) -> Option<Vec<ZooResponse>> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        if value.get("key") != Some(&self.key) {
            return None;
        }
        let rows: Vec<(String, String, bool)> =
            serde_json::from_value(value.get("responses")?.clone()).ok()?;
        Some(
            rows.into_iter()
                .map(|(model_id, item_id, correct)| ZooResponse {
                    model_id,
                    item_id,
                    correct,
                })
                .collect(),
        )
    }

    pub(super) fn save(&self, responses: &[ZooResponse]) -> Result<()> {
        let rows: Vec<(&str, &str, bool)> = responses
            .iter()
            .map(|r| (r.model_id.as_str(), r.item_id.as_str(), r.correct))
            .collect();
        let text = serde_json::json!({"key": self.key, "responses": rows}).to_string();
        let partial = self.path.with_extension("partial");
        std::fs::write(&partial, text).map_err(|e| ExperimentError::io(&partial, e))?;
        std::fs::rename(&partial, &self.path).map_err(|e| ExperimentError::io(&self.path, e))
    }
}
