//! The Open LLM Leaderboards' details (v2: lm-eval sample logs per model folder; v1:
//! lighteval detail Parquet files whose rows carry no id) and lm-eval's own output folder,
//! ingested end to end: responses with the leaderboards' metrics, groups of subtasks,
//! provenance, the items table and the cross-model checks.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::common::fixture;
use crossdiff::cancel::Cancel;
use crossdiff::data::{self, files::write_parquet, Format, IngestOptions};
use crossdiff::datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, StructArray,
};
use crossdiff::datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

/// (model, benchmark, item) -> correct.
type Cells = BTreeMap<(String, String, String), bool>;

fn cells(batch: &RecordBatch) -> Cells {
    super::common::response_rows(batch)
        .into_iter()
        .map(|(m, b, i, c)| ((m, b, i), c))
        .collect()
}

fn read_both(
    path: &Path,
    format: Format,
    options: &str,
) -> Result<(RecordBatch, RecordBatch), String> {
    let opts = IngestOptions::from_json(options, format).map_err(|e| e.to_string())?;
    let (responses, items) = data::read(
        &[path.to_path_buf()],
        format,
        &opts,
        true,
        &Cancel::default(),
    )
    .map_err(|e| e.to_string())?;
    Ok((responses, items.unwrap()))
}

fn read(path: &Path, format: Format, options: &str) -> Result<RecordBatch, String> {
    let opts = IngestOptions::from_json(options, format).map_err(|e| e.to_string())?;
    data::read_responses(&[path.to_path_buf()], format, &opts).map_err(|e| e.to_string())
}

fn key(m: &str, b: &str, i: &str) -> (String, String, String) {
    (m.into(), b.into(), i.into())
}

const QWEN: &str = "Qwen/Qwen2.5-7B";
const MISTRAL: &str = "mistralai/Mistral-7B-v0.1";

#[test]
fn v2_folder_with_the_leaderboards_metrics() {
    let got = cells(&read(&fixture("leaderboard_v2"), Format::LeaderboardV2, "").unwrap());
    let expected: Cells = [
        (key(QWEN, "bbh_navigate", "0"), true),
        (key(QWEN, "bbh_navigate", "1"), false),
        (key(QWEN, "bbh_date_understanding", "0"), true),
        (key(QWEN, "bbh_date_understanding", "1"), true),
        (key(QWEN, "math_algebra_hard", "0"), true),
        (key(QWEN, "math_algebra_hard", "1"), false),
        (key(QWEN, "musr_team_allocation", "0"), true),
        // acc_norm, not acc (the fixture logs both, equal here), for GPQA.
        (key(QWEN, "gpqa_diamond", "0"), false),
        // IFEval by prompt_level_strict_acc (a boolean); inst_level_* lists are skipped.
        (key(QWEN, "ifeval", "0"), true),
        // Mistral's early run: records as a JSON array in .json files; its older jsonl run of
        // bbh_navigate (all correct) is superseded by the later timestamp.
        (key(MISTRAL, "bbh_navigate", "0"), false),
        (key(MISTRAL, "bbh_navigate", "1"), true),
        (key(MISTRAL, "bbh_date_understanding", "0"), false),
        (key(MISTRAL, "bbh_date_understanding", "1"), true),
    ]
    .into();
    assert_eq!(got, expected);
}

#[test]
fn v2_groups_make_one_benchmark_with_subtask_ids() {
    let got = cells(
        &read(
            &fixture("leaderboard_v2"),
            Format::LeaderboardV2,
            r#"{"group": ["bbh", "math"]}"#,
        )
        .unwrap(),
    );
    assert!(!got[&key(QWEN, "bbh", "navigate/1")]);
    assert!(got[&key(MISTRAL, "bbh", "date_understanding/1")]);
    assert!(got[&key(QWEN, "math", "algebra_hard/0")]);
    assert!(
        got.contains_key(&key(QWEN, "gpqa_diamond", "0")),
        "ungrouped tasks stay"
    );
    assert_eq!(got.keys().filter(|k| k.1 == "bbh").count(), 8);

    // A mapping names the benchmark and takes the prefix as written.
    let got = cells(
        &read(
            &fixture("leaderboard_v2"),
            Format::LeaderboardV2,
            r#"{"group": {"hard_math": "math_", "big_bench": "bbh_"}}"#,
        )
        .unwrap(),
    );
    assert!(got.contains_key(&key(QWEN, "hard_math", "algebra_hard/1")));
    assert!(got.contains_key(&key(QWEN, "big_bench", "navigate/0")));
    // A group name is a whole word of the task name: "bb" does not take bbh_* tasks.
    let got = cells(
        &read(
            &fixture("leaderboard_v2"),
            Format::LeaderboardV2,
            r#"{"group": "bb"}"#,
        )
        .unwrap(),
    );
    assert!(got.keys().all(|k| k.1 != "bb"));
}

