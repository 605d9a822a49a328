//! `math_answer(text)`: the normalised final answer `math_equal` compares, to see what was
//! read out of a prediction.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::cast::as_string_array;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{doc_section, scalar_or_array};
use crate::lm::math_answer::{final_answer, normalize};

#[derive(Debug, PartialEq, Eq, Hash)]
pub struct MathAnswer {
    signature: Signature,
}

impl Default for MathAnswer {
    fn default() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "The final answer math_equal reads from a text (its last \\boxed{...}, else the X of \
         \"Final Answer: The final answer is X. I hope it is correct.\", else the whole text), \
         normalised by Minerva's rules as lm-eval-harness does. NULL in, NULL out.",
        "math_answer(text)",
    )
    .with_argument("text", "A model's output or a reference answer.")
    .with_sql_example(
        "SELECT math_answer('the total is \\boxed{1,000 \\text{ dollars}}');  -- 1000",
    )
    .build()
});

impl ScalarUDFImpl for MathAnswer {
    fn name(&self) -> &str {
        "math_answer"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let texts = cast(&arrays[0], &DataType::Utf8)?;
        let texts = as_string_array(&texts)?;
        let out: StringArray = (0..texts.len())
            .map(|r| {
                texts
                    .is_valid(r)
                    .then(|| normalize(final_answer(texts.value(r))))
            })
            .collect();
        scalar_or_array(&args.args, Arc::new(out))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOC)
    }
}
