"""Drift per slice: false alarms and power of the whole-table check alone vs with slices.

Run by hand (it prints a table; no assertions)::

    nice -n 10 .venv/bin/python benchmarks/slice_drift.py                  # ~2-4 min
    nice -n 10 .venv/bin/python benchmarks/slice_drift.py --trials 100 --sizes 2000 5000 10000

What is compared (``components/drift/slices.py``, ``components/drift_detector/compare.py``)
    ``whole``: today's span check without slices, ``detect_drift`` at alpha 0.01 and the joint
    check at 0.01. ``with slices``: what ``drift.slices: [[payment_type]]`` runs, the whole table
    at half of each level (0.005) and every payment type with at least 200 rows per side at
    0.005 / K (Bonferroni over the K slices tested). ``any`` is the span's verdict with slices
    (whole or a slice). Rates are the share of trials that alarm, over ``--trials`` pairs of
    tables drawn with replacement from the taxi spans 1-2 (``data/taxi``, 1,962 trips).

Scenarios
    ``no drift``: both tables from spans 1-2. ``fare x1.15, Credit Card``: the current table's
    fares multiplied by 1.15 on credit-card trips only (~30 % of the rows); ``fare x1.15, Cash``
    the same on cash trips (~60 %); ``trip_miles x1.3, No Charge/Unknown/...``: a shift in the
    small payment types only (~3 % of the rows, slices mostly below 200 rows: neither check
    is expected to see it).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FEATURES = ["fare", "trip_miles", "trip_seconds", "company", "trip_start_hour", "pickup_community_area"]
CATEGORICAL = {"trip_start_hour": {"kind": "categorical"}, "pickup_community_area": {"kind": "categorical"}}
SMALL = ("No Charge", "Unknown", "Pcard", "Dispute", "Prcard")


def _scale(table, column, factor, rows):
    values = np.asarray(table.column(column).to_pylist(), dtype=float)
    return table.set_column(table.column_names.index(column), column,
                            pa.array(np.where(rows, np.round(values * factor, 2), values)))


def scenario(name, table):
    payment = np.asarray(table.column("payment_type").to_pylist(), dtype=object)
    if name == "no drift":
        return table
    if name == "fare x1.15, Credit Card":
        return _scale(table, "fare", 1.15, payment == "Credit Card")
    if name == "fare x1.15, Cash":
        return _scale(table, "fare", 1.15, payment == "Cash")
    if name == "trip_miles x1.3, small payment types":
        return _scale(table, "trip_miles", 1.3, np.isin(payment, SMALL))
    raise ValueError(name)


def main(argv=None):
    from driftguard.components.drift import detect_drift
    from driftguard.components.drift.slices import detect_slice_drift

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    window = pa.concat_tables([pacsv.read_csv(REPO / "data/taxi" / f"span-{s}" / "data.csv") for s in (1, 2)])
    window = window.select(FEATURES + ["payment_type"])
    names = ["no drift", "fare x1.15, Credit Card", "fare x1.15, Cash", "trip_miles x1.3, small payment types"]
    print(f"{args.trials} trials per cell; alarm rates (share of trials)")
    print(f"{'scenario':40s} {'n':>6s} {'whole':>6s} | {'with slices: whole':>19s} {'slices':>7s} {'any':>6s}"
          f" {'K':>4s}")
    start = time.time()
    rng = np.random.default_rng(args.seed)
    for name in names:
        for n in args.sizes:
            hits = np.zeros(4)
            ks = []
            for _ in range(args.trials):
                ref = window.take(pa.array(rng.integers(0, window.num_rows, n)))
                cur = scenario(name, window.take(pa.array(rng.integers(0, window.num_rows, n))))
                cols = FEATURES + ["payment_type"]
                whole = detect_drift(ref.select(cols), cur.select(cols), feature_config=CATEGORICAL,
                                     alpha=0.01, multivariate_alpha=0.01)
                half = detect_drift(ref.select(cols), cur.select(cols), feature_config=CATEGORICAL,
                                    alpha=0.005, multivariate_alpha=0.005)
                sliced = detect_slice_drift(ref, cur, [["payment_type"]], features=FEATURES,
                                            feature_config=CATEGORICAL, alpha=0.005, multivariate_alpha=0.005)
                ks.append(sliced.tested)
                hits += [whole.drift_detected, half.drift_detected, sliced.drift_detected,
                         half.drift_detected or sliced.drift_detected]
            rate = hits / args.trials
            print(f"{name:40s} {n:6d} {rate[0]:6.2f} | {rate[1]:19.2f} {rate[2]:7.2f} {rate[3]:6.2f} "
                  f"{np.median(ks):4.0f}", flush=True)
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
