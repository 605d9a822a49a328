#!/usr/bin/env bash
# 2PL on the real leaderboard: crossdiff's jml and mml against girth's twopl_mml (an
# independent marginal-likelihood 2PL), benchmark by benchmark on ../shared/data/oll_v1,
# with each whole command's time.
#
#   scripts/compare_irt_2pl.sh [WORK_DIR]      (default: target/compare-irt-2pl)
#
# Installs girth into WORK_DIR/venv (PyPI) on first use. Prints, per benchmark and fit: the
# Spearman correlation of difficulties and of discriminations with girth's on the items whose
# share correct lies in [0.02, 0.98] (outside it an item carries almost no information about its
# slope), the same for discriminations on the items girth did not clamp to its bounds [0.2, 5],
# the largest discrimination, the items with a < 0.1, and whether each fit converged. Then a
# third opinion: a textbook Bock-Aitkin EM in numpy (scripts/compare_irt.py numpy2pl: no priors,
# no bounds, a fixed grid) as the reference for crossdiff and girth alike.
# About 6 minutes on 2 cores, most of it girth.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-target/compare-irt-2pl}
TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/crossdiff-target}
export CARGO_TARGET_DIR=$TARGET
CROSSDIFF=$TARGET/release/crossdiff
OLL=../shared/data/oll_v1/responses.parquet
if [ ! -f "$OLL" ]; then
    echo "skipped: $OLL is absent (the shared leaderboard data)" >&2
    exit 0
fi
mkdir -p "$WORK/fits"

cargo build --release --quiet
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install --quiet girth==0.8.0 pyarrow pandas
fi
PY="$WORK/venv/bin/python scripts/compare_irt.py"
TABLE="CREATE EXTERNAL TABLE oll STORED AS PARQUET LOCATION '$OLL'"
[ -f "$WORK/responses.parquet" ] || "$CROSSDIFF" sql -c "$TABLE" \
    -c "COPY (SELECT benchmark, model_id, item_id, correct FROM oll) TO '$WORK/responses.parquet'" >/dev/null

: >"$WORK/times.txt"
echo "== 2PL on oll_v1 (every benchmark fitted on its own): whole commands"
/usr/bin/time -a -o "$WORK/times.txt" -f "girth_twopl_mml %e %U %S" \
    $PY girth2pl "$WORK/responses.parquet" "$WORK/fits/girth_2pl.parquet"
for method in jml mml; do
    /usr/bin/time -a -o "$WORK/times.txt" -f "crossdiff_2pl_$method %e %U %S" \
        "$CROSSDIFF" sql -c "$TABLE" \
        -c "COPY (SELECT benchmark, item_id, difficulty, discrimination, p_correct, iterations, converged
                  FROM irt_fit('oll', '2pl', '$method')) TO '$WORK/fits/crossdiff_2pl_$method.parquet'" \
        >/dev/null 2>"$WORK/fits/crossdiff_2pl_$method.log" \
        || { cat "$WORK/fits/crossdiff_2pl_$method.log" >&2; exit 1; }
    grep -i warning "$WORK/fits/crossdiff_2pl_$method.log" >&2 || true
done
echo "| command | wall s | CPU s |"
echo "|---|---|---|"
awk '{ printf "| %s | %s | %.1f |\n", $1, $2, $3 + $4 }' "$WORK/times.txt"
echo
echo "crossdiff's fits, per benchmark: sweeps and convergence"
"$CROSSDIFF" sql --format csv \
    -c "CREATE EXTERNAL TABLE j STORED AS PARQUET LOCATION '$WORK/fits/crossdiff_2pl_jml.parquet'" \
    -c "CREATE EXTERNAL TABLE m STORED AS PARQUET LOCATION '$WORK/fits/crossdiff_2pl_mml.parquet'" \
    -c "SELECT 'jml' AS method, benchmark, max(iterations) AS iterations, bool_and(converged) AS converged FROM j GROUP BY benchmark
        UNION ALL SELECT 'mml', benchmark, max(iterations), bool_and(converged) FROM m GROUP BY benchmark
        ORDER BY method, benchmark"
echo
echo "Against girth's twopl_mml:"
$PY report2pl "$WORK/fits/girth_2pl.parquet" "$WORK/fits/crossdiff_2pl_jml.parquet" "$WORK/fits/crossdiff_2pl_mml.parquet"
echo
echo "Against a textbook EM in numpy (no priors, no bounds; its b of items with a near 0 runs off, so read b on a >= 0.2):"
$PY numpy2pl "$WORK/responses.parquet" "$WORK/fits/numpy_2pl.parquet"
$PY report2pl "$WORK/fits/numpy_2pl.parquet" "$WORK/fits/crossdiff_2pl_jml.parquet" "$WORK/fits/crossdiff_2pl_mml.parquet" "$WORK/fits/girth_2pl.parquet"
