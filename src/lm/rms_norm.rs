//! RMSNorm in one pass per row, forward and backward: y = x r w with r = 1 / sqrt(mean(x²) +
//! eps) per row. Composed from candle's ops it is six passes forward (square, mean, shift,
//! root, broadcast divide, broadcast multiply) and a dozen backward, each with a temporary the
//! size of the activations, twice per layer. Row statistics are summed in f64; the weight's
//! gradient is summed over fixed blocks of rows, then over the blocks in order, so the result
//! does not depend on the thread count.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::kernels::contiguous;
use super::Result;

/// Rows per block of the weight gradient's sum.
const BLOCK_ROWS: usize = 64;

/// 1 / sqrt(mean(x²) + eps) of one row.
fn inverse_rms(row: &[f32], eps: f64) -> f64 {
    let ss: f64 = row.iter().map(|&v| (v as f64) * (v as f64)).sum();
    1.0 / (ss / row.len() as f64 + eps).sqrt()
}

struct RmsNormOp {
    eps: f64,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "crossdiff-rms-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = wl.shape().elem_count();
        let (x, w) = (
            contiguous::<f32>(xs, xl, "rms norm")?,
            contiguous::<f32>(ws, wl, "rms norm")?,
        );
        if xl.dims().last() != Some(&h) {
            return Err(candle_core::Error::Msg(format!(
                "rms norm: x {:?} with a weight of {h}",
                xl.shape()
            )));
        }
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(h).zip(x.par_chunks(h)).for_each(|(y, x)| {
            let r = inverse_rms(x, self.eps);
            for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                *y = ((x as f64 * r) as f32) * w;
            }
        });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let dx = x
            .track_op()
            .then(|| x.apply_op3_no_bwd(w, &dy, &RmsNormGradX { eps: self.eps }))
            .transpose()?;
        let dw = w
            .track_op()
            .then(|| x.apply_op2_no_bwd(&dy, &RmsNormGradW { eps: self.eps }))
            .transpose()?;
        Ok((dx, dw))
    }
}

/// dx = r (dy w - x̂ mean(dy w x̂)) with x̂ = x r, per row.
struct RmsNormGradX {
    eps: f64,
}

impl CustomOp3 for RmsNormGradX {
    fn name(&self) -> &'static str {
        "crossdiff-rms-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = wl.shape().elem_count();
        let (x, w, g) = (
            contiguous::<f32>(xs, xl, "rms norm")?,
            contiguous::<f32>(ws, wl, "rms norm")?,
            contiguous::<f32>(gs, gl, "rms norm")?,
        );
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(h)
            .zip(x.par_chunks(h).zip(g.par_chunks(h)))
            .for_each(|(dx, (x, g))| {
                let r = inverse_rms(x, self.eps);
                let dot: f64 = x
                    .iter()
                    .zip(g)
                    .zip(w)
                    .map(|((&x, &g), &w)| (g as f64) * (w as f64) * (x as f64) * r)
                    .sum();
                let mean = dot / h as f64;
                for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                    *dx = (r * ((g as f64) * (w as f64) - (x as f64) * r * mean)) as f32;
                }
            });
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

/// dw = sum over rows of dy x̂.
struct RmsNormGradW {
    eps: f64,
}

impl CustomOp2 for RmsNormGradW {
    fn name(&self) -> &'static str {
        "crossdiff-rms-norm-grad-w"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let h = *xl.dims().last().unwrap_or(&1);
        let (x, g) = (
            contiguous::<f32>(xs, xl, "rms norm")?,
            contiguous::<f32>(gs, gl, "rms norm")?,
        );
        let partials: Vec<Vec<f64>> = x
            .par_chunks(h * BLOCK_ROWS)
            .zip(g.par_chunks(h * BLOCK_ROWS))
            .map(|(x, g)| {
                let mut acc = vec![0f64; h];
                for (x, g) in x.chunks_exact(h).zip(g.chunks_exact(h)) {
                    let r = inverse_rms(x, self.eps);
                    for ((a, &x), &g) in acc.iter_mut().zip(x).zip(g) {
                        *a += (g as f64) * (x as f64) * r;
                    }
                }
                acc
            })
            .collect();
        let mut dw = vec![0f64; h];
        for p in &partials {
            for (d, v) in dw.iter_mut().zip(p) {
                *d += v;
            }
        }
        let dw: Vec<f32> = dw.into_iter().map(|v| v as f32).collect();
        Ok((CpuStorage::F32(dw), Shape::from(h)))
    }
}

/// RMSNorm of x (..., H) with weight (H): the fused kernel on a CPU in f32, else the composed
/// ops. Differentiable either way.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && weight.dtype() == DType::F32 {
        return Ok(x
            .contiguous()?
            .apply_op2(&weight.contiguous()?, RmsNormOp { eps })?);
    }
    let mean_square = x.sqr()?.mean_keepdim(D::Minus1)?;
    let scale = (mean_square + eps)?.sqrt()?;
    Ok(x.broadcast_div(&scale)?.broadcast_mul(weight)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn var(shape: &[usize], seed: u64) -> Var {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 400.0) - 1.2)
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn composed(x: &Tensor, w: &Tensor, eps: f64) -> Tensor {
        let ms = x.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let scale = (ms + eps).unwrap().sqrt().unwrap();
        x.broadcast_div(&scale).unwrap().broadcast_mul(w).unwrap()
    }

    fn gap(a: &Tensor, b: &Tensor) -> f64 {
        crate::lm::kernels::max_abs_diff(a, b)
    }

    /// Values and both gradients match the composed ops'; the weight gradient sums over more
    /// rows than one block.
    #[test]
    fn matches_the_composed_ops() {
        let eps = 1e-6;
        for shape in [[2, 3, 8], [1, 150, 37]] {
            let (x, w) = (var(&shape, 1), var(&[shape[2]], 2));
            let up = var(&shape, 3);
            let fast = rms_norm(x.as_tensor(), w.as_tensor(), eps).unwrap();
            let plain = composed(x.as_tensor(), w.as_tensor(), eps);
            assert!(gap(&fast, &plain) < 1e-5, "{shape:?} values");
            let grads = |y: Tensor| {
                let g = (y * up.as_tensor())
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                (g.get(&x).unwrap().clone(), g.get(&w).unwrap().clone())
            };
            let ((dx, dw), (px, pw)) = (grads(fast), grads(plain));
            assert!(gap(&dx, &px) < 1e-5, "{shape:?} dx {}", gap(&dx, &px));
            assert!(gap(&dw, &pw) < 1e-4, "{shape:?} dw {}", gap(&dw, &pw));
        }
    }
}
