//! Ingest of every supported format into the canonical `responses` table, from Rust and from
//! SQL, with the bad-input cases the design lists.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::common::fixture;
use crossdiff::data::{self, files::write_parquet, Format, IngestOptions};
use crossdiff::datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use crossdiff::datafusion::arrow::datatypes::{DataType, Field, Schema};

type Row = (String, String, String, bool);

fn rows(batch: &RecordBatch) -> BTreeSet<Row> {
    super::common::response_rows(batch).into_iter().collect()
}

fn read(path: &Path, format: Format, options: &str) -> Result<RecordBatch, String> {
    let opts = IngestOptions::from_json(options, format).map_err(|e| e.to_string())?;
    data::read_responses(&[path.to_path_buf()], format, &opts).map_err(|e| e.to_string())
}

fn row(m: &str, b: &str, i: &str, c: bool) -> Row {
    (m.into(), b.into(), i.into(), c)
}

#[test]
fn lm_eval_folder_of_models() {
    let batch = read(
        &fixture("lm_eval"),
        Format::LmEval,
        r#"{"metric": "acc,exact_match", "filter": "strict-match"}"#,
    )
    .unwrap();
    let got = rows(&batch);
    let qwen = "Qwen/Qwen2.5-0.5B-Instruct";
    let llama = "meta-llama/Llama-3.2-1B-Instruct";
    let expected: BTreeSet<Row> = [
        // The latest arc_easy run of Qwen (doc 0 correct), not the older one (doc 0 wrong).
        row(qwen, "arc_easy", "0", true),
        row(qwen, "arc_easy", "1", true),
        row(qwen, "arc_easy", "2", false),
        row(qwen, "gsm8k", "0", true),
        row(qwen, "gsm8k", "1", false),
        row(llama, "arc_easy", "0", false),
        row(llama, "arc_easy", "1", true),
        row(llama, "arc_easy", "2", false),
    ]
    .into();
    assert_eq!(got, expected);

    // acc_norm and the flexible filter give other answers.
    let batch = read(
        &fixture("lm_eval"),
        Format::LmEval,
        r#"{"metric": "acc_norm,exact_match", "filter": "flexible-extract"}"#,
    )
    .unwrap();
    let got = rows(&batch);
    assert!(got.contains(&row(qwen, "arc_easy", "2", true)));
    assert!(got.contains(&row(qwen, "gsm8k", "1", true)));
}

#[test]
fn lm_eval_single_file_with_options() {
    let file = fixture("lm_eval/meta-llama__Llama-3.2-1B-Instruct/samples_arc_easy_2024-11-02T08-30-00.000000.jsonl");
    let batch = read(&file, Format::LmEval, "").unwrap();
    assert_eq!(batch.num_rows(), 3);
    assert!(rows(&batch)
        .iter()
        .all(|r| r.0 == "meta-llama/Llama-3.2-1B-Instruct" && r.1 == "arc_easy"));
    let batch = read(
        &file,
        Format::LmEval,
        r#"{"model_id": "my-model", "benchmark": "arc"}"#,
    )
    .unwrap();
    assert!(rows(&batch)
        .iter()
        .all(|r| r.0 == "my-model" && r.1 == "arc"));
}

