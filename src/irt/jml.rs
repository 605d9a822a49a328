//! Joint maximum a posteriori (JML with weak normal priors): alternating Newton steps, one
//! per model and one per item in each sweep, each half parallel over its rows with rayon.
//!
//! The 2PL item step is Fisher scoring on (log a, b), with z = a (theta - b):
//! gradient (sum (y - p) z - alpha / s_a^2, -a sum (y - p) - b / s_b^2) and information
//! [[sum w z^2 + 1/s_a^2, -a sum w z], [-a sum w z, a^2 sum w + 1/s_b^2]] with w = p (1 - p).
//! Steps are capped at one logit so extreme items and models cannot overshoot. The loop stops
//! when the log posterior changes by less than `tolerance` per response between sweeps. Every
//! reduction is summed in a fixed order, so a fit is bit-identical from run to run.

use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::matrix::MISSING;
use super::{sigmoid, Ability, Fit, FitOptions, IrtModel, ItemParams, ResponseMatrix, Result};

const MAX_STEP: f64 = 1.0;

fn logit(p: f64) -> f64 {
    (p / (1.0 - p)).ln()
}

/// Per-item sufficient sums at the current parameters.
#[derive(Default, Clone, Copy)]
struct ItemSums {
    log_lik: f64,
    resid: f64,
    resid_z: f64,
    w: f64,
    wz: f64,
    wzz: f64,
    sq_resid: f64,
    sq_std_resid: f64,
    n: usize,
    n_correct: usize,
}

