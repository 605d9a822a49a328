//! Joint maximum a posteriori (JML with weak normal priors): alternating Newton steps, one
//! per model and one per item in each sweep, each half parallel over its rows with rayon.
//!
//! The 2PL item step is Fisher scoring in slope-intercept form, on (log a, d) with
//! z = a theta + d and priors on log a and d (see [`item_newton`]), halved until the item's
//! posterior does not fall ([`guarded_two_pl_step`]), with the slope held to its bound. Steps
//! are capped at one logit so extreme items and models cannot overshoot. The loop stops
//! when the log posterior changes by less than `tolerance` per response between sweeps. Every
//! reduction is summed in a fixed order, so a fit is bit-identical from run to run.

use std::time::Instant;

use rayon::prelude::*;

use super::matrix::MISSING;
use super::progress::Progress;
use super::summary::{
    abilities, ability_information, all_item_sums, item_newton, item_params, item_step_sums,
    slope_intercept_step, Counts, ItemPrior, ItemSums, MAX_STEP,
};
use super::{sigmoid, Fit, FitOptions, IrtError, IrtModel, ResponseMatrix, Result};

pub fn fit(m: &ResponseMatrix, o: &FitOptions) -> Result<Fit> {
    let n_items = m.n_items();
    let pr = o.priors;
    let var_theta = pr.ability_sd * pr.ability_sd;
    let prior = ItemPrior::of(&pr);
    let two_pl = o.model == IrtModel::TwoPl;

    // Start from the logits of the raw proportions, clamped away from 0 and 1.
    let counts = Counts::of(m);
    let (mut theta, b) = counts.start(pr.ability_sd);
    let mut items: Vec<(f64, f64)> = b.into_iter().map(|b| (b, 0.0)).collect(); // (b, log a)

    let started = Instant::now();
    let progress = Progress::new(o.progress, "log posterior");
    let n_responses = m.n_responses().max(1) as f64;
    let mut previous = f64::NEG_INFINITY;
    let mut converged = false;
    let mut iterations = 0;
    while iterations < o.max_iter {
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled { iterations });
        }
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
        if o.cancel.is_set() {
            return Err(IrtError::Cancelled {
                iterations: iterations - 1,
            });
        }
        let exp_neg_theta: Vec<f64> = theta.iter().map(|t| (-t).exp()).collect();
        // Items, abilities fixed; the log likelihood of (new theta, old items) comes free.
        let sums: Vec<ItemSums> = (0..n_items)
            .into_par_iter()
            .map(|i| item_step_sums(m, i, &theta, &exp_neg_theta, items[i], two_pl))
            .collect();
        let log_lik: f64 = sums.iter().map(|s| s.log_lik).sum();
        let log_posterior = log_lik + log_prior(&theta, &items, var_theta, &prior, two_pl);
        items
            .par_iter_mut()
            .zip(&sums)
            .enumerate()
            .for_each(|(i, (item, s))| {
                *item = if two_pl {
                    guarded_two_pl_step(m, i, &theta, &exp_neg_theta, *item, s, &prior)
                } else {
                    item_newton(*item, s, &prior, false).0
                };
            });
        align_to_priors(&mut theta, &mut items, var_theta, &prior, two_pl);
        progress.tick(iterations, log_posterior, started.elapsed());
        if (log_posterior - previous).abs() < o.tolerance * n_responses {
            converged = true;
            break;
        }
        previous = log_posterior;
    }
    progress.finish();

    // Final pass at the estimates: standard errors, fit statistics, log likelihood.
    let sums = all_item_sums(m, &theta, &items, two_pl);
    let log_likelihood: f64 = sums.iter().map(|s| s.log_lik).sum();
    let difficulty_se: Vec<f64> = items
        .iter()
        .zip(&sums)
        .map(|(&item, s)| item_newton(item, s, &prior, two_pl).1)
        .collect();
    let item_params = item_params(&items, &sums, &difficulty_se, &prior, two_pl);
    let ability_se: Vec<f64> = ability_information(m, &theta, &items, two_pl, 1.0 / var_theta)
        .iter()
        .map(|info| 1.0 / info.sqrt())
        .collect();
    let abilities = abilities(&theta, &ability_se, &counts, o.min_responses);
    let log_posterior = log_likelihood + log_prior(&theta, &items, var_theta, &prior, two_pl);
    Ok(Fit {
        items: item_params,
        abilities,
        log_likelihood,
        objective: log_posterior,
        iterations,
        converged,
    })
}

/// Step halvings before a 2PL item step that cannot raise the item's posterior is given up.
const MAX_HALVINGS: usize = 20;

