//! `crossdiff bench irt|lm|ingest`: the IRT, LM and ingest benchmarks.

use std::path::PathBuf;

use clap::Args;

use super::Result;

#[derive(Args)]
pub struct BenchArgs {
    /// What to benchmark: irt, lm or ingest.
    pub what: String,
    /// ingest: model folders of the synthetic details tree.
    #[arg(long, default_value_t = 2000)]
    pub models: usize,
    /// ingest: task files per model.
    #[arg(long, default_value_t = 20)]
    pub tasks: usize,
    /// ingest: samples per task file.
    #[arg(long, default_value_t = 500)]
    pub samples: usize,
    /// Folder for the simulated data (made once, reused).
    #[arg(long, default_value = "target/crossdiff-bench")]
    pub cache: PathBuf,
    /// Real responses to fit too (default ../shared/data/oll_v1/responses.parquet when present).
    #[arg(long)]
    pub real: Option<PathBuf>,
    /// Only the first N cases (the large ones take a while).
    #[arg(long)]
    pub cases: Option<usize>,
    /// Only cases whose name contains this text (irt: data or fit, e.g. "12032", "vi", "oll_v1"; lm: "5m" or "36m").
    #[arg(long)]
    pub only: Option<String>,
    /// Folder of reference fits of the real data written by scripts/compare_irt.sh
    /// (hier_BENCHMARK.parquet, vague_BENCHMARK_s1.parquet).
    #[arg(long)]
    pub references: Option<PathBuf>,
    /// Internal: run case K in this process.
    #[arg(long, hide = true)]
    pub case: Option<usize>,
    /// Internal: prepare case K's data in this process.
    #[arg(long, hide = true)]
    pub prepare: bool,
}

pub async fn run_bench(args: BenchArgs) -> Result<()> {
    use crossdiff::bench;
    if args.what == "lm" {
        return run_lm_bench(&args);
    }
    if args.what == "ingest" {
        return run_ingest_bench(&args);
    }
    if args.what != "irt" {
        return Err(format!(
            "unknown benchmark `{}`; available: irt, lm, ingest",
            args.what
        )
        .into());
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
            return Ok(bench::prepare(case, &args.cache)?);
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
                return Err(format!("preparing case {k} failed").into());
            }
        }
        let out = child(k, false)?;
        if !out.status.success() {
            return Err(format!("case {k} failed").into());
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

pub fn run_lm_bench(args: &BenchArgs) -> Result<()> {
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

/// Writes the synthetic details tree once, then ingests it in a child process (so the peak
/// memory is the ingest's own) and prints the figures.
pub fn run_ingest_bench(args: &BenchArgs) -> Result<()> {
    use crossdiff::bench_ingest::{ingest, write_tree, IngestFigures, TreeShape};
    let shape = TreeShape {
        models: args.models,
        tasks: args.tasks,
        samples: args.samples,
    };
    std::fs::create_dir_all(&args.cache).map_err(|e| format!("{}: {e}", args.cache.display()))?;
    if args.case.is_some() {
        let figures = ingest(&shape.folder(&args.cache))?;
        println!(
            "{}",
            serde_json::to_string(&figures).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    let root =
        write_tree(shape, &args.cache).map_err(|e| format!("{}: {e}", args.cache.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = std::process::Command::new(exe)
        .args(["bench", "ingest", "--case", "0", "--cache"])
        .arg(&args.cache)
        .args(["--models", &args.models.to_string()])
        .args(["--tasks", &args.tasks.to_string()])
        .args(["--samples", &args.samples.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err("the ingest failed".into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let f: IngestFigures = serde_json::from_str(text.trim()).map_err(|e| format!("{e}: {text}"))?;
    let gib = f.bytes as f64 / (1u64 << 30) as f64;
    println!(
        "ingest leaderboard_v2 {}: {} models x {} tasks x {} samples = {} files, {:.2} GiB",
        root.display(),
        shape.models,
        shape.tasks,
        shape.samples,
        f.files,
        gib
    );
    println!(
        "  {} responses, {} items in {:.1} s: {:.0} MiB/s, {:.2} M responses/s, peak memory {:.0} MiB",
        f.responses,
        f.items,
        f.seconds,
        gib * 1024.0 / f.seconds,
        f.responses as f64 / f.seconds / 1e6,
        f.peak_memory_mib
    );
    Ok(())
}
