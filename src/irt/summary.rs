//! What every estimator shares once it has point estimates: per-item sums of residuals and
//! information, fit statistics (infit, outfit), the log likelihood, flags, and the starting
//! values all fits begin from.

use rayon::prelude::*;

use super::matrix::MISSING;
use super::{sigmoid, Ability, Flag, ItemParams, Priors, ResponseMatrix};

/// What an item step needs of the priors: b (1PL) or the intercept d = -a b (2PL) ~ N(0,
/// var_b), and alpha = log a ~ N(0, var_alpha) truncated above at max_alpha.
#[derive(Debug, Clone, Copy)]
pub(super) struct ItemPrior {
    pub var_b: f64,
    pub var_alpha: f64,
    pub max_alpha: f64,
}

impl ItemPrior {
    pub fn of(p: &Priors) -> Self {
        Self {
            var_b: p.difficulty_sd * p.difficulty_sd,
            var_alpha: p.log_discrimination_sd * p.log_discrimination_sd,
            max_alpha: p.max_discrimination.ln(),
        }
    }

    /// The log density of one item, up to a constant (on b for 1PL; on d and alpha for 2PL).
    pub fn log_density(&self, (b, alpha): (f64, f64), two_pl: bool) -> f64 {
        if two_pl {
            let d = -alpha.exp() * b;
            -0.5 * d * d / self.var_b - 0.5 * alpha * alpha / self.var_alpha
        } else {
            -0.5 * b * b / self.var_b
        }
    }

    /// Whether a slope has reached the bound.
    pub fn at_bound(&self, alpha: f64) -> bool {
        alpha >= self.max_alpha
    }

    /// The largest factor every slope may be multiplied by and stay within the bound (at
    /// least 1: a slope past the bound is brought back by the next item step, not here).
    pub fn room_to_bound(&self, alphas: impl Iterator<Item = f64>) -> f64 {
        let highest = alphas.fold(f64::NEG_INFINITY, f64::max);
        (self.max_alpha - highest).exp().max(1.0)
    }

    /// (b, alpha) with alpha held to the bound; b keeps the intercept d = -a b, which is what
    /// the data pin down.
    pub fn bounded(&self, (b, alpha): (f64, f64)) -> (f64, f64) {
        if alpha > self.max_alpha {
            (b * (alpha - self.max_alpha).exp(), self.max_alpha)
        } else {
            (b, alpha)
        }
    }
}

/// Most quadrature nodes the per-response kernels carry.
pub(super) const MAX_NODES: usize = 32;

/// `sum_resp log(1 + e^-z_k)` for each node k, kept as running products (one logarithm per
/// fold instead of one per response and node).
pub(super) struct LogTerms {
    product: [f64; MAX_NODES],
    log_sum: [f64; MAX_NODES],
    len: usize,
}

impl LogTerms {
    pub fn new(len: usize) -> Self {
        Self {
            product: [1.0; MAX_NODES],
            log_sum: [0.0; MAX_NODES],
            len,
        }
    }

    #[inline]
    pub fn add(&mut self, k: usize, e: f64, z: f64) {
        let factor = 1.0 + e;
        if factor > 1e50 {
            self.log_sum[k] += if e.is_finite() { factor.ln() } else { -z };
        } else {
            self.product[k] *= factor;
            if self.product[k] > 1e250 {
                self.log_sum[k] += self.product[k].ln();
                self.product[k] = 1.0;
            }
        }
    }

    pub fn weighted_sum(&self, weights: &[f64]) -> f64 {
        (0..self.len)
            .map(|k| weights[k] * (self.log_sum[k] + self.product[k].ln()))
            .sum()
    }
}

impl LogTerms {
    /// log(product_k).
    pub fn log(&self, k: usize) -> f64 {
        self.log_sum[k] + self.product[k].ln()
    }
}

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Per-item sufficient sums at the current parameters.
#[derive(Default, Clone, Copy)]
pub(super) struct ItemSums {
    pub log_lik: f64,
    pub resid: f64,
    /// The slope's sums (2PL): x = a theta, the part of the logit z = x + d that the slope
    /// moves; sum r x, sum w x, sum w x^2 with r = y - p, w = p (1 - p).
    pub resid_x: f64,
    pub w: f64,
    pub wx: f64,
    pub wxx: f64,
    pub sq_resid: f64,
    pub sq_std_resid: f64,
    pub n: usize,
    pub n_correct: usize,
}

