//! What the evaluator asks of a model: the summed log-likelihood of a continuation after a
//! context (lm-eval's `loglikelihood` requests, batched and right-padded, with `is_greedy`),
//! and greedy generation until an end token, a caller's stop test or a token limit.
//! Generation recomputes the whole prefix each step (no KV cache yet): right, but quadratic.

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
    let log_probs = candle_nn::ops::log_softmax(
        &model.forward(&ids, Some(&mask))?.to_dtype(DType::F32)?,
        D::Minus1,
    )?;
    let best = log_probs.argmax(D::Minus1)?.to_vec2::<u32>()?;
    let log_probs = log_probs.to_vec3::<f32>()?;
    Ok(requests
        .iter()
        .enumerate()
        .map(|(r, (c, x))| {
            let mut ll = 0.0f64;
            let mut greedy = true;
            for (k, &token) in x.iter().enumerate() {
                let p = c.len() - 1 + k;
                ll += log_probs[r][p][token as usize] as f64;
                greedy &= best[r][p] == token;
            }
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
    device: &Device,
    mut stop: impl FnMut(&[u32]) -> bool,
) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(LmError::Invalid(
            "generation needs a prompt of at least one token".into(),
        ));
    }
    let mut tokens = prompt.to_vec();
    let mut new = Vec::new();
    while new.len() < max_new {
        let ids = Tensor::from_vec(tokens.clone(), (1, tokens.len()), device)?;
        let logits = model.forward(&ids, None)?;
        let next = logits
            .narrow(1, tokens.len() - 1, 1)?
            .squeeze(1)?
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?[0];
        if end_tokens.contains(&next) {
            break;
        }
        tokens.push(next);
        new.push(next);
        if stop(&new) {
            break;
        }
    }
    Ok(new)
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
        let out = greedy(&m, &[1, 2], 4, &[], &Device::Cpu, |_| false).unwrap();
        assert_eq!(out.len(), 4);
        let scored = continuation_logliks(&m, &[(vec![1, 2], out.clone())], &Device::Cpu).unwrap();
        assert!(scored[0].1, "the greedy continuation must score as greedy");
        let other = (out[0] + 1) % 9;
        let scored = continuation_logliks(&m, &[(vec![1, 2], vec![other])], &Device::Cpu).unwrap();
        assert!(!scored[0].1);
        let ended = greedy(&m, &[1, 2], 4, &[out[1]], &Device::Cpu, |_| false).unwrap();
        let first_end = out.iter().position(|&t| t == out[1]).unwrap();
        assert_eq!(ended, out[..first_end].to_vec());
        let stopped = greedy(&m, &[1, 2], 4, &[], &Device::Cpu, |new| new.len() == 2).unwrap();
        assert_eq!(stopped, out[..2].to_vec());
        assert!(continuation_logliks(&m, &[(vec![], vec![1])], &Device::Cpu).is_err());
    }
}
