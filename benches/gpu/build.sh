#!/usr/bin/env bash
# Builds what benches/gpu/run.sh runs on the GPU machine: the kiln binary and the train_step
# and inference criterion benchmarks, release, with the cuda backend and autotune compiled in,
# stripped and packed into .gpu/bin.tar.xz (the device tool carries at most 64 MiB).
set -euo pipefail
cd "$(dirname "$0")/../.."
# autotune: cubecl times its matmul and convolution kernels and keeps the fastest; without
# it convolutions run a direct kernel ~20x slower than cuDNN (benches/README.md).
features=kiln-cli/cuda,kiln-cli/autotune,kiln-benches/cuda,kiln-benches/autotune
# No CUDA toolkit here: cudarc would fall back to the newest API it knows (13.4). The lent
# machine's driver (580) speaks CUDA 13.0, so bind that; override for another driver.
export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
cargo build --release --workspace --features "$features" --bin kiln
bench_bins=$(cargo bench --workspace --features "$features" --bench train_step --bench inference \
    --no-run --message-format=json 2>/dev/null \
    | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bench" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])')
staging=$(mktemp -d)
cp target/release/kiln "$staging/kiln"
while read -r name path; do cp "$path" "$staging/$name"; done <<<"$bench_bins"
strip "$staging"/*
mkdir -p .gpu
tar -cJf .gpu/bin.tar.xz -C "$staging" .
rm -r "$staging"
ls -la .gpu/bin.tar.xz
