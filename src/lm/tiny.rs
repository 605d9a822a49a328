//! The tiny-model factory: a randomly initialised Qwen2-architecture model with a byte-level
//! BPE tokenizer trained on given text, written as a Hugging Face folder (config.json,
//! model.safetensors, tokenizer.json, tokenizer_config.json with a ChatML chat template,
//! generation_config.json). Tests and the demo fine-tune these; nothing is downloaded.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::files;
use super::tokenizer::{train_byte_level_bpe, TextTokenizer};
use super::{Decoder, DecoderConfig, LmError, Result};

/// ChatML as Qwen2.5 lays it out, without Qwen's default system prompt (a tiny model has no
/// use for twenty tokens of identity on every example).
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}\
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}\
{%- endfor %}\
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Special tokens, first in the vocabulary: id 0 pads and ends text, 1 and 2 frame turns.
pub const SPECIAL_TOKENS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

/// The shape of a tiny model. The default has about 5 M parameters with a 4k vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TinySpec {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub seed: u64,
}

impl Default for TinySpec {
    fn default() -> Self {
        Self {
            vocab_size: 4096,
            hidden_size: 256,
            num_hidden_layers: 5,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            intermediate_size: 768,
            max_position_embeddings: 2048,
            seed: 42,
        }
    }
}

/// What the factory wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct TinyModel {
    pub parameters: usize,
    pub vocab_size: usize,
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> LmError {
    LmError::Invalid(format!("{}: {e}", path.display()))
}

impl TinySpec {
    /// Every size at least 1 (a byte-level vocabulary at least its 256 bytes and the special
    /// tokens), and weights that fit in the memory available.
    pub fn validate(&self) -> Result<()> {
        super::config::check_sizes(&[
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("vocab_size", self.vocab_size),
        ])
        .map_err(LmError::Invalid)?;
        let min_vocab = 256 + SPECIAL_TOKENS.len();
        if self.vocab_size < min_vocab {
            return Err(LmError::Invalid(format!(
                "vocab_size must be at least {min_vocab} (256 bytes and {} special tokens), got {}",
                SPECIAL_TOKENS.len(),
                self.vocab_size
            )));
        }
        // Embedding, and per layer attention (q, k, v, o at most h x h each) and the MLP.
        let (h, i, l, v) = (
            self.hidden_size as u128,
            self.intermediate_size as u128,
            self.num_hidden_layers as u128,
            self.vocab_size as u128,
        );
        let parameters = v * h + l * (4 * h * h + 3 * h * i);
        // f32 weights, built once and copied once on the way to the file.
        crate::limits::check_allocation("a tiny model of this shape", parameters * 4 * 3)
            .map_err(LmError::Invalid)
    }
}

/// Writes a tiny model to `dir` (replaced if present), its tokenizer trained on `texts`.
pub fn create_tiny_model(dir: &Path, texts: &[String], spec: &TinySpec) -> Result<TinyModel> {
    spec.validate()?;
    if !spec
        .hidden_size
        .is_multiple_of(spec.num_attention_heads.max(1))
        || !spec
            .num_attention_heads
            .is_multiple_of(spec.num_key_value_heads.max(1))
        || !(spec.hidden_size / spec.num_attention_heads.max(1)).is_multiple_of(2)
    {
        return Err(LmError::Invalid(format!(
            "hidden_size {} must split into num_attention_heads {} heads of even size, and the \
             heads into num_key_value_heads {} groups",
            spec.hidden_size, spec.num_attention_heads, spec.num_key_value_heads
        )));
    }
    let scratch = tempfile_dir(dir)?;
    let tokenizer_path = scratch.join("tokenizer.json");
    train_byte_level_bpe(texts, spec.vocab_size, &SPECIAL_TOKENS, &tokenizer_path)?;
    let tokenizer_config = serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": null,
        "model_max_length": spec.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
        "chat_template": CHATML_TEMPLATE,
    });
    write_json(&scratch.join("tokenizer_config.json"), &tokenizer_config)?;
    let generation = serde_json::json!({"eos_token_id": [2, 0], "pad_token_id": 0});
    write_json(&scratch.join("generation_config.json"), &generation)?;
    let tokenizer = TextTokenizer::load(&scratch)?;
    let vocab_size = tokenizer.vocab_size();

    let config_json = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "max_position_embeddings": spec.max_position_embeddings,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-6,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "use_cache": true,
        "tie_word_embeddings": true,
        "sliding_window": null,
        "use_sliding_window": false,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "torch_dtype": "float32",
    });
    let config = DecoderConfig::parse(&config_json.to_string(), "tiny model spec")?;
    let weights = random_weights(&config, spec.seed)?;
    let parameters = weights.values().map(Tensor::elem_count).sum();
    // Save writes config and weights through its own staging folder, copying the tokenizer
    // files from the scratch folder.
    files::save(dir, &config, &weights, DType::F32, Some(&scratch))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(TinyModel {
        parameters,
        vocab_size,
    })
}

fn tempfile_dir(dir: &Path) -> Result<std::path::PathBuf> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let scratch = parent.join(format!(".{name}.tokenizer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| io_error(&scratch, e))?;
    Ok(scratch)
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| io_error(path, e))?;
    std::fs::write(path, text).map_err(|e| io_error(path, e))
}

/// Weights as transformers initialises Qwen2: N(0, 0.02) matrices, unit norm scales, zero
/// biases; drawn from `seed` so the same spec gives the same model.
fn random_weights(config: &DecoderConfig, seed: u64) -> Result<BTreeMap<String, Tensor>> {
    let map = VarMap::new();
    Decoder::new(
        config,
        VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
    )?;
    let mut names: Vec<(String, Vec<usize>)> = map
        .data()
        .lock()
        .expect("var map lock")
        .iter()
        .map(|(k, v)| (k.clone(), v.dims().to_vec()))
        .collect();
    names.sort();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    names
        .into_iter()
        .map(|(name, dims)| {
            let n: usize = dims.iter().product();
            let values: Vec<f32> = if name.contains("norm") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                (0..n).map(|_| 0.02 * standard_normal(&mut rng)).collect()
            };
            Ok((name, Tensor::from_vec(values, dims, &Device::Cpu)?))
        })
        .collect()
}

/// Box-Muller.
fn standard_normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
