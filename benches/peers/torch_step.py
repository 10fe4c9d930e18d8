#!/usr/bin/env python3
"""Peers of kiln's `train_step` benchmarks, on the same shapes (benches/src/lib.rs):
- PyTorch: one Adam step (forward, backward, update, then reading the loss as kiln's step
  does) at batch 256 of the MLPs 784-128-64-10, 784-256-128-10 and 784-1024-1024-10 and the
  CNN conv32-conv64-dense128, float32, stepping through 16 batches in turn; on the CPU with
  1 and 2 threads, or on CUDA;
- one 4096×4096 by 4096×4096 float32 product: numpy's OpenBLAS sgemm on the CPU, PyTorch's
  (cuBLAS, TF32 off: PyTorch's default) on CUDA; in GFLOP/s.

Prints one JSON object.
    python benches/peers/torch_step.py [--device cpu|cuda] [--steps 64] [--reps 15]
        [--precision f32|bf16]   # bf16: torch.autocast on CUDA (the usual mixed precision)
        [--models mlp_784_128_64_10,...] [--no-sgemm]   # a subset (compare.py's rounds)
"""
import contextlib
import json
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

BATCH = 256
EPOCH_STEPS = 16
MATMUL = 4096


def mlp(h1, h2):
    return lambda: nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 10))


def cnn():
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


MODELS = {
    "mlp_784_128_64_10": mlp(128, 64),
    "mlp_784_256_128_10": mlp(256, 128),
    "mlp_784_1024_1024_10": mlp(1024, 1024),
    "cnn_32_64_128": cnn,
}


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def measure(build, device, label, steps, reps, precision):
    """Median seconds per step over `reps` runs of `steps` steps, each from a fresh model (as
    kiln's benchmark, which restarts every 64 steps: one batch trained for thousands of steps
    drives the loss to zero and the arithmetic into subnormals)."""
    torch.manual_seed(0)
    # The 16 batches of an epoch, taken in turn as kiln's benchmark does: one batch over and
    # over would stay in cache.
    xs = torch.rand(EPOCH_STEPS, BATCH, 784, device=device)
    ys = torch.randint(0, 10, (EPOCH_STEPS, BATCH), device=device)
    lossf = nn.CrossEntropyLoss()
    autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if precision == "bf16" \
        else contextlib.nullcontext
    runs = []
    for rep in range(reps + 1):  # the first run warms up (and, on CUDA, picks the kernels)
        model = build().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for step in range(steps):
            x, y = xs[step % EPOCH_STEPS], ys[step % EPOCH_STEPS]
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = lossf(model(x), y)
            loss.backward()
            opt.step()
            loss.item()  # waits for the step, as kiln's benchmark reads its loss
        if rep > 0:
            runs.append((time.perf_counter() - start) / steps)
    median = statistics.median(runs)
    return {"label": label, "step_median_s": median, "samples_per_s": BATCH / median}


def sgemm_numpy(reps=5):
    rng = np.random.default_rng(0)
    a = rng.random((MATMUL, MATMUL), dtype=np.float32)
    b = rng.random((MATMUL, MATMUL), dtype=np.float32)
    a @ b  # warm-up
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        a @ b
        runs.append(time.perf_counter() - start)
    return 2 * MATMUL**3 / statistics.median(runs) / 1e9


def sgemm_cuda(reps=20):
    a = torch.rand(MATMUL, MATMUL, device="cuda")
    b = torch.rand(MATMUL, MATMUL, device="cuda")
    for _ in range(3):
        a @ b
    runs = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        a @ b
        end.record()
        end.synchronize()
        runs.append(start.elapsed_time(end) / 1e3)
    return 2 * MATMUL**3 / statistics.median(runs) / 1e9


def main():
    device = arg("--device", "cpu")
    steps, reps = int(arg("--steps", 64)), int(arg("--reps", 15))
    precision = arg("--precision", "f32")
    models = arg("--models", ",".join(MODELS)).split(",")
    unknown = [m for m in models if m not in MODELS]
    if unknown:
        sys.exit(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    results = {}
    for name in models:
        build = MODELS[name]
        if device == "cuda":
            results[name] = [measure(build, "cuda", f"cuda {precision}", steps, reps, precision)]
        else:
            results[name] = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                results[name].append(measure(build, "cpu", f"{threads}t", steps, reps, precision))
    print(json.dumps({
        "peer": "pytorch",
        "version": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
        "numpy": np.__version__,
        "batch": BATCH,
        "results": results,
        **({} if "--no-sgemm" in sys.argv else {
            "sgemm_4096_gflops": sgemm_cuda() if device == "cuda" else sgemm_numpy(),
            "sgemm_by": "torch cuda" if device == "cuda" else "numpy",
        }),
    }))


if __name__ == "__main__":
    main()
