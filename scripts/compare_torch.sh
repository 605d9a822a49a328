#!/usr/bin/env bash
# Runs the tiny-model throughput benchmark in crossdiff (`crossdiff bench lm`) and in PyTorch
# (transformers' Qwen2ForCausalLM loaded from the very same model folder), and prints both
# figures and their ratios. Also checks that transformers reads the folder crossdiff wrote
# (config, safetensors, tokenizer, chat template) and computes the same logits.
#
#   scripts/compare_torch.sh [WORK_DIR]        (default: target/compare-torch)
#
# Installs CPU PyTorch (the PyTorch CPU index where reachable, else PyPI), transformers and
# safetensors into WORK_DIR/venv. Both sides use the same thread count (THREADS, default: all
# cores).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/compare-torch}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/crossdiff-target}
export CARGO_TARGET_DIR=$TARGET
THREADS=${THREADS:-$(nproc)}
mkdir -p "$WORK"

cargo build --release --quiet
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch \
        || "$WORK/venv/bin/pip" install --quiet torch
    "$WORK/venv/bin/pip" install --quiet transformers safetensors
fi

RAYON_NUM_THREADS=$THREADS "$TARGET/release/crossdiff" bench lm --cache "$WORK" | tee "$WORK/crossdiff.txt"
grep '^lm-bench-json ' "$WORK/crossdiff.txt" | cut -d' ' -f2- >"$WORK/crossdiff.json"
"$WORK/venv/bin/python" scripts/compare_torch.py "$WORK/crossdiff.json" --threads "$THREADS"
