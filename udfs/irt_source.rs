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

use super::error::{exec_error, plan_error};
use super::lazy::{Job, LazyTable};
use super::source::{check_source_arg, source_frame};
use super::string_arg;
use futures::StreamExt;

use crate::irt::batches::{fit_all, BenchmarkFit, MatrixSet};
use crate::irt::options::IrtOptions;
use crate::irt::{FitOptions, Flag, IrtModel, Method};

/// Parsed arguments of an IRT table function.
#[derive(Debug, Clone)]
pub struct IrtCall {
    /// The SQL function's name, for errors.
    pub function: &'static str,
    pub source: String,
    pub options: FitOptions,
    pub joint: bool,
}

impl IrtCall {
    /// `(source, model, method [, options])`.
    pub fn parse(function: &'static str, exprs: &[Expr], session: &dyn Session) -> Result<Self> {
        if !(3..=4).contains(&exprs.len()) {
            return plan_err!(
                "{function}(source, model, method [, options]) expects 3 or 4 arguments, got {}",
                exprs.len()
            );
        }
        let source = string_arg(function, exprs, 0, "source")?;
        let method = Method::parse(&string_arg(function, exprs, 2, "method")?)
            .map_err(|e| plan_error(function, e))?;
        let model = IrtModel::parse(&string_arg(function, exprs, 1, "model")?)
            .map_err(|e| plan_error(function, e))?;
        let typed: IrtOptions = match exprs.len() {
            4 => crate::options::parse(&string_arg(function, exprs, 3, "options")?)
                .map_err(|e| plan_error(function, e))?,
            _ => IrtOptions::default(),
        };
        let mut options = typed
            .fit_options(model, method)
            .map_err(|e| plan_error(function, e))?;
        if options.threads.is_none() {
            if let Some(n) = crate::settings::Settings::of(session).threads {
                options.threads = Some(
                    crate::limits::check_threads("setting crossdiff.threads", n)
                        .map_err(|e| plan_error(function, e))?,
                );
            }
        }
        let joint = typed.joint;
        // A bare name must be a known table now; a query must be read-only (it is planned
        // when it runs).
        check_source_arg(&context(session)?, function, "the source", &source)?;
        Ok(Self {
            function,
            source,
            options,
            joint,
        })
    }

    /// Reads the source and fits it, off the async workers.
    pub async fn run(&self, ctx: SessionContext) -> Result<Vec<BenchmarkFit>> {
        self.run_with(ctx, crate::cancel::Cancel::default()).await
    }

    /// [`Self::run`] with the flag that stops the fit: set when this future is dropped (a
    /// cancelled query), so the fit ends at its next sweep instead of running on unseen.
    async fn run_with(
        &self,
        ctx: SessionContext,
        cancel: crate::cancel::Cancel,
    ) -> Result<Vec<BenchmarkFit>> {
        let guard = crate::cancel::CancelOnDrop(cancel.clone());
        let set = read_matrices(&ctx, self.function, &self.source, self.joint).await?;
        let mut options = self.options.clone();
        options.cancel = cancel;
        let out = tokio::task::spawn_blocking(move || fit_all(set.finish()?, &options))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| exec_error(self.function, e));
        drop(guard);
        if let Ok(fits) = &out {
            for f in fits {
                warn_unconverged(self.function, f, &self.options);
                note_flags(self.function, f, &self.options);
            }
        }
        out
    }
}

/// Reads a responses source into its matrices (one per benchmark, or one when `joint`),
/// folding batches in as they stream so the source is never held in memory whole.
pub(crate) async fn read_matrices(
    ctx: &SessionContext,
    function: &str,
    source: &str,
    joint: bool,
) -> Result<MatrixSet> {
    let df = source_frame(ctx, function, source).await?;
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
    let mut stream = df.execute_stream().await?;
    let mut set = MatrixSet::new(joint);
    while let Some(batch) = stream.next().await {
        set.push_batch(&batch?)
            .map_err(|e| exec_error(function, e))?;
    }
    Ok(set)
}

pub(crate) fn context(session: &dyn Session) -> Result<SessionContext> {
    let state = session
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| DataFusionError::Internal("the session is not a SessionState".into()))?;
    Ok(SessionContext::new_with_state(state.clone()))
}

/// A fit that ran out of iterations says so on stderr, and why when it can tell: under vague
/// priors an item everyone got right (or wrong) has no finite estimate, its difficulty drifts
/// for as long as the fit runs and keeps the objective from settling.
fn warn_unconverged(function: &str, f: &BenchmarkFit, options: &FitOptions) {
    if f.fit.converged {
        return;
    }
    let name = f.benchmark.as_deref().unwrap_or("the source");
    let extreme = f
        .fit
        .items
        .iter()
        .filter(|i| matches!(i.flag, Some(Flag::AllCorrect | Flag::AllWrong)))
        .count();
    let mut message = format!(
        "{function}: warning: the {} fit of {name} did not converge in {} iterations",
        options.method.name(),
        f.fit.iterations
    );
    if extreme > 0 {
        message.push_str(&format!(
            "; {extreme} item(s) that every model got right or wrong (flag all_correct / \
             all_wrong) have estimates set by the prior alone (difficulty_sd {}): leave them out \
             of the source or give a smaller difficulty_sd",
            options.priors.difficulty_sd
        ));
    } else {
        message.push_str("; raise max_iter or tolerance");
    }
    eprintln!("{message}");
}

/// Items whose estimates lean on a bound or a prior, counted on stderr so a user reading only
/// the numbers learns that the flag column has something to say.
fn note_flags(function: &str, f: &BenchmarkFit, options: &FitOptions) {
    let name = f.benchmark.as_deref().unwrap_or("the source");
    let count = |flag: Flag| f.fit.items.iter().filter(|i| i.flag == Some(flag)).count();
    let notes = [
        (
            Flag::MaxDiscrimination,
            format!(
                "reached the bound max_discrimination = {}",
                options.priors.max_discrimination
            ),
        ),
        (
            Flag::GuessingFromPrior,
            "have a guessing floor set by its prior (too few responses below the item)".into(),
        ),
        (
            Flag::UpperFromPrior,
            "have an upper asymptote set by its prior (too few responses above the item)".into(),
        ),
    ];
    for (flag, what) in notes {
        let n = count(flag);
        if n > 0 {
            eprintln!(
                "{function}: note: {n} item(s) of {name} {what} (flag {})",
                flag.name()
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Dropping a running fit's query sets its flag (the engine stops within a sweep of it;
    /// tests/e2e/reliability.rs measures that).
    #[tokio::test]
    async fn dropping_the_query_cancels_the_fit() {
        let ctx = crate::new_context();
        // An item every model got right under vague priors: the fit never settles.
        ctx.sql(
            "CREATE TABLE r AS SELECT model_id, item_id, CASE WHEN item_id = 'sim-item-00000' \
             THEN true ELSE correct END AS correct FROM irt_simulate(3000, 400)",
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
        let call = IrtCall {
            function: "irt_fit",
            source: "r".into(),
            options: FitOptions {
                method: crate::irt::Method::Vi,
                priors: crate::irt::Priors::vague(),
                tolerance: 1e-300,
                max_iter: 1_000_000,
                progress: false,
                ..Default::default()
            },
            joint: false,
        };
        let cancel = crate::cancel::Cancel::default();
        let run = call.run_with(ctx, cancel.clone());
        let outcome = tokio::time::timeout(std::time::Duration::from_millis(500), run).await;
        assert!(outcome.is_err(), "the fit should still be running");
        assert!(cancel.is_set(), "the dropped query set the flag");
    }
}
