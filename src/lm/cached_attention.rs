//! Attention of new tokens over a KV cache in one pass, for inference: per (row, head), the
//! scores of each query against the cached keys of its key/value head (grouped-query attention
//! without copying the keys per head), scale, additive mask, softmax and the weighted sum of
//! values, written straight into the (B, T, heads x head_size) layout the output projection
//! reads. The composed path (repeat, transpose, two batched GEMMs, softmax, transpose) costs a
//! dozen tensor passes per layer per decode step. No backward: nothing trains through a cache.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::contiguous;
use super::Result;

/// `softmax(q kᵀ / sqrt(d) + mask) v` for q (B, H, T, D), k and v (B, KV, S, D), and the
/// additive mask (B, 1, T, S) row-major; output (B, T, H * D).
struct CachedAttention {
    mask: Arc<Vec<f32>>,
}

#[inline(always)]
fn dot(a: &[f32], b: &[f32], fma: bool) -> f32 {
    let mut acc = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let (at, bt) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            acc[l] = if fma {
                x[l].mul_add(y[l], acc[l])
            } else {
                acc[l] + x[l] * y[l]
            };
        }
    }
    for (l, (x, y)) in at.iter().zip(bt).enumerate() {
        acc[l] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// One (row, head): its queries (T, D), the keys and values of its key/value head (S, D),
/// and its rows of the additive mask (T, S).
struct Head<'a> {
    q: &'a [f32],
    k: &'a [f32],
    v: &'a [f32],
    mask: &'a [f32],
    d: usize,
    scale: f32,
}

