//! `crossdiff demo`: the main job, queries/demo.sql on the shipped data.

use std::path::{Path, PathBuf};

use clap::Args;
use crossdiff::shell::{OutputFormat, Shell};

use super::Result;

#[derive(Args)]
pub struct DemoArgs {
    /// The study's inputs (items.parquet, responses.parquet, models/base); default: data/demo
    /// of the current folder, else of the crossdiff checkout this binary was built from.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Where the outputs go.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Output format of the printed results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Rows the table format shows of each result (0: all).
    #[arg(long, default_value_t = crossdiff::shell::DEFAULT_MAX_ROWS)]
    pub maxrows: usize,
}

const DEMO_SQL: &str = include_str!("../../queries/demo.sql");

pub async fn run_demo(args: DemoArgs) -> Result<()> {
    let started = std::time::Instant::now();
    let data = match args.data {
        Some(dir) => dir,
        None => [
            PathBuf::from("data/demo"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo"),
        ]
        .into_iter()
        .find(|d| d.join("responses.parquet").exists())
        .ok_or(
            "no data/demo here or in the crossdiff checkout; `crossdiff zoo --out data/demo` \
             regenerates it",
        )?,
    };
    for needed in [
        "responses.parquet",
        "items.parquet",
        "models/base/config.json",
    ] {
        if !data.join(needed).exists() {
            return Err(format!(
                "{} is missing; `crossdiff zoo --out {}` regenerates the demo's inputs",
                data.join(needed).display(),
                data.display()
            )
            .into());
        }
    }
    // The script reads model folders under crossdiff.data_dir, keeps runs in
    // crossdiff.run_store and writes to the working directory: the output folder.
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let absolute = |p: &Path| {
        p.canonicalize()
            .map_err(|e| format!("{}: {e}", p.display()))
    };
    let (data_abs, out_abs) = (absolute(&data)?, absolute(&args.out)?);
    let ctx = crossdiff::new_context();
    crossdiff::register_data_dir(&ctx, &data_abs)
        .await
        .map_err(|e| e.to_string())?;
    for (key, value) in [
        ("crossdiff.data_dir", data_abs.display().to_string()),
        (
            "crossdiff.run_store",
            out_abs.join("runs").display().to_string(),
        ),
    ] {
        crossdiff::settings::set(&ctx, key, &value).map_err(|e| e.to_string())?;
    }
    std::env::set_current_dir(&out_abs).map_err(|e| format!("{}: {e}", out_abs.display()))?;
    let mut shell = Shell::new(ctx, args.format).with_max_rows(args.maxrows);
    shell
        .run_script(DEMO_SQL, "queries/demo.sql", &mut std::io::stdout())
        .await
        .map_err(|e| e.to_string())?;
    let slash = |p: &Path| p.display().to_string().trim_end_matches('/').to_string();
    let out = slash(&args.out);
    eprintln!(
        "\ndemo finished in {:.1} s\ninputs:  {d}/items.parquet, {d}/responses.parquet, {d}/models/base",
        started.elapsed().as_secs_f64(),
        d = slash(&data)
    );
    let outputs = [
        (
            "item_difficulty.parquet",
            "item difficulty, bin and proxies",
        ),
        (
            "matrix.parquet",
            "the generalization matrix (all items evaluated)",
        ),
        ("matrix_held_out.parquet", "the same on unseen items only"),
        (
            "matrix_heatmap.png, .svg",
            "its heatmap (matrix_held_out_heatmap: the other)",
        ),
        ("matrix_zero_shot.png, .svg", "zero-shot accuracy per bin"),
        (
            "gap_profile.parquet",
            "mean delta by train/eval gap with intervals, and the slope",
        ),
        (
            "gap_profile.png, .svg",
            "its picture (gap_profile_held_out: unseen items)",
        ),
        (
            "difficulty_arithmetic.png, .svg",
            "the difficulty histogram",
        ),
        (
            "runs/",
            "the fine-tunes and evaluations (a re-run reuses them)",
        ),
    ];
    for (k, (file, what)) in outputs.iter().enumerate() {
        let head = if k == 0 { "outputs:" } else { "" };
        eprintln!("{head:<8} {:<42} {what}", format!("{out}/{file}"));
    }
    Ok(())
}
