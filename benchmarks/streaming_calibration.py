"""Calibration of the streaming CUSUM (components/drift/streaming.py) on real taxi trips.

Run by hand (prints markdown tables; no assertions)::

    .venv/bin/python benchmarks/streaming_calibration.py            # ~5-10 min on one core
    .venv/bin/python benchmarks/streaming_calibration.py --quick    # a rough look in ~1 min

Data: the 15,002 Chicago taxi trips shipped with TFX
(``tfx/examples/chicago_taxi_pipeline/data/simple/data.csv``). Streams, record by record:

- ``error 0.295``: the 0/1 error of a real rule, "big tipper (tip > 20% of the fare)
  iff trip_miles > 4", wrong on 29.5% of the trips: a plausible weak model;
- ``error 0.108``: the error of "big tipper iff paid by credit card" (10.8%, about the
  trained model's error; a skewed Bernoulli stream);
- ``fare``: skewed and heavy-tailed (median 7.85, mean 11.77, sd 11.54, max 700.07),
  monitored on its mean (``transform="mean"``) and on its reference mid-ranks (``"rank"``).

The population is the 15,002 trips: a reference of n rows and every stream are
independent bootstrap samples (with replacement) of them, so "unchanged" means drawn from
the same distribution as the reference, and the reference's own estimation error is
real (n = 2,000 or 100,000).

Tables:

1. False alarms per 100,000 unchanged records against a budget of 1 (one detector
   holding the whole budget: ``arl0_records = 100,000``). Each of ``--refs`` references
   (fresh bootstrap each) monitors a ``--records`` stream. ``guarantee 0.9`` is the
   shipped design; ``plug-in`` treats the reference estimates as exact (the textbook
   design); ``exact`` designs on the whole population (its mean and sd *are* the
   truth), which checks Siegmund's approximation alone.
2. Detection delay in records after a change at a random record 5,000-5,049 (not block
   aligned), ``--trials`` trials per row, with the budget split of a monitor (1 per
   100,000 over 16 window tests every 1,000 records and 2 stream detectors:
   ``arl0_records = 400,000``). The stream continues 20,000 records after the change;
   "missed" = no alarm in that horizon.
3. ``update()`` throughput on an unchanged stream.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import special

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from driftguard.components.drift.streaming import Cusum, budget_split  # noqa: E402

PRE_CHANGE = 5_000
HORIZON = 20_000


def taxi_csv() -> Path:
    spec = importlib.util.find_spec("tfx")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("tfx is not installed: cannot find the Chicago taxi sample data")
    return Path(list(spec.submodule_search_locations)[0]) / "examples/chicago_taxi_pipeline/data/simple/data.csv"


def load_streams():
    import pandas as pd

    trips = pd.read_csv(taxi_csv(), usecols=["fare", "tips", "trip_miles", "payment_type"])
    big_tipper = (trips["tips"] > 0.2 * trips["fare"]).to_numpy()
    return {
        "error 0.295": ((trips["trip_miles"] > 4).to_numpy() != big_tipper).astype(float),
        "error 0.108": ((trips["payment_type"] == "Credit Card").to_numpy() != big_tipper).astype(float),
        "fare": trips["fare"].to_numpy(dtype=float),
    }


def poisson_interval(count: int, exposure: float, level: float = 0.95):
    """Exact (Garwood) interval for a Poisson rate: count events in `exposure` units."""
    tail = (1 - level) / 2
    low = 0.0 if count == 0 else special.gammaincinv(count, tail) / exposure
    high = special.gammaincinv(count + 1, 1 - tail) / exposure
    return low, high


# --- 1. false alarms -----------------------------------------------------------------------------------

def false_alarm_table(streams, refs: int, records: int, seed: int) -> None:
    arl0 = 100_000
    print(f"## False alarms per 100,000 unchanged records (budget 1; arl0_records = {arl0:,}; "
          f"{refs} references x {records:,} records per row)\n")
    print("| stream | transform | reference rows | design | k_used | h | predicted | measured [95% CI] "
          "| false alarms | references with >= 1 | worst reference |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [("error 0.295", "mean"), ("error 0.108", "mean"), ("fare", "mean"), ("fare", "rank")]
    for row, (name, transform) in enumerate(rows):
        population = streams[name]
        for n_ref in (2_000, 100_000, None):
            designs = [("guarantee 0.9", 0.9), ("plug-in", None)] if n_ref else [("exact", None)]
            for label, guarantee in designs:
                rng = np.random.default_rng([seed, row, n_ref or 0, guarantee is None])
                total, hit, worst, ks, hs, predicted = 0, 0, 0, [], [], []
                for _ in range(refs):
                    reference = population if n_ref is None else population[rng.integers(0, population.size, n_ref)]
                    det = Cusum.from_reference(name, reference, arl0_records=arl0, transform=transform,
                                               guarantee=guarantee)
                    count = 0
                    for start in range(0, records, 500_000):
                        size = min(500_000, records - start)
                        count += len(det.update(population[rng.integers(0, population.size, size)]))
                    total += count
                    hit += count > 0
                    worst = max(worst, count)
                    ks.append(det.design.k_used)
                    hs.append(det.design.h)
                    predicted.append(100_000 / det.design.predicted_arl0_records)
                exposure = refs * records / 100_000
                low, high = poisson_interval(total, exposure)
                print(f"| {name} | {transform} | {n_ref or population.size:,}{'' if n_ref else ' (all)'} | {label} "
                      f"| {np.mean(ks):.3f} | {np.mean(hs):.2f} | {np.mean(predicted):.2f} "
                      f"| **{total / exposure:.2f}** [{low:.2f}, {high:.2f}] | {total} | {hit}/{refs} "
                      f"| {worst / (records / 100_000):.1f} |", flush=True)
    print("\npredicted: expected false alarms per 100,000 records over references, from the design "
          "(Siegmund + the reference's CGF + the reference-mean error); worst reference: its own rate "
          "per 100,000 records.\n")


# --- 2. detection delay ------------------------------------------------------------------------------

def _error_up(points):
    def change(values, rng):
        p = float(values.mean())
        flip = rng.random(values.size) < points / (1 - p)   # a correct record becomes an error
        return np.where(flip, 1.0, values)
    return change


def _shift(amount):
    return lambda values, rng: values + amount


def _scale(factor):
    return lambda values, rng: values * factor


def delay_table(streams, trials: int, seed: int) -> None:
    arl0 = budget_split(1.0, n_window_tests=16, window_step=1_000, n_stream_detectors=2).arl0_records
    fare_sd = float(streams["fare"].std())
    scenarios = [
        ("error 0.295", "mean", "error rate +5 points", _error_up(0.05), "up"),
        ("error 0.295", "mean", "error rate +10 points", _error_up(0.10), "up"),
        ("error 0.108", "mean", "error rate +5 points", _error_up(0.05), "up"),
        ("error 0.108", "mean", "error rate +10 points", _error_up(0.10), "up"),
        ("fare", "mean", "mean + 0.25 sd", _shift(0.25 * fare_sd), "up"),
        ("fare", "mean", "mean + 0.5 sd", _shift(0.5 * fare_sd), "up"),
        ("fare", "mean", "fare x 1.25", _scale(1.25), "up"),
        ("fare", "rank", "mean + 0.25 sd", _shift(0.25 * fare_sd), "up"),
        ("fare", "rank", "mean + 0.5 sd", _shift(0.5 * fare_sd), "up"),
        ("fare", "rank", "fare x 1.25", _scale(1.25), "up"),
        ("fare", "rank", "fare x 1.05", _scale(1.05), "up"),
    ]
    print(f"## Detection delay in records (arl0_records = {arl0:,.0f}: budget 1 per 100,000 split over "
          f"16 window tests and 2 detectors; {trials} trials per row)\n")
    print(f"fare sd = {fare_sd:.2f}, so 0.25 sd = +{0.25 * fare_sd:.2f} and 0.5 sd = +{0.5 * fare_sd:.2f} "
          "dollars on every trip.\n")
    print("| stream | transform | change | reference rows | median | p95 | max | within 1,000 | missed "
          "| wrong direction | false alarms before the change |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row, (name, transform, label, change, direction) in enumerate(scenarios):
        population = streams[name]
        for n_ref in (2_000, 100_000):
            rng = np.random.default_rng([seed, 100 + row, n_ref])
            delays, wrong, early = [], 0, 0
            for _ in range(trials):
                reference = population[rng.integers(0, population.size, n_ref)]
                det = Cusum.from_reference(name, reference, arl0_records=arl0, transform=transform)
                at = PRE_CHANGE + int(rng.integers(0, 50))
                early += len(det.update(population[rng.integers(0, population.size, at)]))
                after = change(population[rng.integers(0, population.size, HORIZON)], rng)
                alarms = det.update(after)
                if alarms and alarms[0].direction != direction:
                    wrong += 1
                delays.append(alarms[0].index_in_stream - at if alarms else math.inf)
            d = np.array(delays)
            found = d[np.isfinite(d)]
            pct = (lambda q: f"{np.percentile(found, q):,.0f}" if found.size else "-")
            print(f"| {name} | {transform} | {label} | {n_ref:,} | {pct(50)} | {pct(95)} "
                  f"| {f'{found.max():,.0f}' if found.size else '-'} | {np.mean(d <= 1_000):.0%} | {np.sum(~np.isfinite(d))} "
                  f"| {wrong} | {early} |", flush=True)
    print()


# --- 3. speed ------------------------------------------------------------------------------------------

def speed_table(streams, seed: int, repeat: int = 3) -> None:
    rng = np.random.default_rng(seed)
    total = 10_000_000
    print(f"## update() throughput ({total:,} unchanged records, best of {repeat}, one process)\n")
    print("| stream | transform | records per update() call | values/s |")
    print("|---|---|---:|---:|")
    for name, transform in (("error 0.295", "mean"), ("fare", "mean"), ("fare", "rank")):
        population = streams[name]
        values = population[rng.integers(0, population.size, total)]
        for chunk in (1_000, 100_000, total):
            best = math.inf
            for _ in range(repeat):
                det = Cusum.from_reference(name, population, arl0_records=400_000, transform=transform)
                started = time.perf_counter()
                for start in range(0, total, chunk):
                    det.update(values[start:start + chunk])
                best = min(best, time.perf_counter() - started)
            print(f"| {name} | {transform} | {chunk:,} | {total / best:,.0f} |", flush=True)
    print()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--refs", type=int, default=100, help="references per false-alarm row (default 100)")
    parser.add_argument("--records", type=int, default=200_000,
                        help="unchanged records per reference (default 200,000: 2 streams of 100,000)")
    parser.add_argument("--trials", type=int, default=200, help="trials per detection row (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 references, 100 trials")
    parser.add_argument("--only", choices=["false", "delay", "speed"], action="append",
                        help="run only these tables (repeatable)")
    args = parser.parse_args(argv)
    if args.quick:
        args.refs, args.trials = 20, 100
    tables = args.only or ["false", "delay", "speed"]
    streams = load_streams()
    print(f"# {sys.argv[0]} --refs {args.refs} --records {args.records} --trials {args.trials} --seed {args.seed}")
    print("# " + ", ".join(f"{k}: mean {v.mean():.4f}" for k, v in streams.items()) + "\n")
    started = time.perf_counter()
    if "false" in tables:
        false_alarm_table(streams, args.refs, args.records, args.seed)
    if "delay" in tables:
        delay_table(streams, args.trials, args.seed)
    if "speed" in tables:
        speed_table(streams, args.seed)
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