/// `out` (T, D) of one head; `scores` and `weights` are scratch rows of S.
#[inline(always)]
fn head_with(h: &Head, scores: &mut [f32], weights: &mut [f32], out: &mut [f32], fma: bool) {
    let d = h.d;
    for ((q_t, mask_t), out_t) in
        h.q.chunks_exact(d)
            .zip(h.mask.chunks_exact(scores.len()))
            .zip(out.chunks_exact_mut(d))
    {
        for ((score, k_s), &m) in scores.iter_mut().zip(h.k.chunks_exact(d)).zip(mask_t) {
            *score = dot(q_t, k_s, fma) * h.scale + m;
        }
        super::kernels::softmax_row(scores, weights);
        out_t.iter_mut().for_each(|o| *o = 0.0);
        for (&w, v_s) in weights.iter().zip(h.v.chunks_exact(d)) {
            for (o, &x) in out_t.iter_mut().zip(v_s) {
                *o = if fma { w.mul_add(x, *o) } else { *o + w * x };
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(h: &Head, scores: &mut [f32], weights: &mut [f32], out: &mut [f32]) {
    head_with(h, scores, weights, out, true)
}

fn head(h: &Head, scores: &mut [f32], weights: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // Safety: the CPU has the features the function is compiled for.
        return unsafe { head_avx2(h, scores, weights, out) };
    }
    head_with(h, scores, weights, out, false)
}

impl CustomOp3 for CachedAttention {
    fn name(&self) -> &'static str {
        "cached-attention"
    }

    fn cpu_fwd(
        &self,
        qs: &CpuStorage,
        ql: &Layout,
        ks: &CpuStorage,
        kl: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, t, d) = ql.shape().dims4()?;
        let (b2, kv, s, d2) = kl.shape().dims4()?;
        if b2 != b || d2 != d || vl.shape() != kl.shape() || kv == 0 || h % kv != 0 {
            return Err(candle_core::Error::Msg(format!(
                "cached attention: q {:?}, k {:?}, v {:?} do not fit together",
                ql.shape(),
                kl.shape(),
                vl.shape()
            )));
        }
        if self.mask.len() != b * t * s {
            return Err(candle_core::Error::Msg(format!(
                "cached attention: a mask of {} values for ({b}, 1, {t}, {s})",
                self.mask.len()
            )));
        }
        let (q, k, v) = (
            contiguous::<f32>(qs, ql, "cached attention")?,
            contiguous::<f32>(ks, kl, "cached attention")?,
            contiguous::<f32>(vs, vl, "cached attention")?,
        );
        let scale = 1.0 / (d as f32).sqrt();
        let n_rep = h / kv;
        // One task per (row, head), each writing its (T, D) block; then laid out as (B, T, H D).
        let mut blocks = vec![0f32; b * h * t * d];
        blocks.par_chunks_mut(t * d).enumerate().for_each_init(
            || (vec![0f32; s], vec![0f32; s]),
            |(scores, weights), (bh, out)| {
                let (row, head_index) = (bh / h, bh % h);
                let kv_at = (row * kv + head_index / n_rep) * s * d;
                let one = Head {
                    q: &q[bh * t * d..(bh + 1) * t * d],
                    k: &k[kv_at..kv_at + s * d],
                    v: &v[kv_at..kv_at + s * d],
                    mask: &self.mask[row * t * s..(row + 1) * t * s],
                    d,
                    scale,
                };
                head(&one, scores, weights, out)
            },
        );
        let mut out = vec![0f32; b * t * h * d];
        for (bh, block) in blocks.chunks_exact(t * d).enumerate() {
            let (row, head_index) = (bh / h, bh % h);
            for (tt, src) in block.chunks_exact(d).enumerate() {
                let at = ((row * t + tt) * h + head_index) * d;
                out[at..at + d].copy_from_slice(src);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((b, t, h * d))))
    }
}

/// Whether `cached_attention` serves these tensors (CPU, f32).
pub fn available(q: &Tensor) -> bool {
    q.device().is_cpu() && q.dtype() == DType::F32
}

/// Attention output (B, T, H * D) of q (B, H, T, D) over k, v (B, KV, S, D) with the additive
/// mask (B, 1, T, S) given row-major.
pub fn cached_attention(q: &Tensor, k: &Tensor, v: &Tensor, mask: Arc<Vec<f32>>) -> Result<Tensor> {
    Ok(q.contiguous()?.apply_op3_no_bwd(
        &k.contiguous()?,
        &v.contiguous()?,
        &CachedAttention { mask },
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn sample(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// The composed ops the model uses without a cache, with keys repeated per head.
    fn composed(q: &Tensor, k: &Tensor, v: &Tensor, mask: &Tensor, n_rep: usize) -> Tensor {
        let (b, kv, s, d) = k.dims4().unwrap();
        let rep = |x: &Tensor| {
            x.unsqueeze(2)
                .unwrap()
                .broadcast_as((b, kv, n_rep, s, d))
                .unwrap()
                .contiguous()
                .unwrap()
                .reshape((b, kv * n_rep, s, d))
                .unwrap()
        };
        let (k, v) = (rep(k), rep(v));
        let scores = (q.matmul(&k.t().unwrap().contiguous().unwrap()).unwrap() / (d as f64).sqrt())
            .unwrap()
            .broadcast_add(mask)
            .unwrap();
        let w = super::super::kernels::softmax_last_dim(&scores).unwrap();
        let (_, h, t, _) = q.dims4().unwrap();
        w.matmul(&v)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap()
            .reshape((b, t, h * d))
            .unwrap()
    }

    #[test]
    fn matches_the_composed_ops() {
        // (B, H, KV, T, S, D): decode steps, a prefill, grouped and plain heads, odd sizes.
        for (b, h, kv, t, s, d) in [
            (2, 4, 2, 1, 9, 16),
            (3, 2, 2, 5, 5, 8),
            (1, 6, 1, 3, 7, 13),
            (4, 8, 2, 1, 70, 64),
        ] {
            let (q, k, v) = (
                sample(&[b, h, t, d], 1),
                sample(&[b, kv, s, d], 2),
                sample(&[b, kv, s, d], 3),
            );
            // Causal over the last t positions, and the first key of row 0 masked (padding).
            let mut mask = vec![0f32; b * t * s];
            for row in 0..b {
                for tt in 0..t {
                    for ss in 0..s {
                        let future = ss > s - t + tt;
                        let padding = row == 0 && ss == 0 && s > 1;
                        if future || padding {
                            mask[(row * t + tt) * s + ss] = -1e9;
                        }
                    }
                }
            }
            let mask_t = Tensor::from_vec(mask.clone(), (b, 1, t, s), &Device::Cpu).unwrap();
            let fused = cached_attention(&q, &k, &v, Arc::new(mask)).unwrap();
            let plain = composed(&q, &k, &v, &mask_t, h / kv);
            assert_eq!(fused.dims(), plain.dims());
            let gap = (fused - plain)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(gap < 1e-5, "({b}, {h}, {kv}, {t}, {s}, {d}): {gap}");
        }
    }
}
