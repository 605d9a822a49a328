//! The decoder: token embedding, `num_hidden_layers` blocks of (RMSNorm, grouped-query
//! attention with RoPE, residual, RMSNorm, SwiGLU MLP, residual), a final RMSNorm and the
//! language-model head, with logits at every position. Tensor names are Hugging Face's
//! (`model.layers.0.self_attn.q_proj.weight`, ...), so the same code loads released weights.
//!
//! Every op here has a backward pass in candle: softmax, RMSNorm and RoPE are composed from
//! basic ops on purpose (candle's fused versions record no gradient).

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{embedding, Embedding, Init, VarBuilder};

use super::lora::{AdapterSource, Projection};
use super::{DecoderConfig, LmError, Result};

/// Added to the attention scores of masked keys. Finite, so a query with every key masked
/// (a padding position) gets a uniform distribution rather than NaN.
const MASKED: f64 = -1e9;

/// Root-mean-square normalisation with a learned scale.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            eps,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        super::rms_norm::rms_norm(x, &self.weight, self.eps)
    }
}

/// Rotary position embedding, HF's "rotate half" layout: cos and sin per (batch, position).
struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    /// `positions`: (B, T) absolute positions; `inverse_frequencies`: (D / 2).
    fn new(positions: &Tensor, inverse_frequencies: &Tensor) -> Result<Self> {
        let angles = positions
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&inverse_frequencies.reshape((1, 1, ()))?)?;
        let angles = Tensor::cat(&[&angles, &angles], D::Minus1)?.unsqueeze(1)?; // (B,1,T,D)
        Ok(Self {
            cos: angles.cos()?,
            sin: angles.sin()?,
        })
    }

    /// x: (B, heads, T, D).
    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let half = x.dim(D::Minus1)? / 2;
        let (first, second) = (
            x.narrow(D::Minus1, 0, half)?,
            x.narrow(D::Minus1, half, half)?,
        );
        let rotated = Tensor::cat(&[&second.neg()?, &first], D::Minus1)?;
        Ok((x.broadcast_mul(&self.cos)? + rotated.broadcast_mul(&self.sin)?)?)
    }
}

struct Attention {
    q_proj: Projection,
    k_proj: Projection,
    v_proj: Projection,
    o_proj: Projection,
    heads: usize,
    kv_heads: usize,
    head_size: usize,
}

impl Attention {
    fn new(c: &DecoderConfig, vb: VarBuilder, lora: Option<&AdapterSource>) -> Result<Self> {
        let (h, kv, d, bias) = (
            c.num_attention_heads,
            c.num_kv_heads(),
            c.head_size(),
            c.has_attention_bias(),
        );
        let proj = |i, o, b, name| Projection::new(i, o, b, vb.pp(name), lora);
        Ok(Self {
            q_proj: proj(c.hidden_size, h * d, bias, "q_proj")?,
            k_proj: proj(c.hidden_size, kv * d, bias, "k_proj")?,
            v_proj: proj(c.hidden_size, kv * d, bias, "v_proj")?,
            o_proj: proj(h * d, c.hidden_size, false, "o_proj")?,
            heads: h,
            kv_heads: kv,
            head_size: d,
        })
    }

    /// x: (B, T, hidden) for the new tokens; mask: (B, 1, T, T_cached + T) additive; `cache`
    /// holds the keys and values of earlier tokens (after RoPE) and receives the new ones.
    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        mask: &AttentionMask,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let split = |y: Tensor, heads: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, heads, self.head_size))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = rope.apply(&split(self.q_proj.forward(x, dropout_seed)?, self.heads)?)?;
        let k = rope.apply(&split(
            self.k_proj.forward(x, dropout_seed)?,
            self.kv_heads,
        )?)?;
        let v = split(self.v_proj.forward(x, dropout_seed)?, self.kv_heads)?;
        let (k, v) = match cache {
            Some(slot) => {
                let (k, v) = match slot.take() {
                    Some((k0, v0)) => (Tensor::cat(&[&k0, &k], 2)?, Tensor::cat(&[&v0, &v], 2)?),
                    None => (k, v),
                };
                *slot = Some((k.clone(), v.clone()));
                (k, v)
            }
            None => (k, v),
        };
        if let AttentionMask::Host { mask, cached: true } = mask {
            if super::cached_attention::available(&q) {
                let out = super::cached_attention::cached_attention(&q, &k, &v, mask.clone())?;
                return self.o_proj.forward(&out, dropout_seed);
            }
        }
        // Grouped-query attention: each key/value head serves heads / kv_heads query heads.
        let (k, v) = (self.repeat_kv(k)?, self.repeat_kv(v)?);
        let scores = q.matmul(&k.t()?.contiguous()?)?;
        let scale = 1.0 / (self.head_size as f64).sqrt();
        let weights = match mask {
            AttentionMask::Host { mask, .. } => {
                super::kernels::masked_softmax(&scores, scale, mask.clone())?
            }
            AttentionMask::Tensor(mask) => super::kernels::softmax_last_dim(
                &(scores / (self.head_size as f64).sqrt())?.broadcast_add(mask)?,
            )?,
        };
        let out = weights
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, t, self.heads * self.head_size))?;
        self.o_proj.forward(&out, dropout_seed)
    }

    fn repeat_kv(&self, x: Tensor) -> Result<Tensor> {
        let n_rep = self.heads / self.kv_heads;
        if n_rep == 1 {
            return Ok(x);
        }
        let (b, kv, t, d) = x.dims4()?;
        Ok(x.unsqueeze(2)?
            .broadcast_as((b, kv, n_rep, t, d))?
            .contiguous()?
            .reshape((b, kv * n_rep, t, d))?)
    }
}