#[test]
fn lm_eval_filters_keep_one_record_per_document() {
    let dir = fixture("lm_eval/Qwen__Qwen2.5-0.5B-Instruct");
    let qwen = "Qwen/Qwen2.5-0.5B-Instruct";
    // By default the task's first filter (strict-match), one record per document.
    let batch = read(&dir, Format::LmEval, r#"{"metric": "acc,exact_match"}"#).unwrap();
    let got = rows(&batch);
    assert!(got.contains(&row(qwen, "gsm8k", "1", false)), "{got:?}");
    assert_eq!(got.iter().filter(|r| r.1 == "gsm8k").count(), 2);
    let flexible = rows(
        &read(
            &dir,
            Format::LmEval,
            r#"{"filter": {"gsm8k": "flexible-extract"}}"#,
        )
        .unwrap(),
    );
    assert!(flexible.contains(&row(qwen, "gsm8k", "1", true)));
    // A filter's records that repeat a document are still duplicates.
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("org__m");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::write(
        model.join("samples_t_2024-01-01T00-00-00.jsonl"),
        "{\"doc_id\": 0, \"acc\": 1}\n{\"doc_id\": 0, \"acc\": 0}\n",
    )
    .unwrap();
    let e = read(tmp.path(), Format::LmEval, "").unwrap_err();
    assert!(
        e.contains("duplicate response") && e.contains("item `0`"),
        "{e}"
    );
    assert!(
        e.contains("line 1") && e.contains("line 2") && e.contains("on_duplicate"),
        "{e}"
    );
    // An explicit policy combines them instead.
    let batch = read(tmp.path(), Format::LmEval, r#"{"on_duplicate": "any"}"#).unwrap();
    assert!(rows(&batch).contains(&row("org/m", "t", "0", true)));
}

#[test]
fn lm_eval_bad_lines_are_named() {
    let e = read(&fixture("bad"), Format::LmEval, "").unwrap_err();
    assert!(
        e.contains("samples_arc_easy_2024-11-01T10-00-00.jsonl, line 3")
            && e.contains("malformed JSON"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join("org__m").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write(
        "samples_a_2024-01-01T00-00-00.jsonl",
        "{\"doc_id\": 0, \"acc\": 1}\n{\"doc_id\": 1, \"acc\": 0.5}\n",
    );
    let e = read(&p, Format::LmEval, "").unwrap_err();
    assert!(
        e.contains("line 2") && e.contains("0.5") && e.contains("0 or 1"),
        "{e}"
    );
    let p = write(
        "samples_b_2024-01-01T00-00-00.jsonl",
        "{\"doc_id\": 0, \"acc\": null}\n",
    );
    let e = read(&p, Format::LmEval, "").unwrap_err();
    assert!(e.contains("line 1") && e.contains("NULL"), "{e}");
    let p = write(
        "samples_c_2024-01-01T00-00-00.jsonl",
        "{\"doc_id\": 0, \"exact_match\": 1}\n",
    );
    // exact_match is a default metric (generation tasks); a task's own metric is strict.
    assert_eq!(read(&p, Format::LmEval, "").unwrap().num_rows(), 1);
    let e = read(&p, Format::LmEval, r#"{"metric": {"c": "acc"}}"#).unwrap_err();
    assert!(
        e.contains("line 1")
            && e.contains("no metric `acc` for task `c`")
            && e.contains("exact_match"),
        "{e}"
    );
    let p = write("samples_d_2024-01-01T00-00-00.jsonl", "{\"acc\": 1}\n");
    let e = read(&p, Format::LmEval, "").unwrap_err();
    assert!(e.contains("line 1") && e.contains("doc_id"), "{e}");
    let p = write("samples_e_2024-01-01T00-00-00.jsonl", "\n");
    let e = read(&p, Format::LmEval, "").unwrap_err();
    assert!(e.contains("no responses found"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = read(empty.path(), Format::LmEval, "").unwrap_err();
    assert!(e.contains("no *.jsonl files"), "{e}");
    let e = read(&dir.path().join("missing"), Format::LmEval, "").unwrap_err();
    assert!(e.contains("missing"), "{e}");
    let e = read(&p, Format::LmEval, r#"{"metrik": "acc"}"#).unwrap_err();
    assert!(e.contains("unknown option `metrik`"), "{e}");
}

#[test]
fn lm_eval_parquet_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir
        .path()
        .join("org__model-x/samples_hellaswag_2024-03-01T00-00-00.000000.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new("doc_id", DataType::Int64, false),
        Field::new("doc", DataType::Utf8, false),
        Field::new("acc", DataType::Float64, true),
        Field::new("acc_norm", DataType::Float64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![0, 1, 2])),
            Arc::new(StringArray::from(vec!["{\"ctx\": \"A man\"}", "{}", "{}"])),
            Arc::new(Float64Array::from(vec![1.0, 0.0, 1.0])),
            Arc::new(Float64Array::from(vec![Some(1.0), Some(1.0), None])),
        ],
    )
    .unwrap();
    write_parquet(&path, &[batch]).unwrap();
    let got = rows(&read(dir.path(), Format::LmEvalParquet, "").unwrap());
    assert_eq!(got.len(), 3);
    assert!(got.contains(&row("org/model-x", "hellaswag", "1", false)));
    let e = read(
        dir.path(),
        Format::LmEvalParquet,
        r#"{"metric": "acc_norm"}"#,
    )
    .unwrap_err();
    assert!(e.contains("row 3") && e.contains("NULL"), "{e}");
    let e = read(
        dir.path(),
        Format::LmEvalParquet,
        r#"{"metric": {"hellaswag": "em"}}"#,
    )
    .unwrap_err();
    assert!(
        e.contains("no metric `em` for task `hellaswag`") && e.contains("acc_norm"),
        "{e}"
    );
}

#[test]
fn wide_csv_and_parquet() {
    let got = rows(
        &read(
            &fixture("wide.csv"),
            Format::WideCsv,
            r#"{"benchmark": "toy"}"#,
        )
        .unwrap(),
    );
    assert_eq!(got.len(), 10, "empty and NA cells are missing responses");
    assert!(got.contains(&row("org/model-c", "toy", "item_0", true)));
    assert!(!got.iter().any(|r| r.0 == "org/model-b" && r.2 == "item_2"));
    let by_stem = rows(&read(&fixture("wide.csv"), Format::WideCsv, "").unwrap());
    assert!(by_stem.iter().all(|r| r.1 == "wide"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "model,i1,i2\nm1,1,0\nm2,1,2\n").unwrap();
    let e = read(&bad, Format::WideCsv, "").unwrap_err();
    assert!(
        e.contains("bad.csv, line 3") && e.contains("column `i2`") && e.contains("\"2\""),
        "{e}"
    );

    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("q1", DataType::Boolean, true),
        Field::new("q2", DataType::Int64, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["m1", "m2"])),
            Arc::new(BooleanArray::from(vec![Some(true), None])),
            Arc::new(Int64Array::from(vec![Some(0), Some(1)])),
        ],
    )
    .unwrap();
    let path = dir.path().join("mmlu.parquet");
    write_parquet(&path, &[batch]).unwrap();
    let got = rows(&read(&path, Format::WideParquet, "").unwrap());
    let expected: BTreeSet<Row> = [
        row("m1", "mmlu", "q1", true),
        row("m1", "mmlu", "q2", false),
        row("m2", "mmlu", "q2", true),
    ]
    .into();
    assert_eq!(got, expected);
}

#[test]
fn long_tables_and_their_errors() {
    let got = rows(&read(&fixture("long.csv"), Format::Csv, "").unwrap());
    assert_eq!(got.len(), 4);
    assert!(got.contains(&row("org/model-b", "gsm8k", "7", true)));

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("m.csv");
    std::fs::write(&missing, "model_id,item_id,correct\na,1,1\n").unwrap();
    let e = read(&missing, Format::Csv, "").unwrap_err();
    assert!(
        e.contains("missing column `benchmark`") && e.contains("model_id, item_id, correct"),
        "{e}"
    );
    assert_eq!(
        rows(&read(&missing, Format::Csv, r#"{"benchmark": "b"}"#).unwrap()).len(),
        1
    );

    // Parquet with other column names, a NULL and a non-0/1 value.
    let schema = Arc::new(Schema::new(vec![
        Field::new("subject", DataType::Utf8, true),
        Field::new("question", DataType::Utf8, true),
        Field::new("score", DataType::Float64, true),
    ]));
    let make = |scores: Vec<Option<f64>>| {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "a", "b"])) as ArrayRef,
                Arc::new(StringArray::from(vec!["q1", "q2", "q1"])),
                Arc::new(Float64Array::from(scores)),
            ],
        )
        .unwrap()
    };
    let opts = r#"{"model_column": "subject", "item_column": "question", "correct_column": "score", "benchmark": "b"}"#;
    let good = dir.path().join("good.parquet");
    write_parquet(&good, &[make(vec![Some(1.0), Some(0.0), Some(1.0)])]).unwrap();
    assert_eq!(rows(&read(&good, Format::Parquet, opts).unwrap()).len(), 3);
    let nulls = dir.path().join("nulls.parquet");
    write_parquet(&nulls, &[make(vec![Some(1.0), None, Some(1.0)])]).unwrap();
    let e = read(&nulls, Format::Parquet, opts).unwrap_err();
    assert!(
        e.contains("nulls.parquet, row 2") && e.contains("NULL") && e.contains("`score`"),
        "{e}"
    );
    let half = dir.path().join("half.parquet");
    write_parquet(&half, &[make(vec![Some(1.0), Some(0.5), Some(1.0)])]).unwrap();
    let e = read(&half, Format::Parquet, opts).unwrap_err();
    assert!(
        e.contains("half.parquet, row 2") && e.contains("0.5"),
        "{e}"
    );
    let e = read(&good, Format::Parquet, "").unwrap_err();
    assert!(
        e.contains("missing column `model_id`") && e.contains("subject"),
        "{e}"
    );
}

