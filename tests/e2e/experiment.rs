//! Experiments from SQL on a tiny model: fine_tune, evaluate, generalization_matrix, the run
//! store (reuse, counts), EXPLAIN without work, and interruption then resume.

use super::common::{column_text, sql, sql_err, table};

use std::path::Path;
use std::sync::atomic::Ordering;

use crossdiff::experiment::evaluation::EvalItem;
use crossdiff::experiment::matrix::{generalization_matrix, MatrixOptions, TaskItem};
use crossdiff::experiment::store::{RunKind, RunStatus};
use crossdiff::experiment::{Cancel, RunStore};
use crossdiff::lm::tiny::{create_tiny_model, TinySpec};

const LETTERS: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

/// Copy tasks of 1, 2 and 3 letters: bin = length - 1.
fn task_rows() -> Vec<(String, String, usize)> {
    let mut rows = Vec::new();
    for len in 1..=3usize {
        for k in 0..8usize {
            let s: Vec<&str> = (0..len).map(|i| LETTERS[(k * (i + 2) + i) % 6]).collect();
            rows.push((format!("len{len}-{k}"), s.join(" "), len - 1));
        }
    }
    rows
}

fn tiny(dir: &Path) {
    let texts: Vec<String> = task_rows()
        .iter()
        .map(|(_, s, _)| format!("Repeat: {s}\n{s}"))
        .collect();
    let spec = TinySpec {
        vocab_size: 280,
        hidden_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        intermediate_size: 128,
        max_position_embeddings: 128,
        seed: 3,
    };
    create_tiny_model(dir, &texts, &spec).unwrap();
}

fn task_table(ctx_rows: &[(String, String, usize)]) -> String {
    let values: Vec<String> = ctx_rows
        .iter()
        .map(|(id, s, bin)| format!("('{id}', 'Repeat: {s}', '{s}', '{s}', {bin})"))
        .collect();
    format!(
        "CREATE TABLE task(item_id VARCHAR, prompt VARCHAR, response VARCHAR, answer VARCHAR, bin BIGINT) AS VALUES {}",
        values.join(", ")
    )
}

const OPTIONS: &str = r#"{"n_bins": 3, "train": {"epochs": 40, "learning_rate": 0.003, "batch_size": 8, "gradient_accumulation": 1, "max_seq_len": 64, "weight_decay": 0.0, "max_grad_norm": 1.0}, "evaluate": {"output_type": "generate_until", "stop": ["\n"], "max_new_tokens": 8}, "run_store": "STORE"}"#;

