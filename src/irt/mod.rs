//! Item Response Theory: a compact response matrix and estimators of item difficulty and
//! model ability. No SQL types here; `udfs/irt_fit.rs` is the SQL face.
//!
//! 1PL (Rasch): `P(correct) = sigmoid(theta_j - b_i)`; 2PL: `sigmoid(a_i (theta_j - b_i))`.
//! Higher `b` is harder.

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

/// The item response model; in options, `'1pl'` (or `'rasch'`) or `'2pl'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum IrtModel {
    OnePl,
    TwoPl,
}

impl IrtModel {
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "1pl" | "rasch" => Ok(Self::OnePl),
            "2pl" => Ok(Self::TwoPl),
            other => Err(IrtError::BadOption {
                key: "model".into(),
                message: format!("unknown model {other:?}; expected '1pl' or '2pl'"),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OnePl => "1pl",
            Self::TwoPl => "2pl",
        }
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
/// log_discrimination_sd^2); or, when `hierarchical`, py-irt's hierarchical priors
/// (theta ~ N(mu_theta, 1/u_theta^2), b ~ N(mu_b, 1/u_b^2), mu ~ N(0, 1e6^2), u ~ Gamma(1, 1)),
/// which only `vi` fits. `mml` uses the item priors only; its abilities follow N(0, 1) on the
/// 2PL scale and N(0, sigma^2) with sigma estimated on the 1PL scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Priors {
    pub ability_sd: f64,
    pub difficulty_sd: f64,
    pub log_discrimination_sd: f64,
    pub hierarchical: bool,
}

impl Default for Priors {
    fn default() -> Self {
        Self {
            ability_sd: 1.0,
            difficulty_sd: 3.0,
            log_discrimination_sd: 1.0,
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
}

impl Flag {
    /// The name in the `flag` column.
    pub fn name(self) -> &'static str {
        match self {
            Self::AllCorrect => "all_correct",
            Self::AllWrong => "all_wrong",
            Self::FewResponses => "few_responses",
        }
    }
}

/// Estimates of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemParams {
    pub difficulty: f64,
    pub discrimination: f64,
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
    let run = || match options.method {
        Method::Jml => jml::fit(matrix, options),
        Method::Vi => vi::fit(matrix, options),
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

/// The probability of a correct response under the 3PL model,
/// `c + (1 - c) sigmoid(a (theta - b))`: ability `theta`, difficulty `b`, discrimination `a`,
/// guessing `c` (1PL: a = 1, c = 0). The one formula every caller (irt_prob, simulations,
/// sample data) uses.
#[inline]
pub fn probability(theta: f64, b: f64, a: f64, c: f64) -> f64 {
    c + (1.0 - c) * sigmoid(a * (theta - b))
}
