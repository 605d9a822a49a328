//! Fused CPU kernels with a backward pass, for the two places where composing candle's basic
//! ops costs most: the attention softmax (max, subtract, exp, sum, divide: five passes and
//! four temporaries over B x heads x T x T) and the token loss (log-softmax over the
//! vocabulary, gather, weight). Each runs in one pass per row, rows in parallel. Other devices
//! and dtypes fall back to the composed, differentiable ops.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::Result;

/// Floats the kernels run on.
pub(super) trait Real: Copy + Send + Sync + PartialOrd + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(x: f64) -> Self;
    fn exp(self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn add(self, o: Self) -> Self;
    const ZERO: Self;
    const NEG_INF: Self;
}

macro_rules! real {
    ($t:ty) => {
        impl Real for $t {
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            fn sub(self, o: Self) -> Self {
                self - o
            }
            fn mul(self, o: Self) -> Self {
                self * o
            }
            fn add(self, o: Self) -> Self {
                self + o
            }
            const ZERO: Self = 0.0;
            const NEG_INF: Self = <$t>::NEG_INFINITY;
        }
    };
}
real!(f32);
real!(f64);

fn row_max<T: Real>(row: &[T]) -> T {
    row.iter()
        .fold(T::NEG_INF, |m, &x| if x > m { x } else { m })
}

/// Softmax of `row` into `out` (the exponentials summed in f64).
pub(super) fn softmax_row<T: Real>(row: &[T], out: &mut [T]) {
    let max = row_max(row);
    let mut sum = 0.0f64;
    for (o, &x) in out.iter_mut().zip(row) {
        let e = x.sub(max).exp();
        sum += e.to_f64();
        *o = e;
    }
    let scale = T::from_f64(1.0 / sum);
    for o in out.iter_mut() {
        *o = o.mul(scale);
    }
}

/// The data of a contiguous input of a custom op; `op` names the op in the error otherwise.
pub(super) fn contiguous<'a, T: candle_core::WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [T]> {
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input must be contiguous")))?;
    Ok(&storage.as_slice::<T>()?[start..end])
}

fn wrong_dtype(op: &str) -> candle_core::Error {
    candle_core::Error::Msg(format!("{op}: only f32 and f64 are supported"))
}

/// Softmax over the last dimension.
struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "crossdiff-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(x: &[T], dim: usize) -> Vec<T> {
            let mut out = vec![T::ZERO; x.len()];
            out.par_chunks_mut(dim)
                .zip(x.par_chunks(dim))
                .for_each(|(o, r)| softmax_row(r, o));
            out
        }
        let dim = layout.dims().last().copied().unwrap_or(1).max(1);
        let out = match storage {
            CpuStorage::F32(_) => {
                CpuStorage::F32(run(contiguous::<f32>(storage, layout, self.name())?, dim))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(run(contiguous::<f64>(storage, layout, self.name())?, dim))
            }
            _ => return Err(wrong_dtype(self.name())),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        softmax_backward(res, grad_res, None)
    }
}

/// The attention softmax with its scale and mask folded in: softmax(x * scale + mask) over
/// the last dimension of x (B, H, T, S), the additive mask (B, 1, T, S) given row-major on
/// the host (no mask tensor, no scaled or masked temporaries). The arithmetic is the composed
/// ops' (`x / sqrt(d)` is candle's affine `x * scale + 0`, then the mask is added), so values
/// and gradients are bit-identical to them.
struct MaskedSoftmax {
    scale: f64,
    mask: Arc<Vec<f32>>,
}

impl CustomOp1 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "crossdiff-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, t, s) = layout.shape().dims4()?;
        if self.mask.len() != b * t * s {
            return Err(candle_core::Error::Msg(format!(
                "{}: a mask of {} values for scores {:?}",
                self.name(),
                self.mask.len(),
                layout.shape()
            )));
        }
        let out = match storage {
            CpuStorage::F32(_) => {
                CpuStorage::F32(self.run(contiguous::<f32>(storage, layout, self.name())?, h, t, s))
            }
            CpuStorage::F64(_) => {
                CpuStorage::F64(self.run(contiguous::<f64>(storage, layout, self.name())?, h, t, s))
            }
            _ => return Err(wrong_dtype(self.name())),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        softmax_backward(res, grad_res, Some(self.scale))
    }
}

