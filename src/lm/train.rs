//! Supervised fine-tuning of a model folder on prompt/response pairs: epochs over a seeded
//! shuffle, micro-batches with gradient accumulation, full fine-tuning or LoRA, a progress
//! bar, atomic checkpoints, and resumption that reaches the same weights as a run that was
//! never interrupted. The result is written as a Hugging Face folder (LoRA merged in).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::files::{self, write_safetensors};
use super::lora::{self, AdapterSource, LoraConfig};
use super::optim::AdamWParams;
use super::schedule::WarmupCosine;
use super::sft::{SftUpdater, TokenBatch};
use super::tokenizer::TextTokenizer;
use super::{Decoder, LmError, Result};
use crate::checksum::{first_mismatch, folder_checks, FileCheck};

/// Fine-tuning settings. The defaults are the paper's (full fine-tuning, AdamW betas
/// 0.9/0.99, weight decay 0.1, lr 5e-6, cosine with 10% warm-up, clipping 0.1, 5 epochs,
/// sequences up to 4,096 tokens, seed 42); the batch shape is ours (the paper does not
/// state it): micro-batches of 4 with 4 accumulated, 16 examples per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftOptions {
    pub epochs: usize,
    pub learning_rate: f64,
    pub warmup_ratio: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub max_grad_norm: f64,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    pub gradient_accumulation: usize,
    /// Longer examples are cut to this many tokens (the response's end is lost first).
    pub max_seq_len: usize,
    pub seed: u64,
    /// Low-rank adapters instead of full fine-tuning.
    pub lora: Option<LoraConfig>,
    /// Steps between checkpoints (0: only at the end of each epoch).
    pub checkpoint_every: usize,
}

impl Default for SftOptions {
    fn default() -> Self {
        Self {
            epochs: 5,
            learning_rate: 5e-6,
            warmup_ratio: 0.1,
            beta1: 0.9,
            beta2: 0.99,
            weight_decay: 0.1,
            max_grad_norm: 0.1,
            batch_size: 4,
            gradient_accumulation: 4,
            max_seq_len: 4096,
            seed: 42,
            lora: None,
            checkpoint_every: 0,
        }
    }
}

impl SftOptions {
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("gradient_accumulation", self.gradient_accumulation),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(LmError::Invalid(format!("{name} must be at least 1")));
        }
        if self.max_seq_len < 2 {
            return Err(LmError::Invalid("max_seq_len must be at least 2".into()));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(LmError::Invalid(format!(
                "learning_rate must be positive, got {}",
                self.learning_rate
            )));
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            return Err(LmError::Invalid("warmup_ratio must be in [0, 1]".into()));
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return Err(LmError::Invalid("beta1 and beta2 must be in [0, 1)".into()));
        }
        if self.max_grad_norm.is_nan() || self.max_grad_norm <= 0.0 || self.weight_decay < 0.0 {
            return Err(LmError::Invalid(
                "max_grad_norm must be positive and weight_decay non-negative".into(),
            ));
        }
        if let Some(l) = &self.lora {
            l.validate()?;
        }
        Ok(())
    }

    fn examples_per_step(&self) -> usize {
        self.batch_size * self.gradient_accumulation
    }
}

/// One training example as tokens: the prompt (no loss) and the response (loss).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub prompt: Vec<u32>,
    pub response: Vec<u32>,
}

/// Tokenizes prompt/response pairs. With `chat`, each pair is rendered by the model's chat
/// template as a user turn and the assistant's reply (the reply's tokens are those after the
/// generation prompt, end-of-turn marks included); without, the prompt is encoded with the
/// tokenizer's special tokens and the response followed by the end-of-sequence token.
pub fn encode_examples(
    tokenizer: &TextTokenizer,
    pairs: &[(String, String)],
    chat: bool,
) -> Result<Vec<Example>> {
    let template = if chat {
        Some(tokenizer.chat_template()?)
    } else {
        None
    };
    pairs
        .iter()
        .enumerate()
        .map(|(k, (prompt, response))| {
            if response.is_empty() {
                return Err(LmError::Invalid(format!(
                    "training pair {k}: the response is empty, so there is nothing to learn"
                )));
            }
            let (prompt_ids, response_ids) = match template {
                Some(t) => {
                    let (head, tail) = t.split_pair(prompt, response)?;
                    (
                        tokenizer.encode(&head, false)?,
                        tokenizer.encode(&tail, false)?,
                    )
                }
                None => {
                    let end = tokenizer.eos_token().unwrap_or("");
                    (
                        tokenizer.encode(prompt, true)?,
                        tokenizer.encode(&format!("{response}{end}"), false)?,
                    )
                }
            };
            if response_ids.is_empty() {
                return Err(LmError::Invalid(format!(
                    "training pair {k}: the response encodes to no tokens"
                )));
            }
            Ok(Example {
                prompt: prompt_ids,
                response: response_ids,
            })
        })
        .collect()
}

