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
    let config = SessionConfig::new().with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
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
