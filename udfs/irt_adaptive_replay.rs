//! `irt_adaptive_replay(source [, options])`: how well a few items estimate a model's accuracy
//! on the whole benchmark, by adaptive selection against random items, replayed on real
//! models of a leaderboard that the item fit never saw.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::Result;
use serde::Deserialize;

use super::error::{exec_error, plan_error};
use super::irt_source::{context, read_matrices};
use super::lazy::{Job, LazyTable};
use super::source::check_source_arg;
use super::{string_arg, TableFunctionDoc};
use crate::irt::adaptive::{replay_leaderboard, LeaderboardReplay, ReplayOptions, Selection};
use crate::irt::options::IrtOptions;
use crate::irt::{IrtModel, Method};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_adaptive_replay",
    syntax: "irt_adaptive_replay(source [, options])",
    description: "Replays a leaderboard's models through adaptive and random item selections and reports, per \
benchmark and test length, the error of the estimated full-benchmark accuracy. source is a table name or query \
with model_id, item_id, correct [, benchmark]. Per benchmark, a seeded share of the models (train_share, 0.5) \
fits the items (model '1pl' or '2pl', method as irt_fit, default '2pl' 'jml', irt: irt_fit's options); every \
other model is replayed against those items, on the items it answered: 'adaptive' asks the item of maximum \
Fisher information at its running EAP ability (the prior: the mean and spread of the training models' \
abilities), randomesque (1) drawing among the k most informative; 'random_irt' asks random items; both estimate accuracy as the observed answers plus the predicted \
probability of every unasked item (tinyBenchmarks' p-IRT); 'random_mean' is the plain mean of the random items. \
Returns benchmark, n_items (each of lengths, [10, 25, 50, 100]), strategy, mae (mean absolute error over the \
replayed models), mae_se, rmse, bias (mean of estimate - accuracy), n_models (replayed), n_train_models. \
Deterministic for a seed (42), on any number of threads.",
    example: "SELECT benchmark, n_items, strategy, round(mae, 4) AS mae FROM irt_adaptive_replay('responses', \
'{\"lengths\": [10, 50]}') ORDER BY benchmark, n_items, strategy;",
};

/// The options object.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ReplayArgs {
    model: IrtModel,
    method: Method,
    irt: IrtOptions,
    train_share: f64,
    lengths: Vec<usize>,
    randomesque: usize,
    seed: u64,
}

impl Default for ReplayArgs {
    fn default() -> Self {
        Self {
            model: IrtModel::TwoPl,
            method: Method::Jml,
            irt: IrtOptions::default(),
            train_share: 0.5,
            lengths: vec![10, 25, 50, 100],
            randomesque: 1,
            seed: 42,
        }
    }
}

impl ReplayArgs {
    fn spec(&self) -> std::result::Result<LeaderboardReplay, String> {
        if !(self.train_share > 0.0 && self.train_share < 1.0) {
            return Err(format!(
                "option `train_share` must be in (0, 1), got {}",
                self.train_share
            ));
        }
        if self.lengths.is_empty() || self.lengths.contains(&0) {
            return Err(format!(
                "option `lengths` must list positive test lengths, got {:?}",
                self.lengths
            ));
        }
        if self.randomesque == 0 {
            return Err("option `randomesque` must be at least 1, got 0".into());
        }
        if self.model.has_asymptotes() {
            return Err(format!(
                "option `model`: adaptive replay scores with '1pl' or '2pl' items, not '{}'",
                self.model.name()
            ));
        }
        let mut fit = self
            .irt
            .fit_options(self.model, self.method)
            .map_err(|e| format!("irt.{e}"))?;
        fit.progress = false;
        let mut lengths = self.lengths.clone();
        lengths.sort_unstable();
        lengths.dedup();
        Ok(LeaderboardReplay {
            fit,
            train_share: self.train_share,
            replay: ReplayOptions {
                lengths,
                selection: Selection {
                    randomesque: self.randomesque,
                },
                prior: (0.0, 1.0),
                seed: self.seed,
            },
        })
    }
}

pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("benchmark", DataType::Utf8, true),
        Field::new("n_items", DataType::Int64, false),
        Field::new("strategy", DataType::Utf8, false),
        Field::new("mae", DataType::Float64, false),
        Field::new("mae_se", DataType::Float64, false),
        Field::new("rmse", DataType::Float64, false),
        Field::new("bias", DataType::Float64, false),
        Field::new("n_models", DataType::Int64, false),
        Field::new("n_train_models", DataType::Int64, false),
    ]))
}

#[derive(Debug, Default)]
pub struct IrtAdaptiveReplay;

impl TableFunctionImpl for IrtAdaptiveReplay {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let f = DOC.name;
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 1..=2)?;
        let source = string_arg(f, exprs, 0, "source")?;
        let options: ReplayArgs = match exprs.len() {
            2 => crate::options::parse(&string_arg(f, exprs, 1, "options")?)
                .map_err(|e| plan_error(f, e))?,
            _ => ReplayArgs::default(),
        };
        let spec = options.spec().map_err(|e| plan_error(f, e))?;
        check_source_arg(&context(args.session())?, f, "the source", &source)?;
        let out = schema();
        Ok(Arc::new(LazyTable::new(
            out.clone(),
            Arc::new(move |state: &dyn Session| {
                let (ctx, source, spec, out) =
                    (context(state)?, source.clone(), spec.clone(), out.clone());
                let job: Job = Arc::new(move || {
                    let (ctx, source, spec, out) =
                        (ctx.clone(), source.clone(), spec.clone(), out.clone());
                    Box::pin(async move {
                        let matrices = read_matrices(&ctx, f, &source, false)
                            .await?
                            .finish()
                            .map_err(|e| exec_error(f, e))?;
                        let results = tokio::task::spawn_blocking(move || {
                            matrices
                                .iter()
                                .map(|(benchmark, m)| {
                                    replay_leaderboard(m, &spec).map(|r| (benchmark.clone(), r))
                                })
                                .collect::<crate::irt::Result<Vec<_>>>()
                        })
                        .await
                        .map_err(|e| exec_error(f, e))?
                        .map_err(|e| exec_error(f, e))?;
                        batch(&out, &results)
                    })
                });
                Ok(job)
            }),
        )))
    }
}

type BenchmarkReplay = (
    Option<String>,
    (Vec<crate::irt::adaptive::ReplayRow>, usize),
);

fn batch(schema: &SchemaRef, results: &[BenchmarkReplay]) -> Result<RecordBatch> {
    let rows: Vec<(&Option<String>, &crate::irt::adaptive::ReplayRow, usize)> = results
        .iter()
        .flat_map(|(b, (rows, n_train))| rows.iter().map(move |r| (b, r, *n_train)))
        .collect();
    let float = |value: fn(&crate::irt::adaptive::ReplayRow) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, r, _)| value(r)),
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(
            rows.iter().map(|(b, _, _)| b.as_deref()),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, r, _)| r.length as i64),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|(_, r, _)| r.strategy.name()),
        )),
        float(|r| r.mean_absolute_error),
        float(|r| r.mae_se),
        float(|r| r.rmse),
        float(|r| r.bias),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, r, _)| r.n_models as i64),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, _, n)| *n as i64),
        )),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
