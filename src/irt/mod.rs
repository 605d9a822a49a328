//! Item Response Theory: a compact response matrix and estimators of item difficulty and
//! model ability. No SQL types here; `udfs/irt_fit.rs` is the SQL face.
//!
//! 1PL (Rasch): `P(correct) = sigmoid(theta_j - b_i)`; 2PL: `sigmoid(a_i (theta_j - b_i))`;
//! 3PL and 4PL: `g_i + (u_i - g_i) sigmoid(a_i (theta_j - b_i))` with a guessing floor g
//! (u = 1 for 3PL). Higher `b` is harder.

pub mod adaptive;
mod asymptotes;
pub mod batches;
pub mod error;
pub mod jml;
pub mod matrix;
pub mod mml;
pub mod options;
mod progress;
pub mod quadrature;
pub mod scoring;
pub mod simulate;
mod summary;
pub mod vi;

pub use error::{IrtError, Result};
pub use matrix::{MatrixBuilder, ResponseMatrix};

/// The item response model; in options, `'1pl'` (or `'rasch'`), `'2pl'`, `'3pl'` or `'4pl'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum IrtModel {
    OnePl,
    TwoPl,
    /// 2PL with a guessing floor g.
    ThreePl,
    /// 3PL with an upper asymptote u (or, without the floor, py-irt's "4pl").
    FourPl,
}

impl IrtModel {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1pl" | "rasch" => Ok(Self::OnePl),
            "2pl" => Ok(Self::TwoPl),
            "3pl" => Ok(Self::ThreePl),
            "4pl" => Ok(Self::FourPl),
            other => Err(IrtError::BadOption {
                key: "model".into(),
                message: format!("unknown model {other:?}; expected '1pl', '2pl', '3pl' or '4pl'"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OnePl => "1pl",
            Self::TwoPl => "2pl",
            Self::ThreePl => "3pl",
            Self::FourPl => "4pl",
        }
    }

    /// Whether the model has a guessing floor or an upper asymptote.
    pub fn has_asymptotes(self) -> bool {
        matches!(self, Self::ThreePl | Self::FourPl)
    }
}

/// The estimation method; in options, `'jml'`, `'vi'` or `'mml'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum Method {
    /// Joint maximum a posteriori by alternating Newton steps.
    Jml,
    /// Mean-field Gaussian variational inference for py-irt's model, by coordinate ascent
    /// with quadrature expectations.
    Vi,
    /// Marginal maximum likelihood by EM over a quadrature grid of abilities; EAP abilities.
    Mml,
}

impl Method {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "jml" | "map" => Ok(Self::Jml),
            "vi" => Ok(Self::Vi),
            "mml" | "em" => Ok(Self::Mml),
            other => Err(IrtError::BadOption {
                key: "method".into(),
                message: format!("unknown method {other:?}; expected 'jml', 'vi' or 'mml'"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Jml => "jml",
            Self::Vi => "vi",
            Self::Mml => "mml",
        }
    }
}

/// In an options object the key's path names the option: the message alone.
fn without_key(e: IrtError) -> String {
    match e {
        IrtError::BadOption { message, .. } => message,
        other => other.to_string(),
    }
}

impl TryFrom<String> for IrtModel {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s).map_err(without_key)
    }
}

impl TryFrom<String> for Method {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        Self::parse(&s).map_err(without_key)
    }
}

/// Written as their names.
impl serde::Serialize for IrtModel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl serde::Serialize for Method {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// Priors: theta ~ N(0, ability_sd^2), b ~ N(0, difficulty_sd^2), log a ~ N(0,
/// log_discrimination_sd^2) truncated above at a = max_discrimination; or, when `hierarchical`, py-irt's hierarchical priors
/// (theta ~ N(mu_theta, 1/u_theta^2), b ~ N(mu_b, 1/u_b^2), mu ~ N(0, 1e6^2), u ~ Gamma(1, 1)),
/// which only `vi` fits. `mml` uses the item priors only; its abilities follow N(0, 1) on the
/// 2PL scale and N(0, sigma^2) with sigma estimated on the 1PL scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    pub ability_sd: f64,
    pub difficulty_sd: f64,
    pub log_discrimination_sd: f64,
    /// The largest 2PL slope a fit may reach. With thousands of models an item that splits
    /// them cleanly has a likelihood that keeps rising as a grows (joint estimation above all,
    /// where the abilities move apart to sharpen the split); the bound keeps such items finite
    /// and the fit convergent. Items at the bound are flagged `max_discrimination`.
    pub max_discrimination: f64,
    /// Beta(shape) priors of the 3PL/4PL guessing floor g and upper asymptote u: they keep
    /// each inside (0, 1) and carry it where few responses inform it.
    pub guessing_beta: (f64, f64),
    pub upper_beta: (f64, f64),
    pub hierarchical: bool,
}

