"""The domain-classifier check: calibration, power on joint shifts, explanation, cost.

Run by hand (it prints tables; no assertions)::

    nice -n 10 .venv/bin/python benchmarks/drift_classifier.py                    # everything, ~30-40 min on 2 cores
    nice -n 10 .venv/bin/python benchmarks/drift_classifier.py --part null --trials 100 --jobs 2
    nice -n 10 .venv/bin/python benchmarks/drift_classifier.py --part calibration --trials 100 --jobs 2
    nice -n 10 .venv/bin/python benchmarks/drift_classifier.py --part shifts --trials 100 --jobs 2
    nice -n 10 .venv/bin/python benchmarks/drift_classifier.py --part timing

Data and sampling: the Chicago taxi trips of ``benchmarks/drift_calibration.py`` (its
``_samples``: disjoint subsets up to 7,500 rows per side, independent bootstrap samples
above), every column but ``tips`` and ``pickup_census_tract``.

Parts
    ``null``: the classifier's test alone (:func:`fit_domain_classifier`) on undrifted
    splits: rejection rate of the combined p-value and of each fold's p-value at
    several levels. The combination's calibration (its folds are dependent).
    ``calibration``: ``detect_drift`` with its defaults on undrifted splits at
    n = 500 ... 100,000: rate of the classifier check alone (``report.classifier.drifted``)
    and of the dataset verdict.
    ``shifts``: at n = 5,000 (``--shift-sizes``), detection rates of the classifier, the
    Spearman pairs, the per-feature checks and the dataset, for

    - a *joint shift among three features*: the rows of the segment "trip_start_hour
      12-17 and trip_start_day 3-5" (about 12% of trips, in the middle of both
      features' rank ranges, so the pairs' rank correlations hardly move) swap their (hour, day) with the
      rows holding the top trip_start_month values, so that in the current sample the
      segment holds the latest months. Every marginal is unchanged (values are only
      exchanged between rows), so is the joint law of (hour, day) and of every other
      set of columns; the pairwise rank correlations change by the amounts printed;
    - a *segment shift*: the share of "company = Taxi Affiliation Services and
      trip_start_hour 22-23" triples (non-segment rows are moved into it);
    - ``fare x 1.003`` (negligible: must stay quiet).

    And how often the explanation names the three features of the joint shift.
    ``timing``: ``detect_drift`` on 2,000 and 100,000 rows per side, classifier off and
    on, explanation on, and the classifier fit with the default OpenMP threads vs one.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for where in (ROOT, ROOT / "benchmarks"):
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))

import drift_calibration as calibration  # noqa: E402  (the taxi sampling helpers)

from driftguard.components.drift import detect_drift  # noqa: E402
from driftguard.components.drift.classifier import fit_domain_classifier  # noqa: E402
from driftguard.components.drift.multivariate import spearman  # noqa: E402

EXCLUDE = calibration.EXCLUDE
SIZES = [500, 1000, 2000, 5000, 20000, 100000]
JOINT = ("trip_start_hour", "trip_start_day", "trip_start_month")
SEGMENT = ("company", "Taxi Affiliation Services", (22, 23))


def joint_shift(cur, rng):
    """Swap (hour, day) of the segment's rows with those of the rows holding the top months."""
    out = cur.copy()
    hour, day, month = (out[c].to_numpy().copy() for c in JOINT)
    segment = np.flatnonzero((hour >= 12) & (hour <= 17) & (day >= 3) & (day <= 5))
    order = np.lexsort((rng.random(month.size), month))  # by month, ties in random order
    top = order[-segment.size:]
    a, b = np.setdiff1d(segment, top), rng.permutation(np.setdiff1d(top, segment))
    new_hour, new_day = hour.copy(), day.copy()
    new_hour[a], new_hour[b] = hour[b], hour[a]
    new_day[a], new_day[b] = day[b], day[a]
    out[JOINT[0]], out[JOINT[1]] = new_hour, new_day
    return out


def segment_shift(cur, rng):
    """Triple the share of rows in (company = ..., hour in 22-23) by moving other rows into it."""
    column, value, (first, last) = SEGMENT
    out = cur.copy()
    company = out[column].astype(object).to_numpy()
    hour = out["trip_start_hour"].to_numpy().copy()
    inside = (company == value) & (hour >= first) & (hour <= last)
    k = min(int(2 * inside.sum()), int((~inside).sum()))
    moved = rng.choice(np.flatnonzero(~inside), size=k, replace=False)
    company[moved] = value
    hour[moved] = rng.choice(hour[inside], size=k) if inside.any() else first
    out[column], out["trip_start_hour"] = company, hour
    return out


def negligible(cur, rng):
    out = cur.copy()
    out["fare"] = out["fare"] * 1.003
    return out


SHIFTS = [("joint shift among hour, day, month", joint_shift),
          ("segment share x3 (company x hour 22-23)", segment_shift),
          ("fare x 1.003 (negligible)", negligible)]


def _numeric(frame):
    return [c for c in frame.columns if c not in EXCLUDE and frame[c].dtype.kind in "if"]


