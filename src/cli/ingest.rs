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
    /// Input format: lm_eval, lm_eval_parquet, leaderboard_v2, leaderboard_v1, parquet, csv,
    /// wide_csv, wide_parquet, pyirt.
    #[arg(long)]
    pub format: String,
    /// Output file: .parquet (canonical table) or .jsonl (py-irt jsonlines); replaced atomically.
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the items table (question, choices, target, doc hash) of the same files to
    /// this Parquet file (lm-eval and leaderboard formats).
    #[arg(long)]
    pub items: Option<PathBuf>,
    /// Subtasks read as one benchmark (item ids `<subtask>/<doc_id>`): a name (`bbh`), a comma
    /// list (`bbh,math,musr`) or a JSON object of benchmark -> task-name prefix.
    #[arg(long)]
    pub group: Option<String>,
    /// Add the columns metric, n_shot and prompt_hash.
    #[arg(long)]
    pub provenance: bool,
    /// Leaderboard v1: match rows across models by `position` (default) or `content`.
    #[arg(long)]
    pub align: Option<String>,
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
    let format = Format::parse(&args.format)?;
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
        ("align", &args.align),
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
    if let Some(group) = &args.group {
        let value = if group.trim_start().starts_with('{') {
            serde_json::from_str(group).map_err(|e| format!("--group: malformed JSON: {e}"))?
        } else {
            serde_json::Value::Array(
                group
                    .split(',')
                    .map(|g| serde_json::Value::String(g.trim().to_string()))
                    .collect(),
            )
        };
        object.insert("group".into(), value);
    }
    if args.provenance {
        object.insert("provenance".into(), true.into());
    }
    let opts = IngestOptions::from_value(&object.into(), format).map_err(|e| match &e {
        // Name the flag the user typed.
        DataError::UnknownOption { key, .. } | DataError::BadOption { key, .. } => {
            format!("--{}: {e}", key.replace('_', "-"))
        }
        _ => e.to_string(),
    })?;
    // Check the output paths before reading anything.
    data::OutputFormat::from_path(&args.out)?;
    if let Some(items) = &args.items {
        if items.extension().is_none_or(|e| e != "parquet") {
            return Err(format!("--items: {} must end in .parquet", items.display()).into());
        }
    }
    let cancel = crossdiff::cancel::Cancel::default();
    let (batch, items) = data::read(&args.paths, format, &opts, args.items.is_some(), &cancel)?;
    data::write_responses(&args.out, &batch)?;
    eprintln!(
        "wrote {} responses to {}",
        batch.num_rows(),
        args.out.display()
    );
    if let (Some(path), Some(items)) = (&args.items, items) {
        data::files::write_parquet(path, std::slice::from_ref(&items))?;
        eprintln!("wrote {} items to {}", items.num_rows(), path.display());
    }
    Ok(())
}
