//! Mean-field Gaussian variational inference for py-irt's 1PL model, the paper's tool:
//! q(theta_j) = N(m_j, v_j), q(b_i) = N(m_i, v_i), and for the hierarchical priors
//! q(mu) = N(., .) and q(u) = Gamma(alpha, beta) for each of theta and b.
//!
//! py-irt maximises the same evidence lower bound (ELBO) by stochastic gradients from
//! sampled draws, which is why its answers change with the seed and, with the vague prior's
//! initial scale of 1,000 for b, stop short of the optimum after 2,000 epochs. Here the ELBO
//! is maximised by coordinate ascent with no sampling: the expectations over
//! z = theta - b ~ N(m_j - m_i, v_j + v_i) come from a Gauss-Hermite rule; each mean takes a
//! Newton step, each variance its fixed point v = 1 / (sum E[p(1 - p)] + prior precision)
//! (where the ELBO's derivative in v vanishes); the hyper-factors have closed-form (mu) or
//! one-dimensional (u) updates. Every sum runs in a fixed order, so fits are bit-identical.

use std::f64::consts::{E, TAU};
use std::time::Instant;

use rayon::prelude::*;

use super::progress::Progress;
use super::quadrature::{digamma, ln_gamma, NormalRule};
use super::summary::{abilities, all_item_sums, item_params, Counts, ItemPrior, LogTerms};
use super::{Fit, FitOptions, IrtError, IrtModel, ResponseMatrix, Result};

const MAX_STEP: f64 = 1.0;
/// Most Gauss-Hermite points per expectation.
pub const MAX_POINTS: usize = super::summary::MAX_NODES;
/// Default Gauss-Hermite points: exact to degree 13, far below the fit's own error for the
/// posterior spreads of real data (v_j + v_i well under 1).
pub const DEFAULT_POINTS: usize = 7;
/// Standard deviation of py-irt's hyperprior on mu.
const HYPER_MEAN_SD: f64 = 1e6;

