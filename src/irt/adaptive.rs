//! Adaptive evaluation: the next items for a model by maximum Fisher information at its
//! current ability (with randomesque exposure control), and a replay of a leaderboard's
//! models through adaptive and random item selections that measures how well a few items
//! estimate each model's accuracy on the whole benchmark.
//!
//! The ability after each response is the posterior mean (EAP) under theta ~ N(mean, sd^2),
//! kept on a fixed grid and updated by one item's likelihood per response, so a replay of 100
//! items costs 100 grid passes, not 100 fits. The accuracy estimate from a subset S of a
//! model's N answered items is the observed score on S plus the predicted probability of
//! every item outside it, divided by N (tinyBenchmarks' p-IRT estimator).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::scoring::FixedItem;
use super::{FitOptions, IrtError, MatrixBuilder, ResponseMatrix, Result};

/// Grid of the running posterior: the prior's 6 standard deviations either side.
const GRID_POINTS: usize = 241;
const GRID_HALF_WIDTH: f64 = 6.0;

/// Fisher information of a 2PL item at `theta`: a^2 P (1 - P).
pub fn information(item: &FixedItem, theta: f64) -> f64 {
    let p = item.p(theta);
    item.discrimination * item.discrimination * p * (1.0 - p)
}

/// A model's posterior over a fixed ability grid, one response at a time.
#[derive(Debug, Clone)]
pub struct Posterior {
    nodes: Vec<f64>,
    log_density: Vec<f64>,
}

impl Posterior {
    /// The prior theta ~ N(mean, sd^2).
    pub fn new(mean: f64, sd: f64) -> Self {
        let step = 2.0 * GRID_HALF_WIDTH / (GRID_POINTS - 1) as f64;
        let z: Vec<f64> = (0..GRID_POINTS)
            .map(|k| -GRID_HALF_WIDTH + step * k as f64)
            .collect();
        Self {
            nodes: z.iter().map(|z| mean + sd * z).collect(),
            log_density: z.iter().map(|z| -0.5 * z * z).collect(),
        }
    }

    pub fn observe(&mut self, item: &FixedItem, correct: bool) {
        for (t, l) in self.nodes.iter().zip(&mut self.log_density) {
            let p = item.p(*t).clamp(1e-300, 1.0 - 1e-16);
            *l += if correct { p.ln() } else { (1.0 - p).ln() };
        }
    }

    /// The posterior mean and standard deviation.
    pub fn estimate(&self) -> (f64, f64) {
        let top = self
            .log_density
            .iter()
            .fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let (mut total, mut first, mut second) = (0.0, 0.0, 0.0);
        for (t, l) in self.nodes.iter().zip(&self.log_density) {
            let w = (l - top).exp();
            total += w;
            first += w * t;
            second += w * t * t;
        }
        let mean = first / total;
        (mean, (second / total - mean * mean).max(0.0).sqrt())
    }
}

/// How the next item is drawn: uniformly among the `randomesque` most informative items left
/// (1: always the most informative), from a generator the caller seeds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Selection {
    pub randomesque: usize,
}

impl Selection {
    /// The next item among `candidates` (indices into `items`, none answered yet) at `theta`;
    /// `None` when there is none left. Ties in information go to the lower index.
    pub fn next(
        &self,
        items: &[FixedItem],
        candidates: &[usize],
        theta: f64,
        rng: &mut ChaCha8Rng,
    ) -> Option<usize> {
        if candidates.is_empty() {
            return None;
        }
        let mut ranked: Vec<(f64, usize)> = candidates
            .iter()
            .map(|&i| (information(&items[i], theta), i))
            .collect();
        let k = self.randomesque.clamp(1, ranked.len());
        // The k most informative, in a fixed order (information descending, then index).
        let order = |x: &(f64, usize), y: &(f64, usize)| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1));
        if k < ranked.len() {
            ranked.select_nth_unstable_by(k - 1, order);
        }
        ranked[..k].sort_by(order);
        let pick = if k == 1 { 0 } else { rng.random_range(0..k) };
        Some(ranked[pick].1)
    }
}

