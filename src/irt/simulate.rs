//! Synthetic responses with known parameters, for recovery tests and benchmarks: a
//! leaderboard-like mixture of abilities (many ordinary models, a cluster of strong
//! fine-tunes), optional near-trivial and near-impossible items, missing responses; seeded.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{IrtModel, ResponseMatrix, Result};

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

/// The options object of `irt_simulate`: every field optional.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationOptions {
    pub model: IrtModel,
    pub missing: f64,
    pub extreme_items: f64,
    pub seed: u64,
    /// The benchmark column's value.
    pub benchmark: String,
}

impl Default for SimulationOptions {
    fn default() -> Self {
        let spec = SimulationSpec::default();
        Self {
            model: spec.model,
            missing: spec.missing,
            extreme_items: spec.extreme_items,
            seed: spec.seed,
            benchmark: "sim".into(),
        }
    }
}

impl SimulationOptions {
    /// The spec of `n_models` x `n_items` responses with these options.
    pub fn spec(&self, n_models: usize, n_items: usize) -> SimulationSpec {
        SimulationSpec {
            n_models,
            n_items,
            model: self.model,
            missing: self.missing,
            extreme_items: self.extreme_items,
            seed: self.seed,
        }
    }
}

/// The most cells a simulation may have: each string column of its batch stays under Arrow's
/// 2 GiB offsets, and the largest benchmark here (49 M cells) fits twice over.
pub const MAX_CELLS: usize = 100_000_000;

/// Bytes a simulated response takes: its cell, and its row in the batch (two ids of about
/// 15 bytes with offsets, the benchmark, three f64 truths, a bit).
const BYTES_PER_CELL: usize = 80;

impl SimulationSpec {
    /// Refuses sizes, shares and counts that cannot be simulated here, naming the argument.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n_models == 0 || self.n_items == 0 {
            return Err(format!(
                "n_models and n_items must be at least 1, got {} and {}",
                self.n_models, self.n_items
            ));
        }
        let cells = self
            .n_models
            .checked_mul(self.n_items)
            .filter(|&c| c <= MAX_CELLS);
        let Some(cells) = cells else {
            return Err(format!(
                "n_models x n_items = {} x {} is more than the {MAX_CELLS} cells a simulation may have",
                self.n_models, self.n_items
            ));
        };
        for (name, x) in [
            ("missing", self.missing),
            ("extreme_items", self.extreme_items),
        ] {
            if !(0.0..1.0).contains(&x) {
                return Err(format!("{name} must be in [0, 1), got {x}"));
            }
        }
        crate::limits::check_allocation(
            &format!("simulating {} x {} responses", self.n_models, self.n_items),
            (cells as u128) * BYTES_PER_CELL as u128,
        )
    }
}

