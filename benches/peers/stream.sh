#!/bin/sh
# Training on data larger than memory: generates a CSV of ROWS rows (default 10 million) of
# ten mixed columns (seven numeric with missing values, two categorical) and a learnable
# binary target, trains on it with `--memory-budget-mib BUDGET` (default 256: the file is
# larger, so the run streams), then trains in memory on the first MEMORY_ROWS rows (default
# 1 million) for comparison. Prints, for each: wall seconds, file rows per wall second,
# training samples/s, peak RSS (`/usr/bin/time -v`; Debian package `time`) and test accuracy.
#
#   KILN=target/release/kiln sh benches/peers/stream.sh [ROWS] [BUDGET_MIB] [MEMORY_ROWS]
set -eu
KILN=${KILN:-target/release/kiln}
ROWS=${1:-10000000}
BUDGET=${2:-256}
MEMORY_ROWS=${3:-1000000}
EPOCHS=${EPOCHS:-2}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# awk: fast, seeded, no dependencies.
awk -v n="$ROWS" 'BEGIN {
    srand(7); print "x1,x2,x3,x4,x5,x6,x7,c1,c2,y"
    split("a b c d e", cats, " ")
    for (i = 0; i < n; i++) {
        for (j = 1; j <= 7; j++) x[j] = rand() * 2 - 1
        c1 = cats[int(rand() * 5) + 1]; c2 = cats[int(rand() * 3) + 1]
        s = 2 * x[1] - 1.5 * x[2] + x[3] - 0.5 * x[4] + (c1 == "a" ? 0.8 : -0.2) + 0.3 * (rand() - 0.5)
        x5 = (i % 13 == 0) ? "NA" : sprintf("%.4f", x[5])
        printf "%.4f,%.4f,%.4f,%.4f,%s,%.4f,%.4f,%s,%s,%s\n", x[1], x[2], x[3], x[4], x5, x[6], x[7], c1, c2, (s > 0 ? "pos" : "neg")
    }
}' > "$TMP/big.csv"
head -n "$((MEMORY_ROWS + 1))" "$TMP/big.csv" > "$TMP/small.csv"

pipeline() {
    cat > "$TMP/$1.toml" <<TOML
[pipeline]
name = "$1"
seed = 7

[data]
source = "$TMP/$2"
target = "y"

[split]
method = "random"
valid = 0.05
test = 0.1

[features]
numeric = { impute = "mean", scale = "standard" }

[model]
kind = "mlp"
hidden = [32]

[train]
epochs = $EPOCHS
batch_size = 1024
lr = 0.003
optimizer = "adam"
TOML
}

# Trains pipeline $1 on file $2 ($3: extra flags); prints one result line.
measure() {
    start=$(date +%s.%N)
    /usr/bin/time -v "$KILN" train "$TMP/$1.toml" --out "$TMP/runs" --json $3 \
        > "$TMP/$1.out" 2> "$TMP/$1.time"
    end=$(date +%s.%N)
    rows=$(($(wc -l < "$TMP/$2") - 1))
    rss=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$TMP/$1.time")
    tail -n 1 "$TMP/$1.out" | python3 -c '
import json, sys
start, end, rows, rss, name = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
m = json.load(sys.stdin)["manifest"]
wall = end - start
s = m.get("streaming")
mode = "streamed, %d MiB budget, %d passes" % (s["memory_budget_mib"], s["passes"]) if s else "in memory"
print("%-9s %10d rows  %7.1f s  %9.0f rows/s  %8.0f samples/s  peak RSS %6.0f MiB  test accuracy %.4f  (%s)" % (
    name, rows, wall, rows / wall, m["samples_per_second"], rss / 1024, m["metrics"]["test"]["accuracy"], mode))
' "$start" "$end" "$rows" "$rss" "$1"
}

pipeline stream big.csv
pipeline memory small.csv
echo "file: $(du -m "$TMP/big.csv" | cut -f1) MiB, $ROWS rows; $EPOCHS epochs; $KILN"
measure stream big.csv "--memory-budget-mib $BUDGET"
measure memory small.csv ""
