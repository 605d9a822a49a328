//! Every crossdiff function's documented example runs: the examples are read from the one
//! registration list (`crossdiff::udfs::function_docs`) and executed by the `crossdiff`
//! binary, in a folder holding the tables, model and files they name.

use std::process::Command;

use crate::common::{fixture, stderr};

/// The order the examples run in (a model is made before it is fine-tuned, a matrix before
/// it is plotted), with the statements that set up what an example names.
const ORDER: &[(&str, &str)] = &[
    ("irt_prob", ""),
    ("irt_simulate", ""),
    ("irt_fit", ""),
    ("irt_abilities", ""),
    ("irt_predict", ""),
    ("irt_adaptive_replay", ""),
    ("irt_next_items", ""),
    ("spearman_corr", ""),
    ("kendall_tau", ""),
    ("math_equal", ""),
    ("math_answer", ""),
    ("difficulty_quantile", ""),
    ("difficulty_bin", ""),
    ("difficulty_bin_stability", ""),
    ("arithmetic_items", ""),
    ("read_responses", ""),
    ("read_items", ""),
    ("tiny_model", ""),
    ("fine_tune", ""),
    ("evaluate", ""),
    ("generalization_matrix", ""),
    ("gap_profile", ""),
    ("runs", ""),
    ("run_items", ""),
    ("crossdiff_functions", ""),
    // Pictures last: without a font they stop the script (skipped with a message).
    ("plot_difficulty", ""),
    (
        "plot_matrix",
        "CREATE TABLE matrix AS SELECT * FROM generalization_matrix('SELECT * FROM task', \
         'models/tiny', '{\"n_bins\": 3, \"train\": {\"epochs\": 2}}');",
    ),
    (
        "plot_gap_profile",
        "CREATE TABLE profile AS SELECT * FROM gap_profile('task', 'models/tiny', \
         '{\"n_bins\": 3, \"train\": {\"epochs\": 2}}');",
    ),
];

/// The tables the examples read: a simulated leaderboard named gsm8k, items with a proxy,
/// arithmetic questions for a tokenizer, multiple-choice items, training rows and a task.
const TABLES: &str = r#"
SET crossdiff.run_store = 'runs';
CREATE TABLE responses AS SELECT * FROM irt_simulate(200, 30, '{"benchmark": "gsm8k"}');
CREATE TABLE item_difficulty AS
  SELECT benchmark, item_id, difficulty, difficulty_se FROM irt_fit('responses', '1pl', 'jml');
CREATE TABLE items AS
  SELECT benchmark, item_id, difficulty, CAST(right(item_id, 1) AS DOUBLE) AS n_solution_steps
  FROM item_difficulty;
CREATE SCHEMA gsm8k;
CREATE TABLE gsm8k.items AS SELECT question FROM arithmetic_items(30, 3);
CREATE TABLE arc_items AS
  SELECT item_id, question AS prompt, [answer, concat(answer, '1')] AS choices, '0' AS answer
  FROM arithmetic_items(2, 2);
CREATE TABLE train AS
  SELECT question AS prompt, answer AS response, n_digits - 1 AS bin FROM arithmetic_items(3, 2);
CREATE TABLE task AS
  SELECT item_id, question AS prompt, answer AS response, answer,
         [answer, concat(answer, '1')] AS choices,
         CAST(n_digits AS DOUBLE) + 0.1 * n_carries AS difficulty
  FROM arithmetic_items(3, 3);
"#;

/// The made-up run id of run_items' example.
const EXAMPLE_RUN: &str = "ev-0123456789abcdef01234567";

