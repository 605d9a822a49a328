//! Regression tests of the reliability issue: fits independent of row arrival order, deep
//! generated filters, read-only sources, absurd sizes, diverged and corrupted runs, run
//! store housekeeping, cancellation and messages that say what went wrong.

use super::common::{column_text, crossdiff, fixture, sql, sql_err, stderr};

use std::path::Path;
use std::process::Command;

use crossdiff::datafusion::arrow::array::RecordBatch;
use crossdiff::datafusion::arrow::array::UInt32Array;
use crossdiff::datafusion::arrow::compute::take;
use crossdiff::datafusion::parquet::arrow::ArrowWriter;
use crossdiff::datafusion::parquet::file::properties::WriterProperties;
use crossdiff::datafusion::prelude::{ParquetReadOptions, SessionContext};
use crossdiff::experiment::RunStore;
use crossdiff::lm::tiny::{create_tiny_model, TinySpec};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// A crossdiff session that reads with several partitions, as a multi-core machine does.
async fn parallel_context() -> SessionContext {
    let ctx = crossdiff::new_context();
    sql(&ctx, "SET datafusion.execution.target_partitions = 4").await;
    ctx
}

/// Writes `batch`'s rows in `order` as `files` Parquet files of many small row groups.
fn write_parts(dir: &Path, batch: &RecordBatch, order: &[u32], files: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let per_file = order.len().div_ceil(files);
    for (k, rows) in order.chunks(per_file).enumerate() {
        let indices = UInt32Array::from(rows.to_vec());
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None).unwrap())
            .collect();
        let part = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_500))
            .build();
        let file = std::fs::File::create(dir.join(format!("part-{k}.parquet"))).unwrap();
        let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
        writer.write(&part).unwrap();
        writer.close().unwrap();
    }
}

async fn fit_bits(ctx: &SessionContext, table: &str, method: &str) -> Vec<(String, u64, u64)> {
    let q = format!(
        "SELECT item_id, difficulty, difficulty_se FROM irt_fit('{table}', '1pl', '{method}') ORDER BY item_id"
    );
    let batches = sql(ctx, &q).await;
    let ids = column_text(&batches, 0);
    let mut out = Vec::new();
    let mut k = 0;
    for b in &batches {
        let d = b
            .column(1)
            .as_any()
            .downcast_ref::<crossdiff::datafusion::arrow::array::Float64Array>()
            .unwrap();
        let s = b
            .column(2)
            .as_any()
            .downcast_ref::<crossdiff::datafusion::arrow::array::Float64Array>()
            .unwrap();
        for r in 0..b.num_rows() {
            out.push((ids[k].clone(), d.value(r).to_bits(), s.value(r).to_bits()));
            k += 1;
        }
    }
    out
}

/// Point 1: the same responses in any row order, any split into files and row groups, read
/// with several partitions, fit to the same bits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fits_do_not_depend_on_the_order_rows_arrive_in() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = parallel_context().await;
    let sim = sql(
        &ctx,
        "SELECT model_id, benchmark, item_id, correct FROM irt_simulate(400, 150, '{\"seed\": 7}')",
    )
    .await;
    let batch =
        crossdiff::datafusion::arrow::compute::concat_batches(&sim[0].schema(), &sim).unwrap();
    let n = batch.num_rows() as u32;
    let mut shuffled: Vec<u32> = (0..n).collect();
    shuffled.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(1));
    let reversed: Vec<u32> = (0..n).rev().collect();
    write_parts(&tmp.path().join("a"), &batch, &shuffled, 3);
    write_parts(&tmp.path().join("b"), &batch, &reversed, 5);
    for (name, dir) in [("a", "a/"), ("b", "b/")] {
        let location = tmp.path().join(dir);
        ctx.register_parquet(
            name,
            location.to_str().unwrap(),
            ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    }
    for method in ["jml", "mml", "vi"] {
        let first = fit_bits(&ctx, "a", method).await;
        assert_eq!(first.len(), 150);
        for run in 0..3 {
            assert_eq!(
                fit_bits(&ctx, "a", method).await,
                first,
                "{method}: run {run} of the same files"
            );
        }
        assert_eq!(
            fit_bits(&ctx, "b", method).await,
            first,
            "{method}: other files, other order"
        );
    }
}

