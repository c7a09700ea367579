"""``detect_drift`` per monitoring window: a raw reference table against a prepared one.

Run by hand (it prints a table; no assertions)::

    .venv/bin/python benchmarks/drift_window.py                       # ~1-2 min
    .venv/bin/python benchmarks/drift_window.py --sizes 10000 --repeat 40
    .venv/bin/python benchmarks/drift_window.py --reference-sample runs/serving/taxi/1/profile/reference_sample

What is measured
    A live monitor (``monitoring/windows.py``) calls ``detect_drift(reference, window,
    all_missing="compare")`` once per window with the same reference. This times one such
    call, with the reference as a dict of columns (``raw``, read and summarised again at
    every call) and as ``prepare_reference(reference)`` (``prepared``, caches warmed by one
    earlier call), with and without the joint (multivariate) check, and then
    ``report.to_dict()`` (the monitor stores it with every window). ``total`` is the call
    plus ``to_dict``. Each window is new (drawn outside the timer), as in the monitor; the
    raw and the prepared call see the same window, interleaved, and every repetition checks
    that both reports are equal (``same``).

Data, as the monitor has it (``load_baseline``): the taxi spans 1 and 2 as the reference
(``data/taxi/span-{1,2}/data.csv``, 1,962 trips; ``--reference-sample`` reads the serving
version's profile sample instead, the same trips), its serving features minus the monitor's
default ``drift.exclude`` (``trip_start_timestamp``, ``trip_start_month``) and the
all-empty ``pickup_census_tract``: 12 numeric columns as float64 with NaN, 2 text columns
as object arrays of ``str`` with ``None``. Windows are trips drawn with replacement from
spans 1-2 (``same``: no drift) or from span 6 (``drifted``, 2014Q2), their text built
afresh per window (one ``str`` object per value, as the monitor decodes them).

Timings are the median and the minimum over ``--repeat`` windows, in milliseconds, on
one process of this shared 2-core machine: other jobs move the medians by tens of
percent; the minimum is the steadier figure.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT / "data" / "taxi"
#: Not compared by the monitor: the label and its default ``drift.exclude``.
NOT_FEATURES = ("tips", "trip_start_timestamp", "trip_start_month")
SIZES = (1_000, 10_000, 100_000)


def read_columns(table) -> dict:
    """A pyarrow table as the monitor's columns: float64 with NaN, or object arrays of str with None."""
    import pyarrow as pa

    columns = {}
    for name in table.column_names:
        col = table.column(name)
        if name in NOT_FEATURES or pa.types.is_null(col.type):
            continue
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            values = np.empty(len(col), dtype=object)
            values[:] = col.to_pylist()
        else:
            values = col.cast(pa.float64()).to_numpy()
        columns[name] = values
    return columns


def read_spans(spans):
    """The taxi spans' CSVs as one pyarrow table, empty text cells as nulls."""
    import pyarrow as pa
    import pyarrow.csv as csv

    options = csv.ConvertOptions(strings_can_be_null=True)
    tables = [csv.read_csv(DATA / f"span-{s}" / "data.csv", convert_options=options) for s in spans]
    return pa.concat_tables(tables, promote=True)


def window(source, n: int, rng: np.random.Generator) -> dict:
    """``n`` trips drawn with replacement from ``source``, read afresh (new str objects)."""
    return read_columns(source.take(rng.integers(0, source.num_rows, n)))


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, 1e3 * (time.perf_counter() - start)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES,
                        help="rows per window (default 1000 10000 100000)")
    parser.add_argument("--repeat", type=int, default=15, help="windows per setting (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-sample", type=Path, metavar="DIR",
                        help="read the reference from DIR/sample.parquet (a serving profile's reference_sample)")
    args = parser.parse_args(argv)

    from driftguard.components.drift import detect_drift, prepare_reference

    if args.reference_sample:
        import pyarrow.parquet as pq

        ref_table = pq.read_table(args.reference_sample / "sample.parquet")
        where = str(args.reference_sample)
    else:
        ref_table = read_spans([1, 2])
        where = "data/taxi/span-1,2"
    reference = read_columns(ref_table)
    sources = {"same": read_spans([1, 2]), "drifted": read_spans([6])}

    prepared, prepare_ms = timed(lambda: prepare_reference(reference))
    rng = np.random.default_rng(args.seed)
    first = window(sources["same"], 10_000, rng)
    _, cold_ms = timed(lambda: detect_drift(prepared, first, all_missing="compare"))

    rows = []
    for n in args.sizes:
        for kind, source in sources.items():
            times = {(how, mv): ([], []) for how in ("raw", "prepared") for mv in (True, False)}
            same = {mv: True for mv in (True, False)}
            drift = {mv: set() for mv in (True, False)}
            for _ in range(args.repeat):
                current = window(source, n, rng)
                for mv in (True, False):
                    reports = {}
                    for how, ref in (("raw", reference), ("prepared", prepared)):
                        report, call_ms = timed(lambda: detect_drift(ref, current, multivariate=mv,
                                                                     all_missing="compare"))
                        reports[how], dict_ms = timed(report.to_dict)
                        times[(how, mv)][0].append(call_ms)
                        times[(how, mv)][1].append(dict_ms)
                        drift[mv].add(report.drift_detected)
                    same[mv] &= reports["raw"] == reports["prepared"]
            for mv in (True, False):
                stats = {}
                for how in ("raw", "prepared"):
                    calls, dicts = times[(how, mv)]
                    totals = [c + d for c, d in zip(calls, dicts)]
                    stats[how] = (statistics.median(calls), statistics.median(dicts), statistics.median(totals),
                                  min(totals))
                verdicts = "/".join(sorted({"drift" if d else "none" for d in drift[mv]}))
                rows.append((n, kind, mv, stats["raw"], stats["prepared"], same[mv], verdicts))

    print(f"# reference: {where}, {len(next(iter(reference.values()))):,} rows, {len(reference)} columns "
          f"({sum(v.dtype != object for v in reference.values())} numeric); {args.repeat} windows per row")
    print(f"# prepare_reference: {prepare_ms:.1f} ms; "
          f"first prepared call (10,000 rows, caches cold): {cold_ms:.1f} ms\n")
    print("| window rows | window | joint check | raw: call | raw: to_dict | raw: total (min) "
          "| prepared: call | prepared: to_dict | prepared: total (min) | speed-up | same | verdict |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for n, kind, mv, raw, prep, same_reports, verdicts in rows:
        print(f"| {n:,} | {kind} | {'yes' if mv else 'no'} | {raw[0]:.1f} | {raw[1]:.1f} | {raw[2]:.1f} ({raw[3]:.1f}) "
              f"| {prep[0]:.1f} | {prep[1]:.1f} | {prep[2]:.1f} ({prep[3]:.1f}) | {raw[2] / prep[2]:.1f}x "
              f"| {'yes' if same_reports else 'NO'} | {verdicts} |")
    print("\nmedians in ms (minimum of the totals in parentheses); total = detect_drift + to_dict")


if __name__ == "__main__":
    main()
