//! The ingest benchmark: a synthetic Open LLM Leaderboard v2 details tree shaped like the
//! real one (one folder per model, one `samples_leaderboard_<task>_<timestamp>.jsonl` per
//! task, lm-eval 0.4 records with a document, three-shot context, resps and hashes), read
//! by `read_responses` with items; time, bytes read and peak memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cancel::Cancel;
use crate::data::{self, Format, IngestOptions};

/// The tree's shape.
#[derive(Debug, Clone, Copy)]
pub struct TreeShape {
    pub models: usize,
    pub tasks: usize,
    pub samples: usize,
}

impl TreeShape {
    pub fn folder(&self, cache: &Path) -> PathBuf {
        cache.join(format!(
            "details_v2_{}x{}x{}",
            self.models, self.tasks, self.samples
        ))
    }
}

/// A deterministic stand-in for a model's answer: about half correct, harder items less so.
fn correct(model: usize, task: usize, doc: usize) -> bool {
    let h = (model as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((task * 7919 + doc) as u64)
        .wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    (h >> 40) % 100 < (80 - (doc * 60 / 500).min(60)) as u64
}

/// Writes the tree once (a `.complete` marker says it is whole); returns its folder.
pub fn write_tree(shape: TreeShape, cache: &Path) -> std::io::Result<PathBuf> {
    let root = shape.folder(cache);
    let done = root.join(".complete");
    if done.exists() {
        return Ok(root);
    }
    let bar = indicatif::ProgressBar::new(shape.models as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "writing details [{bar:30}] {pos}/{len} models · {elapsed} (ETA {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    // The same few-shot context for every document, as a leaderboard task has (shortened:
    // real contexts are longer, which only adds bytes to skip).
    let shots = "Q: Which option follows from the statements above?\\nA: (A)\\n\\n";
    for m in 0..shape.models {
        let folder = root.join(format!("org{}__model-{m}", m % 37));
        std::fs::create_dir_all(&folder)?;
        for t in 0..shape.tasks {
            let path = folder.join(format!(
                "samples_leaderboard_bbh_task{t}_2024-06-26T10-00-00.000000.jsonl"
            ));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
            for d in 0..shape.samples {
                let ok = correct(m, t, d);
                let question = format!(
                    "Task {t}, document {d}: which option is right?\\n(A) one\\n(B) two\\n(C) three"
                );
                writeln!(
                    out,
                    "{{\"doc_id\": {d}, \"doc\": {{\"input\": \"{question}\", \"target\": \"(A)\"}}, \
                     \"target\": \"(A)\", \"arguments\": {{\
                     \"gen_args_0\": {{\"arg_0\": \"{shots}Q: {question}\\nA:\", \"arg_1\": \" (A)\"}}, \
                     \"gen_args_1\": {{\"arg_0\": \"{shots}Q: {question}\\nA:\", \"arg_1\": \" (B)\"}}, \
                     \"gen_args_2\": {{\"arg_0\": \"{shots}Q: {question}\\nA:\", \"arg_1\": \" (C)\"}}}}, \
                     \"resps\": [[[\"-1.25\", \"False\"]], [[\"-2.5\", \"False\"]], [[\"-3.75\", \"False\"]]], \
                     \"filtered_resps\": [[\"-1.25\", \"False\"], [\"-2.5\", \"False\"], [\"-3.75\", \"False\"]], \
                     \"filter\": \"none\", \"metrics\": [\"acc_norm\"], \
                     \"doc_hash\": \"{t:08x}{d:056x}\", \"prompt_hash\": \"{d:064x}\", \
                     \"target_hash\": \"{:064x}\", \"acc_norm\": {}}}",
                    1,
                    if ok { "1.0" } else { "0.0" }
                )?;
            }
            out.flush()?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    std::fs::write(&done, b"")?;
    Ok(root)
}

/// What one ingest of the tree measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct IngestFigures {
    pub files: usize,
    pub bytes: u64,
    pub responses: usize,
    pub items: usize,
    pub seconds: f64,
    pub peak_memory_mib: f64,
}

/// Reads the tree's responses and items (the leaderboard's metric, BBH as one group).
pub fn ingest(root: &Path) -> Result<IngestFigures, String> {
    let mut bytes = 0u64;
    let mut files = 0usize;
    for path in data::files::files_with_extension(root, &["jsonl"]).map_err(|e| e.to_string())? {
        bytes += std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
        files += 1;
    }
    let opts = IngestOptions::from_json(r#"{"group": "bbh"}"#, Format::LeaderboardV2)
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let (responses, items) = data::read(
        &[root.to_path_buf()],
        Format::LeaderboardV2,
        &opts,
        true,
        &Cancel::default(),
    )
    .map_err(|e| e.to_string())?;
    Ok(IngestFigures {
        files,
        bytes,
        responses: responses.num_rows(),
        items: items.map_or(0, |i| i.num_rows()),
        seconds: start.elapsed().as_secs_f64(),
        peak_memory_mib: crate::bench::peak_memory_mib(),
    })
}
