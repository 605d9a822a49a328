//! `irt_simulate(n_models, n_items [, options])`: synthetic responses with known parameters.

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{plan_err, Result};
use datafusion::datasource::MemTable;
use datafusion::logical_expr::Expr;

use super::error::plan_error;
use super::{positive_int_arg, string_arg, TableFunctionDoc};
use crate::irt::simulate::{simulate, SimulationOptions};

pub const DOC: TableFunctionDoc = TableFunctionDoc {
    name: "irt_simulate",
    syntax: "irt_simulate(n_models, n_items [, options])",
    description: "Simulated responses with known parameters, seeded: columns model_id, benchmark, item_id, \
correct, true_ability, true_difficulty, true_discrimination, true_guessing, true_upper. Abilities are a \
leaderboard-like mixture (70% N(0,1), 30% N(1.5, 0.5^2)); difficulties N(0, 1.5^2); 2PL, 3PL and 4PL \
discriminations lognormal(0, 0.3^2); 3PL and 4PL guessing floors uniform on [0.05, 0.35]; 4PL upper asymptotes \
uniform on [0.8, 1]. options is a JSON object: model ('1pl', '2pl', '3pl' or '4pl', default '1pl'), missing (share of unobserved cells, 0.1), extreme_items \
(share of near-trivial and near-impossible items, 0), seed (42), benchmark ('sim').",
    example: "SELECT * FROM irt_fit('SELECT * FROM irt_simulate(500, 100)', '1pl', 'jml');",
};

#[derive(Debug, Default)]
pub struct IrtSimulate;

fn count(exprs: &[Expr], index: usize, name: &str) -> Result<usize> {
    positive_int_arg(DOC.name, exprs, index, name, i64::MAX).map(|n| n as usize)
}

impl TableFunctionImpl for IrtSimulate {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        DOC.check_arg_count(exprs, 2..=3)?;
        let options: SimulationOptions = match exprs.len() {
            3 => crate::options::parse(&string_arg(DOC.name, exprs, 2, "options")?)
                .map_err(|e| plan_error(DOC.name, e))?,
            _ => SimulationOptions::default(),
        };
        if options.benchmark.is_empty() {
            return plan_err!("irt_simulate: option `benchmark` must be a non-empty string");
        }
        let spec = options.spec(count(exprs, 0, "n_models")?, count(exprs, 1, "n_items")?);
        spec.validate().map_err(|e| plan_error("irt_simulate", e))?;
        // Generated at planning time: deterministic and bounded by the checks above.
        let batch = simulate(spec).to_batch(&options.benchmark);
        Ok(Arc::new(MemTable::try_new(
            batch.schema(),
            vec![vec![batch]],
        )?))
    }
}
