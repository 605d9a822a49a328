//! What the rank-correlation aggregates share: an aggregate of (x, y) pairs whose accumulator
//! buffers the pairs, skipping those with a NULL or NaN side, and applies a statistic at the
//! end. Partial states are the two buffered lists, so the aggregates merge correctly across
//! partitions. Each SQL function (`spearman_corr.rs`, `kendall_tau.rs`) names its statistic
//! and documentation.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, ListArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{Result, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Documentation, Signature};

use super::{coerce_numeric, lenient, listed_signature};

/// A statistic of paired samples; `None` when undefined (fewer than two pairs, no variance).
pub type PairStatistic = fn(&[f64], &[f64]) -> Option<f64>;

/// An aggregate `name(x, y)` computing `statistic` over the non-NULL pairs.
#[derive(Debug)]
pub struct PairedAggregate {
    name: &'static str,
    signature: Signature,
    statistic: PairStatistic,
    documentation: fn() -> &'static Documentation,
}

impl PairedAggregate {
    pub fn new(
        name: &'static str,
        statistic: PairStatistic,
        documentation: fn() -> &'static Documentation,
    ) -> Self {
        Self {
            name,
            signature: listed_signature(vec![vec![DataType::Float64; 2]]),
            statistic,
            documentation,
        }
    }
}

// The name identifies the function (function pointers have no meaningful equality).
impl PartialEq for PairedAggregate {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for PairedAggregate {}

impl std::hash::Hash for PairedAggregate {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl AggregateUDFImpl for PairedAggregate {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        lenient(
            coerce_numeric(self.name, &["x", "y"], 2, arg_types),
            arg_types,
        )
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        coerce_numeric(self.name, &["x", "y"], 2, arg_types)?;
        Ok(DataType::Float64)
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(PairsAccumulator::new(self.statistic)))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(state_fields(args))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some((self.documentation)())
    }
}

fn state_fields(args: StateFieldsArgs) -> Vec<FieldRef> {
    let item = Arc::new(Field::new_list_field(DataType::Float64, true));
    ["x", "y"]
        .into_iter()
        .map(|side| {
            Arc::new(Field::new(
                format!("{}[{side}]", args.name),
                DataType::List(item.clone()),
                true,
            ))
        })
        .collect()
}

#[derive(Debug)]
struct PairsAccumulator {
    x: Vec<f64>,
    y: Vec<f64>,
    statistic: PairStatistic,
}

impl PairsAccumulator {
    fn new(statistic: PairStatistic) -> Self {
        Self {
            x: Vec::new(),
            y: Vec::new(),
            statistic,
        }
    }

    fn push_arrays(&mut self, x: &ArrayRef, y: &ArrayRef) {
        let (x, y) = (
            x.as_primitive::<Float64Type>(),
            y.as_primitive::<Float64Type>(),
        );
        for i in 0..x.len() {
            if x.is_valid(i) && y.is_valid(i) && !x.value(i).is_nan() && !y.value(i).is_nan() {
                self.x.push(x.value(i));
                self.y.push(y.value(i));
            }
        }
    }
}

fn as_list(values: &[f64]) -> ScalarValue {
    let list = ListArray::from_iter_primitive::<Float64Type, _, _>([Some(
        values.iter().map(|v| Some(*v)),
    )]);
    ScalarValue::List(Arc::new(list))
}

impl Accumulator for PairsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.push_arrays(&values[0], &values[1]);
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64((self.statistic)(&self.x, &self.y)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self) + 8 * (self.x.capacity() + self.y.capacity())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![as_list(&self.x), as_list(&self.y)])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let (xs, ys) = (states[0].as_list::<i32>(), states[1].as_list::<i32>());
        for row in 0..xs.len() {
            if xs.is_valid(row) && ys.is_valid(row) {
                self.push_arrays(&xs.value(row), &ys.value(row));
            }
        }
        Ok(())
    }
}