/// A 2PL item's Fisher-scoring step, halved until the item's log posterior (abilities fixed)
/// does not fall. Unguarded, the step can overshoot in log a on items whose slope is near 0
/// (Fisher scoring drops a curvature term there) and the fit then cycles between two states
/// instead of converging.
fn guarded_two_pl_step(
    m: &ResponseMatrix,
    i: usize,
    theta: &[f64],
    exp_neg_theta: &[f64],
    item: (f64, f64),
    sums: &ItemSums,
    prior: &ItemPrior,
) -> (f64, f64) {
    let current = sums.log_lik + prior.log_density(item, true);
    slope_intercept_step(item, sums, prior)
        .first_no_worse(current, MAX_HALVINGS, |trial| {
            let s = item_step_sums(m, i, theta, exp_neg_theta, trial, true);
            (s.log_lik + prior.log_density(trial, true), ())
        })
        .map_or(item, |accepted| accepted.point)
}

/// The likelihood does not change when every theta and b move by the same amount (and, for
/// 2PL, when theta and b are scaled by s and a by 1/s); only the priors pin these directions
/// down, and alternating steps crawl along them. Jump to the prior's optimum along each.
/// The 2PL priors are on d = -a b and log a: a shift c moves d by -a c, a scale leaves d.
/// The scale never lifts a slope past its bound (the move would then change the likelihood).
fn align_to_priors(
    theta: &mut [f64],
    items: &mut [(f64, f64)],
    var_theta: f64,
    prior: &ItemPrior,
    two_pl: bool,
) {
    let (var_b, var_alpha) = (prior.var_b, prior.var_alpha);
    let (n_models, n_items) = (theta.len() as f64, items.len() as f64);
    let sum_theta: f64 = theta.iter().sum();
    // Minimise sum (theta + c)^2 / var_theta + sum a^2 (b + c)^2 / var_b over c.
    let slope = |alpha: f64| if two_pl { alpha.exp() } else { 1.0 };
    let sum_ab: f64 = items.iter().map(|&(b, al)| slope(al).powi(2) * b).sum();
    let sum_aa: f64 = items.iter().map(|&(_, al)| slope(al).powi(2)).sum();
    let shift = -(sum_theta / var_theta + sum_ab / var_b) / (n_models / var_theta + sum_aa / var_b);
    theta.iter_mut().for_each(|t| *t += shift);
    items.iter_mut().for_each(|i| i.0 += shift);
    if !two_pl {
        return;
    }
    // f(u) = e^{2u} Q / 2 + sum (alpha - u)^2 / (2 var_alpha), u = log s, with
    // Q = sum theta^2 / var_theta; a few Newton steps find its minimum.
    let q = theta.iter().map(|t| t * t).sum::<f64>() / var_theta;
    let sum_alpha: f64 = items.iter().map(|i| i.1).sum();
    // u no lower than this keeps every alpha - u within the bound; f is convex, so the
    // constrained minimum is the unconstrained one clamped.
    let lowest = items
        .iter()
        .map(|i| i.1 - prior.max_alpha)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut u = 0.0f64.max(lowest);
    for _ in 0..20 {
        let g = (2.0 * u).exp() * q - (sum_alpha - n_items * u) / var_alpha;
        let h = 2.0 * (2.0 * u).exp() * q + n_items / var_alpha;
        let step = (g / h).clamp(-0.5, 0.5);
        u = (u - step).max(lowest);
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

fn log_prior(
    theta: &[f64],
    items: &[(f64, f64)],
    var_theta: f64,
    prior: &ItemPrior,
    two_pl: bool,
) -> f64 {
    let constant = |var: f64| -0.5 * (std::f64::consts::TAU * var).ln();
    let lp: f64 = theta
        .iter()
        .map(|&t| -0.5 * t * t / var_theta + constant(var_theta))
        .sum();
    let per_item = if two_pl {
        constant(prior.var_b) + constant(prior.var_alpha)
    } else {
        constant(prior.var_b)
    };
    lp + items
        .iter()
        .map(|&item| prior.log_density(item, two_pl) + per_item)
        .sum::<f64>()
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
            // Items are numbered in sorted id order: impossible, normal, trivial.
            let (impossible, normal, trivial) = (&f.items[0], &f.items[1], &f.items[2]);
            assert_eq!(trivial.flag, Some(crate::irt::Flag::AllCorrect));
            assert_eq!(impossible.flag, Some(crate::irt::Flag::AllWrong));
            assert_eq!(normal.flag, None);
            assert!(
                trivial.difficulty < normal.difficulty && normal.difficulty < impossible.difficulty
            );
            let lonely = f.abilities.last().unwrap();
            assert_eq!(lonely.flag, Some(crate::irt::Flag::FewResponses));
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