/// The items a model has answered (the pool a replay may ask it) and its answers.
#[derive(Debug, Clone, Default)]
pub struct AnsweredItems {
    pub items: Vec<FixedItem>,
    pub responses: Vec<bool>,
}

impl AnsweredItems {
    /// Its accuracy over all its answered items: what a replay tries to estimate.
    pub fn accuracy(&self) -> f64 {
        let n = self.responses.len().max(1) as f64;
        self.responses.iter().filter(|&&y| y).count() as f64 / n
    }

    /// The p-IRT estimate of [`Self::accuracy`] from the answers to `asked` (indices) and the
    /// ability `theta`: observed answers where asked, predicted probabilities elsewhere.
    fn estimated_accuracy(&self, asked: &[bool], theta: f64) -> f64 {
        let total: f64 = self
            .items
            .iter()
            .zip(&self.responses)
            .zip(asked)
            .map(|((item, &y), &seen)| {
                if seen {
                    f64::from(u8::from(y))
                } else {
                    item.p(theta)
                }
            })
            .sum();
        total / self.items.len().max(1) as f64
    }
}

/// How items are chosen in a replay, and how accuracy is estimated from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// Maximum information at the running EAP; the p-IRT estimate.
    Adaptive,
    /// Uniformly random items; the p-IRT estimate.
    RandomIrt,
    /// Uniformly random items; their mean score.
    RandomMean,
}

impl Strategy {
    pub const ALL: [Strategy; 3] = [Self::Adaptive, Self::RandomIrt, Self::RandomMean];

    pub fn name(self) -> &'static str {
        match self {
            Self::Adaptive => "adaptive",
            Self::RandomIrt => "random_irt",
            Self::RandomMean => "random_mean",
        }
    }
}

/// What a replay does.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayOptions {
    /// Test lengths at which the estimates are taken, ascending.
    pub lengths: Vec<usize>,
    pub selection: Selection,
    /// The ability prior (mean, sd), on the items' scale ([`replay_leaderboard`] takes the
    /// training models' abilities).
    pub prior: (f64, f64),
    pub seed: u64,
}

/// The signed errors (estimate - accuracy) of one model, per strategy and length, in the
/// order of [`Strategy::ALL`] and `lengths`. A model that answered fewer items than a length
/// is asked them all at that length.
pub fn replay_model(model: &AnsweredItems, options: &ReplayOptions, stream: u64) -> Vec<Vec<f64>> {
    let n = model.items.len();
    let truth = model.accuracy();
    let mut errors = vec![Vec::with_capacity(options.lengths.len()); Strategy::ALL.len()];
    let longest = options.lengths.iter().copied().max().unwrap_or(0).min(n);
    let (mean, sd) = options.prior;

    // Adaptive: one run to the longest length, read off at each (lengths ascend; one past
    // the pool reads the whole pool).
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(2 * stream);
    let mut posterior = Posterior::new(mean, sd);
    let mut theta = posterior.estimate().0;
    let mut asked = vec![false; n];
    let mut left: Vec<usize> = (0..n).collect();
    let mut pending = options.lengths.iter().map(|&l| l.min(n)).peekable();
    for seen in 0..=longest {
        while pending.next_if_eq(&seen).is_some() {
            errors[0].push(model.estimated_accuracy(&asked, theta) - truth);
        }
        if seen == longest {
            break;
        }
        let Some(i) = options.selection.next(&model.items, &left, theta, &mut rng) else {
            break;
        };
        left.retain(|&x| x != i);
        asked[i] = true;
        posterior.observe(&model.items[i], model.responses[i]);
        theta = posterior.estimate().0;
    }
    // A pool that ran dry early reads its last state for the longer lengths.
    for _ in pending {
        errors[0].push(model.estimated_accuracy(&asked, theta) - truth);
    }

    // Random: one seeded order, its prefixes.
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(2 * stream + 1);
    let mut order: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        order.swap(k, rng.random_range(0..=k));
    }
    let mut posterior = Posterior::new(mean, sd);
    let mut asked = vec![false; n];
    let mut correct = 0usize;
    let mut pending = options.lengths.iter().map(|&l| l.min(n)).peekable();
    // At `seen` items asked: the readings of every length that ends there.
    let mut read = |seen: usize,
                    asked: &[bool],
                    posterior: &Posterior,
                    correct: usize,
                    errors: &mut [Vec<f64>]| {
        while pending.next_if_eq(&seen).is_some() {
            let plain = if seen == 0 {
                f64::NAN
            } else {
                correct as f64 / seen as f64
            };
            let theta = posterior.estimate().0;
            errors[1].push(model.estimated_accuracy(asked, theta) - truth);
            errors[2].push(plain - truth);
        }
    };
    for (seen, &i) in order.iter().take(longest).enumerate() {
        read(seen, &asked, &posterior, correct, &mut errors);
        asked[i] = true;
        posterior.observe(&model.items[i], model.responses[i]);
        correct += model.responses[i] as usize;
    }
    read(longest, &asked, &posterior, correct, &mut errors);
    errors
}

