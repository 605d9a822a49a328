//! Result output: an aligned table, CSV, a JSON array or newline-delimited JSON.

use std::io::Write;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::pretty::pretty_format_batches_with_schema;

use super::ShellError;

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

/// The first `limit` rows of `batches`.
fn first_rows(batches: &[RecordBatch], limit: usize) -> Vec<RecordBatch> {
    let mut left = limit;
    let mut out = Vec::new();
    for b in batches {
        if left == 0 {
            break;
        }
        let take = left.min(b.num_rows());
        out.push(b.slice(0, take));
        left -= take;
    }
    out
}

/// Writes one statement's results. Statements without columns (DDL) print nothing. The table
/// format shows at most `max_rows` rows (`None`: all), as datafusion-cli does; the other
/// formats always write every row.
pub fn print_batches(
    out: &mut dyn Write,
    format: OutputFormat,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    max_rows: Option<usize>,
) -> Result<(), ShellError> {
    if schema.fields().is_empty() {
        return Ok(());
    }
    match format {
        OutputFormat::Table => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let shown = max_rows.map_or(rows, |m| m.min(rows));
            let table =
                pretty_format_batches_with_schema(schema.clone(), &first_rows(batches, shown))?;
            writeln!(out, "{table}")?;
            if shown < rows {
                writeln!(
                    out,
                    "({rows} rows, the first {shown} shown; \\maxrows N or --maxrows N changes this, 0 shows all)"
                )
            } else {
                writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })
            }?;
            // A generalization-matrix result also gets its heatmap, coloured on a terminal.
            if let Some(grid) = crate::plot::MatrixGrid::from_batches(batches) {
                use std::io::IsTerminal;
                let color = std::io::stdout().is_terminal();
                write!(out, "{}", crate::plot::terminal_heatmap(&grid, color))?;
            }
        }
        OutputFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                drop(writer);
                writeln!(out, "{}", names.join(","))?;
            } else {
                for b in batches {
                    writer.write(b)?;
                }
            }
        }
        OutputFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            drop(writer);
            writeln!(out)?;
        }
        OutputFormat::Ndjson => {
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut *out);
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
        }
    }
    Ok(out.flush()?)
}
