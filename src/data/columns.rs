//! Reading id and 0/1 columns of any Arrow type that a user's file may hold.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::responses::{parse_correct_number, parse_correct_text};

/// An id column (strings, large strings, views, integers) as plain UTF-8.
pub fn ids(array: &ArrayRef, column: &str) -> Result<StringArray, String> {
    let utf8 = cast(array, &DataType::Utf8)
        .map_err(|e| format!("column `{column}` cannot be read as text: {e}"))?;
    Ok(utf8.as_string::<i32>().clone())
}

/// A column of responses: booleans, numbers that must be 0 or 1, or text such as "1"/"true".
pub enum CorrectCells {
    Bool(BooleanArray),
    Number(Float64Array),
    Text(StringArray),
}

impl CorrectCells {
    pub fn new(array: &ArrayRef, column: &str) -> Result<Self, String> {
        match array.data_type() {
            DataType::Boolean => Ok(Self::Bool(array.as_boolean().clone())),
            t if t.is_numeric() => {
                let f = cast(array, &DataType::Float64).map_err(|e| e.to_string())?;
                Ok(Self::Number(
                    f.as_primitive::<arrow::datatypes::Float64Type>().clone(),
                ))
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                Ok(Self::Text(ids(array, column)?))
            }
            other => Err(format!(
                "column `{column}` has type {other}; expected boolean, 0/1 numbers or text"
            )),
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
