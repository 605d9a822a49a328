#!/usr/bin/env bash
# crossdiff's math_answer / math_equal against lm-eval-harness's Minerva-math normaliser, text
# by text, on tests/fixtures/math_answers.tsv. Prints the agreement; exits non-zero on any
# difference. Uses the lm-eval install of scripts/compare_lmeval.sh (WORK_DIR/venv), making
# it when missing.
#
#   scripts/compare_math_equal.sh [WORK_DIR]      (default target/compare-lmeval)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/compare-lmeval}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/crossdiff-target}
export CARGO_TARGET_DIR=$TARGET
mkdir -p "$WORK"
cargo build --release --quiet
if [ ! -x "$WORK/venv/bin/lm_eval" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet "lm-eval==0.4.13" accelerate transformers safetensors
fi
"$WORK/venv/bin/python" scripts/compare_math_equal.py --crossdiff "$TARGET/release/crossdiff"
