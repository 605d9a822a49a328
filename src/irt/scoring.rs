//! Scoring a model against fixed items (linking): its ability on an existing leaderboard's
//! scale from the fitted item parameters alone, by maximum likelihood, Warm's weighted
//! likelihood, the posterior mode or the posterior mean, with standard errors; and the
//! accuracy it is predicted to have on any set of items.
//!
//! Items are 2PL (`a = 1` for 1PL): P(correct) = sigmoid(a (theta - b)).

use std::collections::HashMap;

use super::quadrature::NormalRule;
use super::sigmoid;

/// An item as a fit left it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedItem {
    pub difficulty: f64,
    pub discrimination: f64,
}

impl FixedItem {
    /// P(correct) at ability `theta`.
    pub fn p(&self, theta: f64) -> f64 {
        sigmoid(self.discrimination * (theta - self.difficulty))
    }

    /// dP / dtheta = a P (1 - P): how the probability moves with the ability (the delta
    /// method's factor for a predicted accuracy's standard error).
    pub fn slope(&self, theta: f64) -> f64 {
        let p = self.p(theta);
        self.discrimination * p * (1.0 - p)
    }
}

/// How the ability is estimated.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Estimator {
    /// Maximum likelihood; infinite for all-correct or all-wrong patterns (clamped to
    /// `±THETA_LIMIT`, with an infinite standard error).
    Mle,
    /// Warm's weighted likelihood: the MLE's first-order bias removed; finite for every
    /// pattern.
    Wle,
    /// The posterior mode under theta ~ N(mean, sd^2).
    Map { mean: f64, sd: f64 },
    /// The posterior mean under theta ~ N(mean, sd^2), on a fine normal-weighted grid (401
    /// points over the prior's 6 standard deviations either side, so a posterior far
    /// narrower than the prior is still resolved); the standard error is the posterior
    /// standard deviation.
    Eap { mean: f64, sd: f64 },
}

/// Where an unbounded estimate is stopped.
pub const THETA_LIMIT: f64 = 10.0;

/// One model's estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    pub ability: f64,
    pub ability_se: f64,
    /// The estimate sits at `±THETA_LIMIT` (MLE of a perfect or null pattern).
    pub at_limit: bool,
}

/// Test information and the sums the estimating equations need at `theta`: (score, I, J)
/// with score = sum a (x - P), I = sum a^2 P Q, J = sum a^3 P Q (1 - 2P).
fn sums(items: &[FixedItem], responses: &[bool], theta: f64) -> (f64, f64, f64) {
    let (mut score, mut info, mut j) = (0.0, 0.0, 0.0);
    for (item, &x) in items.iter().zip(responses) {
        let a = item.discrimination;
        let p = item.p(theta);
        let pq = p * (1.0 - p);
        score += a * (f64::from(u8::from(x)) - p);
        info += a * a * pq;
        j += a * a * a * pq * (1.0 - 2.0 * p);
    }
    (score, info, j)
}

/// Solves `equation(theta) = 0` for a decreasing function by safeguarded Newton steps inside
/// `[-THETA_LIMIT, THETA_LIMIT]` (bisection where Newton leaves the bracket).
fn solve(equation: impl Fn(f64) -> (f64, f64)) -> f64 {
    let (mut lo, mut hi) = (-THETA_LIMIT, THETA_LIMIT);
    if equation(lo).0 <= 0.0 {
        return lo;
    }
    if equation(hi).0 >= 0.0 {
        return hi;
    }
    let mut theta = 0.0;
    for _ in 0..200 {
        let (f, slope) = equation(theta);
        if f > 0.0 {
            lo = theta;
        } else {
            hi = theta;
        }
        let newton = theta - f / slope;
        let next = if slope < 0.0 && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - theta).abs() < 1e-12 || hi - lo < 1e-12 {
            return next;
        }
        theta = next;
    }
    theta
}

