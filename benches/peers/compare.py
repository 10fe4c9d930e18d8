#!/usr/bin/env python3
"""Runs kiln's `train_step` criterion benchmarks and the PyTorch / numpy peers back to back,
and prints, per backend kiln has here:
- samples/s of one Adam step of each MLP and the ratio kiln / PyTorch (1 and 2 threads);
- the share of an epoch spent outside the step (rows to tensors, shuffling, validation,
  metrics): 1 - 16 steps / one `fit` epoch of 16 steps;
- GFLOP/s of a 4096² matmul against numpy's OpenBLAS sgemm.

    PY=$(../shared/peers/setup.sh | tail -1)     # a venv with torch and numpy
    $PY benches/peers/compare.py                 # from the repository root
    KILN_BENCH_ARGS="--profile dev" $PY benches/peers/compare.py   # reuse the test build

kiln's figures are criterion medians; PyTorch's the median of 5 runs of 200 steps. Only
ratios from one invocation are comparable: the machine is shared.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRITERION = os.path.join(ROOT, "target", "criterion")
BATCH = 256
EPOCH_STEPS = 16
MATMUL_FLOP = 2 * 4096**3


def median_s(*parts):
    path = os.path.join(CRITERION, *parts, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] * 1e-9


def backends(*parts):
    path = os.path.join(CRITERION, *parts)
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def main():
    # KILN_BENCH_ARGS adds cargo flags, e.g. "--profile dev" to reuse a test build (slower code).
    extra = os.environ.get("KILN_BENCH_ARGS", "").split()
    subprocess.run(["cargo", "bench", "--workspace", "--bench", "train_step", *extra], cwd=ROOT, check=True)
    script = os.path.join(ROOT, "benches", "peers", "torch_step.py")
    peer = json.loads(subprocess.run([sys.executable, script], check=True, capture_output=True, text=True).stdout)

    print(f"\nOne Adam step at batch {BATCH}; PyTorch {peer['version']}")
    print(f"{'model':<22}{'backend':<10}{'kiln samples/s':>16}{'torch 1t':>11}{'torch 2t':>11}{'kiln/torch1':>13}{'kiln/torch2':>13}")
    for model, runs in peer["results"].items():
        torch_sps = {r["threads"]: r["samples_per_s"] for r in runs}
        for backend in backends("train_step", f"{model}_b256"):
            step = median_s("train_step", f"{model}_b256", backend)
            if step is None:
                continue
            sps = BATCH / step
            print(f"{model:<22}{backend:<10}{sps:>16.0f}{torch_sps[1]:>11.0f}{torch_sps[2]:>11.0f}"
                  f"{sps / torch_sps[1]:>13.2f}{sps / torch_sps[2]:>13.2f}")

    print(f"\nShare of a fit epoch ({EPOCH_STEPS} steps + validation of 512 rows) outside the step")
    for backend in backends("train_epoch", "mlp_784_128_64_10_b256"):
        epoch = median_s("train_epoch", "mlp_784_128_64_10_b256", backend)
        step = median_s("train_step", "mlp_784_128_64_10_b256", backend)
        if epoch and step:
            print(f"  {backend:<10} epoch {epoch * 1e3:8.1f} ms, steps {EPOCH_STEPS * step * 1e3:8.1f} ms, "
                  f"outside {1 - EPOCH_STEPS * step / epoch:6.1%}")

    print(f"\n4096² float32 matmul; numpy {peer['numpy']} (OpenBLAS) {peer['sgemm_4096_gflops']:.1f} GFLOP/s")
    for backend in backends("matmul", "4096"):
        seconds = median_s("matmul", "4096", backend)
        if seconds:
            gflops = MATMUL_FLOP / seconds / 1e9
            print(f"  {backend:<10} {gflops:8.1f} GFLOP/s   kiln/numpy {gflops / peer['sgemm_4096_gflops']:.2f}")


if __name__ == "__main__":
    main()