#[test]
fn v2_provenance_columns() {
    let batch = read(
        &fixture("leaderboard_v2"),
        Format::LeaderboardV2,
        r#"{"provenance": true}"#,
    )
    .unwrap();
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(
        names,
        [
            "model_id",
            "benchmark",
            "item_id",
            "correct",
            "metric",
            "n_shot",
            "prompt_hash"
        ]
    );
    let mut seen = BTreeMap::new();
    for r in 0..batch.num_rows() {
        let text = |c: usize| batch.column(c).as_string::<i32>().value(r).to_string();
        let n = batch.column(5).as_primitive::<Int64Type>();
        seen.insert(
            (text(0), text(1)),
            (text(4), n.is_valid(r).then(|| n.value(r))),
        );
        assert!(
            batch.column(6).is_valid(r),
            "every fixture record has a prompt_hash"
        );
    }
    assert_eq!(
        seen[&(QWEN.into(), "bbh_navigate".into())],
        ("acc_norm".into(), Some(3))
    );
    assert_eq!(
        seen[&(QWEN.into(), "ifeval".into())],
        ("prompt_level_strict_acc".into(), Some(0))
    );
    assert_eq!(
        seen[&(QWEN.into(), "math_algebra_hard".into())],
        ("exact_match".into(), Some(4))
    );
    // Mistral's results file has no n-shot map; its task configs' num_fewshot says.
    assert_eq!(
        seen[&(MISTRAL.into(), "bbh_date_understanding".into())],
        ("acc_norm".into(), Some(3))
    );
    // An explicit metric is used where present.
    let batch = read(
        &fixture("leaderboard_v2"),
        Format::LeaderboardV2,
        r#"{"provenance": true, "metric": {"gpqa_diamond": "acc"}}"#,
    )
    .unwrap();
    let metric = batch.column(4).as_string::<i32>();
    let bench = batch.column(1).as_string::<i32>();
    let r = (0..batch.num_rows())
        .find(|&r| bench.value(r) == "gpqa_diamond")
        .unwrap();
    assert_eq!(metric.value(r), "acc");
}

/// Items table rows by (benchmark, item_id): (task, question, choices, target).
type ItemRows =
    BTreeMap<(String, String), (String, Option<String>, Option<Vec<String>>, Option<String>)>;

fn item_rows(items: &RecordBatch) -> ItemRows {
    let text = |c: usize, r: usize| {
        let a = items.column(c).as_string::<i32>();
        a.is_valid(r).then(|| a.value(r).to_string())
    };
    let choices = items.column(4).as_list::<i32>();
    (0..items.num_rows())
        .map(|r| {
            let list = choices.is_valid(r).then(|| {
                let v = choices.value(r);
                v.as_string::<i32>()
                    .iter()
                    .map(|x| x.unwrap().to_string())
                    .collect()
            });
            (
                (text(0, r).unwrap(), text(1, r).unwrap()),
                (text(2, r).unwrap(), text(3, r), list, text(5, r)),
            )
        })
        .collect()
}

