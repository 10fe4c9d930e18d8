#!/bin/sh
# Sweep throughput: one `kiln sweep` of a 6-trial grid with 3-fold CV on penguins (18 runs of
# EPOCHS epochs each, ndarray backend) at --workers 1, then at --workers 2, in one go; prints
# trials per minute of each and the 2-worker / 1-worker ratio. Each sweep starts from an empty
# out directory (cold stage cache), so both do the same work.
#
#   KILN=target/release/kiln sh benches/peers/sweep.sh [EPOCHS] [REPEATS]
set -eu
KILN=${KILN:-target/release/kiln}
EPOCHS=${1:-40}
REPEATS=${2:-3}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
DATA=$(cd examples/penguins && pwd)/penguins.csv
sed -e "s|source = \"penguins.csv\"|source = \"$DATA\"|" -e "s|epochs = 40|epochs = $EPOCHS|" \
    examples/penguins/pipeline.toml > "$TMP/pipeline.toml"
cat >> "$TMP/pipeline.toml" <<'TOML'

[sweep]
method = "grid"
folds = 3
[sweep.params]
"model.hidden" = [[8], [16]]
"train.lr" = [0.003, 0.01, 0.03]
TOML
TRIALS=6

# Median wall seconds of REPEATS sweeps at $1 workers.
median_seconds() {
    for r in $(seq "$REPEATS"); do
        out="$TMP/w$1-r$r"
        start=$(date +%s.%N)
        "$KILN" sweep "$TMP/pipeline.toml" --out "$out" --workers "$1" --json > /dev/null
        end=$(date +%s.%N)
        awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
        rm -rf "$out"
    done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

one=$(median_seconds 1)
two=$(median_seconds 2)
awk -v one="$one" -v two="$two" -v trials="$TRIALS" -v epochs="$EPOCHS" -v repeats="$REPEATS" 'BEGIN {
    printf "sweep: %d trials x 3 folds, %d epochs per run, median of %d sweeps\n", trials, epochs, repeats
    printf "workers  seconds  trials/min\n"
    printf "%7d  %7.2f  %10.1f\n", 1, one, trials * 60 / one
    printf "%7d  %7.2f  %10.1f\n", 2, two, trials * 60 / two
    printf "2 workers / 1 worker: %.2fx\n", one / two
}'
