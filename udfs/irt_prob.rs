//! `irt_prob(theta, b [, a [, c]])`: probability of a correct answer under the logistic IRT
//! model, `c + (1 - c) * sigmoid(a * (theta - b))`.

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
            signature: listed_signature((2..=4).map(|n| vec![DataType::Float64; n]).collect()),
        }
    }
}

const ARGS: [&str; 4] = ["theta", "b", "a", "c"];

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Probability that a model of ability theta answers an item of difficulty b correctly under \
         the logistic IRT model: c + (1 - c) / (1 + exp(-a * (theta - b))). With two arguments it is \
         the Rasch / 1PL model, with three the 2PL, with four the 3PL. NULL in, NULL out.",
        "irt_prob(theta, b [, a [, c]])",
    )
    .with_argument("theta", "Ability of the model (logit scale).")
    .with_argument("b", "Difficulty of the item; higher is harder.")
    .with_argument("a", "Discrimination (default 1).")
    .with_argument("c", "Guessing floor in [0, 1) (default 0).")
    .with_sql_example("SELECT irt_prob(0.5, -1.0);            -- 0.8176\nSELECT irt_prob(0.5, -1.0, 2.0, 0.25);  -- 0.9644")
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
        let (a, c) = (column(2)?, column(3)?);
        let mut out = Vec::with_capacity(args.number_rows);
        for row in 0..args.number_rows {
            let get = |x: Option<&datafusion::arrow::array::PrimitiveArray<Float64Type>>,
                       default: f64| match x {
                None => Some(default),
                Some(x) if x.is_null(row) => None,
                Some(x) => Some(x.value(row)),
            };
            let (Some(t), Some(d), Some(s), Some(g)) = (
                get(Some(theta), 0.0),
                get(Some(b), 0.0),
                get(a, 1.0),
                get(c, 0.0),
            ) else {
                out.push(None);
                continue;
            };
            if !(0.0..1.0).contains(&g) {
                return exec_err!(
                    "irt_prob: the guessing parameter c must be in [0, 1), got {g} at row {}",
                    row + 1
                );
            }
            out.push(Some(crate::irt::probability(t, d, s, g)));
        }
        scalar_or_array(&args.args, Arc::new(Float64Array::from(out)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
