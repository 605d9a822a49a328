//! `kendall_tau(x, y)`: Kendall's tau-b rank correlation.

use std::sync::LazyLock;

use datafusion::logical_expr::Documentation;

use super::doc_section;
use super::paired::PairedAggregate;
use crate::stats;

pub fn kendall_tau() -> PairedAggregate {
    PairedAggregate::new("kendall_tau", stats::kendall_tau_b, || &DOC)
}

static DOC: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        doc_section(),
        "Kendall's tau-b rank correlation of x and y, corrected for ties on either side (as \
         scipy.stats.kendalltau), computed in O(n log n). Rows where either side is NULL or NaN are \
         skipped; NULL when fewer than two pairs remain or a side is constant.",
        "kendall_tau(x, y)",
    )
    .with_argument("x", "Numeric expression, e.g. IRT difficulty.")
    .with_argument("y", "Numeric expression, e.g. a human difficulty proxy.")
    .with_sql_example("SELECT benchmark, kendall_tau(difficulty, n_solution_steps) FROM items GROUP BY benchmark;")
    .with_related_udf("spearman_corr")
    .build()
});