/// Sums of item `i` at abilities `theta` (with `exp_neg_theta` = e^-theta) and (b, log a).
pub(super) fn item_sums(
    m: &ResponseMatrix,
    i: usize,
    theta: &[f64],
    exp_neg_theta: &[f64],
    (b, alpha): (f64, f64),
    two_pl: bool,
) -> ItemSums {
    let a = if two_pl { alpha.exp() } else { 1.0 };
    let exp_b = b.exp();
    if !two_pl {
        if let Some(row) = m.dense_item_row(i) {
            return dense_item_sums::<true>(row, theta, exp_neg_theta, b, exp_b);
        }
    }
    sparse_item_sums(m, i, theta, exp_neg_theta, (b, a), exp_b, two_pl)
}

/// What a Newton step of item `i` reads; for 1PL over a dense row, only that.
pub(super) fn item_step_sums(
    m: &ResponseMatrix,
    i: usize,
    theta: &[f64],
    exp_neg_theta: &[f64],
    (b, alpha): (f64, f64),
    two_pl: bool,
) -> ItemSums {
    if !two_pl {
        if let Some(row) = m.dense_item_row(i) {
            return dense_item_sums::<false>(row, theta, exp_neg_theta, b, b.exp());
        }
    }
    item_sums(m, i, theta, exp_neg_theta, (b, alpha), two_pl)
}

fn sparse_item_sums(
    m: &ResponseMatrix,
    i: usize,
    theta: &[f64],
    exp_neg_theta: &[f64],
    (b, a): (f64, f64),
    exp_b: f64,
    two_pl: bool,
) -> ItemSums {
    let mut s = ItemSums::default();
    let d = -a * b;
    // sum log(1 + e^-z) as the log of a running product: one logarithm per ~20 responses
    // instead of one each (the product is folded into the sum before it could overflow).
    let (mut product, mut log_sum) = (1.0f64, 0.0f64);
    m.for_item(i, |j, y| {
        let x = a * theta[j];
        let z = x + d;
        // One exponential (for 1PL, a product) serves the probability and the log
        // likelihood: y z - log(1 + e^z) = (y - 1) z - log(1 + e^-z).
        let e = if two_pl {
            (-z).exp()
        } else {
            exp_neg_theta[j] * exp_b
        };
        let p = 1.0 / (1.0 + e);
        let yf = y as u8 as f64;
        let w = p * (1.0 - p);
        let r = yf - p;
        let factor = 1.0 + e;
        if factor > 1e50 {
            log_sum += if e.is_finite() { factor.ln() } else { -z };
        } else {
            product *= factor;
            if product > 1e250 {
                log_sum += product.ln();
                product = 1.0;
            }
        }
        s.log_lik += (yf - 1.0) * z;
        s.resid += r;
        s.resid_x += r * x;
        s.w += w;
        s.wx += w * x;
        s.wxx += w * x * x;
        s.sq_resid += r * r;
        s.sq_std_resid += r * r / w.max(1e-300);
        s.n += 1;
        s.n_correct += y as usize;
    });
    s.log_lik -= log_sum + product.ln();
    s
}