#[test]
fn pyirt_read() {
    let got = rows(
        &read(
            &fixture("responses.pyirt.jsonl"),
            Format::PyIrt,
            r#"{"benchmark": "toy"}"#,
        )
        .unwrap(),
    );
    assert_eq!(got.len(), 6);
    assert!(got.contains(&row("org/model-b", "toy", "q3", true)));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.jsonl");
    std::fs::write(
        &p,
        "{\"subject_id\": \"m\", \"responses\": {\"q\": 1}}\n{\"subject_id\": \"n\"}\n",
    )
    .unwrap();
    let e = read(&p, Format::PyIrt, "").unwrap_err();
    assert!(
        e.contains("x.jsonl, line 2") && e.contains("responses"),
        "{e}"
    );
}

/// samples jsonl -> Parquet -> py-irt jsonlines -> Parquet keeps every row, through the CLI.
#[test]
fn ingest_round_trip_keeps_every_row() {
    let exe = env!("CARGO_BIN_EXE_crossdiff");
    let dir = tempfile::tempdir().unwrap();
    let (p1, py, p2) = (
        dir.path().join("r1.parquet"),
        dir.path().join("r.jsonl"),
        dir.path().join("r2.parquet"),
    );
    let run = |args: &[&str]| {
        let out = std::process::Command::new(exe)
            .arg("ingest")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let lm = fixture("lm_eval");
    run(&[
        lm.to_str().unwrap(),
        "--format",
        "lm_eval",
        "--metric",
        "acc,exact_match",
        "--filter",
        "strict-match",
        "--out",
        p1.to_str().unwrap(),
    ]);
    run(&[
        p1.to_str().unwrap(),
        "--format",
        "parquet",
        "--out",
        py.to_str().unwrap(),
    ]);
    run(&[
        py.to_str().unwrap(),
        "--format",
        "pyirt",
        "--out",
        p2.to_str().unwrap(),
    ]);
    let original = read(
        &lm,
        Format::LmEval,
        r#"{"metric": "acc,exact_match", "filter": "strict-match"}"#,
    )
    .unwrap();
    let first = read(&p1, Format::Parquet, "").unwrap();
    let last = read(&p2, Format::Parquet, "").unwrap();
    assert_eq!(original.num_rows(), 8);
    assert_eq!(rows(&original), rows(&first));
    assert_eq!(rows(&original), rows(&last));
    // Two subjects in the py-irt file, keys qualified by benchmark since there are two.
    let text = std::fs::read_to_string(&py).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("\"gsm8k::0\":1"), "{text}");
}

