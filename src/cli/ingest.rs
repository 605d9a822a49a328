//! `crossdiff ingest`: result files to the canonical responses table or py-irt jsonlines.

use std::path::PathBuf;

use clap::Args;
use crossdiff::data::{self, DataError, Format, IngestOptions};

use super::Result;

#[derive(Args)]
pub struct IngestArgs {
    /// Input files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Input format: lm_eval, lm_eval_parquet, parquet, csv, wide_csv, wide_parquet, pyirt.
    #[arg(long)]
    pub format: String,
    /// Output file: .parquet (canonical table) or .jsonl (py-irt jsonlines); replaced atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// lm-eval metric that means "correct" (default acc).
    #[arg(long)]
    pub metric: Option<String>,
    /// lm-eval answer filter to keep (e.g. strict-match), for tasks that log one record per filter.
    #[arg(long)]
    pub filter: Option<String>,
    /// Model id for every row (lm-eval files of one model).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Benchmark name for every row.
    #[arg(long)]
    pub benchmark: Option<String>,
    /// How to combine duplicate (model, benchmark, item) rows: error, first, last, any, all.
    #[arg(long)]
    pub on_duplicate: Option<String>,
    #[arg(long)]
    pub model_column: Option<String>,
    #[arg(long)]
    pub benchmark_column: Option<String>,
    #[arg(long)]
    pub item_column: Option<String>,
    #[arg(long)]
    pub correct_column: Option<String>,
}

pub fn run_ingest(args: IngestArgs) -> Result<()> {
    let format = Format::parse(&args.format).map_err(|e| e.to_string())?;
    // The flags become the options object SQL's read_responses takes: one parser for both.
    let mut object = serde_json::Map::new();
    let flags = [
        ("metric", &args.metric),
        ("filter", &args.filter),
        ("model_id", &args.model_id),
        ("benchmark", &args.benchmark),
        ("on_duplicate", &args.on_duplicate),
        ("model_column", &args.model_column),
        ("benchmark_column", &args.benchmark_column),
        ("item_column", &args.item_column),
        ("correct_column", &args.correct_column),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            let flag = format!("--{}", key.replace('_', "-"));
            // `--metric '{"gsm8k": "exact_match"}'`: a value per task.
            let value = if v.trim_start().starts_with('{') {
                serde_json::from_str(v).map_err(|e| format!("{flag}: malformed JSON: {e}"))?
            } else {
                serde_json::Value::String(v.clone())
            };
            object.insert(key.to_string(), value);
        }
    }
    let opts = IngestOptions::from_value(&object.into(), format).map_err(|e| match &e {
        // Name the flag the user typed.
        DataError::UnknownOption { key, .. } | DataError::BadOption { key, .. } => {
            format!("--{}: {e}", key.replace('_', "-"))
        }
        _ => e.to_string(),
    })?;
    // Check the output path before reading anything.
    data::OutputFormat::from_path(&args.out).map_err(|e| e.to_string())?;
    let batch = data::read_responses(&args.paths, format, &opts).map_err(|e| e.to_string())?;
    data::write_responses(&args.out, &batch).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} responses to {}",
        batch.num_rows(),
        args.out.display()
    );
    Ok(())
}