fn run_script(dir: &std::path::Path, name: &str, script: &str) {
    let path = dir.join(name);
    std::fs::write(&path, script).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .current_dir(dir)
        .args(["sql", "--format", "json", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    if !o.status.success() && stderr(&o).contains("no TrueType font found") {
        eprintln!(
            "SKIPPED the rest of {name}: no TrueType font on this machine (set CROSSDIFF_FONT)"
        );
        return;
    }
    assert!(o.status.success(), "{name}:\n{}", stderr(&o));
}

#[test]
fn every_documented_example_runs() {
    let docs = crossdiff::udfs::function_docs();
    let mut listed: Vec<&str> = ORDER.iter().map(|(n, _)| *n).collect();
    let mut registered: Vec<&str> = docs.iter().map(|d| d.name.as_str()).collect();
    listed.sort();
    registered.sort();
    assert_eq!(
        listed, registered,
        "ORDER must name every registered function once"
    );
    for d in &docs {
        assert!(
            !d.description.is_empty() && !d.syntax.is_empty(),
            "{}",
            d.name
        );
        assert!(
            d.example.contains(&d.name),
            "{}'s example does not call it",
            d.name
        );
    }

    let dir = tempfile::tempdir().unwrap();
    // read_responses' and read_items' examples read leaderboard v2 details from details/.
    for model in std::fs::read_dir(fixture("leaderboard_v2")).unwrap() {
        let model = model.unwrap().path();
        let to = dir.path().join("details").join(model.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&model).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
        }
    }
    let example = |name: &str| {
        let doc = docs.iter().find(|d| d.name == name).unwrap();
        let setup = ORDER.iter().find(|(n, _)| *n == name).unwrap().1;
        format!("-- {name}\n{setup}\n{}\n", doc.example)
    };
    // Everything but run_items, whose run must exist first.
    let mut script = String::from(TABLES);
    for (name, _) in ORDER.iter().filter(|(n, _)| *n != "run_items") {
        script.push_str(&example(name));
    }
    run_script(dir.path(), "examples.sql", &script);

    // run_items reads a stored evaluation: one of the examples' own, under the example's id.
    let store = dir.path().join("runs");
    let evaluation = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("ev-"))
        .expect("the examples ran an evaluation");
    let copy = store.join(EXAMPLE_RUN);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::copy(evaluation.join("items.parquet"), copy.join("items.parquet")).unwrap();
    run_script(
        dir.path(),
        "run_items.sql",
        &format!(
            "SET crossdiff.run_store = 'runs';\n{}",
            example("run_items")
        ),
    );
}

/// SHOW FUNCTIONS lists every crossdiff function: scalar, aggregate and window ones with
/// their description, parameters and syntax; table ones by name (DataFusion 55 keeps no
/// documentation for table functions: crossdiff_functions() has it).
#[tokio::test]
async fn show_functions_lists_every_function() {
    let ctx = crossdiff::new_context();
    let batches = crate::common::sql(&ctx, "SHOW FUNCTIONS").await;
    let mut listed = std::collections::BTreeMap::new();
    for b in &batches {
        let text = |name: &str| {
            crossdiff::datafusion::arrow::compute::cast(
                b.column_by_name(name).unwrap(),
                &crossdiff::datafusion::arrow::datatypes::DataType::Utf8,
            )
            .unwrap()
        };
        let (names, kinds, descriptions) = (
            text("function_name"),
            text("function_type"),
            text("description"),
        );
        use crossdiff::datafusion::arrow::array::{Array, AsArray};
        let (names, kinds, descriptions) = (
            names.as_string::<i32>(),
            kinds.as_string::<i32>(),
            descriptions.as_string::<i32>(),
        );
        for r in 0..b.num_rows() {
            let description = descriptions
                .is_valid(r)
                .then(|| descriptions.value(r).to_string());
            listed.insert(
                names.value(r).to_string(),
                (kinds.value(r).to_string(), description),
            );
        }
    }
    for doc in crossdiff::udfs::function_docs() {
        let (kind, description) = listed
            .get(&doc.name)
            .unwrap_or_else(|| panic!("SHOW FUNCTIONS does not list {}", doc.name));
        assert_eq!(kind.to_lowercase(), doc.kind, "{}", doc.name);
        if doc.kind != "table" {
            assert_eq!(
                description.as_deref(),
                Some(doc.description.as_str()),
                "{}",
                doc.name
            );
        }
    }
}
