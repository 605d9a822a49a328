//! The `crossdiff` command line.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use crossdiff::data::{self, sample, Format, IngestOptions};
use crossdiff::shell::{OutputFormat, Shell};

#[derive(Parser)]
#[command(
    name = "crossdiff",
    version,
    about = "Difficulty-generalization analytics for language models, in SQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SQL shell; with -c or -f, runs statements and exits.
    Sql(SqlArgs),
    /// Converts result files to the canonical responses table (.parquet) or py-irt jsonlines (.jsonl).
    Ingest(IngestArgs),
    /// The main job: the paper's study on the shipped arithmetic leaderboard and base model
    /// (data/demo): IRT difficulty, ten bins, the generalization matrix, plots (queries/demo.sql).
    Demo(DemoArgs),
    /// Writes the generated responses sample (responses.parquet, items.parquet) to a folder.
    Sample(SampleArgs),
    /// Simulates IRT responses with known parameters and writes them as Parquet.
    Simulate(SimulateArgs),
    /// Benchmarks: `bench irt` fits the scales and the real leaderboards; `bench lm`
    /// measures training, scoring and generation tokens/s of a tiny model.
    Bench(BenchArgs),
    /// Writes a tiny random-init Qwen2-architecture model folder with a BPE tokenizer trained
    /// on the given text files (the defaults make about 5 M parameters).
    TinyModel(TinyModelArgs),
    /// Fine-tunes a model folder on prompt/response pairs (Ctrl-C stops at a checkpoint; the
    /// same command resumes).
    FineTune(FineTuneArgs),
    /// The run store of fine-tunes and evaluations: `runs list`, `runs clean --older-than DAYS`.
    Runs(RunsArgs),
    /// Pictures (SVG and PNG): `plot matrix` draws a generalization-matrix result as the
    /// paper's heatmap plus per-bin zero-shot accuracy; `plot gap-profile` draws a gap_profile
    /// result (mean delta by train/eval gap with its interval band); `plot difficulty` draws
    /// difficulty histograms per benchmark.
    Plot(PlotArgs),
    /// Trains the tiny-model zoo on the synthetic arithmetic benchmark and writes its
    /// leaderboard (responses.parquet) and the items (items.parquet) to a folder.
    Zoo(ZooArgs),
}

