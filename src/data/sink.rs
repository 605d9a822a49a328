//! Where the result-file readers put what they read: the responses, optionally the items,
//! and the cross-model content checks; plus the progress line over files and the stop flag
//! checked between them.

use super::error::{DataError, Result};
use super::items::{ContentHashes, ItemsBuilder};
use super::responses::ResponsesBuilder;
use crate::cancel::Cancel;

/// The outputs of one ingest.
pub struct Sink<'a> {
    pub responses: &'a mut ResponsesBuilder,
    /// Collected only when asked for (`read_items`, `crossdiff ingest --items`).
    pub items: Option<&'a mut ItemsBuilder>,
    pub hashes: ContentHashes,
    pub cancel: Cancel,
}

impl<'a> Sink<'a> {
    pub fn new(responses: &'a mut ResponsesBuilder, items: Option<&'a mut ItemsBuilder>) -> Self {
        Self {
            responses,
            items,
            hashes: ContentHashes::default(),
            cancel: Cancel::default(),
        }
    }

    /// An error once the ingest was cancelled (a dropped query, Ctrl-C); nothing is written.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_set() {
            return Err(DataError::invalid(
                "ingest",
                "cancelled; nothing was written",
            ));
        }
        Ok(())
    }
}

/// Files parsed at once (in parallel), then merged in order: bounds what is held in memory
/// and how late a cancellation is seen.
const CHUNK: usize = 64;

/// Reads `files` into the sink: each chunk's files are prepared in order (`prepare`, which may
/// keep state), parsed in parallel (`parse`, which may read the items table), then merged in
/// file order (`merge`), so rows and errors are those of a sequential read. Shows the progress
/// bar and stops between chunks once cancelled.
pub fn read_files<'f, F: Sync, J: Send, O: Send>(
    files: &'f [F],
    sink: &mut Sink,
    mut prepare: impl FnMut(&'f F) -> Result<J>,
    parse: impl Fn(&'f F, J, Option<&ItemsBuilder>) -> Result<O> + Sync,
    mut merge: impl FnMut(O, &mut Sink) -> Result<()>,
) -> Result<()> {
    use rayon::prelude::*;
    let bar = files_bar(files.len(), "ingest");
    for chunk in files.chunks(CHUNK) {
        sink.check_cancelled()?;
        let jobs: Vec<(&'f F, J)> = chunk
            .iter()
            .map(|f| Ok((f, prepare(f)?)))
            .collect::<Result<_>>()?;
        // The items table is only read while the chunk is parsed; the merge writes to it.
        let table = sink.items.as_deref();
        let parsed: Vec<Result<O>> = jobs
            .into_par_iter()
            .map(|(f, job)| parse(f, job, table))
            .collect();
        for out in parsed {
            merge(out?, sink)?;
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// A progress bar over an ingest's files on stderr (files, rate, ETA), drawn only when
/// stderr is a terminal and there are enough files to wait for.
pub fn files_bar(total: usize, what: &str) -> indicatif::ProgressBar {
    if total < 20 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{bar:30}}] {{pos}}/{{len}} files · {{per_sec}} · {{elapsed}} (ETA {{eta}})"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar
}