/// Point 2: a generated filter of thousands of OR terms runs; one past the nesting limit is
/// an error, and neither kills the process.
#[test]
fn long_generated_filters_run_or_fail_cleanly() {
    let terms = |n: usize| {
        let ors: Vec<String> = (0..n).map(|k| format!("x = {k}")).collect();
        format!(
            "SELECT count(*) AS n FROM (SELECT unnest(range(0, 5000)) AS x) WHERE {}",
            ors.join(" OR ")
        )
    };
    let o = crossdiff(&["sql", "--format", "csv", "-c", &terms(2_000)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n2000\n");
    let o = crossdiff(&["sql", "--format", "csv", "-c", &terms(3_000)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "n\n3000\n");
    // Too long for one command-line argument: a script.
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("deep.sql");
    std::fs::write(
        &script,
        format!("{};\n", terms(crossdiff::session::MAX_NESTING + 10)),
    )
    .unwrap();
    let o = crossdiff(&["sql", "-f", script.to_str().unwrap()]);
    let err = stderr(&o);
    assert!(!o.status.success() && err.contains("levels deep"), "{err}");
    assert!(!err.contains("overflow"), "{err}");
}

/// Point 3: a source string is a table name or a read-only query; nothing else runs.
#[tokio::test]
async fn a_source_string_cannot_change_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        "CREATE TABLE keep AS SELECT * FROM irt_simulate(20, 10)",
    )
    .await;
    let out = tmp.path().join("x.parquet");
    let store = tmp.path().join("runs");
    let model = tmp.path().join("m");
    let statements = [
        "irt_fit('DROP TABLE keep', '1pl', 'jml')".to_string(),
        "irt_abilities('DROP TABLE keep', '1pl', 'jml')".to_string(),
        format!("irt_fit('COPY keep TO ''{}''', '1pl', 'jml')", out.display()),
        "irt_fit('CREATE TABLE made AS SELECT * FROM keep', '1pl', 'jml')".to_string(),
        "irt_fit('SELECT * FROM keep; DROP TABLE keep', '1pl', 'jml')".to_string(),
        "irt_fit('SELECT * INTO made FROM keep', '1pl', 'jml')".to_string(),
        format!("generalization_matrix('CREATE TABLE made AS SELECT 1', '{}', '{{\"run_store\": \"{}\"}}')", model.display(), store.display()),
        format!("fine_tune('{}', 'DROP TABLE keep', '{{\"run_store\": \"{}\"}}')", model.display(), store.display()),
        format!("evaluate('{}', 'DROP TABLE keep', '{{\"run_store\": \"{}\"}}')", model.display(), store.display()),
        format!("plot_difficulty('DROP TABLE keep', '{}')", tmp.path().display()),
    ];
    for from in &statements {
        let err = sql_err(&ctx, &format!("SELECT * FROM {from}")).await;
        assert!(err.contains("read-only query"), "{from}: {err}");
    }
    assert!(ctx.table_exist("keep").unwrap(), "the table is still there");
    assert!(!ctx.table_exist("made").unwrap());
    assert!(!out.exists(), "no file was written");
    // Queries still work.
    let ok = sql(&ctx, "SELECT count(*) FROM irt_fit('WITH t AS (SELECT * FROM keep) SELECT * FROM t', '1pl', 'jml')").await;
    assert_eq!(column_text(&ok, 0), vec!["10"]);
}

/// Point 4: sizes and counts past what can be done are refused by name, at planning time.
#[tokio::test]
async fn absurd_sizes_are_refused_by_name() {
    let ctx = crossdiff::new_context();
    for q in [
        "SELECT * FROM irt_simulate(1000000000, 1000000000)",
        "EXPLAIN SELECT * FROM irt_simulate(1000000000, 1000000000)",
        "SELECT * FROM irt_simulate(9223372036854775807, 2)",
    ] {
        let err = sql_err(&ctx, q).await;
        assert!(
            err.contains("irt_simulate") && err.contains("n_models"),
            "{q}: {err}"
        );
    }
    let err = sql_err(&ctx, "SELECT * FROM irt_fit('SELECT * FROM irt_simulate(10, 5)', '1pl', 'jml', '{\"threads\": 100000}')").await;
    assert!(
        err.contains("option `threads`") && err.contains("between 1 and"),
        "{err}"
    );
    let err = sql_err(
        &ctx,
        "SELECT * FROM irt_simulate(10, 5, '{\"benchmark\": 5}')",
    )
    .await;
    assert!(err.contains("option `benchmark`"), "{err}");

    let o = crossdiff(&[
        "simulate",
        "--models",
        "1000000000",
        "--items",
        "1000000000",
        "--out",
        "/tmp/never.parquet",
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("--models"),
        "{}",
        stderr(&o)
    );

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("zero");
    let o = crossdiff(&[
        "tiny-model",
        "--out",
        out.to_str().unwrap(),
        "--options",
        r#"{"hidden_size": 0}"#,
    ]);
    assert!(
        !o.status.success() && stderr(&o).contains("hidden_size"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());

    let model = tmp.path().join("tiny");
    tiny(&model);
    sql(&ctx, "CREATE TABLE mc(item_id VARCHAR, prompt VARCHAR, choices VARCHAR[], answer VARCHAR) AS VALUES ('q1', 'a', ['a', 'b'], 'a')").await;
    let err = sql_err(
        &ctx,
        &format!(
            "SELECT * FROM evaluate('{}', 'mc', '{{\"batch_size\": 0, \"run_store\": \"{}\"}}')",
            model.display(),
            tmp.path().join("runs").display()
        ),
    )
    .await;
    assert!(err.contains("batch_size"), "{err}");
}

fn tiny(dir: &Path) {
    let texts: Vec<String> = (0..20).map(|k| format!("Repeat: a{k}\na{k}")).collect();
    let spec = TinySpec {
        vocab_size: 280,
        hidden_size: 32,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        intermediate_size: 64,
        max_position_embeddings: 64,
        seed: 5,
    };
    create_tiny_model(dir, &texts, &spec).unwrap();
}

fn fine_tune_sql(model: &Path, store: &Path, learning_rate: &str) -> String {
    format!(
        "SELECT run_id, model_path, final_loss, reused FROM fine_tune('{}', \
         'SELECT ''Repeat: a'' || CAST(k AS VARCHAR) AS prompt, ''a'' || CAST(k AS VARCHAR) AS response FROM (SELECT unnest(range(0, 8)) AS k)', \
         '{{\"epochs\": 2, \"batch_size\": 4, \"gradient_accumulation\": 1, \"learning_rate\": {learning_rate}, \"max_seq_len\": 32, \"run_store\": \"{}\"}}')",
        model.display(),
        store.display()
    )
}

/// Point 5: a run whose loss turns non-finite fails at that step and is never reused; a done
/// run whose files changed is trained again, not reused.
#[tokio::test]
async fn diverged_and_corrupted_runs_are_not_done() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny(&model);
    let store_dir = tmp.path().join("runs");
    let store = RunStore::locate(Some(store_dir.to_str().unwrap()));
    let ctx = crossdiff::new_context();

    let err = sql_err(&ctx, &fine_tune_sql(&model, &store_dir, "1e30")).await;
    assert!(err.contains("diverged at step"), "{err}");
    let listing = store.list().unwrap();
    assert_eq!(listing.runs.len(), 1);
    assert_eq!(
        listing.runs[0].status,
        crossdiff::experiment::store::RunStatus::Failed
    );
    assert!(listing.runs[0].summary["error"]
        .as_str()
        .unwrap()
        .contains("diverged"));
    assert!(!store.run_dir(&listing.runs[0].id).join("model").exists());
    // Asked again, it is not reused: it fails again.
    let err = sql_err(&ctx, &fine_tune_sql(&model, &store_dir, "1e30")).await;
    assert!(err.contains("diverged"), "{err}");

    // A done run whose weights were truncated is trained again.
    let good = fine_tune_sql(&model, &store_dir, "0.001");
    let first = sql(&ctx, &good).await;
    assert_eq!(column_text(&first, 3), vec!["false"]);
    assert_eq!(
        column_text(&sql(&ctx, &good).await, 3),
        vec!["true"],
        "reused while intact"
    );
    let weights = Path::new(&column_text(&first, 1)[0]).join("model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let again = sql(&ctx, &good).await;
    assert_eq!(
        column_text(&again, 3),
        vec!["false"],
        "a truncated model is not reused"
    );
    assert_eq!(
        std::fs::read(&weights).unwrap(),
        bytes,
        "retrained to the same weights"
    );
    // Overwritten bytes of the same length are caught as well.
    let mut flipped = bytes.clone();
    let at = flipped.len() - 10;
    flipped[at] ^= 0x55;
    std::fs::write(&weights, &flipped).unwrap();
    assert_eq!(column_text(&sql(&ctx, &good).await, 3), vec!["false"]);
}

/// Point 6: `runs list` tells a dead run from a live one and survives a broken record.
#[test]
fn runs_list_reports_dead_runs_and_broken_records() {
    let tmp = tempfile::tempdir().unwrap();
    let store = RunStore::locate(Some(tmp.path().to_str().unwrap()));
    let record = crossdiff::experiment::RunRecord {
        id: "ft-dead".into(),
        kind: crossdiff::experiment::store::RunKind::FineTune,
        model: "m".into(),
        options: serde_json::json!({}),
        status: crossdiff::experiment::store::RunStatus::Running,
        created: 1,
        updated: 1,
        seconds: 0.0,
        rows: 1,
        summary: serde_json::json!({}),
        crossdiff_version: "0".into(),
        files: Default::default(),
    };
    store.write_record(&record).unwrap();
    std::fs::create_dir_all(tmp.path().join("ft-broken")).unwrap();
    std::fs::write(tmp.path().join("ft-broken/run.json"), "{\"id\": ").unwrap();
    let dir = tmp.path().to_str().unwrap();
    let o = crossdiff(&["runs", "list", "--store", dir]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        text.contains("ft-dead") && text.contains("interrupted"),
        "{text}"
    );
    assert!(
        text.contains("ft-broken") && text.contains("broken record"),
        "{text}"
    );
    let o = crossdiff(&["runs", "clean", "--all", "--store", dir]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("removed 2 runs"));
}

/// Point 6: a COPY killed mid-write left a staging file; the next write of the target
/// removes it.
#[tokio::test]
async fn a_killed_copy_leaves_no_staging_file_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("x.parquet");
    let staging = tmp.path().join("x.parquet#1");
    std::fs::write(&staging, "half a file").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&staging)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        &format!(
            "COPY (SELECT 1 AS x) TO '{}' STORED AS PARQUET",
            target.display()
        ),
    )
    .await;
    assert!(target.exists());
    assert!(!staging.exists(), "the dead write's staging file is gone");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(left.len(), 1);
}