#[test]
fn v2_items_table_from_the_same_files() {
    let (responses, items) = read_both(
        &fixture("leaderboard_v2"),
        Format::LeaderboardV2,
        r#"{"group": "bbh"}"#,
    )
    .unwrap();
    let got = item_rows(&items);
    // One row per item of the responses, under the same ids.
    let ids: std::collections::BTreeSet<(String, String)> = cells(&responses)
        .keys()
        .map(|k| (k.1.clone(), k.2.clone()))
        .collect();
    assert_eq!(
        got.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        ids
    );
    let nav = &got[&("bbh".into(), "navigate/0".into())];
    assert_eq!(nav.0, "bbh_navigate");
    assert!(nav.1.as_deref().unwrap().contains("Turn around"));
    // BBH's doc has no choices: the continuations scored are the choices.
    assert_eq!(nav.2, Some(vec![" Yes".to_string(), " No".to_string()]));
    assert_eq!(nav.3.as_deref(), Some("Yes"));
    let gpqa = &got[&("gpqa_diamond".into(), "0".into())];
    assert!(gpqa.1.as_deref().unwrap().starts_with("Which particle"));
    assert_eq!(gpqa.2.as_ref().map(|c| c.len()), Some(4));
    assert_eq!(gpqa.3.as_deref(), Some("(B)"));
    let math = &got[&("math_algebra_hard".into(), "0".into())];
    assert!(math.1.as_deref().unwrap().contains("frac{1}{2}"));
    assert_eq!(math.2, None, "generation items have no choices");
    assert_eq!(math.3.as_deref(), Some("\\frac{3}{4}"));
    // The prompt the model saw, the hash and the document as JSON.
    let prompt = items.column(7).as_string::<i32>();
    let docs = items.column(8).as_string::<i32>();
    let hashes = items.column(6).as_string::<i32>();
    let r = (0..items.num_rows())
        .find(|&r| items.column(2).as_string::<i32>().value(r) == "musr_team_allocation")
        .unwrap();
    assert!(prompt.value(r).ends_with("Answer:"));
    let doc: serde_json::Value = serde_json::from_str(docs.value(r)).unwrap();
    assert_eq!(doc["answer_index"], 0);
    assert_eq!(hashes.value(r).len(), 64);
}