/// [`item_sums`] for a 1PL item over one dense row, in four independent lanes (missing cells
/// weigh 0), so the loop pipelines instead of waiting on one chain of additions.
/// `FULL = false` keeps only what a 1PL Newton step and the convergence test read (log
/// likelihood, residual, information), a third of the work of the fit statistics.
fn dense_item_sums<const FULL: bool>(
    row: &[u8],
    theta: &[f64],
    exp_neg_theta: &[f64],
    b: f64,
    exp_b: f64,
) -> ItemSums {
    const L: usize = 4;
    let mut lane = [ItemSums::default(); L];
    let mut product = [1.0f64; L];
    let mut log_sum = [0.0f64; L];
    for (j, &y) in row.iter().enumerate() {
        let k = j % L;
        let observed = (y != MISSING) as u8 as f64;
        let yf = (y == 1) as u8 as f64;
        let z = theta[j] - b;
        let e = exp_neg_theta[j] * exp_b;
        let p = 1.0 / (1.0 + e);
        let w = p * (1.0 - p);
        let r = yf - p;
        let s = &mut lane[k];
        s.log_lik += observed * (yf - 1.0) * z;
        s.resid += observed * r;
        s.w += observed * w;
        if FULL {
            s.sq_resid += observed * r * r;
            s.sq_std_resid += observed * r * r / w.max(1e-300);
            s.n += (y != MISSING) as usize;
            s.n_correct += (y == 1) as usize;
        }
        // log(1 + e) of observed cells, as the log of a running product (see item_sums).
        let factor = if y != MISSING { 1.0 + e } else { 1.0 };
        if factor > 1e50 {
            log_sum[k] += if e.is_finite() { factor.ln() } else { -z };
        } else {
            product[k] *= factor;
            if product[k] > 1e250 {
                log_sum[k] += product[k].ln();
                product[k] = 1.0;
            }
        }
    }
    let mut total = ItemSums::default();
    for k in 0..L {
        let s = &lane[k];
        total.log_lik += s.log_lik - (log_sum[k] + product[k].ln());
        total.resid += s.resid;
        total.w += s.w;
        total.sq_resid += s.sq_resid;
        total.sq_std_resid += s.sq_std_resid;
        total.n += s.n;
        total.n_correct += s.n_correct;
    }
    total
}

pub(super) fn extreme_flag(correct: usize, n: usize) -> Option<Flag> {
    if n > 0 && correct == n {
        Some(Flag::AllCorrect)
    } else if correct == 0 {
        Some(Flag::AllWrong)
    } else {
        None
    }
}

/// Responses and correct responses of every model and every item.
pub(super) struct Counts {
    pub models: Vec<(usize, usize)>,
    pub items: Vec<(usize, usize)>,
}

impl Counts {
    pub fn of(m: &ResponseMatrix) -> Self {
        // (responses, correct) of each row, `visit(row, f)` calling f(_, correct) per response.
        fn per_row(
            rows: usize,
            visit: impl Fn(usize, &mut dyn FnMut(usize, bool)) + Sync,
        ) -> Vec<(usize, usize)> {
            (0..rows)
                .into_par_iter()
                .map(|r| {
                    let (mut n, mut c) = (0, 0);
                    visit(r, &mut |_, y| {
                        n += 1;
                        c += y as usize;
                    });
                    (n, c)
                })
                .collect()
        }
        Self {
            models: per_row(m.n_models(), |j, f| m.for_model(j, f)),
            items: per_row(m.n_items(), |i, f| m.for_item(i, f)),
        }
    }

    /// Starting values of every fit: logits of the smoothed proportions correct, abilities
    /// standardised to `ability_sd`, difficulties the negated item logits.
    pub fn start(&self, ability_sd: f64) -> (Vec<f64>, Vec<f64>) {
        let clamp = |c: usize, n: usize| ((c as f64 + 0.5) / (n as f64 + 1.0)).clamp(0.02, 0.98);
        let mut theta: Vec<f64> = self
            .models
            .iter()
            .map(|&(n, c)| logit(clamp(c, n)))
            .collect();
        let n_models = theta.len().max(1) as f64;
        let mean = theta.iter().sum::<f64>() / n_models;
        let sd = (theta.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n_models)
            .sqrt()
            .max(1e-3);
        for t in &mut theta {
            *t = (*t - mean) / sd * ability_sd;
        }
        let b = self
            .items
            .iter()
            .map(|&(n, c)| -logit(clamp(c, n)))
            .collect();
        (theta, b)
    }
}

/// Per-item sums at the point estimates `theta` and `items` = (b, log a).
pub(super) fn all_item_sums(
    m: &ResponseMatrix,
    theta: &[f64],
    items: &[(f64, f64)],
    two_pl: bool,
) -> Vec<ItemSums> {
    let exp_neg_theta: Vec<f64> = theta.iter().map(|t| (-t).exp()).collect();
    (0..m.n_items())
        .into_par_iter()
        .map(|i| item_sums(m, i, theta, &exp_neg_theta, items[i], two_pl))
        .collect()
}

