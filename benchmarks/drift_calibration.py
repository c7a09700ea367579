"""Calibration of the drift detector on real data: false alarms and detection rates.

Run by hand (it prints tables; no assertions)::

    .venv/bin/python benchmarks/drift_calibration.py                 # full table, ~30-60 min on 2 cores
    .venv/bin/python benchmarks/drift_calibration.py --trials 20 --sizes 500 2000 --jobs 2   # quick look

Data: the 15,002 Chicago taxi trips shipped with TFX
(``tfx/examples/chicago_taxi_pipeline/data/simple/data.csv``), all columns except the
label ``tips`` and ``pickup_census_tract`` (one non-null value in 15,002: all-null in
almost every sample, which ``detect_drift`` rejects by design).

Samples of ``n`` rows per side: for ``n <= 7,500`` two *disjoint* random subsets of the
trips; above, two independent bootstrap samples (with replacement), i.e. two samples of
the same (empirical) distribution. A scenario then modifies the current sample only.
Every trial is seeded from ``(scenario, n, trial)`` so the table is reproducible.

Detectors compared, each reporting "drift" for the whole table or not:

- ``driftguard``: ``driftguard.components.drift.detect_drift`` with its defaults;
- ``jsd10``: Jensen-Shannon divergence (base 2) per feature, drift when any feature
  exceeds 0.1. Numeric features follow TFDV's ``JensenShannonDivergence``
  (``tensorflow_data_validation/anomalies/metrics.cc``): each sample gets its own 10
  equal-width buckets over its own [min, max] (TFDV's standard histogram), and the two
  histograms are aligned on the union of their boundaries assuming a uniform density
  inside each bucket. Categorical features: JS divergence of the category frequencies.
  Missing values are left out. A re-implementation, not TFDV itself;
- ``chi2``: Pearson chi-square per feature on 10 equal-width bins over the pooled range
  / all categories, drift when any feature has p < 0.05, no multiple-testing correction.

A second table gives the median of every method's score on the feature a scenario
changes. ``--scale-table`` prints instead how each score grows with a multiplicative
change of the ratio-scale features on 100,000-row bootstrap samples: the measurements
behind the default thresholds of ``components/drift/registry.py``.
"""
from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from driftguard.components.drift import detect_drift  # noqa: E402
from driftguard.components.drift._distributions import chi2_sf  # noqa: E402
from driftguard.components.drift.divergence import jensen_shannon  # noqa: E402

EXCLUDE = ["tips", "pickup_census_tract"]
DISJOINT_MAX = 7500
SIZES = [500, 1000, 2000, 5000, 7500, 10000, 20000, 50000, 100000]


def taxi_csv() -> Path:
    spec = importlib.util.find_spec("tfx")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tfx is not installed: cannot find the Chicago taxi sample data")
    return Path(list(spec.submodule_search_locations)[0]) / "examples/chicago_taxi_pipeline/data/simple/data.csv"


# --- scenarios: (name, function(current DataFrame, rng) -> DataFrame) ----------------------------

def _replace_share(cur, column, rng, share, value, among=None):
    rows = np.flatnonzero(among(cur)) if among is not None else np.arange(len(cur))
    k = min(rows.size, int(round(share * len(cur))))
    pick = rng.choice(rows, size=k, replace=False)
    out = cur.copy()
    col = out[column].astype(object).to_numpy()
    col[pick] = value(np.arange(k)) if callable(value) else value
    out[column] = col
    return out


def _scale(column, factor):
    def apply(cur, rng):
        out = cur.copy()
        out[column] = out[column] * factor
        return out
    return apply


def _hour_shift(hours):
    def apply(cur, rng):
        out = cur.copy()
        out["trip_start_hour"] = (out["trip_start_hour"] + hours) % 24
        return out
    return apply


def _cash_down(cur, rng):
    return _replace_share(cur, "payment_type", rng, 0.10, "Credit Card", among=lambda d: d["payment_type"] == "Cash")


