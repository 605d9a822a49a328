//! Errors of the data layer: every variant names the problem and where it is.

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("{place}: malformed JSON: {source}")]
    Json {
        place: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{place}: malformed CSV: {source}")]
    Csv {
        place: String,
        #[source]
        source: csv::Error,
    },

    #[error("{place}: cannot read Parquet: {source}")]
    Parquet {
        place: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Decoding a Parquet file's pages into arrow arrays failed.
    #[error("{place}: cannot read Parquet: {source}")]
    ParquetDecode {
        place: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// The Parquet reader panicked on a malformed file; `why` is its message.
    #[error("{place}: cannot read Parquet: corrupt data ({why})")]
    ParquetCorrupt { place: String, why: String },

    #[error("{place}: cannot write Parquet: {source}")]
    ParquetWrite {
        place: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error("{place}: missing {what} `{name}`")]
    Missing {
        place: String,
        what: &'static str,
        name: String,
    },

    #[error("{place}: `correct` is NULL; every response must be 0 or 1")]
    NullCorrect { place: String },

    #[error("{place}: `correct` must be 0 or 1 (or true/false), found {value}")]
    BadCorrect { place: String, value: String },

    #[error("{place}: `{column}` is NULL or empty")]
    NullKey { place: String, column: &'static str },

    #[error(
        "duplicate response for model `{model_id}`, benchmark `{benchmark}`, item `{item_id}` \
         (first at {first}, again at {second}); pass the option on_duplicate = \
         'first' | 'last' | 'any' | 'all' to combine duplicates"
    )]
    Duplicate {
        model_id: String,
        benchmark: String,
        item_id: String,
        first: String,
        second: String,
    },

    #[error("{place}: no responses found (empty source)")]
    Empty { place: String },

    #[error("unknown option `{key}` for {context}; known options: {known}")]
    UnknownOption {
        key: String,
        context: String,
        known: String,
    },

    #[error("option `{key}`: {message}")]
    BadOption { key: String, message: String },

    #[error(transparent)]
    Options(#[from] crate::options::OptionsError),

    #[error("{place}: {source}")]
    Column {
        place: String,
        #[source]
        source: super::columns::ColumnError,
    },

    #[error("{place}: {message}")]
    Invalid { place: String, message: String },
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }

    pub fn column(place: impl Into<String>, source: super::columns::ColumnError) -> Self {
        DataError::Column {
            place: place.into(),
            source,
        }
    }

    pub fn invalid(place: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::Invalid {
            place: place.into(),
            message: message.into(),
        }
    }
}