pub fn fit(m: &ResponseMatrix, o: &FitOptions) -> Result<Fit> {
    if o.model == IrtModel::TwoPl {
        return Err(IrtError::BadOption {
            key: "method".into(),
            message: "'vi' fits the 1PL model (py-irt's default model, the paper's); for 2PL use \
                      'mml' or 'jml'"
                .into(),
        });
    }
    let points = o.quadrature_points.unwrap_or(DEFAULT_POINTS);
    if !(1..=MAX_POINTS).contains(&points) {
        return Err(IrtError::BadOption {
            key: "quadrature_points".into(),
            message: format!("'vi' takes 1 to {MAX_POINTS} points, got {points}"),
        });
    }
    let rule = Rule::new(NormalRule::gauss_hermite(points));
    let pr = o.priors;
    let (mut prior_theta, mut prior_b) = if pr.hierarchical {
        (GroupPrior::hierarchical(), GroupPrior::hierarchical())
    } else {
        (
            GroupPrior::Fixed {
                var: pr.ability_sd * pr.ability_sd,
            },
            GroupPrior::Fixed {
                var: pr.difficulty_sd * pr.difficulty_sd,
            },
        )
    };

    let counts = Counts::of(m);
    let (mut theta, mut b) = counts.start(pr.ability_sd);
    let mut v_theta: Vec<f64> = counts
        .models
        .iter()
        .map(|&(n, _)| 1.0 / (0.2 * n as f64 + 1.0))
        .collect();
    let mut v_b: Vec<f64> = counts
        .items
        .iter()
        .map(|&(n, _)| 1.0 / (0.2 * n as f64 + 1.0))
        .collect();
    prior_theta.update(&theta, &v_theta);
    prior_b.update(&b, &v_b);

    let started = Instant::now();
    let progress = Progress::new(o.progress, "ELBO");
    let n_responses = m.n_responses().max(1) as f64;
    let mut previous = f64::NEG_INFINITY;
    let (mut converged, mut iterations, mut elbo) = (false, 0, f64::NEG_INFINITY);
    while iterations < o.max_iter {
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled { iterations });
        }
        iterations += 1;
        // Abilities, items fixed.
        let (mean, precision) = prior_theta.moments();
        theta
            .par_iter_mut()
            .zip(v_theta.par_iter_mut())
            .enumerate()
            .for_each(|(j, (mj, vj))| {
                // Cancelled mid-sweep: the rest of the sweep is skipped (and discarded).
                if o.cancel.is_set() {
                    return;
                }
                let mut s = RowSums::default();
                m.for_model(j, |i, y| {
                    rule.accumulate(*mj - b[i], *vj + v_b[i], y, &mut s)
                });
                let g = s.resid - precision * (*mj - mean);
                let h = s.w + precision;
                *mj += (g / h).clamp(-MAX_STEP, MAX_STEP);
                *vj = 1.0 / h;
            });
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled {
                iterations: iterations - 1,
            });
        }
        prior_theta.update(&theta, &v_theta);
        // Items, abilities fixed; the expected log likelihood of (new theta, old b) comes free.
        let (mean, precision) = prior_b.moments();
        let sums: Vec<(RowSums, f64)> = (0..m.n_items())
            .into_par_iter()
            .map(|i| {
                if o.cancel.is_set() {
                    return Default::default();
                }
                let mut s = RowSums::default();
                let mut log_terms = LogTerms::new(rule.len());
                m.for_item(i, |j, y| {
                    rule.accumulate_with_log(
                        theta[j] - b[i],
                        v_theta[j] + v_b[i],
                        y,
                        &mut s,
                        &mut log_terms,
                    )
                });
                let expected_log_lik = s.y_minus_one_mu - log_terms.weighted_sum(&rule.weights);
                (s, expected_log_lik)
            })
            .collect();
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled {
                iterations: iterations - 1,
            });
        }
        elbo = sums.iter().map(|(_, l)| l).sum::<f64>()
            + prior_theta.expected_log_joint(&theta, &v_theta)
            + prior_b.expected_log_joint(&b, &v_b)
            + normal_entropy(&v_theta)
            + normal_entropy(&v_b);
        b.par_iter_mut()
            .zip(v_b.par_iter_mut())
            .zip(&sums)
            .for_each(|((mi, vi), (s, _))| {
                let g = -s.resid - precision * (*mi - mean);
                let h = s.w + precision;
                *mi += (g / h).clamp(-MAX_STEP, MAX_STEP);
                *vi = 1.0 / h;
            });
        prior_b.update(&b, &v_b);
        align_location(&mut theta, &mut b, &mut prior_theta, &mut prior_b);
        progress.tick(iterations, elbo, started.elapsed());
        if (elbo - previous).abs() < o.tolerance * n_responses {
            converged = true;
            break;
        }
        previous = elbo;
    }
    progress.finish();

    let items: Vec<(f64, f64)> = b.iter().map(|&b| (b, 0.0)).collect();
    let sums = all_item_sums(m, &theta, &items, false);
    let log_likelihood = sums.iter().map(|s| s.log_lik).sum();
    let difficulty_se: Vec<f64> = v_b.iter().map(|v| v.sqrt()).collect();
    let ability_se: Vec<f64> = v_theta.iter().map(|v| v.sqrt()).collect();
    Ok(Fit {
        items: item_params(
            &items,
            &sums,
            &difficulty_se,
            &ItemPrior::of(&o.priors),
            false,
        ),
        abilities: abilities(&theta, &ability_se, &counts, o.min_responses),
        log_likelihood,
        objective: elbo,
        iterations,
        converged,
    })
}

/// Sums of one row at the current factors.
#[derive(Default, Clone, Copy)]
struct RowSums {
    /// sum (y - E[p]): the gradient of the expected log likelihood in the row's mean.
    resid: f64,
    /// sum E[p (1 - p)]: minus its second derivative, and twice minus its derivative in v.
    w: f64,
    /// sum (y - 1) E[z], the linear part of E[log p(y | z)] = (y - 1) E[z] - E[log(1 + e^-z)].
    y_minus_one_mu: f64,
}