def _rho_changes(before, after):
    """Largest |rho(after) - rho(before)| over pairs with a JOINT column, on the same current rows."""
    worst = 0.0
    for a in JOINT:
        for b in _numeric(before):
            if b == a or (b in JOINT and b < a):
                continue
            x0, y0 = before[a].to_numpy(float), before[b].to_numpy(float)
            x1, y1 = after[a].to_numpy(float), after[b].to_numpy(float)
            ok0, ok1 = ~np.isnan(x0) & ~np.isnan(y0), ~np.isnan(x1) & ~np.isnan(y1)
            change = abs(spearman(x1[ok1], y1[ok1]).rho - spearman(x0[ok0], y0[ok0]).rho)
            if np.isfinite(change):
                worst = max(worst, change)
    return worst


# --- workers --------------------------------------------------------------------------------------

def _null_trial(job):
    n, trial = job
    rng = np.random.default_rng([101, n, trial])
    ref, cur = calibration._samples(n, rng)
    fit = fit_domain_classifier(ref.drop(columns=EXCLUDE), cur.drop(columns=EXCLUDE), seed=trial)
    return n, fit.p_value, [f.p_value for f in fit.folds], fit.auc


def _calibration_trial(job):
    n, trial = job
    rng = np.random.default_rng([102, n, trial])
    ref, cur = calibration._samples(n, rng)
    r = detect_drift(ref, cur, exclude=EXCLUDE, seed=trial, explain=False)
    c = r.classifier
    return (n, r.drift_detected, bool(c.drifted), bool(c.p_value_adjusted <= c.alpha), c.auc,
            bool(r.drifted_features), bool(r.multivariate.drifted))


def _shift_trial(job):
    s, n, trial = job
    rng = np.random.default_rng([103, s, n, trial])
    ref, cur = calibration._samples(n, rng)
    shifted = SHIFTS[s][1](cur, rng)
    change = _rho_changes(cur, shifted) if s == 0 else float("nan")
    r = detect_drift(ref, shifted, exclude=EXCLUDE, seed=trial, explain=True if s < 2 else None)
    c = r.classifier
    e = c.explanation
    top3 = [f.feature for f in e.importances[:3]] if e else []
    named = bool(e) and set(JOINT) <= set(e.separating_features)
    in_rules = bool(e) and set(JOINT) <= {cond["feature"] for seg in e.segments[:2] for cond in seg.conditions}
    example = e.format_lines(5) if e and trial == 0 else None
    return (s, n, r.drift_detected, bool(c.drifted), c.auc, bool(r.multivariate.drifted), r.multivariate.score,
            bool(r.drifted_features), change, set(top3) == set(JOINT), named, in_rules, example)


def _pool(jobs, worker, n_jobs):
    with multiprocessing.Pool(n_jobs, initializer=calibration._init,
                              initargs=(str(calibration.taxi_csv()),)) as pool:
        return list(pool.imap_unordered(worker, jobs, chunksize=2))


# --- parts ----------------------------------------------------------------------------------------

