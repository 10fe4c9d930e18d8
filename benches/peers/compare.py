#!/usr/bin/env python3
"""Runs kiln's `train_step` criterion benchmarks and the PyTorch / numpy peers back to back,
and prints, per backend kiln has here:
- samples/s of one Adam step of each model and the ratio kiln / PyTorch (1 and 2 threads on
  the CPU; CUDA with `--device cuda`);
- the share of an epoch spent outside the step (rows to tensors, shuffling, outputs to the
  host, metrics, history): the time of one `fit` epoch of 16 steps beyond the same steps run
  bare, and with validation beyond the bare forward pass over the validation rows too
  (measured in pairs: `train/epoch_outside`), over the epoch's time; with the validation pass
  and without; and the share of that bare forward pass (`train/valid_forward`);
- GFLOP/s of a 4096² matmul against numpy's OpenBLAS sgemm;
- then, for the two MLPs the training goal names (784-128-64-10, 784-256-128-10), the step
  ratio over `--rounds` more rounds (default 3; 0 for none), each round kiln's step then
  PyTorch's, one right after the other: the machine's speed drifts within minutes, so a ratio
  is only fair between runs close in time; each round's ratio and their median.

    PY=$(../shared/peers/setup.sh | tail -1)     # a venv with torch and numpy
    $PY benches/peers/compare.py --backends 'flex|ndarray'   # from the repository root
    KILN_BENCH_ARGS="--profile dev" $PY benches/peers/compare.py   # reuse the test build
    # A machine without cargo (the GPU machine): a prebuilt bench binary, PyTorch on CUDA,
    # the GPU backends only.
    python3 benches/peers/compare.py --bench-bin ./train_step --device cuda --backends 'wgpu|cuda' --rounds 0

`--backends` is a regular expression on criterion's backend names (the last part of each
benchmark id); without it, every backend here runs. kiln's figures are criterion medians;
PyTorch's the median of 15 runs of 64 steps. Only ratios from one invocation are comparable:
the machine is shared.
"""
import json
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRITERION = os.environ.get("CRITERION_HOME", os.path.join(ROOT, "target", "criterion"))
BATCH = 256
EPOCH_STEPS = 16
MATMUL_FLOP = 2 * 4096**3
GOAL_MODELS = ["mlp_784_128_64_10", "mlp_784_256_128_10"]


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


BACKENDS = arg("--backends", "[^/]+")


def median_s(*parts):
    path = os.path.join(CRITERION, *parts, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] * 1e-9


def backends(*parts):
    """The backends criterion holds results of under `parts` that this run measured (an
    earlier run may have left others)."""
    path = os.path.join(CRITERION, *parts)
    found = sorted(os.listdir(path)) if os.path.isdir(path) else []
    return [b for b in found if re.fullmatch(BACKENDS, b)]


def run_kiln(bench_bin, criterion):
    if bench_bin:
        subprocess.run([bench_bin, "--bench", *criterion], cwd=ROOT, check=True)
    else:
        # KILN_BENCH_ARGS adds cargo flags, e.g. "--profile dev" to reuse a test build.
        extra = os.environ.get("KILN_BENCH_ARGS", "").split()
        subprocess.run(["cargo", "bench", "--workspace", "--bench", "train_step", *extra, "--", *criterion],
                       cwd=ROOT, check=True)


def run_torch(device, *extra):
    script = os.path.join(ROOT, "benches", "peers", "torch_step.py")
    return json.loads(subprocess.run([sys.executable, script, "--device", device, *extra], check=True,
                                     capture_output=True, text=True).stdout)


def kiln_sps(model):
    """Backend → kiln samples/s of `model`'s step, from criterion's latest run."""
    found = {}
    for backend in backends("train_step", f"{model}_b256"):
        step = median_s("train_step", f"{model}_b256", backend)
        if step is not None:
            found[backend] = BATCH / step
    return found


