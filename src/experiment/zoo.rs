//! A leaderboard of real tiny language models for the arithmetic benchmark: for each model
//! size, one training run from random weights, evaluated on every item at evenly spaced
//! training budgets. Each (size, budget) snapshot is one "model" of the leaderboard, so a few
//! runs give hundreds of models of graded ability and a real `responses` table for IRT.

use std::path::Path;

use candle_core::{DType, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Cancel, ExperimentError, Result};
use crate::data::arithmetic::ArithmeticItem;
use crate::lm::answers::{AnswerFilter, ExactMatch, Take};
use crate::lm::evaluate::{Evaluator, GenerationItem, GenerationOptions};
use crate::lm::optim::AdamWParams;
use crate::lm::schedule::WarmupCosine;
use crate::lm::sft::{SftUpdater, TokenBatch};
use crate::lm::tiny::{create_tiny_model, TinySpec};
use crate::lm::tokenizer::TextTokenizer;
use crate::lm::train::{encode_examples, Example};

/// The zoo's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZooSpec {
    /// One training run per model shape.
    pub sizes: Vec<TinySpec>,
    /// Snapshots (leaderboard entries) per run.
    pub snapshots: usize,
    /// Optimizer steps between snapshots.
    pub steps_per_snapshot: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for ZooSpec {
    fn default() -> Self {
        let size = |hidden: usize, layers: usize, seed: u64| TinySpec {
            vocab_size: 300,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            intermediate_size: hidden * 3,
            max_position_embeddings: 64,
            seed,
        };
        Self {
            sizes: vec![size(64, 2, 1), size(96, 2, 2), size(128, 3, 3)],
            snapshots: 40,
            steps_per_snapshot: 10,
            batch_size: 32,
            learning_rate: 2e-3,
            seed: 42,
        }
    }
}

/// One response of the leaderboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZooResponse {
    pub model_id: String,
    pub item_id: String,
    pub correct: bool,
}

/// The leaderboard as a canonical `responses` table.
pub fn responses_batch(responses: &[ZooResponse]) -> datafusion::arrow::array::RecordBatch {
    use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
    use std::sync::Arc;
    RecordBatch::try_new(
        crate::data::responses::responses_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                responses.iter().map(|r| r.model_id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                responses.iter().map(|_| crate::data::arithmetic::BENCHMARK),
            )),
            Arc::new(StringArray::from_iter_values(
                responses.iter().map(|r| r.item_id.as_str()),
            )),
            Arc::new(BooleanArray::from(
                responses.iter().map(|r| r.correct).collect::<Vec<_>>(),
            )),
        ],
    )
    .expect("columns match the schema")
}

