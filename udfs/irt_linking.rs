//! `irt_abilities(source, model, estimator, '{"items": ...}')`: abilities of models scored
//! against already-fitted items (linking), so a new model is placed on an existing
//! leaderboard's scale without refitting it. The estimators are those of `irt::scoring`.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{plan_err, Result};
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;

use super::error::exec_error;
use super::irt_abilities::ability_batch;
use super::irt_source::{context, read_matrices};
use super::lazy::{Job, LazyTable};
use super::source::{check_source_arg, source_frame};
use super::string_arg;
use crate::irt::scoring::{score_models, Estimator, FixedItem, ItemBank, ModelResponses};
use crate::irt::{Flag, IrtModel, ResponseMatrix};

/// The options of a linking call.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkOptions {
    /// A table name or query with item_id, difficulty [, discrimination] [, benchmark].
    items: String,
    /// The ability prior of 'map' and 'eap': N(ability_mean, ability_sd^2).
    #[serde(default)]
    ability_mean: f64,
    #[serde(default = "one")]
    ability_sd: f64,
}

fn one() -> f64 {
    1.0
}

/// A parsed linking call.
#[derive(Debug, Clone)]
pub struct LinkCall {
    function: &'static str,
    source: String,
    items: String,
    model: IrtModel,
    estimator: Estimator,
}

/// Whether an options argument asks for linking (it names `items`).
pub fn is_linking(exprs: &[Expr]) -> bool {
    exprs.len() == 4
        && string_arg("irt_abilities", exprs, 3, "options")
            .ok()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
            .is_some_and(|v| v.get("items").is_some())
}

impl LinkCall {
    pub fn parse(function: &'static str, exprs: &[Expr], session: &dyn Session) -> Result<Self> {
        let source = string_arg(function, exprs, 0, "source")?;
        let model = IrtModel::parse(&string_arg(function, exprs, 1, "model")?)
            .map_err(|e| super::error::plan_error(function, e))?;
        if model.has_asymptotes() {
            return plan_err!(
                "{function}: scoring against fixed items (the option items) takes the model \
                 '1pl' or '2pl', not '{}'; for 3PL/4PL abilities fit the responses with \
                 irt_abilities(source, '{}', 'mml')",
                model.name(),
                model.name()
            );
        }
        let options: LinkOptions =
            crate::options::parse(&string_arg(function, exprs, 3, "options")?)
                .map_err(|e| super::error::plan_error(function, e))?;
        let (mean, sd) = (options.ability_mean, options.ability_sd);
        if !(sd.is_finite() && sd > 0.0 && mean.is_finite()) {
            return plan_err!(
                "{function}: ability_sd must be a positive number and ability_mean finite, got {} and {}",
                options.ability_sd,
                options.ability_mean
            );
        }
        let name = string_arg(function, exprs, 2, "method")?;
        let estimator = match name.trim().to_ascii_lowercase().as_str() {
            "mle" => Estimator::Mle,
            "wle" => Estimator::Wle,
            "map" => Estimator::Map { mean, sd },
            "eap" => Estimator::Eap { mean, sd },
            other => {
                return plan_err!(
                    "{function}: scoring against fixed items (the option items) takes the \
                     estimator 'mle', 'wle', 'map' or 'eap' as its method, not '{other}'"
                )
            }
        };
        let ctx = context(session)?;
        check_source_arg(&ctx, function, "the source", &source)?;
        check_source_arg(&ctx, function, "items", &options.items)?;
        Ok(Self {
            function,
            source,
            items: options.items,
            model,
            estimator,
        })
    }

    /// The table: items and responses are read, and every model scored, when the query runs.
    pub fn table(self, schema: SchemaRef) -> Arc<dyn TableProvider> {
        let table_schema = schema.clone();
        Arc::new(LazyTable::new(
            table_schema,
            Arc::new(move |state: &dyn Session| {
                let (ctx, call, schema) = (context(state)?, self.clone(), schema.clone());
                let job: Job = Arc::new(move || {
                    let (ctx, call, schema) = (ctx.clone(), call.clone(), schema.clone());
                    Box::pin(async move { call.run(ctx, &schema).await })
                });
                Ok(job)
            }),
        ))
    }

    async fn run(&self, ctx: SessionContext, schema: &SchemaRef) -> Result<RecordBatch> {
        let f = self.function;
        let bank = self.read_items(&ctx).await?;
        // The responses are read and checked as irt_fit reads them (NULLs, 0/1, duplicates).
        let matrices = read_matrices(&ctx, f, &self.source, false)
            .await?
            .finish()
            .map_err(|e| exec_error(f, e))?;
        let answers = answers_by_model(f, &bank, &matrices)?;
        let keys: Vec<(Option<String>, String)> = answers.keys().cloned().collect();
        let one_pl = self.model == IrtModel::OnePl;
        let groups: Vec<ModelResponses> = answers
            .into_values()
            .map(|given| ModelResponses {
                items: given
                    .iter()
                    .map(|&(_, item, _)| FixedItem {
                        discrimination: if one_pl { 1.0 } else { item.discrimination },
                        ..item
                    })
                    .collect(),
                responses: given.iter().map(|&(_, _, y)| y).collect(),
            })
            .collect();
        let estimator = self.estimator;
        let scores =
            tokio::task::spawn_blocking(move || (score_models(&groups, estimator), groups))
                .await
                .map_err(|e| datafusion::common::DataFusionError::External(Box::new(e)))?;
        let (scores, groups) = scores;
        let rows = keys.iter().zip(&scores).zip(&groups).map(|((key, s), g)| {
            let k = g.responses.iter().filter(|&&x| x).count();
            let flag = if k == g.responses.len() {
                Some(Flag::AllCorrect.name())
            } else if k == 0 {
                Some(Flag::AllWrong.name())
            } else {
                None
            };
            (
                key.0.as_deref(),
                key.1.as_str(),
                s.ability,
                s.ability_se,
                g.responses.len(),
                flag,
            )
        });
        ability_batch(schema, rows)
    }