def part_null(trials, sizes, n_jobs):
    from scipy.stats import norm

    rows = _pool([(n, t) for n in sizes for t in range(trials)], _null_trial, n_jobs)
    print("\n## The classifier's test alone on undrifted taxi splits (rejection rates)\n")
    print("mean z: the test (mean of the folds' z, against N(0, 1)); Stouffer: the folds' z summed as if "
          "independent (sum / sqrt(K)), for comparison; fold: each fold's own p-value.\n")
    print("| n per side | trials | mean z: p <= 0.05 | <= 0.01 | <= 0.001 | Stouffer: p <= 0.05 | <= 0.01 | <= 0.001 "
          "| fold p <= 0.05 | fold p <= 0.01 | corr. of folds' z | mean AUC | sd AUC |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        got = [r for r in rows if r[0] == n]
        p = np.array([r[1] for r in got])
        z = np.array([norm.isf(np.clip(r[2], 1e-300, 1.0)) for r in got])  # trials x folds
        stouffer = norm.sf(z.sum(axis=1) / np.sqrt(z.shape[1]))
        corr = np.corrcoef(z.T)
        mean_corr = corr[~np.eye(corr.shape[0], dtype=bool)].mean()
        folds = np.concatenate([r[2] for r in got])
        auc = np.array([r[3] for r in got])
        print(f"| {n:,} | {len(got)} | {np.mean(p <= 0.05):.1%} | {np.mean(p <= 0.01):.1%} | {np.mean(p <= 0.001):.1%} "
              f"| {np.mean(stouffer <= 0.05):.1%} | {np.mean(stouffer <= 0.01):.1%} | {np.mean(stouffer <= 0.001):.1%} "
              f"| {np.mean(folds <= 0.05):.1%} | {np.mean(folds <= 0.01):.1%} | {mean_corr:+.3f} "
              f"| {auc.mean():.4f} | {auc.std():.4f} |")


def part_calibration(trials, sizes, n_jobs):
    rows = _pool([(n, t) for n in sizes for t in range(trials)], _calibration_trial, n_jobs)
    print("\n## detect_drift defaults on undrifted taxi splits (rate of trials reporting drift)\n")
    print("| n per side | trials | dataset verdict | classifier check | classifier p-adj <= alpha (no effect rule) "
          "| any feature | Spearman pairs | median AUC | max AUC |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        got = [r for r in rows if r[0] == n]
        col = lambda i: np.mean([r[i] for r in got])  # noqa: E731
        auc = [r[4] for r in got]
        print(f"| {n:,} | {len(got)} | {col(1):.1%} | {col(2):.1%} | {col(3):.1%} | {col(5):.1%} | {col(6):.1%} "
              f"| {np.median(auc):.4f} | {np.max(auc):.4f} |")


def part_shifts(trials, sizes, n_jobs):
    rows = _pool([(s, n, t) for s in range(len(SHIFTS)) for n in sizes for t in range(trials)], _shift_trial, n_jobs)
    print("\n## Shifts: rate of trials flagged, by check\n")
    print("| scenario | n per side | trials | classifier | Spearman pairs | any feature | dataset | median AUC "
          "| median max abs delta rho (pair check) | max abs rho change made by the shift |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s, (name, _) in enumerate(SHIFTS):
        for n in sizes:
            got = [r for r in rows if r[0] == s and r[1] == n]
            col = lambda i: np.mean([r[i] for r in got])  # noqa: E731
            made = [r[8] for r in got if np.isfinite(r[8])]
            print(f"| {name} | {n:,} | {len(got)} | {col(3):.1%} | {col(5):.1%} | {col(7):.1%} | {col(2):.1%} "
                  f"| {np.median([r[4] for r in got]):.4f} | {np.median([r[6] or 0 for r in got]):.4f} "
                  f"| {max(made):.4f} |" if made else
                  f"| {name} | {n:,} | {len(got)} | {col(3):.1%} | {col(5):.1%} | {col(7):.1%} | {col(2):.1%} "
                  f"| {np.median([r[4] for r in got]):.4f} | {np.median([r[6] or 0 for r in got]):.4f} | - |")
    print("\n## Explanation of the joint shift (hour, day, month)\n")
    print("| n per side | trials | top-3 importances are the three | all three named as separating "
          "| all three in the two largest segments' rules |")
    print("|---:|---:|---:|---:|---:|")
    for n in sizes:
        got = [r for r in rows if r[0] == 0 and r[1] == n]
        col = lambda i: np.mean([r[i] for r in got])  # noqa: E731
        print(f"| {n:,} | {len(got)} | {col(9):.1%} | {col(10):.1%} | {col(11):.1%} |")
    for r in rows:
        if r[12] is not None:
            print(f"\nExample (trial 0, {SHIFTS[r[0]][0]}, n = {r[1]:,}):\n")
            print("\n".join("    " + line for line in r[12]))


def _best_of(f, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def part_timing():
    from driftguard.components.drift import classifier as clf

    calibration._init(str(calibration.taxi_csv()))
    print("\n## Cost of one detect_drift call (median of 3, seconds, this process alone)\n")
    print("| n per side | classifier off | classifier on | classifier on + explanation |")
    print("|---:|---:|---:|---:|")
    for n in (2000, 100000):
        ref, cur = calibration._samples(n, np.random.default_rng(7))
        off = _best_of(lambda: detect_drift(ref, cur, exclude=EXCLUDE, classifier=False))
        on = _best_of(lambda: detect_drift(ref, cur, exclude=EXCLUDE, explain=False))
        full = _best_of(lambda: detect_drift(ref, cur, exclude=EXCLUDE, explain=True))
        print(f"| {n:,} | {off:.2f} | {on:.2f} | {full:.2f} |")
    ref, cur = calibration._samples(5000, np.random.default_rng(8))
    ref, cur = ref.drop(columns=EXCLUDE), cur.drop(columns=EXCLUDE)
    print("\n## fit_domain_classifier, 5,000 rows per side: OpenMP threads (median of 3, seconds)\n")
    print("| threads | seconds |")
    print("|---|---:|")
    for threads in (None, 1):
        clf.THREADS = threads
        print(f"| {'default (' + str(os.cpu_count()) + ' cores)' if threads is None else threads} "
              f"| {_best_of(lambda: fit_domain_classifier(ref, cur)):.2f} |")
    clf.THREADS = 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["null", "calibration", "shifts", "timing", "all"], default="all")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--null-sizes", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--shift-sizes", type=int, nargs="+", default=[5000])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    started = time.time()
    if args.part in ("null", "all"):
        part_null(args.trials, args.null_sizes, args.jobs)
    if args.part in ("calibration", "all"):
        part_calibration(args.trials, args.sizes, args.jobs)
    if args.part in ("shifts", "all"):
        part_shifts(args.trials, args.shift_sizes, args.jobs)
    if args.part in ("timing", "all"):
        part_timing()
    print(f"\n({time.time() - started:.0f} s; command: benchmarks/drift_classifier.py {' '.join(argv or sys.argv[1:])})")


if __name__ == "__main__":
    main()
