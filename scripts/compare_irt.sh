#!/usr/bin/env bash
# Fits the same data with crossdiff and with the reference tools (py-irt, the paper's tool;
# girth's rasch_mml), and prints their times and agreement side by side.
#
#   scripts/compare_irt.sh [WORK_DIR]          (default: target/compare-irt)
#
# Installs py-irt and girth into WORK_DIR/venv (PyPI; CPU PyTorch where the PyTorch index is
# reachable), simulates the 4,500 x 1,319 case with `crossdiff bench irt` if needed, then:
#   1. girth rasch_mml vs crossdiff 1pl on 4,500 x 1,319: whole command, wall and CPU seconds,
#      Spearman and decile agreement with the true difficulties;
#   2. py-irt 1PL (2,000 epochs, lr 0.1, decay 0.9999: the paper's settings) on every
#      benchmark of ../shared/data/oll_v1, hierarchical priors and vague priors with two seeds;
#      crossdiff's vi against each, and py-irt's two vague seeds against each other;
#   3. `crossdiff bench irt --only oll_v1 --references WORK_DIR/pyirt`.
# py-irt takes 1 to 5 minutes per benchmark and prior on 2 cores; the whole script about an
# hour. Set PYIRT=0 to skip py-irt.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/compare-irt}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/crossdiff-target}
export CARGO_TARGET_DIR=$TARGET
CROSSDIFF=$TARGET/release/crossdiff
OLL=../shared/data/oll_v1/responses.parquet
mkdir -p "$WORK/pyirt" "$WORK/fits"

cargo build --release --quiet
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet --index-url https://download.pytorch.org/whl/cpu torch \
        || echo "PyTorch's CPU index is unreachable; py-irt will bring PyTorch from PyPI" >&2
    "$WORK/venv/bin/pip" install --quiet py-irt==0.7.1 girth==0.8.0 pyarrow pandas
fi
PY="$WORK/venv/bin/python scripts/compare_irt.py"

# The simulated case (the benchmark writes it once, with its truth).
SIM=$WORK/sim
mkdir -p "$SIM"
if [ ! -f "$SIM/sim_1pl_4500x1319.parquet" ]; then
    "$CROSSDIFF" bench irt --cache "$SIM" --only "1pl 4500x1319" >/dev/null
fi
DATA=$SIM/sim_1pl_4500x1319.parquet
TRUTH=$SIM/sim_1pl_4500x1319.truth.parquet

timed() { # label, command...: runs it 5 times, appends "label wall_s cpu_s" of the median run
    local label=$1 runs
    shift
    runs=$(mktemp)
    for _ in 1 2 3 4 5; do
        /usr/bin/time -a -o "$runs" -f "$label %e %U %S" "$@" >/dev/null 2>&1
    done
    sort -n -k2 "$runs" | sed -n 3p >>"$WORK/times.txt"
    rm -f "$runs"
}
: >"$WORK/times.txt"
echo "== 1. 4,500 x 1,319 (5.3 M responses): whole commands, side by side (median of 5 runs)"
timed "girth_rasch_mml" $PY girth "$DATA" "$WORK/fits/girth.parquet"
TABLE="CREATE EXTERNAL TABLE r STORED AS PARQUET LOCATION '$DATA'"
for method in jml mml; do
    timed "crossdiff_1pl_$method" "$CROSSDIFF" sql -c "$TABLE" \
        -c "COPY (SELECT item_id, difficulty FROM irt_fit('r', '1pl', '$method')) TO '$WORK/fits/crossdiff_$method.parquet'"
done
echo "| command | wall s | CPU s |"
echo "|---|---|---|"
awk '{ printf "| %s | %s | %.1f |\n", $1, $2, $3 + $4 }' "$WORK/times.txt"
awk '$1=="girth_rasch_mml"{g=$2} $1=="crossdiff_1pl_jml"{c=$2} END{ if (c > 0) printf "girth / crossdiff jml wall time: %.1fx\n", g / c }' "$WORK/times.txt"
$PY report "$TRUTH" "$WORK/fits/girth.parquet" "$WORK/fits/crossdiff_jml.parquet" "$WORK/fits/crossdiff_mml.parquet"

if [ "${PYIRT:-1}" != 0 ] && [ -f "$OLL" ]; then
    echo
    echo "== 2. py-irt on the Open LLM Leaderboard (oll_v1), per benchmark"
    for bench in arc gsm8k mmlu truthfulqa winogrande; do
        part=$WORK/pyirt/responses_$bench.parquet
        [ -f "$part" ] || "$CROSSDIFF" sql -c "CREATE EXTERNAL TABLE oll STORED AS PARQUET LOCATION '$OLL'" \
            -c "COPY (SELECT * FROM oll WHERE benchmark = '$bench') TO '$part'" >/dev/null
        [ -f "$WORK/pyirt/hier_$bench.parquet" ] || $PY pyirt "$part" "$WORK/pyirt/hier_$bench.parquet" --priors hierarchical --seed 42
        for seed in 1 2; do
            [ -f "$WORK/pyirt/vague_${bench}_s$seed.parquet" ] || $PY pyirt "$part" "$WORK/pyirt/vague_${bench}_s$seed.parquet" --priors vague --seed $seed
        done
        echo "-- $bench: py-irt vague seed 2 against seed 1 (how reproducible py-irt's default is)"
        $PY report "$WORK/pyirt/vague_${bench}_s1.parquet" "$WORK/pyirt/vague_${bench}_s2.parquet"
    done
    echo
    echo "== 3. crossdiff against py-irt (the 'against' columns)"
    "$CROSSDIFF" bench irt --cache "$SIM" --only oll_v1 --real "$OLL" --references "$WORK/pyirt"
fi
