//! `crossdiff bench irt`: fits simulated leaderboards of the scales and the real
//! Open LLM Leaderboard benchmarks, and prints time, throughput, peak memory and accuracy.
//! Each case runs in its own process so that peak memory is the case's own.

use std::path::{Path, PathBuf};
use std::time::Instant;

use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::data::files::write_parquet;
use crate::irt::batches::MatrixSet;
use crate::irt::simulate::{simulate, SimulationSpec};
use crate::irt::{fit, FitOptions, IrtModel, Method, Priors};
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

/// How a case is fitted.
#[derive(Debug, Clone, Copy)]
pub struct FitSpec {
    pub model: IrtModel,
    pub method: Method,
    pub priors: Priors,
}

impl FitSpec {
    fn new(model: IrtModel, method: Method) -> Self {
        Self {
            model,
            method,
            priors: Priors::default_for(method),
        }
    }

    fn hierarchical(self) -> Self {
        Self {
            priors: Priors::hierarchical(),
            ..self
        }
    }

    /// "1pl jml", "1pl vi vague", "1pl vi hierarchical", "2pl mml".
    pub fn label(&self) -> String {
        let priors = match self.method {
            Method::Vi if self.priors.hierarchical => " hierarchical",
            Method::Vi => " vague",
            _ => "",
        };
        format!("{} {}{priors}", self.model.name(), self.method.name())
    }
}

/// The default cases: the two scales by every 1PL method, the 2PL fits, 3PL and 4PL at
/// the smaller scale, and the real oll_v1 benchmarks by every 1PL method and both 2PL ones.
pub fn default_cases(real: Option<&Path>) -> Vec<(Case, FitSpec)> {
    let sim = |n_items: usize, model: IrtModel| Case::Simulated {
        n_models: 4500,
        n_items,
        model,
    };
    let (one, two) = (IrtModel::OnePl, IrtModel::TwoPl);
    let mut cases = Vec::new();
    for n_items in [1319, 12032] {
        for method in [Method::Jml, Method::Vi, Method::Mml] {
            cases.push((sim(n_items, one), FitSpec::new(one, method)));
        }
    }
    for n_items in [1319, 12032] {
        for method in [Method::Jml, Method::Mml] {
            cases.push((sim(n_items, two), FitSpec::new(two, method)));
        }
    }
    for model in [IrtModel::ThreePl, IrtModel::FourPl] {
        cases.push((sim(1319, model), FitSpec::new(model, Method::Mml)));
    }
    if let Some(p) = real {
        let real = Case::Real {
            path: p.to_path_buf(),
        };
        cases.push((real.clone(), FitSpec::new(one, Method::Jml)));
        cases.push((real.clone(), FitSpec::new(one, Method::Vi)));
        cases.push((real.clone(), FitSpec::new(one, Method::Vi).hierarchical()));
        cases.push((real.clone(), FitSpec::new(one, Method::Mml)));
        cases.push((real.clone(), FitSpec::new(two, Method::Jml)));
        cases.push((real, FitSpec::new(two, Method::Mml)));
    }
    cases
}

/// A case's name in the table.
pub fn case_name(case: &Case, benchmark: Option<&str>) -> String {
    match case {
        Case::Simulated {
            n_models,
            n_items,
            model,
        } => format!("sim {} {n_models}x{n_items}", model.name()),
        Case::Real { .. } => format!("oll_v1 {}", benchmark.unwrap_or_default()),
    }
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

/// Difficulties by item id from a Parquet file with columns `item_id` and `column`
/// (and optionally `benchmark`, kept to `benchmark` when given).
async fn difficulties(
    path: &Path,
    column: &str,
    benchmark: Option<&str>,
) -> Result<std::collections::HashMap<String, f64>, String> {
    use arrow::array::AsArray;
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(
            path.to_string_lossy().as_ref(),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let has_benchmark = df.schema().has_column_with_unqualified_name("benchmark");
    let mut map = std::collections::HashMap::new();
    let batches = df.collect().await.map_err(|e| e.to_string())?;
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .cloned()
                .ok_or_else(|| format!("{}: no column {name}", path.display()))
        };
        let utf8 = |a: arrow::array::ArrayRef| {
            arrow::compute::cast(&a, &arrow::datatypes::DataType::Utf8).map_err(|e| e.to_string())
        };
        let ids = utf8(col("item_id")?)?;
        let values = arrow::compute::cast(&col(column)?, &arrow::datatypes::DataType::Float64)
            .map_err(|e| e.to_string())?;
        let benches = if has_benchmark {
            Some(utf8(col("benchmark")?)?)
        } else {
            None
        };
        let (ids, values) = (
            ids.as_string::<i32>(),
            values.as_primitive::<arrow::datatypes::Float64Type>(),
        );
        for i in 0..b.num_rows() {
            if let (Some(want), Some(have)) = (benchmark, &benches) {
                if have.as_string::<i32>().value(i) != want {
                    continue;
                }
            }
            map.insert(ids.value(i).to_string(), values.value(i));
        }
    }
    Ok(map)
}

