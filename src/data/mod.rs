//! Canonical tables and ingest: lm-eval-harness per-sample logs, long and wide tables, py-irt
//! jsonlines. Every reader validates as it goes and names the file and line (or row) of any
//! problem; nothing here knows about SQL.

pub mod arithmetic;
pub mod columns;
pub mod error;
pub mod files;
pub mod items;
pub mod leaderboard_v1;
pub mod lm_eval;
pub mod long;
pub mod options;
pub mod pyirt;
pub mod responses;
pub mod sample;
pub mod sink;
mod wide;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

use crate::cancel::Cancel;
use sink::Sink;

pub use error::{DataError, Result};
pub use items::{items_schema, ItemsBuilder};
pub use options::{Format, IngestOptions};
pub use responses::{
    responses_schema, responses_schema_with_provenance, DuplicatePolicy, Provenance,
    ResponsesBuilder,
};

/// Reads responses from files or folders in one format into the canonical table.
/// Duplicates across all paths are resolved together, by `opts.on_duplicate`.
pub fn read_responses(
    paths: &[PathBuf],
    format: Format,
    opts: &IngestOptions,
) -> Result<RecordBatch> {
    Ok(read(paths, format, opts, false, &Cancel::default())?.0)
}

/// The items table of the same files (`items_schema`): one row per (benchmark, item), from
/// the first file that has it. Only the lm-eval and leaderboard formats describe items.
pub fn read_items(
    paths: &[PathBuf],
    format: Format,
    opts: &IngestOptions,
    cancel: &Cancel,
) -> Result<RecordBatch> {
    let (_, items) = read(paths, format, opts, true, cancel)?;
    Ok(items.expect("asked for"))
}

/// Whether a format's files describe their items (question, choices, target).
pub fn has_items(format: Format) -> bool {
    matches!(
        format,
        Format::LmEval | Format::LmEvalParquet | Format::LeaderboardV2 | Format::LeaderboardV1
    )
}

/// Responses and, with `items`, the items table, in one pass over the files; stops with an
/// error once `cancel` is set.
pub fn read(
    paths: &[PathBuf],
    format: Format,
    opts: &IngestOptions,
    items: bool,
    cancel: &Cancel,
) -> Result<(RecordBatch, Option<RecordBatch>)> {
    if paths.is_empty() {
        return Err(DataError::Empty {
            place: "no input paths".into(),
        });
    }
    if items && !has_items(format) {
        return Err(DataError::invalid(
            format!("format '{}'", format.name()),
            "its files do not describe items; an items table comes from 'lm_eval', \
             'lm_eval_parquet', 'leaderboard_v2' or 'leaderboard_v1' files",
        ));
    }
    let mut builder = ResponsesBuilder::new(opts.on_duplicate).with_provenance(opts.provenance);
    let mut item_rows = ItemsBuilder::default();
    {
        let mut sink = Sink::new(&mut builder, items.then_some(&mut item_rows));
        sink.cancel = cancel.clone();
        for path in paths {
            match format {
                Format::LmEval | Format::LmEvalParquet | Format::LeaderboardV2 => {
                    lm_eval::read(path, format, opts, &mut sink)?
                }
                Format::LeaderboardV1 => leaderboard_v1::read(path, opts, &mut sink)?,
                Format::Parquet | Format::Csv => long::read(path, format, opts, sink.responses)?,
                Format::WideCsv | Format::WideParquet => {
                    wide::read(path, format, opts, sink.responses)?
                }
                Format::PyIrt => pyirt::read(path, opts, sink.responses)?,
            }
        }
    }
    let what = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let responses = builder.finish(&what)?;
    let items = items.then(|| item_rows.finish(&what)).transpose()?;
    Ok((responses, items))
}

/// How `write_responses` stores a table, from the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    PyIrt,
}

impl OutputFormat {
    pub fn from_path(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Ok(Self::Parquet),
            Some("jsonl") => Ok(Self::PyIrt),
            _ => Err(DataError::invalid(
                path.display().to_string(),
                "output must end in .parquet (canonical table) or .jsonl (py-irt jsonlines)",
            )),
        }
    }
}

/// Writes the canonical table atomically: replaces `path` only once the new file is complete.
pub fn write_responses(path: &Path, batch: &RecordBatch) -> Result<()> {
    match OutputFormat::from_path(path)? {
        OutputFormat::Parquet => files::write_parquet(path, std::slice::from_ref(batch)),
        OutputFormat::PyIrt => pyirt::write(path, std::slice::from_ref(batch)).map(|_| ()),
    }
}