def _unseen_payment(cur, rng):
    return _replace_share(cur, "payment_type", rng, 0.05, "Mobile")


def _unseen_companies(cur, rng):
    return _replace_share(cur, "company", rng, 0.05, lambda i: np.array([f"New Cab {j % 50}" for j in i], dtype=object),
                          among=lambda d: d["company"].notna())


def _fare_missing(cur, rng):
    out = cur.copy()
    pick = rng.choice(len(out), size=int(round(0.10 * len(out))), replace=False)
    fare = out["fare"].to_numpy(dtype=float).copy()
    fare[pick] = np.nan
    out["fare"] = fare
    return out


def _company_missing(cur, rng):
    return _replace_share(cur, "company", rng, 0.10, None, among=lambda d: d["company"].notna())


def _decouple(cur, rng):
    out = cur.copy()
    out["trip_miles"] = rng.permutation(out["trip_miles"].to_numpy())
    return out


# (name, change applied to the current sample, target, feature whose scores are tabulated)
SCENARIOS = [
    ("no change (false alarm)", None, "<= 5%", "fare"),
    ("fare x 1.003 (negligible)", _scale("fare", 1.003), "<= 5%", "fare"),
    ("fare x 1.10", _scale("fare", 1.10), "detect", "fare"),
    ("trip_miles x 1.10", _scale("trip_miles", 1.10), "detect", "trip_miles"),
    ("trip_start_hour +2 h (mod 24)", _hour_shift(2), "detect", "trip_start_hour"),
    ("trip_start_hour +1 h (mod 24)", _hour_shift(1), "info", "trip_start_hour"),
    ("payment_type Cash -10 pts", _cash_down, "detect", "payment_type"),
    ("payment_type 5% unseen 'Mobile'", _unseen_payment, "detect", "payment_type"),
    ("company 5% in 50 unseen names", _unseen_companies, "detect", "company"),
    ("fare +10 pts missing", _fare_missing, "detect", "fare"),
    ("company +10 pts missing", _company_missing, "detect", "company"),
    ("trip_miles decoupled from fare", _decouple, "detect", None),
]
SCORE_KEYS = ["psi", "jensen_shannon", "hellinger", "linf", "cramers_v", "wasserstein", "ks", "unseen_share",
              "missing_rate_difference"]


# --- naive baselines ---------------------------------------------------------------------------

def _columns(ref, cur):
    for name in ref.columns:
        if name in EXCLUDE:
            continue
        x, y = ref[name].dropna(), cur[name].dropna()
        if len(x) and len(y):
            yield x, y, (x.dtype.kind in "if" and y.dtype.kind in "if")


def _categories(x, y):
    cx, cy = Counter(x.astype(str)), Counter(y.astype(str))
    labels = sorted(set(cx) | set(cy))
    return np.array([cx[k] for k in labels], dtype=float), np.array([cy[k] for k in labels], dtype=float)


def _tfdv_aligned(x, y):
    """TFDV-style: own 10 equal-width buckets per sample, re-bucketed on the union of boundaries."""
    hists = []
    for v in (x, y):
        lo, hi = float(v.min()), float(v.max())
        if lo == hi:
            return None
        edges = np.linspace(lo, hi, 11)
        hists.append((edges, np.histogram(v, edges)[0].astype(float)))
    boundaries = np.union1d(hists[0][0], hists[1][0])
    out = []
    for edges, counts in hists:
        new = np.zeros(boundaries.size - 1)
        for i, c in enumerate(counts):
            j0, j1 = np.searchsorted(boundaries, [edges[i], edges[i + 1]])
            new[j0:j1] += c * np.diff(boundaries[j0:j1 + 1]) / (edges[i + 1] - edges[i])
        out.append(new)
    return out


def jsd10_drift(ref, cur) -> bool:
    for x, y, numeric in _columns(ref, cur):
        pair = _tfdv_aligned(x.to_numpy(float), y.to_numpy(float)) if numeric else None
        if pair is None:
            pair = _categories(x, y)
        if jensen_shannon(*pair) > 0.1:
            return True
    return False