/// Point 7: a fit stops within a second of its cancel flag being set.
#[test]
fn a_cancelled_fit_stops_within_a_second() {
    use crossdiff::irt::simulate::{simulate, SimulationSpec};
    use crossdiff::irt::{fit, FitOptions, IrtError, Method};
    let mut sim = simulate(SimulationSpec {
        n_models: 2000,
        n_items: 400,
        ..Default::default()
    });
    // Item 0 right for every model: under vague priors its difficulty drifts and no method
    // settles, so only the flag can stop the fit.
    for j in 0..2000 {
        sim.cells[j * 400] = Some(true);
    }
    let matrix = sim.matrix().unwrap();
    // A flag set before the fit starts stops every method before its first sweep.
    for method in [Method::Jml, Method::Vi, Method::Mml] {
        let options = FitOptions {
            method,
            progress: false,
            ..Default::default()
        };
        options.cancel.set();
        assert!(matches!(
            fit(&matrix, &options),
            Err(IrtError::Cancelled { iterations: 0 })
        ));
    }
    // jml reaches its exact fixed point in a few dozen fast sweeps; vi and mml run on.
    for method in [Method::Vi, Method::Mml] {
        let options = FitOptions {
            method,
            priors: crossdiff::irt::Priors::vague(),
            tolerance: 1e-300,
            max_iter: 1_000_000,
            progress: false,
            ..Default::default()
        };
        let cancel = options.cancel.clone();
        let setter = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            cancel.set();
            std::time::Instant::now()
        });
        let result = fit(&matrix, &options);
        let stopped = std::time::Instant::now();
        let set_at = setter.join().unwrap();
        assert!(
            matches!(result, Err(IrtError::Cancelled { .. })),
            "{method:?}: {:?}",
            result.map(|f| (f.iterations, f.converged))
        );
        let lag = stopped.saturating_duration_since(set_at);
        assert!(
            lag < std::time::Duration::from_secs(1),
            "{method:?} ran on {lag:?} after cancel"
        );
    }
}