pub fn fit(m: &ResponseMatrix, o: &FitOptions) -> Result<Fit> {
    let (n_models, n_items) = (m.n_models(), m.n_items());
    let pr = o.priors;
    let (var_theta, var_b, var_alpha) = (
        pr.ability_sd * pr.ability_sd,
        pr.difficulty_sd * pr.difficulty_sd,
        pr.log_discrimination_sd * pr.log_discrimination_sd,
    );
    let two_pl = o.model == IrtModel::TwoPl;

    // Start from the logits of the raw proportions, clamped away from 0 and 1.
    let model_counts: Vec<(usize, usize)> = (0..n_models)
        .into_par_iter()
        .map(|j| {
            let (mut n, mut c) = (0, 0);
            m.for_model(j, |_, y| {
                n += 1;
                c += y as usize;
            });
            (n, c)
        })
        .collect();
    let clamp = |c: usize, n: usize| ((c as f64 + 0.5) / (n as f64 + 1.0)).clamp(0.02, 0.98);
    let mut theta: Vec<f64> = model_counts
        .iter()
        .map(|&(n, c)| logit(clamp(c, n)))
        .collect();
    let mean = theta.iter().sum::<f64>() / n_models as f64;
    let sd = (theta.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n_models as f64)
        .sqrt()
        .max(1e-3);
    for t in &mut theta {
        *t = (*t - mean) / sd * pr.ability_sd;
    }
    let mut items: Vec<(f64, f64)> = (0..n_items) // (b, alpha = log a)
        .into_par_iter()
        .map(|i| {
            let (mut n, mut c) = (0, 0);
            m.for_item(i, |_, y| {
                n += 1;
                c += y as usize;
            });
            (-logit(clamp(c, n)), 0.0)
        })
        .collect();

    let started = Instant::now();
    let progress = Progress::new(o.progress);
    let n_responses = m.n_responses().max(1) as f64;
    let mut previous = f64::NEG_INFINITY;
    let mut converged = false;
    let mut iterations = 0;
    while iterations < o.max_iter {
        iterations += 1;
        // Abilities, items fixed.
        // Per-item constants of this sweep: for 1PL, e^(b - theta) = e^b e^-theta turns the
        // exponential of every response into a product.
        let slopes: Vec<f64> = items
            .iter()
            .map(|&(_, alpha)| if two_pl { alpha.exp() } else { 1.0 })
            .collect();
        let exp_b: Vec<f64> = items.iter().map(|&(b, _)| b.exp()).collect();
        theta.par_iter_mut().enumerate().for_each(|(j, t)| {
            let (mut g, mut h) = (-*t / var_theta, 1.0 / var_theta);
            if two_pl {
                m.for_model(j, |i, y| {
                    let a = slopes[i];
                    let p = sigmoid(a * (*t - items[i].0));
                    g += a * (y as u8 as f64 - p);
                    h += a * a * p * (1.0 - p);
                });
            } else if let Some(row) = m.dense_model_row(j) {
                let (dg, dh) = dense_ability_sums(row, (-*t).exp(), &exp_b);
                g += dg;
                h += dh;
            } else {
                let exp_neg_t = (-*t).exp();
                m.for_model(j, |i, y| {
                    let p = 1.0 / (1.0 + exp_neg_t * exp_b[i]);
                    g += y as u8 as f64 - p;
                    h += p * (1.0 - p);
                });
            }
            *t += (g / h).clamp(-MAX_STEP, MAX_STEP);
        });
        let exp_neg_theta: Vec<f64> = theta.iter().map(|t| (-t).exp()).collect();
        // Items, abilities fixed; the log likelihood of (new theta, old items) comes free.
        let sums: Vec<ItemSums> = (0..n_items)
            .into_par_iter()
            .map(|i| item_sums(m, i, &theta, &exp_neg_theta, items[i], two_pl))
            .collect();
        let log_lik: f64 = sums.iter().map(|s| s.log_lik).sum();
        let log_posterior =
            log_lik + log_prior(&theta, &items, var_theta, var_b, var_alpha, two_pl);
        items.par_iter_mut().zip(&sums).for_each(|(item, s)| {
            *item = item_step(*item, s, var_b, var_alpha, two_pl);
        });
        align_to_priors(&mut theta, &mut items, var_theta, var_b, var_alpha, two_pl);
        progress.tick(iterations, log_posterior, started.elapsed());
        if (log_posterior - previous).abs() < o.tolerance * n_responses {
            converged = true;
            break;
        }
        previous = log_posterior;
    }
    progress.finish();

    // Final pass at the estimates: standard errors, fit statistics, log likelihood.
    let exp_neg_theta: Vec<f64> = theta.iter().map(|t| (-t).exp()).collect();
    let sums: Vec<ItemSums> = (0..n_items)
        .into_par_iter()
        .map(|i| item_sums(m, i, &theta, &exp_neg_theta, items[i], two_pl))
        .collect();
    let log_likelihood: f64 = sums.iter().map(|s| s.log_lik).sum();
    let item_params = items
        .iter()
        .zip(&sums)
        .map(|(&(b, alpha), s)| {
            let a = if two_pl { alpha.exp() } else { 1.0 };
            let difficulty_se = if two_pl {
                let (i_aa, i_bb, i_ab) = (
                    s.wzz + 1.0 / var_alpha,
                    a * a * s.w + 1.0 / var_b,
                    -a * s.wz,
                );
                (i_aa / (i_aa * i_bb - i_ab * i_ab)).sqrt()
            } else {
                1.0 / (s.w + 1.0 / var_b).sqrt()
            };
            let n = s.n.max(1) as f64;
            ItemParams {
                difficulty: b,
                discrimination: a,
                difficulty_se,
                n_responses: s.n,
                p_correct: s.n_correct as f64 / n,
                infit: if s.w > 0.0 {
                    s.sq_resid / s.w
                } else {
                    f64::NAN
                },
                outfit: s.sq_std_resid / n,
                flag: extreme_flag(s.n_correct, s.n),
            }
        })
        .collect();
    let abilities = theta
        .par_iter()
        .enumerate()
        .map(|(j, &t)| {
            let mut info = 1.0 / var_theta;
            m.for_model(j, |i, _| {
                let (b, alpha) = items[i];
                let a = if two_pl { alpha.exp() } else { 1.0 };
                let p = sigmoid(a * (t - b));
                info += a * a * p * (1.0 - p);
            });
            let (n, c) = model_counts[j];
            let flag = if n < o.min_responses {
                Some("few_responses")
            } else {
                extreme_flag(c, n)
            };
            Ability {
                ability: t,
                ability_se: 1.0 / info.sqrt(),
                n_responses: n,
                flag,
            }
        })
        .collect();
    let log_posterior =
        log_likelihood + log_prior(&theta, &items, var_theta, var_b, var_alpha, two_pl);
    Ok(Fit {
        items: item_params,
        abilities,
        log_likelihood,
        log_posterior,
        iterations,
        converged,
    })
}