    async fn read_items(&self, ctx: &SessionContext) -> Result<ItemBank> {
        read_item_bank(ctx, self.function, &self.items).await
    }
}

/// (benchmark, model) -> each of its responses as (item_id, the item's parameters, correct),
/// in a stable order.
pub(crate) type AnswersByModel<'a> =
    BTreeMap<(Option<String>, String), Vec<(&'a str, FixedItem, bool)>>;

/// Every model's responses matched to the fitted items (the benchmark a response belongs to
/// is the bank's); a response to an item the bank lacks is an error naming it.
pub(crate) fn answers_by_model<'a>(
    f: &str,
    bank: &ItemBank,
    matrices: &'a [(Option<String>, ResponseMatrix)],
) -> Result<AnswersByModel<'a>> {
    let mut answers = AnswersByModel::new();
    for (benchmark, m) in matrices {
        for (j, model_id) in m.models.iter().enumerate() {
            let mut failed = None;
            m.for_model(j, |i, correct| {
                if failed.is_some() {
                    return;
                }
                match bank.find(benchmark.as_deref(), &m.items[i]) {
                    Ok((found, item)) => answers
                        .entry((found, model_id.clone()))
                        .or_default()
                        .push((m.items[i].as_str(), item, correct)),
                    Err(e) => failed = Some(e),
                }
            });
            if let Some(e) = failed {
                return Err(exec_error(f, e));
            }
        }
    }
    Ok(answers)
}

/// Fitted items from a table name or query: item_id, difficulty [, discrimination]
/// [, benchmark]; bad or duplicated rows are errors naming the item.
pub(crate) async fn read_item_bank(
    ctx: &SessionContext,
    f: &str,
    source: &str,
) -> Result<ItemBank> {
    let df = source_frame(ctx, f, source).await?;
    let batches = df.collect().await?;
    let mut bank = ItemBank::default();
    for batch in &batches {
        let column = |name: &str| batch.column_by_name(name);
        let need = |name: &str| {
            column(name).ok_or_else(|| {
                    exec_error(f, format!("the items have no column `{name}` (item_id, difficulty [, discrimination] [, benchmark])"))
                })
        };
        let ids = cast(need("item_id")?, &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let b = cast(need("difficulty")?, &DataType::Float64)?;
        let b = b.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let a = column("discrimination")
            .map(|c| cast(c, &DataType::Float64))
            .transpose()?;
        let a = a
            .as_ref()
            .map(|a| a.as_primitive::<datafusion::arrow::datatypes::Float64Type>());
        let benchmarks = column("benchmark")
            .map(|c| cast(c, &DataType::Utf8))
            .transpose()?;
        let benchmarks = benchmarks.as_ref().map(|c| c.as_string::<i32>());
        // Items of a 3PL/4PL fit carry asymptotes the 2PL scoring would silently drop.
        let asymptotes = [("guessing", 0.0), ("upper", 1.0)]
            .into_iter()
            .filter_map(|(name, neutral)| {
                column(name).map(|c| cast(c, &DataType::Float64).map(|c| (name, neutral, c)))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        for r in 0..batch.num_rows() {
            if ids.is_null(r) {
                return Err(exec_error(f, "an item has a NULL item_id"));
            }
            for (name, neutral, values) in &asymptotes {
                let values = values.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
                if !values.is_null(r) && values.value(r) != *neutral {
                    return Err(exec_error(
                        f,
                        format!(
                            "item `{}` has {name} {} (a 3PL/4PL fit); scoring against fixed items \
                             takes 1PL/2PL items, whose {name} is {neutral}",
                            ids.value(r),
                            values.value(r)
                        ),
                    ));
                }
            }
            let value = |x: Option<f64>| x.unwrap_or(f64::NAN);
            let item = FixedItem {
                difficulty: value((!b.is_null(r)).then(|| b.value(r))),
                discrimination: a.map_or(1.0, |a| value((!a.is_null(r)).then(|| a.value(r)))),
            };
            let benchmark = benchmarks.and_then(|c| (!c.is_null(r)).then(|| c.value(r)));
            bank.insert(benchmark, ids.value(r), item)
                .map_err(|e| exec_error(f, e))?;
        }
    }
    if bank.is_empty() {
        return Err(exec_error(f, "the items are empty"));
    }
    Ok(bank)
}
