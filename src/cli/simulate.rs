//! `crossdiff simulate`: IRT responses with known parameters, as Parquet.

use std::path::PathBuf;

use clap::Args;
use crossdiff::data;

use super::Result;

#[derive(Args)]
pub struct SimulateArgs {
    #[arg(long, default_value_t = 1000)]
    pub models: usize,
    #[arg(long, default_value_t = 200)]
    pub items: usize,
    /// 1pl, 2pl, 3pl or 4pl.
    #[arg(long, default_value = "1pl")]
    pub model: String,
    /// Share of unobserved (model, item) cells.
    #[arg(long, default_value_t = 0.1)]
    pub missing: f64,
    /// Share of near-trivial and near-impossible items.
    #[arg(long, default_value_t = 0.0)]
    pub extreme_items: f64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output .parquet (responses with true_ability, true_difficulty, true_discrimination,
    /// true_guessing, true_upper).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run_simulate(args: SimulateArgs) -> Result<()> {
    use crossdiff::irt::simulate::{simulate, SimulationSpec};
    let spec = SimulationSpec {
        n_models: args.models,
        n_items: args.items,
        model: crossdiff::irt::IrtModel::parse(&args.model).map_err(|e| e.to_string())?,
        missing: args.missing,
        extreme_items: args.extreme_items,
        seed: args.seed,
    };
    spec.validate().map_err(|e| {
        format!("crossdiff simulate (--models, --items, --missing, --extreme-items): {e}")
    })?;
    let batch = simulate(spec).to_batch("sim");
    data::files::write_parquet(&args.out, std::slice::from_ref(&batch))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} simulated responses to {}",
        batch.num_rows(),
        args.out.display()
    );
    Ok(())
}
