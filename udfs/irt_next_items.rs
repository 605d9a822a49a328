//! `irt_next_items(items, responses [, options])`: the items to ask each model next in an
//! adaptive test, by maximum Fisher information at its current ability.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;
use datafusion::prelude::SessionContext;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::error::{exec_error, plan_error};
use super::irt_linking::{answers_by_model, read_item_bank};
use super::irt_source::{context, read_matrices};
use super::lazy::{Job, LazyTable};
use super::source::check_source_arg;
use super::{string_arg, TableFunctionDoc};
use crate::irt::adaptive::{information, Posterior, Selection};
use crate::irt::scoring::FixedItem;
use crate::irt::IrtError;

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_next_items",
    syntax: "irt_next_items(items, responses [, options])",
    description: "The next items of an adaptive test: for each model and benchmark, the unanswered items of most \
Fisher information (a^2 P (1 - P)) at the model's current ability, the posterior mean (EAP) of its answers so far \
under theta ~ N(ability_mean, ability_sd^2) (0, 1). items is a table name or query with item_id, difficulty \
[, discrimination] [, benchmark] (irt_fit's output for '1pl' or '2pl'); responses one with model_id, item_id, \
correct [, benchmark]: the answers given so far, each to an item of items. options: n (1, items per model), \
randomesque (1: each of the n is drawn among the k most informative left, for exposure control), seed (42), \
benchmarks (a list: only these benchmarks' items are asked), models (a list of model ids with no answers yet, \
started from the prior). Returns benchmark, model_id, rank, item_id, information, ability, ability_se, \
n_answered. A model that has answered every item of a benchmark it is asked about is an error naming both.",
    example: "SELECT model_id, item_id, round(information, 3) AS information FROM irt_next_items(\
'SELECT * FROM irt_fit(''responses'', ''2pl'', ''jml'')', \
'SELECT * FROM responses WHERE item_id < ''sim-item-00005''', '{\"n\": 2, \"models\": [\"new-model\"]}') \
ORDER BY model_id, rank LIMIT 6;",
};

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct NextArgs {
    n: usize,
    randomesque: usize,
    seed: u64,
    benchmarks: Option<Vec<String>>,
    models: Vec<String>,
    ability_mean: f64,
    ability_sd: f64,
}

impl Default for NextArgs {
    fn default() -> Self {
        Self {
            n: 1,
            randomesque: 1,
            seed: 42,
            benchmarks: None,
            models: Vec::new(),
            ability_mean: 0.0,
            ability_sd: 1.0,
        }
    }
}

impl NextArgs {
    fn check(&self) -> std::result::Result<(), String> {
        if self.n == 0 {
            return Err("option `n` must be at least 1, got 0".into());
        }
        if self.randomesque == 0 {
            return Err("option `randomesque` must be at least 1, got 0".into());
        }
        if !(self.ability_sd.is_finite() && self.ability_sd > 0.0 && self.ability_mean.is_finite())
        {
            return Err(format!(
                "options `ability_mean` and `ability_sd` must be finite and ability_sd positive, got {} and {}",
                self.ability_mean, self.ability_sd
            ));
        }
        Ok(())
    }
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, true),
        Field::new("model_id", DataType::Utf8, false),
        Field::new("rank", DataType::Int64, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("information", DataType::Float64, false),
        Field::new("ability", DataType::Float64, false),
        Field::new("ability_se", DataType::Float64, false),
        Field::new("n_answered", DataType::Int64, false),
    ]))
}

#[derive(Debug, Default)]
pub struct IrtNextItems;

impl TableFunctionImpl for IrtNextItems {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let f = DOC.name;
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=3)?;
        let items = string_arg(f, exprs, 0, "items")?;
        let responses = string_arg(f, exprs, 1, "responses")?;
        let options: NextArgs = match exprs.len() {
            3 => crate::options::parse(&string_arg(f, exprs, 2, "options")?)
                .map_err(|e| plan_error(f, e))?,
            _ => NextArgs::default(),
        };
        options.check().map_err(|e| plan_error(f, e))?;
        let ctx = context(args.session())?;
        check_source_arg(&ctx, f, "items", &items)?;
        check_source_arg(&ctx, f, "responses", &responses)?;
        let out = schema();
        Ok(Arc::new(LazyTable::new(
            out.clone(),
            Arc::new(move |state: &dyn Session| {
                let call = (
                    context(state)?,
                    items.clone(),
                    responses.clone(),
                    options.clone(),
                    out.clone(),
                );
                let job: Job = Arc::new(move || {
                    let (ctx, items, responses, options, out) = call.clone();
                    Box::pin(
                        async move { next_items(&ctx, &items, &responses, &options, &out).await },
                    )
                });
                Ok(job)
            }),
        )))
    }
}

