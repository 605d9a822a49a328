//! A *source* argument of a table function: a table name or a read-only query (SELECT, WITH
//! or VALUES). Anything else (DDL, DML, COPY, SET, several statements) is refused before it
//! runs, so a source string can never change the session or write a file.

use datafusion::common::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::prelude::{DataFrame, SQLOptions, SessionContext};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;

/// A bare name (`responses`, `s.t`, `"my table"`) rather than a query.
pub(crate) fn is_table_name(source: &str) -> bool {
    !source.trim().is_empty()
        && !source.trim().contains(char::is_whitespace)
        && !source.contains('(')
}

/// What a read-only source may plan into: no DDL, no DML (COPY included), no statements.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

fn refused(function: &str, source: &str, why: &str) -> DataFusionError {
    let shown: String = source.trim().chars().take(80).collect();
    DataFusionError::Plan(format!(
        "{function}: the source must be a table name or a read-only query (SELECT, WITH or \
         VALUES); {why}: `{shown}`"
    ))
}

/// Checks a source argument when the query is planned: a bare name must be a table of the
/// session, a query must be one read-only query. `what` names the argument in the message.
pub(crate) fn check_source_arg(
    ctx: &SessionContext,
    function: &str,
    what: &str,
    source: &str,
) -> Result<()> {
    if is_table_name(source) {
        if !ctx.table_exist(source)? {
            return Err(DataFusionError::Plan(format!(
                "{function}: no table named `{source}` ({what} is a table name or a query)"
            )));
        }
        return Ok(());
    }
    check_source(&ctx.state(), function, source)
}

/// Checks that a query source is one read-only query; a table name passes.
pub fn check_source(state: &SessionState, function: &str, source: &str) -> Result<()> {
    if is_table_name(source) {
        return Ok(());
    }
    let dialect = state.config().options().sql_parser.dialect;
    let statement = state
        .sql_to_statement(source, &dialect)
        .map_err(|e| match e {
            DataFusionError::NotImplemented(m) if m.contains("single SQL statement") => {
                refused(function, source, "it holds several statements")
            }
            other => DataFusionError::Plan(format!("{function}: source query: {other}")),
        })?;
    match statement {
        DfStatement::Statement(s) if matches!(*s, Statement::Query(_)) => Ok(()),
        DfStatement::Statement(s) => {
            let kind = s.to_string();
            let kind = kind.split_whitespace().next().unwrap_or("").to_uppercase();
            Err(refused(
                function,
                source,
                &format!("a {kind} statement is not"),
            ))
        }
        DfStatement::CopyTo(_) => Err(refused(function, source, "a COPY statement is not")),
        DfStatement::CreateExternalTable(_) => Err(refused(
            function,
            source,
            "a CREATE EXTERNAL TABLE statement is not",
        )),
        DfStatement::Explain(_) => Err(refused(function, source, "an EXPLAIN statement is not")),
        DfStatement::Reset(_) => Err(refused(function, source, "a RESET statement is not")),
    }
}

/// The rows of a source as a DataFrame, after [`check_source`]; the plan is verified
/// read-only as well (a `SELECT ... INTO` is DDL).
pub async fn source_frame(ctx: &SessionContext, function: &str, source: &str) -> Result<DataFrame> {
    if is_table_name(source) {
        if !ctx.table_exist(source)? {
            return Err(super::error::plan_error(
                function,
                format!("no table named `{source}` (the source is a table name or a query)"),
            ));
        }
        return ctx.table(source).await;
    }
    check_source(&ctx.state(), function, source)?;
    ctx.sql_with_options(source, read_only())
        .await
        .map_err(|e| match e {
            DataFusionError::Plan(m) if m.contains("not supported") => {
                refused(function, source, &m)
            }
            other => other,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_read_only_queries_pass() {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE keep AS VALUES (1)").await.unwrap();
        let state = ctx.state();
        for ok in [
            "keep",
            "SELECT * FROM keep",
            "  with t AS (SELECT 1) SELECT * FROM t;",
            "VALUES (1, 2)",
            "(SELECT 1) UNION ALL (SELECT 2)",
        ] {
            check_source(&state, "f", ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "DROP TABLE keep",
            "COPY keep TO 'x.parquet'",
            "CREATE TABLE z AS SELECT 1",
            "INSERT INTO keep VALUES (2)",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; DROP TABLE keep",
            "CREATE EXTERNAL TABLE e STORED AS CSV LOCATION 'x.csv'",
            "EXPLAIN SELECT 1",
        ] {
            let e = check_source(&state, "irt_fit", bad)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("irt_fit: the source must be a table name or a read-only query"),
                "{bad}: {e}"
            );
        }
        // SELECT ... INTO parses as a query but plans as DDL.
        let e = source_frame(&ctx, "f", "SELECT 1 AS x INTO made")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        assert!(!ctx.table_exist("made").unwrap());
        assert!(ctx.table_exist("keep").unwrap());
    }
}
