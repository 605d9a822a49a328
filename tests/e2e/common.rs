//! Helpers shared by the end-to-end tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crossdiff::datafusion::arrow::array::RecordBatch;
use crossdiff::datafusion::arrow::util::pretty::pretty_format_batches;
use crossdiff::datafusion::prelude::SessionContext;

/// Runs the `crossdiff` binary and waits for it.
pub fn crossdiff(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(args)
        .output()
        .unwrap()
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// `../shared/data/<rel>`, or `None` (with a message) where the shared data is absent.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIPPED: {} is absent (the real leaderboard data lives in ../shared/data)",
            p.display()
        );
        None
    }
}

pub async fn sql(ctx: &SessionContext, q: &str) -> Vec<RecordBatch> {
    ctx.sql(q)
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

/// The error message of a statement that must fail (planning or execution).
pub async fn sql_err(ctx: &SessionContext, q: &str) -> String {
    match ctx.sql(q).await {
        Err(e) => e.to_string(),
        Ok(df) => match df.collect().await {
            Err(e) => e.to_string(),
            Ok(b) => panic!(
                "{q} should fail but returned {}",
                pretty_format_batches(&b).unwrap()
            ),
        },
    }
}

pub fn table(batches: &[RecordBatch]) -> String {
    pretty_format_batches(batches).unwrap().to_string()
}

/// Every cell of a one-column result, as text.
pub fn column_text(batches: &[RecordBatch], col: usize) -> Vec<String> {
    use crossdiff::datafusion::arrow::util::display::ArrayFormatter;
    let mut out = Vec::new();
    for b in batches {
        let f = ArrayFormatter::try_new(b.column(col).as_ref(), &Default::default()).unwrap();
        for i in 0..b.num_rows() {
            out.push(f.value(i).to_string());
        }
    }
    out
}

pub fn f64s(batches: &[RecordBatch], col: usize) -> Vec<Option<f64>> {
    use crossdiff::datafusion::arrow::array::{Array, AsArray};
    use crossdiff::datafusion::arrow::compute::cast;
    use crossdiff::datafusion::arrow::datatypes::{DataType, Float64Type};
    let mut out = Vec::new();
    for b in batches {
        let c = cast(b.column(col), &DataType::Float64).unwrap();
        let c = c.as_primitive::<Float64Type>();
        for i in 0..c.len() {
            out.push(c.is_valid(i).then(|| c.value(i)));
        }
    }
    out
}

/// A Parquet file as one batch.
pub fn read_parquet(path: &std::path::Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    crossdiff::datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

/// A responses table's rows as (model_id, benchmark, item_id, correct), in table order.
pub fn response_rows(batch: &RecordBatch) -> Vec<(String, String, String, bool)> {
    use crossdiff::datafusion::arrow::array::AsArray;
    let s = |c: usize| batch.column(c).as_string::<i32>().clone();
    let (m, b, i, c) = (s(0), s(1), s(2), batch.column(3).as_boolean().clone());
    (0..batch.num_rows())
        .map(|r| {
            (
                m.value(r).to_string(),
                b.value(r).to_string(),
                i.value(r).to_string(),
                c.value(r),
            )
        })
        .collect()
}
