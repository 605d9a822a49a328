//! `config.json` of a Hugging Face decoder of the Qwen2 or Llama family, with the families'
//! defaults for the keys a file may leave out.

use serde::{Deserialize, Serialize};

use super::{LmError, Result};

/// Llama 3's frequency-dependent RoPE scaling (`rope_scaling` with `rope_type: "llama3"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RopeScaling {
    #[serde(alias = "type")]
    pub rope_type: String,
    pub factor: f64,
    #[serde(default = "default_low_freq_factor")]
    pub low_freq_factor: f64,
    #[serde(default = "default_high_freq_factor")]
    pub high_freq_factor: f64,
    #[serde(default = "default_original_max_positions")]
    pub original_max_position_embeddings: usize,
}

fn default_low_freq_factor() -> f64 {
    1.0
}
fn default_high_freq_factor() -> f64 {
    4.0
}
fn default_original_max_positions() -> usize {
    8192
}

/// The architecture of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// "qwen2" or "llama".
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Grouped-query attention: fewer key/value heads than query heads (default: as many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_key_value_heads: Option<usize>,
    /// Per-head size when it is not hidden_size / heads (Llama 3.2 states it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_dim: Option<usize>,
    #[serde(default = "default_max_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "default_rms_norm_eps")]
    pub rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Biases on q/k/v: always for Qwen2, as stated for Llama (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_bias: Option<bool>,
    /// Qwen2's sliding window; null or unused in the released models, and not applied here.
    #[serde(default)]
    pub sliding_window: Option<usize>,
    #[serde(default)]
    pub use_sliding_window: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eos_token_id: Option<serde_json::Value>,
    #[serde(default = "default_architectures")]
    pub architectures: Vec<String>,
    #[serde(default = "default_torch_dtype")]
    pub torch_dtype: String,
    /// Every other key of the file (hidden_act, initializer_range, use_cache, ...), kept so a
    /// saved fine-tune carries its base's config whole.
    #[serde(flatten)]
    pub other: std::collections::BTreeMap<String, serde_json::Value>,
}

fn default_max_positions() -> usize {
    32768
}
fn default_rms_norm_eps() -> f64 {
    1e-6
}
fn default_rope_theta() -> f64 {
    10_000.0
}
fn default_architectures() -> Vec<String> {
    Vec::new()
}
fn default_torch_dtype() -> String {
    "float32".into()
}

/// The largest size of any one dimension a config may give (vocabulary, width, layers,
/// positions): well above every released model, far below what would overflow an index.
pub const MAX_DIMENSION: usize = 1 << 24;

/// Every named size at least 1 and at most [`MAX_DIMENSION`], or a message naming the first
/// that is not.
pub fn check_sizes(sizes: &[(&str, usize)]) -> std::result::Result<(), String> {
    if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
        return Err(format!("{name} must be at least 1, got 0"));
    }
    if let Some((name, v)) = sizes.iter().find(|(_, v)| *v > MAX_DIMENSION) {
        return Err(format!(
            "{name} is {v}; at most {MAX_DIMENSION} is supported"
        ));
    }
    Ok(())
}

impl DecoderConfig {
    /// Parses and checks a `config.json`; `place` names the file in errors.
    pub fn parse(json: &str, place: &str) -> Result<Self> {
        let config: Self = serde_json::from_str(json).map_err(|e| LmError::Config {
            place: place.to_string(),
            message: e.to_string(),
        })?;
        config.check(place)?;
        Ok(config)
    }