/// A Gauss-Hermite rule for N(mu, v), laid out for the symmetric evaluation of its nodes.
struct Rule {
    nodes: Vec<f64>,
    weights: Vec<f64>,
    max_node: f64,
}

impl Rule {
    fn new(rule: NormalRule) -> Self {
        Self {
            max_node: rule.nodes.iter().fold(0.0f64, |m, x| m.max(x.abs())),
            nodes: rule.nodes,
            weights: rule.weights,
        }
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// e^-z at every node z_k = mu + sd x_k. The nodes are symmetric, so one exponential
    /// serves a pair: e^-(mu +- sd x) = e^-mu e^-+(sd x).
    #[inline]
    // Nodes, weights and exponentials are parallel arrays walked in lockstep.
    #[allow(clippy::needless_range_loop)]
    fn exps(&self, mu: f64, sd: f64, out: &mut [f64; MAX_POINTS]) {
        let n = self.nodes.len();
        if mu.abs() + sd * self.max_node < 600.0 {
            let e_mu = (-mu).exp();
            for k in 0..n / 2 {
                let t = (-sd * self.nodes[n - 1 - k]).exp();
                out[n - 1 - k] = e_mu * t;
                out[k] = e_mu / t;
            }
            if n % 2 == 1 {
                out[n / 2] = e_mu;
            }
        } else {
            for k in 0..n {
                out[k] = (-(mu + sd * self.nodes[k])).exp();
            }
        }
    }

    /// Adds one response with z ~ N(mu, v) to the row's sums.
    #[inline]
    // Nodes, weights and exponentials are parallel arrays walked in lockstep.
    #[allow(clippy::needless_range_loop)]
    fn accumulate(&self, mu: f64, v: f64, y: bool, s: &mut RowSums) {
        let mut e = [0.0; MAX_POINTS];
        self.exps(mu, v.sqrt(), &mut e);
        let (mut ep, mut ew) = (0.0, 0.0);
        for k in 0..self.nodes.len() {
            let p = 1.0 / (1.0 + e[k]);
            ep += self.weights[k] * p;
            ew += self.weights[k] * p * (1.0 - p);
        }
        s.resid += y as u8 as f64 - ep;
        s.w += ew;
    }

    /// [`Self::accumulate`], also collecting the expected log likelihood's terms.
    #[inline]
    // Nodes, weights and exponentials are parallel arrays walked in lockstep.
    #[allow(clippy::needless_range_loop)]
    fn accumulate_with_log(&self, mu: f64, v: f64, y: bool, s: &mut RowSums, logs: &mut LogTerms) {
        let mut e = [0.0; MAX_POINTS];
        let sd = v.sqrt();
        self.exps(mu, sd, &mut e);
        let (mut ep, mut ew) = (0.0, 0.0);
        for k in 0..self.nodes.len() {
            let p = 1.0 / (1.0 + e[k]);
            ep += self.weights[k] * p;
            ew += self.weights[k] * p * (1.0 - p);
            logs.add(k, e[k], mu + sd * self.nodes[k]);
        }
        let yf = y as u8 as f64;
        s.resid += yf - ep;
        s.w += ew;
        s.y_minus_one_mu += (yf - 1.0) * mu;
    }
}

/// The prior of a group of parameters (all abilities, or all difficulties).
#[derive(Debug, Clone, Copy, PartialEq)]
enum GroupPrior {
    /// x ~ N(0, var).
    Fixed { var: f64 },
    /// x ~ N(mu, 1/u^2), mu ~ N(0, 1e6^2), u ~ Gamma(1, 1); q(mu) = N(mu_mean, mu_var),
    /// q(u) = Gamma(alpha, beta) (rate beta).
    Hierarchical {
        mu_mean: f64,
        mu_var: f64,
        alpha: f64,
        beta: f64,
    },
}

impl GroupPrior {
    /// py-irt's initial guide values.
    fn hierarchical() -> Self {
        Self::Hierarchical {
            mu_mean: 0.0,
            mu_var: 1e4,
            alpha: 1.0,
            beta: 1.0,
        }
    }