/// Point 8: messages that say what is wrong and where.
#[tokio::test]
async fn messages_name_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    // Invalid UTF-8 in JSON lines names the line; a byte-order mark is accepted.
    let logs = tmp.path().join("pyirt.jsonl");
    let good = std::fs::read(fixture("responses.pyirt.jsonl")).unwrap();
    let mut bad = good.clone();
    let second_line = bad.iter().position(|&b| b == b'\n').unwrap() + 3;
    bad[second_line] = 0xFF;
    std::fs::write(&logs, &bad).unwrap();
    let opts = crossdiff::data::IngestOptions::default();
    let read = |p: &Path| {
        crossdiff::data::read_responses(&[p.to_path_buf()], crossdiff::data::Format::PyIrt, &opts)
    };
    let err = read(&logs).unwrap_err().to_string();
    assert!(
        err.contains("pyirt.jsonl, line 2") && err.contains("UTF-8"),
        "{err}"
    );
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend_from_slice(&good);
    std::fs::write(&logs, &bom).unwrap();
    let with_bom = read(&logs).unwrap();
    std::fs::write(&logs, &good).unwrap();
    assert_eq!(with_bom, read(&logs).unwrap());

    let ctx = crossdiff::new_context();
    // Extreme priors name the option.
    let err = sql_err(&ctx, "SELECT * FROM irt_fit('SELECT * FROM irt_simulate(30, 10)', '1pl', 'jml', '{\"ability_sd\": 1e-300}')").await;
    assert!(err.contains("option `ability_sd`"), "{err}");
    // An item everyone got right is flagged by every method, vi included.
    sql(&ctx, "CREATE TABLE easy AS SELECT model_id, item_id, CASE WHEN item_id = 'sim-item-00000' THEN true ELSE correct END AS correct FROM irt_simulate(200, 20, '{\"missing\": 0}')").await;
    for method in ["jml", "vi", "mml"] {
        let flags = sql(&ctx, &format!("SELECT flag FROM irt_fit('easy', '1pl', '{method}') WHERE item_id = 'sim-item-00000'")).await;
        assert_eq!(column_text(&flags, 0), vec!["all_correct"], "{method}");
    }
    // ... and a fit that such an item keeps from converging says why.
    let q = "SELECT count(*) FROM irt_fit('SELECT model_id, item_id, CASE WHEN item_id = ''sim-item-00000'' THEN true ELSE correct END AS correct FROM irt_simulate(200, 20)', '1pl', 'vi', '{\"max_iter\": 50}')";
    let o = crossdiff(&["sql", "-c", q]);
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = stderr(&o);
    assert!(
        warning.contains("did not converge in 50 iterations") && warning.contains("all_correct"),
        "{warning}"
    );
    // A script with an unterminated block comment fails instead of skipping the rest.
    let script = tmp.path().join("s.sql");
    std::fs::write(&script, "SELECT 1;\n/* never closed\nSELECT 2;\n").unwrap();
    let o = crossdiff(&["sql", "-f", script.to_str().unwrap()]);
    assert!(!o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("statement 2 (line 2"), "{}", stderr(&o));
}

