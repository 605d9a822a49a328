//! `irt_fit(source, model, method [, options])`: item parameters of an IRT fit, per item.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::irt_source::{fit_table, IrtCall};
use super::TableFunctionDoc;
use crate::irt::batches::BenchmarkFit;
use crate::irt::{Flag, ItemParams};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_fit",
    syntax: "irt_fit(source, model, method [, options])",
    description: "Fits an item response model to responses and returns one row per item: benchmark, item_id, \
difficulty (b; higher is harder), discrimination (a; 1 for 1PL), guessing (the floor g; 0 but for 3PL/4PL), \
upper (the upper asymptote u; 1 but for 4PL), difficulty_se, n_responses, p_correct, infit, \
outfit, flag ('all_correct' / 'all_wrong' where the estimate comes from the prior, 'max_discrimination' where a 2PL \
slope reached its bound), and the fit's log_likelihood \
(at the point estimates), objective (what the method maximises: log posterior, ELBO or log marginal likelihood), \
iterations and converged. source is a table name or a query with columns model_id, item_id, correct \
(boolean or 0/1) and optionally benchmark; each benchmark is fitted separately unless options say joint. \
model is '1pl', '2pl', '3pl' or '4pl' (p = g + (u - g) sigmoid(a (theta - b)); 3PL and 4PL by 'mml' only). method is 'jml' (joint maximum a posteriori with weak normal priors, alternating \
Newton steps; the fast default), 'vi' (mean-field variational inference for py-irt's 1PL model, the paper's tool: \
posterior means and standard deviations, by coordinate ascent with Gauss-Hermite expectations, so converged and \
reproducible where py-irt's sampled gradients are not) or 'mml' (marginal maximum likelihood by EM with adaptive \
Gauss-Hermite quadrature, EAP abilities; 1PL estimates the abilities' spread). Every method is deterministic. \
options is a JSON object: priors ('weak': the default of jml and mml; 'vague': py-irt's default and vi's, \
theta ~ N(0, 1), b ~ N(0, 1000^2); 'hierarchical': py-irt's hierarchical priors, vi only), ability_sd (1), \
difficulty_sd (3), log_discrimination_sd (1), max_discrimination (20: the largest 2PL slope; items stopped there \
are flagged 'max_discrimination'), guessing (3PL/4PL: true; false fixes g = 0, which with '4pl' is py-irt's 4pl, \
u sigmoid(a (theta - b))), guessing_prior ([2, 8]: Beta shapes of g), upper_prior ([8, 2]: of u; an asymptote with fewer \
than 20 expected responses below or above the item's slope rests on its prior and is flagged 'guessing_from_prior' \
or 'upper_from_prior'), tolerance (1e-9, change of the objective per response that stops \
the fit), max_iter (500), threads, min_responses (5), quadrature_points (vi: 7 per expectation; mml: 7 per model), \
joint (false), seed (accepted; no method samples).",
    example: "SELECT item_id, difficulty FROM irt_fit('responses', '1pl', 'vi', '{\"priors\": \"hierarchical\"}') WHERE benchmark = 'gsm8k';",
};

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, true),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("difficulty", DataType::Float64, false),
        Field::new("discrimination", DataType::Float64, false),
        Field::new("guessing", DataType::Float64, false),
        Field::new("upper", DataType::Float64, false),
        Field::new("difficulty_se", DataType::Float64, false),
        Field::new("n_responses", DataType::Int64, false),
        Field::new("p_correct", DataType::Float64, false),
        Field::new("infit", DataType::Float64, true),
        Field::new("outfit", DataType::Float64, true),
        Field::new("flag", DataType::Utf8, true),
        Field::new("log_likelihood", DataType::Float64, false),
        Field::new("objective", DataType::Float64, false),
        Field::new("iterations", DataType::Int64, false),
        Field::new("converged", DataType::Boolean, false),
    ]))
}

fn output(schema: &SchemaRef, fits: &[BenchmarkFit]) -> Result<RecordBatch> {
    // (fit, benchmark, item_id, estimates) of every item.
    type Row<'a> = (&'a BenchmarkFit, Option<&'a str>, &'a str, &'a ItemParams);
    let rows: Vec<Row> = fits
        .iter()
        .flat_map(|f| {
            f.fit.items.iter().enumerate().map(move |(i, p)| {
                let (benchmark, item) = f.item(i);
                (f, benchmark, item, p)
            })
        })
        .collect();
    let float = |value: fn(&BenchmarkFit, &ItemParams) -> f64| -> ArrayRef {
        // Non-finite mean squares (an item without information) come out as NULL.
        Arc::new(Float64Array::from_iter(
            rows.iter()
                .map(|(f, _, _, p)| Some(value(f, p)).filter(|x| x.is_finite())),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(
            rows.iter().map(|(_, benchmark, _, _)| *benchmark),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, _, item, _)| *item),
        )),
        float(|_, p| p.difficulty),
        float(|_, p| p.discrimination),
        float(|_, p| p.guessing),
        float(|_, p| p.upper),
        float(|_, p| p.difficulty_se),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, _, _, p)| p.n_responses as i64),
        )),
        float(|_, p| p.p_correct),
        float(|_, p| p.infit),
        float(|_, p| p.outfit),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|(_, _, _, p)| p.flag.map(Flag::name)),
        )),
        float(|f, _| f.fit.log_likelihood),
        float(|f, _| f.fit.objective),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(f, _, _, _)| f.fit.iterations as i64),
        )),
        Arc::new(BooleanArray::from_iter(
            rows.iter().map(|(f, _, _, _)| Some(f.fit.converged)),
        )),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[derive(Debug, Default)]
pub struct IrtFit;

impl TableFunctionImpl for IrtFit {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = IrtCall::parse(DOC.name, args.exprs(), args.session())?;
        Ok(fit_table(call, schema(), output))
    }
}