/// The ability of one model from its responses to `items` (the same order), as `estimator`
/// says. No responses: the prior's mean (MAP, EAP) or 0 (MLE, WLE) with an infinite or prior
/// standard error.
pub fn score(items: &[FixedItem], responses: &[bool], estimator: Estimator) -> Score {
    debug_assert_eq!(items.len(), responses.len());
    let n_correct = responses.iter().filter(|&&x| x).count();
    let extreme = n_correct == 0 || n_correct == responses.len();
    match estimator {
        Estimator::Mle => {
            let theta = solve(|t| {
                let (s, i, _) = sums(items, responses, t);
                (s, -i)
            });
            let (_, info, _) = sums(items, responses, theta);
            let at_limit = extreme;
            Score {
                ability: theta,
                ability_se: if at_limit {
                    f64::INFINITY
                } else {
                    1.0 / info.sqrt()
                },
                at_limit,
            }
        }
        Estimator::Wle => {
            // score + J / (2 I) = 0; its derivative is dominated by -I.
            let theta = solve(|t| {
                let (s, i, j) = sums(items, responses, t);
                if i <= 0.0 {
                    return (0.0, -1.0);
                }
                (s + j / (2.0 * i), -i)
            });
            let (_, info, _) = sums(items, responses, theta);
            Score {
                ability: theta,
                ability_se: 1.0 / info.sqrt(),
                at_limit: theta.abs() >= THETA_LIMIT,
            }
        }
        Estimator::Map { mean, sd } => {
            let precision = 1.0 / (sd * sd);
            let theta = solve(|t| {
                let (s, i, _) = sums(items, responses, t);
                (s - (t - mean) * precision, -i - precision)
            });
            let (_, info, _) = sums(items, responses, theta);
            Score {
                ability: theta,
                ability_se: 1.0 / (info + precision).sqrt(),
                at_limit: false,
            }
        }
        Estimator::Eap { mean, sd } => {
            let rule = NormalRule::normal_grid(401, 6.0);
            // Log likelihood at each node, normalised by its maximum for stability.
            let nodes: Vec<f64> = rule.nodes.iter().map(|z| mean + sd * z).collect();
            let log_l: Vec<f64> = nodes
                .iter()
                .map(|&t| {
                    items
                        .iter()
                        .zip(responses)
                        .map(|(item, &x)| {
                            let z = item.discrimination * (t - item.difficulty);
                            log_sigmoid(if x { z } else { -z })
                        })
                        .sum()
                })
                .collect();
            let top = log_l.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let (mut w_sum, mut m1, mut m2) = (0.0, 0.0, 0.0);
            for ((t, l), w) in nodes.iter().zip(&log_l).zip(&rule.weights) {
                let w = w * (l - top).exp();
                w_sum += w;
                m1 += w * t;
                m2 += w * t * t;
            }
            let ability = m1 / w_sum;
            let var = (m2 / w_sum - ability * ability).max(0.0);
            Score {
                ability,
                ability_se: var.sqrt(),
                at_limit: false,
            }
        }
    }
}

/// log sigmoid(z) = -log(1 + e^-z), without overflow for large |z|.
fn log_sigmoid(z: f64) -> f64 {
    -((-z).max(0.0) + (-z.abs()).exp().ln_1p())
}

/// The accuracy a model of ability `theta` (standard error `theta_se`) is predicted to have
/// on `items`: the mean probability, and its standard error by the delta method.
pub fn predicted_accuracy(items: &[FixedItem], theta: f64, theta_se: f64) -> (f64, f64) {
    if items.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = items.len() as f64;
    let (mut mean, mut slope) = (0.0, 0.0);
    for item in items {
        mean += item.p(theta);
        slope += item.slope(theta);
    }
    (mean / n, (slope / n).abs() * theta_se)
}

/// Fitted items by (benchmark, item_id), as a linking call reads them.
#[derive(Debug, Default)]
pub struct ItemBank {
    by_key: HashMap<(Option<String>, String), FixedItem>,
    /// Item id -> benchmarks that have it, for responses that name no benchmark.
    benchmarks_of: HashMap<String, Vec<Option<String>>>,
}

