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
