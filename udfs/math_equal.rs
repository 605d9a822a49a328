//! `math_equal(prediction, target)`: whether a MATH prediction's final answer equals the
//! target, graded as lm-eval-harness's Minerva-math tasks grade it.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{doc_section, scalar_or_array};
use crate::lm::math_answer::math_equal;

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MathEqual {
    signature: Signature,
}

impl Default for MathEqual {
    fn default() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Whether a MATH prediction is correct, as lm-eval-harness's minerva_math and \
         leaderboard_math tasks grade it (their exact_match_original): the final answer is the \
         last \\boxed{...} of the prediction (else the X of \"Final Answer: The final answer is X. \
         I hope it is correct.\", else the whole text), both answers are normalised by Minerva's \
         rules (the part after the last '=', no spaces, units, \\text{}, $, ^\\circ; \\frac12 as \
         \\frac{1}{2}; 100,000 as 100000), and they are equal when the normalised texts are or \
         their numeric values are (0.5 = \\frac{1}{2}, \\frac{\\sqrt{2}}{2} = \\frac{1}{\\sqrt{2}}; \
         lm-eval uses sympy for this). A target holding a \\boxed{} (a full solution) gives its \
         boxed part. NULL in, NULL out.",
        "math_equal(prediction, target)",
    )
    .with_argument("prediction", "The model's output text.")
    .with_argument("target", "The reference answer (or a solution with a \\boxed{} answer).")
    .with_sql_example(
        "SELECT math_equal('so the answer is $\\boxed{0.5}$', '\\frac{1}{2}');  -- true",
    )
    .build()
});

impl ScalarUDFImpl for MathEqual {
    fn name(&self) -> &str {
        "math_equal"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let text = |i: usize| cast(&arrays[i], &DataType::Utf8);
        let (predictions, targets) = (text(0)?, text(1)?);
        let (predictions, targets) = (as_string_array(&predictions)?, as_string_array(&targets)?);
        let out: BooleanArray = (0..predictions.len())
            .map(|r| {
                (predictions.is_valid(r) && targets.is_valid(r))
                    .then(|| math_equal(predictions.value(r), targets.value(r)))
            })
            .collect();
        scalar_or_array(&args.args, Arc::new(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
