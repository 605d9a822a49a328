//! `crossdiff bench irt`: fits simulated leaderboards of the scales and the real
//! Open LLM Leaderboard benchmarks, and prints time, throughput, peak memory and accuracy.
//! Each case runs in its own process so that peak memory is the case's own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::data::files::write_parquet;
use crate::irt::batches::MatrixSet;
use crate::irt::simulate::{simulate, SimulationSpec};
use crate::irt::{fit, FitOptions, IrtModel};
use crate::stats::{bin_agreement, spearman};

/// One benchmark case: a simulated scale or a real data file.
#[derive(Debug, Clone)]
pub enum Case {
    Simulated {
        n_models: usize,
        n_items: usize,
        model: IrtModel,
    },
    Real {
        path: PathBuf,
    },
}

/// The default cases: the two scales for 1PL, the large one for 2PL, and oll_v1.
pub fn default_cases(real: Option<&Path>) -> Vec<(Case, IrtModel)> {
    let mut cases = vec![
        (
            Case::Simulated {
                n_models: 4500,
                n_items: 1319,
                model: IrtModel::OnePl,
            },
            IrtModel::OnePl,
        ),
        (
            Case::Simulated {
                n_models: 4500,
                n_items: 12032,
                model: IrtModel::OnePl,
            },
            IrtModel::OnePl,
        ),
        (
            Case::Simulated {
                n_models: 4500,
                n_items: 1319,
                model: IrtModel::TwoPl,
            },
            IrtModel::TwoPl,
        ),
        (
            Case::Simulated {
                n_models: 4500,
                n_items: 12032,
                model: IrtModel::TwoPl,
            },
            IrtModel::TwoPl,
        ),
    ];
    if let Some(p) = real {
        cases.push((
            Case::Real {
                path: p.to_path_buf(),
            },
            IrtModel::OnePl,
        ));
    }
    cases
}

pub fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn files(case: &Case, cache: &Path) -> (PathBuf, Option<PathBuf>) {
    match case {
        Case::Simulated {
            n_models,
            n_items,
            model,
        } => {
            let stem = format!("sim_{}_{n_models}x{n_items}", model.name());
            (
                cache.join(format!("{stem}.parquet")),
                Some(cache.join(format!("{stem}.truth.parquet"))),
            )
        }
        Case::Real { path } => (path.clone(), None),
    }
}

/// Whether a case still needs `prepare`.
pub fn needs_preparing(case: &Case, cache: &Path) -> bool {
    let (data, truth) = files(case, cache);
    !data.exists() || truth.is_some_and(|t| !t.exists())
}

/// Simulates a case's responses and writes them and the true difficulties to `cache`
/// (done once, in a process of its own, so it does not count in the measured peak memory).
pub fn prepare(case: &Case, cache: &Path) -> Result<(), String> {
    let Case::Simulated {
        n_models,
        n_items,
        model,
    } = case
    else {
        return Ok(());
    };
    let spec = SimulationSpec {
        n_models: *n_models,
        n_items: *n_items,
        model: *model,
        missing: 0.1,
        ..Default::default()
    };
    let sim = simulate(spec);
    let (data, truth) = files(case, cache);
    let truth_batch = {
        use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
        let ids: Vec<String> = (0..*n_items)
            .map(crate::irt::simulate::Simulation::item_id)
            .collect();
        let columns: Vec<ArrayRef> = vec![
            std::sync::Arc::new(StringArray::from(ids)),
            std::sync::Arc::new(Float64Array::from(sim.difficulties.clone())),
        ];
        RecordBatch::try_from_iter(vec![
            ("item_id", columns[0].clone()),
            ("true_difficulty", columns[1].clone()),
        ])
        .map_err(|e| e.to_string())?
    };
    write_parquet(&truth.expect("simulated"), &[truth_batch]).map_err(|e| e.to_string())?;
    write_parquet(&data, &[sim.to_batch("sim")]).map_err(|e| e.to_string())
}

