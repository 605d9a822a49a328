//! Reading id and 0/1 columns of any Arrow type that a user's file may hold.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;

use super::responses::{parse_correct_number, parse_correct_text};

/// A column of a user's file that cannot be read as what it must hold.
#[derive(Debug, thiserror::Error)]
pub enum ColumnError {
    #[error("column `{column}` cannot be read as {to}: {source}")]
    Cast {
        column: String,
        to: &'static str,
        #[source]
        source: ArrowError,
    },
    #[error("column `{column}` has type {found}; expected boolean, 0/1 numbers or text")]
    Type { column: String, found: DataType },
}

fn cast_column(array: &ArrayRef, column: &str, to: DataType) -> Result<ArrayRef, ColumnError> {
    let name = if to == DataType::Utf8 {
        "text"
    } else {
        "numbers"
    };
    cast(array, &to).map_err(|source| ColumnError::Cast {
        column: column.to_string(),
        to: name,
        source,
    })
}

/// An id column (strings, large strings, views, integers) as plain UTF-8.
pub fn ids(array: &ArrayRef, column: &str) -> Result<StringArray, ColumnError> {
    Ok(cast_column(array, column, DataType::Utf8)?
        .as_string::<i32>()
        .clone())
}

/// A column of responses: booleans, numbers that must be 0 or 1, or text such as "1"/"true".
pub enum CorrectCells {
    Bool(BooleanArray),
    Number(Float64Array),
    Text(StringArray),
}

impl CorrectCells {
    pub fn new(array: &ArrayRef, column: &str) -> Result<Self, ColumnError> {
        match array.data_type() {
            DataType::Boolean => Ok(Self::Bool(array.as_boolean().clone())),
            t if t.is_numeric() => {
                let f = cast_column(array, column, DataType::Float64)?;
                Ok(Self::Number(
                    f.as_primitive::<arrow::datatypes::Float64Type>().clone(),
                ))
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                Ok(Self::Text(ids(array, column)?))
            }
            other => Err(ColumnError::Type {
                column: column.to_string(),
                found: other.clone(),
            }),
        }
    }

    /// `Ok(None)` for a missing cell (NULL, empty or NA); `Err` carries the offending value.
    pub fn get(&self, i: usize) -> Result<Option<bool>, String> {
        match self {
            Self::Bool(a) => Ok(a.is_valid(i).then(|| a.value(i))),
            Self::Number(a) => {
                if a.is_null(i) || a.value(i).is_nan() {
                    Ok(None)
                } else {
                    parse_correct_number(a.value(i)).map(Some)
                }
            }
            Self::Text(a) => {
                if a.is_null(i) {
                    Ok(None)
                } else {
                    parse_correct_text(a.value(i))
                }
            }
        }
    }
}