impl MaskedSoftmax {
    fn run<T: Real>(&self, x: &[T], heads: usize, t: usize, s: usize) -> Vec<T> {
        let (scale, zero) = (T::from_f64(self.scale), T::from_f64(0.0));
        let mut out = vec![T::ZERO; x.len()];
        out.par_chunks_mut(s)
            .zip(x.par_chunks(s))
            .enumerate()
            .for_each_init(
                || vec![T::ZERO; s],
                |shifted, (row, (o, r))| {
                    // Row (b, h, q) of the scores reads mask row (b, q).
                    let (b, q) = (row / (heads * t), row % t);
                    let mask = &self.mask[(b * t + q) * s..(b * t + q + 1) * s];
                    for ((z, &v), &m) in shifted.iter_mut().zip(r).zip(mask) {
                        *z = v.mul(scale).add(zero).add(T::from_f64(m as f64));
                    }
                    softmax_row(shifted, o);
                },
            );
        out
    }
}

/// The gradient of a softmax's input from its output `y` and the output's gradient `dy`.
fn softmax_backward(
    y: &Tensor,
    dy: &Tensor,
    scale: Option<f64>,
) -> candle_core::Result<Option<Tensor>> {
    Ok(Some(y.contiguous()?.apply_op2_no_bwd(
        &dy.contiguous()?,
        &SoftmaxGrad { scale },
    )?))
}

/// dx = y * (dy - sum(dy * y)) per row, from the softmax output y and its gradient dy; times
/// `scale` (as candle's affine backward computes it) when the softmax's input was scaled.
struct SoftmaxGrad {
    scale: Option<f64>,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "crossdiff-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        y_layout: &Layout,
        dy: &CpuStorage,
        dy_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(y: &[T], dy: &[T], dim: usize, scale: Option<f64>) -> Vec<T> {
            let mut out = vec![T::ZERO; y.len()];
            out.par_chunks_mut(dim)
                .zip(y.par_chunks(dim).zip(dy.par_chunks(dim)))
                .for_each(|(o, (y, dy))| {
                    let dot: f64 = y.iter().zip(dy).map(|(a, b)| a.mul(*b).to_f64()).sum();
                    let dot = T::from_f64(dot);
                    for ((o, &y), &g) in o.iter_mut().zip(y).zip(dy) {
                        *o = y.mul(g.sub(dot));
                    }
                    if let Some(scale) = scale {
                        let (scale, zero) = (T::from_f64(scale), T::from_f64(0.0));
                        o.iter_mut().for_each(|o| *o = o.mul(scale).add(zero));
                    }
                });
            out
        }
        let scale = self.scale;
        let dim = y_layout.dims().last().copied().unwrap_or(1).max(1);
        let name = self.name();
        let out = match y {
            CpuStorage::F32(_) => CpuStorage::F32(run(
                contiguous::<f32>(y, y_layout, name)?,
                contiguous::<f32>(dy, dy_layout, name)?,
                dim,
                scale,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(run(
                contiguous::<f64>(y, y_layout, name)?,
                contiguous::<f64>(dy, dy_layout, name)?,
                dim,
                scale,
            )),
            _ => return Err(wrong_dtype(name)),
        };
        Ok((out, y_layout.shape().clone()))
    }
}

fn fused(x: &Tensor) -> bool {
    x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
}

/// Softmax over the last dimension, differentiable.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if fused(x) {
        Ok(x.contiguous()?.apply_op1(Softmax)?)
    } else {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    }
}

/// softmax(scores * scale + mask) over the last dimension of scores (B, H, T, S), with the
/// additive mask (B, 1, T, S) row-major; differentiable. CPU, f32 or f64.
pub fn masked_softmax(scores: &Tensor, scale: f64, mask: Arc<Vec<f32>>) -> Result<Tensor> {
    Ok(scores
        .contiguous()?
        .apply_op1(MaskedSoftmax { scale, mask })?)
}

/// Negative log-likelihood of one target per row of `logits` (N, V).
struct TokenNll {
    targets: Arc<Vec<u32>>,
}

