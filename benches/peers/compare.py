#!/usr/bin/env python3
"""Runs kiln's `train/step` criterion benchmark and the PyTorch peer back to back, and prints
samples/s and the ratio kiln / PyTorch for each backend kiln has here.

    PY=$(../shared/peers/setup.sh | tail -1)     # a venv with torch
    $PY benches/peers/compare.py                 # from the repository root
    KILN_BENCH_ARGS="--profile dev" $PY benches/peers/compare.py   # reuse the test build

kiln's figure is criterion's median; PyTorch's is the median of 5 runs of 200 steps. Only
ratios from one invocation are comparable: the machine is shared.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BATCH = 256
CRITERION = os.path.join(ROOT, "target", "criterion", "train_step", "mlp_784_128_64_10_b256")


def kiln():
    # KILN_BENCH_ARGS adds cargo flags, e.g. "--profile dev" to reuse a test build (slower code).
    extra = os.environ.get("KILN_BENCH_ARGS", "").split()
    cmd = ["cargo", "bench", "--workspace", "--bench", "train_step", *extra]
    subprocess.run(cmd, cwd=ROOT, check=True)
    out = {}
    for backend in sorted(os.listdir(CRITERION)):
        path = os.path.join(CRITERION, backend, "new", "estimates.json")
        if os.path.exists(path):
            with open(path) as f:
                median_ns = json.load(f)["median"]["point_estimate"]
            out[backend] = BATCH / (median_ns * 1e-9)
    return out


def torch_peer():
    script = os.path.join(ROOT, "benches", "peers", "torch_step.py")
    done = subprocess.run([sys.executable, script], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main():
    kiln_sps = kiln()
    peer = torch_peer()
    torch_sps = {r["threads"]: r["samples_per_s"] for r in peer["results"]}
    print(f"\nMLP 784-128-64-10, batch 256, one Adam step; PyTorch {peer['version']}")
    print(f"{'kiln backend':<14}{'kiln samples/s':>16}{'torch 1 thread':>16}{'torch 2 threads':>17}{'kiln/torch1':>13}{'kiln/torch2':>13}")
    for backend, sps in kiln_sps.items():
        print(f"{backend:<14}{sps:>16.0f}{torch_sps[1]:>16.0f}{torch_sps[2]:>17.0f}"
              f"{sps / torch_sps[1]:>13.2f}{sps / torch_sps[2]:>13.2f}")


if __name__ == "__main__":
    main()
