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


def span_statistics(data_root: os.PathLike, span: int):
    """TFDV statistics of one span's CSV files (in-process Beam)."""
    import tensorflow_data_validation as tfdv

    span_dir = pathlib.Path(data_root) / f"span-{int(span)}"
    files = sorted(str(p) for p in span_dir.glob("*") if p.is_file())
    if not files:
        raise SchemaVersionError(f"span {span}: no data files in {span_dir}")
    if len(files) == 1:
        return tfdv.generate_statistics_from_csv(files[0])
    return tfdv.generate_statistics_from_csv(str(span_dir / "*"))


def new_version_from_span(schema_root: os.PathLike, data_root: os.PathLike, span: int,
                          write: bool = True) -> NewVersion:
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
    before, after = schema_text(base_schema), schema_text(updated)
    diff = "".join(difflib.unified_diff(
        before.splitlines(True), after.splitlines(True),
        fromfile=f"v{base}/{SCHEMA_FILE}", tofile=f"v{base + 1}/{SCHEMA_FILE}"))
    if not diff:
        return NewVersion(base, base, None, "")
    if not write:
        return NewVersion(base, base + 1, None, diff)
    header = (f"# driftguard schema v{base + 1}: v{base} updated so that span {span} conforms\n"
              f"# (driftguard schema new-version --from-span {span}, "
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
