//! `crossdiff tiny-model`: a tiny random-init model folder with a trained BPE tokenizer.

use std::path::PathBuf;

use clap::Args;

use super::Result;

#[derive(Args)]
pub struct TinyModelArgs {
    /// Output model folder (replaced if present).
    #[arg(long)]
    pub out: PathBuf,
    /// Text files to train the tokenizer on (one example per line); without any, a generated
    /// arithmetic corpus.
    #[arg(long)]
    pub text: Vec<PathBuf>,
    /// Model shape and seed as JSON, e.g. '{"hidden_size": 128, "vocab_size": 2048}'.
    #[arg(long)]
    pub options: Option<String>,
}

pub fn run_tiny_model(args: TinyModelArgs) -> Result<()> {
    use crossdiff::lm::tiny::{create_tiny_model, TinySpec};
    let spec: TinySpec = match &args.options {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("--options: {e}"))?,
        None => TinySpec::default(),
    };
    let texts: Vec<String> = if args.text.is_empty() {
        crossdiff::lm::bench::bench_corpus(8000, 1)
    } else {
        let mut texts = Vec::new();
        for path in &args.text {
            let body =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            texts.extend(
                body.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(String::from),
            );
        }
        texts
    };
    let made = create_tiny_model(&args.out, &texts, &spec).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} parameters, vocabulary {})",
        args.out.display(),
        made.parameters,
        made.vocab_size
    );
    Ok(())
}