/// Trains the zoo on `items` (their question and answer) and answers every item at every
/// snapshot. `scratch` holds the random-init base models.
pub fn train_zoo(
    scratch: &Path,
    items: &[ArithmeticItem],
    spec: &ZooSpec,
    cancel: &Cancel,
) -> Result<Vec<ZooResponse>> {
    if items.is_empty() || spec.sizes.is_empty() || spec.snapshots == 0 {
        return Err(ExperimentError::Input(
            "a zoo needs items, at least one size and one snapshot".into(),
        ));
    }
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|i| (i.question.clone(), format!(" {}", i.answer)))
        .collect();
    let corpus: Vec<String> = pairs.iter().map(|(q, a)| format!("{q}{a}")).collect();
    let mut responses = Vec::new();
    for (k, size) in spec.sizes.iter().enumerate() {
        let dir = scratch.join(format!("size-{k}"));
        create_tiny_model(&dir, &corpus, size)?;
        let tokenizer = TextTokenizer::load(&dir)?;
        let examples = encode_examples(&tokenizer, &pairs, false)?;
        let device = candle_core::Device::Cpu;
        let (model, map) = crate::lm::files::load(&dir, DType::F32, &device)?;
        let mut vars: Vec<(String, Var)> = map
            .data()
            .lock()
            .expect("var map lock")
            .iter()
            .map(|(name, var)| (name.clone(), var.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let total = spec.snapshots * spec.steps_per_snapshot;
        let params = AdamWParams {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let schedule = WarmupCosine::with_ratio(spec.learning_rate, total.max(1), 0.05);
        let mut updater = SftUpdater::new(vars, schedule, params, 1.0)?;
        let mut rng = ChaCha8Rng::seed_from_u64(spec.seed.wrapping_add(k as u64));
        let mut order: Vec<usize> = Vec::new();
        let generation = GenerationOptions {
            max_new_tokens: 8,
            stop: vec!["\n".into()],
            filter: AnswerFilter::new(r"(?s)\A\s*(\S*)", Take::First)?,
            matcher: ExactMatch::default(),
            batch_size: 64,
        };
        let questions: Vec<GenerationItem> = items
            .iter()
            .map(|i| GenerationItem {
                id: i.item_id.clone(),
                prompt: i.question.clone(),
                reference: i.answer.clone(),
            })
            .collect();
        for snapshot in 1..=spec.snapshots {
            for _ in 0..spec.steps_per_snapshot {
                cancel.check("model zoo")?;
                if order.len() < spec.batch_size {
                    let mut next: Vec<usize> = (0..examples.len()).collect();
                    next.shuffle(&mut rng);
                    order.extend(next);
                }
                let chosen: Vec<usize> = order.drain(..spec.batch_size.min(order.len())).collect();
                let batch: Vec<(Vec<u32>, Vec<u32>)> = chosen
                    .iter()
                    .map(|&i| {
                        let Example { prompt, response } = &examples[i];
                        (prompt.clone(), response.clone())
                    })
                    .collect();
                let batch = TokenBatch::from_pairs(&batch, tokenizer.pad_id(), 64);
                updater.step(&model, std::slice::from_ref(&batch), None)?;
            }
            let mut evaluator = Evaluator::new(&model, &tokenizer);
            evaluator.cancel = Some(cancel.0.clone());
            let answers = evaluator.generate(&questions, &generation)?;
            let model_id = format!(
                "tiny{k}-h{}-step{:04}",
                size.hidden_size,
                snapshot * spec.steps_per_snapshot
            );
            responses.extend(answers.into_iter().map(|a| ZooResponse {
                model_id: model_id.clone(),
                item_id: a.id,
                correct: a.correct,
            }));
        }
    }
    Ok(responses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::arithmetic::arithmetic_items;

    fn micro() -> ZooSpec {
        ZooSpec {
            sizes: vec![TinySpec {
                vocab_size: 280,
                hidden_size: 32,
                num_hidden_layers: 1,
                num_attention_heads: 2,
                num_key_value_heads: 1,
                intermediate_size: 64,
                max_position_embeddings: 64,
                seed: 1,
            }],
            snapshots: 3,
            steps_per_snapshot: 4,
            batch_size: 8,
            learning_rate: 3e-3,
            seed: 5,
        }
    }

    /// Every snapshot answers every item, and the same spec gives the same leaderboard.
    #[test]
    fn zoo_is_a_full_and_reproducible_leaderboard() {
        let items = arithmetic_items(3, 2, 1);
        let tmp = tempfile::tempdir().unwrap();
        let a = train_zoo(tmp.path(), &items, &micro(), &Cancel::default()).unwrap();
        assert_eq!(a.len(), 3 * items.len());
        let models: std::collections::BTreeSet<&str> =
            a.iter().map(|r| r.model_id.as_str()).collect();
        assert_eq!(models.len(), 3);
        assert!(models.contains("tiny0-h32-step0012"));
        let b = train_zoo(
            &tmp.path().join("again"),
            &items,
            &micro(),
            &Cancel::default(),
        )
        .unwrap();
        assert_eq!(a, b);
        let stop = Cancel::default();
        stop.set();
        assert!(train_zoo(tmp.path(), &items, &micro(), &stop).is_err());
    }
}
