//! The analysis functions, end to end through SQL, where a test needs more than SQL text
//! (partitioned inputs, the shared data); the rest is in tests/sql/*.slt.

use super::common;

use std::sync::Arc;

use super::common::{column_text, f64s, sql};
use crossdiff::datafusion::arrow::array::{Float64Array, RecordBatch, StringArray};
use crossdiff::datafusion::arrow::datatypes::{DataType, Field, Schema};
use crossdiff::datafusion::datasource::MemTable;

fn close(a: Option<f64>, b: f64) {
    let a = a.expect("a value, not NULL");
    assert!((a - b).abs() < 1e-9, "{a} vs {b}");
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