/// Item rows of a fit: `difficulty_se[i]` is the method's own standard error.
pub(super) fn item_params(
    items: &[(f64, f64)],
    sums: &[ItemSums],
    difficulty_se: &[f64],
    prior: &ItemPrior,
    two_pl: bool,
) -> Vec<ItemParams> {
    items
        .iter()
        .zip(sums)
        .zip(difficulty_se)
        .map(|((&(b, alpha), s), &se)| {
            let n = s.n.max(1) as f64;
            ItemParams {
                difficulty: b,
                discrimination: if two_pl { alpha.exp() } else { 1.0 },
                guessing: 0.0,
                upper: 1.0,
                difficulty_se: se,
                n_responses: s.n,
                p_correct: s.n_correct as f64 / n,
                infit: if s.w > 0.0 {
                    s.sq_resid / s.w
                } else {
                    f64::NAN
                },
                outfit: s.sq_std_resid / n,
                flag: extreme_flag(s.n_correct, s.n)
                    .or((two_pl && prior.at_bound(alpha)).then_some(Flag::MaxDiscrimination)),
            }
        })
        .collect()
}

/// Ability rows of a fit: `ability_se[j]` is the method's own standard error.
pub(super) fn abilities(
    theta: &[f64],
    ability_se: &[f64],
    counts: &Counts,
    min_responses: usize,
) -> Vec<Ability> {
    theta
        .iter()
        .zip(ability_se)
        .zip(&counts.models)
        .map(|((&t, &se), &(n, c))| Ability {
            ability: t,
            ability_se: se,
            n_responses: n,
            flag: if n < min_responses {
                Some(Flag::FewResponses)
            } else {
                extreme_flag(c, n)
            },
        })
        .collect()
}

/// The information of each ability at the point estimates (the 2PL/1PL Fisher information),
/// plus the prior precision.
pub(super) fn ability_information(
    m: &ResponseMatrix,
    theta: &[f64],
    items: &[(f64, f64)],
    two_pl: bool,
    prior_precision: f64,
) -> Vec<f64> {
    // For 1PL, e^-(t - b) = e^-t e^b: no exponential per response.
    let exp_b: Vec<f64> = items.iter().map(|&(b, _)| b.exp()).collect();
    theta
        .par_iter()
        .enumerate()
        .map(|(j, &t)| {
            let mut info = prior_precision;
            if two_pl {
                m.for_model(j, |i, _| {
                    let (b, alpha) = items[i];
                    let a = alpha.exp();
                    let p = sigmoid(a * (t - b));
                    info += a * a * p * (1.0 - p);
                });
            } else {
                let exp_neg_t = (-t).exp();
                m.for_model(j, |i, _| {
                    let p = 1.0 / (1.0 + exp_neg_t * exp_b[i]);
                    info += p * (1.0 - p);
                });
            }
            info
        })
        .collect()
}

/// Largest change of a parameter in one Newton step, so extreme items cannot overshoot.
pub(super) const MAX_STEP: f64 = 1.0;

/// One Newton (Fisher scoring) step on an item's log posterior from its sums, with the step
/// of each coordinate capped at [`MAX_STEP`] and the slope held to the prior's bound. Returns
/// the new (b, log a) and the standard error of b.
///
/// 1PL: on b, the prior b ~ N(0, var_b).
///
/// 2PL: in slope-intercept form, z = a theta + d with a = e^alpha, on (alpha, d), the priors
/// alpha ~ N(0, var_alpha) (a lognormal slope, so a > 0) and d ~ N(0, var_b) (at a = 1 the
/// 1PL prior on b = -d). Why not on (alpha, b): an item that barely discriminates (a near 0)
/// has a well-determined intercept but a difficulty b = -d / a that the likelihood hardly
/// pins down, so steps in b crawl and bounce for hundreds of iterations; in (alpha, d) the
/// log likelihood is concave in d and nearly so in alpha. Gradient (sum r x - alpha /
/// var_alpha, sum r - d / var_b) and information [[sum w x^2 + 1/var_alpha, sum w x],
/// [sum w x, sum w + 1/var_b]] with x = a theta. The standard error of b = -d / a is the
/// delta method's, from the inverse of that information.
pub(super) fn item_newton(
    (b, alpha): (f64, f64),
    s: &ItemSums,
    prior: &ItemPrior,
    two_pl: bool,
) -> ((f64, f64), f64) {
    let var_b = prior.var_b;
    if !two_pl {
        let g = -s.resid - b / var_b;
        let info = s.w + 1.0 / var_b;
        return (
            (b + (g / info).clamp(-MAX_STEP, MAX_STEP), 0.0),
            1.0 / info.sqrt(),
        );
    }
    let step = slope_intercept_step((b, alpha), s, prior);
    (step.at(1.0), step.difficulty_se)
}