/// An output row: benchmark, model_id, rank, item_id, information, ability, ability_se,
/// n_answered.
type Row = (Option<String>, String, usize, String, f64, f64, f64, usize);

async fn next_items(
    ctx: &SessionContext,
    items: &str,
    responses: &str,
    options: &NextArgs,
    out: &SchemaRef,
) -> Result<RecordBatch> {
    let f = DOC.name;
    let bank = read_item_bank(ctx, f, items).await?;
    // The pool per benchmark, after the content filter: item ids and their parameters.
    let mut pools: BTreeMap<Option<String>, (Vec<&str>, Vec<FixedItem>)> = BTreeMap::new();
    let bank_items = bank.items();
    for &(benchmark, id, item) in &bank_items {
        if let Some(wanted) = &options.benchmarks {
            if !benchmark.is_some_and(|b| wanted.iter().any(|w| w == b)) {
                continue;
            }
        }
        let (ids, params) = pools.entry(benchmark.map(str::to_string)).or_default();
        ids.push(id);
        params.push(item);
    }
    if pools.is_empty() {
        return Err(exec_error(
            f,
            format!(
                "no item is left to ask: the option benchmarks {:?} matches no benchmark of the items \
                 (items without a benchmark column match none)",
                options.benchmarks.as_deref().unwrap_or_default()
            ),
        ));
    }
    // Every (benchmark, model)'s answers so far.
    let matrices = match read_matrices(ctx, f, responses, false).await?.finish() {
        Ok(m) => m,
        // No answers yet is a valid start when the models are named.
        Err(IrtError::Empty(_)) if !options.models.is_empty() => Vec::new(),
        Err(e) => return Err(exec_error(f, e)),
    };
    let mut answers = answers_by_model(f, &bank, &matrices)?;
    for model in &options.models {
        for benchmark in pools.keys() {
            answers
                .entry((benchmark.clone(), model.clone()))
                .or_default();
        }
    }
    let selection = Selection {
        randomesque: options.randomesque,
    };
    let mut rows: Vec<Row> = Vec::new();
    for (stream, ((benchmark, model), given)) in answers.iter().enumerate() {
        let Some((pool_ids, pool_items)) = pools.get(benchmark) else {
            continue;
        };
        let mut posterior = Posterior::new(options.ability_mean, options.ability_sd);
        for (_, item, correct) in given {
            posterior.observe(item, *correct);
        }
        let (theta, theta_se) = posterior.estimate();
        let asked: HashSet<&str> = given.iter().map(|&(id, _, _)| id).collect();
        let mut left: Vec<usize> = (0..pool_ids.len())
            .filter(|&i| !asked.contains(pool_ids[i]))
            .collect();
        if left.is_empty() {
            let name = benchmark
                .as_deref()
                .map_or(String::new(), |b| format!(" of benchmark `{b}`"));
            return Err(exec_error(
                f,
                format!(
                    "model `{model}` has answered every item{name}: there is no next item (drop the \
                     benchmark with the option benchmarks, or the model from the responses)"
                ),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
        rng.set_stream(stream as u64);
        for rank in 1..=options.n {
            let Some(i) = selection.next(pool_items, &left, theta, &mut rng) else {
                break;
            };
            left.retain(|&x| x != i);
            rows.push((
                benchmark.clone(),
                model.clone(),
                rank,
                pool_ids[i].to_string(),
                information(&pool_items[i], theta),
                theta,
                theta_se,
                given.len(),
            ));
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0.as_deref()))),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.1.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.2 as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.3.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.4))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.5))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.6))),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.7 as i64),
        )),
    ];
    Ok(RecordBatch::try_new(out.clone(), columns)?)
}
