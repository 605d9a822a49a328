//! One supervised fine-tuning update: next-token loss on the response tokens only, summed
//! over micro-batches (gradient accumulation, normalised by the step's response tokens so it
//! equals one big batch), clipping by the global gradient norm, and an AdamW step at the
//! schedule's learning rate. Epochs, checkpoints and the chat template sit above this.

use candle_core::{DType, Tensor, Var};

use super::optim::{AdamW, AdamWParams};
use super::schedule::{clip_grad_norm, WarmupCosine};
use super::{Decoder, LmError, Result};

/// A right-padded batch of token rows. `attention` marks real tokens; `loss` marks the tokens
/// the model must learn to produce (the response), a subset of the real ones.
#[derive(Debug, Clone)]
pub struct TokenBatch {
    pub ids: Vec<Vec<u32>>,
    pub attention: Vec<Vec<u8>>,
    pub loss: Vec<Vec<u8>>,
}

impl TokenBatch {
    /// Pads `(prompt, response)` token pairs to the longest row, cut at `max_len`.
    pub fn from_pairs(pairs: &[(Vec<u32>, Vec<u32>)], pad: u32, max_len: usize) -> Self {
        let rows: Vec<(Vec<u32>, Vec<u8>)> = pairs
            .iter()
            .map(|(p, r)| {
                let mut ids: Vec<u32> = p.iter().chain(r).copied().collect();
                let mut loss: Vec<u8> = p.iter().map(|_| 0).chain(r.iter().map(|_| 1)).collect();
                ids.truncate(max_len);
                loss.truncate(max_len);
                (ids, loss)
            })
            .collect();
        let t = rows.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
        let mut batch = Self {
            ids: Vec::new(),
            attention: Vec::new(),
            loss: Vec::new(),
        };
        for (mut ids, mut loss) in rows {
            let n = ids.len();
            ids.resize(t, pad);
            loss.resize(t, 0);
            batch.ids.push(ids);
            batch
                .attention
                .push((0..t).map(|j| (j < n) as u8).collect());
            batch.loss.push(loss);
        }
        batch
    }

    /// Tokens the loss is computed on.
    pub fn loss_tokens(&self) -> usize {
        self.loss.iter().flatten().map(|&m| m as usize).sum()
    }
}

/// Summed negative log-likelihood of the marked tokens, each predicted from the ones before
/// it, and how many there are. `dropout_seed` turns on adapter dropout.
pub fn response_nll(
    model: &Decoder,
    batch: &TokenBatch,
    dropout_seed: Option<u64>,
) -> Result<(Tensor, usize)> {
    let device = model.device();
    let (b, t) = (batch.ids.len(), batch.ids.first().map_or(0, Vec::len));
    if b == 0 || t < 2 {
        return Err(LmError::Invalid(
            "a training batch needs rows of at least 2 tokens".into(),
        ));
    }
    let flat: Vec<u32> = batch.ids.iter().flatten().copied().collect();
    // Position p predicts token p + 1; only positions before a marked token need logits.
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (r, (ids, marks)) in batch.ids.iter().zip(&batch.loss).enumerate() {
        for p in 0..t - 1 {
            if marks[p + 1] != 0 {
                rows.push((r * t + p) as u32);
                targets.push(ids[p + 1]);
            }
        }
    }
    let count = rows.len();
    if count == 0 {
        return Ok((Tensor::zeros((), DType::F32, device)?, 0));
    }
    let ids = Tensor::from_vec(flat, (b, t), device)?;
    let hidden = model.hidden_states(&ids, Some(&batch.attention), dropout_seed)?;
    let h = hidden.dim(2)?;
    let selected = hidden
        .reshape((b * t, h))?
        .index_select(&Tensor::from_vec(rows, count, device)?, 0)?;
    let logits = model.logits(&selected)?.to_dtype(DType::F32)?;
    let nll = super::kernels::token_nll(&logits, &targets)?;
    Ok((nll.sum_all()?, count))
}

/// Mean negative log-likelihood of the marked tokens (no dropout).
pub fn response_loss(model: &Decoder, batch: &TokenBatch) -> Result<Tensor> {
    let (sum, count) = response_nll(model, batch, None)?;
    if count == 0 {
        return Err(LmError::Invalid(
            "a training batch has no response tokens to learn".into(),
        ));
    }
    Ok((sum / count as f64)?)
}

/// What one optimizer step saw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean loss per response token.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub learning_rate: f64,
    /// Real tokens processed (prompt and response).
    pub tokens: usize,
}

/// AdamW with the schedule and clipping of the paper's fine-tunes.
pub struct SftUpdater {
    optimizer: AdamW,
    vars: Vec<Var>,
    schedule: WarmupCosine,
    max_grad_norm: f64,
}

impl SftUpdater {
    pub fn new(
        vars: Vec<(String, Var)>,
        schedule: WarmupCosine,
        params: AdamWParams,
        max_grad_norm: f64,
    ) -> Result<Self> {
        let list = vars.iter().map(|(_, v)| v.clone()).collect();
        Ok(Self {
            optimizer: AdamW::new(vars, params)?,
            vars: list,
            schedule,
            max_grad_norm,
        })
    }

