//! The `crossdiff` binary: `sql -c/-f`, formats, errors, `--data`, backslash commands, demo.

use super::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crossdiff::data::{files::write_parquet, sample};

fn crossdiff(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn sql_command_in_each_format() {
    let q = "SELECT 1 AS x, 'a' AS y UNION ALL SELECT 2, 'b' ORDER BY x";
    let o = crossdiff(&["sql", "-c", q, "--format", "csv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "x,y\n1,a\n2,b\n");
    let o = crossdiff(&["sql", "-c", q, "--format", "json"]);
    assert_eq!(stdout(&o).trim(), r#"[{"x":1,"y":"a"},{"x":2,"y":"b"}]"#);
    let o = crossdiff(&["sql", "-c", q, "--format", "ndjson"]);
    assert_eq!(stdout(&o), "{\"x\":1,\"y\":\"a\"}\n{\"x\":2,\"y\":\"b\"}\n");
    let o = crossdiff(&["sql", "-c", q]);
    let text = stdout(&o);
    assert!(
        text.contains("| x | y |") && text.contains("(2 rows)"),
        "{text}"
    );
    // Several statements in one -c, and -c given twice.
    let o = crossdiff(&[
        "sql",
        "--format",
        "csv",
        "-c",
        "CREATE TABLE t AS VALUES (1), (2); SELECT count(*) AS n FROM t",
        "-c",
        "SELECT 3 AS m",
    ]);
    assert_eq!(stdout(&o), "n\n2\nm\n3\n");
}

#[test]
fn script_errors_name_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "-- a script\nSELECT 1 AS ok;\n\nSELECT *\n  FROM no_such_table;\nSELECT 3;\n",
    )
    .unwrap();
    let o = crossdiff(&["sql", "-f", script.to_str().unwrap(), "--format", "csv"]);
    assert!(!o.status.success());
    assert_eq!(
        stdout(&o),
        "ok\n1\n",
        "statements before the error ran, after it did not"
    );
    let err = stderr(&o);
    assert!(
        err.contains("statement 2 (line 4 of") && err.contains("s.sql") && err.contains("SELECT *"),
        "{err}"
    );
    assert!(
        err.contains("no_such_table") && err.contains("not found"),
        "{err}"
    );
    let o = crossdiff(&["sql", "-f", "/no/such.sql"]);
    assert!(!o.status.success() && stderr(&o).contains("/no/such.sql"));
}

#[test]
fn data_folder_tables_and_backslash_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample::generate(sample::SampleSpec {
        n_models: 5,
        items_per_benchmark: 4,
        ..Default::default()
    });
    write_parquet(
        &dir.path().join("responses.parquet"),
        &[s.responses.clone()],
    )
    .unwrap();
    write_parquet(&dir.path().join("bench/items.parquet"), &[s.items.clone()]).unwrap();
    // A folder of parts is one table.
    write_parquet(&dir.path().join("parts/part-0.parquet"), &[s.items.clone()]).unwrap();
    write_parquet(&dir.path().join("parts/part-1.parquet"), &[s.items]).unwrap();
    let d = dir.path().to_str().unwrap();
    let o = crossdiff(&["sql", "--data", d, "--format", "csv", "-c",
        "SELECT (SELECT count(*) FROM responses) > 0 AS r, (SELECT count(*) FROM bench.items) AS i, (SELECT count(*) FROM parts) AS p"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "r,i,p\ntrue,8,16\n");

    let o = crossdiff(&["sql", "--data", d, "--format", "csv", "-c", "\\d"]);
    let text = stdout(&o);
    assert!(
        text.contains("public,responses")
            && text.contains("bench,items")
            && text.contains("public,parts"),
        "{text}"
    );
    let o = crossdiff(&[
        "sql",
        "--data",
        d,
        "--format",
        "csv",
        "-c",
        "\\d bench.items",
    ]);
    assert!(stdout(&o).contains("n_steps"), "{}", stdout(&o));
    let o = crossdiff(&["sql", "-c", "\\d nothing_here"]);
    assert!(!o.status.success() && stderr(&o).contains("no table named `nothing_here`"));
    let o = crossdiff(&["sql", "-c", "\\h"]);
    let text = stdout(&o);
    for f in [
        "irt_prob",
        "difficulty_bin",
        "difficulty_quantile",
        "spearman_corr",
        "kendall_tau",
        "read_responses",
    ] {
        assert!(text.contains(f), "{f} in \\h: {text}");
    }
    let o = crossdiff(&["sql", "-c", "\\h kendall_tau"]);
    assert!(stdout(&o).contains("tau-b"), "{}", stdout(&o));
    let o = crossdiff(&["sql", "-c", "\\h read_responses"]);
    assert!(stdout(&o).contains("py-irt"), "{}", stdout(&o));
    let o = crossdiff(&["sql", "-c", "\\bogus"]);
    assert!(!o.status.success() && stderr(&o).contains("unknown command"));
    let o = crossdiff(&["sql", "--data", "/no/such/dir", "-c", "SELECT 1"]);
    assert!(!o.status.success() && stderr(&o).contains("/no/such/dir"));
}

#[test]
fn external_tables_copy_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.parquet");
    let script = format!(
        "COPY (SELECT 1 AS a UNION ALL SELECT 2) TO '{0}' STORED AS PARQUET;\n\
         CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '{0}';\n\
         SELECT sum(a) AS s FROM x;\n",
        out.display()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["sql", "--format", "csv"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).ends_with("s\n3\n"), "{}", stdout(&o));
}

/// The issue's check: the shipped script over ../shared/data/oll_v1.
#[test]
fn gsm8k_bins_script_on_real_data() {
    if common::shared_data("oll_v1").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .current_dir(root)
        .args(["sql", "-f", "queries/gsm8k_bins.sql", "--format", "csv"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "bin,items,mean_difficulty,mean_steps");
    assert!(
        lines[1].starts_with("0,") && lines[10].starts_with("9,"),
        "{text}"
    );
    assert!(lines[11].starts_with("items,spearman_steps"), "{text}");
    let rho: f64 = lines[12].split(',').nth(1).unwrap().parse().unwrap();
    assert!(rho > 0.3 && rho < 0.8, "{rho}");
}

#[test]
fn human_metrics_script_on_real_data() {
    if common::shared_data("mmlu_pro").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .current_dir(root)
        .args([
            "sql",
            "--data",
            "../shared/data",
            "-f",
            "queries/human_metrics.sql",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "spearman_words",
        "oll_v1,gsm8k",
        "spearman_steps",
        "spearman_label",
        "spearman_added_source",
        "src_family",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

/// The README's main command, on a fresh folder: generates the sample, runs the demo, writes outputs.
#[test]
fn demo_runs_on_a_fresh_folder() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .current_dir(dir.path())
        .args(["demo", "--format", "csv"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "data/sample/responses.parquet",
        "data/sample/items.parquet",
        "out/demo/item_difficulty.parquet",
        "out/demo/bin_summary.parquet",
    ] {
        assert!(dir.path().join(f).exists(), "{f}");
    }
    assert!(stdout(&o).contains("spearman_truth"), "{}", stdout(&o));
    // A second run reuses the sample and replaces the outputs.
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .current_dir(dir.path())
        .args(["demo", "--format", "csv"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The sample shipped in data/ is exactly what the generator produces.
#[test]
fn shipped_sample_is_reproducible() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let s = sample::generate(sample::SampleSpec::default());
    for (name, batch) in [
        ("responses.parquet", &s.responses),
        ("items.parquet", &s.items),
    ] {
        let file = std::fs::File::open(root.join(name)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(Result::unwrap).collect();
        let shipped =
            crossdiff::datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches)
                .unwrap();
        assert_eq!(
            &shipped, batch,
            "{name} differs from the generator: run `crossdiff sample` to regenerate"
        );
    }
}
