//! `irt_predict(abilities, items)`: each (model, item)'s probability of a correct answer
//! from fitted abilities and item parameters, with what the predicted accuracy on any subset
//! of items needs for its standard error; the subset is a WHERE clause and the accuracy a
//! GROUP BY.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;
use datafusion::prelude::SessionContext;

use super::error::exec_error;
use super::irt_linking::read_item_bank;
use super::irt_source::context;
use super::lazy::{Job, LazyTable};
use super::source::{check_source_arg, source_frame};
use super::{string_arg, TableFunctionDoc};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_predict",
    syntax: "irt_predict(abilities, items)",
    description: "Each (model, item)'s predicted probability of a correct answer, sigmoid(discrimination * \
(ability - difficulty)). abilities is a table name or query with model_id, ability [, ability_se] \
[, benchmark] (irt_abilities' output); items one with item_id, difficulty [, discrimination] [, benchmark] \
(irt_fit's output). A model with a benchmark is paired with that benchmark's items, one without with every \
item. Returns benchmark, model_id, item_id, probability, d_probability (its derivative in the ability) and \
ability_se. The predicted accuracy on a subset of items is avg(probability) over it, with standard error \
abs(avg(d_probability)) * ability_se (the delta method), as the example computes.",
    example: "SELECT model_id, avg(probability) AS accuracy, abs(avg(d_probability)) * max(ability_se) AS accuracy_se \
FROM irt_predict('SELECT * FROM irt_abilities(''responses'', ''2pl'', ''jml'')', \
'SELECT * FROM irt_fit(''responses'', ''2pl'', ''jml'')') GROUP BY model_id;",
};

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, true),
        Field::new("model_id", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("probability", DataType::Float64, false),
        Field::new("d_probability", DataType::Float64, false),
        Field::new("ability_se", DataType::Float64, true),
    ]))
}

#[derive(Debug, Default)]
pub struct IrtPredict;

impl TableFunctionImpl for IrtPredict {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=2)?;
        let abilities = string_arg(DOC.name, exprs, 0, "abilities")?;
        let items = string_arg(DOC.name, exprs, 1, "items")?;
        let ctx = context(args.session())?;
        check_source_arg(&ctx, DOC.name, "abilities", &abilities)?;
        check_source_arg(&ctx, DOC.name, "items", &items)?;
        let out = schema();
        Ok(Arc::new(LazyTable::new(
            out.clone(),
            Arc::new(move |state: &dyn Session| {
                let (ctx, a, i, out) = (
                    context(state)?,
                    abilities.clone(),
                    items.clone(),
                    out.clone(),
                );
                let job: Job = Arc::new(move || {
                    let (ctx, a, i, out) = (ctx.clone(), a.clone(), i.clone(), out.clone());
                    Box::pin(async move { predict(&ctx, &a, &i, &out).await })
                });
                Ok(job)
            }),
        )))
    }
}

async fn predict(
    ctx: &SessionContext,
    abilities: &str,
    items: &str,
    out: &SchemaRef,
) -> Result<RecordBatch> {
    let f = DOC.name;
    let bank = read_item_bank(ctx, f, items).await?;
    let all = bank.items();
    let batches = source_frame(ctx, f, abilities).await?.collect().await?;
    let (mut bench, mut model, mut item) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut prob, mut slope, mut se) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    for batch in &batches {
        let need = |name: &str| -> Result<ArrayRef> {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                exec_error(
                    f,
                    format!("the abilities have no column `{name}` (model_id, ability [, ability_se] [, benchmark])"),
                )
            })
        };
        let text = |c: ArrayRef| -> Result<datafusion::arrow::array::StringArray> {
            Ok(cast(&c, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let number = |c: ArrayRef| -> Result<datafusion::arrow::array::Float64Array> {
            Ok(cast(&c, &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone())
        };
        let models = text(need("model_id")?)?;
        let theta = number(need("ability")?)?;
        let theta_se = batch
            .column_by_name("ability_se")
            .cloned()
            .map(number)
            .transpose()?;
        let benchmarks = batch
            .column_by_name("benchmark")
            .cloned()
            .map(text)
            .transpose()?;
        for r in 0..batch.num_rows() {
            if models.is_null(r) || theta.is_null(r) || !theta.value(r).is_finite() {
                return Err(exec_error(
                    f,
                    format!(
                        "abilities row {}: model_id and a finite ability are required",
                        r + 1
                    ),
                ));
            }
            let benchmark = benchmarks
                .as_ref()
                .and_then(|b| (!b.is_null(r)).then(|| b.value(r)));
            let row_se = theta_se
                .as_ref()
                .and_then(|s| (!s.is_null(r)).then(|| s.value(r)));
            let t = theta.value(r);
            for (item_bench, id, p) in &all {
                // A model of one benchmark meets that benchmark's items (and items of none).
                if benchmark.is_some() && item_bench.is_some() && benchmark != *item_bench {
                    continue;
                }
                bench.append_option(item_bench.or(benchmark));
                model.append_value(models.value(r));
                item.append_value(id);
                prob.append_value(p.p(t));
                slope.append_value(p.slope(t));
                se.append_option(row_se);
            }
        }
    }
    Ok(RecordBatch::try_new(
        out.clone(),
        vec![
            Arc::new(bench.finish()),
            Arc::new(model.finish()),
            Arc::new(item.finish()),
            Arc::new(prob.finish()),
            Arc::new(slope.finish()),
            Arc::new(se.finish()),
        ],
    )?)
}
