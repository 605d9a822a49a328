//! The options object of `irt_fit` and `irt_abilities` (and of `generalization_matrix`'s
//! `irt.options`): one serde struct, checked once, turned into [`FitOptions`].

use serde::{Deserialize, Serialize};

use super::{FitOptions, IrtModel, Method, Priors};
use crate::options::OptionsError;

/// The standard deviations a prior option may take: outside this range a prior underflows
/// or overflows a fit's sums long before it means anything.
pub const SD_RANGE: (f64, f64) = (1e-4, 1e8);

/// A named set of priors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PriorSet {
    /// Weak normal priors (jml's and mml's default).
    Weak,
    /// py-irt's default: theta ~ N(0, 1), b ~ N(0, 1000^2) (vi's default).
    Vague,
    /// py-irt's hierarchical priors (vi only).
    Hierarchical,
}

impl PriorSet {
    pub fn priors(self) -> Priors {
        match self {
            Self::Weak => Priors::default(),
            Self::Vague => Priors::vague(),
            Self::Hierarchical => Priors::hierarchical(),
        }
    }
}

/// What an IRT function's options object may hold; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IrtOptions {
    /// A named set of priors first; explicit standard deviations refine it.
    pub priors: Option<PriorSet>,
    pub ability_sd: Option<f64>,
    pub difficulty_sd: Option<f64>,
    pub log_discrimination_sd: Option<f64>,
    /// The largest 2PL slope (see [`Priors::max_discrimination`]).
    pub max_discrimination: Option<f64>,
    /// 3PL/4PL: whether the guessing floor is free (default true); see [`FitOptions::guessing`].
    pub guessing: Option<bool>,
    /// Beta shape parameters [alpha, beta] of the guessing floor's and the upper asymptote's
    /// priors (see [`Priors::guessing_beta`]).
    pub guessing_prior: Option<[f64; 2]>,
    pub upper_prior: Option<[f64; 2]>,
    pub tolerance: Option<f64>,
    pub max_iter: Option<usize>,
    pub threads: Option<usize>,
    pub min_responses: Option<usize>,
    pub quadrature_points: Option<usize>,
    /// One fit of every benchmark together instead of one per benchmark.
    #[serde(default)]
    pub joint: bool,
    /// Accepted for reproducible scripts; every method so far is deterministic.
    pub seed: Option<u64>,
}

fn invalid(key: &str, message: String) -> OptionsError {
    OptionsError::Invalid {
        path: key.into(),
        message,
    }
}

fn positive(key: &str, value: Option<f64>) -> Result<Option<f64>, OptionsError> {
    match value {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            Err(invalid(key, format!("must be a positive number, got {x}")))
        }
        other => Ok(other),
    }
}

fn spread(key: &str, value: Option<f64>) -> Result<Option<f64>, OptionsError> {
    match positive(key, value)? {
        Some(x) if !(SD_RANGE.0..=SD_RANGE.1).contains(&x) => Err(invalid(
            key,
            format!(
                "must be between {:e} and {:e}, got {x:e}",
                SD_RANGE.0, SD_RANGE.1
            ),
        )),
        other => Ok(other),
    }
}

/// Beta shapes above 1: the prior's density then vanishes at 0 and 1, which keeps the
/// asymptote's estimate inside (0, 1).
fn beta_shape(key: &str, [a, b]: [f64; 2]) -> Result<(f64, f64), OptionsError> {
    if a.is_finite() && b.is_finite() && a > 1.0 && b > 1.0 {
        Ok((a, b))
    } else {
        Err(invalid(
            key,
            format!("Beta shapes [alpha, beta] must be finite and above 1, got [{a}, {b}]"),
        ))
    }
}

fn count(key: &str, value: Option<usize>) -> Result<Option<usize>, OptionsError> {
    match value {
        Some(0) => Err(invalid(key, "must be a positive integer, got 0".into())),
        other => Ok(other),
    }
}