impl TokenNll {
    fn check(&self, rows: usize, vocab: usize) -> candle_core::Result<()> {
        if self.targets.len() != rows {
            return Err(candle_core::Error::Msg(format!(
                "token loss: {} targets for {rows} rows",
                self.targets.len()
            )));
        }
        if let Some(t) = self.targets.iter().find(|&&t| t as usize >= vocab) {
            return Err(candle_core::Error::Msg(format!(
                "token loss: target {t} is outside the vocabulary of {vocab}"
            )));
        }
        Ok(())
    }
}

impl CustomOp1 for TokenNll {
    fn name(&self) -> &'static str {
        "crossdiff-token-nll"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(x: &[T], targets: &[u32], vocab: usize) -> Vec<T> {
            x.par_chunks(vocab)
                .zip(targets.par_iter())
                .map(|(row, &t)| {
                    let max = row_max(row);
                    let sum: f64 = row.iter().map(|&v| v.sub(max).exp().to_f64()).sum();
                    T::from_f64(sum.ln() + max.to_f64() - row[t as usize].to_f64())
                })
                .collect()
        }
        let (rows, vocab) = layout.shape().dims2()?;
        self.check(rows, vocab)?;
        let out = match storage {
            CpuStorage::F32(_) => CpuStorage::F32(run(
                contiguous::<f32>(storage, layout, self.name())?,
                &self.targets,
                vocab,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(run(
                contiguous::<f64>(storage, layout, self.name())?,
                &self.targets,
                vocab,
            )),
            _ => return Err(wrong_dtype(self.name())),
        };
        Ok((out, Shape::from(rows)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let grad = TokenNllGrad {
            targets: self.targets.clone(),
        };
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad_res.contiguous()?, &grad)?,
        ))
    }
}

/// d nll / d logits = g * (softmax(row) - onehot(target)), per row.
struct TokenNllGrad {
    targets: Arc<Vec<u32>>,
}

impl CustomOp2 for TokenNllGrad {
    fn name(&self) -> &'static str {
        "crossdiff-token-nll-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn run<T: Real>(x: &[T], g: &[T], targets: &[u32], vocab: usize) -> Vec<T> {
            let mut out = vec![T::ZERO; x.len()];
            out.par_chunks_mut(vocab)
                .zip(x.par_chunks(vocab))
                .zip(g.par_iter().zip(targets.par_iter()))
                .for_each(|((o, row), (&g, &t))| {
                    if g.to_f64() == 0.0 {
                        return;
                    }
                    softmax_row(row, o);
                    for v in o.iter_mut() {
                        *v = v.mul(g);
                    }
                    o[t as usize] = o[t as usize].sub(g);
                });
            out
        }
        let (_, vocab) = x_layout.shape().dims2()?;
        let name = self.name();
        let out = match x {
            CpuStorage::F32(_) => CpuStorage::F32(run(
                contiguous::<f32>(x, x_layout, name)?,
                contiguous::<f32>(g, g_layout, name)?,
                &self.targets,
                vocab,
            )),
            CpuStorage::F64(_) => CpuStorage::F64(run(
                contiguous::<f64>(x, x_layout, name)?,
                contiguous::<f64>(g, g_layout, name)?,
                &self.targets,
                vocab,
            )),
            _ => return Err(wrong_dtype(name)),
        };
        Ok((out, x_layout.shape().clone()))
    }
}

/// -log softmax(logits[n])[targets[n]] for each row of `logits` (N, V), differentiable; (N,).
pub fn token_nll(logits: &Tensor, targets: &[u32]) -> Result<Tensor> {
    if fused(logits) {
        let op = TokenNll {
            targets: Arc::new(targets.to_vec()),
        };
        return Ok(logits.contiguous()?.apply_op1(op)?);
    }
    let n = targets.len();
    let index = Tensor::from_vec(targets.to_vec(), (n, 1), logits.device())?;
    let log_probs = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(log_probs
        .gather(&index, D::Minus1)?
        .squeeze(D::Minus1)?
        .neg()?)
}

