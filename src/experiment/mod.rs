//! Experiments as cached, resumable runs: a fine-tune of a base model on prompt/response rows,
//! an evaluation of a model on items, and the generalization matrix that chains them (one
//! zero-shot evaluation, one fine-tune per training bin, one evaluation per fine-tune). Each run
//! is a self-contained job identified by the hash of its inputs, kept in a [`store::RunStore`].

pub mod bins;
pub mod evaluation;
pub mod finetune;
pub mod gap_profile;
pub mod matrix;
pub mod store;
pub mod uncertainty;
pub mod zoo;

use std::path::Path;

use thiserror::Error;

pub use store::{RunRecord, RunStore};

#[derive(Debug, Error)]
pub enum ExperimentError {
    #[error("{0}")]
    Input(String),

    #[error("{0}")]
    Busy(String),

    #[error("stopped: {0}")]
    Cancelled(String),

    /// A file or folder of a run could not be read or written; the cause is kept.
    #[error("{place}: {source}")]
    Io {
        place: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error(transparent)]
    Lm(#[from] crate::lm::LmError),

    #[error(transparent)]
    Irt(#[from] crate::irt::IrtError),

    #[error(transparent)]
    Options(#[from] crate::options::OptionsError),
}

impl ExperimentError {
    /// An error at `path`, keeping its cause (an I/O, Parquet or JSON error, or a message).
    pub fn io(path: &Path, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Io {
            place: path.display().to_string(),
            source: e.into(),
        }
    }
}

pub type Result<T, E = ExperimentError> = std::result::Result<T, E>;

pub use crate::cancel::Cancel;

impl Cancel {
    /// An error if the flag is set.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_set() {
            Err(ExperimentError::Cancelled(what.to_string()))
        } else {
            Ok(())
        }
    }
}

/// The crossdiff version, part of every run's hash.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
