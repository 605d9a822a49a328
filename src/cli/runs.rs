//! `crossdiff runs list|clean`: the run store of fine-tunes and evaluations.

use clap::{Args, Subcommand};
use crossdiff::experiment::store::{now, RunStore};

use super::Result;

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    pub command: RunsCommand,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Every run: id, kind, status, seconds of work, model (and broken records).
    List(StoreArg),
    /// Removes runs not updated for --older-than days (every run with --all).
    Clean(CleanArgs),
}

#[derive(Args)]
pub struct StoreArg {
    /// Run store folder (default $CROSSDIFF_RUNS or ~/.cache/crossdiff/runs).
    #[arg(long)]
    pub store: Option<String>,
}

#[derive(Args)]
pub struct CleanArgs {
    #[command(flatten)]
    pub store: StoreArg,
    #[arg(long, required_unless_present = "all")]
    pub older_than: Option<f64>,
    #[arg(long)]
    pub all: bool,
}

pub fn run_runs(args: RunsArgs) -> Result<()> {
    match args.command {
        RunsCommand::List(store) => list(RunStore::locate(store.store.as_deref())),
        RunsCommand::Clean(clean) => {
            let store = RunStore::locate(clean.store.store.as_deref());
            let cutoff = match (clean.all, clean.older_than) {
                (true, _) => None,
                (false, Some(days)) if days >= 0.0 => {
                    Some(now().saturating_sub((days * 86_400.0) as u64))
                }
                _ => return Err("runs clean needs --older-than DAYS (at least 0) or --all".into()),
            };
            let removed = store.remove_older_than(cutoff)?;
            println!(
                "removed {} runs from {}",
                removed.len(),
                store.root.display()
            );
            Ok(())
        }
    }
}

fn list(store: RunStore) -> Result<()> {
    let listing = store.list()?;
    println!("{} runs in {}", listing.runs.len(), store.root.display());
    for r in listing.runs {
        println!(
            "{}  {:<9} {:<11} {:>8.1} s  {}",
            r.id, r.kind, r.status, r.seconds, r.model
        );
    }
    for b in &listing.broken {
        println!(
            "{}  broken record: {} (runs clean removes it)",
            b.id, b.message
        );
    }
    Ok(())
}
