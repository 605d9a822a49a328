//! What the evaluator asks of a model: the summed log-likelihood of a continuation after a
//! context (lm-eval's `loglikelihood` requests, batched and right-padded, with `is_greedy`),
//! and greedy generation until an end token, a caller's stop test or a token limit, for many
//! prompts at once (left-padded) with the KV cache.

use candle_core::{DType, Device, Tensor, D};

use super::{Decoder, LmError, Result};

/// Log-likelihood of each `(context, continuation)` pair and whether every continuation token
/// is the model's argmax. Pairs are scored in one right-padded batch.
pub fn continuation_logliks(
    model: &Decoder,
    requests: &[(Vec<u32>, Vec<u32>)],
    device: &Device,
) -> Result<Vec<(f64, bool)>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(k) = requests
        .iter()
        .position(|(c, x)| c.is_empty() || x.is_empty())
    {
        return Err(LmError::Invalid(format!(
            "request {k}: context and continuation must each have at least one token"
        )));
    }
    // The model sees context + continuation minus its last token; position p predicts p + 1.
    let inputs: Vec<Vec<u32>> = requests
        .iter()
        .map(|(c, x)| c.iter().chain(&x[..x.len() - 1]).copied().collect())
        .collect();
    let t = inputs.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat = Vec::with_capacity(inputs.len() * t);
    let mut mask = Vec::with_capacity(inputs.len());
    for row in &inputs {
        flat.extend(
            row.iter()
                .copied()
                .chain(std::iter::repeat_n(0, t - row.len())),
        );
        mask.push((0..t).map(|j| (j < row.len()) as u8).collect::<Vec<u8>>());
    }
    let ids = Tensor::from_vec(flat, (inputs.len(), t), device)?;
    // Only the positions that predict a continuation token go through the head.
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for (r, (c, x)) in requests.iter().enumerate() {
        for (k, &token) in x.iter().enumerate() {
            rows.push((r * t + c.len() - 1 + k) as u32);
            targets.push(token);
        }
    }
    let hidden = model.hidden_states(&ids, Some(&mask), None)?;
    let h = hidden.dim(2)?;
    let selected = hidden
        .reshape((inputs.len() * t, h))?
        .index_select(&Tensor::new(rows.as_slice(), device)?, 0)?;
    let logits = model.logits(&selected)?.to_dtype(DType::F32)?;
    let nll = super::kernels::token_nll(&logits, &targets)?.to_vec1::<f32>()?;
    let best = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let mut next = 0;
    Ok(requests
        .iter()
        .map(|(_, x)| {
            let mine = next..next + x.len();
            next += x.len();
            let ll = -mine.clone().map(|k| nll[k] as f64).sum::<f64>();
            let greedy = mine.clone().all(|k| best[k] == targets[k]);
            (ll, greedy)
        })
        .collect())
}

/// Greedy continuation of `prompt`: at most `max_new` tokens, ending early after a token in
/// `end_tokens` (kept out of the result) or once `stop(new_tokens)` says so.
pub fn greedy(
    model: &Decoder,
    prompt: &[u32],
    max_new: usize,
    end_tokens: &[u32],
    mut stop: impl FnMut(&[u32]) -> bool,
) -> Result<Vec<u32>> {
    let mut out = greedy_batch(
        model,
        &[prompt.to_vec()],
        max_new,
        end_tokens,
        0,
        |_, new| stop(new),
    )?;
    Ok(out.pop().unwrap_or_default())
}