    fn check(&self, place: &str) -> Result<()> {
        let bad = |message: String| {
            Err(LmError::Config {
                place: place.to_string(),
                message,
            })
        };
        if !matches!(self.model_type.as_str(), "qwen2" | "llama") {
            return bad(format!(
                "model_type {:?} is not supported; expected \"qwen2\" or \"llama\"",
                self.model_type
            ));
        }
        check_sizes(&[
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("max_position_embeddings", self.max_position_embeddings),
        ])
        .or_else(bad)?;
        if !(self.rms_norm_eps > 0.0 && self.rms_norm_eps.is_finite()) {
            return bad(format!(
                "rms_norm_eps must be positive, got {}",
                self.rms_norm_eps
            ));
        }
        if !(self.rope_theta > 0.0 && self.rope_theta.is_finite()) {
            return bad(format!(
                "rope_theta must be positive, got {}",
                self.rope_theta
            ));
        }
        if self.num_attention_heads == 0 || self.num_kv_heads() == 0 {
            return bad("num_attention_heads and num_key_value_heads must be positive".into());
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return bad(format!(
                "num_attention_heads ({}) must be a multiple of num_key_value_heads ({})",
                self.num_attention_heads,
                self.num_kv_heads()
            ));
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(format!(
                "hidden_size ({}) is not a multiple of num_attention_heads ({})",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.head_size() == 0 || !self.head_size().is_multiple_of(2) {
            return bad(format!(
                "the head size ({}) must be even and positive for RoPE",
                self.head_size()
            ));
        }
        if let Some(s) = &self.rope_scaling {
            if s.rope_type != "llama3" && s.rope_type != "default" {
                return bad(format!(
                    "rope_scaling type {:?} is not supported; expected \"llama3\"",
                    s.rope_type
                ));
            }
        }
        Ok(())
    }

    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_size(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    pub fn has_attention_bias(&self) -> bool {
        match self.model_type.as_str() {
            "qwen2" => self.attention_bias.unwrap_or(true),
            _ => self.attention_bias.unwrap_or(false),
        }
    }

    /// RoPE inverse frequencies, with Llama 3's scaling when configured.
    pub fn inverse_frequencies(&self) -> Vec<f64> {
        let d = self.head_size();
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d as f64))
            .collect();
        let Some(s) = self
            .rope_scaling
            .as_ref()
            .filter(|s| s.rope_type == "llama3")
        else {
            return base;
        };
        let original = s.original_max_position_embeddings as f64;
        let low_wavelength = original / s.low_freq_factor;
        let high_wavelength = original / s.high_freq_factor;
        base.into_iter()
            .map(|f| {
                let wavelength = 2.0 * std::f64::consts::PI / f;
                if wavelength < high_wavelength {
                    f
                } else if wavelength > low_wavelength {
                    f / s.factor
                } else {
                    let smooth = (original / wavelength - s.low_freq_factor)
                        / (s.high_freq_factor - s.low_freq_factor);
                    (1.0 - smooth) * f / s.factor + smooth * f
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const QWEN: &str = r#"{"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":151936,
        "hidden_size":896,"intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,
        "num_key_value_heads":2,"max_position_embeddings":32768,"rms_norm_eps":1e-06,"rope_theta":1000000.0,
        "sliding_window":null,"use_sliding_window":false,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
        "bos_token_id":151643,"eos_token_id":151645}"#;

    const LLAMA: &str = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128256,
        "hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":16,"num_attention_heads":32,
        "num_key_value_heads":8,"head_dim":64,"rms_norm_eps":1e-05,"rope_theta":500000.0,
        "rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
        "original_max_position_embeddings":8192,"rope_type":"llama3"},"tie_word_embeddings":true,
        "attention_bias":false,"eos_token_id":[128001,128008,128009]}"#;

    #[test]
    fn reads_the_families_configs() {
        let q = DecoderConfig::parse(QWEN, "qwen/config.json").unwrap();
        assert_eq!((q.num_kv_heads(), q.head_size()), (2, 64));
        assert!(q.has_attention_bias() && q.tie_word_embeddings && q.sliding_window.is_none());
        let l = DecoderConfig::parse(LLAMA, "llama/config.json").unwrap();
        assert!(!l.has_attention_bias());
        assert_eq!(l.head_size(), 64);
        // Llama 3 scaling: high frequencies kept, low ones divided by the factor.
        let (plain, scaled) = (
            DecoderConfig {
                rope_scaling: None,
                ..l.clone()
            }
            .inverse_frequencies(),
            l.inverse_frequencies(),
        );
        assert_eq!(plain[0], scaled[0]);
        assert!((plain[31] / scaled[31] - 32.0).abs() < 1e-9);
    }

    /// Written back, a config keeps the keys it did not interpret and states no nulls that
    /// transformers would read as values (it reads `head_dim: null` as a head size of None).
    #[test]
    fn round_trips_for_transformers() {
        let with_extra = QWEN.replace("{", r#"{"hidden_act":"silu","max_window_layers":21,"#);
        let q = DecoderConfig::parse(&with_extra, "qwen/config.json").unwrap();
        let back: serde_json::Value = serde_json::to_value(&q).unwrap();
        assert_eq!(back["hidden_act"], "silu");
        assert_eq!(back["max_window_layers"], 21);
        for absent in ["head_dim", "rope_scaling", "attention_bias"] {
            assert!(back.get(absent).is_none(), "{absent}: {back}");
        }
        assert_eq!(DecoderConfig::parse(&back.to_string(), "again").unwrap(), q);
    }

    #[test]
    fn bad_configs_are_named() {
        let e = DecoderConfig::parse(&QWEN.replace("qwen2", "gpt2"), "m/config.json").unwrap_err();
        assert!(
            e.to_string().contains("m/config.json") && e.to_string().contains("gpt2"),
            "{e}"
        );
        let e = DecoderConfig::parse(
            &QWEN.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3"),
            "c",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("multiple of num_key_value_heads"),
            "{e}"
        );
        let e = DecoderConfig::parse("{\"model_type\": \"llama\"}", "c").unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
    }
}