/// The true parameters and the simulated cells (model-major; `None` = missing).
#[derive(Debug, Clone)]
pub struct Simulation {
    pub abilities: Vec<f64>,
    pub difficulties: Vec<f64>,
    pub discriminations: Vec<f64>,
    /// Guessing floors (0 but for 3PL/4PL) and upper asymptotes (1 but for 4PL).
    pub guessing: Vec<f64>,
    pub upper: Vec<f64>,
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
            _ => (0.3 * standard_normal(&mut rng)).exp(),
        })
        .collect();
    // Floors like a multiple-choice benchmark's (0.05 to 0.35) and ceilings of items some
    // strong models still miss (0.8 to 1).
    let guessing: Vec<f64> = (0..spec.n_items)
        .map(|_| match spec.model {
            IrtModel::ThreePl | IrtModel::FourPl => 0.05 + 0.3 * rng.random::<f64>(),
            _ => 0.0,
        })
        .collect();
    let upper: Vec<f64> = (0..spec.n_items)
        .map(|_| match spec.model {
            IrtModel::FourPl => 0.8 + 0.2 * rng.random::<f64>(),
            _ => 1.0,
        })
        .collect();
    let mut cells = Vec::with_capacity(spec.n_models * spec.n_items);
    for theta in &abilities {
        for i in 0..spec.n_items {
            let missing = rng.random::<f64>() < spec.missing;
            let p = super::probability(
                *theta,
                difficulties[i],
                discriminations[i],
                guessing[i],
                upper[i],
            );
            let correct = rng.random::<f64>() < p;
            cells.push((!missing).then_some(correct));
        }
    }
    Simulation {
        abilities,
        difficulties,
        discriminations,
        guessing,
        upper,
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

impl Simulation {
    /// The responses in the canonical layout plus the truth:
    /// `model_id, benchmark, item_id, correct, true_ability, true_difficulty, true_discrimination,
    /// true_guessing, true_upper`.
    pub fn to_batch(&self, benchmark: &str) -> arrow::array::RecordBatch {
        use arrow::array::{ArrayRef, BooleanBuilder, Float64Builder, StringBuilder};
        use arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let (n_models, n_items) = (self.spec.n_models, self.spec.n_items);
        let n = self.cells.iter().filter(|c| c.is_some()).count();
        let mut model = StringBuilder::with_capacity(n, n * 15);
        let mut bench = StringBuilder::with_capacity(n, n * benchmark.len());
        let mut item = StringBuilder::with_capacity(n, n * 14);
        let mut correct = BooleanBuilder::with_capacity(n);
        let mut truth: Vec<Float64Builder> =
            (0..5).map(|_| Float64Builder::with_capacity(n)).collect();
        for j in 0..n_models {
            let model_id = Self::model_id(j);
            for i in 0..n_items {
                if let Some(y) = self.cells[j * n_items + i] {
                    model.append_value(&model_id);
                    bench.append_value(benchmark);
                    item.append_value(Self::item_id(i));
                    correct.append_value(y);
                    let values = [
                        self.abilities[j],
                        self.difficulties[i],
                        self.discriminations[i],
                        self.guessing[i],
                        self.upper[i],
                    ];
                    for (column, value) in truth.iter_mut().zip(values) {
                        column.append_value(value);
                    }
                }
            }
        }
        let truth_names = [
            "true_ability",
            "true_difficulty",
            "true_discrimination",
            "true_guessing",
            "true_upper",
        ];
        let mut fields = vec![
            Field::new("model_id", DataType::Utf8, false),
            Field::new("benchmark", DataType::Utf8, false),
            Field::new("item_id", DataType::Utf8, false),
            Field::new("correct", DataType::Boolean, false),
        ];
        fields.extend(
            truth_names
                .iter()
                .map(|name| Field::new(*name, DataType::Float64, false)),
        );
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(model.finish()),
            Arc::new(bench.finish()),
            Arc::new(item.finish()),
            Arc::new(correct.finish()),
        ];
        columns.extend(truth.iter_mut().map(|c| Arc::new(c.finish()) as ArrayRef));
        let schema = Arc::new(Schema::new(fields));
        arrow::array::RecordBatch::try_new(schema, columns).expect("columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_and_shaped() {
        let spec = SimulationSpec {
            n_models: 50,
            n_items: 20,
            missing: 0.2,
            extreme_items: 0.2,
            ..Default::default()
        };
        let (a, b) = (simulate(spec), simulate(spec));
        assert_eq!(a.cells, b.cells);
        assert_ne!(a.cells, simulate(SimulationSpec { seed: 1, ..spec }).cells);
        let missing = a.cells.iter().filter(|c| c.is_none()).count() as f64 / a.cells.len() as f64;
        assert!((0.1..0.3).contains(&missing), "{missing}");
        assert!(
            a.difficulties.iter().any(|b| b.abs() > 5.0),
            "extreme items present"
        );
        let batch = a.to_batch("sim");
        assert_eq!(
            batch.num_rows(),
            a.cells.iter().filter(|c| c.is_some()).count()
        );
        assert_eq!(a.matrix().unwrap().n_responses(), batch.num_rows());
    }

    #[test]
    fn absurd_sizes_are_refused() {
        let huge = |n_models, n_items| SimulationSpec {
            n_models,
            n_items,
            ..Default::default()
        };
        for (m, i) in [
            (1_000_000_000, 1_000_000_000),
            (usize::MAX, 2),
            (0, 5),
            (200_000, 1_000),
        ] {
            let e = huge(m, i).validate().unwrap_err();
            assert!(e.contains("n_models"), "{m} x {i}: {e}");
        }
        let e = SimulationSpec {
            missing: 1.5,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.contains("missing"), "{e}");
        SimulationSpec::default().validate().unwrap();
    }
}
