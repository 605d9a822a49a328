//! Marginal maximum likelihood by EM (Bock-Aitkin), the psychometric standard of mirt and
//! girth, with abilities integrated out by adaptive Gauss-Hermite quadrature and reported
//! as expected a posteriori (EAP) values.
//!
//! Why adaptive: a fixed grid (girth's 41 points on [-5, 5]) is fine for a test of a few
//! dozen items, but a leaderboard model answers thousands, its posterior is a few hundredths
//! wide, and a fixed grid then turns the marginal likelihood into a step function of the
//! parameters: EM crawls and the latent spread drifts toward whatever suits the grid. Here
//! each model's nodes sit at its own posterior mean and spread from the previous iteration
//! (Schilling and Bock 2005), so a handful of nodes integrates exactly what a fine grid would.
//!
//! 1PL: theta ~ N(0, sigma^2) with sigma estimated (a Rasch model with a free latent
//! variance), logit = theta - b. 2PL: theta ~ N(0, 1), logit = a theta + d = a (theta - b),
//! its item step in (log a, d) (see [`item_newton`]).
//! Each iteration: E-step per model (its posterior over its nodes), then per item one Newton
//! step (1PL) or a few step-halved Fisher-scoring steps (2PL, [`two_pl_m_step`]) on the
//! expected complete-data log posterior (items carry the priors of
//! [`super::Priors`], which keep items everyone got right or wrong finite), then sigma in
//! closed form. The stationary point is the marginal posterior mode, as with a full M-step.
//! Stops when the log marginal likelihood plus log prior changes by less than `tolerance`
//! per response.

use std::f64::consts::TAU;
use std::time::Instant;

use rayon::prelude::*;

use super::progress::Progress;
use super::quadrature::NormalRule;
use super::summary::{
    abilities, all_item_sums, item_newton, item_params, slope_intercept_step, Counts, ItemPrior,
    ItemSums, LogTerms, MAX_NODES,
};
use super::{Fit, FitOptions, IrtError, IrtModel, ResponseMatrix, Result};

/// Default nodes per model: adaptive nodes need few; 7 integrate a posterior that is nearly
/// normal to far better than the fit's own error.
pub const DEFAULT_POINTS: usize = 7;
pub(super) const MIN_SPREAD: f64 = 1e-4;

/// The Gauss-Hermite rule of `quadrature_points` nodes per model.
pub(super) fn node_rule(o: &FitOptions) -> Result<NormalRule> {
    let points = o.quadrature_points.unwrap_or(DEFAULT_POINTS);
    if !(1..=MAX_NODES).contains(&points) {
        return Err(IrtError::BadOption {
            key: "quadrature_points".into(),
            message: format!("'mml' takes 1 to {MAX_NODES} nodes per model, got {points}"),
        });
    }
    Ok(NormalRule::gauss_hermite(points))
}

/// Each model's first node centre and spread: its starting ability, and a spread that
/// narrows with its number of responses.
pub(super) fn start_centres(start_theta: &[f64], counts: &Counts) -> Vec<(f64, f64)> {
    start_theta
        .iter()
        .zip(&counts.models)
        .map(|(&t, &(n, _))| (t, 1.0 / (0.2 * n as f64 + 1.0).sqrt()))
        .collect()
}

/// The node centres on the scale where the population's `mean` is 0 and `scale` is 1 (the
/// parameter expansion's fold).
pub(super) fn rescale_centres(centre: &mut [(f64, f64)], mean: f64, scale: f64) {
    centre
        .iter_mut()
        .for_each(|c| *c = ((c.0 - mean) / scale, c.1 / scale));
}

/// Mean and standard deviation of `points` under `weights` that sum to `total`.
pub(super) fn weighted_moments(points: &[f64], weights: &[f64], total: f64) -> (f64, f64) {
    let mean = points.iter().zip(weights).map(|(t, w)| w * t).sum::<f64>() / total;
    let var = points
        .iter()
        .zip(weights)
        .map(|(t, w)| w * (t - mean).powi(2))
        .sum::<f64>()
        / total;
    (mean, var.sqrt())
}