def chi2_drift(ref, cur) -> bool:
    for x, y, numeric in _columns(ref, cur):
        if numeric:
            lo, hi = min(x.min(), y.min()), max(x.max(), y.max())
            edges = np.linspace(lo, hi, 11) if hi > lo else np.array([lo - 0.5, lo + 0.5])
            r, c = np.histogram(x, edges)[0], np.histogram(y, edges)[0]
        else:
            r, c = _categories(x, y)
        keep = (r + c) > 0
        table = np.vstack([r[keep], c[keep]]).astype(float)
        if table.shape[1] < 2:
            continue
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        stat = float(np.sum((table - expected) ** 2 / expected))
        if chi2_sf(stat, table.shape[1] - 1) < 0.05:
            return True
    return False


# --- trials ------------------------------------------------------------------------------------

_DATA = None


def _init(path):
    global _DATA
    import pandas as pd
    _DATA = pd.read_csv(path)


def _samples(n, rng):
    total = len(_DATA)
    if n <= DISJOINT_MAX:
        rows = rng.permutation(total)
        return (_DATA.iloc[rows[:n]].reset_index(drop=True), _DATA.iloc[rows[n:2 * n]].reset_index(drop=True))
    return (_DATA.iloc[rng.integers(0, total, n)].reset_index(drop=True),
            _DATA.iloc[rng.integers(0, total, n)].reset_index(drop=True))


def run_trial(job):
    scenario_index, n, trial = job
    rng = np.random.default_rng([scenario_index, n, trial])
    ref, cur = _samples(n, rng)
    apply = SCENARIOS[scenario_index][1]
    if apply is not None:
        cur = apply(cur, rng)
    report = detect_drift(ref, cur, exclude=EXCLUDE, seed=trial)
    causes = list(report.drifted_features) + (["<multivariate>"] if report.multivariate.drifted else [])
    target = SCENARIOS[scenario_index][3]
    scores = dict(report.features[target].scores) if target else {}
    scores["multivariate"] = report.multivariate.score
    return scenario_index, n, report.drift_detected, jsd10_drift(ref, cur), chi2_drift(ref, cur), causes, scores


SCALE_FEATURES = ["fare", "trip_miles", "trip_seconds", "tips", "trip_start_hour"]
SCALE_FACTORS = [1.0, 1.003, 1.005, 1.01, 1.02, 1.05, 1.10]


def _scale_cell(job):
    from driftguard.components.drift.numeric import compare_numeric
    feature, factor, trial, n = job
    rng = np.random.default_rng([SCALE_FEATURES.index(feature), int(factor * 1000), trial])
    values = _DATA[feature].dropna().to_numpy(dtype=float)
    x, y = values[rng.integers(0, values.size, n)], values[rng.integers(0, values.size, n)] * factor
    return feature, factor, compare_numeric(x, y).scores