#[tokio::test]
async fn generalization_matrix_runs_caches_and_explains_without_work() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny(&model);
    let store = tmp.path().join("runs");
    let options = OPTIONS.replace("STORE", &store.display().to_string());
    let ctx = crossdiff::new_context();
    sql(&ctx, &task_table(&task_rows())).await;
    let call = format!(
        "generalization_matrix('task', '{}', '{}')",
        model.display(),
        options
    );

    // Planning and EXPLAIN do no work.
    let plan = sql(&ctx, &format!("EXPLAIN SELECT * FROM {call}")).await;
    assert!(!table(&plan).is_empty());
    assert!(!store.exists() || std::fs::read_dir(&store).unwrap().next().is_none());

    let started = std::time::Instant::now();
    let q = format!(
        "SELECT train_bin, eval_bin, n_items, accuracy, zero_shot_accuracy, delta, evaluated_on \
         FROM {call} ORDER BY train_bin, eval_bin"
    );
    let first = sql(&ctx, &q).await;
    let first_seconds = started.elapsed().as_secs_f64();
    let text = table(&first);
    eprintln!("{text}\nfirst run {first_seconds:.1} s");
    assert_eq!(
        first.iter().map(|b| b.num_rows()).sum::<usize>(),
        9,
        "{text}"
    );
    assert!(
        text.contains("all items (training items included"),
        "{text}"
    );
    let counts = format!(
        "SELECT kind, count(*) AS n FROM runs('{}') WHERE status = 'done' GROUP BY kind ORDER BY kind",
        store.display()
    );
    let runs = sql(&ctx, &counts).await;
    assert_eq!(column_text(&runs, 0), vec!["evaluate", "fine_tune"]);
    assert_eq!(
        column_text(&runs, 1),
        vec!["4", "3"],
        "1 zero-shot + 3 tuned evaluations, 3 fine-tunes"
    );
    // Training on a bin helps on that bin: the diagonal beats zero-shot somewhere.
    let gains = sql(
        &ctx,
        &format!("SELECT max(delta) FROM {call} WHERE train_bin = eval_bin"),
    )
    .await;
    let best: f64 = column_text(&gains, 0)[0].parse().unwrap();
    assert!(best > 0.0, "no diagonal gain: {text}");

    // A re-run reuses every run: same result, nothing new or updated in the store.
    let before = sql(
        &ctx,
        &format!(
            "SELECT id, updated FROM runs('{}') ORDER BY id",
            store.display()
        ),
    )
    .await;
    let started = std::time::Instant::now();
    let again = sql(&ctx, &q).await;
    eprintln!("cached re-run {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(table(&again), text);
    let after = sql(
        &ctx,
        &format!(
            "SELECT id, updated FROM runs('{}') ORDER BY id",
            store.display()
        ),
    )
    .await;
    assert_eq!(table(&before), table(&after));

    // Every cell has an interval around its delta, a McNemar p-value and a corrected verdict,
    // from the stored per-item outcomes: deterministic, and nothing is retrained for them.
    let uncertainty = format!(
        "SELECT train_bin, eval_bin, delta, delta_ci_low, delta_ci_high, p_value, significant \
         FROM {call} ORDER BY train_bin, eval_bin"
    );
    let cells = sql(&ctx, &uncertainty).await;
    assert_eq!(table(&sql(&ctx, &uncertainty).await), table(&cells));
    let f = |c: usize| -> Vec<f64> {
        column_text(&cells, c)
            .iter()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (delta, low, high, p) = (f(2), f(3), f(4), f(5));
    for k in 0..delta.len() {
        assert!(
            low[k] <= delta[k] + 1e-12 && delta[k] <= high[k] + 1e-12,
            "cell {k}: {}",
            table(&cells)
        );
        assert!((0.0..=1.0).contains(&p[k]));
        if delta[k] == 0.0 && low[k] == 0.0 && high[k] == 0.0 {
            assert_eq!(p[k], 1.0, "no discordant item, no evidence");
        }
    }
    // Holm is at least as strict as no correction.
    let none = options.replacen('{', r#"{"correction": "none", "#, 1);
    let loose = sql(&ctx, &format!(
        "SELECT count(*) FILTER (WHERE significant) FROM generalization_matrix('task', '{}', '{none}')",
        model.display()
    )).await;
    let strict = sql(
        &ctx,
        &format!("SELECT count(*) FILTER (WHERE significant) FROM {call}"),
    )
    .await;
    let (loose, strict): (usize, usize) = (
        column_text(&loose, 0)[0].parse().unwrap(),
        column_text(&strict, 0)[0].parse().unwrap(),
    );
    assert!(strict <= loose, "holm {strict} > none {loose}");
    assert_eq!(
        table(&before),
        table(
            &sql(
                &ctx,
                &format!(
                    "SELECT id, updated FROM runs('{}') ORDER BY id",
                    store.display()
                )
            )
            .await
        )
    );
    for (bad, named) in [
        (r#"{"bootstrap": 10}"#, "bootstrap"),
        (r#"{"ci": 1.5}"#, "ci"),
        (r#"{"correction": "bonferroni"}"#, "correction"),
    ] {
        let err = sql_err(
            &ctx,
            &format!(
                "SELECT * FROM generalization_matrix('task', '{}', '{bad}')",
                model.display()
            ),
        )
        .await;
        assert!(err.contains(named), "{bad}: {err}");
    }

    // Per-item outcomes of the zero-shot evaluation, through run_items.
    let zero = sql(
        &ctx,
        &format!(
            "SELECT id FROM runs('{}') WHERE kind = 'evaluate' AND model = '{}'",
            store.display(),
            model.display()
        ),
    )
    .await;
    let id = column_text(&zero, 0)[0].clone();
    let items = sql(
        &ctx,
        &format!(
            "SELECT count(*) FROM run_items('{id}', '{}')",
            store.display()
        ),
    )
    .await;
    assert_eq!(column_text(&items, 0), vec!["24"]);

    // Bad input is named.
    let err = sql_err(
        &ctx,
        &format!(
            "SELECT * FROM generalization_matrix('task', '{}', '{{\"bins\": 3}}')",
            model.display()
        ),
    )
    .await;
    assert!(err.contains("unknown field `bins`"), "{err}");
    let err = sql_err(&ctx, &format!("SELECT * FROM generalization_matrix('SELECT item_id, prompt, answer, bin FROM task', '{}', '{}')", model.display(), options)).await;
    assert!(err.contains("no `response` column"), "{err}");
}

fn items() -> Vec<TaskItem> {
    task_rows()
        .into_iter()
        .map(|(id, s, bin)| TaskItem {
            item: EvalItem {
                item_id: id,
                prompt: format!("Repeat: {s}"),
                choices: None,
                answer: s.clone(),
            },
            response: s,
            bin,
            bin_stability: None,
        })
        .collect()
}

/// A matrix stopped after its first fine-tune finished resumes to the result of a run never
/// stopped.
#[test]
fn interrupted_matrix_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny(&model);
    let options: MatrixOptions = MatrixOptions::from_json(
        &serde_json::from_str(&OPTIONS.replace("STORE", "unused")).unwrap(),
    )
    .unwrap();
    let straight_store = RunStore::locate(Some(tmp.path().join("a").to_str().unwrap()));
    let straight = generalization_matrix(
        &straight_store,
        &model,
        &items(),
        &options,
        &Cancel::default(),
        false,
    )
    .unwrap();

    let store = RunStore::locate(Some(tmp.path().join("b").to_str().unwrap()));
    let cancel = Cancel::default();
    let watcher = {
        let (store, cancel) = (store.clone(), cancel.clone());
        std::thread::spawn(move || loop {
            let done = store
                .list()
                .map(|l| l.runs)
                .unwrap_or_default()
                .iter()
                .any(|r| r.kind == RunKind::FineTune && r.status == RunStatus::Done);
            if done || cancel.is_set() {
                cancel.0.store(true, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        })
    };
    let stopped = generalization_matrix(&store, &model, &items(), &options, &cancel, false);
    watcher.join().unwrap();
    let err = stopped.unwrap_err().to_string();
    assert!(err.contains("stopped"), "{err}");
    let resumed = generalization_matrix(
        &store,
        &model,
        &items(),
        &options,
        &Cancel::default(),
        false,
    )
    .unwrap();
    assert!(
        resumed.fine_tunes_run < 3,
        "the finished fine-tune was reused"
    );
    let cells = |m: &crossdiff::experiment::matrix::MatrixResult| -> Vec<(usize, usize, f64, f64)> {
        m.cells
            .iter()
            .map(|c| (c.train_bin, c.eval_bin, c.accuracy, c.zero_shot_accuracy))
            .collect()
    };
    assert_eq!(cells(&straight), cells(&resumed));
}

/// The task views turn the real items into prompt / response / answer rows in the paper's
/// formats.
#[tokio::test]
async fn task_views_format_the_real_items() {
    let Some(data) = super::common::shared_data("") else {
        return;
    };
    let ctx = crossdiff::new_context();
    crossdiff::register_data_dir(&ctx, &data).await.unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries/tasks");
    for (view, n) in [
        ("gsm8k", "1319"),
        ("mmlu_pro", "12032"),
        ("bbh", "6511"),
        ("arc", "245"),
    ] {
        let text = std::fs::read_to_string(root.join(format!("{view}.sql"))).unwrap();
        sql(&ctx, &text).await;
        let count = sql(&ctx, &format!("SELECT count(*) FROM {view}_task")).await;
        assert_eq!(column_text(&count, 0), vec![n], "{view}");
        let nulls = sql(
            &ctx,
            &format!(
                "SELECT count(*) FROM {view}_task WHERE prompt IS NULL OR response IS NULL OR answer IS NULL"
            ),
        )
        .await;
        assert_eq!(column_text(&nulls, 0), vec!["0"], "{view}");
    }
    let one = sql(
        &ctx,
        "SELECT prompt, response FROM gsm8k_task WHERE item_id = '0'",
    )
    .await;
    assert_eq!(
        column_text(&one, 1)[0],
        " Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 = $18 every day at the farmer’s market. So the answer is 18."
    );
    assert!(
        column_text(&one, 0)[0].starts_with("Q: Janet")
            && column_text(&one, 0)[0].ends_with("\nA:")
    );
    let mc = sql(
        &ctx,
        "SELECT prompt, answer FROM mmlu_pro_task WHERE item_id = '100'",
    )
    .await;
    let prompt = column_text(&mc, 0)[0].clone();
    assert!(
        prompt.contains("\nA) $100.20\nB) $102.55\n") && prompt.ends_with("\nJ) $93.20\nAnswer:"),
        "{prompt}"
    );
    assert_eq!(column_text(&mc, 1), vec!["E"]);
}

#[test]
fn runs_command_lists_and_cleans() {
    let tmp = tempfile::tempdir().unwrap();
    let store = RunStore::locate(Some(tmp.path().to_str().unwrap()));
    store
        .write_record(&crossdiff::experiment::RunRecord {
            id: "ev-1".into(),
            kind: RunKind::Evaluate,
            model: "m".into(),
            options: serde_json::json!({}),
            status: RunStatus::Done,
            created: 1,
            updated: 1,
            seconds: 2.0,
            rows: 3,
            summary: serde_json::json!({}),
            crossdiff_version: "0".into(),
            files: Default::default(),
        })
        .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_crossdiff"))
            .args(args)
            .arg("--store")
            .arg(tmp.path())
            .output()
            .unwrap()
    };
    let o = run(&["runs", "list"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("ev-1"));
    let o = run(&["runs", "clean"]);
    assert!(!o.status.success());
    let o = run(&["runs", "clean", "--older-than", "1"]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("removed 1 runs"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(store.list().unwrap().runs.is_empty());
}

/// `crossdiff plot matrix` draws a generalization-matrix result; the shell prints its heatmap.
#[tokio::test]
async fn plots_and_terminal_heatmap_of_a_matrix() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("m.parquet");
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        &format!(
            "COPY (SELECT * FROM (VALUES (0, 0, 0.3, 0.5), (0, 1, -0.1, 0.2), (1, 0, 0.0, 0.5), (1, 1, 0.2, 0.2)) \
             AS t(train_bin, eval_bin, delta, zero_shot_accuracy)) TO '{}' STORED AS PARQUET",
            file.display()
        ),
    )
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["plot", "matrix", "--input"])
        .arg(&file)
        .arg("--out")
        .arg(tmp.path().join("pics/m"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("     0  +0.30  -0.10"), "{stdout}");
    if stderr.contains("no TrueType font") {
        eprintln!("SKIPPED picture files: no TrueType font on this machine");
    } else {
        assert!(out.status.success(), "{stderr}");
        for f in [
            "m_heatmap.svg",
            "m_heatmap.png",
            "m_zero_shot.svg",
            "m_zero_shot.png",
        ] {
            assert!(tmp.path().join("pics").join(f).exists(), "{f}");
        }
    }
    let shell = std::process::Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["sql", "-c"])
        .arg(format!(
            "CREATE EXTERNAL TABLE m STORED AS PARQUET LOCATION '{}'",
            file.display()
        ))
        .args(["-c", "SELECT * FROM m"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&shell.stdout);
    assert!(
        text.contains("delta vs zero-shot") && text.contains("     1  +0.00  +0.20"),
        "{text}"
    );
}

/// queries/paper_pipeline.sql runs end to end on a tiny model (30 GSM8K items, 3 bins, short
/// generations), through the command line, with the run store in a temporary folder.
#[test]
fn paper_pipeline_runs_end_to_end_on_a_tiny_model() {
    let Some(data) = super::common::shared_data("gsm8k") else {
        return;
    };
    let data = data.parent().unwrap().to_path_buf();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("base");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["tiny-model", "--out"])
        .arg(&model)
        .args([
            "--options",
            r#"{"vocab_size": 400, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 64}"#,
        ])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("queries");
    let tasks = std::fs::read_to_string(root.join("tasks/gsm8k.sql")).unwrap();
    let pipeline = std::fs::read_to_string(root.join("paper_pipeline.sql"))
        .unwrap()
        .replace("FROM gsm8k_task t", "FROM gsm8k_small t")
        .replace("'models/base'", &format!("'{}'", model.display()))
        .replace("out/paper/", &format!("{}/out/", tmp.path().display()))
        .replace("\"n_bins\": 10", "\"n_bins\": 3")
        .replace("\"epochs\": 5", "\"epochs\": 1")
        .replace("\"max_new_tokens\": 256", "\"max_new_tokens\": 12");
    let script = format!(
        "{tasks}\nCREATE VIEW gsm8k_small AS SELECT * FROM gsm8k_task ORDER BY item_id LIMIT 30;\n{pipeline}"
    );
    let path = tmp.path().join("pipeline.sql");
    std::fs::write(&path, script).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["sql", "--data"])
        .arg(&data)
        .arg("-f")
        .arg(&path)
        .env("CROSSDIFF_RUNS", tmp.path().join("runs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("(9 rows)") && stdout.contains("delta vs zero-shot"),
        "{stdout}"
    );
    assert!(tmp
        .path()
        .join("out/gsm8k_generalization_matrix.parquet")
        .exists());
}

/// Several seeds: one cached fine-tune per (bin, seed), cells averaged over seeds with their
/// spread, a deterministic interval, a rerun that retrains nothing, and the gap profile of the
/// same study from the same runs.
#[tokio::test]
async fn matrix_with_seeds_and_its_gap_profile() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny(&model);
    let store = tmp.path().join("runs");
    let base = OPTIONS
        .replace("STORE", &store.display().to_string())
        .replace("\"epochs\": 40", "\"epochs\": 25")
        // Batches smaller than a bin, so that a seed's shuffle changes the fine-tune.
        .replace("\"batch_size\": 8", "\"batch_size\": 2");
    let seeded = |seeds: &str| base.replacen('{', &format!(r#"{{"seeds": {seeds}, "#), 1);
    let ctx = crossdiff::new_context();
    sql(&ctx, &task_table(&task_rows())).await;
    let m = model.display();
    let two = seeded("[1, 2]");
    let q = format!(
        "SELECT train_bin, eval_bin, n_seeds, delta, delta_seed_sd, delta_ci_low, delta_ci_high, \
         p_value, significant, train_run, eval_run \
         FROM generalization_matrix('task', '{m}', '{two}') ORDER BY train_bin, eval_bin"
    );
    let cells = sql(&ctx, &q).await;
    let text = table(&cells);
    eprintln!("{text}");
    assert_eq!(column_text(&cells, 2), vec!["2"; 9], "{text}");
    for (train, eval) in column_text(&cells, 9).iter().zip(column_text(&cells, 10)) {
        assert_eq!(train.split(',').count(), 2, "{train}");
        assert_eq!(eval.split(',').count(), 2, "{eval}");
    }
    let done = format!(
        "SELECT kind, count(*) FROM runs('{}') WHERE status = 'done' GROUP BY kind ORDER BY kind",
        store.display()
    );
    assert_eq!(
        column_text(&sql(&ctx, &done).await, 1),
        vec!["7", "6"],
        "1 zero-shot + 6 tuned evaluations, 3 bins x 2 seeds of fine-tunes"
    );
    let listing = format!(
        "SELECT id, updated FROM runs('{}') ORDER BY id",
        store.display()
    );
    let before = table(&sql(&ctx, &listing).await);
    // Deterministic, and cached: the same table again with nothing run.
    assert_eq!(table(&sql(&ctx, &q).await), text);
    assert_eq!(table(&sql(&ctx, &listing).await), before);

    // The mean over seeds is the mean of the one-seed matrices, which reuse the same runs.
    let one = |seed: u64| {
        format!(
            "SELECT delta FROM generalization_matrix('task', '{m}', '{}') ORDER BY train_bin, eval_bin",
            seeded(&format!("[{seed}]"))
        )
    };
    let numbers = |batches: &[datafusion::arrow::array::RecordBatch], c: usize| -> Vec<f64> {
        column_text(batches, c)
            .iter()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (d1, d2) = (
        numbers(&sql(&ctx, &one(1)).await, 0),
        numbers(&sql(&ctx, &one(2)).await, 0),
    );
    let (delta, sd) = (numbers(&cells, 3), numbers(&cells, 4));
    assert!(
        sd.iter().any(|&s| s > 0.0),
        "the seeds made no difference: {text}"
    );
    for k in 0..9 {
        assert!((delta[k] - (d1[k] + d2[k]) / 2.0).abs() < 1e-12, "cell {k}");
        let want = (d1[k] - d2[k]).abs() / 2f64.sqrt();
        assert!(
            (sd[k] - want).abs() < 1e-12,
            "cell {k}: sd {} vs {want}",
            sd[k]
        );
    }
    assert_eq!(table(&sql(&ctx, &listing).await), before);
    // The per-item pairs behind a cell: run_items of its evaluation and of the zero-shot one.
    let runs = sql(
        &ctx,
        &format!(
            "SELECT eval_run, zero_shot_run FROM generalization_matrix('task', '{m}', '{two}') \
             WHERE train_bin = 0 AND eval_bin = 0"
        ),
    )
    .await;
    let (tuned_run, zero_run) = (
        column_text(&runs, 0)[0]
            .split(',')
            .next()
            .unwrap()
            .to_string(),
        column_text(&runs, 1)[0].clone(),
    );
    let s = store.display();
    let paired = sql(
        &ctx,
        &format!(
            "SELECT avg(CAST(t.correct AS DOUBLE)) - avg(CAST(z.correct AS DOUBLE)) \
             FROM run_items('{tuned_run}', '{s}') t JOIN run_items('{zero_run}', '{s}') z USING (item_id) \
             JOIN task USING (item_id) WHERE task.bin = 0"
        ),
    )
    .await;
    let paired: f64 = column_text(&paired, 0)[0].parse().unwrap();
    assert!((paired - d1[0]).abs() < 1e-12, "{paired} vs {}", d1[0]);
    let single = sql(
        &ctx,
        &format!(
            "SELECT count(*) FROM generalization_matrix('task', '{m}', '{}') WHERE delta_seed_sd IS NULL AND n_seeds = 1 AND eval_bin_stable_share IS NULL",
            seeded("[1]")
        ),
    )
    .await;
    assert_eq!(column_text(&single, 0), vec!["9"]);

    // The gap profile of the same study: per signed gap the mean of its cells, and a slope.
    let profile = sql(
        &ctx,
        &format!(
            "SELECT measure, gap, direction, n_cells, estimate, ci_low, ci_high \
             FROM gap_profile('task', '{m}', '{two}')"
        ),
    )
    .await;
    let ptext = table(&profile);
    eprintln!("{ptext}");
    assert_eq!(
        column_text(&profile, 1),
        vec!["-2", "-1", "0", "1", "2", ""],
        "{ptext}"
    );
    assert_eq!(column_text(&profile, 3), vec!["1", "2", "3", "2", "1", "9"]);
    assert_eq!(column_text(&profile, 0)[5], "slope_per_bin");
    assert_eq!(column_text(&profile, 2)[0], "trained harder");
    let estimate = numbers(&profile, 4);
    let diagonal = (delta[0] + delta[4] + delta[8]) / 3.0;
    assert!((estimate[2] - diagonal).abs() < 1e-12, "{ptext}");
    let (low, high) = (numbers(&profile, 5), numbers(&profile, 6));
    for k in 0..6 {
        assert!(
            low[k] <= estimate[k] + 1e-12 && estimate[k] <= high[k] + 1e-12,
            "{ptext}"
        );
    }
    assert_eq!(table(&sql(&ctx, &listing).await), before);

    // Bad seeds and a bin the evaluation split leaves empty are named.
    for (bad, named) in [
        ("[]", "option `seeds` is empty"),
        ("[3, 4, 3]", "lists seed 3 twice"),
    ] {
        let err = sql_err(
            &ctx,
            &format!(
                "SELECT * FROM generalization_matrix('task', '{m}', '{}')",
                seeded(bad)
            ),
        )
        .await;
        assert!(err.contains(named), "{bad}: {err}");
    }
    let both = seeded("[1]").replace("\"epochs\": 25", "\"epochs\": 25, \"seed\": 5");
    let err = sql_err(
        &ctx,
        &format!("SELECT * FROM generalization_matrix('task', '{m}', '{both}')"),
    )
    .await;
    assert!(err.contains("not both"), "{err}");
    // A third bin of one item that the held-out split keeps for training only.
    let held = base.replacen('{', r#"{"held_out": 0.5, "train_bins": [0, 1], "#, 1);
    let solo = (0..)
        .map(|k| format!("solo-{k}"))
        .find(|id| !crossdiff::experiment::matrix::held_out(id, 0.5, 42))
        .unwrap();
    let mut rows = task_rows();
    rows.retain(|r| r.2 < 2);
    rows.push((solo, "a b c".into(), 2));
    let ctx = crossdiff::new_context();
    sql(&ctx, &task_table(&rows)).await;
    let err = sql_err(
        &ctx,
        &format!("SELECT * FROM generalization_matrix('task', '{m}', '{held}')"),
    )
    .await;
    assert!(
        err.contains("bin 2 has no item in the evaluation split") && err.contains("held_out 0.5"),
        "{err}"
    );
}

/// With the `irt` option the matrix bins items by IRT difficulty fitted from responses.
#[tokio::test]
async fn generalization_matrix_bins_by_fitted_difficulty() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny(&model);
    let ctx = crossdiff::new_context();
    sql(&ctx, &task_table(&task_rows())).await;
    // 20 models; item k of 24 is answered by models whose index exceeds a difficulty rank.
    let mut values = Vec::new();
    for (k, (id, _, _)) in task_rows().iter().enumerate() {
        for m in 0..20 {
            let correct = (m * 7 + k * 3) % 20 > k * 20 / 30 + 2;
            values.push(format!("('m{m}', '{id}', {correct})"));
        }
    }
    sql(
        &ctx,
        &format!(
            "CREATE TABLE resp(model_id VARCHAR, item_id VARCHAR, correct BOOLEAN) AS VALUES {}",
            values.join(", ")
        ),
    )
    .await;
    let options = OPTIONS
        .replace("STORE", &tmp.path().join("runs").display().to_string())
        .replace("\"epochs\": 40", "\"epochs\": 2")
        .replace(
            "\"n_bins\": 3",
            "\"n_bins\": 3, \"irt\": {\"responses\": \"resp\"}",
        );
    let out = sql(
        &ctx,
        &format!(
            "SELECT eval_bin, min(n_items), max(n_items), count(*) FROM generalization_matrix('SELECT item_id, prompt, response, answer FROM task', '{}', '{options}') GROUP BY eval_bin ORDER BY eval_bin",
            model.display()
        ),
    )
    .await;
    assert_eq!(column_text(&out, 0), vec!["0", "1", "2"], "{}", table(&out));
    assert_eq!(column_text(&out, 1), vec!["8", "8", "8"]);
    assert_eq!(column_text(&out, 3), vec!["3", "3", "3"]);
    // Each bin's share of items whose bin holds given their difficulty's error.
    let shares = sql(
        &ctx,
        &format!(
            "SELECT DISTINCT eval_bin, eval_bin_stable_share FROM generalization_matrix('SELECT item_id, prompt, response, answer FROM task', '{}', '{options}') ORDER BY eval_bin",
            model.display()
        ),
    )
    .await;
    let shares: Vec<f64> = column_text(&shares, 1)
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(shares.len(), 3);
    assert!(shares.iter().all(|s| (0.0..=1.0).contains(s)), "{shares:?}");
    let err = sql_err(
        &ctx,
        &format!(
            "SELECT * FROM generalization_matrix('task', '{}', '{{\"irt\": {{\"source\": \"resp\"}}}}')",
            model.display()
        ),
    )
    .await;
    assert!(err.contains("unknown field `source`"), "{err}");
}

/// Dropping a running generalization_matrix query stops its fine-tune at a step boundary
/// (the run is left "interrupted" with a checkpoint); the same query then finishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_query_stops_the_work_and_the_query_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny(&model);
    let store_dir = tmp.path().join("runs");
    let options = OPTIONS
        .replace("STORE", &store_dir.display().to_string())
        .replace("\"epochs\": 40", "\"epochs\": 150");
    let ctx = crossdiff::new_context();
    sql(&ctx, &task_table(&task_rows())).await;
    let q = format!(
        "SELECT train_bin, eval_bin, accuracy FROM generalization_matrix('task', '{}', '{options}') ORDER BY train_bin, eval_bin",
        model.display()
    );
    let running = {
        let (ctx, q) = (ctx.clone(), q.clone());
        tokio::spawn(async move { sql(&ctx, &q).await })
    };
    let store = RunStore::locate(Some(store_dir.to_str().unwrap()));
    let status = |kind: &str, status: &str| {
        store
            .list()
            .map(|l| l.runs)
            .unwrap_or_default()
            .iter()
            .any(|r| r.kind.name() == kind && r.status.name() == status)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !status("fine_tune", "running") {
        assert!(std::time::Instant::now() < deadline, "no fine-tune started");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    running.abort();
    while !status("fine_tune", "interrupted") {
        assert!(
            std::time::Instant::now() < deadline,
            "the fine-tune did not stop"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let stopped = store
        .list()
        .unwrap()
        .runs
        .into_iter()
        .find(|r| r.status == RunStatus::Interrupted)
        .unwrap();
    let steps = stopped.summary["steps"].as_u64().unwrap();
    assert!(steps < 150, "stopped after {steps} of 150 steps");
    let finished = sql(&ctx, &q).await;
    assert_eq!(finished.iter().map(|b| b.num_rows()).sum::<usize>(), 9);
    let record = store.record(&stopped.id).unwrap().unwrap();
    assert_eq!(record.status, RunStatus::Done);
    assert_eq!(record.summary["steps"].as_u64(), Some(150));
}

/// A session with a run store in a temporary folder, the fixture items registered as
/// `<schema>.items` and the task view queries/tasks/<schema>.sql created.
async fn task_view_context(
    schema: &str,
    fixture: &str,
) -> (
    tempfile::TempDir,
    crossdiff::datafusion::prelude::SessionContext,
) {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = crossdiff::new_context();
    crossdiff::settings::set(
        &ctx,
        "crossdiff.run_store",
        &tmp.path().join("runs").display().to_string(),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    sql(&ctx, &format!("CREATE SCHEMA {schema}")).await;
    sql(
        &ctx,
        &format!(
            "CREATE EXTERNAL TABLE {schema}.items STORED AS JSON LOCATION '{}'",
            root.join("tests/fixtures").join(fixture).display()
        ),
    )
    .await;
    sql(
        &ctx,
        &std::fs::read_to_string(root.join(format!("queries/tasks/{schema}.sql"))).unwrap(),
    )
    .await;
    (tmp, ctx)
}

/// A tiny model whose tokenizer is trained on a task view's texts, and its fine-tune on the
/// view's prompt + response: (base folder, fine-tuned folder).
async fn tiny_tuned_on_view(
    ctx: &crossdiff::datafusion::prelude::SessionContext,
    dir: &Path,
    view: &str,
    seed: u64,
    epochs: usize,
    batch_size: usize,
) -> (String, String) {
    let model = dir.join("tiny");
    sql(
        ctx,
        &format!(
            "SELECT * FROM tiny_model('{}', 'SELECT prompt || response AS text FROM {view}', \
             '{{\"vocab_size\": 400, \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \
             \"num_key_value_heads\": 2, \"intermediate_size\": 128, \"max_position_embeddings\": 256, \"seed\": {seed}}}')",
            model.display()
        ),
    )
    .await;
    let tuned = sql(
        ctx,
        &format!(
            "SELECT model_path FROM fine_tune('{}', 'SELECT prompt, response FROM {view}', \
             '{{\"epochs\": {epochs}, \"batch_size\": {batch_size}, \"gradient_accumulation\": 1, \"learning_rate\": 0.01, \
             \"weight_decay\": 0.0, \"chat_template\": false}}')",
            model.display()
        ),
    )
    .await;
    (
        model.display().to_string(),
        column_text(&tuned, 0)[0].clone(),
    )
}

/// queries/tasks/math.sql on MATH-shaped fixture items: the view's prompts and final answers,
/// a tiny model fine-tuned on the solutions, and evaluate's `exact_match: "math"` grading each
/// item exactly as math_equal does (the memorised solutions all correct, the untrained base
/// model's outputs not).
#[tokio::test]
async fn math_view_fine_tunes_and_grades_by_equivalence() {
    let (tmp, ctx) = task_view_context("math", "math_items.jsonl").await;
    let view = sql(
        &ctx,
        "SELECT item_id, final_answer, level, prompt FROM math_task ORDER BY item_id",
    )
    .await;
    assert_eq!(
        column_text(&view, 1),
        vec![
            "5",
            "\\frac{1}{2}",
            "6",
            "60",
            "1000000",
            "\\frac{\\sqrt{2}}{2}"
        ]
    );
    assert_eq!(column_text(&view, 2), vec!["1", "2", "2", "1", "3", "5"]);
    assert_eq!(
        column_text(&view, 3)[0],
        "Problem:\nWhat is $2 + 3$?\n\nSolution:"
    );
    let (model, tuned) = tiny_tuned_on_view(&ctx, tmp.path(), "math_task", 3, 60, 6).await;
    let options = r#"{"output_type": "generate_until", "stop": ["Problem:"], "max_new_tokens": 64, "exact_match": "math"}"#;
    let graded = |path: String| {
        let ctx = ctx.clone();
        async move {
            sql(
                &ctx,
                &format!(
                    "SELECT e.item_id, e.correct, math_equal(e.prediction, t.answer) \
                     FROM evaluate('{path}', 'SELECT item_id, prompt, answer FROM math_task', '{options}') e \
                     JOIN math_task t USING (item_id) ORDER BY e.item_id"
                ),
            )
            .await
        }
    };
    let after = graded(tuned).await;
    assert_eq!(column_text(&after, 1), column_text(&after, 2));
    assert_eq!(column_text(&after, 1), vec!["true"; 6]);
    let before = graded(model).await;
    assert_eq!(column_text(&before, 1), column_text(&before, 2));
    assert_eq!(column_text(&before, 1), vec!["false"; 6]);
}

/// A multiple-choice task view (queries/tasks/musr.sql, gpqa.sql) on fixture items in the
/// dataset's shape: the view's first prompt exactly as lm-eval's task renders it, then a tiny
/// model fine-tuned on the view's prompt + response and evaluated with the view's options
/// (acc_norm): the memorised answers all correct, `correct` equal to `correct_norm`.
async fn choice_view_fine_tunes_and_scores(
    schema: &str,
    fixture: &str,
    view: &str,
    first_prompt: &str,
) {
    let (tmp, ctx) = task_view_context(schema, fixture).await;
    let rows = sql(&ctx, &format!("SELECT prompt FROM {view} ORDER BY item_id")).await;
    let prompts = column_text(&rows, 0);
    assert_eq!(prompts.len(), 4);
    assert!(
        prompts.iter().any(|p| p == first_prompt),
        "{first_prompt:?} not among {prompts:#?}"
    );
    let (_, tuned) = tiny_tuned_on_view(&ctx, tmp.path(), view, 5, 40, 4).await;
    let options = r#"{"output_type": "multiple_choice", "metric": "acc_norm"}"#;
    let scored = sql(
        &ctx,
        &format!(
            "SELECT item_id, correct, correct_norm FROM evaluate('{tuned}', \
             'SELECT item_id, prompt, answer, choices FROM {view}', '{options}') ORDER BY item_id"
        ),
    )
    .await;
    assert_eq!(column_text(&scored, 1), vec!["true"; 4]);
    assert_eq!(column_text(&scored, 1), column_text(&scored, 2));
}

#[tokio::test]
async fn musr_view_fine_tunes_and_scores_by_acc_norm() {
    choice_view_fine_tunes_and_scores(
        "musr",
        "musr_items.jsonl",
        "musr_task",
        // lm-eval 0.4.13's leaderboard/musr/utils.py doc_to_text of the fixture's first line.
        "Alice cooks well and paints badly. Bob paints well and cooks badly.\n\nWho should cook \
         and who should paint?\n\n1 - Cook: Alice, Paint: Bob\n2 - Cook: Bob, Paint: Alice\n\nAnswer:",
    )
    .await;
}

#[tokio::test]
async fn gpqa_view_fine_tunes_and_scores_by_acc_norm() {
    choice_view_fine_tunes_and_scores(
        "gpqa",
        "gpqa_items.jsonl",
        "gpqa_task",
        // lm-eval 0.4.13's leaderboard/gpqa/_template_yaml doc_to_text, the trailing space kept.
        "What is the correct answer to this question:Which particle mediates the electromagnetic \
         force?\nChoices:\n(A) Gluon\n(B) Photon\n(C) W boson\n(D) Graviton\nAnswer: ",
    )
    .await;
}
