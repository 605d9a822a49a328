//! The SQL face of crossdiff: one file per SQL function and one [`register_all`].
//!
//! Files here hold signatures, argument checks and documentation; the numerics live in
//! `src/` (`stats`, `data`, and later `irt` and `lm`).

pub mod arithmetic_items;
pub mod crossdiff_functions;
pub mod difficulty_bin;
pub mod difficulty_bin_stability;
pub mod difficulty_quantile;
mod error;
pub mod evaluate;
mod experiment_source;
pub mod fine_tune;
pub mod gap_profile;
pub mod generalization_matrix;
pub mod irt_abilities;
pub mod irt_adaptive_replay;
pub mod irt_fit;
pub mod irt_linking;
pub mod irt_next_items;
pub mod irt_predict;
pub mod irt_prob;
pub mod irt_simulate;
mod irt_source;
pub mod kendall_tau;
mod lazy;
pub mod math_answer;
pub mod math_equal;
mod paired;
pub mod plot_difficulty;
pub mod plot_gap_profile;
pub mod plot_matrix;
pub mod read_items;
pub mod read_responses;
pub mod runs;
mod source;
pub mod spearman_corr;
pub mod tiny_model;

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, UInt32Array};
use datafusion::arrow::compute::{lexsort_to_indices, SortColumn, SortOptions};
use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableFunctionImpl;
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, ScalarUDF, Signature, TypeSignature, Volatility,
    WindowUDF,
};
use datafusion::prelude::SessionContext;

/// Documentation of a table function (DataFusion keeps none for them), shown by `\h NAME`.
#[derive(Debug, Clone, Copy)]
pub struct TableFunctionDoc {
    pub name: &'static str,
    pub syntax: &'static str,
    pub description: &'static str,
    pub example: &'static str,
}

impl TableFunctionDoc {
    /// The planning error for a call with a number of arguments outside `allowed`.
    pub fn check_arg_count(
        &self,
        exprs: &[Expr],
        allowed: std::ops::RangeInclusive<usize>,
    ) -> Result<()> {
        if allowed.contains(&exprs.len()) {
            return Ok(());
        }
        let (low, high) = (*allowed.start(), *allowed.end());
        let plural = if high == 1 { "argument" } else { "arguments" };
        let expected = match high - low {
            0 => format!("{low} {plural}"),
            1 => format!("{low} or {high} {plural}"),
            _ => format!("{low} to {high} {plural}"),
        };
        plan_err!("{} expects {expected}, got {}", self.syntax, exprs.len())
    }
}

/// One crossdiff SQL function.
pub enum Function {
    Scalar(ScalarUDF),
    Aggregate(AggregateUDF),
    Window(WindowUDF),
    /// DataFusion keeps no documentation for table functions: it travels beside them.
    Table(TableFunctionDoc, Arc<dyn TableFunctionImpl>),
}

/// What a function's documentation says, whatever its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDoc {
    pub name: String,
    /// "scalar", "aggregate", "window" or "table".
    pub kind: &'static str,
    pub syntax: String,
    pub description: String,
    /// (argument, what it is); empty where the description says it.
    pub arguments: Vec<(String, String)>,
    /// One or more SQL statements, each ending in `;` (comments allowed).
    pub example: String,
}

impl Function {
    pub fn doc(&self) -> FunctionDoc {
        let from = |name: &str, kind, d: Option<&Documentation>| {
            let d = d.expect("every crossdiff function is documented (tested)");
            FunctionDoc {
                name: name.to_string(),
                kind,
                syntax: d.syntax_example.clone(),
                description: d.description.clone(),
                arguments: d.arguments.clone().unwrap_or_default(),
                example: d.sql_example.clone().unwrap_or_default(),
            }
        };
        match self {
            Self::Scalar(f) => from(f.name(), "scalar", f.documentation()),
            Self::Aggregate(f) => from(f.name(), "aggregate", f.documentation()),
            Self::Window(f) => from(f.name(), "window", f.documentation()),
            Self::Table(d, _) => FunctionDoc {
                name: d.name.to_string(),
                kind: "table",
                syntax: d.syntax.to_string(),
                description: d.description.to_string(),
                arguments: Vec::new(),
                example: d.example.to_string(),
            },
        }
    }
}