/// The default bound on 2PL slopes: far above what a well-identified item reaches on the
/// N(0, 1) ability scale (a = 20 takes p from 12% to 88% within 0.2 of b).
pub const DEFAULT_MAX_DISCRIMINATION: f64 = 20.0;

impl Default for Priors {
    fn default() -> Self {
        Self {
            ability_sd: 1.0,
            difficulty_sd: 3.0,
            log_discrimination_sd: 1.0,
            max_discrimination: DEFAULT_MAX_DISCRIMINATION,
            // Mode 1/8, mean 1/5: below the chance rate of four-way multiple choice, so the
            // floor is what the data say it is wherever they say anything.
            guessing_beta: (2.0, 8.0),
            upper_beta: (8.0, 2.0),
            hierarchical: false,
        }
    }
}

impl Priors {
    /// py-irt's default priors: theta ~ N(0, 1), b ~ N(0, 1e3^2).
    pub fn vague() -> Self {
        Self {
            difficulty_sd: 1e3,
            ..Self::default()
        }
    }

    /// py-irt's hierarchical priors.
    pub fn hierarchical() -> Self {
        Self {
            hierarchical: true,
            ..Self::default()
        }
    }

    /// The priors a method uses when the options name none: py-irt's vague ones for `vi`
    /// (the model the paper fitted), the weak normal ones otherwise.
    pub fn default_for(method: Method) -> Self {
        match method {
            Method::Vi => Self::vague(),
            Method::Jml | Method::Mml => Self::default(),
        }
    }
}

/// Everything that decides a fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    pub model: IrtModel,
    pub method: Method,
    pub priors: Priors,
    /// Stop when the log posterior changes by less than this per response between sweeps.
    pub tolerance: f64,
    pub max_iter: usize,
    /// Worker threads; `None` uses rayon's default (all cores).
    pub threads: Option<usize>,
    /// Models with fewer responses than this are flagged `few_responses`.
    pub min_responses: usize,
    /// Show a progress line on stderr for fits longer than a second.
    pub progress: bool,
    /// Quadrature points: per expectation for `vi` (Gauss-Hermite), on the ability grid for
    /// `mml`. `None` takes the method's default (7 and 61).
    pub quadrature_points: Option<usize>,
    /// 3PL/4PL: whether the guessing floor g is free; false fixes g = 0 (with '4pl', py-irt's
    /// "4pl": u sigmoid(a (theta - b))).
    pub guessing: bool,
    /// Stops the fit at its next sweep when set (a dropped query, Ctrl-C).
    pub cancel: crate::cancel::Cancel,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            model: IrtModel::OnePl,
            method: Method::Jml,
            priors: Priors::default(),
            tolerance: 1e-9,
            max_iter: 500,
            threads: None,
            min_responses: 5,
            progress: true,
            quadrature_points: None,
            guessing: true,
            cancel: Default::default(),
        }
    }
}

/// Why an estimate rests on the prior more than on the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// Every response was correct: no finite maximum-likelihood estimate.
    AllCorrect,
    /// Every response was wrong.
    AllWrong,
    /// A model with fewer responses than `min_responses`.
    FewResponses,
    /// A 2PL item whose slope stopped at the `max_discrimination` bound.
    MaxDiscrimination,
    /// A 3PL/4PL item whose guessing floor rests on its prior: too few responses below it.
    GuessingFromPrior,
    /// A 4PL item whose upper asymptote rests on its prior: too few responses above it.
    UpperFromPrior,
}

impl Flag {
    /// The name in the `flag` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::AllCorrect => "all_correct",
            Self::AllWrong => "all_wrong",
            Self::FewResponses => "few_responses",
            Self::MaxDiscrimination => "max_discrimination",
            Self::GuessingFromPrior => "guessing_from_prior",
            Self::UpperFromPrior => "upper_from_prior",
        }
    }
}