/// The likelihood does not change when every theta and b move by the same amount (and, for
/// 2PL, when theta and b are scaled by s and a by 1/s); only the priors pin these directions
/// down, and alternating steps crawl along them. Jump to the prior's optimum along each.
fn align_to_priors(
    theta: &mut [f64],
    items: &mut [(f64, f64)],
    var_theta: f64,
    var_b: f64,
    var_alpha: f64,
    two_pl: bool,
) {
    let (n_models, n_items) = (theta.len() as f64, items.len() as f64);
    let sum_theta: f64 = theta.iter().sum();
    let sum_b: f64 = items.iter().map(|i| i.0).sum();
    let shift = -(sum_theta / var_theta + sum_b / var_b) / (n_models / var_theta + n_items / var_b);
    theta.iter_mut().for_each(|t| *t += shift);
    items.iter_mut().for_each(|i| i.0 += shift);
    if !two_pl {
        return;
    }
    // f(u) = e^{2u} Q / 2 + sum (alpha - u)^2 / (2 var_alpha), u = log s, with
    // Q = sum theta^2 / var_theta + sum b^2 / var_b; a few Newton steps find its minimum.
    let q = theta.iter().map(|t| t * t).sum::<f64>() / var_theta
        + items.iter().map(|i| i.0 * i.0).sum::<f64>() / var_b;
    let sum_alpha: f64 = items.iter().map(|i| i.1).sum();
    let mut u = 0.0f64;
    for _ in 0..20 {
        let g = (2.0 * u).exp() * q - (sum_alpha - n_items * u) / var_alpha;
        let h = 2.0 * (2.0 * u).exp() * q + n_items / var_alpha;
        let step = (g / h).clamp(-0.5, 0.5);
        u -= step;
        if step.abs() < 1e-12 {
            break;
        }
    }
    let s = u.exp();
    theta.iter_mut().for_each(|t| *t *= s);
    items.iter_mut().for_each(|i| {
        i.0 *= s;
        i.1 -= u;
    });
}

/// The 1PL ability gradient and information of one dense row, without branches: missing
/// cells are weighted 0, and four independent partial sums let the loop pipeline.
fn dense_ability_sums(row: &[u8], exp_neg_t: f64, exp_b: &[f64]) -> (f64, f64) {
    let (mut g, mut h) = ([0.0f64; 4], [0.0f64; 4]);
    let mut cells = row.chunks_exact(4);
    let mut consts = exp_b.chunks_exact(4);
    for (ys, es) in (&mut cells).zip(&mut consts) {
        for k in 0..4 {
            let observed = (ys[k] != MISSING) as u8 as f64;
            let p = 1.0 / (1.0 + exp_neg_t * es[k]);
            g[k] += observed * ((ys[k] == 1) as u8 as f64 - p);
            h[k] += observed * p * (1.0 - p);
        }
    }
    for (&y, &e) in cells.remainder().iter().zip(consts.remainder()) {
        let observed = (y != MISSING) as u8 as f64;
        let p = 1.0 / (1.0 + exp_neg_t * e);
        g[0] += observed * ((y == 1) as u8 as f64 - p);
        h[0] += observed * p * (1.0 - p);
    }
    ((g[0] + g[1]) + (g[2] + g[3]), (h[0] + h[1]) + (h[2] + h[3]))
}