/// Every crossdiff function: the one list that registration, `\h`, `crossdiff_functions()`
/// and the test that runs every example read.
pub fn functions() -> Vec<Function> {
    let table = |doc: TableFunctionDoc, f: Arc<dyn TableFunctionImpl>| Function::Table(doc, f);
    vec![
        Function::Scalar(ScalarUDF::new_from_impl(irt_prob::IrtProb::default())),
        Function::Scalar(ScalarUDF::new_from_impl(math_equal::MathEqual::default())),
        Function::Scalar(ScalarUDF::new_from_impl(math_answer::MathAnswer::default())),
        Function::Aggregate(AggregateUDF::new_from_impl(spearman_corr::spearman_corr())),
        Function::Aggregate(AggregateUDF::new_from_impl(kendall_tau::kendall_tau())),
        Function::Window(WindowUDF::new_from_impl(
            difficulty_quantile::DifficultyQuantile::default(),
        )),
        Function::Window(WindowUDF::new_from_impl(
            difficulty_bin::DifficultyBin::default(),
        )),
        Function::Window(WindowUDF::new_from_impl(
            difficulty_bin_stability::DifficultyBinStability::default(),
        )),
        table(read_responses::DOC, Arc::new(read_responses::ReadResponses)),
        table(read_items::DOC, Arc::new(read_items::ReadItems)),
        table(irt_fit::DOC, Arc::new(irt_fit::IrtFit)),
        table(irt_abilities::DOC, Arc::new(irt_abilities::IrtAbilities)),
        table(irt_predict::DOC, Arc::new(irt_predict::IrtPredict)),
        table(
            irt_adaptive_replay::DOC,
            Arc::new(irt_adaptive_replay::IrtAdaptiveReplay),
        ),
        table(irt_next_items::DOC, Arc::new(irt_next_items::IrtNextItems)),
        table(irt_simulate::DOC, Arc::new(irt_simulate::IrtSimulate)),
        table(
            arithmetic_items::DOC,
            Arc::new(arithmetic_items::ArithmeticItems),
        ),
        table(tiny_model::DOC, Arc::new(tiny_model::TinyModel)),
        table(fine_tune::DOC, Arc::new(fine_tune::FineTune)),
        table(evaluate::DOC, Arc::new(evaluate::Evaluate)),
        table(
            generalization_matrix::DOC,
            Arc::new(generalization_matrix::GeneralizationMatrix),
        ),
        table(gap_profile::DOC, Arc::new(gap_profile::GapProfile)),
        table(runs::DOC, Arc::new(runs::Runs)),
        table(runs::ITEMS_DOC, Arc::new(runs::RunItems)),
        table(plot_matrix::DOC, Arc::new(plot_matrix::PlotMatrix)),
        table(
            plot_gap_profile::DOC,
            Arc::new(plot_gap_profile::PlotGapProfile),
        ),
        table(
            plot_difficulty::DOC,
            Arc::new(plot_difficulty::PlotDifficulty),
        ),
        table(
            crossdiff_functions::DOC,
            Arc::new(crossdiff_functions::CrossdiffFunctions),
        ),
    ]
}

/// Every crossdiff function's documentation, in registration order.
pub fn function_docs() -> Vec<FunctionDoc> {
    functions().iter().map(Function::doc).collect()
}

/// Registers every crossdiff function on a session.
pub fn register_all(ctx: &SessionContext) {
    for f in functions() {
        match f {
            Function::Scalar(f) => ctx.register_udf(f),
            Function::Aggregate(f) => ctx.register_udaf(f),
            Function::Window(f) => ctx.register_udwf(f),
            Function::Table(doc, f) => ctx.register_udtf(doc.name, f),
        }
    }
}

/// The documentation section every crossdiff function is listed under.
pub(crate) fn doc_section() -> DocSection {
    DocSection {
        include: true,
        label: "crossdiff",
        description: Some("Difficulty and generalization analytics"),
    }
}