/// Estimates of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemParams {
    pub difficulty: f64,
    pub discrimination: f64,
    /// The guessing floor g (0 but for 3PL/4PL).
    pub guessing: f64,
    /// The upper asymptote u (1 but for 4PL).
    pub upper: f64,
    pub difficulty_se: f64,
    pub n_responses: usize,
    pub p_correct: f64,
    /// Information-weighted mean square of residuals (1 is ideal).
    pub infit: f64,
    /// Unweighted mean square of standardized residuals (1 is ideal).
    pub outfit: f64,
    /// All correct or all wrong: the estimate comes from the prior's shrinkage.
    pub flag: Option<Flag>,
}

/// Estimates of one model (subject).
#[derive(Debug, Clone, PartialEq)]
pub struct Ability {
    pub ability: f64,
    pub ability_se: f64,
    pub n_responses: usize,
    pub flag: Option<Flag>,
}

/// A finished fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    pub items: Vec<ItemParams>,
    pub abilities: Vec<Ability>,
    /// log p(responses | point estimates).
    pub log_likelihood: f64,
    /// What the method maximised: the log posterior (`jml`), the evidence lower bound (`vi`),
    /// the log marginal likelihood plus the items' log prior (`mml`).
    pub objective: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Fits `matrix` as `options` say, on `options.threads` threads.
pub fn fit(matrix: &ResponseMatrix, options: &FitOptions) -> Result<Fit> {
    if options.priors.hierarchical && options.method != Method::Vi {
        return Err(IrtError::BadOption {
            key: "priors".into(),
            message: format!(
                "hierarchical priors are fitted by method 'vi' only, not '{}'",
                options.method.name()
            ),
        });
    }
    if options.model.has_asymptotes() && options.method != Method::Mml {
        return Err(IrtError::BadOption {
            key: "method".into(),
            message: format!(
                "'{}' is fitted by method 'mml' only, not '{}'",
                options.model.name(),
                options.method.name()
            ),
        });
    }
    if options.model == IrtModel::ThreePl && !options.guessing {
        return Err(IrtError::BadOption {
            key: "guessing".into(),
            message: "'3pl' without its guessing floor is '2pl'; {\"guessing\": false} goes \
                      with '4pl' (py-irt's 4pl)"
                .into(),
        });
    }
    let run = || match options.method {
        Method::Jml => jml::fit(matrix, options),
        Method::Vi => vi::fit(matrix, options),
        Method::Mml if options.model.has_asymptotes() => asymptotes::fit(matrix, options),
        Method::Mml => mml::fit(matrix, options),
    };
    let fit = match options.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| IrtError::BadOption {
                key: "threads".into(),
                message: e.to_string(),
            })?
            .install(run),
        None => run(),
    }?;
    check_finite(matrix, &fit, options)?;
    Ok(fit)
}

/// A fit whose estimates are not all finite is an error naming what to change, never a
/// table with holes.
fn check_finite(matrix: &ResponseMatrix, fit: &Fit, options: &FitOptions) -> Result<()> {
    let bad_item = fit.items.iter().position(|p| {
        !(p.difficulty.is_finite() && p.discrimination.is_finite() && !p.difficulty_se.is_nan())
    });
    let bad_model = fit
        .abilities
        .iter()
        .position(|a| !a.ability.is_finite() || a.ability_se.is_nan());
    let place = match (bad_item, bad_model) {
        (Some(i), _) => format!("item `{}`", matrix.items[i]),
        (None, Some(j)) => format!("model `{}`", matrix.models[j]),
        (None, None) => return Ok(()),
    };
    let p = &options.priors;
    Err(IrtError::Invalid(format!(
        "the {} fit produced a non-finite estimate for {place}: the options are outside a          workable range (ability_sd {}, difficulty_sd {}, log_discrimination_sd {}, tolerance {})",
        options.method.name(),
        p.ability_sd,
        p.difficulty_sd,
        p.log_discrimination_sd,
        options.tolerance
    )))
}

#[inline]
pub(crate) fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The probability of a correct response under the 4PL model,
/// `g + (u - g) sigmoid(a (theta - b))`: ability `theta`, difficulty `b`, discrimination `a`,
/// guessing floor `g`, upper asymptote `u` (3PL: u = 1; 2PL: g = 0 as well; 1PL: a = 1 too).
/// The one formula every caller (irt_prob, simulations, sample data) uses.
#[inline]
pub fn probability(theta: f64, b: f64, a: f64, g: f64, u: f64) -> f64 {
    g + (u - g) * sigmoid(a * (theta - b))
}
