#!/usr/bin/env bash
# crossdiff `evaluate` against lm-eval-harness, item by item, on the same model folder: local
# multiple-choice and generate_until tasks, lm-eval with and without --apply_chat_template,
# lm-eval's samples ingested back. Prints per-metric item agreement; exits non-zero when any
# item differs.
#
#   scripts/compare_lmeval.sh [WORK_DIR] [MODEL_DIR]
#       WORK_DIR  default target/compare-lmeval
#       MODEL_DIR default data/demo/models/base (the demo's base model: it answers sums)
#
# Installs lm-eval-harness 0.4.13, accelerate and transformers into WORK_DIR/venv (PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/compare-lmeval}
MODEL=${2:-data/demo/models/base}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/crossdiff-target}
export CARGO_TARGET_DIR=$TARGET
THREADS=${THREADS:-$(nproc)}
mkdir -p "$WORK"

cargo build --release --quiet
if [ ! -x "$WORK/venv/bin/lm_eval" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet "lm-eval==0.4.13" accelerate transformers safetensors
fi
# Runs from an earlier comparison are not reused: both sides compute afresh.
rm -rf "$WORK/runs" "$WORK/lmeval_plain" "$WORK/lmeval_chat"
RAYON_NUM_THREADS=$THREADS "$WORK/venv/bin/python" scripts/compare_lmeval.py \
    --crossdiff "$TARGET/release/crossdiff" --model "$MODEL" --work "$WORK" --threads "$THREADS"