#[derive(Args)]
struct ZooArgs {
    /// Output folder (items.parquet, responses.parquet, zoo.json, models/).
    #[arg(long)]
    out: PathBuf,
    /// The recipe as a zoo.json file (default: the recipe of the shipped data/demo).
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Fields to change in the recipe, as JSON (per_level, max_digits, item_seed, sizes,
    /// snapshots, steps, spacing, batch_size, learning_rate, seed, base: {size, steps,
    /// train_per_level}).
    #[arg(long)]
    options: Option<String>,
}

#[derive(Args)]
struct PlotArgs {
    /// matrix, gap-profile or difficulty.
    what: String,
    /// A Parquet file with the result (matrix: train_bin, eval_bin, delta[, zero_shot_accuracy];
    /// gap-profile: a gap_profile result;
    /// difficulty: difficulty[, benchmark]).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Or a query that yields it (with --data to register tables).
    #[arg(long)]
    query: Option<String>,
    #[arg(long, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// Output path without extension (matrix) or folder (difficulty).
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    title: Option<String>,
}

#[derive(Args)]
struct RunsArgs {
    /// list, or clean (removes runs not updated for --older-than days; all with --all).
    action: String,
    /// Run store folder (default $CROSSDIFF_RUNS or ~/.cache/crossdiff/runs).
    #[arg(long)]
    store: Option<String>,
    #[arg(long)]
    older_than: Option<f64>,
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
struct FineTuneArgs {
    /// Base model folder (Hugging Face layout).
    #[arg(long)]
    base: PathBuf,
    /// Parquet file with `prompt` and `response` columns.
    #[arg(long)]
    train: PathBuf,
    /// Output model folder.
    #[arg(long)]
    out: PathBuf,
    /// Training options as JSON (epochs, learning_rate, batch_size, gradient_accumulation,
    /// max_seq_len, seed, lora: {rank, alpha, dropout, target_modules}, ...); the defaults
    /// are the paper's.
    #[arg(long)]
    options: Option<String>,
    /// Train on raw prompt + response text instead of the model's chat template.
    #[arg(long)]
    no_chat_template: bool,
}

#[derive(Args)]
struct TinyModelArgs {
    /// Output model folder (replaced if present).
    #[arg(long)]
    out: PathBuf,
    /// Text files to train the tokenizer on (one example per line); without any, a generated
    /// arithmetic corpus.
    #[arg(long)]
    text: Vec<PathBuf>,
    /// Model shape and seed as JSON, e.g. '{"hidden_size": 128, "vocab_size": 2048}'.
    #[arg(long)]
    options: Option<String>,
}

#[derive(Args)]
struct SimulateArgs {
    #[arg(long, default_value_t = 1000)]
    models: usize,
    #[arg(long, default_value_t = 200)]
    items: usize,
    /// 1pl or 2pl.
    #[arg(long, default_value = "1pl")]
    model: String,
    /// Share of unobserved (model, item) cells.
    #[arg(long, default_value_t = 0.1)]
    missing: f64,
    /// Share of near-trivial and near-impossible items.
    #[arg(long, default_value_t = 0.0)]
    extreme_items: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output .parquet (responses with true_ability, true_difficulty, true_discrimination).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct BenchArgs {
    /// What to benchmark: irt.
    what: String,
    /// Folder for the simulated data (made once, reused).
    #[arg(long, default_value = "target/crossdiff-bench")]
    cache: PathBuf,
    /// Real responses to fit too (default ../shared/data/oll_v1/responses.parquet when present).
    #[arg(long)]
    real: Option<PathBuf>,
    /// Only the first N cases (the large ones take a while).
    #[arg(long)]
    cases: Option<usize>,
    /// Only cases whose name contains this text (irt: data or fit, e.g. "12032", "vi", "oll_v1"; lm: "5m" or "36m").
    #[arg(long)]
    only: Option<String>,
    /// Folder of reference fits of the real data written by scripts/compare_irt.sh
    /// (hier_BENCHMARK.parquet, vague_BENCHMARK_s1.parquet).
    #[arg(long)]
    references: Option<PathBuf>,
    /// Internal: run case K in this process.
    #[arg(long, hide = true)]
    case: Option<usize>,
    /// Internal: prepare case K's data in this process.
    #[arg(long, hide = true)]
    prepare: bool,
}

#[derive(Args)]
struct SqlArgs {
    /// Register every Parquet table under DIR (DIR/x.parquet as x, DIR/s/x.parquet as s.x).
    #[arg(long, value_name = "DIR")]
    data: Vec<PathBuf>,
    /// Run these statements (several allowed), then exit.
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    commands: Vec<String>,
    /// Run the statements in these files (several allowed), then exit.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Rows the table format shows of each result (0: all).
    #[arg(long, default_value_t = crossdiff::shell::DEFAULT_MAX_ROWS)]
    maxrows: usize,
}

#[derive(Args)]
struct IngestArgs {
    /// Input files or folders.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Input format: lm_eval, lm_eval_parquet, parquet, csv, wide_csv, wide_parquet, pyirt.
    #[arg(long)]
    format: String,
    /// Output file: .parquet (canonical table) or .jsonl (py-irt jsonlines); replaced atomically.
    #[arg(long)]
    out: PathBuf,
    /// lm-eval metric that means "correct" (default acc).
    #[arg(long)]
    metric: Option<String>,
    /// lm-eval answer filter to keep (e.g. strict-match), for tasks that log one record per filter.
    #[arg(long)]
    filter: Option<String>,
    /// Model id for every row (lm-eval files of one model).
    #[arg(long)]
    model_id: Option<String>,
    /// Benchmark name for every row.
    #[arg(long)]
    benchmark: Option<String>,
    /// How to combine duplicate (model, benchmark, item) rows: error, first, last, any, all.
    #[arg(long)]
    on_duplicate: Option<String>,
    #[arg(long)]
    model_column: Option<String>,
    #[arg(long)]
    benchmark_column: Option<String>,
    #[arg(long)]
    item_column: Option<String>,
    #[arg(long)]
    correct_column: Option<String>,
}

#[derive(Args)]
struct DemoArgs {
    /// The study's inputs (items.parquet, responses.parquet, models/base); default: data/demo
    /// of the current folder, else of the crossdiff checkout this binary was built from.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Where the outputs go.
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// Output format of the printed results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Rows the table format shows of each result (0: all).
    #[arg(long, default_value_t = crossdiff::shell::DEFAULT_MAX_ROWS)]
    maxrows: usize,
}

#[derive(Args)]
struct SampleArgs {
    #[arg(long, default_value = "data/sample")]
    out: PathBuf,
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(crossdiff::session::QUERY_STACK_BYTES)
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Sql(args) => run_sql(args).await,
            Command::Ingest(args) => run_ingest(args),
            Command::Demo(args) => run_demo(args).await,
            Command::Sample(args) => write_sample(&args.out, args.seed).map(|_| ()),
            Command::Simulate(args) => run_simulate(args),
            Command::Bench(args) => run_bench(args).await,
            Command::TinyModel(args) => run_tiny_model(args),
            Command::FineTune(args) => run_fine_tune(args).await,
            Command::Runs(args) => run_runs(args),
            Command::Plot(args) => run_plot(args).await,
            Command::Zoo(args) => run_zoo(args),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_sql(args: SqlArgs) -> Result<(), String> {
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
            return shell.repl().await.map_err(|e| e.to_string());
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

fn run_ingest(args: IngestArgs) -> Result<(), String> {
    let format = Format::parse(&args.format).map_err(|e| e.to_string())?;
    let mut opts = IngestOptions::default();
    let flags = [
        ("metric", &args.metric),
        ("filter", &args.filter),
        ("model_id", &args.model_id),
        ("benchmark", &args.benchmark),
        ("on_duplicate", &args.on_duplicate),
        ("model_column", &args.model_column),
        ("benchmark_column", &args.benchmark_column),
        ("item_column", &args.item_column),
        ("correct_column", &args.correct_column),
    ];
    for (key, value) in flags {
        if let Some(v) = value {
            let flag = format!("--{}", key.replace('_', "-"));
            // `--metric '{"gsm8k": "exact_match"}'`: a value per task.
            let value = if v.trim_start().starts_with('{') {
                serde_json::from_str(v).map_err(|e| format!("{flag}: malformed JSON: {e}"))?
            } else {
                serde_json::Value::String(v.clone())
            };
            opts.set(key, &value, format)
                .map_err(|e| format!("{flag}: {e}"))?;
        }
    }
    // Check the output path before reading anything.
    data::OutputFormat::from_path(&args.out).map_err(|e| e.to_string())?;
    let batch = data::read_responses(&args.paths, format, &opts).map_err(|e| e.to_string())?;
    data::write_responses(&args.out, &batch).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} responses to {}",
        batch.num_rows(),
        args.out.display()
    );
    Ok(())
}

/// Writes the generated sample; returns the folder.
fn write_sample(dir: &Path, seed: u64) -> Result<PathBuf, String> {
    let s = sample::generate(sample::SampleSpec {
        seed,
        ..Default::default()
    });
    data::files::write_parquet(&dir.join("responses.parquet"), &[s.responses])
        .map_err(|e| e.to_string())?;
    data::files::write_parquet(&dir.join("items.parquet"), &[s.items])
        .map_err(|e| e.to_string())?;
    eprintln!("wrote the generated sample to {}", dir.display());
    Ok(dir.to_path_buf())
}

const DEMO_SQL: &str = include_str!("../queries/demo.sql");

async fn run_demo(args: DemoArgs) -> Result<(), String> {
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
            ));
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

fn run_simulate(args: SimulateArgs) -> Result<(), String> {
    use crossdiff::irt::simulate::{simulate, SimulationSpec};
    let spec = SimulationSpec {
        n_models: args.models,
        n_items: args.items,
        model: crossdiff::irt::IrtModel::parse(&args.model).map_err(|e| e.to_string())?,
        missing: args.missing,
        extreme_items: args.extreme_items,
        seed: args.seed,
    };
    spec.validate().map_err(|e| {
        format!("crossdiff simulate (--models, --items, --missing, --extreme-items): {e}")
    })?;
    let batch = simulate(spec).to_batch("sim");
    data::files::write_parquet(&args.out, std::slice::from_ref(&batch))
        .map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} simulated responses to {}",
        batch.num_rows(),
        args.out.display()
    );
    Ok(())
}