/// How a run is driven from outside: cancellation (Ctrl-C), a step limit (tests), progress.
#[derive(Debug, Clone, Default)]
pub struct Control {
    pub cancel: crate::cancel::Cancel,
    /// Stop (with a checkpoint) once this many steps are done in total.
    pub stop_after_steps: Option<usize>,
    pub progress: bool,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftReport {
    /// The model folder written (only when `completed`).
    pub output: PathBuf,
    pub completed: bool,
    pub steps: usize,
    pub total_steps: usize,
    pub epochs: usize,
    /// Mean response-token loss of each step.
    pub losses: Vec<f64>,
    pub final_loss: f64,
    /// Real tokens processed (all steps, including those before a resume).
    pub tokens: usize,
    /// Training seconds (all sessions).
    pub seconds: f64,
    /// The step a resumed run started from.
    pub resumed_from: Option<usize>,
    pub trainable_parameters: usize,
}

/// What a checkpoint records besides tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointState {
    fingerprint: String,
    step: usize,
    losses: Vec<f64>,
    tokens: usize,
    seconds: f64,
    /// What the checkpoint's tensor files held when written, checked on resume.
    #[serde(default)]
    files: BTreeMap<String, FileCheck>,
}

/// The checkpoint folder of a run writing `output`: a hidden sibling.
pub fn checkpoint_dir(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    output
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!(".{name}.checkpoints"))
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> LmError {
    LmError::Invalid(format!("{}: {e}", path.display()))
}

/// A stable 64-bit FNV-1a over everything that decides the weights a run reaches.
fn fingerprint(base: &Path, options: &SftOptions, examples: &[Example]) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    };
    let base = base.canonicalize().unwrap_or_else(|_| base.to_path_buf());
    eat(base.to_string_lossy().as_bytes());
    eat(serde_json::to_string(options)
        .unwrap_or_default()
        .as_bytes());
    for e in examples {
        for t in e.prompt.iter().chain([&u32::MAX]).chain(&e.response) {
            eat(&t.to_le_bytes());
        }
        eat(b";");
    }
    format!("{h:016x}")
}

/// The model being trained and the vars the optimizer moves.
struct Trainee {
    model: Decoder,
    trainable: Vec<(String, Var)>,
    /// Frozen base weights (LoRA only), for merging at the end.
    base: Option<BTreeMap<String, Tensor>>,
}

fn prepare(base_dir: &Path, options: &SftOptions, device: &Device) -> Result<Trainee> {
    let (model, map) = files::load(base_dir, DType::F32, device)?;
    let Some(lora_config) = &options.lora else {
        return Ok(Trainee {
            model,
            trainable: files::vars_of(&map),
            base: None,
        });
    };
    // Frozen base: plain tensors (no var, so no gradient is computed for them).
    let base: BTreeMap<String, Tensor> = files::tensors_of(&map)
        .into_iter()
        .map(|(k, t)| (k, t.detach()))
        .collect();
    let config = model.config.clone();
    drop(model);
    let adapters = VarMap::new();
    lora::init_adapters(
        &config,
        lora_config,
        options.seed,
        &adapters,
        DType::F32,
        device,
    )?;
    let frozen: HashMap<String, Tensor> = base.clone().into_iter().collect();
    let model = Decoder::with_adapters(
        &config,
        VarBuilder::from_tensors(frozen, DType::F32, device),
        &AdapterSource {
            config: lora_config,
            vb: VarBuilder::from_varmap(&adapters, DType::F32, device),
        },
    )?;
    Ok(Trainee {
        model,
        trainable: files::vars_of(&adapters),
        base: Some(base),
    })
}