def scale_table(trials: int, n: int, jobs: int) -> None:
    jobs_list = [(f, k, t, n) for f in SCALE_FEATURES for k in SCALE_FACTORS for t in range(trials)]
    cells = {}
    with multiprocessing.Pool(jobs, initializer=_init, initargs=(str(taxi_csv()),)) as pool:
        for feature, factor, scores in pool.imap_unordered(_scale_cell, jobs_list):
            cells.setdefault((feature, factor), []).append(scores)
    print(f"# score vs multiplicative change, n = {n:,} per side (bootstrap), median [max] of {trials} samples")
    for key in ("psi", "jensen_shannon", "hellinger", "linf", "cramers_v", "wasserstein", "ks"):
        print(f"\n## {key}\n")
        print("| feature | " + " | ".join("no change" if k == 1.0 else f"x {k}" for k in SCALE_FACTORS) + " |")
        print("|---|" + "---:|" * len(SCALE_FACTORS))
        for feature in SCALE_FEATURES:
            row = []
            for factor in SCALE_FACTORS:
                vals = [c[key] for c in cells[(feature, factor)]]
                row.append(f"{np.median(vals):.4f} [{np.max(vals):.4f}]")
            print(f"| {feature} | " + " | ".join(row) + " |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--trials", type=int, default=200, help="trials per (scenario, n) (default 200)")
    parser.add_argument("--trials-large", type=int, default=50,
                        help="trials per shift scenario for n >= 50,000 (default 50); "
                             "no-change and negligible keep --trials")
    parser.add_argument("--scenarios", type=int, nargs="*", help="indices into SCENARIOS (default all)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--scale-table", action="store_true",
                        help="print only the score-vs-change table behind the default thresholds")
    args = parser.parse_args(argv)
    if args.scale_table:
        scale_table(trials=6, n=100_000, jobs=args.jobs)
        return

    chosen = args.scenarios if args.scenarios else list(range(len(SCENARIOS)))
    jobs = []
    for s in chosen:
        for n in args.sizes:
            trials = args.trials if (n < 50000 or SCENARIOS[s][2] == "<= 5%") else min(args.trials, args.trials_large)
            jobs += [(s, n, t) for t in range(trials)]
    started = time.time()
    results = {}
    causes = {}
    scores = {}
    with multiprocessing.Pool(args.jobs, initializer=_init, initargs=(str(taxi_csv()),)) as pool:
        for s, n, ours, jsd, chi, why, sc in pool.imap_unordered(run_trial, jobs, chunksize=4):
            scores.setdefault((s, n), []).append(sc)
            acc = results.setdefault((s, n), np.zeros(4))
            acc += (1, ours, jsd, chi)
            if ours and SCENARIOS[s][2] == "<= 5%":
                causes.setdefault((s, n), Counter()).update(why)
    elapsed = time.time() - started

    print(f"# drift calibration on Chicago taxi ({len(jobs)} trials, {elapsed:.0f} s, {args.jobs} jobs)")
    print(f"# n <= {DISJOINT_MAX}: disjoint subsets; above: bootstrap samples. Rate of trials reporting drift.")
    for label, col in (("driftguard (defaults)", 1), ("jsd10: JS > 0.1 on 10 equal-width bins", 2),
                       ("chi2: any feature p < 0.05, uncorrected", 3)):
        print(f"\n## {label}\n")
        print("| scenario | target | " + " | ".join(f"n={n:,}" for n in args.sizes) + " |")
        print("|---|---|" + "---:|" * len(args.sizes))
        for s in chosen:
            cells = []
            for n in args.sizes:
                acc = results[(s, n)]
                cells.append(f"{acc[col] / acc[0]:.1%} ({int(acc[0])})" if col == 1 and acc[0] != args.trials
                             else f"{acc[col] / acc[0]:.1%}")
            print(f"| {SCENARIOS[s][0]} | {SCENARIOS[s][2]} | " + " | ".join(cells) + " |")
    if causes:
        print("\n## driftguard false alarms by cause (feature or <multivariate>)\n")
        for (s, n), counter in sorted(causes.items()):
            print(f"- {SCENARIOS[s][0]}, n={n:,}: {dict(counter)}")
    print("\n## median score of the changed feature (multivariate: largest |delta rho|)\n")
    keys = SCORE_KEYS + ["multivariate"]
    for n in args.sizes:
        print(f"\n### n = {n:,}\n")
        print("| scenario | feature | " + " | ".join(keys) + " |")
        print("|---|---|" + "---:|" * len(keys))
        for s in chosen:
            rows = scores[(s, n)]
            cells = []
            for k in keys:
                vals = [r[k] for r in rows if r.get(k) is not None]
                cells.append(f"{np.median(np.abs(vals)):.4f}" if vals else "-")
            print(f"| {SCENARIOS[s][0]} | {SCENARIOS[s][3] or '-'} | " + " | ".join(cells) + " |")
    print(f"\nTrials per cell: {args.trials} (shift scenarios at n >= 50,000: {min(args.trials, args.trials_large)}, "
          "shown in parentheses for driftguard).")


if __name__ == "__main__":
    main()
