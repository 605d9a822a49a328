//! The `crossdiff` command line: one file per command, one error type.

mod bench;
mod demo;
mod fine_tune;
mod ingest;
mod plot;
mod runs;
mod sample;
mod simulate;
mod sql;
mod tiny_model;
mod zoo;

use clap::{Parser, Subcommand};
use crossdiff::datafusion::common::DataFusionError;
use thiserror::Error;

#[derive(Parser)]
#[command(
    name = "crossdiff",
    version,
    about = "Difficulty-generalization analytics for language models, in SQL"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SQL shell; with -c or -f, runs statements and exits.
    Sql(sql::SqlArgs),
    /// Converts result files to the canonical responses table (.parquet) or py-irt jsonlines (.jsonl).
    Ingest(ingest::IngestArgs),
    /// The main job: the paper's study on the shipped arithmetic leaderboard and base model
    /// (data/demo): IRT difficulty, ten bins, the generalization matrix, plots (queries/demo.sql).
    Demo(demo::DemoArgs),
    /// Writes the generated responses sample (responses.parquet, items.parquet) to a folder.
    Sample(sample::SampleArgs),
    /// Simulates IRT responses with known parameters and writes them as Parquet.
    Simulate(simulate::SimulateArgs),
    /// Benchmarks: `bench irt` fits the scales and the real leaderboards; `bench lm`
    /// measures training, scoring and generation tokens/s of a tiny model.
    Bench(bench::BenchArgs),
    /// Writes a tiny random-init Qwen2-architecture model folder with a BPE tokenizer trained
    /// on the given text files (the defaults make about 5 M parameters).
    TinyModel(tiny_model::TinyModelArgs),
    /// Fine-tunes a model folder on prompt/response pairs as a run in the run store, as SQL's
    /// fine_tune does (cached; Ctrl-C stops at a checkpoint and the same command resumes).
    FineTune(fine_tune::FineTuneArgs),
    /// The run store of fine-tunes and evaluations: `runs list`, `runs clean`.
    Runs(runs::RunsArgs),
    /// Pictures (SVG and PNG): `plot matrix`, `plot gap-profile`, `plot difficulty`.
    Plot(plot::PlotArgs),
    /// Trains the tiny-model zoo on the synthetic arithmetic benchmark and writes its
    /// leaderboard (responses.parquet) and the items (items.parquet) to a folder.
    Zoo(zoo::ZooArgs),
}

/// Why a command failed; the message is what the user sees after `Error: `.
#[derive(Debug, Error)]
pub enum CliError {
    #[error("{0}")]
    Message(String),
    #[error(transparent)]
    Sql(#[from] DataFusionError),
    #[error(transparent)]
    Arrow(#[from] crossdiff::datafusion::arrow::error::ArrowError),
    #[error(transparent)]
    Experiment(#[from] crossdiff::experiment::ExperimentError),
    #[error(transparent)]
    Data(#[from] crossdiff::data::DataError),
    #[error(transparent)]
    Lm(#[from] crossdiff::lm::LmError),
    #[error(transparent)]
    Plot(#[from] crossdiff::plot::PlotError),
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::Message(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        Self::Message(message.to_string())
    }
}

pub type Result<T, E = CliError> = std::result::Result<T, E>;

impl Cli {
    /// Runs the command.
    pub async fn run(self) -> Result<()> {
        match self.command {
            Command::Sql(args) => sql::run_sql(args).await,
            Command::Ingest(args) => ingest::run_ingest(args),
            Command::Demo(args) => demo::run_demo(args).await,
            Command::Sample(args) => sample::write_sample(&args.out, args.seed).map(|_| ()),
            Command::Simulate(args) => simulate::run_simulate(args),
            Command::Bench(args) => bench::run_bench(args).await,
            Command::TinyModel(args) => tiny_model::run_tiny_model(args),
            Command::FineTune(args) => fine_tune::run_fine_tune(args).await,
            Command::Runs(args) => runs::run_runs(args),
            Command::Plot(args) => plot::run_plot(args).await,
            Command::Zoo(args) => zoo::run_zoo(args),
        }
    }
}

/// A cancel flag that Ctrl-C sets, saying `message` (work stops between steps).
fn ctrl_c_cancel(message: &'static str) -> crossdiff::cancel::Cancel {
    let cancel = crossdiff::cancel::Cancel::default();
    let flag = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\n{message}");
            flag.set();
        }
    });
    cancel
}
