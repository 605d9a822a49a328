//! `crossdiff fine-tune`: a fine-tune as a run in the run store, exactly as SQL's fine_tune
//! runs it (same run id, same defaults, cached and resumable).

use std::path::{Path, PathBuf};

use clap::Args;
use crossdiff::datafusion::arrow::array::{Array, AsArray};
use crossdiff::datafusion::arrow::compute::cast;
use crossdiff::datafusion::arrow::datatypes::DataType;
use crossdiff::experiment::finetune::{self, FineTuneOptions};
use crossdiff::experiment::{ExperimentError, RunStore};

use super::{ctrl_c_cancel, Result};

#[derive(Args)]
pub struct FineTuneArgs {
    /// Base model folder (Hugging Face layout).
    #[arg(long)]
    pub base: PathBuf,
    /// Parquet file with `prompt` and `response` columns.
    #[arg(long)]
    pub train: PathBuf,
    /// Also copy the fine-tuned model here (it stays in the run store either way).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Options as JSON, as SQL's fine_tune takes them (epochs, learning_rate, batch_size,
    /// gradient_accumulation, max_seq_len, seed, lora: {rank, alpha, dropout,
    /// target_modules}, chat_template, run_store, ...); the defaults are the paper's.
    #[arg(long)]
    pub options: Option<String>,
    /// Train on raw prompt + response text (default, as in SQL: the model's chat template
    /// when it has one).
    #[arg(long)]
    pub no_chat_template: bool,
    /// Run store folder (default: the run_store option, $CROSSDIFF_RUNS, or
    /// ~/.cache/crossdiff/runs).
    #[arg(long)]
    pub store: Option<String>,
}

/// The (prompt, response) rows of a Parquet file.
async fn read_pairs(path: &Path) -> Result<Vec<(String, String)>> {
    let ctx = crossdiff::new_context();
    let shown = path.display().to_string();
    ctx.register_parquet("train", &shown, Default::default())
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let batches = ctx
        .sql("SELECT prompt, response FROM train")
        .await
        .map_err(|e| format!("{shown}: needs `prompt` and `response` columns: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("{shown}: {e}"))?;
    let mut pairs = Vec::new();
    for batch in &batches {
        let p = cast(batch.column(0), &DataType::Utf8)?;
        let r = cast(batch.column(1), &DataType::Utf8)?;
        let (p, r) = (p.as_string::<i32>(), r.as_string::<i32>());
        for row in 0..batch.num_rows() {
            if p.is_null(row) || r.is_null(row) {
                return Err(format!(
                    "{shown}: row {} has a NULL prompt or response",
                    pairs.len() + 1
                )
                .into());
            }
            pairs.push((p.value(row).to_string(), r.value(row).to_string()));
        }
    }
    Ok(pairs)
}

/// Copies a model folder (files only, one level) to `to`, replacing it.
fn copy_model(from: &Path, to: &Path) -> Result<()> {
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    if to.exists() {
        std::fs::remove_dir_all(to).map_err(|e| io(to, e))?;
    }
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let path = entry.map_err(|e| io(from, e))?.path();
        if path.is_file() {
            let target = to.join(path.file_name().expect("a file has a name"));
            std::fs::copy(&path, &target).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

pub async fn run_fine_tune(args: FineTuneArgs) -> Result<()> {
    let json: serde_json::Value = match &args.options {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| format!("--options: malformed JSON: {e}"))?
        }
        None => serde_json::json!({}),
    };
    let mut options = FineTuneOptions::from_json(&json).map_err(|e| format!("--options: {e}"))?;
    if args.no_chat_template {
        options.chat_template = Some(false);
    }
    let store = RunStore::locate(args.store.as_deref().or(options.run_store.as_deref()));
    let pairs = read_pairs(&args.train).await?;
    let cancel = ctrl_c_cancel("stopping at the end of this step; the same command resumes");
    let base = args.base.clone();
    let result = tokio::task::spawn_blocking(move || {
        finetune::run_fine_tune(&store, &base, &pairs, &options, &cancel, true)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| match e {
        ExperimentError::Cancelled(_) => {
            format!("{e}; a checkpoint is in the run store: run the same command to resume").into()
        }
        other => super::CliError::from(other),
    })?;
    println!(
        "{} {}: {} steps over {} epochs, final loss {:.4}, {:.1} s; model: {}",
        if result.reused { "reused" } else { "finished" },
        result.run_id,
        result.steps,
        result.epochs,
        result.final_loss,
        result.seconds,
        result.model_path.display()
    );
    if let Some(out) = &args.out {
        copy_model(&result.model_path, out)?;
        println!("copied the model to {}", out.display());
    }
    Ok(())
}
