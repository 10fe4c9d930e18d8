#!/usr/bin/env python3
"""CSV ingest to a typed table (read + type inference) on flights.csv: kiln against pyarrow,
polars and pandas in one invocation; prints seconds, M rows/s, MB/s and the ratios
kiln / peer (throughput, so > 1 means kiln is faster).

    cargo build --release -p kiln-data --example ingest      # kiln's side
    $PY benches/peers/ingest.py [--file ../shared/data/flights.csv] [--reps 5]

Every reader runs in its own process, with its default threads (kiln, pyarrow and polars use
every core; pandas' C engine uses one), on a file in the page cache: this measures parsing
and typing, not the disk. Medians of `--reps` runs after one warm-up. The machine is shared:
only the ratios from one invocation mean anything.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


FILE = arg("--file", os.path.join(ROOT, "..", "shared", "data", "flights.csv"))
REPS = int(arg("--reps", "5"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KILN = arg("--kiln", os.path.join(TARGET, "release", "examples", "ingest"))


def peer(reader):
    """Runs in a fresh interpreter: one reader, timed."""
    if reader == "pyarrow":
        import pyarrow.csv as pacsv
        fn = lambda: pacsv.read_csv(FILE)  # noqa: E731
        version = __import__("pyarrow").__version__
    elif reader == "polars":
        import polars as pl
        fn = lambda: pl.read_csv(FILE, null_values="NA", infer_schema_length=1000)  # noqa: E731
        version = pl.__version__
    else:
        import pandas as pd
        fn = lambda: pd.read_csv(FILE)  # noqa: E731
        version = pd.__version__
    rows = len(fn())
    runs = []
    for _ in range(REPS):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    median = statistics.median(runs)
    size = os.path.getsize(FILE)
    return {"reader": reader, "version": version, "rows": rows, "bytes": size,
            "median_s": median, "runs_s": runs,
            "rows_per_s": rows / median, "MB_per_s": size / 1e6 / median}


def main():
    if "--child" in sys.argv:
        print(json.dumps(peer(arg("--child", ""))))
        return
    if not os.path.exists(KILN):
        sys.exit(f"{KILN} is missing: cargo build --release -p kiln-data --example ingest")
    results = []
    out = subprocess.run([KILN, FILE, str(REPS)], check=True, capture_output=True, text=True)
    results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for reader in ("pyarrow", "polars", "pandas"):
        out = subprocess.run([sys.executable, __file__, "--child", reader, "--file", FILE,
                              "--reps", str(REPS)], check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    kiln = results[0]
    print(f"{os.path.basename(FILE)}: {kiln['rows']} rows, {kiln['bytes'] / 1e6:.1f} MB, "
          f"median of {REPS}")
    print(f"{'reader':<16}{'seconds':>9}{'M rows/s':>10}{'MB/s':>8}{'kiln/reader':>13}")
    for r in results:
        name = r["reader"] + (f" {r['version']}" if "version" in r else "")
        print(f"{name:<16}{r['median_s']:>9.3f}{r['rows_per_s'] / 1e6:>10.2f}"
              f"{r['MB_per_s']:>8.0f}{r['median_s'] / kiln['median_s']:>13.2f}")
    print(f"kiln phases: read {kiln['read_s']:.3f} s, infer {kiln['infer_s']:.3f} s, "
          f"type to Arrow {kiln['conform_s']:.3f} s")
    print(json.dumps({"file": FILE, "reps": REPS, "results": results}))


if __name__ == "__main__":
    main()
