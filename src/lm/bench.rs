//! `crossdiff bench lm`: training, scoring and generation throughput of two model shapes (about
//! 5 M parameters with a 4k vocabulary, and about 36 M with 8k) on this machine. `scripts/compare_torch.sh` runs the same
//! workloads in PyTorch (transformers' Qwen2 on the same folder) and prints the ratios.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::files;
use super::optim::AdamWParams;
use super::schedule::WarmupCosine;
use super::score::{continuation_logliks, greedy_batch};
use super::sft::{SftUpdater, TokenBatch};
use super::tiny::{create_tiny_model, TinySpec};
use super::Result;

/// The workloads' shapes.
#[derive(Debug, Clone, Serialize)]
pub struct LmBenchSpec {
    pub batch: usize,
    pub seq_len: usize,
    pub train_steps: usize,
    pub score_batches: usize,
    pub generate_prompts: usize,
    pub new_tokens: usize,
}

impl Default for LmBenchSpec {
    fn default() -> Self {
        Self {
            batch: 8,
            seq_len: 256,
            train_steps: 5,
            score_batches: 5,
            generate_prompts: 8,
            new_tokens: 64,
        }
    }
}

/// A benchmark case: a model shape and the workloads run on it.
#[derive(Debug, Clone)]
pub struct LmBenchCase {
    /// Names the cached model folder (`tiny-NAME`) and the case in the output.
    pub name: &'static str,
    pub model: TinySpec,
    pub spec: LmBenchSpec,
}

/// Today's 5 M-parameter default (8 x 256 tokens) and a model a CPU user would really
/// fine-tune: hidden 512, 8 layers, 8k vocabulary, about 36 M parameters, 4 x 512 tokens.
pub fn cases() -> Vec<LmBenchCase> {
    vec![
        LmBenchCase {
            name: "5m",
            model: TinySpec::default(),
            spec: LmBenchSpec::default(),
        },
        LmBenchCase {
            name: "36m",
            model: TinySpec {
                vocab_size: 8192,
                hidden_size: 512,
                num_hidden_layers: 8,
                num_attention_heads: 8,
                num_key_value_heads: 4,
                intermediate_size: 2048,
                max_position_embeddings: 2048,
                seed: 42,
            },
            spec: LmBenchSpec {
                batch: 4,
                seq_len: 512,
                train_steps: 3,
                score_batches: 3,
                generate_prompts: 4,
                new_tokens: 32,
            },
        },
    ]
}

#[derive(Debug, Clone, Serialize)]
pub struct LmBenchResult {
    pub case: String,
    pub parameters: usize,
    pub vocab_size: usize,
    pub threads: usize,
    pub train_tokens_per_s: f64,
    pub score_tokens_per_s: f64,
    pub generate_tokens_per_s: f64,
    pub spec: LmBenchSpec,
    /// Logits of the first 32 vocabulary entries at the last position of `probe_ids`, for
    /// checking that transformers computes the same function from the same folder.
    pub probe_ids: Vec<u32>,
    pub probe_logits: Vec<f32>,
    pub model_dir: String,
}

/// Text for the tokenizer, seeded: arithmetic word problems in the GSM8K style, and
/// sentences of made-up words (two to four syllables, Zipf-distributed) so a 4k vocabulary
/// has enough distinct frequent pieces to learn.
pub fn bench_corpus(n: usize, seed: u64) -> Vec<String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let names = [
        "Ava", "Ben", "Chen", "Dara", "Eli", "Farah", "Goran", "Hana",
    ];
    let things = ["apples", "books", "coins", "marbles", "pencils", "stamps"];
    let (onsets, vowels) = ("bcdfghjklmnprstvwz", "aeiou");
    let words: Vec<String> = (0..6000)
        .map(|_| {
            let syllables = rng.random_range(2..5);
            (0..syllables)
                .map(|_| {
                    let o = onsets.as_bytes()[rng.random_range(0..onsets.len())] as char;
                    let v = vowels.as_bytes()[rng.random_range(0..vowels.len())] as char;
                    format!("{o}{v}")
                })
                .collect()
        })
        .collect();
    (0..n)
        .map(|k| {
            if k % 2 == 0 {
                let (a, b, c) = (
                    rng.random_range(2..90),
                    rng.random_range(2..40),
                    rng.random_range(2..9),
                );
                let who = names[rng.random_range(0..names.len())];
                let what = things[rng.random_range(0..things.len())];
                format!(
                    "Q: {who} has {a} {what}. She buys {b} more and then gives away a {c}th of \
                     them. How many {what} does {who} have left?\nA: {who} has {a} + {b} = {} \
                     {what}. So the answer is {}.",
                    a + b,
                    (a + b) - (a + b) / c
                )
            } else {
                let len = rng.random_range(8..20);
                let sentence: Vec<&str> = (0..len)
                    .map(|_| {
                        // Zipf-like: rank r drawn with weight about 1/r.
                        let u: f64 = rng.random();
                        let rank = ((words.len() as f64).powf(u) as usize).min(words.len()) - 1;
                        words[rank].as_str()
                    })
                    .collect();
                format!("{}.", sentence.join(" "))
            }
        })
        .collect()
}

