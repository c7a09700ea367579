"""Versioned schemas: ``schemas/<model>/v<N>/schema.pbtxt``, never edited in place.

A new version starts from the latest one (keeping its curation: environments, domains,
presence, skew comparators) and is updated with TFDV so that the given span conforms; the
diff is shown before the new folder appears. Versions are written atomically and an
existing version is never overwritten.
"""
from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import pathlib
import re
import tempfile
from typing import List, Optional

_VERSION_RE = re.compile(r"^v(\d+)$")
SCHEMA_FILE = "schema.pbtxt"


class SchemaVersionError(ValueError):
    pass


def list_versions(schema_root: os.PathLike) -> List[int]:
    root = pathlib.Path(schema_root)
    if not root.is_dir():
        return []
    out = []
    for child in root.iterdir():
        m = _VERSION_RE.match(child.name)
        if m and (child / SCHEMA_FILE).is_file():
            out.append(int(m.group(1)))
    return sorted(out)


def schema_path(schema_root: os.PathLike, version: int) -> pathlib.Path:
    return pathlib.Path(schema_root) / f"v{int(version)}" / SCHEMA_FILE


def load_schema(path: os.PathLike):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    path = pathlib.Path(path)
    if not path.is_file():
        raise SchemaVersionError(f"schema file {path} does not exist")
    try:
        return text_format.Parse(path.read_text(), schema_pb2.Schema())
    except text_format.ParseError as e:
        raise SchemaVersionError(f"{path}: not a valid Schema pbtxt: {e}") from None


def schema_text(schema) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(schema)


@dataclasses.dataclass
class NewVersion:
    base_version: int
    version: int
    path: Optional[pathlib.Path]   # None when nothing changed and nothing was written
    diff: str


def span_statistics(layout, spans):
    """TFDV statistics of the files of ``spans`` (a ``spanfiles.Layout``, or a folder of
    ``span-<N>/`` CSV folders), in-process Beam."""
    import tensorflow_data_validation as tfdv

    from driftguard.pipeline.spanfiles import _layout

    layout = _layout(layout)
    spans = [int(spans)] if isinstance(spans, int) else [int(s) for s in spans]
    sp = layout.span_pattern
    files = []
    for span in spans:
        for _, pattern in layout.patterns:
            files += [p for p in sp.files(layout.root, span, pattern) if p.is_file()]
    if not files:
        raise SchemaVersionError(f"span(s) {sp.format_list(spans)}: no data files ({layout.where(spans[0])})")
    if layout.format == "csv":
        if len(files) == 1:
            return tfdv.generate_statistics_from_csv(str(files[0]))
        import pandas as pd

        return tfdv.generate_statistics_from_dataframe(pd.concat([pd.read_csv(f) for f in files], ignore_index=True))
    if layout.format == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.concat_tables([pq.read_table(f) for f in files], promote=True)
        return tfdv.generate_statistics_from_dataframe(table.to_pandas())
    import tempfile as _tempfile

    def gzipped(path):
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"

    gz = [f for f in files if gzipped(f)]
    if gz and len(gz) != len(files):
        raise SchemaVersionError("a span mixes gzip-compressed and plain TFRecord files")
    with _tempfile.TemporaryDirectory() as tmp:
        links = []
        for i, f in enumerate(files):
            link = pathlib.Path(tmp) / f"part-{i:05d}{'.gz' if gz else ''}"
            os.symlink(f, link)
            links.append(link)
        return tfdv.generate_statistics_from_tfrecord(
            data_location=str(pathlib.Path(tmp) / "part-*"),
            stats_options=tfdv.StatsOptions())


def _required(feature) -> bool:
    return feature.presence.HasField("min_fraction") and feature.presence.min_fraction >= 1.0


def _allow_empty_where_optional(schema, only=None) -> None:
    """Drop ``value_count.min`` of every feature the schema lets be missing.

    These statistics come from TFDV's CSV and DataFrame readers, where a missing cell is an absent
    feature, but driftguard's ExampleGens write it as the feature with no values: the inferred
    ``value_count { min: 1 }`` would then be an ERROR anomaly (FEATURE_TYPE_LOW_NUMBER_VALUES) on
    every span with a missing value, and stop the training. Features present in every row keep it.
    ``only``: the names to consider (a new version touches only the features that became optional).
    """
    for f in schema.feature:
        if only is not None and f.name not in only:
            continue
        if not _required(f) and f.HasField("value_count") and f.value_count.min > 0:
            f.value_count.ClearField("min")