/// The example indices of `epoch` in training order: a shuffle drawn from (seed, epoch).
fn epoch_order(n: usize, seed: u64, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64));
    order.shuffle(&mut rng);
    order
}

fn progress_bar(total: usize, done: usize, enabled: bool) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "fine_tune [{bar:30}] step {pos}/{len} · {msg} · {elapsed} (ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_position(done as u64);
    bar.reset_eta();
    bar
}

/// Fine-tunes the model folder `base_dir` on `examples` and writes the result to `output`
/// (tokenizer files copied from the base). A checkpoint of an earlier, interrupted run with
/// the same base, options and examples is resumed; one of a different run is an error.
pub fn fine_tune(
    base_dir: &Path,
    examples: &[Example],
    options: &SftOptions,
    output: &Path,
    device: &Device,
    control: &Control,
) -> Result<SftReport> {
    options.validate()?;
    let examples: Vec<Example> = examples
        .iter()
        .filter(|e| !e.response.is_empty() && e.prompt.len() < options.max_seq_len)
        .cloned()
        .collect();
    if examples.is_empty() {
        return Err(LmError::Invalid(format!(
            "no training example has a response within max_seq_len {}",
            options.max_seq_len
        )));
    }
    let pad = TextTokenizer::load(base_dir)
        .map(|t| t.pad_id())
        .unwrap_or(0);
    let trainee = prepare(base_dir, options, device)?;
    let trainable_parameters = trainee.trainable.iter().map(|(_, v)| v.elem_count()).sum();
    let per_step = options.examples_per_step();
    let steps_per_epoch = examples.len().div_ceil(per_step);
    let total_steps = steps_per_epoch * options.epochs;
    let schedule =
        WarmupCosine::with_ratio(options.learning_rate, total_steps, options.warmup_ratio);
    let params = AdamWParams {
        beta1: options.beta1,
        beta2: options.beta2,
        eps: 1e-8,
        weight_decay: options.weight_decay,
    };
    let mut updater = SftUpdater::new(
        trainee.trainable.clone(),
        schedule,
        params,
        options.max_grad_norm,
    )?;

    let checkpoints = checkpoint_dir(output);
    let print = fingerprint(base_dir, options, &examples);
    let mut state = CheckpointState {
        fingerprint: print.clone(),
        step: 0,
        losses: Vec::new(),
        tokens: 0,
        seconds: 0.0,
        files: BTreeMap::new(),
    };
    let resumed_from = match read_checkpoint(&checkpoints)? {
        Some((saved, tensors, moments)) => {
            if saved.fingerprint != print {
                return Err(LmError::Invalid(format!(
                    "{} holds a checkpoint of a different fine-tune (other base model, options \
                     or data); remove it to start this one",
                    checkpoints.display()
                )));
            }
            for (name, var) in &trainee.trainable {
                let t = tensors
                    .get(name)
                    .ok_or_else(|| io_error(&checkpoints, format!("checkpoint lacks `{name}`")))?;
                var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
            }
            updater.optimizer_mut().restore(&moments, saved.step)?;
            state = saved;
            Some(state.step)
        }
        None => None,
    };

    let bar = progress_bar(total_steps, state.step, control.progress);
    let started = Instant::now();
    let seconds_before = state.seconds;
    let mut tokens_this_session = 0usize;
    let mut order = (usize::MAX, Vec::new());
    let mut completed = true;
    for step in state.step..total_steps {
        if control.cancel.is_set() || control.stop_after_steps.is_some_and(|s| step >= s) {
            completed = false;
            break;
        }
        let epoch = step / steps_per_epoch;
        if order.0 != epoch {
            order = (epoch, epoch_order(examples.len(), options.seed, epoch));
        }
        let within = step % steps_per_epoch;
        let chosen = &order.1[within * per_step..((within + 1) * per_step).min(examples.len())];
        let micro: Vec<TokenBatch> = chosen
            .chunks(options.batch_size)
            .map(|chunk| {
                let pairs: Vec<(Vec<u32>, Vec<u32>)> = chunk
                    .iter()
                    .map(|&i| (examples[i].prompt.clone(), examples[i].response.clone()))
                    .collect();
                TokenBatch::from_pairs(&pairs, pad, options.max_seq_len)
            })
            .collect();
        let dropout_seed = options.lora.as_ref().map(|_| {
            options
                .seed
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
                .wrapping_add((step * options.gradient_accumulation) as u64)
        });
        let stats = updater.step(&trainee.model, &micro, dropout_seed)?;
        // A non-finite loss or gradient poisons every weight it touches: stop here, before a
        // checkpoint or a model could be written from them.
        if !stats.loss.is_finite() || !stats.grad_norm.is_finite() {
            bar.finish_and_clear();
            return Err(LmError::Diverged {
                step: step + 1,
                loss: stats.loss,
                grad_norm: stats.grad_norm,
            });
        }
        state.step = step + 1;
        state.losses.push(stats.loss);
        state.tokens += stats.tokens;
        tokens_this_session += stats.tokens;
        let elapsed = started.elapsed().as_secs_f64();
        state.seconds = seconds_before + elapsed;
        bar.set_position(state.step as u64);
        bar.set_message(format!(
            "epoch {}/{} · loss {:.4} · {:.0} tok/s",
            epoch + 1,
            options.epochs,
            stats.loss,
            tokens_this_session as f64 / elapsed.max(1e-9)
        ));
        let epoch_end = state.step.is_multiple_of(steps_per_epoch);
        let periodic =
            options.checkpoint_every > 0 && state.step.is_multiple_of(options.checkpoint_every);
        if (epoch_end || periodic) && state.step < total_steps {
            write_checkpoint(&checkpoints, &state, &trainee.trainable, &updater)?;
        }
    }
    bar.finish_and_clear();
    if !completed {
        // Interrupted: keep the work done so far for the next call.
        write_checkpoint(&checkpoints, &state, &trainee.trainable, &updater)?;
    } else {
        let trained: BTreeMap<String, Tensor> = trainee
            .trainable
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        let weights = match (&trainee.base, &options.lora) {
            (Some(base), Some(l)) => lora::merge(base, &trained, l)?,
            _ => trained,
        };
        let config = files::read_config(base_dir)?;
        files::save(
            output,
            &config,
            &weights,
            files::dtype_of(&config),
            Some(base_dir),
        )?;
        let _ = std::fs::remove_dir_all(&checkpoints);
    }
    Ok(SftReport {
        output: output.to_path_buf(),
        completed,
        steps: state.step,
        total_steps,
        epochs: options.epochs,
        final_loss: state.losses.last().copied().unwrap_or(f64::NAN),
        losses: state.losses,
        tokens: state.tokens,
        seconds: state.seconds,
        resumed_from,
        trainable_parameters,
    })
}

