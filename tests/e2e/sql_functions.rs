//! The analysis functions, end to end through SQL.

use super::common;

use std::sync::Arc;

use super::common::{column_text, f64s, sql, sql_err};
use crossdiff::datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use crossdiff::datafusion::arrow::datatypes::{DataType, Field, Schema};
use crossdiff::datafusion::datasource::MemTable;

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("a value, not NULL");
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
}

#[tokio::test]
async fn irt_prob_models() {
    let ctx = crossdiff::new_context();
    let b = sql(&ctx, "SELECT irt_prob(0.5, -1.0), irt_prob(0.5, -1.0, 2.0), irt_prob(0.5, -1.0, 2.0, 0.25), irt_prob(1, 1), irt_prob(NULL, 1.0)").await;
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    close(f64s(&b, 0)[0], sigmoid(1.5));
    close(f64s(&b, 1)[0], sigmoid(3.0));
    close(f64s(&b, 2)[0], 0.25 + 0.75 * sigmoid(3.0));
    close(f64s(&b, 3)[0], 0.5);
    assert_eq!(f64s(&b, 4)[0], None);

    // Columns, not only literals.
    let b = sql(
        &ctx,
        "SELECT irt_prob(t, d) FROM (VALUES (0.0, 0.0), (2.0, 0.0)) AS v(t, d)",
    )
    .await;
    close(f64s(&b, 0)[1], sigmoid(2.0));
}

#[tokio::test]
async fn irt_prob_bad_arguments() {
    let ctx = crossdiff::new_context();
    let e = sql_err(&ctx, "SELECT irt_prob(1.0)").await;
    assert!(e.contains("irt_prob expects 2 to 4 arguments"), "{e}");
    let e = sql_err(&ctx, "SELECT irt_prob(1.0, 'hard')").await;
    assert!(e.contains("argument 2 (b) must be numeric"), "{e}");
    let e = sql_err(&ctx, "SELECT irt_prob(0.0, 0.0, 1.0, 1.5)").await;
    assert!(e.contains("guessing parameter c must be in [0, 1)"), "{e}");
}

#[tokio::test]
async fn bins_and_quantiles_follow_the_paper() {
    let ctx = crossdiff::new_context();
    // 20 items, difficulties 0..19 in shuffled order: 10 bins of 2.
    let values: Vec<String> = (0..20)
        .map(|i| format!("('b', 'i{:02}', {})", i, (i * 7) % 20))
        .collect();
    sql(
        &ctx,
        &format!(
            "CREATE TABLE d(benchmark VARCHAR, item_id VARCHAR, difficulty DOUBLE) AS VALUES {}",
            values.join(",")
        ),
    )
    .await;
    let b = sql(&ctx, "SELECT difficulty, difficulty_bin(difficulty, 10) OVER (PARTITION BY benchmark) AS bin, \
                       difficulty_quantile(difficulty) OVER (PARTITION BY benchmark) AS q FROM d ORDER BY difficulty").await;
    let bins = column_text(&b, 1);
    let expected: Vec<String> = (0..20).map(|i| (i / 2).to_string()).collect();
    assert_eq!(bins, expected);
    let q = f64s(&b, 2);
    close(q[0], 0.0);
    close(q[19], 1.0);
    close(q[10], 10.0 / 19.0);
}

#[tokio::test]
async fn bins_break_ties_by_key_and_skip_nulls() {
    let ctx = crossdiff::new_context();
    sql(&ctx, "CREATE TABLE d(benchmark VARCHAR, item_id VARCHAR, difficulty DOUBLE) AS VALUES \
               ('x', 'c', 1.0), ('x', 'a', 1.0), ('x', 'b', 1.0), ('x', 'd', 1.0), ('x', 'n', NULL), \
               ('y', 'z', 5.0), ('y', 'w', -5.0)").await;
    let q = "SELECT benchmark, item_id, difficulty_bin(difficulty, 2, item_id) OVER (PARTITION BY benchmark) AS bin \
             FROM d ORDER BY benchmark, item_id";
    let first = column_text(&sql(&ctx, q).await, 2);
    // All tied: a, b go to bin 0 and c, d to bin 1 by item_id; NULL difficulty gets NULL.
    assert_eq!(first, vec!["0", "0", "1", "1", "", "0", "1"]);
    // Same answer whatever the input order.
    sql(
        &ctx,
        "CREATE TABLE d2 AS SELECT * FROM d ORDER BY item_id DESC",
    )
    .await;
    let again = column_text(&sql(&ctx, &q.replace("FROM d ", "FROM d2 ")).await, 2);
    assert_eq!(first, again);
}

