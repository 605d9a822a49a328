//! `crossdiff plot matrix|gap-profile|difficulty`: pictures (SVG and PNG) of results.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use crossdiff::datafusion::arrow::array::RecordBatch;
use crossdiff::plot;

use super::Result;

#[derive(Args)]
pub struct PlotArgs {
    #[command(subcommand)]
    pub command: PlotCommand,
}

#[derive(Subcommand)]
pub enum PlotCommand {
    /// A generalization_matrix result (train_bin, eval_bin, delta[, zero_shot_accuracy]) as
    /// the paper's heatmap plus per-bin zero-shot accuracy; the text heatmap on stdout.
    Matrix(PlotInput),
    /// A gap_profile result: mean delta by train/eval gap with its interval band.
    GapProfile(PlotInput),
    /// Difficulty histograms per benchmark (difficulty[, benchmark]); --out is a folder.
    Difficulty(PlotInput),
}

/// Where the result comes from and where the picture goes.
#[derive(Args)]
pub struct PlotInput {
    /// A Parquet file with the result.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Or a query that yields it (with --data to register tables).
    #[arg(long)]
    pub query: Option<String>,
    #[arg(long, value_name = "DIR")]
    pub data: Vec<PathBuf>,
    /// Output path without extension (matrix, gap-profile) or folder (difficulty).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub title: Option<String>,
}

/// The rows of the input file or query.
async fn read(args: &PlotInput) -> Result<Vec<RecordBatch>> {
    let ctx = crossdiff::new_context();
    for dir in &args.data {
        crossdiff::register_data_dir(&ctx, dir)
            .await
            .map_err(|e| e.to_string())?;
    }
    let query = match (&args.input, &args.query) {
        (Some(path), None) => {
            ctx.register_parquet("plot_input", path.display().to_string(), Default::default())
                .await
                .map_err(|e| format!("{}: {e}", path.display()))?;
            "SELECT * FROM plot_input".to_string()
        }
        (None, Some(q)) => q.clone(),
        _ => return Err("plot needs exactly one of --input FILE.parquet and --query SQL".into()),
    };
    Ok(ctx.sql(&query).await?.collect().await?)
}

pub async fn run_plot(args: PlotArgs) -> Result<()> {
    let written = match &args.command {
        PlotCommand::Matrix(input) => {
            let batches = read(input).await?;
            let grid = plot::MatrixGrid::from_batches(&batches).ok_or(
                "the result needs train_bin, eval_bin and delta columns (a generalization_matrix result)",
            )?;
            let title = input
                .title
                .as_deref()
                .unwrap_or("Accuracy change vs zero-shot");
            // The text heatmap first: it needs no font.
            print!(
                "{}",
                plot::terminal_heatmap(&grid, std::io::stdout().is_terminal())
            );
            plot::write_matrix(&grid, &input.out, title)?
        }
        PlotCommand::GapProfile(input) => {
            let batches = read(input).await?;
            let profile = plot::GapProfilePoints::from_batches(&batches).ok_or(
                "the result needs measure, gap, estimate, ci_low and ci_high columns (a gap_profile result)",
            )?;
            let title = input
                .title
                .as_deref()
                .unwrap_or("Accuracy change vs zero-shot by train/eval gap");
            plot::write_gap_profile(&profile, &input.out, title)?
        }
        PlotCommand::Difficulty(input) => {
            let batches = read(input).await?;
            plot::write_difficulty(&plot::difficulties_by_benchmark(&batches)?, &input.out)?
        }
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