/// A copy of the v2 fixture to spoil.
fn v2_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("details");
    for entry in walk(&fixture("leaderboard_v2")) {
        let rel = entry.strip_prefix(fixture("leaderboard_v2")).unwrap();
        let to = root.join(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(&entry, &to).unwrap();
    }
    (dir, root)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from} in {}", path.display());
    fs::write(path, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn v2_bad_input_is_located() {
    let qwen_nav =
        "Qwen__Qwen2.5-7B/samples_leaderboard_bbh_navigate_2024-06-26T10-00-00.000000.jsonl";
    // Two lm-eval versions that hashed doc 0 differently: both files named.
    let (_d, root) = v2_copy();
    let text = fs::read_to_string(root.join(qwen_nav)).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let hash = first["doc_hash"].as_str().unwrap().to_string();
    edit(&root.join(qwen_nav), &hash, &"0".repeat(64));
    let e = read(&root, Format::LeaderboardV2, "").unwrap_err();
    assert!(
        e.contains("bbh_navigate") && e.contains("Mistral") && e.contains("Qwen"),
        "{e}"
    );
    assert!(e.contains(&"0".repeat(64)) && e.contains(&hash), "{e}");

    // A malformed line: file and line.
    let (_d, root) = v2_copy();
    let path = root.join(qwen_nav);
    let mut text = fs::read_to_string(&path).unwrap();
    text.push_str("{\"doc_id\": 2, \"acc_norm\": \n");
    fs::write(&path, text).unwrap();
    let e = read(&root, Format::LeaderboardV2, "").unwrap_err();
    assert!(
        e.contains("bbh_navigate") && e.contains("line 3") && e.contains("malformed JSON"),
        "{e}"
    );

    // The leaderboard's metric missing from a record: named, with what the record has.
    let (_d, root) = v2_copy();
    edit(
        &root.join(qwen_nav),
        "\"acc_norm\": 0.0",
        "\"accnorm\": 0.0",
    );
    let e = read(&root, Format::LeaderboardV2, "").unwrap_err();
    assert!(
        e.contains("line 2") && e.contains("`acc_norm`") && e.contains("accnorm"),
        "{e}"
    );

    // A malformed early-run array: the file named.
    let (_d, root) = v2_copy();
    let arr = root.join("mistralai__Mistral-7B-v0.1/samples_leaderboard_bbh_navigate_2024-06-17T17-37-25.144953.json");
    let text = fs::read_to_string(&arr).unwrap();
    fs::write(&arr, &text[..text.len() - 3]).unwrap();
    let e = read(&root, Format::LeaderboardV2, "").unwrap_err();
    assert!(
        e.contains("bbh_navigate_2024-06-17") && e.contains("malformed JSON"),
        "{e}"
    );

    // A details folder with results but no samples.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("org__m");
    fs::create_dir_all(&model).unwrap();
    fs::write(model.join("results_2024-06-26T10-00-00.json"), "{}").unwrap();
    let e = read(dir.path(), Format::LeaderboardV2, "").unwrap_err();
    assert!(e.contains("no samples_") && e.contains("files"), "{e}");
}

/// lm-eval-harness's `--output_path` layout: `<output_path>/<model_name_sanitized>/samples_*`,
/// whatever the sanitised name looks like (a local path's slashes become `__` too).
#[test]
fn lm_eval_output_folder_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("__data__models__qwen-ft");
    fs::create_dir_all(&model).unwrap();
    let line = |id: u32, acc: f64| {
        format!(
            "{{\"doc_id\": {id}, \"doc\": {{\"question\": \"q{id}\"}}, \"target\": \"A\", \
             \"arguments\": {{\"gen_args_0\": {{\"arg_0\": \"Q{id}\", \"arg_1\": \" A\"}}}}, \
             \"filter\": \"none\", \"doc_hash\": \"h{id}\", \"acc\": {acc}}}\n"
        )
    };
    fs::write(
        model.join("samples_arc_easy_2025-01-02T03-04-05.678901.jsonl"),
        line(0, 1.0) + &line(1, 0.0),
    )
    .unwrap();
    let (responses, items) = read_both(dir.path(), Format::LmEval, "").unwrap();
    let got = cells(&responses);
    assert!(got[&key("/data/models/qwen-ft", "arc_easy", "0")]);
    assert!(!got[&key("/data/models/qwen-ft", "arc_easy", "1")]);
    let rows = item_rows(&items);
    assert_eq!(
        rows[&("arc_easy".into(), "1".into())].1.as_deref(),
        Some("q1")
    );
}

// ---- leaderboard v1 ----------------------------------------------------------------------

/// One v1 row: example, correct under acc, correct under acc_norm.
type V1Row<'a> = (&'a str, f64, f64);

/// Writes a v1 details file with the metrics as a struct or as flattened columns.
fn write_v1(path: &Path, rows: &[V1Row], flattened: bool) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let n = rows.len();
    let examples = StringArray::from_iter_values(rows.iter().map(|r| r.0));
    let prompts =
        StringArray::from_iter_values(rows.iter().map(|r| format!("Few shot...\n{}", r.0)));
    let mut choices = ListBuilder::new(StringBuilder::new());
    let mut gold = ListBuilder::new(StringBuilder::new());
    for _ in 0..n {
        for c in [" A", " B", " C"] {
            choices.values().append_value(c);
        }
        choices.append(true);
        gold.values().append_value(" B");
        gold.append(true);
    }
    let acc: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.1)));
    let norm: ArrayRef = Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2)));
    let mut fields = vec![
        Field::new("example", DataType::Utf8, false),
        Field::new("full_prompt", DataType::Utf8, false),
        Field::new("choices", choices_type(), true),
        Field::new("gold", choices_type(), true),
        Field::new("gold_index", DataType::Int64, false),
    ];
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(examples),
        Arc::new(prompts),
        Arc::new(choices.finish()),
        Arc::new(gold.finish()),
        Arc::new(Int64Array::from_iter_values((0..n).map(|_| 1))),
    ];
    if flattened {
        fields.push(Field::new("metrics.acc", DataType::Float64, true));
        fields.push(Field::new("metrics.acc_norm", DataType::Float64, true));
        columns.push(acc);
        columns.push(norm);
    } else {
        let metrics = StructArray::from(vec![
            (Arc::new(Field::new("acc", DataType::Float64, true)), acc),
            (
                Arc::new(Field::new("acc_norm", DataType::Float64, true)),
                norm,
            ),
        ]);
        fields.push(Field::new("metrics", metrics.data_type().clone(), true));
        columns.push(Arc::new(metrics));
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_parquet(path, &[batch]).unwrap();
}

