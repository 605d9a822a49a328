//! A leaderboard of real tiny language models for the arithmetic benchmark, and the base
//! model the demo study fine-tunes. For each model size, one training run from random weights
//! answers every item at graded training budgets: each (size, budget) snapshot is one "model"
//! of the leaderboard, so a few runs give hundreds of models of graded ability and a real
//! `responses` table for IRT. `crossdiff zoo` builds it; `data/demo` is its default recipe.

mod run;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cancel, ExperimentError, Result};
use crate::data::arithmetic::{arithmetic_items, items_batch, ArithmeticItem};
use crate::lm::answers::{AnswerFilter, ExactMatch, Take};
use crate::lm::evaluate::{Evaluator, GenerationItem, GenerationOptions};
use crate::lm::tiny::TinySpec;
use crate::lm::tokenizer::TextTokenizer;
use crate::lm::Decoder;
use run::{FinishedRun, TrainingRun};

/// The zoo's recipe: the benchmark it answers, the problems it trains on, the model shapes
/// and the training budgets. Everything is seeded, so one spec gives one leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZooSpec {
    /// Benchmark items per operand length and operation.
    pub per_level: usize,
    pub max_digits: u32,
    pub item_seed: u64,
    /// One training run per model shape.
    pub sizes: Vec<TinySpec>,
    /// Snapshots (leaderboard entries) per run.
    pub snapshots: usize,
    /// Optimizer steps of each run; snapshot k of n is taken after
    /// `round(steps * (k / n)^spacing)` steps, so `spacing` > 1 puts more models early on
    /// the learning curve, where ability changes fastest.
    pub steps: usize,
    pub spacing: f64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// The base model the study fine-tunes.
    pub base: BaseSpec,
}

/// The base model of the study: a tiny model trained on fresh problems of the family (not
/// the benchmark's), so its zero-shot accuracy comes from what it learned, not from having
/// seen the items; written to `models/base`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaseSpec {
    pub size: TinySpec,
    pub steps: usize,
    /// Training problems per operand length and operation, drawn with another seed than
    /// the benchmark.
    pub train_per_level: usize,
}

impl Default for BaseSpec {
    fn default() -> Self {
        Self {
            size: zoo_size(128, 3, 7),
            steps: 600,
            train_per_level: 2000,
        }
    }
}

fn zoo_size(hidden: usize, layers: usize, seed: u64) -> TinySpec {
    TinySpec {
        vocab_size: 300,
        hidden_size: hidden,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        intermediate_size: hidden * 3,
        max_position_embeddings: 64,
        seed,
    }
}

/// The default is the recipe of the shipped `data/demo`: 4 sizes x 50 budgets = 200 models
/// on 320 items.
impl Default for ZooSpec {
    fn default() -> Self {
        Self {
            per_level: 40,
            max_digits: 4,
            item_seed: 42,
            sizes: vec![
                zoo_size(64, 2, 1),
                zoo_size(96, 2, 2),
                zoo_size(96, 3, 3),
                zoo_size(128, 3, 4),
            ],
            snapshots: 50,
            steps: 800,
            spacing: 1.5,
            batch_size: 32,
            learning_rate: 3e-3,
            seed: 42,
            base: BaseSpec::default(),
        }
    }
}

impl ZooSpec {
    /// The benchmark the leaderboard answers.
    pub fn benchmark(&self) -> Vec<ArithmeticItem> {
        arithmetic_items(self.per_level, self.max_digits, self.item_seed)
    }

    /// The training problems as prompt/response pairs: a fresh draw from the same family.
    /// It is not kept apart from the benchmark: one-digit sums are few enough that every
    /// model sees them all (as real models have seen easy facts), while a long sum of the
    /// benchmark is almost never in the draw and has to be computed.
    pub fn base_pairs(&self) -> Vec<(String, String)> {
        arithmetic_items(
            self.base.train_per_level,
            self.max_digits,
            self.item_seed.wrapping_add(0x7261_696e),
        )
        .into_iter()
        .map(|i| (i.question, format!(" {}", i.answer)))
        .collect()
    }