/// A failed ingest changes nothing: an existing output stays as it was, a new one is not created.
#[test]
fn failed_ingest_leaves_outputs_alone() {
    let exe = env!("CARGO_BIN_EXE_crossdiff");
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("keep.parquet");
    std::fs::write(&existing, b"previous contents").unwrap();
    let fresh = dir.path().join("new.parquet");
    for out in [&existing, &fresh] {
        let o = std::process::Command::new(exe)
            .args([
                "ingest",
                fixture("bad").to_str().unwrap(),
                "--format",
                "lm_eval",
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("line 3") && err.contains("malformed JSON"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"previous contents");
    assert!(!fresh.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary files left"
    );

    let o = std::process::Command::new(exe)
        .args([
            "ingest",
            fixture("wide.csv").to_str().unwrap(),
            "--format",
            "wide_csv",
            "--metric",
            "acc",
            "--out",
            fresh.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--metric") && err.contains("unknown option `metric`"),
        "{err}"
    );
}

/// lm-eval 0.4.x's own output folder: `"filter": "none"` on every multiple-choice record and
/// one record per filter on generation tasks. One command ingests the mix: acc for multiple
/// choice, exact_match on the first filter for generation, each overridable per task.
#[test]
fn lm_eval_output_folders_mixing_task_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("org__tiny");
    std::fs::create_dir_all(&model).unwrap();
    let mut mc = String::new();
    for doc in 0..3 {
        mc.push_str(&format!(
            "{{\"doc_id\": {doc}, \"filter\": \"none\", \"metrics\": [\"acc\", \"acc_norm\"], \"acc\": {}, \"acc_norm\": {}}}\n",
            (doc == 1) as u8,
            (doc != 1) as u8
        ));
    }
    std::fs::write(
        model.join("samples_mc_2025-01-01T00-00-00.000000.jsonl"),
        mc,
    )
    .unwrap();
    let mut gen = String::new();
    for doc in 0..2 {
        for (filter, value) in [("strict-match", doc == 0), ("flexible-extract", true)] {
            gen.push_str(&format!(
                "{{\"doc_id\": {doc}, \"filter\": \"{filter}\", \"metrics\": [\"exact_match\"], \"exact_match\": {}}}\n",
                value as u8 as f64
            ));
        }
    }
    std::fs::write(
        model.join("samples_gen_2025-01-01T00-00-00.000000.jsonl"),
        gen,
    )
    .unwrap();
    let folder = tmp.path();
    let rows_of = |options: &str| rows(&read(folder, Format::LmEval, options).unwrap());
    let m = "org/tiny";
    let defaults: BTreeSet<Row> = [
        row(m, "mc", "0", false),
        row(m, "mc", "1", true),
        row(m, "mc", "2", false),
        row(m, "gen", "0", true),
        row(m, "gen", "1", false),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        rows_of(""),
        defaults,
        "acc; exact_match of the first filter"
    );
    // A filter asked for keeps the multiple-choice task (its only filter is `none`).
    assert_eq!(rows_of(r#"{"filter": "strict-match"}"#), defaults);
    // A metric for all tasks: generation falls back to exact_match (with a note).
    assert_eq!(rows_of(r#"{"metric": "acc"}"#), defaults);
    // Per task.
    let flexible =
        rows_of(r#"{"filter": {"gen": "flexible-extract"}, "metric": {"mc": "acc_norm"}}"#);
    let expected: BTreeSet<Row> = [
        row(m, "mc", "0", true),
        row(m, "mc", "1", false),
        row(m, "mc", "2", true),
        row(m, "gen", "0", true),
        row(m, "gen", "1", true),
    ]
    .into_iter()
    .collect();
    assert_eq!(flexible, expected);
    let err = read(folder, Format::LmEval, r#"{"filter": {"gen": "maj@8"}}"#).unwrap_err();
    assert!(
        err.contains("no records of filter `maj@8`") && err.contains("strict-match"),
        "{err}"
    );
    let err = read(folder, Format::LmEval, r#"{"metric": {"gen": "acc"}}"#).unwrap_err();
    assert!(err.contains("no metric `acc` for task `gen`"), "{err}");
    // A filter that only some generation tasks have is an error naming the choices.
    let err = read(folder, Format::LmEval, r#"{"filter": "maj@8"}"#).unwrap_err();
    assert!(
        err.contains("task `gen`") && err.contains("flexible-extract"),
        "{err}"
    );
}