/// The reference fit of real data for `spec`, from the comparison script's output folder:
/// py-irt's hierarchical fit for `vi hierarchical`, its vague fit (seed 1) for `vi vague`.
fn reference_file(spec: &FitSpec, references: &Path, benchmark: &str) -> Option<(PathBuf, String)> {
    let (file, name) = match spec.method {
        Method::Vi if spec.priors.hierarchical => {
            (format!("hier_{benchmark}.parquet"), "py-irt hierarchical")
        }
        Method::Vi => (format!("vague_{benchmark}_s1.parquet"), "py-irt vague"),
        _ => return None,
    };
    let path = references.join(file);
    path.exists().then(|| (path, name.to_string()))
}

/// Spearman, RMSE after a shift, and ten-bin agreement of `est` against `reference`.
fn agreement(est: &[f64], reference: &[f64]) -> (f64, f64, f64) {
    let shift = reference.iter().sum::<f64>() / reference.len() as f64
        - est.iter().sum::<f64>() / est.len() as f64;
    let rmse = (est
        .iter()
        .zip(reference)
        .map(|(e, t)| (e + shift - t).powi(2))
        .sum::<f64>()
        / est.len() as f64)
        .sqrt();
    (
        spearman(est, reference).unwrap_or(f64::NAN),
        rmse,
        bin_agreement(est, reference, 10),
    )
}

/// Runs one case in this process and returns its table row(s).
pub async fn run_case(
    case: &Case,
    spec: &FitSpec,
    cache: &Path,
    references: Option<&Path>,
) -> Result<Vec<String>, String> {
    let (path, truth_path) = files(case, cache);
    let truth = match &truth_path {
        Some(p) => Some(difficulties(p, "true_difficulty", None).await?),
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
            model: spec.model,
            method: spec.method,
            priors: spec.priors,
            progress: false,
            ..Default::default()
        };
        let f = fit(&m, &options).map_err(|e| e.to_string())?;
        let fit_s = fitted.elapsed().as_secs_f64();
        let memory = peak_memory_mib();
        let est: Vec<f64> = f.items.iter().map(|i| i.difficulty).collect();
        // Against the truth (simulated) or the reference tool's fit (real data).
        let reference = match (&truth, references) {
            (Some(t), _) => Some((t.clone(), "truth".to_string())),
            (None, Some(dir)) => {
                match reference_file(spec, dir, benchmark.as_deref().unwrap_or("")) {
                    Some((p, name)) => Some((difficulties(&p, "difficulty", None).await?, name)),
                    None => None,
                }
            }
            _ => None,
        };
        let (versus, rho, rmse, deciles) = match reference {
            Some((map, name)) if m.items.iter().all(|id| map.contains_key(id)) => {
                let r: Vec<f64> = m.items.iter().map(|id| map[id]).collect();
                let (rho, rmse, deciles) = agreement(&est, &r);
                (
                    name,
                    format!("{rho:.5}"),
                    format!("{rmse:.3}"),
                    format!("{deciles:.3}"),
                )
            }
            _ => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        // Every other method against jml on the same data (jml fits 1PL and 2PL only).
        let versus_jml = if spec.method == Method::Jml || spec.model.has_asymptotes() {
            "-".to_string()
        } else {
            let jml = fit(
                &m,
                &FitOptions {
                    model: spec.model,
                    progress: false,
                    ..Default::default()
                },
            )
            .map_err(|e| e.to_string())?;
            let j: Vec<f64> = jml.items.iter().map(|i| i.difficulty).collect();
            format!("{:.3}", bin_agreement(&est, &j, 10))
        };
        rows.push(format!(
            "| {} | {} | {} | {read_s:.2} | {build_s:.2} | {fit_s:.2} | {:.1} M/s | {} | {} | {memory:.0} | {versus} | {rho} | {rmse} | {deciles} | {versus_jml} |",
            case_name(case, benchmark.as_deref()),
            spec.label(),
            m.n_responses(),
            m.n_responses() as f64 / fit_s / 1e6,
            f.iterations,
            f.converged,
        ));
    }
    Ok(rows)
}

pub const HEADER: &str = "| data | fit | responses | read+intern s | build s | fit s | fit rate | iterations | converged | peak MiB | against | spearman | rmse | decile agreement | deciles vs jml |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";
