//! `crossdiff sql`: the shell, or statements from -c and -f.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use clap::Args;
use crossdiff::shell::{OutputFormat, Shell};

use super::Result;

#[derive(Args)]
pub struct SqlArgs {
    /// Register every Parquet table under DIR (DIR/x.parquet as x, DIR/s/x.parquet as s.x).
    #[arg(long, value_name = "DIR")]
    pub data: Vec<PathBuf>,
    /// Run these statements (several allowed), then exit.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,
    /// Run the statements in these files (several allowed), then exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Rows the table format shows of each result (0: all).
    #[arg(long, default_value_t = crossdiff::shell::DEFAULT_MAX_ROWS)]
    pub maxrows: usize,
}

pub async fn run_sql(args: SqlArgs) -> Result<()> {
    let ctx = crossdiff::new_context();
    for dir in &args.data {
        crossdiff::register_data_dir(&ctx, dir)
            .await
            .map_err(|e| e.to_string())?;
    }
    let mut shell = Shell::new(ctx, args.format).with_max_rows(args.maxrows);
    let mut out = std::io::stdout();
    if args.commands.is_empty() && args.files.is_empty() {
        if std::io::stdin().is_terminal() {
            return Ok(shell.repl().await.map_err(|e| e.to_string())?);
        }
        let mut script = String::new();
        std::io::stdin()
            .read_to_string(&mut script)
            .map_err(|e| format!("reading stdin: {e}"))?;
        shell
            .run_script(&script, "stdin", &mut out)
            .await
            .map_err(|e| e.to_string())?;
        return Ok(());
    }
    for (i, sql) in args.commands.iter().enumerate() {
        let origin = format!("-c argument {}", i + 1);
        if !shell
            .run_script(sql, &origin, &mut out)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(());
        }
    }
    for file in &args.files {
        let script =
            std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        if !shell
            .run_script(&script, &file.display().to_string(), &mut out)
            .await
            .map_err(|e| e.to_string())?
        {
            return Ok(());
        }
    }
    Ok(())
}
