//! Result output: an aligned table, CSV, a JSON array or newline-delimited JSON.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::pretty::pretty_format_batches_with_schema;

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    #[default]
    Table,
    Csv,
    Json,
    Ndjson,
}

impl OutputFormat {
    pub fn parse(s: &str) -> Option<Self> {
        <Self as clap::ValueEnum>::from_str(s.trim(), true).ok()
    }
}

/// Writes one statement's results. Statements without columns (DDL) print nothing.
pub fn print_batches(
    out: &mut dyn Write,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
) -> Result<(), String> {
    if schema.fields().is_empty() {
        return Ok(());
    }
    let err = |e: &dyn std::fmt::Display| e.to_string();
    match format {
        OutputFormat::Table => {
            let table =
                pretty_format_batches_with_schema(schema.clone(), batches).map_err(|e| err(&e))?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "{table}").map_err(|e| err(&e))?;
            writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })
                .map_err(|e| err(&e))?;
            // A generalization-matrix result also gets its heatmap, coloured on a terminal.
            if let Some(grid) = crate::plot::MatrixGrid::from_batches(batches) {
                use std::io::IsTerminal;
                let color = std::io::stdout().is_terminal();
                write!(out, "{}", crate::plot::terminal_heatmap(&grid, color))
                    .map_err(|e| err(&e))?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                drop(writer);
                writeln!(out, "{}", names.join(",")).map_err(|e| err(&e))?;
            } else {
                for b in batches {
                    writer.write(b).map_err(|e| err(&e))?;
                }
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                writer.write(b).map_err(|e| err(&e))?;
            }
            writer.finish().map_err(|e| err(&e))?;
            drop(writer);
            writeln!(out).map_err(|e| err(&e))?;
        }
        OutputFormat::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                writer.write(b).map_err(|e| err(&e))?;
            }
            writer.finish().map_err(|e| err(&e))?;
        }
    }
    out.flush().map_err(|e| err(&e))
}