def main():
    if "-h" in sys.argv or "--help" in sys.argv:
        print(__doc__)
        return
    bench_bin, device = arg("--bench-bin"), arg("--device", "cpu")
    rounds = int(arg("--rounds", 3))
    # Criterion's own options, e.g. `--warm-up-time 1`.
    timing = ["--warm-up-time", arg("--warm-up-time")] if "--warm-up-time" in sys.argv else []
    run_kiln(bench_bin, [f"/({BACKENDS})$", *timing])
    peer = run_torch(device)

    print(f"\nOne Adam step at batch {BATCH}; PyTorch {peer['version']} on {peer['device']}")
    labels = [r["label"] for r in next(iter(peer["results"].values()))]
    print(f"{'model':<22}{'backend':<10}{'kiln samples/s':>16}" + "".join(f"{'torch ' + l:>14}" for l in labels)
          + "".join(f"{'kiln/' + l:>12}" for l in labels))
    for model, runs in peer["results"].items():
        torch_sps = [r["samples_per_s"] for r in runs]
        for backend, sps in kiln_sps(model).items():
            print(f"{model:<22}{backend:<10}{sps:>16.0f}" + "".join(f"{t:>14.0f}" for t in torch_sps)
                  + "".join(f"{sps / t:>12.2f}" for t in torch_sps))

    for suffix, what in (("", "validation of 512 rows"), ("_no_valid", "no validation")):
        print(f"\nShare of a fit epoch ({EPOCH_STEPS} steps, {what}) outside the step"
              + (" and the validation forward pass" if not suffix else ""))
        for backend in backends("train_epoch", f"mlp_784_128_64_10_b256{suffix}"):
            epoch = median_s("train_epoch", f"mlp_784_128_64_10_b256{suffix}", backend)
            outside = median_s("train_epoch_outside", f"mlp_784_128_64_10_b256{suffix}", backend)
            if epoch and outside is not None:
                line = (f"  {backend:<10} epoch {epoch * 1e3:8.1f} ms, outside {outside * 1e3:6.2f} ms "
                        f"({outside / epoch:6.1%})")
                forward = None if suffix else median_s("train_valid_forward", "mlp_784_128_64_10_r512", backend)
                if forward is not None:
                    line += f"; the bare validation forward {forward * 1e3:.2f} ms ({forward / epoch:.1%})"
                print(line)

    if "sgemm_4096_gflops" in peer:
        peer_gflops = peer["sgemm_4096_gflops"]
        print(f"\n4096² float32 matmul; {peer['sgemm_by']} {peer_gflops:.1f} GFLOP/s")
        for backend in backends("matmul", "4096"):
            seconds = median_s("matmul", "4096", backend)
            if seconds:
                gflops = MATMUL_FLOP / seconds / 1e9
                print(f"  {backend:<10} {gflops:8.1f} GFLOP/s   kiln/{peer['sgemm_by']} {gflops / peer_gflops:.2f}")

    # (model, backend, torch label) → kiln / torch of each round.
    ratios = {}
    goal = "|".join(GOAL_MODELS)
    for _ in range(rounds):
        run_kiln(bench_bin, [f"^train/step/({goal})_b256/({BACKENDS})$", *timing])
        peer = run_torch(device, "--models", ",".join(GOAL_MODELS), "--no-sgemm")
        for model, runs in peer["results"].items():
            sps = kiln_sps(model)
            for r in runs:
                for backend in sps:
                    ratios.setdefault((model, backend, r["label"]), []).append(sps[backend] / r["samples_per_s"])
    if rounds:
        print(f"\nkiln / PyTorch on the goal models, {rounds} rounds of kiln then PyTorch back to back")
        for (model, backend, label), values in sorted(ratios.items()):
            each = " ".join(f"{v:.2f}" for v in values)
            print(f"  {model:<22}{backend:<10}vs {label:<10} median {statistics.median(values):.2f}  ({each})")


if __name__ == "__main__":
    main()