/// [`item_sums`] for a 1PL item over one dense row, in four independent lanes (missing cells
/// weigh 0), so the loop pipelines instead of waiting on one chain of additions.
fn dense_item_sums(
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
        s.resid_z += observed * r * z;
        s.w += observed * w;
        s.wz += observed * w * z;
        s.wzz += observed * w * z * z;
        s.sq_resid += observed * r * r;
        s.sq_std_resid += observed * r * r / w.max(1e-300);
        s.n += (y != MISSING) as usize;
        s.n_correct += (y == 1) as usize;
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
        total.resid_z += s.resid_z;
        total.w += s.w;
        total.wz += s.wz;
        total.wzz += s.wzz;
        total.sq_resid += s.sq_resid;
        total.sq_std_resid += s.sq_std_resid;
        total.n += s.n;
        total.n_correct += s.n_correct;
    }
    total
}

fn extreme_flag(correct: usize, n: usize) -> Option<&'static str> {
    if n > 0 && correct == n {
        Some("all_correct")
    } else if correct == 0 {
        Some("all_wrong")
    } else {
        None
    }
}

fn item_sums(
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
            return dense_item_sums(row, theta, exp_neg_theta, b, exp_b);
        }
    }
    let mut s = ItemSums::default();
    // sum log(1 + e^-z) as the log of a running product: one logarithm per ~20 responses
    // instead of one each (the product is folded into the sum before it could overflow).
    let (mut product, mut log_sum) = (1.0f64, 0.0f64);
    m.for_item(i, |j, y| {
        let z = a * (theta[j] - b);
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
        s.resid_z += r * z;
        s.w += w;
        s.wz += w * z;
        s.wzz += w * z * z;
        s.sq_resid += r * r;
        s.sq_std_resid += r * r / w.max(1e-300);
        s.n += 1;
        s.n_correct += y as usize;
    });
    s.log_lik -= log_sum + product.ln();
    s
}

fn item_step(
    (b, alpha): (f64, f64),
    s: &ItemSums,
    var_b: f64,
    var_alpha: f64,
    two_pl: bool,
) -> (f64, f64) {
    if !two_pl {
        // d/db of the log posterior and its negated second derivative.
        let g = -s.resid - b / var_b;
        let c = s.w + 1.0 / var_b;
        return (b + (g / c).clamp(-MAX_STEP, MAX_STEP), 0.0);
    }
    let a = alpha.exp();
    let (g_alpha, g_b) = (s.resid_z - alpha / var_alpha, -a * s.resid - b / var_b);
    let (i_aa, i_bb, i_ab) = (
        s.wzz + 1.0 / var_alpha,
        a * a * s.w + 1.0 / var_b,
        -a * s.wz,
    );
    let det = i_aa * i_bb - i_ab * i_ab;
    let d_alpha = (i_bb * g_alpha - i_ab * g_b) / det;
    let d_b = (i_aa * g_b - i_ab * g_alpha) / det;
    (
        b + d_b.clamp(-MAX_STEP, MAX_STEP),
        alpha + d_alpha.clamp(-MAX_STEP, MAX_STEP),
    )
}

fn log_prior(
    theta: &[f64],
    items: &[(f64, f64)],
    var_theta: f64,
    var_b: f64,
    var_alpha: f64,
    two_pl: bool,
) -> f64 {
    let normal = |x: f64, var: f64| -0.5 * x * x / var - 0.5 * (std::f64::consts::TAU * var).ln();
    let mut lp: f64 = theta.iter().map(|&t| normal(t, var_theta)).sum();
    lp += items.iter().map(|&(b, _)| normal(b, var_b)).sum::<f64>();
    if two_pl {
        lp += items
            .iter()
            .map(|&(_, alpha)| normal(alpha, var_alpha))
            .sum::<f64>();
    }
    lp
}