#[tokio::test]
async fn bins_bad_arguments() {
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        "CREATE TABLE d(item_id VARCHAR, difficulty DOUBLE) AS VALUES ('a', 1.0), ('b', 2.0)",
    )
    .await;
    let e = sql_err(&ctx, "SELECT difficulty_bin(difficulty, 0) OVER () FROM d").await;
    assert!(e.contains("n must be a positive integer"), "{e}");
    let e = sql_err(
        &ctx,
        "SELECT difficulty_bin(difficulty, 2.5) OVER () FROM d",
    )
    .await;
    assert!(e.contains("argument 2 (n) must be an integer"), "{e}");
    let e = sql_err(&ctx, "SELECT difficulty_bin(item_id, 2) OVER () FROM d").await;
    assert!(e.contains("argument 1 (difficulty) must be numeric"), "{e}");
    // DataFusion refuses a call without arguments before the function sees it.
    let e = sql_err(&ctx, "SELECT difficulty_quantile() OVER () FROM d").await;
    assert!(
        e.contains("'difficulty_quantile' does not support zero arguments"),
        "{e}"
    );
    let e = sql_err(
        &ctx,
        "SELECT difficulty_quantile(difficulty, item_id, 3) OVER () FROM d",
    )
    .await;
    assert!(
        e.contains("difficulty_quantile expects 1 or 2 arguments"),
        "{e}"
    );
    let e = sql_err(
        &ctx,
        "SELECT difficulty_bin(difficulty, 2) OVER () FROM nope",
    )
    .await;
    assert!(e.contains("nope") && e.contains("not found"), "{e}");
}

#[tokio::test]
async fn rank_correlations_match_hand_computed_values() {
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        "CREATE TABLE p(g VARCHAR, x DOUBLE, y DOUBLE) AS VALUES \
               ('a', 1, 2), ('a', 1, 1), ('a', 2, 4), ('a', 3, 3), ('a', 4, 5), ('a', NULL, 9), \
               ('b', 1, 3), ('b', 2, 2), ('b', 3, 1), \
               ('c', 1, 1)",
    )
    .await;
    let b = sql(
        &ctx,
        "SELECT g, spearman_corr(x, y), kendall_tau(x, y) FROM p GROUP BY g ORDER BY g",
    )
    .await;
    let (rho, tau) = (f64s(&b, 1), f64s(&b, 2));
    close(rho[0], 8.5 / (9.5f64 * 10.0).sqrt());
    close(tau[0], 7.0 / (9.0f64 * 10.0).sqrt());
    close(rho[1], -1.0);
    close(tau[1], -1.0);
    assert_eq!(
        (rho[2], tau[2]),
        (None, None),
        "one pair has no correlation"
    );
    let e = sql_err(&ctx, "SELECT spearman_corr(g, y) FROM p").await;
    assert!(
        e.contains("spearman_corr: argument 1 (x) must be numeric"),
        "{e}"
    );
    let e = sql_err(&ctx, "SELECT kendall_tau(x) FROM p").await;
    assert!(e.contains("kendall_tau expects 2 arguments"), "{e}");
}

#[tokio::test]
async fn rank_correlations_merge_partial_states() {
    // Four partitions force partial aggregation and a merge of buffered states.
    let ctx = crossdiff::new_context();
    let schema = Arc::new(Schema::new(vec![
        Field::new("g", DataType::Utf8, false),
        Field::new("x", DataType::Float64, true),
        Field::new("y", DataType::Float64, true),
    ]));
    let xs: Vec<f64> = (0..200).map(|i| ((i * 37) % 101) as f64).collect();
    let ys: Vec<f64> = (0..200)
        .map(|i| ((i * 53) % 17) as f64 + xs[i] / 10.0)
        .collect();
    let partitions: Vec<Vec<RecordBatch>> = (0..4)
        .map(|p| {
            let range = p * 50..(p + 1) * 50;
            vec![RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from(vec!["all"; 50])),
                    Arc::new(Float64Array::from(xs[range.clone()].to_vec())),
                    Arc::new(Float64Array::from(ys[range].to_vec())),
                ],
            )
            .unwrap()]
        })
        .collect();
    ctx.register_table(
        "t",
        Arc::new(MemTable::try_new(schema, partitions).unwrap()),
    )
    .unwrap();
    let b = sql(
        &ctx,
        "SELECT g, spearman_corr(x, y), kendall_tau(x, y) FROM t GROUP BY g",
    )
    .await;
    close(
        f64s(&b, 1)[0],
        crossdiff::stats::spearman(&xs, &ys).unwrap(),
    );
    close(
        f64s(&b, 2)[0],
        crossdiff::stats::kendall_tau_b(&xs, &ys).unwrap(),
    );
    let b = sql(&ctx, "SELECT spearman_corr(x, y) FROM t").await;
    close(
        f64s(&b, 0)[0],
        crossdiff::stats::spearman(&xs, &ys).unwrap(),
    );
}