/// A scalar function's result: one value when every argument was one (`args`), else the
/// column.
pub(crate) fn scalar_or_array(
    args: &[datafusion::logical_expr::ColumnarValue],
    result: datafusion::arrow::array::ArrayRef,
) -> Result<datafusion::logical_expr::ColumnarValue> {
    use datafusion::logical_expr::ColumnarValue;
    Ok(
        if args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_))) {
            ColumnarValue::Scalar(datafusion::common::ScalarValue::try_from_array(&result, 0)?)
        } else {
            ColumnarValue::Array(result)
        },
    )
}

/// A signature SHOW FUNCTIONS can list while the function keeps checking its own arguments.
/// DataFusion lists a function by the example types of its signature (none for a purely
/// user-defined one), so the `Exact` variants name the usual calls; a call is resolved by the
/// first variant, `UserDefined`, whose `coerce_types` is [`lenient`] and never fails, and the
/// checks with their precise messages run after it, in `return_type` or `field`.
pub(crate) fn listed_signature(examples: Vec<Vec<DataType>>) -> Signature {
    let mut variants = vec![TypeSignature::UserDefined];
    variants.extend(examples.into_iter().map(TypeSignature::Exact));
    Signature::one_of(variants, Volatility::Immutable)
}

/// The coercion of a [`listed_signature`]: `checked`'s types, or the types as given when they
/// are wrong (so that `checked`, run again on them, reports why).
pub(crate) fn lenient(checked: Result<Vec<DataType>>, types: &[DataType]) -> Result<Vec<DataType>> {
    Ok(checked.unwrap_or_else(|_| types.to_vec()))
}

fn is_numeric(t: &DataType) -> bool {
    t.is_numeric() || matches!(t, DataType::Null)
}

/// Coerces every argument to Float64, checking the count (`min..=names.len()`) and that each
/// argument is numeric; errors name the function and the argument.
pub(crate) fn coerce_numeric(
    function: &str,
    names: &[&str],
    min: usize,
    types: &[DataType],
) -> Result<Vec<DataType>> {
    if types.len() < min || types.len() > names.len() {
        let range = if min == names.len() {
            format!("{min}")
        } else {
            format!("{min} to {}", names.len())
        };
        return plan_err!(
            "{function} expects {range} arguments ({}), got {}",
            names.join(", "),
            types.len()
        );
    }
    for (i, t) in types.iter().enumerate() {
        if !is_numeric(t) {
            return plan_err!(
                "{function}: argument {} ({}) must be numeric, got {t}",
                i + 1,
                names[i]
            );
        }
    }
    Ok(vec![DataType::Float64; types.len()])
}

/// The argument types a window function was called with.
pub(crate) fn input_types(
    args: &datafusion::logical_expr::function::WindowUDFFieldArgs,
) -> Vec<DataType> {
    args.input_fields()
        .iter()
        .map(|f| f.data_type().clone())
        .collect()
}

/// Argument types of the ranking window functions: difficulty, [n,] [tie_key].
pub(crate) fn coerce_ranking_args(
    function: &str,
    takes_n: bool,
    types: &[DataType],
) -> Result<Vec<DataType>> {
    let (min, names): (usize, &[&str]) = if takes_n {
        (2, &["difficulty", "n", "tie_key"])
    } else {
        (1, &["difficulty", "tie_key"])
    };
    if types.len() < min || types.len() > names.len() {
        return plan_err!(
            "{function} expects {min} or {} arguments ({}), got {}",
            names.len(),
            names.join(", "),
            types.len()
        );
    }
    let mut out = types.to_vec();
    if !is_numeric(&types[0]) {
        return plan_err!(
            "{function}: argument 1 (difficulty) must be numeric, got {}",
            types[0]
        );
    }
    out[0] = DataType::Float64;
    if takes_n {
        if !(types[1].is_integer() || matches!(types[1], DataType::Null)) {
            return plan_err!(
                "{function}: argument 2 (n) must be an integer, got {}",
                types[1]
            );
        }
        out[1] = DataType::Int64;
    }
    Ok(out)
}

