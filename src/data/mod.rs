//! Canonical tables and ingest: lm-eval-harness per-sample logs, long and wide tables, py-irt
//! jsonlines. Every reader validates as it goes and names the file and line (or row) of any
//! problem; nothing here knows about SQL.

pub mod arithmetic;
pub mod columns;
pub mod error;
pub mod files;
pub mod lm_eval;
pub mod long;
pub mod options;
pub mod pyirt;
pub mod responses;
pub mod sample;
mod wide;

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;

pub use error::{DataError, Result};
pub use options::{Format, IngestOptions};
pub use responses::{responses_schema, DuplicatePolicy, ResponsesBuilder};

/// Reads responses from files or folders in one format into the canonical table.
/// Duplicates across all paths are resolved together, by `opts.on_duplicate`.
pub fn read_responses(
    paths: &[PathBuf],
    format: Format,
    opts: &IngestOptions,
) -> Result<RecordBatch> {
    if paths.is_empty() {
        return Err(DataError::Empty {
            place: "no input paths".into(),
        });
    }
    let mut builder = ResponsesBuilder::new(opts.on_duplicate);
    for path in paths {
        match format {
            Format::LmEval | Format::LmEvalParquet => {
                lm_eval::read(path, format, opts, &mut builder)?
            }
            Format::Parquet | Format::Csv => long::read(path, format, opts, &mut builder)?,
            Format::WideCsv | Format::WideParquet => wide::read(path, format, opts, &mut builder)?,
            Format::PyIrt => pyirt::read(path, opts, &mut builder)?,
        }
    }
    let what = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    builder.finish(&what)
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
