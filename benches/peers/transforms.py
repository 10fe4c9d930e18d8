#!/usr/bin/env python3
"""Feature-transform fit + transform throughput on flights.csv: kiln against scikit-learn's
ColumnTransformer (SimpleImputer(median) + StandardScaler on the numeric columns,
SimpleImputer(most_frequent) + OneHotEncoder on the categorical ones), in one invocation;
prints seconds, rows/s and the ratio kiln / sklearn (throughput: > 1 means kiln is faster).

    cargo build --release --workspace --example fit_transform      # kiln's side
    $PY benches/peers/transforms.py [--file ../shared/data/flights.csv] [--reps 5]

Reading the file is not timed on either side. kiln runs twice: with its default threads
and with RAYON_NUM_THREADS=1; sklearn runs with its default sparse one-hot output and with a
dense one (kiln's output is dense). Medians of `--reps` runs after one warm-up. The machine is
shared: only the ratios from one invocation mean anything.
"""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NUMERIC = ["dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
           "air_time", "distance", "hour", "minute"]
CATEGORICAL = ["carrier", "origin", "dest"]


def arg(name, default):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


FILE = arg("--file", os.path.join(ROOT, "..", "shared", "data", "flights.csv"))
REPS = int(arg("--reps", "5"))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
KILN = arg("--kiln", os.path.join(TARGET, "release", "examples", "fit_transform"))


def sklearn(dense):
    import pandas as pd
    import sklearn as sk
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = pd.read_csv(FILE, usecols=NUMERIC + CATEGORICAL)

    def make():
        return ColumnTransformer(
            [("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
             ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                   OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)),
              CATEGORICAL)],
            sparse_threshold=0.0 if dense else 0.3)

    width = make().fit_transform(frame).shape[1]
    runs = []
    for _ in range(REPS):
        started = time.perf_counter()
        make().fit_transform(frame)
        runs.append(time.perf_counter() - started)
    median = statistics.median(runs)
    return {"name": f"sklearn {sk.__version__} ({'dense' if dense else 'sparse'})",
            "rows": len(frame), "width": width, "median_s": median, "runs_s": runs,
            "rows_per_s": len(frame) / median}


def main():
    if "--child" in sys.argv:
        print(json.dumps(sklearn(arg("--child", "") == "dense")))
        return
    if not os.path.exists(KILN):
        sys.exit(f"{KILN} is missing: cargo build --release --workspace --example fit_transform")
    results = []
    for threads in (None, "1"):
        env = dict(os.environ)
        if threads:
            env["RAYON_NUM_THREADS"] = threads
        out = subprocess.run([KILN, FILE, str(REPS), ",".join(NUMERIC), ",".join(CATEGORICAL)],
                             check=True, capture_output=True, text=True, env=env)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["name"] = f"kiln ({result['threads']} thread{'s' if result['threads'] > 1 else ''})"
        results.append(result)
    for variant in ("sparse", "dense"):
        out = subprocess.run([sys.executable, __file__, "--child", variant, "--file", FILE,
                              "--reps", str(REPS)], check=True, capture_output=True, text=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{os.path.basename(FILE)}: {results[0]['rows']} rows, {len(NUMERIC)} numeric + "
          f"{len(CATEGORICAL)} categorical columns -> {results[0]['width']} features; "
          f"fit + transform, median of {REPS}")
    print(f"{'':<28}{'seconds':>9}{'M rows/s':>10}")
    for r in results:
        print(f"{r['name']:<28}{r['median_s']:>9.3f}{r['rows_per_s'] / 1e6:>10.2f}")
    best_sklearn = max(results[2:], key=lambda r: r["rows_per_s"])
    for r in results[:2]:
        print(f"ratio {r['name']} / {best_sklearn['name']}: "
              f"{r['rows_per_s'] / best_sklearn['rows_per_s']:.1f}x")


if __name__ == "__main__":
    main()