    /// A zoo that builds in about a second (one 30 k-parameter size, 12 items, 3 snapshots):
    /// for tests and for trying the pipeline.
    pub fn miniature() -> Self {
        let size = TinySpec {
            vocab_size: 280,
            hidden_size: 32,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            num_key_value_heads: 1,
            intermediate_size: 64,
            max_position_embeddings: 64,
            seed: 1,
        };
        Self {
            per_level: 3,
            max_digits: 2,
            item_seed: 1,
            sizes: vec![size.clone()],
            snapshots: 3,
            steps: 12,
            spacing: 1.0,
            batch_size: 8,
            learning_rate: 3e-3,
            seed: 5,
            base: BaseSpec {
                size,
                steps: 4,
                train_per_level: 10,
            },
        }
    }

    /// The step after which each snapshot is taken (increasing, the last is `steps`).
    pub fn snapshot_steps(&self) -> Vec<usize> {
        let n = self.snapshots as f64;
        let mut out: Vec<usize> = (1..=self.snapshots)
            .map(|k| ((self.steps as f64) * (k as f64 / n).powf(self.spacing)).round() as usize)
            .map(|s| s.max(1))
            .collect();
        out.dedup();
        out
    }

    pub fn validate(&self) -> Result<()> {
        let problem = if self.per_level == 0 || self.max_digits == 0 {
            Some("per_level and max_digits must be at least 1")
        } else if self.max_digits > 9 {
            Some("max_digits must be at most 9")
        } else if self.base.train_per_level == 0 || self.base.steps == 0 {
            Some("base.train_per_level and base.steps must be at least 1")
        } else if self.sizes.is_empty() {
            Some("sizes must name at least one model shape")
        } else if self.snapshots == 0 || self.steps < self.snapshots {
            Some("snapshots must be at least 1 and steps at least snapshots")
        } else if self.batch_size == 0 {
            Some("batch_size must be at least 1")
        } else if !(self.spacing > 0.0 && self.spacing.is_finite()) {
            Some("spacing must be a positive number")
        } else if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            Some("learning_rate must be a positive number")
        } else {
            None
        };
        match problem {
            Some(p) => Err(ExperimentError::Input(format!("zoo spec: {p}"))),
            None => Ok(()),
        }
    }

    /// The leaderboard name of run `size` after `step` steps.
    pub fn model_id(&self, size: usize, step: usize) -> String {
        let s = &self.sizes[size];
        format!(
            "tiny{size}-h{}-l{}-step{step:05}",
            s.hidden_size, s.num_hidden_layers
        )
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

/// How a zoo build is driven: stop early (tests regenerate a prefix), cancel, progress bar.
#[derive(Debug, Clone, Default)]
pub struct ZooControl {
    /// Train only the first this-many snapshots of each run (same schedule, so the
    /// responses equal the full build's for those models).
    pub snapshot_limit: Option<usize>,
    /// Train only the first this-many sizes. With either limit the base model is skipped.
    pub size_limit: Option<usize>,
    pub cancel: Cancel,
    pub progress: bool,
}

/// What a build produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Zoo {
    pub items: Vec<ArithmeticItem>,
    pub responses: Vec<ZooResponse>,
    /// The base model's folder (absent when the build stopped early).
    pub base: Option<PathBuf>,
}

