//! What `irt_fit` and `irt_abilities` share: their arguments, the resolution of the source
//! (a table name or a query) through the session, and a table whose scan runs the fit. The
//! fit runs when the query runs, never at planning time.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{plan_err, DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::Expr;
use datafusion::prelude::SessionContext;

use super::lazy::{Job, LazyTable};
use super::string_arg;
use futures::StreamExt;

use crate::irt::batches::{fit_all, BenchmarkFit, MatrixSet};
use crate::irt::{FitOptions, IrtModel, Method, Priors};

/// Option keys `irt_fit` and `irt_abilities` accept.
pub const OPTION_KEYS: [&str; 11] = [
    "priors",
    "ability_sd",
    "difficulty_sd",
    "log_discrimination_sd",
    "tolerance",
    "max_iter",
    "threads",
    "min_responses",
    "joint",
    "seed",
    "quadrature_points",
];

/// Parsed arguments of an IRT table function.
#[derive(Debug, Clone)]
pub struct IrtCall {
    pub source: String,
    pub options: FitOptions,
    pub joint: bool,
}

fn plan_error(function: &str, e: impl std::fmt::Display) -> DataFusionError {
    DataFusionError::Plan(format!("{function}: {e}"))
}

impl IrtCall {
    /// `(source, model, method [, options])`.
    pub fn parse(function: &str, exprs: &[Expr], session: &dyn Session) -> Result<Self> {
        if !(3..=4).contains(&exprs.len()) {
            return plan_err!(
                "{function}(source, model, method [, options]) expects 3 or 4 arguments, got {}",
                exprs.len()
            );
        }
        let source = string_arg(function, exprs, 0, "source")?;
        let method = Method::parse(&string_arg(function, exprs, 2, "method")?)
            .map_err(|e| plan_error(function, e))?;
        let mut options = FitOptions {
            model: IrtModel::parse(&string_arg(function, exprs, 1, "model")?)
                .map_err(|e| plan_error(function, e))?,
            method,
            priors: Priors::default_for(method),
            ..Default::default()
        };
        let mut joint = false;
        if exprs.len() == 4 {
            let json = string_arg(function, exprs, 3, "options")?;
            let value: serde_json::Value = serde_json::from_str(&json)
                .map_err(|e| plan_error(function, format!("options: malformed JSON: {e}")))?;
            let serde_json::Value::Object(mut map) = value else {
                return plan_err!("{function}: options must be a JSON object, got {json}");
            };
            // A named set of priors first, so explicit standard deviations refine it.
            if let Some(value) = map.remove("priors") {
                options.priors = match value.as_str() {
                    Some("vague") => Priors::vague(),
                    Some("hierarchical") => Priors::hierarchical(),
                    Some("weak") => Priors::default(),
                    _ => {
                        return plan_err!(
                            "{function}: option `priors`: expected 'vague', 'hierarchical' or \
                             'weak', got {value}"
                        )
                    }
                };
            }
            for (key, value) in map {
                let number = || {
                    value.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                        plan_error(
                            function,
                            format!("option `{key}`: expected a number, got {value}"),
                        )
                    })
                };
                let positive = || {
                    number().and_then(|x| {
                        if x > 0.0 {
                            Ok(x)
                        } else {
                            Err(plan_error(
                                function,
                                format!("option `{key}` must be positive, got {x}"),
                            ))
                        }
                    })
                };
                let count = || {
                    value
                        .as_u64()
                        .filter(|&n| n > 0)
                        .map(|n| n as usize)
                        .ok_or_else(|| {
                            plan_error(
                                function,
                                format!("option `{key}`: expected a positive integer, got {value}"),
                            )
                        })
                };
                match key.as_str() {
                    "ability_sd" => options.priors.ability_sd = positive()?,
                    "difficulty_sd" => options.priors.difficulty_sd = positive()?,
                    "log_discrimination_sd" => options.priors.log_discrimination_sd = positive()?,
                    "tolerance" => options.tolerance = positive()?,
                    "max_iter" => options.max_iter = count()?,
                    "threads" => options.threads = Some(count()?),
                    "min_responses" => options.min_responses = count()?,
                    "quadrature_points" => options.quadrature_points = Some(count()?),
                    // Every method so far is deterministic; the seed is checked, not used.
                    "seed" => {
                        value.as_u64().ok_or_else(|| {
                            plan_error(
                                function,
                                format!(
                                    "option `seed`: expected a non-negative integer, got {value}"
                                ),
                            )
                        })?;
                    }
                    "joint" => {
                        joint = value.as_bool().ok_or_else(|| {
                            plan_error(
                                function,
                                format!("option `joint`: expected true or false, got {value}"),
                            )
                        })?
                    }
                    _ => {
                        return plan_err!(
                            "{function}: unknown option `{key}`; known options: {}",
                            OPTION_KEYS.join(", ")
                        )
                    }
                }
            }
        }
        // A bare name must be a known table now; a query is checked when it runs.
        if is_table_name(&source) {
            let ctx = context(session)?;
            if !ctx.table_exist(source.as_str())? {
                return plan_err!(
                    "{function}: no table named `{source}` (the source is a table name or a query)"
                );
            }
        }
        Ok(Self {
            source,
            options,
            joint,
        })
    }

    /// Reads the source and fits it, off the async workers.
    pub async fn run(&self, ctx: SessionContext) -> Result<Vec<BenchmarkFit>> {
        let df = if is_table_name(&self.source) {
            ctx.table(self.source.as_str()).await?
        } else {
            ctx.sql(&self.source).await?
        };
        // Read only the columns a fit uses (a source may carry text, metadata, truth).
        let wanted: Vec<&str> = ["model_id", "benchmark", "item_id", "correct"]
            .into_iter()
            .filter(|c| df.schema().has_column_with_unqualified_name(c))
            .collect();
        let df = if wanted.len() >= 3 {
            df.select_columns(&wanted)?
        } else {
            df
        };
        // Batches are folded into the matrices as they stream in, so the source is never
        // held in memory whole.
        let mut stream = df.execute_stream().await?;
        let mut set = MatrixSet::new(self.joint);
        while let Some(batch) = stream.next().await {
            set.push_batch(&batch?)
                .map_err(|e| DataFusionError::Execution(e.to_string()))?;
        }
        let options = self.options.clone();
        tokio::task::spawn_blocking(move || fit_all(set.finish()?, &options))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::Execution(e.to_string()))
    }
}

pub(crate) fn is_table_name(source: &str) -> bool {
    !source.trim().is_empty()
        && !source.trim().contains(char::is_whitespace)
        && !source.contains('(')
}

pub(crate) fn context(session: &dyn Session) -> Result<SessionContext> {
    let state = session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| DataFusionError::Internal("the session is not a SessionState".into()))?;
    Ok(SessionContext::new_with_state(state.clone()))
}

/// Turns fits into the function's output batch.
pub type FitOutput = fn(&SchemaRef, &[BenchmarkFit]) -> Result<RecordBatch>;

/// The table of an IRT function: the fit runs when the query runs, in the query's session.
pub fn fit_table(call: IrtCall, schema: SchemaRef, output: FitOutput) -> Arc<dyn TableProvider> {
    let table_schema = schema.clone();
    Arc::new(LazyTable::new(
        table_schema,
        Arc::new(move |state: &dyn Session| {
            let (ctx, call, schema) = (context(state)?, call.clone(), schema.clone());
            let job: Job = Arc::new(move || {
                let (ctx, call, schema) = (ctx.clone(), call.clone(), schema.clone());
                Box::pin(async move { output(&schema, &call.run(ctx).await?) })
            });
            Ok(job)
        }),
    ))
}
