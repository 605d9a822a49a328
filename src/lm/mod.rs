//! The language-model engine: a decoder-only transformer of the Qwen2 and Llama families
//! written on candle's differentiable ops (candle-transformers' own models drop gradients in
//! their fused ops and return last-position logits only, so neither trains nor scores).

pub mod config;
pub mod files;
pub mod model;

use thiserror::Error;

pub use config::DecoderConfig;
pub use model::Decoder;

/// Errors of the language-model layer.
#[derive(Debug, Error)]
pub enum LmError {
    #[error("{place}: {message}")]
    Config { place: String, message: String },

    #[error("{0}")]
    Invalid(String),

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = LmError> = std::result::Result<T, E>;