impl IrtOptions {
    /// The fit these options describe for `model` by `method`: the method's default priors
    /// unless named, then any explicit standard deviation.
    pub fn fit_options(&self, model: IrtModel, method: Method) -> Result<FitOptions, OptionsError> {
        let mut priors = self
            .priors
            .map_or_else(|| Priors::default_for(method), PriorSet::priors);
        if let Some(sd) = spread("ability_sd", self.ability_sd)? {
            priors.ability_sd = sd;
        }
        if let Some(sd) = spread("difficulty_sd", self.difficulty_sd)? {
            priors.difficulty_sd = sd;
        }
        if let Some(sd) = spread("log_discrimination_sd", self.log_discrimination_sd)? {
            priors.log_discrimination_sd = sd;
        }
        if let Some(bound) = positive("max_discrimination", self.max_discrimination)? {
            priors.max_discrimination = bound;
        }
        for (key, value, target) in [
            (
                "guessing_prior",
                self.guessing_prior,
                &mut priors.guessing_beta,
            ),
            ("upper_prior", self.upper_prior, &mut priors.upper_beta),
        ] {
            if let Some(shape) = value {
                *target = beta_shape(key, shape)?;
            }
        }
        if !model.has_asymptotes() {
            for (key, set) in [
                ("guessing", self.guessing.is_some()),
                ("guessing_prior", self.guessing_prior.is_some()),
                ("upper_prior", self.upper_prior.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        key,
                        format!("belongs to '3pl' and '4pl', not '{}'", model.name()),
                    ));
                }
            }
        }
        let defaults = FitOptions::default();
        let threads = match count("threads", self.threads)? {
            Some(n) => Some(
                crate::limits::check_threads("the thread count", n)
                    .map_err(|e| invalid("threads", e.to_string()))?,
            ),
            None => None,
        };
        Ok(FitOptions {
            model,
            method,
            priors,
            tolerance: positive("tolerance", self.tolerance)?.unwrap_or(defaults.tolerance),
            max_iter: count("max_iter", self.max_iter)?.unwrap_or(defaults.max_iter),
            threads,
            min_responses: count("min_responses", self.min_responses)?
                .unwrap_or(defaults.min_responses),
            quadrature_points: count("quadrature_points", self.quadrature_points)?,
            guessing: self.guessing.unwrap_or(defaults.guessing),
            ..defaults
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse;

    #[test]
    fn named_priors_then_explicit_spreads() {
        let o: IrtOptions = parse(r#"{"priors": "vague", "ability_sd": 2}"#).unwrap();
        let f = o.fit_options(IrtModel::OnePl, Method::Jml).unwrap();
        assert_eq!(f.priors.difficulty_sd, 1e3);
        assert_eq!(f.priors.ability_sd, 2.0);
        // Without a name, the method's default set.
        let f = IrtOptions::default()
            .fit_options(IrtModel::OnePl, Method::Vi)
            .unwrap();
        assert_eq!(f.priors, Priors::vague());
    }

    #[test]
    fn bad_values_name_the_option() {
        let check = |json: &str, expected: &str| {
            let e = parse::<IrtOptions>(json)
                .and_then(|o| o.fit_options(IrtModel::OnePl, Method::Jml))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(expected), "{json}: {e}");
        };
        check(
            r#"{"difficulty_sd": 0}"#,
            "option `difficulty_sd`: must be a positive number",
        );
        check(
            r#"{"ability_sd": 1e9}"#,
            "option `ability_sd`: must be between 1e-4 and 1e8",
        );
        check(
            r#"{"max_iter": 0}"#,
            "option `max_iter`: must be a positive integer",
        );
        check(
            r#"{"max_iter": -3}"#,
            "option `max_iter`: invalid value: integer `-3`",
        );
        check(
            r#"{"guessing_prior": [0.5, 3]}"#,
            "option `guessing_prior`: Beta shapes [alpha, beta] must be finite and above 1, got [0.5, 3]",
        );
        check(
            r#"{"guessing": false}"#,
            "option `guessing`: belongs to '3pl' and '4pl', not '1pl'",
        );
        check(
            r#"{"max_discrimination": -1}"#,
            "option `max_discrimination`: must be a positive number, got -1",
        );
        check(
            r#"{"priors": "flat"}"#,
            "option `priors`: unknown variant `flat`",
        );
        check(r#"{"tolerence": 1}"#, "options: unknown field `tolerence`");
        check(r#"{"seed": -1}"#, "option `seed`: invalid value");
        check(
            r#"{"joint": 1}"#,
            "option `joint`: invalid type: integer `1`, expected a boolean",
        );
    }
}