    /// One update from the gradients of all `micro_batches` together; `dropout_seed` gives
    /// micro-batch k the seed `dropout_seed + k`.
    pub fn step(
        &mut self,
        model: &Decoder,
        micro_batches: &[TokenBatch],
        dropout_seed: Option<u64>,
    ) -> Result<StepStats> {
        let total: usize = micro_batches.iter().map(TokenBatch::loss_tokens).sum();
        if total == 0 {
            return Err(LmError::Invalid(
                "an optimizer step has no response tokens to learn".into(),
            ));
        }
        let mut grads: Vec<Option<Tensor>> = vec![None; self.vars.len()];
        let mut loss_sum = 0.0;
        let mut tokens = 0;
        for (k, batch) in micro_batches.iter().enumerate() {
            if batch.loss_tokens() == 0 {
                continue;
            }
            let seed = dropout_seed.map(|s| s.wrapping_add(k as u64));
            let (sum, _) = response_nll(model, batch, seed)?;
            let store = (&sum / total as f64)?.backward()?;
            loss_sum += sum.to_dtype(DType::F64)?.to_scalar::<f64>()?;
            tokens += batch
                .attention
                .iter()
                .flatten()
                .filter(|&&m| m != 0)
                .count();
            for (acc, var) in grads.iter_mut().zip(&self.vars) {
                if let Some(g) = store.get(var) {
                    *acc = Some(match acc.take() {
                        Some(a) => (a + g)?,
                        None => g.clone(),
                    });
                }
            }
        }
        let grad_norm = clip_grad_norm(&mut grads, self.max_grad_norm)?;
        let learning_rate = self.schedule.at(self.optimizer.steps());
        self.optimizer.step(&grads, learning_rate)?;
        Ok(StepStats {
            loss: loss_sum / total as f64,
            grad_norm,
            learning_rate,
            tokens,
        })
    }

    pub fn steps_done(&self) -> usize {
        self.optimizer.steps()
    }

    pub fn optimizer(&self) -> &AdamW {
        &self.optimizer
    }

    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.optimizer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::DecoderConfig;
    use candle_core::{Device, D};
    use candle_nn::{VarBuilder, VarMap};

    /// A micro model learns to copy three symbols after a separator: the loss on the copied
    /// half falls far below chance, and greedy predictions become right.
    #[test]
    fn a_micro_model_learns_to_copy() {
        let config = DecoderConfig::parse(
            r#"{"model_type":"qwen2","vocab_size":12,"hidden_size":32,"intermediate_size":64,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"tie_word_embeddings":true}"#,
            "micro",
        )
        .unwrap();
        let device = Device::Cpu;
        let map = VarMap::new();
        let model =
            Decoder::new(&config, VarBuilder::from_varmap(&map, DType::F32, &device)).unwrap();
        crate::lm::testing::deterministic(&map);
        // Symbols 2..11, separator 1, padding 0.
        let example = |k: usize| {
            let s: Vec<u32> = (0..3)
                .map(|i| 2 + ((k * 7 + i * 3 + k / 10) % 10) as u32)
                .collect();
            let mut prompt = s.clone();
            prompt.push(1);
            (prompt, s)
        };
        let pairs: Vec<(Vec<u32>, Vec<u32>)> = (0..32).map(example).collect();
        let batch = TokenBatch::from_pairs(&pairs, 0, 64);
        assert_eq!(batch.loss_tokens(), 32 * 3);
        let steps = 150;
        let vars: Vec<(String, Var)> = map
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let params = AdamWParams {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        let mut opt = SftUpdater::new(
            vars,
            WarmupCosine::with_ratio(1e-2, steps, 0.1),
            params,
            1.0,
        )
        .unwrap();
        let first = response_loss(&model, &batch)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let mut last = f64::NAN;
        for _ in 0..steps {
            last = opt
                .step(&model, std::slice::from_ref(&batch), None)
                .unwrap()
                .loss;
        }
        assert_eq!(opt.steps_done(), steps);
        assert!(first > 1.5, "untrained loss {first}");
        assert!(last < 0.2 * first as f64, "loss {first} -> {last}");
        // Greedy predictions of the copied symbols.
        let ids = Tensor::new(
            batch.ids.iter().flatten().copied().collect::<Vec<u32>>(),
            &device,
        )
        .unwrap()
        .reshape((32, 7))
        .unwrap();
        let predicted = model
            .forward(&ids, None)
            .unwrap()
            .argmax(D::Minus1)
            .unwrap()
            .to_vec2::<u32>()
            .unwrap();
        let right = (0..32)
            .flat_map(|r| (3..6).map(move |j| (r, j)))
            .filter(|&(r, j)| predicted[r][j] == batch.ids[r][j + 1])
            .count();
        eprintln!("copy task: loss {first:.3} -> {last:.4}, {right} of 96 copied symbols right");
        assert!(right >= 80, "{right} of 96 copied symbols right");
    }

    #[test]
    fn batches_pad_and_cut() {
        let b = TokenBatch::from_pairs(&[(vec![5, 6], vec![7]), (vec![5], vec![7, 8, 9])], 0, 3);
        assert_eq!(b.ids, vec![vec![5, 6, 7], vec![5, 7, 8]]);
        assert_eq!(b.attention, vec![vec![1, 1, 1], vec![1, 1, 1]]);
        assert_eq!(b.loss, vec![vec![0, 0, 1], vec![0, 1, 1]]);
        let b = TokenBatch::from_pairs(&[(vec![5], vec![7]), (vec![5, 6, 6], vec![7])], 0, 10);
        assert_eq!(b.ids[0], vec![5, 7, 0, 0]);
        assert_eq!(b.attention[0], vec![1, 1, 0, 0]);
    }
}
