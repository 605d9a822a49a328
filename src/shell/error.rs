//! Errors of the SQL shell: a statement, a backslash command or the printing of a result.

use datafusion::error::DataFusionError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ShellError {
    /// A statement failed to plan or run; the message is DataFusion's (and so the function's).
    #[error("{source}")]
    Query {
        #[source]
        source: DataFusionError,
    },

    /// A write failed where DataFusion drops the cause; `explanation` names the file and why.
    #[error("{explanation}")]
    Write {
        explanation: String,
        #[source]
        source: DataFusionError,
    },

    #[error("cannot start the query runtime: {0}")]
    Runtime(#[source] std::io::Error),

    #[error("query task failed: {0}")]
    Task(#[source] tokio::task::JoinError),

    #[error("query cancelled")]
    Cancelled,

    #[error("cannot format the result: {0}")]
    Format(#[source] arrow::error::ArrowError),

    #[error("cannot write the result: {0}")]
    Output(#[source] std::io::Error),

    #[error("unknown command `{0}`; \\? lists the commands")]
    UnknownCommand(String),

    /// A backslash command given an argument it does not take.
    #[error("{command} takes {expected}, not `{given}`")]
    BadArgument {
        command: &'static str,
        expected: &'static str,
        given: String,
    },

    #[error("\\d: no table named `{0}`; \\d lists the tables")]
    NoTable(String),

    #[error("no function named `{0}`; \\h lists crossdiff's functions")]
    NoFunction(String),
}

impl From<DataFusionError> for ShellError {
    fn from(source: DataFusionError) -> Self {
        match crate::local_files::explain_write_failure(&source.to_string()) {
            Some(explanation) => ShellError::Write {
                explanation,
                source,
            },
            None => ShellError::Query { source },
        }
    }
}

impl From<arrow::error::ArrowError> for ShellError {
    fn from(e: arrow::error::ArrowError) -> Self {
        ShellError::Format(e)
    }
}

impl From<std::io::Error> for ShellError {
    fn from(e: std::io::Error) -> Self {
        ShellError::Output(e)
    }
}
