//! Seeded byte mutations of every ingest format (Parquet, long CSV, wide CSV, lm-eval JSONL,
//! leaderboard v2 JSONL and JSON arrays, py-irt JSONL) through `read_responses`: whatever the
//! bytes, ingest returns rows or an error that names the file, and never panics or hangs.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::common::fixture;
use crossdiff::data::{self, Format, IngestOptions};

/// Mutations per format: a few hundred each, the whole test well under a minute.
const CASES: u64 = 500;

/// One case may take this long before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(10);

/// Bytes that matter to the parsers: quotes, separators, newlines, braces, invalid UTF-8.
const INTERESTING: &[u8] = b"\"',\n\r{}[]:0123456789-.\\\x00\xff\xef\xbb\xbf";

fn mutate(base: &[u8], rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if bytes.is_empty() {
            bytes.push(INTERESTING[rng.random_range(0..INTERESTING.len())]);
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..7) {
            0 => bytes[at] ^= 1 << rng.random_range(0..8),
            1 => bytes[at] = rng.random(),
            2 => bytes[at] = INTERESTING[rng.random_range(0..INTERESTING.len())],
            3 => bytes.insert(at, INTERESTING[rng.random_range(0..INTERESTING.len())]),
            4 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at..end);
            }
            5 => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                let copy: Vec<u8> = bytes[at..end].to_vec();
                let to = rng.random_range(0..bytes.len());
                bytes.splice(to..to, copy).for_each(drop);
            }
            _ => bytes.truncate(at),
        }
    }
    bytes
}

/// Reads `input` in a thread of its own: `Ok(rows)` or `Err(message)`; a panic or a read
/// past [`CASE_LIMIT`] fails the test, naming the case.
fn ingest(input: &Path, format: Format, options: &str, case: &str) -> Result<usize, String> {
    let (tx, rx) = mpsc::channel();
    let (input, options) = (input.to_path_buf(), options.to_string());
    std::thread::spawn(move || {
        let outcome = std::panic::catch_unwind(|| {
            let opts = IngestOptions::from_json(&options, format).map_err(|e| e.to_string())?;
            data::read_responses(&[input], format, &opts)
                .map(|b| b.num_rows())
                .map_err(|e| e.to_string())
        });
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => panic!("{case}: ingest panicked"),
        Err(_) => panic!("{case}: ingest took more than {CASE_LIMIT:?}"),
    }
}

/// Runs [`CASES`] mutations of `base`, written to `target` (inside `input`, which is what is
/// read); every error must name `located` (the file, or its folder for lm-eval logs).
fn fuzz(name: &str, base: &[u8], target: &Path, input: &Path, format: Format, options: &str) {
    let started = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(0xF0220 ^ name.len() as u64);
    let located = target.file_name().unwrap().to_string_lossy().into_owned();
    let (mut ok, mut refused) = (0, 0);
    for case in 0..CASES {
        std::fs::write(target, mutate(base, &mut rng)).unwrap();
        let label = format!("{name} case {case}");
        match ingest(input, format, options, &label) {
            Ok(_) => ok += 1,
            Err(message) => {
                refused += 1;
                assert!(
                    message.contains(&located),
                    "{label}: the error does not name {located}: {message}"
                );
            }
        }
    }
    eprintln!(
        "fuzz {name}: {CASES} mutations, {ok} read, {refused} refused with a located message, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn temp_copy(dir: &Path, source: &Path, name: &str) -> (Vec<u8>, PathBuf) {
    let base = std::fs::read(source).unwrap();
    (base, dir.join(name))
}

#[test]
fn mutated_long_and_wide_csv() {
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = temp_copy(dir.path(), &fixture("long.csv"), "long.csv");
    fuzz("long csv", &base, &target, &target, Format::Csv, "");
    let (base, target) = temp_copy(dir.path(), &fixture("wide.csv"), "wide.csv");
    fuzz(
        "wide csv",
        &base,
        &target,
        &target,
        Format::WideCsv,
        r#"{"benchmark": "b"}"#,
    );
}

#[test]
fn mutated_jsonl_logs() {
    let dir = tempfile::tempdir().unwrap();
    let (base, target) = temp_copy(
        dir.path(),
        &fixture("responses.pyirt.jsonl"),
        "responses.pyirt.jsonl",
    );
    fuzz("py-irt jsonl", &base, &target, &target, Format::PyIrt, "");

    // lm-eval logs: a folder of model folders; one file of one model is mutated.
    let model = "meta-llama__Llama-3.2-1B-Instruct";
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(logs.join(model)).unwrap();
    let file = "samples_arc_easy_2024-11-02T08-30-00.000000.jsonl";
    let base = std::fs::read(fixture("lm_eval").join(model).join(file)).unwrap();
    let target = logs.join(model).join(file);
    fuzz("lm-eval jsonl", &base, &target, &logs, Format::LmEval, "");
}

#[test]
fn mutated_parquet() {
    let dir = tempfile::tempdir().unwrap();
    // A canonical table made by ingest itself, so the bytes are real Parquet.
    let opts = IngestOptions::default();
    let batch = data::read_responses(&[fixture("long.csv")], Format::Csv, &opts).unwrap();
    let made = dir.path().join("made.parquet");
    data::files::write_parquet(&made, &[batch]).unwrap();
    let base = std::fs::read(&made).unwrap();
    let target = dir.path().join("responses.parquet");
    fuzz("parquet", &base, &target, &target, Format::Parquet, "");
}

#[test]
fn mutated_leaderboard_v2_details() {
    // A copy of the v2 fixture; one lm-eval 0.4 jsonl file, then one early-run JSON array,
    // mutated in turn while the other models' files stay whole.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("details");
    let source = fixture("leaderboard_v2");
    for model in std::fs::read_dir(&source).unwrap() {
        let model = model.unwrap().path();
        let to = root.join(model.file_name().unwrap());
        std::fs::create_dir_all(&to).unwrap();
        for file in std::fs::read_dir(&model).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
        }
    }
    for rel in [
        "Qwen__Qwen2.5-7B/samples_leaderboard_bbh_navigate_2024-06-26T10-00-00.000000.jsonl",
        "mistralai__Mistral-7B-v0.1/samples_leaderboard_bbh_navigate_2024-06-17T17-37-25.144953.json",
    ] {
        let target = root.join(rel);
        let base = std::fs::read(&target).unwrap();
        fuzz(
            &format!("leaderboard v2 {}", target.extension().unwrap().to_string_lossy()),
            &base,
            &target,
            &root,
            Format::LeaderboardV2,
            r#"{"group": "bbh"}"#,
        );
        std::fs::write(&target, base).unwrap();
    }
}
