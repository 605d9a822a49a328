//! The language-model engine through SQL and the command line: the tiny-model factory.

use super::common::{self, sql, sql_err};

use std::process::Command;

use crossdiff::datafusion::arrow::array::UInt64Array;
use crossdiff::lm::tokenizer::TextTokenizer;

const SMALL: &str = r#"{"vocab_size": 300, "hidden_size": 32, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 64}"#;

#[tokio::test]
async fn tiny_model_from_sql_writes_a_loadable_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    let ctx = crossdiff::new_context();
    let q = format!(
        "SELECT * FROM tiny_model('{}', \
         'SELECT ''Question '' || CAST(v AS VARCHAR) || '': how many?'' AS text \
          FROM (VALUES (1), (2), (3), (4), (5), (6)) AS t(v)', '{}')",
        dir.display(),
        SMALL.replace('\n', " ")
    );
    let batches = sql(&ctx, &q).await;
    assert_eq!(batches[0].num_rows(), 1, "{}", common::table(&batches));
    let parameters = batches[0]
        .column(1)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .value(0);
    let vocab = batches[0]
        .column(2)
        .as_any()
        .downcast_ref::<UInt64Array>()
        .unwrap()
        .value(0) as usize;
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(dir.join(file).exists(), "{file}");
    }
    let tokenizer = TextTokenizer::load(&dir).unwrap();
    assert_eq!(tokenizer.vocab_size(), vocab);
    let (model, _) =
        crossdiff::lm::files::load(&dir, candle_core::DType::F32, &candle_core::Device::Cpu)
            .unwrap();
    assert_eq!(model.config.vocab_size, vocab);
    // Tied embeddings: vocab x 32, plus one layer's projections and norms.
    assert!(parameters as usize > vocab * 32, "{parameters}");
    let chat = tokenizer
        .chat_template()
        .unwrap()
        .render(&[crossdiff::lm::template::Message::user("2+2?")], true, &[])
        .unwrap();
    assert_eq!(
        chat,
        "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
    );

    let err = sql_err(
        &ctx,
        &format!(
            "SELECT * FROM tiny_model('{}', 't', '{{\"layers\": 2}}')",
            dir.display()
        ),
    )
    .await;
    assert!(err.contains("unknown field `layers`"), "{err}");
    let err = sql_err(
        &ctx,
        &format!(
            "SELECT * FROM tiny_model('{}', 'SELECT 1 AS n')",
            dir.display()
        ),
    )
    .await;
    assert!(err.contains("no `text` column"), "{err}");
}

#[test]
fn tiny_model_command() {
    let tmp = tempfile::tempdir().unwrap();
    let text = tmp.path().join("corpus.txt");
    std::fs::write(&text, "one two three\nfour five six\none two\n").unwrap();
    let out = tmp.path().join("m");
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["tiny-model", "--out"])
        .arg(&out)
        .arg("--text")
        .arg(&text)
        .args(["--options", SMALL])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("parameters"));
    assert!(out.join("model.safetensors").exists());
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["tiny-model", "--out"])
        .arg(&out)
        .args([
            "--options",
            "{\"hidden_size\": 30, \"num_attention_heads\": 4}",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("hidden_size 30"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn fine_tune_command_trains_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    let ok = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["tiny-model", "--out"])
        .arg(&base)
        .args(["--options", SMALL])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let train = tmp.path().join("train.parquet");
    let ctx = crossdiff::new_context();
    sql(
        &ctx,
        &format!(
            "COPY (SELECT 'What is ' || CAST(v AS VARCHAR) || '+1?' AS prompt, \
             CAST(v + 1 AS VARCHAR) AS response FROM (VALUES (1), (2), (3), (4), (5)) AS t(v)) \
             TO '{}' STORED AS PARQUET",
            train.display()
        ),
    )
    .await;
    let out = tmp.path().join("tuned");
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["fine-tune", "--base"])
        .arg(&base)
        .arg("--train")
        .arg(&train)
        .arg("--out")
        .arg(&out)
        .args([
            "--options",
            r#"{"epochs": 2, "batch_size": 2, "gradient_accumulation": 1, "learning_rate": 1e-3}"#,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("6 steps over 2 epochs"), "{stdout}");
    assert!(out.join("model.safetensors").exists() && out.join("tokenizer.json").exists());
    let o = Command::new(env!("CARGO_BIN_EXE_crossdiff"))
        .args(["fine-tune", "--base"])
        .arg(&base)
        .arg("--train")
        .arg(&train)
        .arg("--out")
        .arg(&out)
        .args(["--options", r#"{"epochs": 0}"#])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("epochs must be at least 1"));
}
