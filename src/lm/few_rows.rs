//! `x Wᵀ` for a handful of rows: a decode step multiplies one token per sequence by every
//! weight matrix. A general GEMM packs W into panels on each call, which for a few rows costs
//! more memory traffic than the product itself; here each row of W is read once, straight from
//! its (out, in) layout, and dotted with every row of x while it sits in L1.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::kernels::contiguous;
use super::Result;

/// Products with at most this many rows of x take this path.
pub const FEW_ROWS: usize = 8;

/// Rows of W per parallel task.
const BLOCK: usize = 32;

/// `x · wᵀ` for x (m, k) and w (n, k), f32, m <= `FEW_ROWS`.
struct FewRowsMatmulWt;

/// Sixteen running sums, folded pairwise: the products of the inner dimension in a fixed order.
#[inline(always)]
fn dot_with(a: &[f32], b: &[f32], fma: bool) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let (at, bt) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            acc[l] = if fma {
                x[l].mul_add(y[l], acc[l])
            } else {
                acc[l] + x[l] * y[l]
            };
        }
    }
    for (l, (x, y)) in at.iter().zip(bt).enumerate() {
        acc[l] = if fma {
            x.mul_add(*y, acc[l])
        } else {
            acc[l] + x * y
        };
    }
    let mut width = 16;
    while width > 1 {
        width /= 2;
        for l in 0..width {
            acc[l] += acc[l + width];
        }
    }
    acc[0]
}

/// `out[j * m + i] = x_i · w_j` for the rows `w` holds.
#[inline(always)]
fn block_with(x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [f32], fma: bool) {
    for (w_row, out_j) in w.chunks_exact(k).zip(out.chunks_exact_mut(m)) {
        for (i, o) in out_j.iter_mut().enumerate() {
            *o = dot_with(&x[i * k..(i + 1) * k], w_row, fma);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn block_avx2(x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [f32]) {
    block_with(x, m, k, w, out, true)
}

fn block(x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // Safety: the CPU has the features the function is compiled for.
        return unsafe { block_avx2(x, m, k, w, out) };
    }
    block_with(x, m, k, w, out, false)
}

impl CustomOp2 for FewRowsMatmulWt {
    fn name(&self) -> &'static str {
        "few-rows-matmul-wt"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (m, k) = xl.shape().dims2()?;
        let (n, k2) = wl.shape().dims2()?;
        if k != k2 {
            return Err(candle_core::Error::Msg(format!(
                "few-rows matmul: x is ({m}, {k}) but w is ({n}, {k2})"
            )));
        }
        let (x, w) = (
            contiguous::<f32>(xs, xl, "few-rows matmul")?,
            contiguous::<f32>(ws, wl, "few-rows matmul")?,
        );
        // Computed as (n, m), one block of W's rows per task, then transposed to (m, n).
        let mut by_column = vec![0f32; n * m];
        by_column
            .par_chunks_mut(BLOCK * m)
            .zip(w.par_chunks(BLOCK * k))
            .for_each(|(out, w)| block(x, m, k, w, out));
        let mut out = vec![0f32; m * n];
        for (j, column) in by_column.chunks_exact(m).enumerate() {
            for (i, &v) in column.iter().enumerate() {
                out[i * n + j] = v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // Frozen inputs (base weights under LoRA) get no gradient: nothing would read it.
        let dx = x.track_op().then(|| grad.matmul(w)).transpose()?;
        let dw = w.track_op().then(|| grad.t()?.matmul(x)).transpose()?;
        Ok((dx, dw))
    }
}

/// `x · wᵀ` for x (m, k) and w (n, k): through the few-rows kernel when m <= `FEW_ROWS` on a
/// CPU in f32, else candle's matmul. Differentiable either way.
pub fn matmul_wt(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let rows = x.dim(0)?;
    let few = rows <= FEW_ROWS
        && x.device().is_cpu()
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32
        && x.rank() == 2
        && w.rank() == 2;
    if few {
        Ok(x.contiguous()?
            .apply_op2(&w.contiguous()?, FewRowsMatmulWt)?)
    } else {
        Ok(x.matmul(&w.t()?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn sample(shape: (usize, usize), seed: u64) -> Var {
        let n = shape.0 * shape.1;
        let v: Vec<f32> = (0..n)
            .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
            .collect();
        Var::from_tensor(&Tensor::from_vec(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    #[test]
    fn matches_candles_matmul() {
        for (m, k, n) in [
            (1, 1, 1),
            (1, 37, 70),
            (3, 64, 65),
            (8, 100, 33),
            (5, 512, 257),
        ] {
            let (x, w) = (sample((m, k), 1), sample((n, k), 2));
            let fast = matmul_wt(x.as_tensor(), w.as_tensor()).unwrap();
            let plain = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
            let gap = (fast - &plain)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(gap < 1e-4 * k as f32, "({m}, {k}, {n}): {gap}");
        }
    }

    /// The gradients of both inputs are the composed matmul's.
    #[test]
    fn gradients_match_candles_matmul() {
        let (x, w) = (sample((4, 40), 3), sample((24, 40), 4));
        let weights = sample((4, 24), 5);
        let grads = |fast: bool| {
            let y = if fast {
                matmul_wt(x.as_tensor(), w.as_tensor()).unwrap()
            } else {
                x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap()
            };
            let loss = (y * weights.as_tensor()).unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            (
                g.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
                g.get(w.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
            )
        };
        let (fast, plain) = (grads(true), grads(false));
        assert_eq!(fast, plain);
    }
}
