//! AdamW (decoupled weight decay, PyTorch's update rule) whose moments can be written to a
//! checkpoint and read back, so an interrupted fine-tune resumes bit-for-bit; candle-nn's
//! AdamW keeps its state private.

use std::collections::BTreeMap;

use candle_core::{Tensor, Var};

use super::{LmError, Result};

/// AdamW hyper-parameters other than the learning rate (which the schedule sets per step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

/// One trainable tensor with its moments.
struct Slot {
    name: String,
    var: Var,
    /// transformers' Trainer decays neither biases nor normalisation scales.
    decays: bool,
    m: Tensor,
    v: Tensor,
}

pub struct AdamW {
    slots: Vec<Slot>,
    params: AdamWParams,
    /// Updates applied so far (PyTorch's `step`, used for bias correction).
    steps: usize,
}

impl AdamW {
    /// `vars` by name; names decide which ones are decayed.
    pub fn new(vars: Vec<(String, Var)>, params: AdamWParams) -> Result<Self> {
        let slots = vars
            .into_iter()
            .map(|(name, var)| {
                let zeros = var.as_tensor().zeros_like()?;
                Ok(Slot {
                    decays: !(name.ends_with(".bias") || name.contains("norm")),
                    name,
                    var,
                    m: zeros.clone(),
                    v: zeros,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            slots,
            params,
            steps: 0,
        })
    }

    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.slots.iter().map(|s| (s.name.as_str(), &s.var))
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// One update with gradients aligned with the vars (`None`: no gradient, left alone).
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        if grads.len() != self.slots.len() {
            return Err(LmError::Invalid(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.slots.len()
            )));
        }
        self.steps += 1;
        let AdamWParams {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let t = self.steps as i32;
        let (correction1, correction2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        for (slot, grad) in self.slots.iter_mut().zip(grads) {
            let Some(g) = grad else { continue };
            let g = g.to_dtype(slot.m.dtype())?;
            slot.m = ((&slot.m * beta1)? + (&g * (1.0 - beta1))?)?;
            slot.v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&slot.m / correction1)?;
            let v_hat = (&slot.v / correction2)?;
            let update = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let theta = slot.var.as_tensor();
            let decayed = if slot.decays && weight_decay > 0.0 {
                (theta * (1.0 - lr * weight_decay))?
            } else {
                theta.clone()
            };
            slot.var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// The moments as named tensors (`exp_avg.<name>`, `exp_avg_sq.<name>`), in their dtype.
    pub fn state(&self) -> Result<BTreeMap<String, Tensor>> {
        let mut out = BTreeMap::new();
        for s in &self.slots {
            out.insert(format!("exp_avg.{}", s.name), s.m.clone());
            out.insert(format!("exp_avg_sq.{}", s.name), s.v.clone());
        }
        Ok(out)
    }

    /// Restores moments written by [`AdamW::state`] after `steps` updates.
    pub fn restore(&mut self, state: &BTreeMap<String, Tensor>, steps: usize) -> Result<()> {
        for s in &mut self.slots {
            let get = |key: String| -> Result<Tensor> {
                let t = state
                    .get(&key)
                    .ok_or_else(|| LmError::Invalid(format!("optimizer state lacks `{key}`")))?;
                if t.shape() != s.var.shape() {
                    return Err(LmError::Invalid(format!(
                        "optimizer state `{key}` has shape {:?}, the parameter {:?}",
                        t.dims(),
                        s.var.dims()
                    )));
                }
                Ok(t.to_dtype(s.var.dtype())?.to_device(s.var.device())?)
            };
            s.m = get(format!("exp_avg.{}", s.name))?;
            s.v = get(format!("exp_avg_sq.{}", s.name))?;
        }
        self.steps = steps;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two updates of a scalar worked by hand with PyTorch's formulas.
    #[test]
    fn matches_hand_computed_updates() {
        let w = Var::new(&[1.0f64, -2.0], &Device::Cpu).unwrap();
        let b = Var::new(&[0.5f64], &Device::Cpu).unwrap();
        let params = AdamWParams {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.1,
        };
        let mut opt = AdamW::new(
            vec![("w".into(), w.clone()), ("x.bias".into(), b.clone())],
            params,
        )
        .unwrap();
        let g = |v: &[f64]| Some(Tensor::new(v, &Device::Cpu).unwrap());
        opt.step(&[g(&[0.5, 0.0]), g(&[1.0])], 0.1).unwrap();
        opt.step(&[g(&[-0.25, 1.0]), None], 0.1).unwrap();
        // w0: step 1: m=0.05, v=0.0025; m^=0.5, v^=0.25 -> update 1; theta = 1*(1-0.01) - 0.1
        let w1 = 1.0 * (1.0 - 0.01) - 0.1 * (0.5 / (0.25f64.sqrt() + 1e-8));
        // step 2: m=0.045-0.025=0.02, v=0.002475+0.000625=0.0031
        let (m, v) = (0.9 * 0.05 + 0.1 * -0.25, 0.99 * 0.0025 + 0.01 * 0.0625);
        let (mh, vh) = (m / (1.0 - 0.81), v / (1.0 - 0.99f64.powi(2)));
        let w2 = w1 * (1.0 - 0.01) - 0.1 * mh / (vh.sqrt() + 1e-8);
        let got = w.as_tensor().to_vec1::<f64>().unwrap();
        assert!((got[0] - w2).abs() < 1e-12, "{} vs {w2}", got[0]);
        // The bias is not decayed and had no gradient on step 2.
        let b1 = 0.5 - 0.1 * (1.0 / (1.0 + 1e-8));
        assert!((b.as_tensor().to_vec1::<f64>().unwrap()[0] - b1).abs() < 1e-12);

        // State round trip: a fresh optimizer restored from it takes the same next step.
        let state = opt.state().unwrap();
        let w_copy = Var::new(got.as_slice(), &Device::Cpu).unwrap();
        let b_copy = Var::new(
            b.as_tensor().to_vec1::<f64>().unwrap().as_slice(),
            &Device::Cpu,
        )
        .unwrap();
        let mut again = AdamW::new(
            vec![("w".into(), w_copy.clone()), ("x.bias".into(), b_copy)],
            params,
        )
        .unwrap();
        again.restore(&state, 2).unwrap();
        opt.step(&[g(&[0.1, 0.1]), g(&[0.1])], 0.05).unwrap();
        again.step(&[g(&[0.1, 0.1]), g(&[0.1])], 0.05).unwrap();
        let (a, c) = (
            w.as_tensor().to_vec1::<f64>().unwrap(),
            w_copy.as_tensor().to_vec1::<f64>().unwrap(),
        );
        assert_eq!(a, c);
        assert!(again.restore(&BTreeMap::new(), 0).is_err());
    }
}
