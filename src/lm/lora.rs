//! Linear projections with optional low-rank adapters (LoRA): y = x Wᵀ + b + (α/r) · drop(x) Aᵀ Bᵀ,
//! A (r, in) Kaiming-uniform like PEFT, B (out, r) zero so training starts from the base model.
//! The base weights are frozen; only A and B train. Saving merges W + (α/r) B A back in, so a
//! LoRA fine-tune is written as an ordinary model folder.

use std::collections::BTreeMap;

use candle_core::Var;
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DecoderConfig, LmError, Result};

/// Modules LoRA can adapt, by their Hugging Face names.
pub const TARGETS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Rank, scaling, dropout and target modules of the adapters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f64,
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    /// Rank 16, alpha 32, dropout 0.05 on every projection of attention and MLP.
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: TARGETS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(LmError::Invalid("lora rank must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LmError::Invalid(format!(
                "lora dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        if let Some(bad) = self
            .target_modules
            .iter()
            .find(|m| !TARGETS.contains(&m.as_str()))
        {
            return Err(LmError::Invalid(format!(
                "unknown lora target module `{bad}`; expected some of {}",
                TARGETS.join(", ")
            )));
        }
        if self.target_modules.is_empty() {
            return Err(LmError::Invalid(
                "lora needs at least one target module".into(),
            ));
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// Where a model's adapters come from: a var builder over the map that
/// [`init_adapters`] filled (or a checkpoint restored), and their configuration.
pub struct AdapterSource<'a> {
    pub config: &'a LoraConfig,
    pub vb: VarBuilder<'a>,
}

/// The modules of `config`'s decoder that `lora` adapts: (name, in, out).
pub fn adapted_modules(config: &DecoderConfig, lora: &LoraConfig) -> Vec<(String, usize, usize)> {
    let (h, d) = (config.hidden_size, config.head_size());
    let (q, kv, m) = (
        config.num_attention_heads * d,
        config.num_kv_heads() * d,
        config.intermediate_size,
    );
    let shapes = [
        ("self_attn.q_proj", h, q),
        ("self_attn.k_proj", h, kv),
        ("self_attn.v_proj", h, kv),
        ("self_attn.o_proj", q, h),
        ("mlp.gate_proj", h, m),
        ("mlp.up_proj", h, m),
        ("mlp.down_proj", m, h),
    ];
    (0..config.num_hidden_layers)
        .flat_map(|i| {
            shapes.iter().filter_map(move |(module, i_dim, o_dim)| {
                let short = module.rsplit('.').next().unwrap_or("");
                lora.target_modules
                    .iter()
                    .any(|t| t == short)
                    .then(|| (format!("model.layers.{i}.{module}"), *i_dim, *o_dim))
            })
        })
        .collect()
}

/// Creates every adapter in `map`: A from PEFT's init (kaiming_uniform_ with a = sqrt(5),
/// i.e. U(-1/sqrt(in), 1/sqrt(in))) drawn from `seed` and the module's name, B zero.
pub fn init_adapters(
    config: &DecoderConfig,
    lora: &LoraConfig,
    seed: u64,
    map: &VarMap,
    dtype: DType,
    device: &Device,
) -> Result<()> {
    lora.validate()?;
    let r = lora.rank;
    let mut vars = map.data().lock().expect("var map lock");
    for (module, in_dim, out_dim) in adapted_modules(config, lora) {
        let bound = 1.0 / (in_dim as f64).sqrt();
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ name_hash(&module));
        let values: Vec<f64> = (0..r * in_dim)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let a = Tensor::from_vec(values, (r, in_dim), device)?.to_dtype(dtype)?;
        let b = Tensor::zeros((out_dim, r), dtype, device)?;
        vars.insert(format!("{module}.lora_A.weight"), Var::from_tensor(&a)?);
        vars.insert(format!("{module}.lora_B.weight"), Var::from_tensor(&b)?);
    }
    Ok(())
}

struct Adapter {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
    /// Distinguishes this module's dropout masks from every other's.
    salt: u64,
}

/// A linear map `x Wᵀ + b`, possibly with an adapter.
pub struct Projection {
    weight: Tensor,
    bias: Option<Tensor>,
    adapter: Option<Adapter>,
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Projection {
    /// Builds the projection whose weights are under `vb` (e.g. `model.layers.0.self_attn.q_proj`),
    /// with an adapter when `lora` targets it.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        bias: bool,
        vb: VarBuilder,
        lora: Option<&AdapterSource>,
    ) -> Result<Self> {
        let weight = vb.get((out_dim, in_dim), "weight")?;
        let bias = if bias {
            Some(vb.get(out_dim, "bias")?)
        } else {
            None
        };
        let module = vb.prefix();
        let short = module.rsplit('.').next().unwrap_or("");
        let adapter = match lora {
            Some(src) if src.config.target_modules.iter().any(|t| t == short) => {
                let r = src.config.rank;
                Some(Adapter {
                    a: src
                        .vb
                        .get((r, in_dim), &format!("{module}.lora_A.weight"))?,
                    b: src
                        .vb
                        .get((out_dim, r), &format!("{module}.lora_B.weight"))?,
                    scale: src.config.scale(),
                    dropout: src.config.dropout,
                    salt: name_hash(&module),
                })
            }
            _ => None,
        };
        Ok(Self {
            weight,
            bias,
            adapter,
        })
    }

    /// x: (..., in) -> (..., out). `dropout_seed` is set while training (adapter dropout).
    pub fn forward(&self, x: &Tensor, dropout_seed: Option<u64>) -> Result<Tensor> {
        let y = linear(x, &self.weight, self.bias.as_ref())?;
        let Some(ad) = &self.adapter else {
            return Ok(y);
        };
        let x = match dropout_seed {
            Some(seed) if ad.dropout > 0.0 => dropout(x, ad.dropout, seed ^ ad.salt)?,
            _ => x.clone(),
        };
        let low = linear(&linear(&x, &ad.a, None)?, &ad.b, None)?;
        Ok((y + (low * ad.scale)?)?)
    }
}

fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let in_dim = *dims.last().expect("projection input has a feature axis");
    let rows = x.elem_count() / in_dim;
    let y = super::few_rows::matmul_wt(&x.reshape((rows, in_dim))?, w)?;
    let y = match b {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out_dims = dims;
    *out_dims.last_mut().expect("non-empty") = w.dim(0)?;
    Ok(y.reshape(out_dims)?)
}

/// Inverted dropout with a mask drawn from `seed` (so a resumed run draws the same masks).
fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f64>() < p {
                0.0
            } else {
                keep as f32
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    Ok((x * mask)?)
}

/// Base weights with every adapter of `adapters` merged in: W + (α/r) B A. Adapter names are
/// `<module>.lora_A.weight` / `<module>.lora_B.weight` for the base `<module>.weight`.
pub fn merge(
    base: &BTreeMap<String, Tensor>,
    adapters: &BTreeMap<String, Tensor>,
    config: &LoraConfig,
) -> Result<BTreeMap<String, Tensor>> {
    let mut merged = base.clone();
    for (name, a) in adapters {
        let Some(module) = name.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let b = adapters
            .get(&format!("{module}.lora_B.weight"))
            .ok_or_else(|| LmError::Invalid(format!("adapter `{module}` has no lora_B")))?;
        let key = format!("{module}.weight");
        let w = base
            .get(&key)
            .ok_or_else(|| LmError::Invalid(format!("adapter for `{key}`, which is missing")))?;
        let delta = (b.to_dtype(DType::F32)?.matmul(&a.to_dtype(DType::F32)?)? * config.scale())?;
        let new = (w.to_dtype(DType::F32)? + delta)?.to_dtype(w.dtype())?;
        merged.insert(key, new);
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::Decoder;
    use std::collections::HashMap;

    fn config() -> DecoderConfig {
        DecoderConfig::parse(
            r#"{"model_type":"qwen2","vocab_size":11,"hidden_size":8,"intermediate_size":12,
            "num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"tie_word_embeddings":true}"#,
            "micro",
        )
        .unwrap()
    }

    fn logits(model: &Decoder) -> Vec<f32> {
        let ids = Tensor::new(&[[1u32, 5, 7, 2]], &Device::Cpu).unwrap();
        model
            .forward(&ids, None)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Adapters start as the identity (B = 0), train alone (the base gets no gradient), and
    /// merged into the base they give the adapted model's logits.
    #[test]
    fn adapters_train_alone_and_merge_exactly() {
        let c = config();
        let base_map = VarMap::new();
        let plain = Decoder::new(
            &c,
            VarBuilder::from_varmap(&base_map, DType::F32, &Device::Cpu),
        )
        .unwrap();
        crate::lm::testing::deterministic(&base_map);
        let base: BTreeMap<String, Tensor> = crate::lm::files::tensors_of(&base_map)
            .into_iter()
            .map(|(k, t)| (k, t.detach()))
            .collect();
        let lora = LoraConfig {
            rank: 2,
            alpha: 4.0,
            dropout: 0.0,
            target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
        };
        let adapters = VarMap::new();
        init_adapters(&c, &lora, 1, &adapters, DType::F32, &Device::Cpu).unwrap();
        assert_eq!(adapters.all_vars().len(), 2 * 3 * 2);
        let frozen: HashMap<String, Tensor> = base.clone().into_iter().collect();
        let model = Decoder::with_adapters(
            &c,
            VarBuilder::from_tensors(frozen, DType::F32, &Device::Cpu),
            &AdapterSource {
                config: &lora,
                vb: VarBuilder::from_varmap(&adapters, DType::F32, &Device::Cpu),
            },
        )
        .unwrap();
        assert_eq!(
            adapters.all_vars().len(),
            12,
            "no adapter was created on the fly"
        );
        assert_eq!(logits(&plain), logits(&model));

        // Gradients reach A and B only.
        let ids = Tensor::new(&[[1u32, 5, 7, 2]], &Device::Cpu).unwrap();
        let loss = model
            .forward(&ids, None)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in adapters.data().lock().unwrap().iter() {
            if name.contains("lora_B") {
                let g = grads.get(var).expect("adapter gradient");
                let norm = g
                    .sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(norm > 0.0, "{name}");
            }
        }
        for t in base.values() {
            assert!(grads.get(t).is_none());
        }

        // Move B off zero, then merge: the merged plain model matches the adapted one.
        for (name, var) in adapters.data().lock().unwrap().iter() {
            if name.contains("lora_B") {
                let v = Tensor::ones(var.shape(), DType::F32, &Device::Cpu).unwrap();
                var.set(&(v * 0.3).unwrap()).unwrap();
            }
        }
        let adapted = logits(&model);
        assert_ne!(adapted, logits(&plain));
        let merged = merge(&base, &crate::lm::files::tensors_of(&adapters), &lora).unwrap();
        let merged_model = Decoder::new(
            &c,
            VarBuilder::from_tensors(merged.into_iter().collect(), DType::F32, &Device::Cpu),
        )
        .unwrap();
        let worst = adapted
            .iter()
            .zip(logits(&merged_model))
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(worst < 1e-5, "{worst}");
    }

    #[test]
    fn bad_configs_are_named() {
        let mut l = LoraConfig {
            target_modules: vec!["qproj".into()],
            ..LoraConfig::default()
        };
        assert!(l.validate().unwrap_err().to_string().contains("qproj"));
        l = LoraConfig {
            rank: 0,
            ..LoraConfig::default()
        };
        assert!(l.validate().unwrap_err().to_string().contains("rank"));
        l = LoraConfig {
            dropout: 1.0,
            ..LoraConfig::default()
        };
        assert!(l.validate().is_err());
    }
}