pub fn fit(m: &ResponseMatrix, o: &FitOptions) -> Result<Fit> {
    let rule = node_rule(o)?;
    let two_pl = o.model == IrtModel::TwoPl;
    let prior = ItemPrior::of(&o.priors);
    let k = rule.len();

    let counts = Counts::of(m);
    let (start_theta, start_b) = counts.start(1.0);
    let mut items: Vec<(f64, f64)> = start_b.into_iter().map(|b| (b, 0.0)).collect();
    let mut sigma = 1.0f64;
    // Each model's posterior mean and spread: the centre and scale of its nodes.
    let mut centre = start_centres(&start_theta, &counts);
    // Nodes and posterior weights, model-major, k per model.
    let mut nodes = vec![0.0f64; m.n_models() * k];
    let mut weights = vec![0.0f64; m.n_models() * k];

    let started = Instant::now();
    let progress = Progress::new(o.progress, "log marginal likelihood");
    let n_responses = m.n_responses().max(1) as f64;
    let mut previous = f64::NEG_INFINITY;
    let (mut converged, mut iterations) = (false, 0);
    while iterations < o.max_iter {
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled { iterations });
        }
        iterations += 1;
        let log_marginal = e_step(
            m,
            &rule,
            &items,
            sigma,
            two_pl,
            &mut centre,
            &mut nodes,
            &mut weights,
        );
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled {
                iterations: iterations - 1,
            });
        }
        let objective = log_marginal + log_prior(&items, &prior, two_pl);
        // M-step: the items (see the module's doc), then the latent spread (1PL).
        let at = Nodes::new(k, &nodes, &weights, two_pl);
        items.par_iter_mut().enumerate().for_each(|(i, item)| {
            if o.cancel.is_set() {
                return;
            }
            *item = if two_pl {
                two_pl_m_step(m, i, *item, &at, &prior)
            } else {
                let s = item_node_sums(m, i, *item, &at, false);
                item_newton(*item, &s, &prior, false).0
            };
        });
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled {
                iterations: iterations - 1,
            });
        }
        // The abilities' mean (and, for 2PL, spread) as a free parameter for a moment
        // (parameter expansion, Liu, Rubin and Wu 1998), then folded back into the items and
        // the node centres: the same model with the population at N(0, sigma^2). Plain EM
        // moves along this direction by a tiny fraction per iteration.
        let (mean, spread) = weighted_moments(&nodes, &weights, m.n_models().max(1) as f64);
        let spread = spread.max(1e-3);
        // A scale that would lift a slope past its bound goes only as far as the bound: the
        // move must leave the likelihood as it is.
        let scale = if two_pl {
            spread.min(prior.room_to_bound(items.iter().map(|i| i.1)))
        } else {
            1.0
        };
        items.iter_mut().for_each(|(b, alpha)| {
            *b = (*b - mean) / scale;
            *alpha += scale.ln();
        });
        rescale_centres(&mut centre, mean, scale);
        if !two_pl {
            sigma = spread;
        }
        progress.tick(iterations, objective, started.elapsed());
        if (objective - previous).abs() < o.tolerance * n_responses {
            converged = true;
            break;
        }
        previous = objective;
    }
    progress.finish();

    // A last E-step at the final estimates gives their EAP abilities and standard errors.
    // Difficulty standard errors come from the expected complete-data information (no Louis
    // correction for the abilities' uncertainty): slightly small when models answer few items.
    let log_marginal = e_step(
        m,
        &rule,
        &items,
        sigma,
        two_pl,
        &mut centre,
        &mut nodes,
        &mut weights,
    );
    let objective = log_marginal + log_prior(&items, &prior, two_pl);
    let at = Nodes::new(k, &nodes, &weights, two_pl);
    let difficulty_se: Vec<f64> = (0..m.n_items())
        .into_par_iter()
        .map(|i| {
            let s = item_node_sums(m, i, items[i], &at, two_pl);
            item_newton(items[i], &s, &prior, two_pl).1
        })
        .collect();
    let (theta, ability_se): (Vec<f64>, Vec<f64>) = centre.iter().copied().unzip();
    let sums = all_item_sums(m, &theta, &items, two_pl);
    let log_likelihood = sums.iter().map(|s| s.log_lik).sum();
    Ok(Fit {
        items: item_params(&items, &sums, &difficulty_se, &prior, two_pl),
        abilities: abilities(&theta, &ability_se, &counts, o.min_responses),
        log_likelihood,
        objective,
        iterations,
        converged,
    })
}

