//! A small, seeded responses sample that the project generates itself for its default job
//! and its tests: Rasch-model responses of a leaderboard-like population of models to two
//! synthetic benchmarks whose items carry a human-style difficulty proxy.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::responses::ResponsesBuilder;
use super::DuplicatePolicy;

/// Size and seed of the sample.
#[derive(Debug, Clone, Copy)]
pub struct SampleSpec {
    pub n_models: usize,
    pub items_per_benchmark: usize,
    pub missing_fraction: f64,
    pub seed: u64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self {
            n_models: 400,
            items_per_benchmark: 150,
            missing_fraction: 0.05,
            seed: 42,
        }
    }
}

/// The generated tables.
pub struct Sample {
    /// Canonical `responses`.
    pub responses: RecordBatch,
    /// `items(benchmark, item_id, question, n_steps, true_difficulty)`.
    pub items: RecordBatch,
}

use crate::irt::simulate::standard_normal as normal;

const NUMBER_WORDS: [&str; 10] = [
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
];

/// Builds a question whose length grows with its number of steps, as human proxies do.
fn question(benchmark: &str, steps: i64, rng: &mut ChaCha8Rng) -> String {
    let mut parts = Vec::new();
    for _ in 0..steps {
        let a = NUMBER_WORDS[rng.random_range(0..NUMBER_WORDS.len())];
        parts.push(match benchmark {
            "arithmetic" => format!("add {a}"),
            _ => format!("then the {a} friends walk on"),
        });
    }
    format!("Start from one, {}. What is the result?", parts.join(", "))
}

pub fn generate(spec: SampleSpec) -> Sample {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let benchmarks = ["arithmetic", "reading"];
    let mut item_rows: Vec<(String, String, String, i64, f64)> = Vec::new();
    for bench in benchmarks {
        for i in 0..spec.items_per_benchmark {
            let steps = rng.random_range(1..=8i64);
            // Difficulty rises with steps but the proxy explains only part of it.
            let b = -2.0 + 0.45 * steps as f64 + 0.9 * normal(&mut rng);
            let q = question(bench, steps, &mut rng);
            item_rows.push((bench.to_string(), format!("{bench}_{i:04}"), q, steps, b));
        }
    }
    // A leaderboard mixes many weak base models with a cluster of strong fine-tunes.
    let abilities: Vec<f64> = (0..spec.n_models)
        .map(|_| {
            if rng.random::<f64>() < 0.7 {
                normal(&mut rng)
            } else {
                1.5 + 0.5 * normal(&mut rng)
            }
        })
        .collect();
    let mut builder = ResponsesBuilder::new(DuplicatePolicy::Error);
    let source = builder.begin_source("generated sample", "response");
    let mut n = 0;
    for (m, theta) in abilities.iter().enumerate() {
        let model = format!("sample-org/model-{m:04}");
        for (bench, item, _, _, b) in &item_rows {
            let missing = rng.random::<f64>() < spec.missing_fraction;
            let p = crate::irt::probability(*theta, *b, 1.0, 0.0, 1.0);
            let correct = rng.random::<f64>() < p;
            if !missing {
                n += 1;
                builder
                    .push(source, n, &model, bench, item, correct)
                    .expect("generated ids are non-empty");
            }
        }
    }
    let responses = builder
        .finish("generated sample")
        .expect("sample is non-empty and has no duplicates");
    let schema = Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("question", DataType::Utf8, false),
        Field::new("n_steps", DataType::Int64, false),
        Field::new("true_difficulty", DataType::Float64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            item_rows.iter().map(|r| r.0.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            item_rows.iter().map(|r| r.1.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            item_rows.iter().map(|r| r.2.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(item_rows.iter().map(|r| r.3))),
        Arc::new(Float64Array::from_iter_values(
            item_rows.iter().map(|r| r.4),
        )),
    ];
    let items = RecordBatch::try_new(schema, columns).expect("columns match schema");
    Sample { responses, items }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sample() {
        let spec = SampleSpec {
            n_models: 20,
            items_per_benchmark: 10,
            ..Default::default()
        };
        let (a, b) = (generate(spec), generate(spec));
        assert_eq!(a.responses, b.responses);
        assert_eq!(a.items, b.items);
        assert!(a.responses.num_rows() > 300 && a.responses.num_rows() <= 400);
        let c = generate(SampleSpec { seed: 7, ..spec });
        assert_ne!(a.responses, c.responses);
    }
}
