//! `irt_prob(theta, b [, a [, g [, u]]])`: probability of a correct answer under the logistic
//! IRT model, `g + (u - g) * sigmoid(a * (theta - b))`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, Float64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::cast::as_float64_array;
use datafusion::common::{exec_err, Result};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};

use super::{coerce_numeric, doc_section, lenient, listed_signature, scalar_or_array};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IrtProb {
    signature: Signature,
}

impl Default for IrtProb {
    fn default() -> Self {
        Self {
            signature: listed_signature((2..=5).map(|n| vec![DataType::Float64; n]).collect()),
        }
    }
}

const ARGS: [&str; 5] = ["theta", "b", "a", "g", "u"];

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Probability that a model of ability theta answers an item of difficulty b correctly under \
         the logistic IRT model: g + (u - g) / (1 + exp(-a * (theta - b))). With two arguments it is \
         the Rasch / 1PL model, with three the 2PL, with four the 3PL, with five the 4PL (irt_fit's \
         columns difficulty, discrimination, guessing, upper). NULL in, NULL out.",
        "irt_prob(theta, b [, a [, g [, u]]])",
    )
    .with_argument("theta", "Ability of the model (logit scale).")
    .with_argument("b", "Difficulty of the item; higher is harder.")
    .with_argument("a", "Discrimination (default 1).")
    .with_argument("g", "Guessing floor in [0, 1) (default 0).")
    .with_argument("u", "Upper asymptote in (g, 1] (default 1).")
    .with_sql_example("SELECT irt_prob(0.5, -1.0);                 -- 0.8176\nSELECT irt_prob(0.5, -1.0, 2.0, 0.25);       -- 0.9644\nSELECT irt_prob(0.5, -1.0, 2.0, 0.25, 0.9);  -- 0.8692")
    .build()
});

impl ScalarUDFImpl for IrtProb {
    fn name(&self) -> &str {
        "irt_prob"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        lenient(coerce_numeric(self.name(), &ARGS, 2, arg_types), arg_types)
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        coerce_numeric(self.name(), &ARGS, 2, arg_types)?;
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let column = |i: usize| arrays.get(i).map(|a| as_float64_array(a)).transpose();
        let (Some(theta), Some(b)) = (column(0)?, column(1)?) else {
            return exec_err!("irt_prob needs theta and b");
        };
        let (a, g, u) = (column(2)?, column(3)?, column(4)?);
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let get = |x: Option<&datafusion::arrow::array::PrimitiveArray<Float64Type>>,
                       default: f64| match x {
                None => Some(default),
                Some(x) if x.is_null(row) => None,
                Some(x) => Some(x.value(row)),
            };
            let (Some(t), Some(d), Some(s), Some(g), Some(u)) = (
                get(Some(theta), 0.0),
                get(Some(b), 0.0),
                get(a, 1.0),
                get(g, 0.0),
                get(u, 1.0),
            ) else {
                out.push(None);
                continue;
            };
            if !(0.0..1.0).contains(&g) {
                return exec_err!(
                    "irt_prob: the guessing floor g must be in [0, 1), got {g} at row {}",
                    row + 1
                );
            }
            if !(u > g && u <= 1.0) {
                return exec_err!(
                    "irt_prob: the upper asymptote u must be in (g, 1] = ({g}, 1], got {u} at row {}",
                    row + 1
                );
            }
            out.push(Some(crate::irt::probability(t, d, s, g, u)));
        }
        scalar_or_array(&args.args, Arc::new(Float64Array::from(out)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