struct Mlp {
    gate_proj: Projection,
    up_proj: Projection,
    down_proj: Projection,
}

impl Mlp {
    fn new(c: &DecoderConfig, vb: VarBuilder, lora: Option<&AdapterSource>) -> Result<Self> {
        let (h, m) = (c.hidden_size, c.intermediate_size);
        Ok(Self {
            gate_proj: Projection::new(h, m, false, vb.pp("gate_proj"), lora)?,
            up_proj: Projection::new(h, m, false, vb.pp("up_proj"), lora)?,
            down_proj: Projection::new(m, h, false, vb.pp("down_proj"), lora)?,
        })
    }

    fn forward(&self, x: &Tensor, dropout_seed: Option<u64>) -> Result<Tensor> {
        let gated = (self.gate_proj.forward(x, dropout_seed)?.silu()?
            * self.up_proj.forward(x, dropout_seed)?)?;
        self.down_proj.forward(&gated, dropout_seed)
    }
}

struct Block {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: Mlp,
}

impl Block {
    fn new(c: &DecoderConfig, vb: VarBuilder, lora: Option<&AdapterSource>) -> Result<Self> {
        Ok(Self {
            input_layernorm: RmsNorm::new(c.hidden_size, c.rms_norm_eps, vb.pp("input_layernorm"))?,
            self_attn: Attention::new(c, vb.pp("self_attn"), lora)?,
            post_attention_layernorm: RmsNorm::new(
                c.hidden_size,
                c.rms_norm_eps,
                vb.pp("post_attention_layernorm"),
            )?,
            mlp: Mlp::new(c, vb.pp("mlp"), lora)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        rope: &Rope,
        mask: &AttentionMask,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let attention = self.self_attn.forward(
            &self.input_layernorm.forward(x)?,
            rope,
            mask,
            cache,
            dropout_seed,
        )?;
        let x = (x + attention)?;
        let mlp = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?, dropout_seed)?;
        Ok((x + mlp)?)
    }
}

/// The additive attention mask (B, 1, T, S): on the host for the CPU kernels (the masked
/// softmax; with `cached`, the fused attention over a KV cache, where nothing is trained), or
/// as a tensor for the composed ops on other devices.
enum AttentionMask {
    Host { mask: Arc<Vec<f32>>, cached: bool },
    Tensor(Tensor),
}

/// A decoder-only transformer of the Qwen2 / Llama families.
pub struct Decoder {
    pub config: DecoderConfig,
    embed_tokens: Embedding,
    layers: Vec<Block>,
    norm: RmsNorm,
    lm_head: Tensor,
    inverse_frequencies: Tensor,
    dtype: DType,
    device: Device,
}

/// Keys and values of the tokens seen so far, per layer, for incremental decoding; and which
/// of those tokens are real (1) or padding (0).
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    attention: Vec<Vec<u8>>,
}

