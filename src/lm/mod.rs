//! The language-model engine: a decoder-only transformer of the Qwen2 and Llama families
//! written on candle's differentiable ops (candle-transformers' own models drop gradients in
//! their fused ops and return last-position logits only, so neither trains nor scores).

pub mod allocator;
pub mod answers;
pub mod bench;
pub mod cached_attention;
pub mod config;
pub mod device;
pub mod evaluate;
pub mod few_rows;
pub mod files;
pub mod kernels;
pub mod lora;
pub mod math_answer;
pub mod model;
pub mod optim;
pub mod rms_norm;
pub mod schedule;
pub mod score;
pub mod sft;
pub mod template;
pub mod tiny;
pub mod tokenizer;
pub mod train;

use thiserror::Error;

pub use config::DecoderConfig;
pub use model::Decoder;

/// Errors of the language-model layer.
#[derive(Debug, Error)]
pub enum LmError {
    #[error("{place}: {message}")]
    Config { place: String, message: String },

    #[error(
        "no model folder at {}: a Hugging Face model folder holds config.json, \
         model.safetensors and tokenizer.json", .0.display()
    )]
    NoModelFolder(std::path::PathBuf),

    #[error("{0}")]
    Invalid(String),

    #[error("stopped: {0}")]
    Cancelled(String),

    #[error(
        "training diverged at step {step}: loss {loss}, gradient norm {grad_norm}; nothing \
         after step {} was kept (try a lower learning_rate)", step - 1
    )]
    Diverged {
        step: usize,
        loss: f64,
        grad_norm: f64,
    },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = LmError> = std::result::Result<T, E>;

/// Test helpers.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::Tensor;
    use candle_nn::VarMap;

    /// Overwrites every weight with reproducible values (candle's CPU random init is not
    /// seedable): uniform-looking in [-0.4, 0.4] from a multiplicative hash of the position
    /// and the name; norm scales near 1.
    pub fn deterministic(map: &VarMap) {
        let vars = map.data().lock().unwrap();
        let mut names: Vec<&String> = vars.keys().collect();
        names.sort();
        for name in names {
            let var = &vars[name];
            let salt = name
                .bytes()
                .fold(17u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
            let values: Vec<f64> = (0..var.elem_count() as u64)
                .map(|k| {
                    let h = (k.wrapping_add(salt)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
                    let u = h as f64 / (1u64 << 24) as f64 - 0.5;
                    if name.contains("norm") {
                        1.0 + 0.2 * u
                    } else {
                        0.8 * u
                    }
                })
                .collect();
            let t = Tensor::from_vec(values, var.shape(), var.device())
                .unwrap()
                .to_dtype(var.dtype())
                .unwrap();
            var.set(&t).unwrap();
        }
    }
}