    /// The mean and precision each member's factor sees: E[mu] and E[u^2].
    fn moments(&self) -> (f64, f64) {
        match *self {
            Self::Fixed { var } => (0.0, 1.0 / var),
            Self::Hierarchical {
                mu_mean,
                alpha,
                beta,
                ..
            } => (mu_mean, alpha * (alpha + 1.0) / (beta * beta)),
        }
    }

    /// The optimal q(mu) given the members, then the best Gamma q(u).
    fn update(&mut self, means: &[f64], vars: &[f64]) {
        let Self::Hierarchical {
            mu_mean,
            mu_var,
            alpha,
            beta,
        } = self
        else {
            return;
        };
        let n = means.len() as f64;
        let u2 = *alpha * (*alpha + 1.0) / (*beta * *beta);
        let precision = 1.0 / (HYPER_MEAN_SD * HYPER_MEAN_SD) + n * u2;
        *mu_var = 1.0 / precision;
        *mu_mean = u2 * means.iter().sum::<f64>() / precision;
        let spread: f64 = means
            .iter()
            .zip(vars)
            .map(|(m, v)| (m - *mu_mean).powi(2) + v + *mu_var)
            .sum();
        (*alpha, *beta) = gamma_factor(n, spread);
    }

    /// sum_j E[log p(x_j | hyper)] + E[log p(hyper)] + H[q(hyper)].
    fn expected_log_joint(&self, means: &[f64], vars: &[f64]) -> f64 {
        match *self {
            Self::Fixed { var } => means
                .iter()
                .zip(vars)
                .map(|(m, v)| -0.5 * (TAU * var).ln() - 0.5 * (m * m + v) / var)
                .sum(),
            Self::Hierarchical {
                mu_mean,
                mu_var,
                alpha,
                beta,
            } => {
                let n = means.len() as f64;
                let spread: f64 = means
                    .iter()
                    .zip(vars)
                    .map(|(m, v)| (m - mu_mean).powi(2) + v + mu_var)
                    .sum();
                let hyper_var = HYPER_MEAN_SD * HYPER_MEAN_SD;
                gamma_objective(n, spread, alpha, beta)
                    - 0.5 * n * TAU.ln()
                    - 0.5 * (TAU * hyper_var).ln()
                    - 0.5 * (mu_mean * mu_mean + mu_var) / hyper_var
                    + 0.5 * (TAU * E * mu_var).ln()
            }
        }
    }