/// Creates (or reuses) the case's model under `cache` and measures the three workloads.
pub fn run(cache: &Path, case: &LmBenchCase) -> Result<LmBenchResult> {
    let spec = &case.spec;
    let dir = cache.join(format!("tiny-{}", case.name));
    if !dir.join("model.safetensors").exists() {
        // Enough text for the tokenizer to learn the vocabulary the shape asks for.
        let texts = bench_corpus(2 * case.model.vocab_size.max(4000), 1);
        create_tiny_model(&dir, &texts, &case.model)?;
    }
    super::allocator::keep_freed_memory();
    let device = Device::Cpu;
    let (model, map) = files::load(&dir, DType::F32, &device)?;
    let vocab = model.config.vocab_size;
    let parameters: usize = map.all_vars().iter().map(|v| v.elem_count()).sum();
    let probe_ids: Vec<u32> = (0..16).map(|k| 3 + k * 97 % (vocab as u32 - 3)).collect();
    let probe = model.forward(
        &candle_core::Tensor::new(probe_ids.as_slice(), &device)?.unsqueeze(0)?,
        None,
    )?;
    let probe_logits = probe
        .narrow(1, probe_ids.len() - 1, 1)?
        .flatten_all()?
        .narrow(0, 0, 32)?
        .to_vec1::<f32>()?;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut row = |len: usize| -> Vec<u32> {
        (0..len)
            .map(|_| rng.random_range(3..vocab as u32))
            .collect()
    };

    // Training: full fine-tuning steps on (batch x seq_len) tokens, half prompt, half response.
    let half = spec.seq_len / 2;
    let pairs: Vec<(Vec<u32>, Vec<u32>)> =
        (0..spec.batch).map(|_| (row(half), row(half))).collect();
    let batch = TokenBatch::from_pairs(&pairs, 0, spec.seq_len);
    let vars = super::files::vars_of(&map);
    let params = AdamWParams {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let schedule = WarmupCosine::with_ratio(1e-4, spec.train_steps + 1, 0.0);
    let mut updater = SftUpdater::new(vars, schedule, params, 1.0)?;
    updater.step(&model, std::slice::from_ref(&batch), None)?; // warm-up
    let started = Instant::now();
    for _ in 0..spec.train_steps {
        updater.step(&model, std::slice::from_ref(&batch), None)?;
    }
    let train_tokens = (spec.train_steps * spec.batch * spec.seq_len) as f64;
    let train_tokens_per_s = train_tokens / started.elapsed().as_secs_f64();

    // Scoring: forward passes over (batch x seq_len), continuation = last quarter.
    let requests: Vec<(Vec<u32>, Vec<u32>)> = (0..spec.batch)
        .map(|_| {
            let all = row(spec.seq_len + 1);
            let cut = spec.seq_len * 3 / 4;
            (all[..cut].to_vec(), all[cut..].to_vec())
        })
        .collect();
    continuation_logliks(&model, &requests, &device)?;
    let started = Instant::now();
    for _ in 0..spec.score_batches {
        continuation_logliks(&model, &requests, &device)?;
    }
    let score_tokens = (spec.score_batches * spec.batch * spec.seq_len) as f64;
    let score_tokens_per_s = score_tokens / started.elapsed().as_secs_f64();

    // Generation: prompts of 64 tokens, `new_tokens` greedy tokens each, KV cache.
    let prompts: Vec<Vec<u32>> = (0..spec.generate_prompts).map(|_| row(64)).collect();
    let started = Instant::now();
    let out = greedy_batch(&model, &prompts, spec.new_tokens, &[], 0, |_, _| false)?;
    let generated: usize = out.iter().map(Vec::len).sum();
    let generate_tokens_per_s = generated as f64 / started.elapsed().as_secs_f64();

    Ok(LmBenchResult {
        case: case.name.to_string(),
        parameters,
        vocab_size: vocab,
        threads: rayon::current_num_threads(),
        train_tokens_per_s,
        score_tokens_per_s,
        generate_tokens_per_s,
        spec: spec.clone(),
        probe_ids,
        probe_logits,
        model_dir: dir.display().to_string(),
    })
}
