#!/bin/sh
# Every kiln-against-peer comparison back to back, in one invocation: the one place kiln's
# speed claims come from. Each part prints its own ratios (kiln / peer; > 1: kiln faster).
#
#   PY=$(../shared/peers/setup.sh | tail -1)     # once: a venv with the peers
#   PY=$PY sh benches/peers/all.sh               # from the repository root
#
# Parts: train (criterion train_step vs PyTorch CPU, and numpy sgemm), ingest (CSV to typed
# columns vs pyarrow, polars, pandas), transforms (fit + transform vs scikit-learn), serve
# (kiln serve vs FastAPI + scikit-learn), predict (streamed batch scoring: rows/s and peak RSS,
# streamed vs whole file). `PARTS="train ingest"` runs some of them.
set -eu
PY=${PY:-python3}
PARTS=${PARTS:-train ingest transforms serve predict}
cargo build --release --workspace --bin kiln --bin kiln-loadgen --example ingest --example fit_transform
for part in $PARTS; do
    echo "==== $part"
    case $part in
        train) "$PY" benches/peers/compare.py ;;
        ingest) "$PY" benches/peers/ingest.py ;;
        transforms) "$PY" benches/peers/transforms.py ;;
        serve) PY=$PY sh benches/peers/serve.sh ;;
        predict) "$PY" benches/peers/predict_stream.py ;;
        *) echo "unknown part $part" >&2; exit 2 ;;
    esac
done