/// The largest absolute difference of two tensors' elements, in f64 (tests of fused ops
/// against the composed ones).
#[cfg(test)]
pub(crate) fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn sample(shape: (usize, usize), dtype: DType) -> Var {
        let n = shape.0 * shape.1;
        let values: Vec<f64> = (0..n)
            .map(|k| ((k * 37 % 23) as f64 - 11.0) / 4.0)
            .collect();
        let t = Tensor::from_vec(values, shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        Var::from_tensor(&t).unwrap()
    }

    fn close(a: &Tensor, b: &Tensor, tol: f64) {
        let d = max_abs_diff(a, b);
        assert!(d < tol, "max difference {d}");
    }

    /// Values and gradients equal the composed ops', in f64 and f32.
    #[test]
    fn fused_ops_match_composed_ones() {
        for (dtype, tol) in [(DType::F64, 1e-12), (DType::F32, 1e-5)] {
            let x = sample((5, 9), dtype);
            let weights = Tensor::from_vec(
                (0..45).map(|k| (k % 7) as f64 - 3.0).collect::<Vec<_>>(),
                (5, 9),
                &Device::Cpu,
            )
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
            let fused = softmax_last_dim(x.as_tensor()).unwrap();
            let plain = candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap();
            close(&fused, &plain, tol);
            let gf = (fused * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (plain * &weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            close(gf.get(&x).unwrap(), gp.get(&x).unwrap(), tol);

            let targets = [3u32, 0, 8, 8, 1];
            let row_weights = Tensor::new(&[1.0f64, 0.0, 2.0, 0.5, 1.0], &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let fused = token_nll(x.as_tensor(), &targets).unwrap();
            let index = Tensor::new(&[[3u32], [0], [8], [8], [1]], &Device::Cpu).unwrap();
            let plain = candle_nn::ops::log_softmax(x.as_tensor(), D::Minus1)
                .unwrap()
                .gather(&index, D::Minus1)
                .unwrap()
                .squeeze(D::Minus1)
                .unwrap()
                .neg()
                .unwrap();
            close(&fused, &plain, tol);
            let gf = (fused * &row_weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (plain * &row_weights)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            close(gf.get(&x).unwrap(), gp.get(&x).unwrap(), tol);
        }
        let x = sample((2, 3), DType::F32);
        assert!(token_nll(x.as_tensor(), &[0, 3]).is_err());
        assert!(token_nll(x.as_tensor(), &[0]).is_err());
    }

    /// The masked softmax is the composed `softmax(x / sqrt(d) + mask)` bit for bit, values and
    /// gradients, in f64 and f32.
    #[test]
    fn masked_softmax_is_the_composed_ops_exactly() {
        let (b, h, t, s, d) = (2, 3, 4, 5, 16);
        let mask: Vec<f32> = (0..b * t * s)
            .map(|k| {
                if k % 7 == 3 {
                    -1e9
                } else {
                    (k % 3) as f32 * 0.25
                }
            })
            .collect();
        for dtype in [DType::F64, DType::F32] {
            let x = Var::from_tensor(
                &sample((b * h * t, s), dtype)
                    .as_tensor()
                    .reshape((b, h, t, s))
                    .unwrap(),
            )
            .unwrap();
            let weights = sample((b * h * t, s), dtype)
                .as_tensor()
                .reshape((b, h, t, s))
                .unwrap()
                .sin()
                .unwrap();
            let scale = 1.0 / (d as f64).sqrt();
            let fused = masked_softmax(x.as_tensor(), scale, Arc::new(mask.clone())).unwrap();
            let mask_t = Tensor::from_vec(mask.clone(), (b, 1, t, s), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let plain = softmax_last_dim(
                &(x.as_tensor() / (d as f64).sqrt())
                    .unwrap()
                    .broadcast_add(&mask_t)
                    .unwrap(),
            )
            .unwrap();
            let bits = |t: &Tensor| -> Vec<u64> {
                t.flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1::<f64>()
                    .unwrap()
                    .into_iter()
                    .map(f64::to_bits)
                    .collect()
            };
            assert_eq!(bits(&fused), bits(&plain), "{dtype:?} values");
            let grad = |y: Tensor| {
                (y * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap()
                    .get(&x)
                    .unwrap()
                    .clone()
            };
            assert_eq!(
                bits(&grad(fused)),
                bits(&grad(plain)),
                "{dtype:?} gradients"
            );
        }
        let x = sample((4, 5), DType::F32)
            .as_tensor()
            .reshape((1, 1, 4, 5))
            .unwrap();
        assert!(masked_softmax(&x, 1.0, Arc::new(vec![0.0; 3])).is_err());
    }
}
