"""The taxi example's data: time-ordered spans of the Chicago taxi trips in the tfx wheel.

``driftguard init DIR --example taxi`` calls :func:`write_spans` to fill ``DIR/data/taxi``.

The source CSV (15,002 trips, 2013-2016) is split by calendar quarter of ``trip_start_timestamp``
into ``<out>/span-<N>/data.csv`` (N = 1 for 2013Q1 ... 16 for 2016Q4), which ExampleGen reads
through the pattern ``span-{SPAN}/*``. ``spans.json`` records each span's period, row count
and sha256 so that a span that changes later is noticed.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from typing import Dict, List

TAXI_RELATIVE_PATH = "tfx/examples/chicago_taxi_pipeline/data/simple/data.csv"
FIRST_YEAR = 2013
MANIFEST = "spans.json"


def taxi_source_csv() -> pathlib.Path:
    """Path of the taxi CSV inside the installed tfx package (found without importing tfx)."""
    import importlib.util

    spec = importlib.util.find_spec("tfx")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the tfx package is not installed; run `make setup`")
    root = pathlib.Path(list(spec.submodule_search_locations)[0]).parent
    path = root / TAXI_RELATIVE_PATH
    if not path.is_file():
        raise FileNotFoundError(f"taxi data not found at {path} (is tfx==1.16.0 installed?)")
    return path


def span_dir(data_root: os.PathLike, span: int) -> pathlib.Path:
    return pathlib.Path(data_root) / f"span-{int(span)}"


def quarter_span(timestamp_s) -> "object":
    """Span number (1-based, quarterly from 2013Q1) for Unix timestamps in seconds."""
    import pandas as pd

    ts = pd.to_datetime(timestamp_s, unit="s", utc=True)
    return (ts.dt.year - FIRST_YEAR) * 4 + (ts.dt.month - 1) // 3 + 1


def write_taxi_spans(out_dir: os.PathLike, source_csv: os.PathLike | None = None) -> List[Dict]:
    """Split the taxi CSV into quarterly spans under ``out_dir``; return the manifest rows.

    Float columns are written with a decimal point (``5.0``) so that every span's CSV has the
    same inferred column types, whatever values a quarter happens to hold.
    """
    import pandas as pd

    src = pathlib.Path(source_csv) if source_csv else taxi_source_csv()
    df = pd.read_csv(src)
    df["_span"] = quarter_span(df["trip_start_timestamp"])
    df = df.sort_values(["trip_start_timestamp"], kind="stable")
    out = pathlib.Path(out_dir)
    manifest = []
    for span, part in df.groupby("_span", sort=True):
        d = span_dir(out, span)
        d.mkdir(parents=True, exist_ok=True)
        path = d / "data.csv"
        part.drop(columns="_span").to_csv(path, index=False)
        ts = pd.to_datetime(part["trip_start_timestamp"], unit="s", utc=True)
        manifest.append({
            "span": int(span),
            "period": f"{ts.min().year}Q{(ts.min().month - 1) // 3 + 1}",
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


def load_manifest(data_root: os.PathLike) -> Dict[int, Dict]:
    path = pathlib.Path(data_root) / MANIFEST
    if not path.exists():
        return {}
    return {int(r["span"]): r for r in json.loads(path.read_text())}


def write_spans(out_dir: os.PathLike) -> List[Dict]:
    """What ``driftguard init --example taxi`` runs (the example's data writer)."""
    return write_taxi_spans(out_dir)