    fn shift_mean(&mut self, c: f64) {
        if let Self::Hierarchical { mu_mean, .. } = self {
            *mu_mean += c;
        }
    }
}

/// The terms of the ELBO that involve q(u) = Gamma(alpha, beta), for n members with
/// sum E[(x - mu)^2] = spread: n E[log u] - spread E[u^2] / 2 + E[log Gamma(u; 1, 1)] + H[q(u)].
fn gamma_objective(n: f64, spread: f64, alpha: f64, beta: f64) -> f64 {
    let e_log_u = digamma(alpha) - beta.ln();
    n * e_log_u - 0.5 * spread * alpha * (alpha + 1.0) / (beta * beta) - alpha / beta
        + (alpha - beta.ln() + ln_gamma(alpha) + (1.0 - alpha) * digamma(alpha))
}

/// The Gamma factor maximising [`gamma_objective`]: for a given alpha the best beta solves
/// (n + 1) beta^2 - alpha beta - spread alpha (alpha + 1) = 0; alpha by golden-section search
/// on its logarithm.
fn gamma_factor(n: f64, spread: f64) -> (f64, f64) {
    let spread = spread.max(1e-300);
    let beta_for = |alpha: f64| {
        (alpha + (alpha * alpha + 4.0 * (n + 1.0) * spread * alpha * (alpha + 1.0)).sqrt())
            / (2.0 * (n + 1.0))
    };
    let objective = |log_alpha: f64| {
        let alpha = log_alpha.exp();
        gamma_objective(n, spread, alpha, beta_for(alpha))
    };
    let (mut lo, mut hi) = (1e-3f64.ln(), (1e3 * (n + 1.0)).ln());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let mut x1 = hi - ratio * (hi - lo);
    let mut x2 = lo + ratio * (hi - lo);
    let (mut f1, mut f2) = (objective(x1), objective(x2));
    for _ in 0..120 {
        if f1 < f2 {
            lo = x1;
            x1 = x2;
            f1 = f2;
            x2 = lo + ratio * (hi - lo);
            f2 = objective(x2);
        } else {
            hi = x2;
            x2 = x1;
            f2 = f1;
            x1 = hi - ratio * (hi - lo);
            f1 = objective(x1);
        }
    }
    let alpha = (0.5 * (lo + hi)).exp();
    (alpha, beta_for(alpha))
}

fn normal_entropy(vars: &[f64]) -> f64 {
    vars.iter().map(|v| 0.5 * (TAU * E * v).ln()).sum()
}

/// The likelihood depends on theta - b only: moving every mean (and the hyper means) by the
/// same amount changes the ELBO only through the priors. Jump to their optimum along it.
fn align_location(
    theta: &mut [f64],
    b: &mut [f64],
    prior_theta: &mut GroupPrior,
    prior_b: &mut GroupPrior,
) {
    let shift = match (*prior_theta, *prior_b) {
        (GroupPrior::Fixed { var: var_theta }, GroupPrior::Fixed { var: var_b }) => {
            let (n, i) = (theta.len() as f64, b.len() as f64);
            -(theta.iter().sum::<f64>() / var_theta + b.iter().sum::<f64>() / var_b)
                / (n / var_theta + i / var_b)
        }
        (
            GroupPrior::Hierarchical { mu_mean: mt, .. },
            GroupPrior::Hierarchical { mu_mean: mb, .. },
        ) => -(mt + mb) / 2.0,
        _ => 0.0,
    };
    theta.iter_mut().for_each(|t| *t += shift);
    b.iter_mut().for_each(|x| *x += shift);
    prior_theta.shift_mean(shift);
    prior_b.shift_mean(shift);
}

#[cfg(test)]
mod tests {
    use super::super::quadrature::NormalRule;
    use super::super::simulate::{simulate, SimulationSpec};
    use super::super::{fit as fit_matrix, FitOptions, IrtModel, MatrixBuilder, Method, Priors};
    use super::gamma_factor;
    use crate::stats::{bin_agreement, spearman};

    fn options(priors: Priors) -> FitOptions {
        FitOptions {
            method: Method::Vi,
            priors,
            progress: false,
            ..Default::default()
        }
    }

