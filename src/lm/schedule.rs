//! The learning-rate schedule and gradient clipping of supervised fine-tuning, as the paper
//! ran them through Hugging Face's trainer: linear warm-up to the peak, cosine decay to zero
//! (`get_cosine_schedule_with_warmup`), and clipping by the global L2 norm of all gradients
//! (`torch.nn.utils.clip_grad_norm_`). AdamW is in `optim`.

use candle_core::Tensor;

use super::Result;

/// Linear warm-up over `warmup_steps`, then cosine decay to zero at `total_steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    pub peak: f64,
    pub warmup_steps: usize,
    pub total_steps: usize,
}

impl WarmupCosine {
    /// The paper's schedule: warm-up over `warmup_ratio` of the steps (rounded up, as the
    /// trainer does).
    pub fn with_ratio(peak: f64, total_steps: usize, warmup_ratio: f64) -> Self {
        Self {
            peak,
            warmup_steps: (warmup_ratio * total_steps as f64).ceil() as usize,
            total_steps,
        }
    }

    /// The learning rate of optimizer step `step` (0-based: the first update uses step 0).
    pub fn at(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.peak * step as f64 / self.warmup_steps.max(1) as f64;
        }
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps).max(1);
        let progress = ((step - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        self.peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

/// Scales `grads` so their global L2 norm is at most `max_norm`; returns the norm before
/// clipping. `None` entries (parameters without a gradient) are skipped.
pub fn clip_grad_norm(grads: &mut [Option<Tensor>], max_norm: f64) -> Result<f64> {
    let mut total = 0.0f64;
    for g in grads.iter().flatten() {
        total += g
            .sqr()?
            .sum_all()?
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?;
    }
    let norm = total.sqrt();
    // torch's rule: multiply by max_norm / (norm + 1e-6) when that is below one.
    let scale = max_norm / (norm + 1e-6);
    if scale < 1.0 {
        for g in grads.iter_mut() {
            if let Some(t) = g.take() {
                *g = Some((t * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn warmup_then_cosine() {
        // 100 steps, 10% warm-up, peak 5e-6 (the paper's settings).
        let s = WarmupCosine::with_ratio(5e-6, 100, 0.1);
        assert_eq!(s.warmup_steps, 10);
        assert_eq!(s.at(0), 0.0);
        assert!((s.at(5) - 2.5e-6).abs() < 1e-18);
        assert!((s.at(10) - 5e-6).abs() < 1e-18);
        assert!((s.at(55) - 2.5e-6).abs() < 1e-15); // half-way through the decay
        assert!(s.at(100).abs() < 1e-20 && s.at(150).abs() < 1e-20);
        // 7 steps at ratio 0.1 warm up for one step, as the trainer's ceil does.
        assert_eq!(WarmupCosine::with_ratio(1.0, 7, 0.1).warmup_steps, 1);
    }

    #[test]
    fn clipping_scales_to_the_global_norm() {
        let grads = || {
            vec![
                Some(Tensor::new(&[3.0f32, 3.0], &Device::Cpu).unwrap()),
                None,
                Some(Tensor::new(&[4.0f32], &Device::Cpu).unwrap()),
            ]
        };
        // Global norm sqrt(9 + 9 + 16) = sqrt(34).
        let mut g = grads();
        let norm = clip_grad_norm(&mut g, 0.1).unwrap();
        assert!((norm - 34f64.sqrt()).abs() < 1e-6);
        let clipped: Vec<f32> = g[0].as_ref().unwrap().to_vec1().unwrap();
        let expect = 3.0 * 0.1 / (34f64.sqrt() + 1e-6);
        assert!((clipped[0] as f64 - expect).abs() < 1e-6, "{clipped:?}");
        assert!(g[1].is_none());
        // Under the limit nothing changes.
        let mut g = grads();
        clip_grad_norm(&mut g, 100.0).unwrap();
        assert_eq!(g[2].as_ref().unwrap().to_vec1::<f32>().unwrap(), vec![4.0]);
    }
}
