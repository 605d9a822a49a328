//! `spearman_corr(x, y)`: Spearman's rank correlation, average ranks for ties.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;

use super::doc_section;
use super::paired::PairedAggregate;
use crate::stats;

pub fn spearman_corr() -> PairedAggregate {
    PairedAggregate::new("spearman_corr", stats::spearman, || &DOC)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Spearman's rank correlation of x and y: the Pearson correlation of their ranks, tied values \
         sharing the average of their ranks (as scipy.stats.spearmanr). Rows where either side is NULL \
         or NaN are skipped; NULL when fewer than two pairs remain or a side is constant.",
        "spearman_corr(x, y)",
    )
    .with_argument("x", "Numeric expression, e.g. IRT difficulty.")
    .with_argument("y", "Numeric expression, e.g. a human difficulty proxy.")
    .with_sql_example("SELECT benchmark, spearman_corr(difficulty, n_solution_steps) FROM items GROUP BY benchmark;")
    .with_related_udf("kendall_tau")
    .build()
});