impl ItemBank {
    /// Adds an item; the same (benchmark, item) twice, or parameters that are not finite
    /// (a discrimination not positive), is an error naming it.
    pub fn insert(
        &mut self,
        benchmark: Option<&str>,
        item_id: &str,
        item: FixedItem,
    ) -> Result<(), String> {
        let name = describe(benchmark, item_id);
        let finite = item.difficulty.is_finite() && item.discrimination.is_finite();
        if !(finite && item.discrimination > 0.0) {
            return Err(format!(
                "{name} has difficulty {} and discrimination {}; both must be finite and the \
                 discrimination positive",
                item.difficulty, item.discrimination
            ));
        }
        let key = (benchmark.map(str::to_string), item_id.to_string());
        if self.by_key.insert(key, item).is_some() {
            return Err(format!("{name} appears twice among the items"));
        }
        self.benchmarks_of
            .entry(item_id.to_string())
            .or_default()
            .push(benchmark.map(str::to_string));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Every item, ordered by (benchmark, item_id).
    pub fn items(&self) -> Vec<(Option<&str>, &str, FixedItem)> {
        let mut all: Vec<(Option<&str>, &str, FixedItem)> = self
            .by_key
            .iter()
            .map(|((b, i), item)| (b.as_deref(), i.as_str(), *item))
            .collect();
        all.sort_by(|x, y| (x.0, x.1).cmp(&(y.0, y.1)));
        all
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The parameters a response to `item_id` (of `benchmark`, when the responses say) is
    /// scored with, and the benchmark it belongs to.
    pub fn find(
        &self,
        benchmark: Option<&str>,
        item_id: &str,
    ) -> Result<(Option<String>, FixedItem), String> {
        let key = (benchmark.map(str::to_string), item_id.to_string());
        if let Some(item) = self.by_key.get(&key) {
            return Ok((key.0, *item));
        }
        match (
            benchmark,
            self.benchmarks_of.get(item_id).map(Vec::as_slice),
        ) {
            // Responses without a benchmark column: the item's one benchmark.
            (None, Some([only])) => Ok((only.clone(), self.by_key[&(only.clone(), key.1)])),
            (None, Some(several)) => Err(format!(
                "item `{item_id}` is in {} benchmarks of the items; give the responses a \
                 benchmark column",
                several.len()
            )),
            // Items without a benchmark column: matched by item id alone.
            (Some(_), Some(list)) if list.contains(&None) => {
                Ok((key.0, self.by_key[&(None, key.1)]))
            }
            _ => Err(format!(
                "{} has no parameters among the items; score only responses to fitted items \
                 (filter the source)",
                describe(benchmark, item_id)
            )),
        }
    }
}

fn describe(benchmark: Option<&str>, item_id: &str) -> String {
    match benchmark {
        Some(b) => format!("item `{item_id}` of benchmark `{b}`"),
        None => format!("item `{item_id}`"),
    }
}

/// One model's responses to fixed items, gathered for scoring.
#[derive(Debug, Clone, Default)]
pub struct ModelResponses {
    pub items: Vec<FixedItem>,
    pub responses: Vec<bool>,
}

/// Scores every model (in parallel); the order of `models` is kept.
pub fn score_models(models: &[ModelResponses], estimator: Estimator) -> Vec<Score> {
    use rayon::prelude::*;
    models
        .par_iter()
        .map(|m| score(&m.items, &m.responses, estimator))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn items(n: usize, seed: u64) -> Vec<FixedItem> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| FixedItem {
                difficulty: rng.random_range(-2.5..2.5),
                discrimination: rng.random_range(0.6..2.0),
            })
            .collect()
    }

    fn answer(items: &[FixedItem], theta: f64, rng: &mut ChaCha8Rng) -> Vec<bool> {
        items
            .iter()
            .map(|i| rng.random::<f64>() < i.p(theta))
            .collect()
    }

    /// 1PL items of one difficulty: the MLE is b + logit(k / n) in closed form, its standard
    /// error 1 / sqrt(n p q).
    #[test]
    fn mle_matches_the_closed_form() {
        let items = vec![
            FixedItem {
                difficulty: 0.7,
                discrimination: 1.0
            };
            20
        ];
        let responses: Vec<bool> = (0..20).map(|k| k < 14).collect();
        let s = score(&items, &responses, Estimator::Mle);
        let p: f64 = 14.0 / 20.0;
        assert!(
            (s.ability - (0.7 + (p / (1.0 - p)).ln())).abs() < 1e-9,
            "{s:?}"
        );
        assert!((s.ability_se - 1.0 / (20.0 * p * (1.0 - p)).sqrt()).abs() < 1e-9);
        assert!(!s.at_limit);
    }

    /// Perfect and null patterns: the MLE runs to the limit; WLE, MAP and EAP stay finite and
    /// ordered (more correct answers, higher ability).
    #[test]
    fn extreme_patterns() {
        let items = items(15, 1);
        let all = vec![true; 15];
        let none = vec![false; 15];
        let mle = score(&items, &all, Estimator::Mle);
        assert!(mle.at_limit && mle.ability == THETA_LIMIT && mle.ability_se.is_infinite());
        for e in [
            Estimator::Wle,
            Estimator::Map { mean: 0.0, sd: 1.0 },
            Estimator::Eap { mean: 0.0, sd: 1.0 },
        ] {
            let (hi, lo) = (score(&items, &all, e), score(&items, &none, e));
            assert!(
                hi.ability.is_finite() && hi.ability_se.is_finite(),
                "{e:?} {hi:?}"
            );
            assert!(hi.ability > 1.0 && lo.ability < -1.0, "{e:?} {hi:?} {lo:?}");
            assert!(hi.ability < THETA_LIMIT, "{e:?} {hi:?}");
        }
    }

