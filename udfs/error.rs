//! The one place crossdiff's errors become DataFusion's, as `function: message` (the function
//! names itself, the engine error says what and where): a planning error for bad arguments or
//! options, an execution error for bad data or a failed run.

use std::fmt::Display;

use datafusion::common::DataFusionError;

/// An error in a call's arguments or options, found while the query is planned.
pub(crate) fn plan_error(function: &str, e: impl Display) -> DataFusionError {
    DataFusionError::Plan(format!("{function}: {e}"))
}

/// An error in the data or the work, found while the query runs.
pub(crate) fn exec_error(function: &str, e: impl Display) -> DataFusionError {
    DataFusionError::Execution(format!("{function}: {e}"))
}