/// Point 8: writes onto a full disk say so (a 64 KiB tmpfs; skipped where mounting is not
/// allowed).
#[tokio::test]
async fn a_full_disk_is_named_as_such() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    std::fs::create_dir_all(&full).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            full.to_str().unwrap(),
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("SKIPPED: cannot mount a small tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(full.clone());
    // Ingest of a table too big for the disk.
    let big = tmp.path().join("big.parquet");
    let ctx = crossdiff::new_context();
    sql(&ctx, &format!("COPY (SELECT model_id, benchmark, item_id, correct FROM irt_simulate(1000, 600)) TO '{}' STORED AS PARQUET", big.display())).await;
    let out = full.join("responses.parquet");
    let o = crossdiff(&[
        "ingest",
        "--format",
        "parquet",
        big.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(!err.contains("cannot read"), "{err}");
    assert!(
        err.contains("No space left on device") || err.contains("cannot write"),
        "{err}"
    );
    // COPY as CSV onto the full disk.
    let csv = full.join("x.csv");
    let copy = format!(
        "COPY (SELECT * FROM irt_simulate(300, 300)) TO '{}' STORED AS CSV",
        csv.display()
    );
    let o = crossdiff(&["sql", "-c", &copy]);
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("cannot write") && err.contains("No space left on device"),
        "{err}"
    );
    assert!(!err.contains("Internal error"), "{err}");
}