    /// Abilities of simulated models recovered from 200 fixed items: every estimator within a
    /// few standard errors of the truth, the reported errors the right size, and MAP / EAP
    /// shrunk towards the prior's mean relative to the MLE.
    #[test]
    fn recovers_simulated_abilities() {
        let items = items(200, 2);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for e in [
            Estimator::Mle,
            Estimator::Wle,
            Estimator::Map { mean: 0.0, sd: 1.0 },
            Estimator::Eap { mean: 0.0, sd: 1.0 },
        ] {
            let mut z2 = 0.0;
            let n = 60;
            for k in 0..n {
                let theta = -2.0 + 4.0 * k as f64 / (n - 1) as f64;
                let s = score(&items, &answer(&items, theta, &mut rng), e);
                let z = (s.ability - theta) / s.ability_se;
                assert!(z.abs() < 4.5, "{e:?}: theta {theta}, {s:?}");
                z2 += z * z;
            }
            // Standardised errors have mean square near 1 when the SEs are right.
            let ms = z2 / n as f64;
            assert!((0.5..1.6).contains(&ms), "{e:?}: mean square z {ms}");
        }
        let responses = answer(&items, 2.0, &mut rng);
        let mle = score(&items, &responses, Estimator::Mle).ability;
        let map = score(&items, &responses, Estimator::Map { mean: 0.0, sd: 1.0 }).ability;
        let eap = score(&items, &responses, Estimator::Eap { mean: 0.0, sd: 1.0 }).ability;
        assert!(map < mle && eap < mle, "mle {mle} map {map} eap {eap}");
        // With many items the posterior is nearly normal: mode and mean agree closely.
        assert!((map - eap).abs() < 0.05, "map {map} eap {eap}");
    }

    /// Warm's estimator removes the MLE's outward bias on short tests.
    #[test]
    fn wle_is_less_biased_than_mle_on_short_tests() {
        let items = items(12, 4);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let theta = 1.0;
        let (mut mle, mut wle, mut n) = (0.0, 0.0, 0.0);
        for _ in 0..2000 {
            let r = answer(&items, theta, &mut rng);
            let m = score(&items, &r, Estimator::Mle);
            if m.at_limit {
                continue;
            }
            mle += m.ability - theta;
            wle += score(&items, &r, Estimator::Wle).ability - theta;
            n += 1.0;
        }
        let (mle, wle) = (mle / n, wle / n);
        assert!(wle.abs() < mle.abs(), "bias: mle {mle}, wle {wle}");
    }

    #[test]
    fn item_bank_matches_with_and_without_benchmarks() {
        let item = |b: f64| FixedItem {
            difficulty: b,
            discrimination: 1.0,
        };
        let mut bank = ItemBank::default();
        bank.insert(Some("arc"), "1", item(0.5)).unwrap();
        bank.insert(Some("gsm8k"), "1", item(-0.5)).unwrap();
        bank.insert(Some("gsm8k"), "2", item(1.5)).unwrap();
        assert!(bank
            .insert(Some("arc"), "1", item(0.0))
            .unwrap_err()
            .contains("twice"));
        let bad = FixedItem {
            difficulty: 0.0,
            discrimination: -1.0,
        };
        assert!(bank
            .insert(None, "x", bad)
            .unwrap_err()
            .contains("positive"));
        assert_eq!(bank.find(Some("gsm8k"), "1").unwrap().1, item(-0.5));
        assert_eq!(
            bank.find(None, "2").unwrap(),
            (Some("gsm8k".into()), item(1.5))
        );
        assert!(bank.find(None, "1").unwrap_err().contains("2 benchmarks"));
        let e = bank.find(Some("arc"), "9").unwrap_err();
        assert!(e.contains("`9`") && e.contains("`arc`"), "{e}");
        // Items without benchmarks match responses that have one.
        let mut plain = ItemBank::default();
        plain.insert(None, "q", item(0.1)).unwrap();
        assert_eq!(
            plain.find(Some("any"), "q").unwrap(),
            (Some("any".into()), item(0.1))
        );
    }

    #[test]
    fn predicted_accuracy_and_its_error() {
        let items = vec![
            FixedItem {
                difficulty: 0.0,
                discrimination: 1.0
            };
            4
        ];
        let (acc, se) = predicted_accuracy(&items, 0.0, 0.5);
        assert!((acc - 0.5).abs() < 1e-12);
        assert!((se - 0.25 * 0.5).abs() < 1e-12);
        assert!(predicted_accuracy(&[], 0.0, 1.0).0.is_nan());
    }
}