/// The E-step: for each model, nodes at its current centre and spread, the log of its
/// likelihood times the ability density at each, normalised into posterior weights; the
/// centre and spread move to the new posterior mean and standard deviation. Returns the log
/// marginal likelihood.
#[allow(clippy::too_many_arguments)]
// Nodes, weights and the rule are parallel arrays walked in lockstep.
#[allow(clippy::needless_range_loop)]
fn e_step(
    m: &ResponseMatrix,
    rule: &NormalRule,
    items: &[(f64, f64)],
    sigma: f64,
    two_pl: bool,
    centre: &mut [(f64, f64)],
    nodes: &mut [f64],
    weights: &mut [f64],
) -> f64 {
    let k = rule.len();
    // e^b (1PL) so that e^-(theta - b) = e^-theta e^b; slopes a (2PL).
    let exp_b: Vec<f64> = items.iter().map(|&(b, _)| b.exp()).collect();
    let slopes: Vec<f64> = items.iter().map(|&(_, alpha)| alpha.exp()).collect();
    let intercepts: Vec<f64> = items
        .iter()
        .zip(&slopes)
        .map(|(&(b, _), a)| -a * b)
        .collect();
    let per_model: Vec<f64> = centre
        .par_iter_mut()
        .zip(nodes.par_chunks_mut(k))
        .zip(weights.par_chunks_mut(k))
        .enumerate()
        .map(|(j, ((c, t), w))| {
            let (mu, spread) = *c;
            for q in 0..k {
                t[q] = mu + spread * rule.nodes[q];
            }
            // log of sum_q rule.w_q f(t_q) phi_sigma(t_q) spread / phi(x_q).
            let mut log_w = [0.0f64; MAX_NODES];
            for q in 0..k {
                let x = rule.nodes[q];
                log_w[q] = rule.weights[q].ln() + log_normal_density(t[q], sigma)
                    - log_normal_density(x, 1.0)
                    + spread.ln();
            }
            // log p(y | t) = (y - 1) z - log(1 + e^-z), z = a t + d (2PL), t - b (1PL).
            let mut logs = LogTerms::new(k);
            let mut linear = [0.0f64; MAX_NODES];
            let mut e_neg_t = [0.0f64; MAX_NODES];
            for q in 0..k {
                e_neg_t[q] = (-t[q]).exp();
            }
            m.for_model(j, |i, y| {
                let miss = y as u8 as f64 - 1.0;
                if two_pl {
                    let (a, d) = (slopes[i], intercepts[i]);
                    for q in 0..k {
                        let z = a * t[q] + d;
                        linear[q] += miss * z;
                        logs.add(q, (-z).exp(), z);
                    }
                } else {
                    let (eb, b) = (exp_b[i], items[i].0);
                    for q in 0..k {
                        let z = t[q] - b;
                        linear[q] += miss * z;
                        logs.add(q, e_neg_t[q] * eb, z);
                    }
                }
            });
            for q in 0..k {
                w[q] = log_w[q] + linear[q] - logs.log(q);
            }
            let log_marginal = normalize_log(w);
            let (mean, sd) = weighted_moments(t, w, 1.0);
            *c = (mean, sd.max(MIN_SPREAD));
            log_marginal
        })
        .collect();
    per_model.iter().sum()
}

