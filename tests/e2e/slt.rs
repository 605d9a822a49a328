//! The `.slt` files under tests/sql/, run by the `sqllogictest` crate as DataFusion tests
//! itself: each file gets a fresh crossdiff session, in a scratch folder of its own.
//!
//! A file that says `control substitution on` can name `${FIXTURES}` (tests/fixtures) and
//! `${SCRATCH}` (its scratch folder, where it may write models, Parquet files and pictures).
//! Records marked `onlyif font` run only where a TrueType font is found for the pictures.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use crossdiff::datafusion::arrow::array::{Array, AsArray};
use crossdiff::datafusion::arrow::datatypes::{DataType, Float64Type};
use crossdiff::datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use crossdiff::datafusion::common::DataFusionError;
use crossdiff::datafusion::prelude::SessionContext;
use sqllogictest::{DBOutput, DefaultColumnType};

/// One session; results as text (NULL as `NULL`, the empty string as `(empty)`, as
/// DataFusion's own sqllogictest runner writes them).
struct Crossdiff {
    ctx: SessionContext,
}

fn column_type(t: &DataType) -> DefaultColumnType {
    if t.is_integer() {
        DefaultColumnType::Integer
    } else if t.is_floating() || matches!(t, DataType::Decimal128(..)) {
        DefaultColumnType::FloatingPoint
    } else if matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

#[async_trait]
impl sqllogictest::AsyncDB for Crossdiff {
    type Error = DataFusionError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DataFusionError> {
        let df = self.ctx.sql(sql).await?;
        let types: Vec<DefaultColumnType> = df
            .schema()
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        // As the shell does: a failed write is explained by the file and its cause.
        let batches =
            df.collect()
                .await
                .map_err(|e| {
                    match crossdiff::local_files::explain_write_failure(&e.to_string()) {
                        Some(explanation) => DataFusionError::Execution(explanation),
                        None => e,
                    }
                })?;
        if types.is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        for batch in &batches {
            // Floats as Rust writes them (1 and 0.5, not 1.0), as DataFusion's runner does.
            let formatters = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for r in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .zip(batch.columns())
                        .map(|(f, c)| match c.as_primitive_opt::<Float64Type>() {
                            Some(x) if x.is_valid(r) => x.value(r).to_string(),
                            _ => match f.value(r).to_string() {
                                s if s.is_empty() && c.is_valid(r) => "(empty)".to_string(),
                                s => s,
                            },
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "crossdiff"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

/// Every file, each in a fresh session whose run store is a scratch folder; all failures
/// are reported together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_logic_tests() {
    let files = slt_files();
    assert!(!files.is_empty(), "no .slt files under tests/sql");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let font = crossdiff::plot::font_available();
    if !font {
        eprintln!(
            "SKIPPED the .slt records marked `onlyif font`: no TrueType font on this machine"
        );
    }
    let mut failures = Vec::new();
    for file in &files {
        let scratch = tempfile::tempdir().unwrap();
        let store = scratch.path().join("runs").display().to_string();
        let mut runner = sqllogictest::Runner::new(move || {
            let store = store.clone();
            async move {
                let ctx = crossdiff::new_context();
                crossdiff::settings::set(&ctx, "crossdiff.run_store", &store)?;
                Ok(Crossdiff { ctx })
            }
        });
        runner.set_var("FIXTURES".into(), fixtures.display().to_string());
        runner.set_var("SCRATCH".into(), scratch.path().display().to_string());
        if font {
            runner.add_label("font");
        }
        if let Err(e) = runner.run_file_async(file).await {
            failures.push(format!("{}:\n{e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