    /// At the returned factors the ELBO's gradient vanishes: for every item
    /// sum_j (E[p] - y) = (m_b - prior mean) / prior var, and its variance is the fixed point
    /// 1 / (sum_j E[p (1 - p)] + 1 / prior var). Checked with a 40-point rule, independently
    /// of the fit's own 7-point kernels.
    #[test]
    fn solution_is_a_stationary_point_of_the_elbo() {
        let sim = simulate(SimulationSpec {
            n_models: 300,
            n_items: 25,
            missing: 0.2,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        let o = FitOptions {
            tolerance: 1e-14,
            ..options(Priors::vague())
        };
        let f = fit_matrix(&m, &o).unwrap();
        assert!(f.converged);
        let rule = NormalRule::gauss_hermite(40);
        let var_b = 1e6;
        for (i, item) in f.items.iter().enumerate() {
            let (mut g, mut h) = (0.0, 1.0 / var_b);
            m.for_item(i, |j, y| {
                let a = &f.abilities[j];
                let (mu, sd) = (
                    a.ability - item.difficulty,
                    (a.ability_se.powi(2) + item.difficulty_se.powi(2)).sqrt(),
                );
                let p = rule.expect(mu, sd, crate::irt::sigmoid);
                g += p - y as u8 as f64;
                h += rule.expect(mu, sd, |z| {
                    let p = crate::irt::sigmoid(z);
                    p * (1.0 - p)
                });
            });
            g -= item.difficulty / var_b;
            assert!(g.abs() < 1e-4, "item {i}: gradient {g}");
            let v = item.difficulty_se.powi(2);
            assert!((v * h - 1.0).abs() < 1e-3, "item {i}: v {v} h {h}");
        }
    }

    /// With many responses per item the posterior is the likelihood's: vague vi and jml put
    /// items in the same deciles, and both recover the truth.
    #[test]
    fn vague_vi_agrees_with_jml_and_the_truth() {
        let sim = simulate(SimulationSpec {
            n_models: 1500,
            n_items: 150,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        let vi = fit_matrix(&m, &options(Priors::vague())).unwrap();
        let jml = fit_matrix(
            &m,
            &FitOptions {
                progress: false,
                ..Default::default()
            },
        )
        .unwrap();
        let d = |f: &super::super::Fit| f.items.iter().map(|i| i.difficulty).collect::<Vec<_>>();
        assert!(bin_agreement(&d(&vi), &d(&jml), 10) >= 0.95);
        assert!(spearman(&d(&vi), &sim.difficulties).unwrap() > 0.995);
        for h in [
            &vi,
            &fit_matrix(&m, &options(Priors::hierarchical())).unwrap(),
        ] {
            assert!(h.converged && h.objective.is_finite());
            assert!(spearman(&d(h), &sim.difficulties).unwrap() > 0.995);
        }
    }

    #[test]
    fn fits_are_bit_identical_across_threads() {
        let sim = simulate(SimulationSpec {
            n_models: 300,
            n_items: 40,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        for priors in [Priors::vague(), Priors::hierarchical()] {
            let run = |threads| {
                fit_matrix(
                    &m,
                    &FitOptions {
                        threads: Some(threads),
                        ..options(priors)
                    },
                )
                .unwrap()
            };
            assert_eq!(run(1), run(2));
        }
    }

    /// Two items with mirrored answers get mirrored difficulties and equal spreads.
    #[test]
    fn mirrored_items_mirror() {
        let mut b = MatrixBuilder::new();
        for j in 0..40 {
            let m = format!("m{j}");
            let y = j % 4 != 0;
            b.push(&m, "easy", y);
            b.push(&m, "hard", !y);
        }
        for priors in [Priors::vague(), Priors::hierarchical()] {
            let f = fit_matrix(&b.build_ref("t"), &options(priors)).unwrap();
            let (e, h) = (&f.items[0], &f.items[1]);
            assert!((e.difficulty + h.difficulty).abs() < 1e-9, "{e:?} {h:?}");
            assert!((e.difficulty_se - h.difficulty_se).abs() < 1e-9);
            assert!(e.difficulty < 0.0);
        }
    }

    /// The Gamma factor of u peaks where the members' spread says: with n members of
    /// spread s^2 each, E[u^2] is close to 1 / s^2.
    #[test]
    fn gamma_factor_matches_the_spread() {
        let (n, s2) = (5000.0, 4.0);
        let (alpha, beta) = gamma_factor(n, n * s2);
        let u2 = alpha * (alpha + 1.0) / (beta * beta);
        assert!((u2 * s2 - 1.0).abs() < 0.01, "E[u^2] {u2}");
    }

    #[test]
    fn two_pl_is_refused_with_a_reason() {
        let sim = simulate(SimulationSpec {
            n_models: 20,
            n_items: 5,
            ..Default::default()
        });
        let e = fit_matrix(
            &sim.matrix().unwrap(),
            &FitOptions {
                model: IrtModel::TwoPl,
                ..options(Priors::vague())
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("'vi' fits the 1PL model"), "{e}");
    }
}
