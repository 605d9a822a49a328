//! `crossdiff zoo`: the tiny-model zoo and its leaderboard.

use std::path::PathBuf;

use clap::Args;

use super::{ctrl_c_cancel, Result};

#[derive(Args)]
pub struct ZooArgs {
    /// Output folder (items.parquet, responses.parquet, zoo.json, models/).
    #[arg(long)]
    pub out: PathBuf,
    /// The recipe as a zoo.json file (default: the recipe of the shipped data/demo).
    #[arg(long)]
    pub spec: Option<PathBuf>,
    /// Fields to change in the recipe, as JSON (per_level, max_digits, item_seed, sizes,
    /// snapshots, steps, spacing, batch_size, learning_rate, seed, base: {size, steps,
    /// train_per_level}).
    #[arg(long)]
    pub options: Option<String>,
}

pub fn run_zoo(args: ZooArgs) -> Result<()> {
    use crossdiff::experiment::zoo::{write_zoo, ZooControl, ZooSpec};
    let mut spec = match &args.spec {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                serde_json::from_str::<ZooSpec>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })?,
        None => ZooSpec::default(),
    };
    if let Some(json) = &args.options {
        let mut value = serde_json::to_value(&spec).expect("a spec serializes");
        let changes: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("--options: {e}"))?;
        let serde_json::Value::Object(changes) = changes else {
            return Err("--options must be a JSON object".into());
        };
        for (k, v) in changes {
            value[k] = v;
        }
        spec = serde_json::from_value(value).map_err(|e| format!("--options: {e}"))?;
    }
    let started = std::time::Instant::now();
    let control = ZooControl {
        cancel: ctrl_c_cancel("stopping at the end of this step"),
        progress: true,
        ..Default::default()
    };
    let zoo = write_zoo(&args.out, &spec, &control).map_err(|e| match e {
        crossdiff::experiment::ExperimentError::Cancelled(_) => {
            format!("{e}; the same command resumes after the last finished training run")
        }
        other => other.to_string(),
    })?;
    let models: std::collections::BTreeSet<&str> =
        zoo.responses.iter().map(|r| r.model_id.as_str()).collect();
    println!(
        "wrote {} responses of {} models on {} items to {} in {:.1} s",
        zoo.responses.len(),
        models.len(),
        zoo.items.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(base) = &zoo.base {
        println!("base model: {}", base.display());
    }
    Ok(())
}