fn zoo_bar(total: usize, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "zoo [{bar:30}] step {pos}/{len} · {msg} · {per_sec} · {elapsed} (ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}

/// Trains the zoo and answers every benchmark item at every snapshot; then trains the base
/// model. `scratch` holds the models being trained and the responses of finished runs (an
/// interrupted build resumes from them); the base model is written to `models/base`.
pub fn train_zoo(
    scratch: &Path,
    models: &Path,
    spec: &ZooSpec,
    control: &ZooControl,
) -> Result<Zoo> {
    spec.validate()?;
    let items = spec.benchmark();
    // The leaderboard's models learn the benchmark's own questions (as real models meet
    // benchmark-like text in training): how soon a model gets an item right is what makes it
    // easy or hard.
    let pairs: Vec<(String, String)> = items
        .iter()
        .map(|i| (i.question.clone(), format!(" {}", i.answer)))
        .collect();
    let snapshot_steps: Vec<usize> = spec
        .snapshot_steps()
        .into_iter()
        .take(control.snapshot_limit.unwrap_or(usize::MAX))
        .collect();
    let sizes = spec
        .sizes
        .len()
        .min(control.size_limit.unwrap_or(usize::MAX));
    let with_base = control.snapshot_limit.is_none() && control.size_limit.is_none();
    let total = sizes * snapshot_steps.last().copied().unwrap_or(0)
        + if with_base { spec.base.steps } else { 0 };
    let bar = zoo_bar(total, control.progress);
    let say = |line: String| {
        if control.progress {
            bar.suspend(|| eprintln!("{line}"));
        }
    };
    let generation = GenerationOptions {
        max_new_tokens: spec.max_digits as usize + 3,
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
    let answer = |model: &Decoder, tokenizer: &TextTokenizer| {
        let mut evaluator = Evaluator::new(model, tokenizer);
        evaluator.cancel = control.cancel.clone();
        evaluator.generate(&questions, &generation)
    };
    let mut responses = Vec::new();
    for (k, size) in spec.sizes.iter().take(sizes).enumerate() {
        let done = FinishedRun {
            path: scratch.join(format!("size-{k}.done.json")),
            key: serde_json::json!({"spec": spec, "size": k, "snapshots": snapshot_steps}),
        };
        if let Some(earlier) = done.load() {
            say(format!(
                "{}: reusing the {} responses of an earlier, interrupted build",
                spec.model_id(k, spec.steps)
                    .split("-step")
                    .next()
                    .unwrap_or(""),
                earlier.len()
            ));
            bar.inc(snapshot_steps.last().copied().unwrap_or(0) as u64);
            responses.extend(earlier);
            continue;
        }
        let first = responses.len();
        let run = TrainingRun {
            dir: scratch.join(format!("size-{k}")),
            size,
            pairs: &pairs,
            steps: spec.steps,
            snapshots: &snapshot_steps,
            seed: spec.seed.wrapping_add(k as u64),
            keep: None,
        };
        run.train(spec, control, &bar, |step, loss, model, tokenizer| {
            let answers = answer(model, tokenizer)?;
            let model_id = spec.model_id(k, step);
            let solved = answers.iter().filter(|a| a.correct).count();
            say(format!(
                "{model_id}: loss {loss:.3}, accuracy {:.3} ({solved}/{} items)",
                solved as f64 / answers.len() as f64,
                answers.len()
            ));
            responses.extend(answers.into_iter().map(|a| ZooResponse {
                model_id: model_id.clone(),
                item_id: a.id,
                correct: a.correct,
            }));
            Ok(())
        })?;
        done.save(&responses[first..])?;
    }
    let mut base = None;
    if with_base {
        let pairs = spec.base_pairs();
        let out = models.join("base");
        let run = TrainingRun {
            dir: scratch.join("base"),
            size: &spec.base.size,
            pairs: &pairs,
            steps: spec.base.steps,
            snapshots: &[spec.base.steps],
            seed: spec.seed.wrapping_add(0xba5e),
            keep: Some(out.clone()),
        };
        run.train(spec, control, &bar, |_, loss, model, tokenizer| {
            let answers = answer(model, tokenizer)?;
            let solved = answers.iter().filter(|a| a.correct).count();
            say(format!(
                "base model: loss {loss:.3}, zero-shot accuracy {:.3} ({solved}/{} items)",
                solved as f64 / answers.len() as f64,
                answers.len()
            ));
            Ok(())
        })?;
        base = Some(out);
    }
    bar.finish_and_clear();
    Ok(Zoo {
        items,
        responses,
        base,
    })
}

/// Builds the zoo into `out`: `items.parquet`, `responses.parquet`, `zoo.json` (the spec,
/// so the folder says how to regenerate it) and `models/` (the kept models).
pub fn write_zoo(out: &Path, spec: &ZooSpec, control: &ZooControl) -> Result<Zoo> {
    std::fs::create_dir_all(out).map_err(|e| ExperimentError::io(out, e))?;
    // Kept when the build stops, so the same command resumes after the last finished run.
    let scratch = out.join(".zoo-scratch");
    let zoo = train_zoo(&scratch, &out.join("models"), spec, control)?;
    let _ = std::fs::remove_dir_all(&scratch);
    let write = |name: &str, batch| {
        let path = out.join(name);
        crate::data::files::write_parquet(&path, &[batch])
            .map_err(|e| ExperimentError::io(&path, e))
    };
    write("items.parquet", items_batch(&zoo.items))?;
    write("responses.parquet", responses_batch(&zoo.responses))?;
    let json = serde_json::to_string_pretty(spec).expect("a spec serializes");
    std::fs::write(out.join("zoo.json"), json + "\n")
        .map_err(|e| ExperimentError::io(&out.join("zoo.json"), e))?;
    Ok(zoo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn micro() -> ZooSpec {
        ZooSpec::miniature()
    }

    #[test]
    fn the_base_model_sees_easy_facts_but_rarely_long_sums() {
        let spec = ZooSpec::default();
        let bench = spec.benchmark();
        let trained: std::collections::HashSet<String> =
            spec.base_pairs().into_iter().map(|(q, _)| q).collect();
        let seen = |digits: u32| {
            let of: Vec<_> = bench.iter().filter(|i| i.n_digits == digits).collect();
            of.iter().filter(|i| trained.contains(&i.question)).count() as f64 / of.len() as f64
        };
        assert!(seen(1) > 0.99, "{}", seen(1));
        assert!(seen(spec.max_digits) < 0.05, "{}", seen(spec.max_digits));
    }

    /// `crossdiff zoo --out data/demo` (the default recipe) rebuilds what is shipped.
    #[test]
    fn the_default_recipe_is_the_shipped_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/zoo.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("SKIPPED: {} is absent", path.display());
            return;
        };
        let shipped: ZooSpec = serde_json::from_str(&text).unwrap();
        assert_eq!(shipped, ZooSpec::default());
    }

    #[test]
    fn snapshots_are_spaced_and_end_at_the_budget() {
        let spec = ZooSpec {
            snapshots: 4,
            steps: 160,
            spacing: 2.0,
            ..ZooSpec::default()
        };
        assert_eq!(spec.snapshot_steps(), vec![10, 40, 90, 160]);
        let bad = ZooSpec { steps: 2, ..spec };
        assert!(bad.validate().unwrap_err().to_string().contains("steps"));
    }

    /// Every snapshot answers every item, the same spec gives the same leaderboard, a
    /// shortened build gives the full build's first models, and the base model is written.
    #[test]
    fn zoo_is_a_full_and_reproducible_leaderboard() {
        let tmp = tempfile::tempdir().unwrap();
        let full = write_zoo(&tmp.path().join("a"), &micro(), &ZooControl::default()).unwrap();
        let n_items = full.items.len();
        assert_eq!(full.responses.len(), 3 * n_items);
        let models: std::collections::BTreeSet<&str> =
            full.responses.iter().map(|r| r.model_id.as_str()).collect();
        assert_eq!(models.len(), 3);
        assert!(models.contains("tiny0-h32-l1-step00012"));
        let base = full.base.clone().unwrap();
        assert_eq!(base, tmp.path().join("a/models/base"));
        assert!(base.join("model.safetensors").exists());
        assert!(base.join("tokenizer.json").exists());
        assert!(tmp.path().join("a/zoo.json").exists());
        assert!(!tmp.path().join("a/.zoo-scratch").exists());
        let again = train_zoo(
            &tmp.path().join("s"),
            &tmp.path().join("m"),
            &micro(),
            &ZooControl::default(),
        )
        .unwrap();
        assert_eq!(full.responses, again.responses);
        let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
        assert_eq!(weights(&base), weights(&tmp.path().join("m/base")));
        let prefix = train_zoo(
            &tmp.path().join("s2"),
            &tmp.path().join("m2"),
            &micro(),
            &ZooControl {
                snapshot_limit: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(prefix.responses[..], full.responses[..2 * n_items]);
        assert!(prefix.base.is_none());
        // A finished run's responses are kept in the scratch folder and reused by a build
        // with the same spec (an interrupted build resumes), but not by another spec.
        let scratch = tmp.path().join("resume");
        let first = train_zoo(
            &scratch,
            &tmp.path().join("m3"),
            &micro(),
            &Default::default(),
        )
        .unwrap();
        let marker = scratch.join("size-0.done.json");
        let mut kept: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&marker).unwrap()).unwrap();
        let flipped = !first.responses[0].correct;
        kept["responses"][0][2] = serde_json::Value::Bool(flipped);
        std::fs::write(&marker, kept.to_string()).unwrap();
        let resumed = train_zoo(
            &scratch,
            &tmp.path().join("m3"),
            &micro(),
            &Default::default(),
        )
        .unwrap();
        assert_eq!(resumed.responses[0].correct, flipped);
        assert_eq!(resumed.responses[1..], first.responses[1..]);
        let other = ZooSpec {
            learning_rate: 1e-3,
            ..micro()
        };
        let fresh = train_zoo(
            &scratch,
            &tmp.path().join("m3"),
            &other,
            &Default::default(),
        )
        .unwrap();
        assert_ne!(fresh.responses[0].correct, flipped);
        let stop = ZooControl::default();
        stop.cancel.set();
        assert!(train_zoo(tmp.path(), tmp.path(), &micro(), &stop).is_err());
    }
}
