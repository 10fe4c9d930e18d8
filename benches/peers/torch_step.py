#!/usr/bin/env python3
"""Peers of kiln's `train_step` benchmarks:
- PyTorch CPU: one Adam step (forward, backward, update) of the MLPs 784-128-64-10 and
  784-256-128-10 on a fixed batch of 256 rows, float32, with 1 and 2 threads;
- numpy (OpenBLAS) sgemm: one 4096×4096 by 4096×4096 float32 product, in GFLOP/s.

Prints one JSON object.
    python benches/peers/torch_step.py [--steps 200] [--reps 5]
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
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    h1, h2 = hidden
    model = nn.Sequential(nn.Linear(784, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    lossf = nn.CrossEntropyLoss()
    x = torch.rand(BATCH, 784)
    y = torch.randint(0, 10, (BATCH,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(20):  # warm-up
        step()
    runs = []
    for _ in range(reps):
        start = time.perf_counter()
        for _ in range(steps):
            step()
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
    steps, reps = arg("--steps", 200), arg("--reps", 5)
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