/// A progress line on stderr, shown only once a fit has run for a second.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Self {
            bar: enabled.then(|| {
                let bar = indicatif::ProgressBar::hidden();
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{spinner} irt_fit: sweep {pos}, {msg} [{elapsed}]",
                    )
                    .expect("valid template"),
                );
                bar
            }),
        }
    }

    fn tick(&self, sweep: usize, log_posterior: f64, elapsed: Duration) {
        if let Some(bar) = &self.bar {
            if elapsed > Duration::from_secs(1) && bar.is_hidden() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            bar.set_position(sweep as u64);
            bar.set_message(format!("log posterior {log_posterior:.1}"));
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::simulate::{simulate, SimulationSpec};
    use super::super::{fit as fit_matrix, FitOptions, IrtModel, MatrixBuilder, Priors};
    use crate::stats::spearman;

    fn quiet(model: IrtModel) -> FitOptions {
        FitOptions {
            model,
            progress: false,
            ..Default::default()
        }
    }

    /// Two models, two items, each model right on exactly one item: by symmetry every
    /// parameter is 0, and the standard errors have closed forms.
    #[test]
    fn symmetric_case_has_closed_form() {
        let mut b = MatrixBuilder::new();
        b.push("m0", "i0", true);
        b.push("m0", "i1", false);
        b.push("m1", "i0", false);
        b.push("m1", "i1", true);
        let m = b.build("t").unwrap();
        let f = fit_matrix(&m, &quiet(IrtModel::OnePl)).unwrap();
        assert!(f.converged);
        for a in &f.abilities {
            assert!(a.ability.abs() < 1e-9, "{a:?}");
            // 1 / sqrt(sum p(1-p) + 1/sd^2) = 1 / sqrt(2 * 0.25 + 1)
            assert!((a.ability_se - 1.0 / 1.5f64.sqrt()).abs() < 1e-9);
        }
        for i in &f.items {
            assert!(i.difficulty.abs() < 1e-9);
            assert!((i.difficulty_se - 1.0 / (0.5f64 + 1.0 / 9.0).sqrt()).abs() < 1e-9);
            assert_eq!((i.p_correct, i.n_responses), (0.5, 2));
            // Residuals are +-0.5 with variance 0.25: both mean squares are 1.
            assert!((i.infit - 1.0).abs() < 1e-12 && (i.outfit - 1.0).abs() < 1e-12);
        }
        // log likelihood: four responses at p = 0.5.
        assert!((f.log_likelihood - 4.0 * 0.5f64.ln()).abs() < 1e-9);
    }

    /// Mirrored items get mirrored difficulties.
    #[test]
    fn mirrored_items_mirror() {
        let mut b = MatrixBuilder::new();
        let pattern = [
            (true, false),
            (true, true),
            (false, false),
            (true, false),
            (false, true),
            (true, false),
        ];
        for (j, (easy, hard)) in pattern.iter().enumerate() {
            let m = format!("m{j}");
            b.push(&m, "easy", *easy);
            b.push(&m, "hard", *hard);
        }
        let f = fit_matrix(&b.build("t").unwrap(), &quiet(IrtModel::OnePl)).unwrap();
        let (e, h) = (f.items[0].difficulty, f.items[1].difficulty);
        assert!(e < 0.0 && h > 0.0, "{e} {h}");
    }

    fn recovery(model: IrtModel) -> (f64, f64, f64) {
        let sim = simulate(SimulationSpec {
            n_models: 1500,
            n_items: 150,
            model,
            missing: 0.1,
            ..Default::default()
        });
        let f = fit_matrix(&sim.matrix().unwrap(), &quiet(model)).unwrap();
        assert!(f.converged, "{} sweeps", f.iterations);
        let est: Vec<f64> = f.items.iter().map(|i| i.difficulty).collect();
        let rho = spearman(&est, &sim.difficulties).unwrap();
        // The location is fixed by the ability prior; align it before measuring error.
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let thetas: Vec<f64> = f.abilities.iter().map(|a| a.ability).collect();
        let shift = mean(&sim.abilities) - mean(&thetas);
        let rmse = (est
            .iter()
            .zip(&sim.difficulties)
            .map(|(e, t)| (e + shift - t).powi(2))
            .sum::<f64>()
            / est.len() as f64)
            .sqrt();
        let a_est: Vec<f64> = f.items.iter().map(|i| i.discrimination).collect();
        let rho_a = spearman(&a_est, &sim.discriminations).unwrap_or(1.0);
        (rho, rmse, rho_a)
    }

    #[test]
    fn recovers_1pl_difficulties() {
        let (rho, rmse, _) = recovery(IrtModel::OnePl);
        assert!(rho > 0.995, "spearman {rho}");
        assert!(rmse < 0.2, "rmse {rmse}");
    }

    #[test]
    fn recovers_2pl_parameters() {
        let (rho, _, rho_a) = recovery(IrtModel::TwoPl);
        assert!(rho > 0.99, "spearman {rho}");
        assert!(rho_a > 0.8, "discrimination spearman {rho_a}");
    }

    /// Items everyone got right or wrong and models with one response: finite, shrunk, flagged.
    #[test]
    fn extremes_are_finite_and_flagged() {
        let mut b = MatrixBuilder::new();
        for j in 0..30 {
            let m = format!("m{j}");
            b.push(&m, "trivial", true);
            b.push(&m, "impossible", false);
            b.push(&m, "normal", j % 3 == 0);
        }
        b.push("lonely", "normal", true);
        for model in [IrtModel::OnePl, IrtModel::TwoPl] {
            let f = fit_matrix(&b.build_ref("t"), &quiet(model)).unwrap();
            for i in &f.items {
                assert!(
                    i.difficulty.is_finite() && i.difficulty_se.is_finite(),
                    "{i:?}"
                );
            }
            assert_eq!(f.items[0].flag, Some("all_correct"));
            assert_eq!(f.items[1].flag, Some("all_wrong"));
            assert_eq!(f.items[2].flag, None);
            assert!(
                f.items[0].difficulty < f.items[2].difficulty
                    && f.items[2].difficulty < f.items[1].difficulty
            );
            let lonely = f.abilities.last().unwrap();
            assert_eq!(lonely.flag, Some("few_responses"));
            assert!(lonely.ability.is_finite() && lonely.ability_se.is_finite());
        }
    }

    #[test]
    fn fits_are_bit_identical() {
        let sim = simulate(SimulationSpec {
            n_models: 300,
            n_items: 50,
            model: IrtModel::TwoPl,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        let one = fit_matrix(
            &m,
            &FitOptions {
                threads: Some(1),
                ..quiet(IrtModel::TwoPl)
            },
        )
        .unwrap();
        let two = fit_matrix(
            &m,
            &FitOptions {
                threads: Some(2),
                ..quiet(IrtModel::TwoPl)
            },
        )
        .unwrap();
        assert_eq!(one, two);
        assert_eq!(one, fit_matrix(&m, &quiet(IrtModel::TwoPl)).unwrap());
    }

    #[test]
    fn stronger_priors_shrink() {
        let sim = simulate(SimulationSpec {
            n_models: 200,
            n_items: 40,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        let spread = |sd: f64| {
            let o = FitOptions {
                priors: Priors {
                    difficulty_sd: sd,
                    ..Default::default()
                },
                ..quiet(IrtModel::OnePl)
            };
            let f = fit_matrix(&m, &o).unwrap();
            f.items.iter().map(|i| i.difficulty.abs()).sum::<f64>()
        };
        assert!(spread(0.3) < spread(3.0));
    }
}