/// Writes a checkpoint as `step-NNNNNN/` and then points `latest` at it (a file replaced by
/// rename), so a crash at any moment leaves the previous checkpoint intact and named.
fn write_checkpoint(
    dir: &Path,
    state: &CheckpointState,
    trainable: &[(String, Var)],
    updater: &SftUpdater,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let name = format!("step-{:06}", state.step);
    let target = dir.join(&name);
    let staging = dir.join(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| io_error(&staging, e))?;
    let weights: BTreeMap<String, Tensor> = trainable
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    write_safetensors(&staging.join("trainable.safetensors"), &weights)?;
    write_safetensors(
        &staging.join("optimizer.safetensors"),
        &updater.optimizer().state()?,
    )?;
    let mut state = state.clone();
    state.files = folder_checks(&staging).map_err(|e| io_error(&staging, e))?;
    let json = serde_json::to_string_pretty(&state).map_err(|e| io_error(&staging, e))?;
    std::fs::write(staging.join("state.json"), json).map_err(|e| io_error(&staging, e))?;
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&staging, &target).map_err(|e| io_error(&target, e))?;
    let pointer = dir.join(".latest.partial");
    std::fs::write(&pointer, &name).map_err(|e| io_error(&pointer, e))?;
    std::fs::rename(&pointer, dir.join("latest")).map_err(|e| io_error(dir, e))?;
    // Older checkpoints are no longer needed.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let n = entry.file_name().to_string_lossy().into_owned();
            if n.starts_with("step-") && n != name {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
    Ok(())
}