fn run_tiny_model(args: TinyModelArgs) -> Result<(), String> {
    use crossdiff::lm::tiny::{create_tiny_model, TinySpec};
    let spec: TinySpec = match &args.options {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("--options: {e}"))?,
        None => TinySpec::default(),
    };
    let texts: Vec<String> = if args.text.is_empty() {
        crossdiff::lm::bench::bench_corpus(8000, 1)
    } else {
        let mut texts = Vec::new();
        for path in &args.text {
            let body =
                std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            texts.extend(
                body.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(String::from),
            );
        }
        texts
    };
    let made = create_tiny_model(&args.out, &texts, &spec).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} parameters, vocabulary {})",
        args.out.display(),
        made.parameters,
        made.vocab_size
    );
    Ok(())
}

async fn run_bench(args: BenchArgs) -> Result<(), String> {
    use crossdiff::bench;
    if args.what == "lm" {
        return run_lm_bench(&args);
    }
    if args.what != "irt" {
        return Err(format!(
            "unknown benchmark `{}`; available: irt, lm",
            args.what
        ));
    }
    let real = args.real.clone().or_else(|| {
        let p = PathBuf::from("../shared/data/oll_v1/responses.parquet");
        p.exists().then_some(p)
    });
    let mut cases = bench::default_cases(real.as_deref());
    if let Some(n) = args.cases {
        cases.truncate(n);
    }
    let selected: Vec<usize> = (0..cases.len())
        .filter(|&k| {
            args.only.as_ref().is_none_or(|text| {
                let (case, spec) = &cases[k];
                bench::case_name(case, None).contains(text.as_str())
                    || spec.label().contains(text.as_str())
            })
        })
        .collect();
    std::fs::create_dir_all(&args.cache).map_err(|e| format!("{}: {e}", args.cache.display()))?;
    if let Some(k) = args.case {
        let (case, spec) = cases.get(k).ok_or_else(|| format!("no case {k}"))?;
        if args.prepare {
            return bench::prepare(case, &args.cache);
        }
        for row in bench::run_case(case, spec, &args.cache, args.references.as_deref()).await? {
            println!("{row}");
        }
        return Ok(());
    }
    // Each case in a process of its own, so peak memory is the case's own.
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let child = |k: usize, prepare: bool| {
        let mut c = std::process::Command::new(&exe);
        c.args(["bench", "irt", "--cache"])
            .arg(&args.cache)
            .args(["--case", &k.to_string()]);
        if let Some(r) = &real {
            c.arg("--real").arg(r);
        }
        if let Some(r) = &args.references {
            c.arg("--references").arg(r);
        }
        if prepare {
            c.arg("--prepare");
        }
        c.stderr(std::process::Stdio::inherit());
        c.output().map_err(|e| e.to_string())
    };
    println!("{}", bench::HEADER);
    for k in selected {
        let case = &cases[k].0;
        if bench::needs_preparing(case, &args.cache) {
            eprintln!("preparing {case:?} (once) ...");
            let out = child(k, true)?;
            if !out.status.success() {
                return Err(format!("preparing case {k} failed"));
            }
        }
        let out = child(k, false)?;
        if !out.status.success() {
            return Err(format!("case {k} failed"));
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

fn run_lm_bench(args: &BenchArgs) -> Result<(), String> {
    use crossdiff::lm::bench::{cases, run};
    std::fs::create_dir_all(&args.cache).map_err(|e| format!("{}: {e}", args.cache.display()))?;
    for case in cases() {
        if args
            .only
            .as_ref()
            .is_some_and(|only| !case.name.contains(only.as_str()))
        {
            continue;
        }
        let spec = &case.spec;
        let r = run(&args.cache, &case).map_err(|e| e.to_string())?;
        println!(
            "model {}: {} parameters, vocabulary {}, {} threads, CPU f32",
            case.name, r.parameters, r.vocab_size, r.threads
        );
        println!(
            "train     {:>9.0} tokens/s  (full fine-tuning, batch {} x {} tokens, AdamW)",
            r.train_tokens_per_s, spec.batch, spec.seq_len
        );
        println!(
            "score     {:>9.0} tokens/s  (log-likelihood forward, batch {} x {} tokens)",
            r.score_tokens_per_s, spec.batch, spec.seq_len
        );
        println!(
            "generate  {:>9.0} tokens/s  (greedy with KV cache, {} prompts x {} new tokens)",
            r.generate_tokens_per_s, spec.generate_prompts, spec.new_tokens
        );
        println!(
            "lm-bench-json {}",
            serde_json::to_string(&r).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

async fn run_fine_tune(args: FineTuneArgs) -> Result<(), String> {
    use crossdiff::datafusion::arrow::array::{Array, StringArray};
    use crossdiff::datafusion::arrow::compute::cast;
    use crossdiff::datafusion::arrow::datatypes::DataType;
    use crossdiff::lm::tokenizer::TextTokenizer;
    use crossdiff::lm::train::{encode_examples, fine_tune, Control, SftOptions};

    let options: SftOptions = match &args.options {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("--options: {e}"))?,
        None => SftOptions::default(),
    };
    options.validate().map_err(|e| format!("--options: {e}"))?;
    let ctx = crossdiff::new_context();
    let path = args.train.display().to_string();
    ctx.register_parquet("train", &path, Default::default())
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let batches = ctx
        .sql("SELECT prompt, response FROM train")
        .await
        .map_err(|e| format!("{path}: needs `prompt` and `response` columns: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("{path}: {e}"))?;
    let mut pairs = Vec::new();
    for batch in &batches {
        let text = |i: usize| -> Result<StringArray, String> {
            let a = cast(batch.column(i), &DataType::Utf8).map_err(|e| e.to_string())?;
            Ok(a.as_any()
                .downcast_ref::<StringArray>()
                .expect("utf8")
                .clone())
        };
        let (p, r) = (text(0)?, text(1)?);
        for row in 0..batch.num_rows() {
            if p.is_null(row) || r.is_null(row) {
                return Err(format!(
                    "{path}: row {} has a NULL prompt or response",
                    pairs.len() + 1
                ));
            }
            pairs.push((p.value(row).to_string(), r.value(row).to_string()));
        }
    }
    let tokenizer = TextTokenizer::load(&args.base).map_err(|e| e.to_string())?;
    let examples =
        encode_examples(&tokenizer, &pairs, !args.no_chat_template).map_err(|e| e.to_string())?;
    let device = crossdiff::lm::device::select();
    let cancel = ctrl_c_cancel("stopping at the end of this step; the same command resumes");
    let control = Control {
        cancel,
        stop_after_steps: None,
        progress: true,
    };
    let (base, out) = (args.base.clone(), args.out.clone());
    let report = tokio::task::spawn_blocking(move || {
        fine_tune(&base, &examples, &options, &out, &device, &control)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    if report.completed {
        println!(
            "wrote {}: {} steps over {} epochs, loss {:.4} -> {:.4}, {} tokens in {:.1} s",
            report.output.display(),
            report.steps,
            report.epochs,
            report.losses.first().copied().unwrap_or(f64::NAN),
            report.final_loss,
            report.tokens,
            report.seconds
        );
        Ok(())
    } else {
        Err(format!(
            "interrupted after step {} of {}; a checkpoint is in {}; run the same command to resume",
            report.steps,
            report.total_steps,
            crossdiff::lm::train::checkpoint_dir(&args.out).display()
        ))
    }
}

fn run_runs(args: RunsArgs) -> Result<(), String> {
    use crossdiff::experiment::store::{now, RunStore};
    let store = RunStore::locate(args.store.as_deref());
    match args.action.as_str() {
        "list" => {
            let listing = store.list().map_err(|e| e.to_string())?;
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
        "clean" => {
            let cutoff = match (args.all, args.older_than) {
                (true, _) => None,
                (false, Some(days)) if days >= 0.0 => {
                    Some(now().saturating_sub((days * 86_400.0) as u64))
                }
                _ => return Err("runs clean needs --older-than DAYS or --all".into()),
            };
            let removed = store.remove_older_than(cutoff).map_err(|e| e.to_string())?;
            println!(
                "removed {} runs from {}",
                removed.len(),
                store.root.display()
            );
            Ok(())
        }
        other => Err(format!(
            "unknown runs action `{other}`; expected list or clean"
        )),
    }
}

async fn run_plot(args: PlotArgs) -> Result<(), String> {
    use crossdiff::plot;
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
    let batches = ctx
        .sql(&query)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let written = match args.what.as_str() {
        "matrix" => {
            let grid = plot::MatrixGrid::from_batches(&batches).ok_or(
                "the result needs train_bin, eval_bin and delta columns (a generalization_matrix result)",
            )?;
            let title = args
                .title
                .as_deref()
                .unwrap_or("Accuracy change vs zero-shot");
            // The text heatmap first: it needs no font.
            print!(
                "{}",
                plot::terminal_heatmap(&grid, std::io::stdout().is_terminal())
            );
            plot::write_matrix(&grid, &args.out, title)?
        }
        "gap-profile" => {
            let profile = plot::GapProfilePoints::from_batches(&batches).ok_or(
                "the result needs measure, gap, estimate, ci_low and ci_high columns (a gap_profile result)",
            )?;
            let title = args
                .title
                .as_deref()
                .unwrap_or("Accuracy change vs zero-shot by train/eval gap");
            plot::write_gap_profile(&profile, &args.out, title)?
        }
        "difficulty" => {
            plot::write_difficulty(&plot::difficulties_by_benchmark(&batches)?, &args.out)?
        }
        other => {
            return Err(format!(
                "unknown plot `{other}`; expected matrix, gap-profile or difficulty"
            ))
        }
    };
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn run_zoo(args: ZooArgs) -> Result<(), String> {
    use crossdiff::experiment::zoo::{write_zoo, ZooControl, ZooSpec};
    let mut spec = match &args.spec {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("{}: {e}", path.display()))
            .and_then(|text| {
                serde_json::from_str::<ZooSpec>(&text)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })?,
        None => ZooSpec::default(),
    };
    if let Some(json) = &args.options {
        let mut value = serde_json::to_value(&spec).expect("a spec serializes");
        let changes: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("--options: {e}"))?;
        let serde_json::Value::Object(changes) = changes else {
            return Err("--options must be a JSON object".into());
        };
        for (k, v) in changes {
            value[k] = v;
        }
        spec = serde_json::from_value(value).map_err(|e| format!("--options: {e}"))?;
    }
    let started = std::time::Instant::now();
    let control = ZooControl {
        cancel: ctrl_c_cancel("stopping at the end of this step"),
        progress: true,
        ..Default::default()
    };
    let zoo = write_zoo(&args.out, &spec, &control).map_err(|e| match e {
        crossdiff::experiment::ExperimentError::Cancelled(_) => {
            format!("{e}; the same command resumes after the last finished training run")
        }
        other => other.to_string(),
    })?;
    let models: std::collections::BTreeSet<&str> =
        zoo.responses.iter().map(|r| r.model_id.as_str()).collect();
    println!(
        "wrote {} responses of {} models on {} items to {} in {:.1} s",
        zoo.responses.len(),
        models.len(),
        zoo.items.len(),
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    if let Some(base) = &zoo.base {
        println!("base model: {}", base.display());
    }
    Ok(())
}

/// A cancel flag that Ctrl-C sets, saying `message` (work stops between steps).
fn ctrl_c_cancel(message: &'static str) -> crossdiff::experiment::Cancel {
    let cancel = crossdiff::experiment::Cancel::default();
    let flag = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\n{message}");
            flag.set();
        }
    });
    cancel
}
