#!/bin/sh
# kiln serve against a FastAPI + scikit-learn server of an equivalent model, driven by the
# same load generator in one run; prints req/s, p50/p99 and the throughput ratio.
#
#   PY=/path/to/venv/bin/python KILN=target/release/kiln LOADGEN=target/release/kiln-loadgen \
#       sh benches/peers/serve.sh [REQUESTS] [SECONDS]
set -eu
PY=${PY:-python3}
KILN=${KILN:-target/release/kiln}
LOADGEN=${LOADGEN:-target/release/kiln-loadgen}
REQUESTS=${1:-20000}
SECONDS_MAX=${2:-20}
DATA=examples/penguins/penguins.csv
TMP=$(mktemp -d)
trap 'kill $KILN_PID $PEER_PID 2>/dev/null || true; rm -rf "$TMP"' EXIT

RUN=$("$KILN" train examples/penguins/pipeline.toml --out "$TMP/runs" --json | tail -1 |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["run_dir"])')
# One JSON object per penguin, features only (NA -> null).
"$PY" - "$DATA" > "$TMP/rows.jsonl" <<'PY'
import csv, json, sys
for row in csv.DictReader(open(sys.argv[1])):
    out = {}
    for k, v in row.items():
        if k == "species":
            continue
        if v == "NA":
            out[k] = None
        elif k in ("island", "sex", "year"):
            out[k] = v
        else:
            out[k] = float(v)
    print(json.dumps(out))
PY

"$KILN" serve "$RUN/bundle" --addr 127.0.0.1:18080 2>"$TMP/kiln.log" &
KILN_PID=$!
# One BLAS thread: the default thread pool spins against the server on 2 cores.
OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 "$PY" benches/peers/serve_peer.py "$DATA" 18081 2>"$TMP/peer.log" &
PEER_PID=$!
for port in 18080 18081; do
    for _ in $(seq 100); do
        curl -sf -o /dev/null -X POST -H 'content-type: application/json' \
            --data "[$(head -1 "$TMP/rows.jsonl")]" "http://127.0.0.1:$port/v1/predict" && break
        sleep 0.3
    done
done
"$LOADGEN" --rows "$TMP/rows.jsonl" --requests "$REQUESTS" --seconds "$SECONDS_MAX" \
    --concurrency 1,16,64 \
    kiln=http://127.0.0.1:18080/v1/predict fastapi=http://127.0.0.1:18081/v1/predict