def infer_first_version(schema_root: os.PathLike, layout, spans, label_column: str = "",
                        write: bool = True) -> NewVersion:
    """Infer ``v1`` from the statistics of ``spans`` with TFDV, for a person to review: the
    types, presence and value counts seen, and domains of text features. The label column (if
    given) is put in the TRAINING environment only: serving requests do not carry it."""
    import tensorflow_data_validation as tfdv

    if list_versions(schema_root):
        raise SchemaVersionError(f"{schema_root} already holds schema versions "
                                 f"({', '.join(f'v{v}' for v in list_versions(schema_root))}); "
                                 f"use `driftguard schema new-version --from-span N` for the next one")
    stats = span_statistics(layout, spans)
    schema = tfdv.infer_schema(stats)
    _allow_empty_where_optional(schema)
    if label_column:
        names = [f.name for f in schema.feature]
        if label_column not in names:
            raise SchemaVersionError(f"model.label.column {label_column!r} is not in the data of span(s) "
                                     f"{list(spans)} (columns: {', '.join(names)})")
        schema.default_environment.extend(["TRAINING", "SERVING"])
        for f in schema.feature:
            if f.name == label_column:
                f.not_in_environment.append("SERVING")
    text = schema_text(schema)
    from driftguard.pipeline.spanfiles import _layout

    sp = _layout(layout).span_pattern
    header = (f"# driftguard schema v1, inferred by TFDV from span(s) {sp.format_list(spans)} "
              f"({datetime.date.today().isoformat()}, driftguard schema infer).\n"
              f"# REVIEW IT before use: it holds what those spans happened to contain. Check presence\n"
              f"# (min_fraction: which features may be missing), domains (text values, value ranges of\n"
              f"# physical bounds), integer codes that are categories (int_domain {{ is_categorical: true }}),\n"
              f"# environments (features only training data has). Never edit in place: make a new version.\n")
    target_dir = pathlib.Path(schema_root) / "v1"
    if write:
        pathlib.Path(schema_root).mkdir(parents=True, exist_ok=True)
        _write_new_dir(target_dir, header + text)
    return NewVersion(0, 1, target_dir / SCHEMA_FILE if write else None, header + text)


def new_version_from_span(schema_root: os.PathLike, data_root, span: int,
                          write: bool = True, span_label: Optional[str] = None) -> NewVersion:
    """Update the latest schema version so that ``span`` conforms; write it as v(N+1)."""
    import tensorflow_data_validation as tfdv

    versions = list_versions(schema_root)
    if not versions:
        raise SchemaVersionError(f"no schema versions under {schema_root} "
                                 f"(expected {schema_root}/v1/{SCHEMA_FILE})")
    base = versions[-1]
    base_schema = load_schema(schema_path(schema_root, base))
    stats = span_statistics(data_root, span)
    updated = tfdv.update_schema(base_schema, stats)
    _allow_empty_where_optional(updated, only={f.name for f in base_schema.feature if _required(f)})
    before, after = schema_text(base_schema), schema_text(updated)
    diff = "".join(difflib.unified_diff(
        before.splitlines(True), after.splitlines(True),
        fromfile=f"v{base}/{SCHEMA_FILE}", tofile=f"v{base + 1}/{SCHEMA_FILE}"))
    if not diff:
        return NewVersion(base, base, None, "")
    if not write:
        return NewVersion(base, base + 1, None, diff)
    label = span_label or str(span)
    header = (f"# driftguard schema v{base + 1}: v{base} updated so that span {label} conforms\n"
              f"# (driftguard schema new-version --from-span {label}, "
              f"{datetime.date.today().isoformat()}). Never edit in place: make a new version.\n")
    target_dir = pathlib.Path(schema_root) / f"v{base + 1}"
    _write_new_dir(target_dir, header + after)
    return NewVersion(base, base + 1, target_dir / SCHEMA_FILE, diff)


def _write_new_dir(target_dir: pathlib.Path, text: str) -> None:
    """Create ``target_dir/schema.pbtxt`` atomically; refuse if the version already exists."""
    if target_dir.exists():
        raise SchemaVersionError(f"{target_dir} already exists; schema versions are never "
                                 f"overwritten")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=".tmp-", dir=target_dir.parent))
    try:
        (tmp / SCHEMA_FILE).write_text(text)
        os.rename(tmp, target_dir)
    except BaseException:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        raise
