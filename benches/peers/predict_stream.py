#!/usr/bin/env python3
"""Batch scoring of a file larger than kiln needs to hold: `kiln predict` on a generated CSV
of `--rows` penguins rows (the shipped rows repeated), streamed in chunks (the default, 65,536
rows) against the whole file as one chunk, in one invocation. Prints rows/s and each run's
peak RSS (the child's own, from wait4).

    cargo build --release --workspace --bin kiln
    python3 benches/peers/predict_stream.py [--rows 2000000]    # from the repository root
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
KILN = os.path.join(ROOT, "target", "release", "kiln")


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def run(args):
    """Seconds and peak RSS (MiB) of `args`, which must succeed."""
    start = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{' '.join(args)} failed: {child.stderr.read().decode()}")
    return seconds, usage.ru_maxrss / 1024  # KiB on Linux


def main():
    rows = int(arg("--rows", 2_000_000))
    work = tempfile.mkdtemp(prefix="kiln-predict-stream-")
    subprocess.run([KILN, "train", os.path.join(ROOT, "examples/penguins/pipeline.toml"), "--out", work,
                    "--json"], check=True, stdout=subprocess.DEVNULL)
    bundle = os.path.join(work, "penguins-species-1", "bundle")
    with open(os.path.join(ROOT, "examples/penguins/penguins.csv")) as f:
        header, *body = f.read().splitlines()
    big = os.path.join(work, "big.csv")
    with open(big, "w") as f:
        f.write(header + "\n")
        for i in range(rows):
            f.write(body[i % len(body)] + "\n")
    size_mb = os.path.getsize(big) / 2**20
    print(f"kiln predict on {rows:,} rows ({size_mb:.0f} MiB CSV), ndarray backend")
    print(f"{'mode':<28}{'seconds':>9}{'rows/s':>12}{'peak RSS MiB':>14}")
    for label, extra in [("streamed (65,536-row chunks)", []), ("whole file, one chunk", ["--chunk-rows", str(rows)])]:
        out = os.path.join(work, "predictions.csv")
        seconds, rss = run([KILN, "predict", bundle, big, "-o", out, *extra])
        with open(out) as f:
            written = sum(1 for _ in f) - 1
        assert written == rows, f"{written} predictions for {rows} rows"
        print(f"{label:<28}{seconds:>9.2f}{rows / seconds:>12,.0f}{rss:>14.0f}")


if __name__ == "__main__":
    main()