fn choices_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
}

const ARC: [&str; 3] = [
    "Why is the sky blue?",
    "What melts ice?",
    "Which is a mammal?",
];

/// Two models' details: one with a metrics struct, one with flattened metric columns; the
/// run folder written with `:` as the leaderboard's repositories do.
fn v1_tree(root: &Path) {
    let a = root.join("details_org__alpha/2023-10-08T19:41:47.870339");
    write_v1(
        &a.join("details_harness|arc:challenge|25_2023-10-08T19-41-47.870339.parquet"),
        &[(ARC[0], 1.0, 0.0), (ARC[1], 0.0, 1.0), (ARC[2], 1.0, 1.0)],
        false,
    );
    write_v1(
        &a.join("details_harness|hendrycksTest-anatomy|5_2023-10-08T19-41-47.870339.parquet"),
        &[("Bones?", 1.0, 0.0), ("Heart?", 0.0, 0.0)],
        false,
    );
    let b = root.join("details_org__beta/2023-11-01T00:00:00.000000");
    write_v1(
        &b.join("details_harness|arc:challenge|25_2023-11-01T00-00-00.000000.parquet"),
        &[(ARC[0], 0.0, 1.0), (ARC[1], 0.0, 0.0), (ARC[2], 1.0, 0.0)],
        true,
    );
    write_v1(
        &b.join("details_harness|hendrycksTest-anatomy|5_2023-11-01T00-00-00.000000.parquet"),
        &[("Bones?", 0.0, 1.0), ("Heart?", 1.0, 1.0)],
        true,
    );
}

#[test]
fn v1_details_struct_and_flattened_metrics() {
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let got = cells(&read(dir.path(), Format::LeaderboardV1, "").unwrap());
    let expected: Cells = [
        // ARC by acc_norm.
        (key("org/alpha", "arc:challenge", "0"), false),
        (key("org/alpha", "arc:challenge", "1"), true),
        (key("org/alpha", "arc:challenge", "2"), true),
        (key("org/beta", "arc:challenge", "0"), true),
        (key("org/beta", "arc:challenge", "1"), false),
        (key("org/beta", "arc:challenge", "2"), false),
        // MMLU by acc.
        (key("org/alpha", "hendrycksTest-anatomy", "0"), true),
        (key("org/alpha", "hendrycksTest-anatomy", "1"), false),
        (key("org/beta", "hendrycksTest-anatomy", "0"), false),
        (key("org/beta", "hendrycksTest-anatomy", "1"), true),
    ]
    .into();
    assert_eq!(got, expected);

    // MMLU's subjects as one benchmark; n_shot from the file name.
    let (batch, items) = read_both(
        dir.path(),
        Format::LeaderboardV1,
        r#"{"group": {"mmlu": "hendrycksTest-"}, "provenance": true}"#,
    )
    .unwrap();
    let got = cells(&batch);
    assert!(got[&key("org/beta", "mmlu", "anatomy/1")]);
    let n_shot = batch.column(5).as_primitive::<Int64Type>();
    let bench = batch.column(1).as_string::<i32>();
    let metric = batch.column(4).as_string::<i32>();
    for r in 0..batch.num_rows() {
        let (n, m) = if bench.value(r) == "mmlu" {
            (5, "acc")
        } else {
            (25, "acc_norm")
        };
        assert_eq!((n_shot.value(r), metric.value(r)), (n, m));
        assert!(batch.column(6).is_valid(r), "prompt hash of full_prompt");
    }
    let rows = item_rows(&items);
    let arc = &rows[&("arc:challenge".into(), "1".into())];
    assert_eq!(arc.1.as_deref(), Some(ARC[1]));
    assert_eq!(arc.2.as_ref().map(|c| c.len()), Some(3));
    assert_eq!(arc.3.as_deref(), Some(" B"));
    assert_eq!(rows.len(), 5);
}