pub(super) fn log_normal_density(x: f64, sd: f64) -> f64 {
    -0.5 * (x / sd).powi(2) - sd.ln() - 0.5 * TAU.ln()
}

/// The nodes with, for 1PL, e^-t beside each (so e^-(t - b) = e^-t e^b needs no exponential).
struct Nodes<'a> {
    k: usize,
    at: &'a [f64],
    exp_neg: Vec<f64>,
    weights: &'a [f64],
}

impl<'a> Nodes<'a> {
    fn new(k: usize, at: &'a [f64], weights: &'a [f64], two_pl: bool) -> Self {
        let exp_neg = if two_pl {
            Vec::new()
        } else {
            at.par_iter().map(|t| (-t).exp()).collect()
        };
        Self {
            k,
            at,
            exp_neg,
            weights,
        }
    }
}

fn item_node_sums(
    m: &ResponseMatrix,
    i: usize,
    (b, alpha): (f64, f64),
    nodes: &Nodes,
    two_pl: bool,
) -> ItemSums {
    let k = nodes.k;
    let a = if two_pl { alpha.exp() } else { 1.0 };
    let (d, exp_b) = (-a * b, b.exp());
    let mut s = ItemSums::default();
    m.for_item(i, |j, y| {
        let (t, w) = (
            &nodes.at[j * k..(j + 1) * k],
            &nodes.weights[j * k..(j + 1) * k],
        );
        let yf = y as u8 as f64;
        for q in 0..k {
            let x = a * t[q];
            let z = x + d;
            let e = if two_pl {
                (-z).exp()
            } else {
                nodes.exp_neg[j * k + q] * exp_b
            };
            let p = 1.0 / (1.0 + e);
            let r = w[q] * (yf - p);
            let info = w[q] * p * (1.0 - p);
            if two_pl {
                // log p(y | z) = (y - 1) z - log(1 + e^-z), overflow-safe.
                let softplus = if e.is_finite() { e.ln_1p() } else { -z };
                s.log_lik += w[q] * ((yf - 1.0) * z - softplus);
            }
            s.resid += r;
            s.resid_x += r * x;
            s.w += info;
            s.wx += info * x;
            s.wxx += info * x * x;
        }
    });
    s
}

/// Most Fisher-scoring steps per item and EM iteration (2PL), and the step size below which
/// an item's M-step is done.
const MAX_NEWTON: usize = 5;
const NEWTON_TOL: f64 = 1e-8;
/// Step halvings before a step that cannot raise the item's posterior is given up.
const MAX_HALVINGS: usize = 30;

/// The 2PL M-step of item `i`: Fisher-scoring steps in (log a, d) on its expected
/// complete-data log posterior at this E-step's nodes, each halved until that posterior does
/// not fall. A single unguarded Newton step can overshoot on items with a large slope, and EM
/// then oscillates instead of climbing; with the guard every iteration raises the objective.
fn two_pl_m_step(
    m: &ResponseMatrix,
    i: usize,
    start: (f64, f64),
    at: &Nodes,
    prior: &ItemPrior,
) -> (f64, f64) {
    let value = |item: (f64, f64), s: &ItemSums| s.log_lik + prior.log_density(item, true);
    let mut item = start;
    let mut sums = item_node_sums(m, i, item, at, true);
    let mut best = value(item, &sums);
    for _ in 0..MAX_NEWTON {
        let step = slope_intercept_step(item, &sums, prior);
        if step.size() < NEWTON_TOL {
            break;
        }
        let Some(accepted) = step.first_no_worse(best, MAX_HALVINGS, |trial| {
            let s = item_node_sums(m, i, trial, at, true);
            (value(trial, &s), s)
        }) else {
            break;
        };
        (item, sums, best) = (accepted.point, accepted.extra, accepted.value);
        if step.size() * accepted.fraction < NEWTON_TOL {
            break;
        }
    }
    item
}