/// One row of a replay's summary.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayRow {
    pub length: usize,
    pub strategy: Strategy,
    pub mean_absolute_error: f64,
    /// Standard error of that mean over the models.
    pub mae_se: f64,
    pub rmse: f64,
    /// Mean signed error (estimate - truth).
    pub bias: f64,
    pub n_models: usize,
}

/// Replays every model (in parallel, each with its own random stream, so the result does not
/// depend on the thread count) and summarises the errors per strategy and length.
pub fn replay(models: &[AnsweredItems], options: &ReplayOptions) -> Vec<ReplayRow> {
    let per_model: Vec<Vec<Vec<f64>>> = models
        .par_iter()
        .enumerate()
        .map(|(j, m)| replay_model(m, options, j as u64))
        .collect();
    let mut rows = Vec::new();
    for (s, strategy) in Strategy::ALL.iter().enumerate() {
        for (l, &length) in options.lengths.iter().enumerate() {
            let errors: Vec<f64> = per_model
                .iter()
                .map(|e| e[s][l])
                .filter(|e| e.is_finite())
                .collect();
            let n = errors.len().max(1) as f64;
            let abs: Vec<f64> = errors.iter().map(|e| e.abs()).collect();
            let mae = abs.iter().sum::<f64>() / n;
            let var = abs.iter().map(|e| (e - mae).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
            rows.push(ReplayRow {
                length,
                strategy: *strategy,
                mean_absolute_error: mae,
                mae_se: (var / n).sqrt(),
                rmse: (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt(),
                bias: errors.iter().sum::<f64>() / n,
                n_models: errors.len(),
            });
        }
    }
    rows
}

/// A leaderboard replay: item parameters fitted on a share of the models, the others
/// replayed against them.
#[derive(Debug, Clone)]
pub struct LeaderboardReplay {
    /// The fit of the training models (its model must be 1PL or 2PL).
    pub fit: FitOptions,
    /// Share of models whose responses fit the items; the rest are replayed.
    pub train_share: f64,
    pub replay: ReplayOptions,
}

/// The summary rows of a leaderboard replay and how many models trained the items.
pub fn replay_leaderboard(
    m: &ResponseMatrix,
    spec: &LeaderboardReplay,
) -> Result<(Vec<ReplayRow>, usize)> {
    if spec.fit.model.has_asymptotes() {
        return Err(IrtError::BadOption {
            key: "model".into(),
            message: format!(
                "adaptive replay scores with 1PL or 2PL items, not '{}'",
                spec.fit.model.name()
            ),
        });
    }
    let n = m.n_models();
    if n < 2 {
        return Err(IrtError::Invalid(format!(
            "an adaptive replay needs at least 2 models (some to fit the items, some to replay), \
             got {n}"
        )));
    }
    // A seeded shuffle of the models: the first share trains.
    let mut rng = ChaCha8Rng::seed_from_u64(spec.replay.seed);
    let mut order: Vec<usize> = (0..n).collect();
    for k in (1..n).rev() {
        order.swap(k, rng.random_range(0..=k));
    }
    let n_train = ((spec.train_share * n as f64).round() as usize).clamp(1, n - 1);
    let (train, held) = order.split_at(n_train);
    let mut train_ids: Vec<usize> = train.to_vec();
    train_ids.sort_unstable();
    let mut builder = MatrixBuilder::new();
    for &j in &train_ids {
        m.for_model(j, |i, y| builder.push(&m.models[j], &m.items[i], y));
    }
    let train_matrix = builder.build("the training models")?;
    let fit = super::fit(&train_matrix, &spec.fit)?;
    let by_name: std::collections::HashMap<&str, FixedItem> = train_matrix
        .items
        .iter()
        .zip(&fit.items)
        .map(|(id, p)| {
            (
                id.as_str(),
                FixedItem {
                    difficulty: p.difficulty,
                    discrimination: p.discrimination,
                },
            )
        })
        .collect();
    let fixed: Vec<Option<FixedItem>> = m
        .items
        .iter()
        .map(|id| by_name.get(id.as_str()).copied())
        .collect();
    // The replayed models' prior: the training models' abilities (the population they are
    // drawn from, on the fit's own scale).
    let thetas: Vec<f64> = fit.abilities.iter().map(|a| a.ability).collect();
    let n_thetas = thetas.len().max(1) as f64;
    let mean = thetas.iter().sum::<f64>() / n_thetas;
    let sd = (thetas.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / n_thetas)
        .sqrt()
        .max(1e-3);
    let replay_options = ReplayOptions {
        prior: (mean, sd),
        ..spec.replay.clone()
    };
    let mut held_ids: Vec<usize> = held.to_vec();
    held_ids.sort_unstable();
    let models: Vec<AnsweredItems> = held_ids
        .iter()
        .map(|&j| {
            let mut answered = AnsweredItems::default();
            m.for_model(j, |i, y| {
                if let Some(item) = fixed[i] {
                    answered.items.push(item);
                    answered.responses.push(y);
                }
            });
            answered
        })
        .filter(|a| !a.items.is_empty())
        .collect();
    Ok((replay(&models, &replay_options), n_train))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irt::scoring::{score, Estimator};

    fn bank() -> Vec<FixedItem> {
        (0..200)
            .map(|i| FixedItem {
                difficulty: -3.0 + 6.0 * (i as f64) / 199.0,
                discrimination: 0.5 + 2.0 * ((i * 37) % 11) as f64 / 10.0,
            })
            .collect()
    }

    /// The grid posterior agrees with the scoring module's EAP.
    #[test]
    fn posterior_matches_scoring_eap() {
        let items = bank();
        let responses: Vec<bool> = (0..items.len()).map(|i| i % 3 != 0).collect();
        let mut posterior = Posterior::new(0.0, 1.0);
        for (item, &y) in items.iter().zip(&responses) {
            posterior.observe(item, y);
        }
        let (mean, sd) = posterior.estimate();
        let eap = score(&items, &responses, Estimator::Eap { mean: 0.0, sd: 1.0 });
        assert!(
            (mean - eap.ability).abs() < 1e-3,
            "{mean} vs {}",
            eap.ability
        );
        assert!(
            (sd - eap.ability_se).abs() < 1e-3,
            "{sd} vs {}",
            eap.ability_se
        );
    }

    #[test]
    fn selection_takes_the_most_informative_and_randomesque_spreads() {
        let items = bank();
        let all: Vec<usize> = (0..items.len()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let best = Selection { randomesque: 1 }
            .next(&items, &all, 0.3, &mut rng)
            .unwrap();
        let top = all
            .iter()
            .copied()
            .max_by(|&x, &y| {
                information(&items[x], 0.3)
                    .total_cmp(&information(&items[y], 0.3))
                    .then(y.cmp(&x))
            })
            .unwrap();
        assert_eq!(best, top);
        let picks: std::collections::BTreeSet<usize> = (0..50)
            .map(|_| {
                Selection { randomesque: 5 }
                    .next(&items, &all, 0.3, &mut rng)
                    .unwrap()
            })
            .collect();
        assert!(picks.len() > 1 && picks.len() <= 5, "{picks:?}");
        assert_eq!(
            Selection { randomesque: 1 }.next(&items, &[], 0.0, &mut rng),
            None
        );
    }

    /// Simulated models answering the whole bank: adaptive items estimate accuracy better than
    /// random ones, the IRT estimate beats the plain mean, errors shrink with length, and a
    /// replay is the same on every run.
    #[test]
    fn adaptive_beats_random_and_is_deterministic() {
        let items = bank();
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let models: Vec<AnsweredItems> = (0..300)
            .map(|_| {
                let theta: f64 = super::super::simulate::standard_normal(&mut rng);
                AnsweredItems {
                    items: items.clone(),
                    responses: items
                        .iter()
                        .map(|it| rng.random::<f64>() < it.p(theta))
                        .collect(),
                }
            })
            .collect();
        let options = ReplayOptions {
            lengths: vec![10, 25, 50],
            selection: Selection { randomesque: 1 },
            prior: (0.0, 1.0),
            seed: 42,
        };
        let rows = replay(&models, &options);
        assert_eq!(rows, replay(&models, &options));
        let mae = |s: Strategy, l: usize| {
            rows.iter()
                .find(|r| r.strategy == s && r.length == l)
                .unwrap()
                .mean_absolute_error
        };
        for l in [10, 25, 50] {
            assert!(
                mae(Strategy::Adaptive, l) < mae(Strategy::RandomMean, l),
                "{rows:?}"
            );
            assert!(
                mae(Strategy::RandomIrt, l) < mae(Strategy::RandomMean, l),
                "{rows:?}"
            );
        }
        assert!(mae(Strategy::Adaptive, 50) < mae(Strategy::Adaptive, 10));
        assert!(
            mae(Strategy::Adaptive, 50) <= 0.5 * mae(Strategy::RandomMean, 50),
            "{rows:?}"
        );
        assert!(rows.iter().all(|r| r.n_models == 300));
    }

    /// On a simulated leaderboard: fitted on half the models, replayed on the other half, the
    /// same rows on 1 and 2 threads; 3PL items are refused.
    #[test]
    fn leaderboard_replay_is_deterministic() {
        use crate::irt::simulate::{simulate, SimulationSpec};
        use crate::irt::{IrtModel, Method};
        let m = simulate(SimulationSpec {
            n_models: 400,
            n_items: 120,
            model: IrtModel::TwoPl,
            ..Default::default()
        })
        .matrix()
        .unwrap();
        let spec = LeaderboardReplay {
            fit: FitOptions {
                model: IrtModel::TwoPl,
                method: Method::Jml,
                progress: false,
                ..Default::default()
            },
            train_share: 0.5,
            replay: ReplayOptions {
                lengths: vec![10, 50],
                selection: Selection { randomesque: 3 },
                prior: (0.0, 1.0),
                seed: 7,
            },
        };
        let run = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| replay_leaderboard(&m, &spec).unwrap())
        };
        let (rows, n_train) = run(1);
        assert_eq!(n_train, 200);
        assert_eq!((rows.clone(), n_train), run(2));
        assert!(rows.iter().all(|r| r.n_models == 200), "{rows:?}");
        let refused = LeaderboardReplay {
            fit: FitOptions {
                model: IrtModel::ThreePl,
                ..spec.fit.clone()
            },
            ..spec.clone()
        };
        let e = replay_leaderboard(&m, &refused).unwrap_err().to_string();
        assert!(e.contains("not '3pl'"), "{e}");
    }

    /// A model that answered fewer items than a length is asked them all: no error left.
    #[test]
    fn short_pools_are_asked_in_full() {
        let items: Vec<FixedItem> = bank().into_iter().take(8).collect();
        let model = AnsweredItems {
            responses: (0..8).map(|i| i % 2 == 0).collect(),
            items,
        };
        let options = ReplayOptions {
            lengths: vec![5, 10],
            selection: Selection { randomesque: 2 },
            prior: (0.0, 1.0),
            seed: 1,
        };
        let errors = replay_model(&model, &options, 0);
        for strategy in errors {
            assert!(strategy[1].abs() < 1e-12, "{strategy:?}");
        }
    }
}