impl KvCache {
    /// Tokens cached per row (padding included).
    pub fn len(&self) -> usize {
        self.attention.first().map_or(0, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Decoder {
    /// Builds the model from `vb` (loaded weights, or a `VarMap` for trainable / random ones).
    pub fn new(config: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(config, vb, None)
    }

    /// Builds the model with low-rank adapters from `adapters` on top of the weights of `vb`
    /// (which should be frozen: plain tensors, not vars).
    pub fn with_adapters(
        config: &DecoderConfig,
        vb: VarBuilder,
        adapters: &AdapterSource,
    ) -> Result<Self> {
        Self::build(config, vb, Some(adapters))
    }

    fn build(config: &DecoderConfig, vb: VarBuilder, lora: Option<&AdapterSource>) -> Result<Self> {
        let c = config;
        let embed_tokens = embedding(c.vocab_size, c.hidden_size, vb.pp("model.embed_tokens"))?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| Block::new(c, vb.pp(format!("model.layers.{i}")), lora))
            .collect::<Result<Vec<_>>>()?;
        let norm = RmsNorm::new(c.hidden_size, c.rms_norm_eps, vb.pp("model.norm"))?;
        let lm_head = if c.tie_word_embeddings {
            embed_tokens.embeddings().clone()
        } else {
            vb.get((c.vocab_size, c.hidden_size), "lm_head.weight")?
        };
        let inverse_frequencies =
            Tensor::new(c.inverse_frequencies(), vb.device())?.to_dtype(vb.dtype())?;
        Ok(Self {
            config: c.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            inverse_frequencies,
            dtype: vb.dtype(),
            device: vb.device().clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Logits at every position: `input_ids` (B, T) u32, `attention_mask` (B, T) with 1 for
    /// tokens and 0 for padding (left or right), or `None` for no padding. Positions count
    /// real tokens only, so a left-padded row sees the same positions as its unpadded self.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&[Vec<u8>]>,
    ) -> Result<Tensor> {
        let hidden = self.hidden_states(input_ids, attention_mask, None)?;
        let (b, t, h) = hidden.dims3()?;
        Ok(self
            .logits(&hidden.reshape((b * t, h))?)?
            .reshape((b, t, self.config.vocab_size))?)
    }

    /// The final hidden states (B, T, hidden), after the last norm: what the language-model
    /// head turns into logits. Callers that need logits at a few positions only (the loss on
    /// response tokens, a continuation's score) select rows first and call [`Decoder::logits`],
    /// which saves most of the head's cost. `dropout_seed` turns on adapter dropout (training).
    pub fn hidden_states(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&[Vec<u8>]>,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let rows = mask_rows(attention_mask, b, t)?;
        let (positions, additive) = positions_and_mask(&rows, 0);
        self.run(input_ids, positions, additive, None, dropout_seed)
    }

    /// Logits (N, vocab) of hidden states (N, hidden).
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        super::few_rows::matmul_wt(hidden, &self.lm_head)
    }

    /// An empty cache for `batch` rows.
    pub fn new_cache(&self, batch: usize) -> KvCache {
        KvCache {
            layers: (0..self.layers.len()).map(|_| None).collect(),
            attention: vec![Vec::new(); batch],
        }
    }

    /// Logits (B, vocab) after the last of `input_ids` (B, T_new), which follow the tokens
    /// in `cache`; the cache then holds them too. `attention_mask` marks the new tokens as
    /// real or padding, as in `forward`.
    pub fn next_token_logits(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&[Vec<u8>]>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        if cache.attention.len() != b {
            return Err(LmError::Invalid(format!(
                "a cache for {} rows was given {b}",
                cache.attention.len()
            )));
        }
        let new_rows = mask_rows(attention_mask, b, t)?;
        let start = cache.len();
        for (row, new) in cache.attention.iter_mut().zip(&new_rows) {
            row.extend_from_slice(new);
        }
        let (positions, additive) = positions_and_mask(&cache.attention, start);
        let KvCache { layers, .. } = cache;
        let hidden = self.run(input_ids, positions, additive, Some(layers), None)?;
        self.logits(&hidden.narrow(1, t - 1, 1)?.squeeze(1)?)
    }

    fn run(
        &self,
        input_ids: &Tensor,
        positions: Vec<f32>,
        additive: Vec<f32>,
        mut cache: Option<&mut Vec<Option<(Tensor, Tensor)>>>,
        dropout_seed: Option<u64>,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let total = additive.len() / (b * t).max(1);
        let positions = Tensor::from_vec(positions, (b, t), &self.device)?.to_dtype(self.dtype)?;
        // The CPU kernels read the mask from the host: no (B, 1, T, S) tensor per forward.
        let mask = if self.device.is_cpu() && matches!(self.dtype, DType::F32 | DType::F64) {
            AttentionMask::Host {
                mask: Arc::new(additive),
                cached: cache.is_some(),
            }
        } else {
            AttentionMask::Tensor(
                Tensor::from_vec(additive, (b, 1, t, total), &self.device)?.to_dtype(self.dtype)?,
            )
        };
        let rope = Rope::new(&positions, &self.inverse_frequencies)?;
        let mut x = self.embed_tokens.forward(input_ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|layers| &mut layers[i]);
            // Each layer's adapters draw different dropout masks.
            let seed = dropout_seed.map(|s| s ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            x = layer.forward(&x, &rope, &mask, slot, seed)?;
        }
        self.norm.forward(&x)
    }
}

fn mask_rows(attention_mask: Option<&[Vec<u8>]>, b: usize, t: usize) -> Result<Vec<Vec<u8>>> {
    match attention_mask {
        Some(rows) => {
            if rows.len() != b || rows.iter().any(|r| r.len() != t) {
                return Err(LmError::Invalid(format!(
                    "attention mask must be {b} rows of {t}, one per token"
                )));
            }
            Ok(rows.to_vec())
        }
        None => Ok(vec![vec![1; t]; b]),
    }
}

/// Positions of the tokens from `start` on (count of real tokens before each, 0 for padding)
/// and their additive causal and padding mask over all tokens, (B, 1, T - start, T) row-major.
fn positions_and_mask(rows: &[Vec<u8>], start: usize) -> (Vec<f32>, Vec<f32>) {
    let t = rows.first().map_or(0, Vec::len);
    let mut positions = Vec::with_capacity(rows.len() * (t - start));
    let mut mask = Vec::with_capacity(rows.len() * (t - start) * t);
    for row in rows {
        let mut seen = 0u32;
        for (j, &m) in row.iter().enumerate() {
            if j >= start {
                positions.push(if m != 0 { seen as f32 } else { 0.0 });
            }
            if m != 0 {
                seen += 1;
            }
        }
        for i in start..t {
            for (j, &m) in row.iter().enumerate() {
                let visible = j <= i && m != 0;
                mask.push(if visible { 0.0 } else { MASKED as f32 });
            }
        }
    }
    (positions, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn micro(model_type: &str, tie: bool) -> DecoderConfig {
        DecoderConfig::parse(
            &format!(
                r#"{{"model_type":"{model_type}","vocab_size":11,"hidden_size":8,"intermediate_size":12,
                "num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"rope_theta":10000.0,
                "tie_word_embeddings":{tie}}}"#
            ),
            "micro",
        )
        .unwrap()
    }

    fn build(config: &DecoderConfig) -> (VarMap, Decoder) {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F64, &Device::Cpu);
        let model = Decoder::new(config, vb).unwrap();
        crate::lm::testing::deterministic(&map);
        (map, model)
    }

    fn ids(rows: &[&[u32]]) -> Tensor {
        let t = rows[0].len();
        let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        Tensor::from_vec(flat, (rows.len(), t), &Device::Cpu).unwrap()
    }

    /// Mean next-token negative log likelihood over the real positions of a padded batch.
    fn loss(model: &Decoder, input: &Tensor, mask: &[Vec<u8>]) -> Tensor {
        let logits = model.forward(input, Some(mask)).unwrap();
        let (b, t, _) = logits.dims3().unwrap();
        let logp =
            candle_nn::ops::log_softmax(&logits.narrow(1, 0, t - 1).unwrap(), D::Minus1).unwrap();
        let targets = input
            .narrow(1, 1, t - 1)
            .unwrap()
            .contiguous()
            .unwrap()
            .unsqueeze(D::Minus1)
            .unwrap();
        let nll = logp
            .gather(&targets, D::Minus1)
            .unwrap()
            .squeeze(D::Minus1)
            .unwrap()
            .neg()
            .unwrap();
        let weights: Vec<f64> = mask
            .iter()
            .flat_map(|r| (1..t).map(move |j| (r[j] != 0 && r[j - 1] != 0) as u8 as f64))
            .collect();
        let weights = Tensor::from_vec(weights, (b, t - 1), &Device::Cpu).unwrap();
        ((nll * &weights).unwrap().sum_all().unwrap()
            / weights.sum_all().unwrap().to_scalar::<f64>().unwrap())
        .unwrap()
    }

    fn batch() -> (Tensor, Vec<Vec<u8>>) {
        (
            ids(&[
                &[1, 4, 2, 7, 3, 9],
                &[0, 0, 5, 6, 8, 10],
                &[3, 3, 1, 2, 0, 0],
            ]),
            vec![vec![1; 6], vec![0, 0, 1, 1, 1, 1], vec![1, 1, 1, 1, 0, 0]],
        )
    }

    /// Every parameter, q_proj, k_proj and the norms included, receives a non-zero gradient.
    #[test]
    fn every_parameter_gets_a_gradient() {
        for (family, tie) in [("qwen2", false), ("llama", true)] {
            let (map, model) = build(&micro(family, tie));
            let (input, mask) = batch();
            let grads = loss(&model, &input, &mask).backward().unwrap();
            let vars = map.data().lock().unwrap();
            assert!(vars.len() >= 2 * 9 + 2, "{} parameters", vars.len());
            for (name, var) in vars.iter() {
                let g = grads
                    .get(var)
                    .unwrap_or_else(|| panic!("{family}: no gradient for {name}"));
                let size = g
                    .abs()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                assert!(size > 0.0, "{family}: zero gradient for {name}");
            }
        }
    }

    /// Autograd agrees with central finite differences on a spread of parameters.
    #[test]
    fn gradients_match_finite_differences() {
        let (map, model) = build(&micro("qwen2", false));
        let (input, mask) = batch();
        let grads = loss(&model, &input, &mask).backward().unwrap();
        let vars = map.data().lock().unwrap();
        let names = [
            "model.layers.0.self_attn.q_proj.weight",
            "model.layers.1.self_attn.k_proj.bias",
            "model.layers.0.input_layernorm.weight",
            "model.layers.1.mlp.gate_proj.weight",
            "model.norm.weight",
            "model.embed_tokens.weight",
            "lm_head.weight",
        ];
        for name in names {
            let var = &vars[name];
            let original = var
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            let analytic = grads
                .get(var)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f64>()
                .unwrap();
            for k in [0, original.len() / 2, original.len() - 1] {
                let eps = 1e-6;
                let at = |delta: f64| {
                    let mut v = original.clone();
                    v[k] += delta;
                    var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                        .unwrap();
                    loss(&model, &input, &mask).to_scalar::<f64>().unwrap()
                };
                let numeric = (at(eps) - at(-eps)) / (2.0 * eps);
                var.set(&Tensor::from_vec(original.clone(), var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                // Relative agreement, with room for the rounding of the loss (~1e-10 here).
                let scale = numeric.abs().max(analytic[k].abs());
                assert!(
                    (numeric - analytic[k]).abs() < 1e-5 * scale + 1e-8,
                    "{name}[{k}]: finite difference {numeric}, autograd {}",
                    analytic[k]
                );
            }
        }
    }

    /// Logits at a position never depend on later tokens, and padding (left or right) leaves
    /// the real positions' logits as they are without it.
    #[test]
    fn causal_and_padding_invariant() {
        let (_, model) = build(&micro("qwen2", true));
        let plain = model.forward(&ids(&[&[5, 6, 8, 10]]), None).unwrap();
        let changed = model.forward(&ids(&[&[5, 6, 8, 2]]), None).unwrap();
        let head = |x: &Tensor, from: usize| x.narrow(1, from, 3).unwrap();
        let diff = |a: Tensor, b: Tensor| crate::lm::kernels::max_abs_diff(&a, &b);
        assert!(diff(head(&plain, 0), head(&changed, 0)) < 1e-12);
        let left = model
            .forward(
                &ids(&[&[0, 0, 5, 6, 8, 10]]),
                Some(&[vec![0, 0, 1, 1, 1, 1]]),
            )
            .unwrap();
        assert!(
            diff(
                plain.narrow(1, 0, 4).unwrap(),
                left.narrow(1, 2, 4).unwrap()
            ) < 1e-10
        );
        let right = model
            .forward(
                &ids(&[&[5, 6, 8, 10, 0, 0]]),
                Some(&[vec![1, 1, 1, 1, 0, 0]]),
            )
            .unwrap();
        assert!(diff(plain, right.narrow(1, 0, 4).unwrap()) < 1e-10);
        assert!(!right
            .flatten_all()
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .any(|x| x.is_nan()));
    }

    #[test]
    fn a_malformed_mask_is_an_error() {
        let (_, model) = build(&micro("llama", false));
        let e = model
            .forward(&ids(&[&[1, 2, 3]]), Some(&[vec![1, 1]]))
            .unwrap_err();
        assert!(
            e.to_string().contains("attention mask must be 1 rows of 3"),
            "{e}"
        );
    }
}
