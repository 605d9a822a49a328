//! `irt_abilities(source, model, method [, options])`: model abilities of an IRT fit.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::irt_source::{fit_table, IrtCall};
use super::TableFunctionDoc;
use crate::irt::batches::BenchmarkFit;
use crate::irt::Flag;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_abilities",
    syntax: "irt_abilities(source, model, method [, options])",
    description: "The same fit as irt_fit, one row per model (and benchmark): benchmark, model_id, ability \
(theta), ability_se, n_responses, flag ('all_correct', 'all_wrong' or 'few_responses' where the estimate \
leans on the prior). Arguments and options as irt_fit; a joint fit has benchmark NULL. Scoring against \
fixed items (linking, no refit): options {\"items\": TABLE or query with item_id, difficulty [, discrimination] \
[, benchmark]} (e.g. an earlier irt_fit's output), and as method the estimator: 'mle' (maximum likelihood; \
+-10 with an infinite ability_se for all-correct or all-wrong models), 'wle' (Warm's weighted likelihood, \
finite for every pattern), 'map' or 'eap' (posterior mode or mean under N(ability_mean, ability_sd^2), options \
ability_mean (0) and ability_sd (1)); model '1pl' ignores discrimination. Responses to items without \
parameters are an error naming the item.",
    example: "SELECT model_id, ability FROM irt_abilities('responses', '2pl', 'jml') ORDER BY ability DESC LIMIT 10;",
};

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, true),
        Field::new("model_id", DataType::Utf8, false),
        Field::new("ability", DataType::Float64, false),
        Field::new("ability_se", DataType::Float64, false),
        Field::new("n_responses", DataType::Int64, false),
        Field::new("flag", DataType::Utf8, true),
    ]))
}

/// One output row: benchmark, model_id, ability, ability_se, n_responses, flag.
pub type AbilityRow<'a> = (Option<&'a str>, &'a str, f64, f64, usize, Option<&'a str>);

/// The function's batch from its rows (of a fit, or of scoring against fixed items).
pub fn ability_batch<'a>(
    schema: &SchemaRef,
    rows: impl Iterator<Item = AbilityRow<'a>>,
) -> Result<RecordBatch> {
    let (mut bench, mut model, mut flag) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let (mut ability, mut se, mut n) = (
        Float64Builder::new(),
        Float64Builder::new(),
        Int64Builder::new(),
    );
    for (b, id, a, a_se, count, f) in rows {
        bench.append_option(b);
        model.append_value(id);
        ability.append_value(a);
        se.append_value(a_se);
        n.append_value(count as i64);
        flag.append_option(f);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(bench.finish()),
        Arc::new(model.finish()),
        Arc::new(ability.finish()),
        Arc::new(se.finish()),
        Arc::new(n.finish()),
        Arc::new(flag.finish()),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn output(schema: &SchemaRef, fits: &[BenchmarkFit]) -> Result<RecordBatch> {
    ability_batch(
        schema,
        fits.iter().flat_map(|f| {
            f.matrix.models.iter().zip(&f.fit.abilities).map(|(id, a)| {
                (
                    f.benchmark.as_deref(),
                    id.as_str(),
                    a.ability,
                    a.ability_se,
                    a.n_responses,
                    a.flag.map(Flag::name),
                )
            })
        }),
    )
}

#[derive(Debug, Default)]
pub struct IrtAbilities;

impl TableFunctionImpl for IrtAbilities {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if super::irt_linking::is_linking(args.exprs()) {
            let call = super::irt_linking::LinkCall::parse(DOC.name, args.exprs(), args.session())?;
            return Ok(call.table(schema()));
        }
        let call = IrtCall::parse(DOC.name, args.exprs(), args.session())?;
        Ok(fit_table(call, schema(), output))
    }
}
