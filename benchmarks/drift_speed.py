"""Throughput of ``driftguard.components.drift.detect_drift`` beside TFDV's statistics generation.

Run by hand (it prints a table; no assertions)::

    .venv/bin/python benchmarks/drift_speed.py                     # 100,000 and 1,000,000 rows, ~3-5 min
    .venv/bin/python benchmarks/drift_speed.py --sizes 100000 --no-tfdv
    .venv/bin/python benchmarks/drift_speed.py --sizes 1000000 --no-tfdv --profile 25   # cProfile, top 25
    .venv/bin/python benchmarks/drift_speed.py --continuous --no-tfdv    # worst case: every value distinct

Single process throughout (the machine is shared): ``detect_drift`` is plain numpy on one
core, and TFDV runs ``generate_statistics_from_dataframe(..., n_jobs=1)`` (its in-memory,
single-process path, no Beam).

Data: the 15,002 Chicago taxi trips shipped with TFX, every column except the label
``tips`` and the all-but-empty ``pickup_census_tract`` (16 columns: 12 numeric, 2 text,
2 more numeric-with-gaps; read with pandas exactly as a user would), bootstrap-resampled
to ``n`` rows per side with ``numpy.random.default_rng(seed)`` (reference and current are
two independent resamples).

What is counted
    ``detect_drift`` reads and compares *both* sides (n reference + n current rows) in one
    call. Its "rows/s" is **rows of the current side per second of the whole call** (the
    rate at which a monitored stream can be checked against a fixed reference), i.e. n /
    seconds; the table also shows both sides together (2n / seconds).
    TFDV's statistics are timed on one side (the current one, n rows): rows/s = n /
    seconds. A TFDV drift check needs the statistics of both sides (the reference
    statistics can be cached) plus ``validate_statistics``, which is not timed here.
    The import time of each library is reported separately and excluded from rows/s.
"""
from __future__ import annotations

import argparse
import cProfile
import importlib.util
import io
import pstats
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EXCLUDE = ["tips", "pickup_census_tract"]
SIZES = [100_000, 1_000_000]


def taxi_csv() -> Path:
    spec = importlib.util.find_spec("tfx")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tfx is not installed: cannot find the Chicago taxi sample data")
    return Path(list(spec.submodule_search_locations)[0]) / "examples/chicago_taxi_pipeline/data/simple/data.csv"


def resample(data, n: int, rng: np.random.Generator):
    return data.iloc[rng.integers(0, len(data), n)].reset_index(drop=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="rows per side (default 100000 1000000)")
    parser.add_argument("--repeat", type=int, default=1, help="timed detect_drift calls per size; the best is shown")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tfdv", action="store_true", help="time detect_drift only")
    parser.add_argument("--continuous", action="store_true",
                        help="add a relative jitter of 1e-9 to every numeric value (all values distinct: "
                             "the worst case, where detect_drift sorts instead of hash-counting)")
    parser.add_argument("--profile", type=int, metavar="TOP", default=0,
                        help="also print a cProfile of detect_drift at the largest size (TOP functions)")
    args = parser.parse_args(argv)

    import pandas as pd

    data = pd.read_csv(taxi_csv()).drop(columns=EXCLUDE)
    t0 = time.perf_counter()
    from driftguard.components.drift import detect_drift
    import_drift = time.perf_counter() - t0

    rows = []
    for n in args.sizes:
        rng = np.random.default_rng([args.seed, n])
        ref, cur = resample(data, n, rng), resample(data, n, rng)
        if args.continuous:
            for frame in (ref, cur):
                for name in frame.columns:
                    if frame[name].dtype.kind in "if":
                        frame[name] = frame[name] * (1.0 + 1e-9 * rng.random(len(frame)))
        best = float("inf")
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            report = detect_drift(ref, cur)
            best = min(best, time.perf_counter() - t0)
        rows.append(("detect_drift (both sides)", n, best, n / best, 2 * n / best,
                     f"drift={report.drift_detected}"))
        if args.profile and n == max(args.sizes):
            profiler = cProfile.Profile()
            profiler.enable()
            detect_drift(ref, cur)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(args.profile)
            print(f"# cProfile of detect_drift, n = {n:,} per side (cumulative)\n{out.getvalue()}")
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
            print(f"# cProfile of detect_drift, n = {n:,} per side (own time)\n{out.getvalue()}")
        if not args.no_tfdv:
            t0 = time.perf_counter()
            import tensorflow_data_validation as tfdv
            import_tfdv = time.perf_counter() - t0
            t0 = time.perf_counter()
            tfdv.generate_statistics_from_dataframe(cur, n_jobs=1)
            seconds = time.perf_counter() - t0
            rows.append(("tfdv.generate_statistics_from_dataframe (one side)", n, seconds, n / seconds,
                         float("nan"), ""))
        del ref, cur

    print(f"# {len(data.columns)} columns ({', '.join(data.columns)}), bootstrap of {len(data):,} taxi trips, "
          "1 process")
    print(f"# import driftguard.components.drift: {import_drift:.2f} s" +
          ("" if args.no_tfdv else f"; import tensorflow_data_validation: {import_tfdv:.2f} s") +
          " (not counted below)\n")
    print("| what | rows per side | seconds | rows/s (current side) | rows/s (both sides) | note |")
    print("|---|---:|---:|---:|---:|---|")
    for what, n, seconds, rate, rate2, note in rows:
        both = "-" if rate2 != rate2 else f"{rate2:,.0f}"
        print(f"| {what} | {n:,} | {seconds:.2f} | {rate:,.0f} | {both} | {note} |")
    print("\ntarget (product issue): detect_drift >= 1,000,000 rows/s, counted on the current side")


if __name__ == "__main__":
    main()