/// Greedy continuations of `prompts` decoded together: prompts are left-padded with `pad`
/// (never attended to), prefilled in one pass, then extended one token per step through the
/// KV cache. Row r ends at an end token, when `stop(r, new_tokens)` says so, or after
/// `max_new` tokens; finished rows are fed padding until every row is done.
pub fn greedy_batch(
    model: &Decoder,
    prompts: &[Vec<u32>],
    max_new: usize,
    end_tokens: &[u32],
    pad: u32,
    mut stop: impl FnMut(usize, &[u32]) -> bool,
) -> Result<Vec<Vec<u32>>> {
    if let Some(k) = prompts.iter().position(Vec::is_empty) {
        return Err(LmError::Invalid(format!(
            "prompt {k}: generation needs a prompt of at least one token"
        )));
    }
    let b = prompts.len();
    let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); b];
    if b == 0 || max_new == 0 {
        return Ok(outputs);
    }
    let device = model.device();
    let t = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat = Vec::with_capacity(b * t);
    let mut mask = Vec::with_capacity(b);
    for p in prompts {
        flat.extend(std::iter::repeat_n(pad, t - p.len()).chain(p.iter().copied()));
        mask.push(
            (0..t)
                .map(|j| (j >= t - p.len()) as u8)
                .collect::<Vec<u8>>(),
        );
    }
    let mut cache = model.new_cache(b);
    let mut logits = model.next_token_logits(
        &Tensor::from_vec(flat, (b, t), device)?,
        Some(&mask),
        &mut cache,
    )?;
    let mut done = vec![false; b];
    for _ in 0..max_new {
        let next = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for r in 0..b {
            if done[r] {
                continue;
            }
            if end_tokens.contains(&next[r]) {
                done[r] = true;
                continue;
            }
            outputs[r].push(next[r]);
            if stop(r, &outputs[r]) || outputs[r].len() >= max_new {
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        let step_ids: Vec<u32> = (0..b)
            .map(|r| if done[r] { pad } else { next[r] })
            .collect();
        let step_mask: Vec<Vec<u8>> = done.iter().map(|&d| vec![(!d) as u8]).collect();
        logits = model.next_token_logits(
            &Tensor::from_vec(step_ids, (b, 1), device)?,
            Some(&step_mask),
            &mut cache,
        )?;
    }
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lm::DecoderConfig;
    use candle_nn::{VarBuilder, VarMap};

    fn model() -> Decoder {
        let config = DecoderConfig::parse(
            r#"{"model_type":"llama","vocab_size":9,"hidden_size":8,"intermediate_size":12,
            "num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1}"#,
            "micro",
        )
        .unwrap();
        let map = VarMap::new();
        let m = Decoder::new(
            &config,
            VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu),
        )
        .unwrap();
        crate::lm::testing::deterministic(&map);
        m
    }

    /// Batched scores equal scores computed alone, and equal a hand sum over one forward.
    #[test]
    fn batched_loglikelihoods_match_single_ones() {
        let m = model();
        let requests = vec![
            (vec![1, 2, 3], vec![4]),
            (vec![5], vec![6, 7, 8]),
            (vec![2, 2, 2, 2], vec![1, 3]),
        ];
        let batched = continuation_logliks(&m, &requests, &Device::Cpu).unwrap();
        for (k, r) in requests.iter().enumerate() {
            let alone = continuation_logliks(&m, std::slice::from_ref(r), &Device::Cpu).unwrap()[0];
            assert!(
                (alone.0 - batched[k].0).abs() < 1e-5,
                "{k}: {alone:?} vs {:?}",
                batched[k]
            );
            assert_eq!(alone.1, batched[k].1);
        }
        // By hand for request 1: one forward over [5, 6, 7], log-softmax rows 0..2.
        let ids = Tensor::new(&[[5u32, 6, 7]], &Device::Cpu).unwrap();
        let lp = candle_nn::ops::log_softmax(&m.forward(&ids, None).unwrap(), D::Minus1)
            .unwrap()
            .to_vec3::<f32>()
            .unwrap();
        let hand = (lp[0][0][6] + lp[0][1][7] + lp[0][2][8]) as f64;
        assert!((hand - batched[1].0).abs() < 1e-5);
    }

    /// A continuation equal to the greedy output is greedy; generation stops at an end token,
    /// at the caller's stop test and at the limit.
    #[test]
    fn greedy_generation_and_is_greedy_agree() {
        let m = model();
        let out = greedy(&m, &[1, 2], 4, &[], |_| false).unwrap();
        assert_eq!(out.len(), 4);
        let scored = continuation_logliks(&m, &[(vec![1, 2], out.clone())], &Device::Cpu).unwrap();
        assert!(scored[0].1, "the greedy continuation must score as greedy");
        let other = (out[0] + 1) % 9;
        let scored = continuation_logliks(&m, &[(vec![1, 2], vec![other])], &Device::Cpu).unwrap();
        assert!(!scored[0].1);
        let ended = greedy(&m, &[1, 2], 4, &[out[1]], |_| false).unwrap();
        let first_end = out.iter().position(|&t| t == out[1]).unwrap();
        assert_eq!(ended, out[..first_end].to_vec());
        let stopped = greedy(&m, &[1, 2], 4, &[], |new| new.len() == 2).unwrap();
        assert_eq!(stopped, out[..2].to_vec());
        assert!(continuation_logliks(&m, &[(vec![], vec![1])], &Device::Cpu).is_err());
    }

    /// Cached, batched, left-padded decoding gives exactly the tokens of recomputing the whole
    /// prefix with a plain forward at every step, row by row.
    #[test]
    fn cached_batched_generation_equals_full_recomputation() {
        let m = model();
        let prompts = vec![vec![1u32, 2, 3, 4, 5], vec![6], vec![7, 8]];
        let batched = greedy_batch(&m, &prompts, 6, &[], 0, |_, _| false).unwrap();
        for (r, p) in prompts.iter().enumerate() {
            let mut tokens = p.clone();
            for _ in 0..6 {
                let ids =
                    Tensor::from_vec(tokens.clone(), (1, tokens.len()), &Device::Cpu).unwrap();
                let logits = m.forward(&ids, None).unwrap();
                let next = logits
                    .narrow(1, tokens.len() - 1, 1)
                    .unwrap()
                    .squeeze(1)
                    .unwrap()
                    .argmax(D::Minus1)
                    .unwrap()
                    .to_vec1::<u32>()
                    .unwrap()[0];
                tokens.push(next);
            }
            assert_eq!(batched[r], tokens[p.len()..].to_vec(), "row {r}");
        }
        // Rows stop independently.
        let stopped =
            greedy_batch(&m, &prompts, 6, &[], 0, |r, new| r == 1 && new.len() == 2).unwrap();
        assert_eq!(stopped[1], batched[1][..2].to_vec());
        assert_eq!(stopped[0], batched[0]);
        assert!(greedy_batch(&m, &[vec![]], 3, &[], 0, |_, _| false).is_err());
    }
}