/// Turns log weights into probabilities in place; returns the log of their sum.
pub(super) fn normalize_log(post: &mut [f64]) -> f64 {
    let max = post.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let mut total = 0.0;
    for p in post.iter_mut() {
        *p = (*p - max).exp();
        total += *p;
    }
    post.iter_mut().for_each(|p| *p /= total);
    max + total.ln()
}

fn log_prior(items: &[(f64, f64)], prior: &ItemPrior, two_pl: bool) -> f64 {
    items
        .iter()
        .map(|&item| prior.log_density(item, two_pl))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::super::simulate::{simulate, SimulationSpec};
    use super::super::{fit as fit_matrix, FitOptions, IrtModel, MatrixBuilder, Method};
    use crate::stats::spearman;

    fn options(model: IrtModel) -> FitOptions {
        FitOptions {
            model,
            method: Method::Mml,
            progress: false,
            ..Default::default()
        }
    }

    /// The 2PL objective is the log marginal likelihood (plus the items' log prior): checked
    /// against a brute-force integral over a fine grid at the returned items.
    #[test]
    fn objective_is_the_marginal_likelihood() {
        let sim = simulate(SimulationSpec {
            n_models: 200,
            n_items: 30,
            model: IrtModel::TwoPl,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        let f = fit_matrix(&m, &options(IrtModel::TwoPl)).unwrap();
        assert!(f.converged);
        let grid: Vec<f64> = (0..=4000)
            .map(|k| -8.0 + 16.0 * k as f64 / 4000.0)
            .collect();
        let dx = 16.0 / 4000.0;
        let mut log_marginal = 0.0;
        for j in 0..m.n_models() {
            let mut total = 0.0;
            for &t in &grid {
                let mut log_lik = -0.5 * t * t - 0.5 * std::f64::consts::TAU.ln();
                m.for_model(j, |i, y| {
                    let it = &f.items[i];
                    let p = crate::irt::sigmoid(it.discrimination * (t - it.difficulty));
                    log_lik += if y { p.ln() } else { (1.0 - p).ln() };
                });
                total += log_lik.exp() * dx;
            }
            log_marginal += total.ln();
        }
        let log_prior: f64 = f
            .items
            .iter()
            .map(|i| {
                let d = -i.discrimination * i.difficulty;
                -0.5 * d * d / 9.0 - 0.5 * i.discrimination.ln().powi(2)
            })
            .sum();
        let diff = (f.objective - (log_marginal + log_prior)).abs();
        assert!(
            diff < 1e-3 * m.n_models() as f64 / 100.0,
            "objective {} vs {}",
            f.objective,
            log_marginal + log_prior
        );
    }

    #[test]
    fn recovers_1pl_and_2pl_parameters() {
        for model in [IrtModel::OnePl, IrtModel::TwoPl] {
            let sim = simulate(SimulationSpec {
                n_models: 1500,
                n_items: 150,
                model,
                missing: 0.1,
                ..Default::default()
            });
            let f = fit_matrix(&sim.matrix().unwrap(), &options(model)).unwrap();
            assert!(f.converged, "{model:?}: {} iterations", f.iterations);
            let est: Vec<f64> = f.items.iter().map(|i| i.difficulty).collect();
            let rho = spearman(&est, &sim.difficulties).unwrap();
            assert!(rho > 0.995, "{model:?}: spearman {rho}");
            let theta: Vec<f64> = f.abilities.iter().map(|a| a.ability).collect();
            assert!(spearman(&theta, &sim.abilities).unwrap() > 0.95);
            if model == IrtModel::TwoPl {
                let a: Vec<f64> = f.items.iter().map(|i| i.discrimination).collect();
                assert!(spearman(&a, &sim.discriminations).unwrap() > 0.8);
            } else {
                // The 1PL difficulties are on the abilities' scale: the truth's, up to a shift.
                let shift = sim.difficulties.iter().sum::<f64>() / est.len() as f64
                    - est.iter().sum::<f64>() / est.len() as f64;
                let rmse = (est
                    .iter()
                    .zip(&sim.difficulties)
                    .map(|(e, t)| (e + shift - t).powi(2))
                    .sum::<f64>()
                    / est.len() as f64)
                    .sqrt();
                assert!(rmse < 0.2, "rmse {rmse}");
            }
        }
    }

    /// Mirrored items get mirrored difficulties; everyone-right and everyone-wrong items and
    /// a one-response model stay finite and are flagged.
    #[test]
    fn mirrored_and_extreme_items() {
        let mut b = MatrixBuilder::new();
        for j in 0..40 {
            let m = format!("m{j}");
            let y = j % 4 != 0;
            b.push(&m, "easy", y);
            b.push(&m, "hard", !y);
            b.push(&m, "trivial", true);
            b.push(&m, "impossible", false);
        }
        b.push("lonely", "easy", true);
        for model in [IrtModel::OnePl, IrtModel::TwoPl] {
            let f = fit_matrix(&b.build_ref("t"), &options(model)).unwrap();
            let d: Vec<f64> = f.items.iter().map(|i| i.difficulty).collect();
            assert!(d.iter().all(|x| x.is_finite()), "{d:?}");
            // Items are numbered in sorted id order: easy, hard, impossible, trivial.
            assert!(d[3] < d[0] && d[0] < d[1] && d[1] < d[2], "{d:?}");
            assert_eq!(f.items[3].flag, Some(crate::irt::Flag::AllCorrect));
            assert_eq!(f.items[2].flag, Some(crate::irt::Flag::AllWrong));
            let lonely = f.abilities.last().unwrap();
            assert_eq!(lonely.flag, Some(crate::irt::Flag::FewResponses));
            assert!(lonely.ability.is_finite() && lonely.ability_se.is_finite());
        }
    }

    /// An item answered at random (right 80% of the time whatever the ability) has no
    /// discrimination: in slope-intercept form its intercept is pinned down and the fit
    /// converges with a small slope and finite estimates, instead of b running away.
    #[test]
    fn a_non_discriminating_item_converges() {
        let mut b = MatrixBuilder::new();
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut uniform = || rng.random::<f64>();
        for j in 0..400 {
            let theta = -2.0 + 4.0 * j as f64 / 399.0;
            for i in 0..20 {
                let p = crate::irt::sigmoid(1.5 * (theta - (-1.5 + 3.0 * i as f64 / 19.0)));
                b.push(&format!("m{j:03}"), &format!("i{i:02}"), uniform() < p);
            }
            b.push(&format!("m{j:03}"), "random", uniform() < 0.8);
        }
        let f = fit_matrix(&b.build_ref("t"), &options(IrtModel::TwoPl)).unwrap();
        assert!(f.converged, "{} iterations", f.iterations);
        let random = f.items.last().unwrap();
        assert!(random.discrimination < 0.5, "{random:?}");
        // Its intercept is the logit of 0.8 (or near it): d = -a b.
        let d = -random.discrimination * random.difficulty;
        assert!((d - 4f64.ln()).abs() < 0.3, "d {d}");
        let a: Vec<f64> = f.items[..20].iter().map(|i| i.discrimination).collect();
        assert!(a.iter().all(|&a| a > 0.8 && a < 3.0), "{a:?}");
    }

    #[test]
    fn fits_are_bit_identical_across_threads() {
        let sim = simulate(SimulationSpec {
            n_models: 300,
            n_items: 40,
            model: IrtModel::TwoPl,
            ..Default::default()
        });
        let m = sim.matrix().unwrap();
        for model in [IrtModel::OnePl, IrtModel::TwoPl] {
            let run = |threads| {
                fit_matrix(
                    &m,
                    &FitOptions {
                        threads: Some(threads),
                        ..options(model)
                    },
                )
                .unwrap()
            };
            assert_eq!(run(1), run(2));
        }
    }
}
