#!/usr/bin/env bash
# The GPU benchmarks in one prepared run, for a lent NVIDIA machine that has no cargo: kiln's
# binaries are built here by benches/gpu/build.sh and travel in .gpu/ (with the Vulkan loader
# in .gl/), PyTorch is the machine's own. Writes logs to $OUT and prints a summary last.
#
#     bash benches/gpu/run.sh            # from the repository root, on the GPU machine
#     KILN_GPU_STEPS=compare,train bash benches/gpu/run.sh   # some steps only
set -u
OUT=${OUT:-/tmp/kiln-gpu}
mkdir -p "$OUT"
STEPS=${KILN_GPU_STEPS:-info,train,compare,precision,infer}
# The GPU backends measured (a criterion filter's alternatives).
GPU_BACKENDS=${KILN_GPU_BACKENDS:-wgpu|cuda}
PRECISION_BACKENDS=${KILN_PRECISION_BACKENDS:-cuda wgpu}
# Criterion warm-up seconds; with autotune the first steps of each shape time kernels.
WARM_UP=${KILN_GPU_WARM_UP:-3}
want() { [[ ",$STEPS," == *",$1,"* ]]; }
log() { echo "== $*" | tee -a "$OUT/summary.txt"; }

# The binaries, unpacked from the compressed archive that travels.
mkdir -p /tmp/kiln-bin && tar -xJf .gpu/bin.tar.xz -C /tmp/kiln-bin || exit 1
BIN=/tmp/kiln-bin
# Vulkan: the loader from .gl, the NVIDIA driver's ICD when the loader finds none by itself.
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
# CUDA: cudarc dlopens `libcuda.so` first, and a toolkit's stub of that name (it answers
# CUDA_ERROR_STUB_LIBRARY) can shadow the driver's libcuda.so.1. A private folder first on the
# path names the real driver and an NVRTC; the NVRTC folders follow for its builtins library.
mkdir -p /tmp/kiln-cuda
driver=$(ldconfig -p | awk '/libcuda\.so\.1 /{print $NF; exit}')
[ -n "$driver" ] || driver=$(find /usr/local/nvidia /usr/lib /usr/lib64 -name libcuda.so.1 -not -path '*stubs*' 2>/dev/null | head -1)
nvrtc=$(find / -xdev -name 'libnvrtc.so.1[0-9]*' -not -path '*stubs*' 2>/dev/null | sort | tail -1)
[ -n "$driver" ] && ln -sf "$driver" /tmp/kiln-cuda/libcuda.so
[ -n "$nvrtc" ] && ln -sf "$nvrtc" /tmp/kiln-cuda/libnvrtc.so
nvrtc_dirs=$(find / -xdev -name 'libnvrtc*.so*' -not -path '*stubs*' -printf '%h\n' 2>/dev/null | sort -u | paste -sd:)
export LD_LIBRARY_PATH=/tmp/kiln-cuda:${nvrtc_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
echo "cuda driver: ${driver:-none}; nvrtc: ${nvrtc:-none}" >> "$OUT/summary.txt"
ldconfig -p | grep -E "libcuda\.|libnvrtc" >> "$OUT/summary.txt"
# A run's device, train seconds and test accuracy from `kiln train --json`'s last line; the
# line itself when it is an error.
manifest_figures='import json,sys
line = sys.stdin.read()
try:
    m = json.loads(line)["manifest"]
    print(m["device"]["name"], m["timings"]["train"], m["metrics"]["test"]["accuracy"])
except (ValueError, KeyError):
    print(line.strip())'
export CRITERION_HOME=/tmp/criterion XDG_RUNTIME_DIR=/tmp PYTHONUNBUFFERED=1

if want info; then
    log "machine"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>&1 | tee -a "$OUT/summary.txt"
    nproc | tee -a "$OUT/summary.txt"
    log "kiln backends"
    "$BIN/kiln" backends 2>&1 | tee -a "$OUT/summary.txt"
    log "kiln --backend auto"
    "$BIN/kiln" train examples/penguins/pipeline.toml --backend auto --out /tmp/runs --json 2>&1 \
        | tail -1 | python3 -c "$manifest_figures" 2>&1 | tee -a "$OUT/summary.txt"
fi

if want train; then
    # kiln's criterion step benchmark on the GPU backends against PyTorch CUDA, one table.
    log "train step: kiln (criterion) vs PyTorch CUDA"
    timeout 150 python3 benches/peers/compare.py --bench-bin "$BIN/train_step" --device cuda \
        --backends "$GPU_BACKENDS" --rounds 0 --warm-up-time "$WARM_UP" > "$OUT/train_step.txt" 2>&1
    grep -A30 '^One Adam step' "$OUT/train_step.txt" | tee -a "$OUT/summary.txt"
fi

if want compare; then
    # The same MNIST CNN pipeline on the CPU (reference), wgpu over Vulkan and cuda.
    log "kiln compare-backends examples/mnist (flex reference)"
    timeout 90 "$BIN/kiln" compare-backends examples/mnist/pipeline.toml --backends flex,wgpu,cuda \
        --out /tmp/runs 2>&1 | tee "$OUT/compare.txt" | tail -12 | tee -a "$OUT/summary.txt"
fi

if want precision; then
    log "precision: PyTorch CUDA bf16 autocast step"
    timeout 45 python3 benches/peers/torch_step.py --device cuda --precision bf16 --reps 5 \
        | tee "$OUT/torch_bf16.json" | python3 -c 'import json,sys; d=json.load(sys.stdin); [print(k, round(v[0]["samples_per_s"])) for k, v in d["results"].items()]' \
        | tee -a "$OUT/summary.txt"
    for p in f32 bf16 f16; do
        for b in $PRECISION_BACKENDS; do
            log "kiln train examples/mnist --backend $b precision $p"
            sed "s/^\[train\]/[train]\nprecision = \"$p\"/" examples/mnist/pipeline.toml > "/tmp/mnist-$p.toml"
            cp examples/mnist/*.gz /tmp/
            timeout 25 "$BIN/kiln" train "/tmp/mnist-$p.toml" --backend "$b" --out /tmp/runs --json 2>&1 \
                | tail -1 | python3 -c "$manifest_figures" 2>&1 | tee -a "$OUT/summary.txt"
        done
    done
fi
if want infer; then
    log "inference (criterion)"
    timeout 90 "$BIN/inference" --bench "/($GPU_BACKENDS)\$" --warm-up-time "$WARM_UP" > "$OUT/inference.txt" 2>&1
    grep -E '^infer/|thrpt' "$OUT/inference.txt" | paste - - | awk '{print $1, $(NF-3), $(NF-2), $(NF-1), $NF}' \
        | tee -a "$OUT/summary.txt"
fi

tar -czf "$OUT/criterion.tar.gz" -C /tmp criterion 2>/dev/null
log "done"
