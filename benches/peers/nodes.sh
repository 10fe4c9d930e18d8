#!/usr/bin/env sh
# 2-node training on loopback against 1 node at the same global batch, on MNIST (5,000 images)
# with the 235k-parameter MLP 784-256-128-10, and the time each step spends in the gradient
# all-reduce (kiln's `allreduce` timing).
#   sh benches/peers/nodes.sh [EPOCHS] [BATCH_PER_NODE]
# Needs kiln built with `--features mpi` (KILN=path/to/kiln; default target/release/kiln, else
# target/debug/kiln) and Open MPI's mpirun.
set -eu
cd "$(dirname "$0")/../.."
EPOCHS="${1:-3}"
BATCH="${2:-64}"
KILN="${KILN:-target/release/kiln}"
[ -x "$KILN" ] || KILN=target/debug/kiln
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
pipeline() { # $1 batch size, $2 file
  sed -e "s|source = \"|source = \"$PWD/examples/mnist/|" \
    -e 's/kind = "cnn"/kind = "mlp"/' -e '/^conv = /d' -e '/^image = /d' -e 's/^hidden = .*/hidden = [256, 128]/' \
    -e "s/^epochs = .*/epochs = $EPOCHS/" -e "s/^batch_size = .*/batch_size = $1/" \
    -e 's/^early_stopping = .*//' examples/mnist/pipeline.toml >"$2"
}
pipeline "$((BATCH * 2))" "$WORK/one.toml"
pipeline "$BATCH" "$WORK/two.toml"
# Warm the stage cache, so both timed runs start from the same cached data stages.
"$KILN" train "$WORK/one.toml" --out "$WORK/warm" --cache-dir "$WORK/cache" --json >/dev/null
"$KILN" train "$WORK/one.toml" --out "$WORK/one" --cache-dir "$WORK/cache" --json | tail -1 >"$WORK/one.json"
mpirun -np 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo \
  --mca oob_tcp_if_include lo "$KILN" train "$WORK/two.toml" --nodes 2 --out "$WORK/two" \
  --cache-dir "$WORK/cache" --json 2>/dev/null | tail -1 >"$WORK/two.json"
python3 - "$WORK/one.json" "$WORK/two.json" "$BATCH" <<'PY'
import json, sys
one, two = (json.load(open(p))["manifest"] for p in sys.argv[1:3])
batch = int(sys.argv[3])
for name, m in (("1 node", one), ("2 nodes", two)):
    print(f"{name:8} global batch {2 * batch}: {m['samples_per_second']:9.0f} samples/s, "
          f"train {m['timings']['train']:.2f} s, test accuracy {m['metrics']['test']['accuracy']:.4f}")
print(f"2 nodes / 1 node throughput: {two['samples_per_second'] / one['samples_per_second']:.2f}x")
t = two["timings"]
print(f"all-reduce of {two['parameters']} f32 gradients: {1e3 * t['allreduce_per_step']:.2f} ms per step, "
      f"{t['allreduce']:.3f} s of {t['train']:.2f} s training on node 0")
PY
