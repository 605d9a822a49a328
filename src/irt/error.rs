//! Errors of the IRT engine.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum IrtError {
    #[error("{place}: `correct` is NULL; every response must be 0 or 1")]
    NullResponse { place: String },

    #[error("{place}: `{column}` is NULL")]
    NullKey { place: String, column: &'static str },

    #[error(
        "duplicate response of model `{model_id}` to item `{item_id}` in benchmark `{benchmark}`; \
             combine duplicates before fitting (e.g. read_responses' on_duplicate option)"
    )]
    Duplicate {
        benchmark: String,
        model_id: String,
        item_id: String,
    },

    #[error("{0}: no responses to fit (empty source)")]
    Empty(String),

    #[error("option `{key}`: {message}")]
    BadOption { key: String, message: String },

    #[error(transparent)]
    Options(#[from] crate::options::OptionsError),

    #[error(
        "the source has no column `{needed}` (columns: {present}); it needs model_id, item_id, \
         correct and optionally benchmark"
    )]
    MissingColumn {
        needed: &'static str,
        present: String,
    },

    #[error("column `{column}` cannot be read as {to}: {source}")]
    Cast {
        column: &'static str,
        to: &'static str,
        #[source]
        source: arrow::error::ArrowError,
    },

    #[error("{0}")]
    Invalid(String),

    #[error("fit cancelled after {iterations} iterations")]
    Cancelled { iterations: usize },
}

pub type Result<T, E = IrtError> = std::result::Result<T, E>;
