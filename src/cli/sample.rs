//! `crossdiff sample`: the generated responses sample.

use std::path::{Path, PathBuf};

use clap::Args;
use crossdiff::data::{self, sample};

use super::Result;

#[derive(Args)]
pub struct SampleArgs {
    #[arg(long, default_value = "data/sample")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// Writes the generated sample; returns the folder.
pub fn write_sample(dir: &Path, seed: u64) -> Result<PathBuf> {
    let s = sample::generate(sample::SampleSpec {
        seed,
        ..Default::default()
    });
    data::files::write_parquet(&dir.join("responses.parquet"), &[s.responses])
        .map_err(|e| e.to_string())?;
    data::files::write_parquet(&dir.join("items.parquet"), &[s.items])
        .map_err(|e| e.to_string())?;
    eprintln!("wrote the generated sample to {}", dir.display());
    Ok(dir.to_path_buf())
}