#[test]
fn functions_carry_their_documentation() {
    // `\h NAME` in the shell prints these; see tests/cli.rs.
    let ctx = crossdiff::new_context();
    let state = ctx.state();
    let doc = |d: Option<&crossdiff::datafusion::logical_expr::Documentation>| {
        d.expect("documented").description.clone()
    };
    assert!(
        doc(state.scalar_functions()["irt_prob"].documentation()).contains("logistic IRT model")
    );
    assert!(
        doc(state.aggregate_functions()["spearman_corr"].documentation())
            .contains("average of their ranks")
    );
    assert!(doc(state.aggregate_functions()["kendall_tau"].documentation()).contains("tau-b"));
    assert!(
        doc(state.window_functions()["difficulty_bin"].documentation())
            .contains("k/n <= q < (k+1)/n")
    );
    assert!(
        doc(state.window_functions()["difficulty_quantile"].documentation())
            .contains("1pl_quantile")
    );
    assert!(state.table_functions().contains_key("read_responses"));
}

/// The check on real data: GSM8K items of the Open LLM Leaderboard in 10 bins.
#[tokio::test]
async fn real_gsm8k_bins_and_solution_steps() {
    let Some(dir) = common::shared_data("oll_v1") else {
        return;
    };
    let ctx = crossdiff::new_context();
    crossdiff::register_data_dir(&ctx, &dir).await.unwrap();
    let b = sql(&ctx, "WITH d AS (SELECT item_id, 1 - avg(CAST(correct AS DOUBLE)) AS difficulty FROM responses \
                       WHERE benchmark = 'gsm8k' GROUP BY item_id), \
                       binned AS (SELECT d.*, i.n_solution_steps, difficulty_bin(difficulty, 10, d.item_id) OVER () AS bin \
                       FROM d JOIN items i ON i.benchmark = 'gsm8k' AND i.item_id = d.item_id) \
                       SELECT count(*), count(DISTINCT bin), min(c), max(c), \
                              (SELECT spearman_corr(difficulty, n_solution_steps) FROM binned) \
                       FROM (SELECT bin, count(*) AS c FROM binned GROUP BY bin)").await;
    let row = column_text(&b, 0);
    assert_eq!(row, vec!["10"], "ten bins");
    let (lo, hi) = (f64s(&b, 2)[0].unwrap(), f64s(&b, 3)[0].unwrap());
    assert!(hi - lo <= 1.0, "equal-size bins: {lo}..{hi}");
    let rho = f64s(&b, 4)[0].unwrap();
    // More solution steps, harder for models: measured 0.598 with 1 - mean(correct).
    assert!(rho > 0.3 && rho < 0.8, "spearman {rho}");
}

#[tokio::test]
async fn difficulty_bin_stability_from_sql() {
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        "CREATE TABLE d(item_id VARCHAR, difficulty DOUBLE, se DOUBLE) AS VALUES \
         ('a', 0.0, 0.001), ('b', 1.0, 0.001), ('c', 2.0, 0.001), ('d', 3.0, 0.001), ('e', NULL, 0.1)",
    )
    .await;
    let out = sql(
        &ctx,
        "SELECT item_id, difficulty_bin_stability(difficulty, se, 2) OVER (ORDER BY item_id) AS s \
         FROM d ORDER BY item_id",
    )
    .await;
    let s = super::common::column_text(&out, 1);
    assert_eq!(s[..4], ["1.0", "1.0", "1.0", "1.0"]);
    assert!(s[4].is_empty() || s[4] == "NULL", "{s:?}");
    let err = super::common::sql_err(
        &ctx,
        "SELECT difficulty_bin_stability(difficulty, -se, 2) OVER () FROM d",
    )
    .await;
    assert!(
        err.contains("difficulty_se must be finite and non-negative"),
        "{err}"
    );
    let err = super::common::sql_err(
        &ctx,
        "SELECT difficulty_bin_stability(difficulty, se, 'x') OVER () FROM d",
    )
    .await;
    assert!(err.contains("argument 3 (n) must be an integer"), "{err}");
}
