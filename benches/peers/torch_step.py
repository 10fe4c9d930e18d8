#!/usr/bin/env python3
"""PyTorch CPU peer of kiln's `train/step` benchmark: one Adam step (forward, backward,
update) of the MLP 784-128-64-10 on a fixed batch of 256 rows, float32.

Prints one JSON object: median seconds per step and samples/s, per thread count.
    python benches/peers/torch_step.py [--steps 200] [--reps 5]
"""
import json
import statistics
import sys
import time

import torch
from torch import nn

BATCH = 256


def arg(name, default):
    return int(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


def measure(threads, steps, reps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
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


def main():
    steps, reps = arg("--steps", 200), arg("--reps", 5)
    results = [measure(t, steps, reps) for t in (1, 2)]
    print(json.dumps({"peer": "pytorch", "version": torch.__version__, "batch": BATCH, "results": results}))


if __name__ == "__main__":
    main()