type Loaded = (
    CheckpointState,
    BTreeMap<String, Tensor>,
    BTreeMap<String, Tensor>,
);

fn read_checkpoint(dir: &Path) -> Result<Option<Loaded>> {
    let pointer = dir.join("latest");
    let name = match std::fs::read_to_string(&pointer) {
        Ok(n) => n.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(&pointer, e)),
    };
    let at = dir.join(&name);
    let text = std::fs::read_to_string(at.join("state.json")).map_err(|e| io_error(&at, e))?;
    let state: CheckpointState =
        serde_json::from_str(&text).map_err(|e| io_error(&at.join("state.json"), e))?;
    // Tensor bytes overwritten since they were written can still parse: a checkpoint that
    // fails its checks is not resumed from (the run starts over, reaching the same weights).
    let unchecked = state.files.is_empty();
    if let Some(why) = first_mismatch(&at, &state.files)
        .or_else(|| unchecked.then(|| format!("{} has no checksums", at.display())))
    {
        eprintln!(
            "fine-tune: not resuming from the checkpoint at step {}: {why}; starting over",
            state.step
        );
        return Ok(None);
    }
    let read = |file: &str| -> Result<BTreeMap<String, Tensor>> {
        let path = at.join(file);
        Ok(candle_core::safetensors::load(&path, &Device::Cpu)
            .map_err(|e| io_error(&path, e))?
            .into_iter()
            .collect())
    };
    Ok(Some((
        state,
        read("trainable.safetensors")?,
        read("optimizer.safetensors")?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::answers::{AnswerFilter, ExactMatch, Take};
    use crate::lm::evaluate::{Evaluator, GenerationItem, GenerationOptions};
    use crate::lm::template::Message;
    use crate::lm::tiny::{create_tiny_model, TinySpec};

    const LETTERS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    /// "Repeat: c a h" -> "c a h", every ordered triple drawn from a fixed stride.
    fn pairs(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|k| {
                let s = [k % 8, (k * 3 + 1) % 8, (k * 5 + k / 8 + 2) % 8]
                    .map(|i| LETTERS[i])
                    .join(" ");
                (format!("Repeat: {s}"), s)
            })
            .collect()
    }

    fn spec() -> TinySpec {
        TinySpec {
            vocab_size: 300,
            hidden_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            intermediate_size: 128,
            max_position_embeddings: 128,
            seed: 7,
        }
    }

    fn tiny(dir: &Path) -> TextTokenizer {
        let texts: Vec<String> = pairs(64).iter().map(|(p, r)| format!("{p}\n{r}")).collect();
        create_tiny_model(dir, &texts, &spec()).unwrap();
        TextTokenizer::load(dir).unwrap()
    }

    fn accuracy(dir: &Path, items: &[(String, String)]) -> f64 {
        let tokenizer = TextTokenizer::load(dir).unwrap();
        let (model, _) = files::load(dir, DType::F32, &Device::Cpu).unwrap();
        let template = tokenizer.chat_template().unwrap();
        let items: Vec<GenerationItem> = items
            .iter()
            .enumerate()
            .map(|(k, (p, r))| GenerationItem {
                id: k.to_string(),
                prompt: template.render(&[Message::user(p)], true, &[]).unwrap(),
                reference: r.clone(),
            })
            .collect();
        let mut evaluator = Evaluator::new(&model, &tokenizer);
        evaluator.add_special_tokens = false;
        let options = GenerationOptions {
            max_new_tokens: 8,
            stop: vec!["\n".into()],
            filter: AnswerFilter::new(r"(?s)(.+)", Take::First).unwrap(),
            matcher: ExactMatch::default(),
            batch_size: 16,
        };
        let results = evaluator.generate(&items, &options).unwrap();
        results.iter().filter(|r| r.correct).count() as f64 / results.len() as f64
    }

    fn options() -> SftOptions {
        SftOptions {
            epochs: 30,
            learning_rate: 3e-3,
            warmup_ratio: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            batch_size: 8,
            gradient_accumulation: 2,
            max_seq_len: 64,
            ..SftOptions::default()
        }
    }

    /// Fine-tuning a random tiny model on a copy task through the chat template: the loss
    /// falls and exact-match accuracy of greedy answers rises from zero.
    #[test]
    fn fine_tuning_teaches_a_tiny_model_to_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let tokenizer = tiny(&base);
        let train = pairs(64);
        let examples = encode_examples(&tokenizer, &train, true).unwrap();
        // The response is the reply and the end-of-turn mark, nothing of the prompt.
        assert_eq!(
            tokenizer.decode(&examples[0].response, false).unwrap(),
            format!("{}<|im_end|>\n", train[0].1)
        );
        let before = accuracy(&base, &train);
        let out = tmp.path().join("tuned");
        let report = fine_tune(
            &base,
            &examples,
            &options(),
            &out,
            &Device::Cpu,
            &Control::default(),
        )
        .unwrap();
        assert!(report.completed);
        assert_eq!(report.total_steps, 30 * 4);
        assert_eq!(report.steps, report.total_steps);
        let first = report.losses[0];
        let after = accuracy(&out, &train);
        eprintln!(
            "copy task: loss {first:.3} -> {:.4}, accuracy {before:.2} -> {after:.2}, {:.1} s",
            report.final_loss, report.seconds
        );
        assert!(
            report.final_loss < 0.1 * first,
            "{first} -> {}",
            report.final_loss
        );
        assert!(before < 0.05, "untrained accuracy {before}");
        assert!(after > 0.8, "trained accuracy {after}");
        // The output folder is a complete model folder with the base's tokenizer.
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            assert!(out.join(file).exists(), "{file}");
        }
        assert!(!checkpoint_dir(&out).exists());
    }

    fn weights(dir: &Path) -> BTreeMap<String, Vec<f32>> {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)
            .unwrap()
            .into_iter()
            .map(|(k, t)| (k, t.flatten_all().unwrap().to_vec1::<f32>().unwrap()))
            .collect()
    }

    /// A run stopped part-way (mid-epoch, after a checkpoint at the epoch's end) and resumed
    /// reaches exactly the weights of a run never stopped; full and LoRA alike.
    #[test]
    fn interrupted_runs_resume_to_identical_weights() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let tokenizer = tiny(&base);
        let examples = encode_examples(&tokenizer, &pairs(40), true).unwrap();
        for lora in [
            None,
            Some(LoraConfig {
                rank: 4,
                alpha: 8.0,
                dropout: 0.1,
                ..LoraConfig::default()
            }),
        ] {
            let opts = SftOptions {
                epochs: 2,
                checkpoint_every: 2,
                lora: lora.clone(),
                ..options()
            };
            let whole = tmp.path().join("whole");
            let straight = fine_tune(
                &base,
                &examples,
                &opts,
                &whole,
                &Device::Cpu,
                &Control::default(),
            )
            .unwrap();
            assert_eq!(straight.total_steps, 6);

            let split = tmp.path().join("split");
            let stop = Control {
                stop_after_steps: Some(3),
                ..Control::default()
            };
            let first = fine_tune(&base, &examples, &opts, &split, &Device::Cpu, &stop).unwrap();
            assert!(!first.completed && first.steps == 3);
            assert!(!split.exists(), "an unfinished run writes no model");
            assert!(checkpoint_dir(&split).join("latest").exists());
            // Cancelled before its first step, the second call still resumes and finishes.
            let second = fine_tune(
                &base,
                &examples,
                &opts,
                &split,
                &Device::Cpu,
                &Control::default(),
            )
            .unwrap();
            assert_eq!(second.resumed_from, Some(3));
            assert!(second.completed);
            assert_eq!(second.losses, straight.losses);
            assert_eq!(weights(&whole), weights(&split), "lora: {}", lora.is_some());
            if lora.is_some() {
                // Merged adapters changed the adapted weights only.
                let b = weights(&base);
                let w = weights(&whole);
                assert_ne!(
                    b["model.layers.0.self_attn.q_proj.weight"],
                    w["model.layers.0.self_attn.q_proj.weight"]
                );
                assert_eq!(
                    b["model.embed_tokens.weight"],
                    w["model.embed_tokens.weight"]
                );
                assert!(
                    straight.trainable_parameters < 20_000,
                    "{}",
                    straight.trainable_parameters
                );
            }
            let _ = std::fs::remove_dir_all(&whole);
            let _ = std::fs::remove_dir_all(&split);
        }
        // A checkpoint of another run is refused, not silently resumed.
        let split = tmp.path().join("split");
        let stop = Control {
            stop_after_steps: Some(1),
            ..Control::default()
        };
        fine_tune(&base, &examples, &options(), &split, &Device::Cpu, &stop).unwrap();
        let other = SftOptions {
            learning_rate: 1e-3,
            ..options()
        };
        let err = fine_tune(
            &base,
            &examples,
            &other,
            &split,
            &Device::Cpu,
            &Control::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("different fine-tune"), "{err}");
    }

    /// A checkpoint whose tensor bytes were overwritten (still parsing) is not resumed from:
    /// the run starts over and reaches the weights of an uninterrupted run; a learning rate
    /// that blows the loss up stops the run at that step with nothing written.
    #[test]
    fn corrupted_checkpoints_and_diverged_runs_are_caught() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let tokenizer = tiny(&base);
        let examples = encode_examples(&tokenizer, &pairs(40), true).unwrap();
        let opts = SftOptions {
            epochs: 2,
            checkpoint_every: 2,
            ..options()
        };
        let whole = tmp.path().join("whole");
        let cpu = Device::Cpu;
        let straight =
            fine_tune(&base, &examples, &opts, &whole, &cpu, &Control::default()).unwrap();
        let split = tmp.path().join("split");
        let stop = Control {
            stop_after_steps: Some(3),
            ..Control::default()
        };
        fine_tune(&base, &examples, &opts, &split, &cpu, &stop).unwrap();
        let checkpoints = checkpoint_dir(&split);
        let latest = std::fs::read_to_string(checkpoints.join("latest")).unwrap();
        let tensors = checkpoints
            .join(latest.trim())
            .join("trainable.safetensors");
        let mut bytes = std::fs::read(&tensors).unwrap();
        let at = bytes.len() - 7;
        bytes[at] ^= 0x40;
        std::fs::write(&tensors, &bytes).unwrap();
        let resumed =
            fine_tune(&base, &examples, &opts, &split, &cpu, &Control::default()).unwrap();
        assert_eq!(
            resumed.resumed_from, None,
            "the corrupted checkpoint was not used"
        );
        assert_eq!(resumed.losses, straight.losses);
        assert_eq!(weights(&whole), weights(&split));

        let blown = tmp.path().join("blown");
        let wild = SftOptions {
            learning_rate: 1e30,
            max_grad_norm: 1e30,
            ..opts
        };
        let err =
            fine_tune(&base, &examples, &wild, &blown, &cpu, &Control::default()).unwrap_err();
        assert!(matches!(err, LmError::Diverged { .. }), "{err}");
        assert!(err.to_string().contains("diverged at step"), "{err}");
        assert!(!blown.exists(), "no model from a diverged run");
    }

    /// Two micro-batches accumulated make the same update as one batch of both.
    #[test]
    fn accumulation_equals_one_large_batch() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let tokenizer = tiny(&base);
        let examples = encode_examples(&tokenizer, &pairs(8), true).unwrap();
        let run = |batch_size, gradient_accumulation, name: &str| {
            let opts = SftOptions {
                epochs: 1,
                batch_size,
                gradient_accumulation,
                ..options()
            };
            let out = tmp.path().join(name);
            fine_tune(
                &base,
                &examples,
                &opts,
                &out,
                &Device::Cpu,
                &Control::default(),
            )
            .unwrap();
            weights(&out)
        };
        let (one, two) = (run(8, 1, "one"), run(4, 2, "two"));
        for (name, a) in &one {
            let worst = a
                .iter()
                .zip(&two[name])
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            assert!(worst < 1e-5, "{name}: {worst}");
        }
    }

    #[test]
    fn bad_options_and_data_are_named() {
        let bad = SftOptions {
            batch_size: 0,
            ..SftOptions::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("batch_size"));
        let bad = SftOptions {
            learning_rate: -1.0,
            ..SftOptions::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("learning_rate"));
        let err = serde_json::from_str::<SftOptions>(r#"{"epoch": 3}"#).unwrap_err();
        assert!(err.to_string().contains("epoch"), "{err}");
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let tokenizer = tiny(&base);
        let err = encode_examples(&tokenizer, &[("q".into(), String::new())], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pair 0") && err.contains("empty"), "{err}");
    }
}
