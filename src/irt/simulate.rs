//! Synthetic responses with known parameters, for recovery tests and benchmarks: a
//! leaderboard-like mixture of abilities (many ordinary models, a cluster of strong
//! fine-tunes), optional near-trivial and near-impossible items, missing responses; seeded.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{sigmoid, IrtModel, ResponseMatrix, Result};

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulationSpec {
    pub n_models: usize,
    pub n_items: usize,
    pub model: IrtModel,
    /// Share of (model, item) cells left unobserved.
    pub missing: f64,
    /// Share of items placed far outside the ability range (half near-trivial, half
    /// near-impossible).
    pub extreme_items: f64,
    pub seed: u64,
}

impl Default for SimulationSpec {
    fn default() -> Self {
        Self {
            n_models: 1000,
            n_items: 200,
            model: IrtModel::OnePl,
            missing: 0.1,
            extreme_items: 0.0,
            seed: 42,
        }
    }
}

/// The true parameters and the simulated cells (model-major; `None` = missing).
#[derive(Debug, Clone)]
pub struct Simulation {
    pub abilities: Vec<f64>,
    pub difficulties: Vec<f64>,
    pub discriminations: Vec<f64>,
    pub cells: Vec<Option<bool>>,
    pub spec: SimulationSpec,
}

/// A standard normal draw (Box-Muller; 1 - u keeps the logarithm finite).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u: f64 = 1.0 - rng.random::<f64>();
    let v: f64 = rng.random::<f64>();
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

pub fn simulate(spec: SimulationSpec) -> Simulation {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let abilities: Vec<f64> = (0..spec.n_models)
        .map(|_| {
            if rng.random::<f64>() < 0.7 {
                standard_normal(&mut rng)
            } else {
                1.5 + 0.5 * standard_normal(&mut rng)
            }
        })
        .collect();
    let difficulties: Vec<f64> = (0..spec.n_items)
        .map(|_| {
            let u: f64 = rng.random();
            if u < spec.extreme_items / 2.0 {
                -7.0 + 0.5 * standard_normal(&mut rng)
            } else if u < spec.extreme_items {
                8.0 + 0.5 * standard_normal(&mut rng)
            } else {
                1.5 * standard_normal(&mut rng)
            }
        })
        .collect();
    let discriminations: Vec<f64> = (0..spec.n_items)
        .map(|_| match spec.model {
            IrtModel::OnePl => 1.0,
            IrtModel::TwoPl => (0.3 * standard_normal(&mut rng)).exp(),
        })
        .collect();
    let mut cells = Vec::with_capacity(spec.n_models * spec.n_items);
    for theta in &abilities {
        for (b, a) in difficulties.iter().zip(&discriminations) {
            let missing = rng.random::<f64>() < spec.missing;
            let correct = rng.random::<f64>() < sigmoid(a * (theta - b));
            cells.push((!missing).then_some(correct));
        }
    }
    Simulation {
        abilities,
        difficulties,
        discriminations,
        cells,
        spec,
    }
}

impl Simulation {
    pub fn model_id(j: usize) -> String {
        format!("sim-model-{j:05}")
    }

    pub fn item_id(i: usize) -> String {
        format!("sim-item-{i:05}")
    }

    /// The responses as a matrix, without going through ids.
    pub fn matrix(&self) -> Result<ResponseMatrix> {
        ResponseMatrix::from_dense(
            (0..self.spec.n_models).map(Self::model_id).collect(),
            (0..self.spec.n_items).map(Self::item_id).collect(),
            &self.cells,
        )
    }
}