/// A 2PL Fisher-scoring step in (alpha, d) from (b, alpha) (see [`item_newton`]), each
/// coordinate capped at [`MAX_STEP`]; [`Self::at`] walks a fraction of it (step halving).
/// At the slope's bound, with the gradient pushing past it, alpha stays and d takes its own
/// Newton step (a projected Newton step: the active bound's coordinate is dropped).
pub(super) struct SlopeInterceptStep {
    pub alpha: f64,
    pub d: f64,
    pub d_alpha: f64,
    pub d_d: f64,
    pub max_alpha: f64,
    /// Of b at the step's origin.
    pub difficulty_se: f64,
}

impl SlopeInterceptStep {
    /// (b, alpha) a fraction `t` of the way along the step, alpha no further than its bound.
    pub fn at(&self, t: f64) -> (f64, f64) {
        let alpha = (self.alpha + t * self.d_alpha).min(self.max_alpha);
        (-(self.d + t * self.d_d) * (-alpha).exp(), alpha)
    }

    /// The largest change of a coordinate over the whole step.
    pub fn size(&self) -> f64 {
        self.d_alpha.abs().max(self.d_d.abs())
    }

    /// The first point along the step, whole and then halved up to `halvings` times, whose
    /// value (by `value`, which also returns what it computed there) is at least `current`;
    /// `None` when every trial falls short.
    pub fn first_no_worse<T>(
        &self,
        current: f64,
        halvings: usize,
        value: impl Fn((f64, f64)) -> (f64, T),
    ) -> Option<Accepted<T>> {
        let mut fraction = 1.0;
        for _ in 0..halvings {
            let point = self.at(fraction);
            let (v, extra) = value(point);
            if v >= current {
                return Some(Accepted {
                    point,
                    value: v,
                    extra,
                    fraction,
                });
            }
            fraction *= 0.5;
        }
        None
    }
}

/// A point a halved step accepted (see [`SlopeInterceptStep::first_no_worse`]).
pub(super) struct Accepted<T> {
    pub point: (f64, f64),
    pub value: f64,
    pub extra: T,
    /// The share of the whole step taken.
    pub fraction: f64,
}

pub(super) fn slope_intercept_step(
    (b, alpha): (f64, f64),
    s: &ItemSums,
    prior: &ItemPrior,
) -> SlopeInterceptStep {
    let (var_b, var_alpha) = (prior.var_b, prior.var_alpha);
    let a = alpha.exp();
    let d = -a * b;
    let (g_alpha, g_d) = (s.resid_x - alpha / var_alpha, s.resid - d / var_b);
    let (i_aa, i_dd, i_ad) = (s.wxx + 1.0 / var_alpha, s.w + 1.0 / var_b, s.wx);
    let det = i_aa * i_dd - i_ad * i_ad;
    // b = -d e^-alpha: db/dalpha = -b, db/dd = -1/a.
    let var_b_hat = (b * b * i_dd - 2.0 * b / a * i_ad + i_aa / (a * a)) / det;
    let (d_alpha, d_d) = if prior.at_bound(alpha) && g_alpha > 0.0 {
        (0.0, g_d / i_dd)
    } else {
        (
            (i_dd * g_alpha - i_ad * g_d) / det,
            (i_aa * g_d - i_ad * g_alpha) / det,
        )
    };
    SlopeInterceptStep {
        alpha,
        d,
        d_alpha: d_alpha.clamp(-MAX_STEP, MAX_STEP),
        d_d: d_d.clamp(-MAX_STEP, MAX_STEP),
        max_alpha: prior.max_alpha,
        difficulty_se: var_b_hat.sqrt(),
    }
}