async fn read(path: &Path, columns: &[&str]) -> Result<Vec<arrow::array::RecordBatch>, String> {
    let ctx = SessionContext::new();
    ctx.read_parquet(
        path.to_string_lossy().as_ref(),
        ParquetReadOptions::default(),
    )
    .await
    .and_then(|df| df.select_columns(columns))
    .map_err(|e| e.to_string())?
    .collect()
    .await
    .map_err(|e| e.to_string())
}

/// Runs one case in this process and returns its table row(s).
pub async fn run_case(case: &Case, model: IrtModel, cache: &Path) -> Result<Vec<String>, String> {
    let (path, truth_path) = files(case, cache);
    let truth: Option<std::collections::HashMap<String, f64>> = match truth_path {
        Some(p) => {
            use arrow::array::AsArray;
            let mut map = std::collections::HashMap::new();
            for b in read(&p, &["item_id", "true_difficulty"]).await? {
                let ids = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)
                    .map_err(|e| e.to_string())?;
                let (ids, t) = (
                    ids.as_string::<i32>(),
                    b.column(1).as_primitive::<arrow::datatypes::Float64Type>(),
                );
                for i in 0..b.num_rows() {
                    map.insert(ids.value(i).to_string(), t.value(i));
                }
            }
            Some(map)
        }
        None => None,
    };
    // Read and build as one stream, as irt_fit does: the source is never held whole.
    let started = Instant::now();
    let ctx = SessionContext::new();
    let mut stream = ctx
        .read_parquet(
            path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .and_then(|df| df.select_columns(&["model_id", "benchmark", "item_id", "correct"]))
        .map_err(|e| e.to_string())?
        .execute_stream()
        .await
        .map_err(|e| e.to_string())?;
    let mut set = MatrixSet::new(false);
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        set.push_batch(&batch.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let read_s = started.elapsed().as_secs_f64();
    let built = Instant::now();
    let mats = set.finish().map_err(|e| e.to_string())?;
    let build_s = built.elapsed().as_secs_f64();
    let mut rows = Vec::new();
    for (benchmark, m) in mats {
        let fitted = Instant::now();
        let options = FitOptions {
            model,
            progress: false,
            ..Default::default()
        };
        let f = fit(&m, &options).map_err(|e| e.to_string())?;
        let fit_s = fitted.elapsed().as_secs_f64();
        let (rho, rmse, deciles) = match &truth {
            Some(t) => {
                let true_b: Vec<f64> = m.items.iter().map(|id| t[id]).collect();
                let est: Vec<f64> = f.items.iter().map(|i| i.difficulty).collect();
                let shift = true_b.iter().sum::<f64>() / true_b.len() as f64
                    - est.iter().sum::<f64>() / est.len() as f64;
                let rmse = (est
                    .iter()
                    .zip(&true_b)
                    .map(|(e, t)| (e + shift - t).powi(2))
                    .sum::<f64>()
                    / est.len() as f64)
                    .sqrt();
                (
                    format!("{:.5}", spearman(&est, &true_b).unwrap_or(f64::NAN)),
                    format!("{rmse:.3}"),
                    format!("{:.3}", bin_agreement(&est, &true_b, 10)),
                )
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        let name = match case {
            Case::Simulated {
                n_models,
                n_items,
                model,
            } => format!("sim {} {n_models}x{n_items}", model.name()),
            Case::Real { .. } => format!("oll_v1 {}", benchmark.unwrap_or_default()),
        };
        rows.push(format!(
            "| {name} | {} jml | {} | {read_s:.2} | {build_s:.2} | {fit_s:.2} | {:.1} M/s | {} | {} | {:.0} | {rho} | {rmse} | {deciles} |",
            model.name(),
            m.n_responses(),
            m.n_responses() as f64 / fit_s / 1e6,
            f.iterations,
            f.converged,
            peak_memory_mib(),
        ));
    }
    Ok(rows)
}

pub const HEADER: &str = "| data | fit | responses | read+intern s | build s | fit s | fit rate | sweeps | converged | peak MiB | spearman | rmse | decile agreement |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|";
