//! The crossdiff SQL session: a DataFusion context with every crossdiff function registered,
//! and registration of a folder of Parquet tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};

/// A DataFusion session with every crossdiff function registered and `information_schema`
/// (so `SHOW TABLES`, `SHOW FUNCTIONS` and `\d` work).
pub fn new_context() -> SessionContext {
    let config = SessionConfig::new()
        .with_information_schema(true)
        .with_option_extension(crate::settings::Settings::default());
    let ctx = SessionContext::new_with_config(config);
    crate::local_files::LocalFiles::register(&ctx);
    crate::udfs::register_all(&ctx);
    ctx
}

/// A table found under a data folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundTable {
    /// `name` or `schema.name`.
    pub name: String,
    /// A Parquet file or a folder of Parquet parts.
    pub location: PathBuf,
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parquet_stems(dir: &Path) -> Result<(Vec<(String, PathBuf)>, bool)> {
    let mut stems = Vec::new();
    let mut partitioned = false;
    let entries = std::fs::read_dir(dir)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", dir.display())))?;
    for entry in entries {
        let path = entry
            .map_err(|e| DataFusionError::Execution(format!("{}: {e}", dir.display())))?
            .path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if path.is_dir() && name.contains('=') {
            partitioned = true;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            stems.push((stem, path));
        }
    }
    stems.sort();
    Ok((stems, partitioned))
}

/// A folder is one table (of Parquet parts) when it is Hive-partitioned or its file names are
/// not table names (`part-0`, `0`, uuids); otherwise each file in it is a table of its own.
fn is_table_folder(stems: &[(String, PathBuf)], partitioned: bool) -> bool {
    partitioned || (!stems.is_empty() && stems.iter().any(|(s, _)| !is_identifier(s)))
}

/// Finds the Parquet tables under `dir`: `dir/NAME.parquet` is table `NAME`; a sub-folder
/// `dir/S/` of parts is table `S`; a sub-folder of named files `dir/S/T.parquet` is table
/// `S.T` (schema `S`). Deeper folders are not searched.
pub fn find_tables(dir: &Path) -> Result<Vec<FoundTable>> {
    if !dir.is_dir() {
        return Err(DataFusionError::Plan(format!(
            "--data {}: not a folder",
            dir.display()
        )));
    }
    let (stems, partitioned) = parquet_stems(dir)?;
    if is_table_folder(&stems, partitioned) {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "data".into());
        return Ok(vec![FoundTable {
            name,
            location: dir.to_path_buf(),
        }]);
    }
    let mut found: Vec<FoundTable> = stems
        .into_iter()
        .map(|(name, location)| FoundTable { name, location })
        .collect();
    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataFusionError::Execution(format!("{}: {e}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    subdirs.sort();
    for sub in subdirs {
        let schema = sub
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (stems, partitioned) = parquet_stems(&sub)?;
        if is_table_folder(&stems, partitioned) {
            found.push(FoundTable {
                name: schema,
                location: sub,
            });
        } else {
            for (stem, location) in stems {
                found.push(FoundTable {
                    name: format!("{schema}.{stem}"),
                    location,
                });
            }
        }
    }
    Ok(found)
}

/// Registers every Parquet table under `dir` (see [`find_tables`]); returns their names.
pub async fn register_data_dir(ctx: &SessionContext, dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for table in find_tables(dir.as_ref())? {
        if let Some((schema, _)) = table.name.split_once('.') {
            let catalog = ctx.catalog("datafusion").expect("default catalog");
            if catalog.schema(schema).is_none() {
                catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
            }
        }
        let location = table.location.to_string_lossy().to_string();
        let location = if table.location.is_dir() {
            format!("{location}/")
        } else {
            location
        };
        ctx.register_parquet(
            table.name.as_str(),
            &location,
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| {
            DataFusionError::Plan(format!("registering {} from {location}: {e}", table.name))
        })?;
        names.push(table.name);
    }
    Ok(names)
}

/// Stack each query thread gets. DataFusion's planner and optimizer recurse over expression
/// trees (a generated filter of thousands of `OR` terms is thousands of levels deep); the
/// stack is reserved, not committed, so a large one costs nothing until used.
pub const QUERY_STACK_BYTES: usize = 256 << 20;

/// The deepest expression (or query) nesting a statement may have; deeper statements are
/// refused with an error before planning, since past it even [`QUERY_STACK_BYTES`] could run
/// out. Measured: a filter of 19,990 `OR` terms plans and runs on that stack (peak memory
/// 160 MB; it takes 105 s, as DataFusion's optimizer is quadratic in such chains: 2,000 terms
/// take 0.6 s, 10,000 take 19 s).
pub const MAX_NESTING: usize = 20_000;

/// Refuses a statement nested deeper than [`MAX_NESTING`], naming the depth. Statements that
/// do not parse pass (planning reports them).
pub fn check_nesting(ctx: &SessionContext, sql: &str) -> Result<()> {
    use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
    use datafusion::sql::sqlparser::ast::{Expr, Query, Visit, Visitor};
    use std::ops::ControlFlow;

    struct Depth {
        now: usize,
    }
    impl Depth {
        fn enter(&mut self) -> ControlFlow<()> {
            self.now += 1;
            if self.now > MAX_NESTING {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.enter()
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
        fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.enter()
        }
        fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    fn too_deep(statement: &DfStatement, depth: &mut Depth) -> bool {
        match statement {
            DfStatement::Statement(s) => s.visit(depth).is_break(),
            DfStatement::CopyTo(c) => match &c.source {
                CopyToSource::Query(q) => q.visit(depth).is_break(),
                CopyToSource::Relation(_) => false,
            },
            DfStatement::Explain(e) => too_deep(&e.statement, depth),
            _ => false,
        }
    }
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let Ok(statement) = state.sql_to_statement(sql, &dialect) else {
        return Ok(());
    };
    if too_deep(&statement, &mut Depth { now: 0 }) {
        return Err(DataFusionError::Plan(format!(
            "the statement nests expressions more than {MAX_NESTING} levels deep (a chain of \
             that many AND/OR terms, say); split it, or put the values in a table and join \
             or use IN"
        )));
    }
    Ok(())
}
