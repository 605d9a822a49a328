//! `irt_fit(source, model, method [, options])`: item parameters of an IRT fit, per item.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int64Builder, RecordBatch, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;

use super::irt_source::{FitTable, IrtCall};
use super::TableFunctionDoc;
use crate::irt::batches::BenchmarkFit;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_fit",
    syntax: "irt_fit(source, model, method [, options])",
    description: "Fits an item response model to responses and returns one row per item: benchmark, item_id, \
difficulty (b; higher is harder), discrimination (a; 1 for 1PL), difficulty_se, n_responses, p_correct, infit, \
outfit, flag ('all_correct' / 'all_wrong' where the estimate comes from the prior), and the fit's log_likelihood, \
iterations and converged. source is a table name or a query with columns model_id, item_id, correct \
(boolean or 0/1) and optionally benchmark; each benchmark is fitted separately unless options say joint. \
model is '1pl' or '2pl'. method is 'jml' (joint maximum a posteriori with weak normal priors, alternating \
Newton steps; deterministic). options is a JSON object: ability_sd (1), difficulty_sd (3), \
log_discrimination_sd (1), tolerance (1e-9, change of the log posterior per response that stops the fit), \
max_iter (500), threads, min_responses (5), joint (false), seed (accepted; jml is deterministic and does not use it).",
    example: "SELECT item_id, difficulty FROM irt_fit('responses', '1pl', 'jml') WHERE benchmark = 'gsm8k';",
};

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, true),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("difficulty", DataType::Float64, false),
        Field::new("discrimination", DataType::Float64, false),
        Field::new("difficulty_se", DataType::Float64, false),
        Field::new("n_responses", DataType::Int64, false),
        Field::new("p_correct", DataType::Float64, false),
        Field::new("infit", DataType::Float64, true),
        Field::new("outfit", DataType::Float64, true),
        Field::new("flag", DataType::Utf8, true),
        Field::new("log_likelihood", DataType::Float64, false),
        Field::new("iterations", DataType::Int64, false),
        Field::new("converged", DataType::Boolean, false),
    ]))
}

/// Splits the `benchmark/item_id` keys of a joint fit.
pub fn benchmark_and_item<'a>(fit: &'a BenchmarkFit, key: &'a str) -> (Option<&'a str>, &'a str) {
    match &fit.benchmark {
        Some(b) => (Some(b.as_str()), key),
        None => match key.split_once('/') {
            Some((b, i)) => (Some(b), i),
            None => (None, key),
        },
    }
}

fn output(schema: &SchemaRef, fits: &[BenchmarkFit]) -> Result<RecordBatch> {
    let (mut bench, mut item, mut flag) = (
        StringBuilder::new(),
        StringBuilder::new(),
        StringBuilder::new(),
    );
    let mut floats: Vec<Float64Builder> = (0..7).map(|_| Float64Builder::new()).collect();
    let (mut n, mut iterations, mut converged) = (
        Int64Builder::new(),
        Int64Builder::new(),
        BooleanBuilder::new(),
    );
    for f in fits {
        for (key, p) in f.matrix.items.iter().zip(&f.fit.items) {
            let (b, i) = benchmark_and_item(f, key);
            bench.append_option(b);
            item.append_value(i);
            let finite = |x: f64| x.is_finite().then_some(x);
            floats[0].append_value(p.difficulty);
            floats[1].append_value(p.discrimination);
            floats[2].append_value(p.difficulty_se);
            floats[3].append_value(p.p_correct);
            floats[4].append_option(finite(p.infit));
            floats[5].append_option(finite(p.outfit));
            floats[6].append_value(f.fit.log_likelihood);
            n.append_value(p.n_responses as i64);
            flag.append_option(p.flag);
            iterations.append_value(f.fit.iterations as i64);
            converged.append_value(f.fit.converged);
        }
    }
    let mut fl: Vec<ArrayRef> = floats
        .iter_mut()
        .map(|b| Arc::new(b.finish()) as ArrayRef)
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(bench.finish()),
        Arc::new(item.finish()),
        fl.remove(0),
        fl.remove(0),
        fl.remove(0),
        Arc::new(n.finish()),
        fl.remove(0),
        fl.remove(0),
        fl.remove(0),
        Arc::new(flag.finish()),
        fl.remove(0),
        Arc::new(iterations.finish()),
        Arc::new(converged.finish()),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[derive(Debug, Default)]
pub struct IrtFit;

impl TableFunctionImpl for IrtFit {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let call = IrtCall::parse(DOC.name, args.exprs(), args.session())?;
        Ok(Arc::new(FitTable {
            call,
            schema: schema(),
            output,
        }))
    }
}