/// The one positive value an integer argument of a window function takes on every row of
/// the partition (`n` bins, draws), or an error naming the function and the argument.
pub(crate) fn partition_constant(
    function: &str,
    values: &datafusion::arrow::array::ArrayRef,
    name: &str,
) -> Result<i64> {
    use datafusion::arrow::array::{Array, AsArray};
    let a = values.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    let first = (0..a.len()).find(|&i| a.is_valid(i)).map(|i| a.value(i));
    match first {
        Some(k) if k >= 1 && (0..a.len()).all(|i| a.is_valid(i) && a.value(i) == k) => Ok(k),
        Some(k) if k >= 1 => datafusion::common::exec_err!(
            "{function}: {name} must be the same for every row (found {k} and others)"
        ),
        Some(k) => {
            datafusion::common::exec_err!("{function}: {name} must be a positive integer, got {k}")
        }
        None => datafusion::common::exec_err!("{function}: {name} is NULL"),
    }
}

/// Positions of a window partition's rows in ascending difficulty order.
pub(crate) struct RankedPartition {
    /// 0-based position of each row among the non-NULL difficulties; `None` for NULL.
    pub positions: Vec<Option<usize>>,
    /// Number of non-NULL difficulties.
    pub count: usize,
}

/// Orders a partition by (difficulty, tie_key, row order); NULL difficulties are left out
/// and NaN is an error.
pub(crate) fn rank_partition(
    function: &str,
    difficulty: &ArrayRef,
    tie_key: Option<&ArrayRef>,
    num_rows: usize,
) -> Result<RankedPartition> {
    let values = datafusion::common::cast::as_float64_array(difficulty)?;
    if let Some(row) = (0..values.len()).find(|&i| values.is_valid(i) && values.value(i).is_nan()) {
        return exec_err!(
            "{function}: difficulty is NaN at row {} of the window partition",
            row + 1
        );
    }
    let options = Some(SortOptions {
        descending: false,
        nulls_first: false,
    });
    let mut columns = vec![SortColumn {
        values: difficulty.clone(),
        options,
    }];
    if let Some(key) = tie_key {
        columns.push(SortColumn {
            values: key.clone(),
            options,
        });
    }
    columns.push(SortColumn {
        values: Arc::new(UInt32Array::from_iter_values(0..num_rows as u32)),
        options,
    });
    let order = lexsort_to_indices(&columns, None)?;
    let count = values.len() - values.null_count();
    let mut positions = vec![None; num_rows];
    for (position, row) in order.values().iter().enumerate().take(count) {
        positions[*row as usize] = Some(position);
    }
    Ok(RankedPartition { positions, count })
}

/// A positive integer literal argument (at most `max`) of a table function; errors name the
/// function and argument.
pub(crate) fn positive_int_arg(
    function: &str,
    exprs: &[Expr],
    index: usize,
    name: &str,
    max: i64,
) -> Result<i64> {
    match exprs.get(index) {
        Some(Expr::Literal(ScalarValue::Int64(Some(n)), _)) if (1..=max).contains(n) => Ok(*n),
        Some(other) => plan_err!(
            "{function}: argument {} ({name}) must be a positive integer{}, got {other}",
            index + 1,
            if max < i64::MAX {
                format!(" up to {max}")
            } else {
                String::new()
            }
        ),
        None => plan_err!("{function}: missing argument {} ({name})", index + 1),
    }
}

/// A string literal argument of a table function; errors name the function and argument.
pub(crate) fn string_arg(
    function: &str,
    exprs: &[Expr],
    index: usize,
    name: &str,
) -> Result<String> {
    match exprs.get(index) {
        Some(Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        )) => Ok(s.clone()),
        Some(Expr::Literal(value, _)) => {
            plan_err!(
                "{function}: argument {} ({name}) must be a string, got {} {value}",
                index + 1,
                value.data_type()
            )
        }
        Some(other) => plan_err!(
            "{function}: argument {} ({name}) must be a string literal, got {other}",
            index + 1
        ),
        None => plan_err!("{function}: missing argument {} ({name})", index + 1),
    }
}
