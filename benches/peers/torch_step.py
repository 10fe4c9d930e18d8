#!/usr/bin/env python3
"""Peers of kiln's `train_step` benchmarks:
- PyTorch CPU: one Adam step (forward, backward, update) of the MLPs 784-128-64-10 and
  784-256-128-10 on a fixed batch of 256 rows, float32, with 1 and 2 threads;
- numpy (OpenBLAS) sgemm: one 4096×4096 by 4096×4096 float32 product, in GFLOP/s.

Prints one JSON object.
    python benches/peers/torch_step.py [--steps 64] [--reps 15]
"""
import json
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

BATCH = 256
MLPS = {"mlp_784_128_64_10": (128, 64), "mlp_784_256_128_10": (256, 128)}
MATMUL = 4096


def arg(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def measure(hidden, threads, steps, reps):
    """Median seconds per step over `reps` runs of `steps` steps, each from a fresh model (as
    kiln's benchmark, which restarts every 64 steps: one batch trained for thousands of steps
    drives the loss to zero and the arithmetic into subnormals)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    h1, h2 = hidden
    x = torch.rand(BATCH, 784)
    y = torch.randint(0, 10, (BATCH,))
    lossf = nn.CrossEntropyLoss()
    runs = []
    for rep in range(reps + 1):  # the first run warms up
        model = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 10))
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        start = time.perf_counter()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = lossf(model(x), y)
            loss.backward()
            opt.step()
        if rep > 0:
            runs.append((time.perf_counter() - start) / steps)
    median = statistics.median(runs)
    return {"threads": threads, "step_median_s": median, "samples_per_s": BATCH / median}


def sgemm(reps=5):
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


def main():
    steps, reps = arg("--steps", 64), arg("--reps", 15)
    results = {name: [measure(hidden, t, steps, reps) for t in (1, 2)] for name, hidden in MLPS.items()}
    print(json.dumps({
        "peer": "pytorch",
        "version": torch.__version__,
        "numpy": np.__version__,
        "batch": BATCH,
        "results": results,
        "sgemm_4096_gflops": sgemm(),
    }))


if __name__ == "__main__":
    main()