#[test]
fn v1_rows_are_checked_across_models() {
    // A model whose rows are in another order: named, with the first differing row.
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let c = dir.path().join("details_org__gamma/2023-12-01T00:00:00");
    write_v1(
        &c.join("details_harness|arc:challenge|25_2023-12-01T00-00-00.parquet"),
        &[(ARC[0], 1.0, 1.0), (ARC[2], 1.0, 1.0), (ARC[1], 0.0, 0.0)],
        true,
    );
    let e = read(dir.path(), Format::LeaderboardV1, "").unwrap_err();
    assert!(
        e.contains("org/gamma")
            && e.contains("row 1")
            && e.contains("org/alpha")
            && e.contains("align"),
        "{e}"
    );
    // Aligned by content, the same example is the same item wherever it sits.
    let got = cells(&read(dir.path(), Format::LeaderboardV1, r#"{"align": "content"}"#).unwrap());
    let items_of = |m: &str| -> BTreeMap<String, bool> {
        got.iter()
            .filter(|(k, _)| k.0 == m && k.1 == "arc:challenge")
            .map(|(k, v)| (k.2.clone(), *v))
            .collect()
    };
    let (alpha, gamma) = (items_of("org/alpha"), items_of("org/gamma"));
    assert_eq!(
        alpha.keys().collect::<Vec<_>>(),
        gamma.keys().collect::<Vec<_>>()
    );
    // ARC[1] is wrong for gamma (its row 2) and right for alpha (row 1, acc_norm 1).
    let hash_of_1 = crossdiff::checksum::bytes_checksum(ARC[1].as_bytes());
    assert!(!gamma[&hash_of_1] && alpha[&hash_of_1]);

    // A model with fewer rows than the others.
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let d = dir.path().join("details_org__delta/2023-12-01T00:00:00");
    write_v1(
        &d.join("details_harness|arc:challenge|25_2023-12-01T00-00-00.parquet"),
        &[(ARC[0], 1.0, 1.0), (ARC[1], 1.0, 1.0)],
        false,
    );
    let e = read(dir.path(), Format::LeaderboardV1, "").unwrap_err();
    assert!(
        e.contains("org/delta") && e.contains("2 rows") && e.contains("has 3"),
        "{e}"
    );

    // A file that is not Parquet: named, nothing read.
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let bad = dir
        .path()
        .join("details_org__beta/2023-11-01T00:00:00.000000")
        .join("details_harness|arc:challenge|25_2023-11-01T00-00-00.000000.parquet");
    fs::write(&bad, b"PAR1 not really").unwrap();
    let e = read(dir.path(), Format::LeaderboardV1, "").unwrap_err();
    assert!(
        e.contains("arc:challenge|25_2023-11-01") && e.contains("Parquet"),
        "{e}"
    );

    // A metric the file lacks: the file named with the metrics it has.
    let dir = tempfile::tempdir().unwrap();
    v1_tree(dir.path());
    let e = read(
        dir.path(),
        Format::LeaderboardV1,
        r#"{"metric": {"arc:challenge": "mc2"}}"#,
    )
    .unwrap_err();
    assert!(
        e.contains("`mc2`") && e.contains("acc_norm") && e.contains("arc:challenge|25"),
        "{e}"
    );
}

#[test]
fn ingest_writes_responses_and_items_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (out, items) = (
        dir.path().join("r.parquet"),
        dir.path().join("items.parquet"),
    );
    let o = super::common::crossdiff(&[
        "ingest",
        fixture("leaderboard_v2").to_str().unwrap(),
        "--format",
        "leaderboard_v2",
        "--group",
        "bbh,math",
        "--provenance",
        "--out",
        out.to_str().unwrap(),
        "--items",
        items.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", super::common::stderr(&o));
    let r = super::common::read_parquet(&out);
    assert_eq!((r.num_rows(), r.num_columns()), (13, 7));
    let i = super::common::read_parquet(&items);
    assert_eq!(i.num_rows(), 9);
    assert!(super::common::stderr(&o).contains("wrote 9 items"));
}
