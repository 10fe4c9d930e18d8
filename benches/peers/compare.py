#!/usr/bin/env python3
"""Runs kiln's `train_step` criterion benchmarks and the PyTorch / numpy peers back to back,
and prints, per backend kiln has here:
- samples/s of one Adam step of each model and the ratio kiln / PyTorch (1 and 2 threads on
  the CPU; CUDA with `--device cuda`);
- the share of an epoch spent outside the step (rows to tensors, shuffling, validation,
  metrics): the time of one `fit` epoch of 16 steps beyond the same steps run bare (measured
  in pairs: `train/epoch_outside`), over the epoch's time; with the validation pass and
  without;
- GFLOP/s of a 4096² matmul against numpy's OpenBLAS sgemm.

    PY=$(../shared/peers/setup.sh | tail -1)     # a venv with torch and numpy
    $PY benches/peers/compare.py                 # from the repository root
    KILN_BENCH_ARGS="--profile dev" $PY benches/peers/compare.py   # reuse the test build
    # A machine without cargo (the GPU machine): a prebuilt bench binary, PyTorch on CUDA,
    # criterion's filter picking the GPU backends.
    python3 benches/peers/compare.py --bench-bin ./train_step --device cuda --filter 'wgpu|cuda'

kiln's figures are criterion medians; PyTorch's the median of 5 runs of 200 steps. Only
ratios from one invocation are comparable: the machine is shared.
"""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CRITERION = os.environ.get("CRITERION_HOME", os.path.join(ROOT, "target", "criterion"))
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


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main():
    bench_bin, device, bench_filter = arg("--bench-bin"), arg("--device", "cpu"), arg("--filter")
    # Criterion's own options, e.g. `--warm-up-time 1`.
    criterion = [bench_filter] if bench_filter else []
    if "--warm-up-time" in sys.argv:
        criterion += ["--warm-up-time", arg("--warm-up-time")]
    if bench_bin:
        subprocess.run([bench_bin, "--bench", *criterion], cwd=ROOT, check=True)
    else:
        # KILN_BENCH_ARGS adds cargo flags, e.g. "--profile dev" to reuse a test build.
        extra = os.environ.get("KILN_BENCH_ARGS", "").split()
        tail = ["--", *criterion] if criterion else []
        subprocess.run(["cargo", "bench", "--workspace", "--bench", "train_step", *extra, *tail], cwd=ROOT, check=True)
    script = os.path.join(ROOT, "benches", "peers", "torch_step.py")
    peer = json.loads(subprocess.run([sys.executable, script, "--device", device], check=True,
                                     capture_output=True, text=True).stdout)

    print(f"\nOne Adam step at batch {BATCH}; PyTorch {peer['version']} on {peer['device']}")
    labels = [r["label"] for r in next(iter(peer["results"].values()))]
    print(f"{'model':<22}{'backend':<10}{'kiln samples/s':>16}" + "".join(f"{'torch ' + l:>14}" for l in labels)
          + "".join(f"{'kiln/' + l:>12}" for l in labels))
    for model, runs in peer["results"].items():
        torch_sps = [r["samples_per_s"] for r in runs]
        for backend in backends("train_step", f"{model}_b256"):
            step = median_s("train_step", f"{model}_b256", backend)
            if step is None:
                continue
            sps = BATCH / step
            print(f"{model:<22}{backend:<10}{sps:>16.0f}" + "".join(f"{t:>14.0f}" for t in torch_sps)
                  + "".join(f"{sps / t:>12.2f}" for t in torch_sps))

    for suffix, what in (("", "validation of 512 rows"), ("_no_valid", "no validation")):
        print(f"\nShare of a fit epoch ({EPOCH_STEPS} steps, {what}) outside the step")
        for backend in backends("train_epoch", f"mlp_784_128_64_10_b256{suffix}"):
            epoch = median_s("train_epoch", f"mlp_784_128_64_10_b256{suffix}", backend)
            outside = median_s("train_epoch_outside", f"mlp_784_128_64_10_b256{suffix}", backend)
            if epoch and outside is not None:
                print(f"  {backend:<10} epoch {epoch * 1e3:8.1f} ms, outside the steps {outside * 1e3:6.2f} ms "
                      f"({outside / epoch:6.1%})")

    peer_gflops = peer["sgemm_4096_gflops"]
    print(f"\n4096² float32 matmul; {peer['sgemm_by']} {peer_gflops:.1f} GFLOP/s")
    for backend in backends("matmul", "4096"):
        seconds = median_s("matmul", "4096", backend)
        if seconds:
            gflops = MATMUL_FLOP / seconds / 1e9
            print(f"  {backend:<10} {gflops:8.1f} GFLOP/s   kiln/{peer['sgemm_by']} {gflops / peer_gflops:.2f}")


if __name__ == "__main__":
    main()
