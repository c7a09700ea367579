"""Span files checked before any work starts: structure, encoding, size of a line, fingerprint.

Every entry point that reads spans (``driftguard run``, ``train``, ``check``, ``data validate``,
``schema new-version``) calls :func:`validate_spans` first, with the project's
:class:`Layout` (``data.format``, ``data.root``, ``data.pattern``/``data.splits``). It reads each
file once, streaming, and refuses what ExampleGen would choke on or silently misread, naming
the span, the file and the line, byte or column.

Parquet files (:func:`_check_parquet`): the footer is read (not the rows): a file that is not
Parquet, files of one span with different columns or types, a column whose type is not the
schema's (an INT feature stored as text), a required column (the label) missing.
TFRecord files of ``tf.Example`` (:func:`_check_tfrecord`, gzip or not): every record's frame
(length, masked CRC32C of the length), the first record's features and their kinds against
the schema.

CSV files (below):

- a missing span folder, a folder with no files or with a sub-folder (ExampleGen reads every
  entry matching ``span-{SPAN}/*``);
- an empty file, a header with no rows, a blank or duplicated column name, a byte-order mark;
- a header that looks separated by ``;``, tab or ``|`` (span files are comma-separated);
- a row whose field count differs from the header's (ragged), a blank line, a quoted field
  running over several lines (ExampleGen reads one row per line), a NUL byte;
- bytes that are not UTF-8 (the line and the byte offset in the file);
- a line longer than ``max_line_bytes`` (1 MiB): the read stops there, so a 100 MB line costs
  1 MiB of memory, not 100 MB;
- with ``column_types`` (from the schema: ``driftguard data validate``): a column the schema
  declares INT or FLOAT holding values that are not numbers.

The same pass hashes every file (sha256): :class:`SpanInfo.sha256` is the span's fingerprint,
which the runs folder records the first time a span is used so that a span whose content
changes later is refused (:func:`changed_spans`) instead of mixing two datasets under one
number.

The standard library's :mod:`csv` parser does the parsing; what is hand-written is only the
bounded line reading around it and the positions in the messages, which neither :mod:`csv`
nor pyarrow's CSV reader report (pyarrow names neither the line of a ragged row nor the
offset of a bad UTF-8 byte, and reads a whole block before failing on a long line).
No TensorFlow, TFX or pandas imports: a bad span fails in well under a second.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import pathlib
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

MAX_LINE_BYTES = 1 << 20          # one CSV row (a row of tabular data is a few hundred bytes)
_OTHER_DELIMITERS = {";": "';'", "\t": "tab", "|": "'|'"}
_NUMERIC = ("INT", "FLOAT")
_BOM = b"\xef\xbb\xbf"


class SpanFileError(ValueError):
    """A span is missing or one of its files is not a CSV file ExampleGen can read."""


class SpanChangedError(ValueError):
    """A span's content differs from what this runs folder used under the same number."""


@dataclasses.dataclass(frozen=True)
class SpanFile:
    path: pathlib.Path
    rows: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class SpanInfo:
    span: int
    folder: pathlib.Path                 # the data root (files are named relative to it)
    columns: Tuple[str, ...]
    files: Tuple[SpanFile, ...]
    label: str = ""                      # the span as people write it (2013-05)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def _name(self, f: SpanFile) -> str:
        """A file's name in the fingerprint: its file name (the span's folder names the span),
        or its path under the data root when two files of the span share a name (splits)."""
        names = [g.path.name for g in self.files]
        if names.count(f.path.name) == 1:
            return f.path.name
        try:
            return f.path.relative_to(self.folder).as_posix()
        except ValueError:
            return str(f.path)

    @property
    def sha256(self) -> str:
        """The span's fingerprint: sha256 over its files' names and sha256s (sorted by name)."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=self._name):
            h.update(f"{self._name(f)}\0{f.sha256}\n".encode("utf-8"))
        return h.hexdigest()

    def fingerprint(self) -> Dict[str, object]:
        """What the runs folder records: the span's sha256, each file's, and the row count."""
        return {"sha256": self.sha256, "rows": self.rows,
                "files": {self._name(f): f.sha256 for f in sorted(self.files, key=self._name)}}


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a project's spans are and how they are written (``data:`` in driftguard.yaml)."""

    root: pathlib.Path
    format: str = "csv"
    pattern: str = "span-{SPAN}/*"
    splits: Tuple[Tuple[str, str], ...] = ()      # (split name, pattern) when the input is pre-split

    @classmethod
    def of(cls, cfg, data_root: Optional[os.PathLike] = None) -> "Layout":
        d = cfg.data
        return cls(pathlib.Path(data_root or cfg.data_path), d.format, d.pattern,
                   tuple(sorted((d.splits or {}).items())))

    @property
    def span_pattern(self):
        from driftguard.components.spans import SpanPattern

        return SpanPattern(self.pattern)

    @property
    def patterns(self) -> List[Tuple[str, str]]:
        return list(self.splits) or [("", self.pattern)]

    def label(self, span: int) -> str:
        return self.span_pattern.label(span)

    def where(self, span: int) -> str:
        """The span's files, as a glob under the root (for messages)."""
        sp = self.span_pattern
        return ", ".join(str(self.root / sp.glob(span, p)) for _, p in self.patterns)


def _layout(root_or_layout) -> Layout:
    return root_or_layout if isinstance(root_or_layout, Layout) else Layout(pathlib.Path(root_or_layout))


def span_folder(data_root: os.PathLike, span: int) -> pathlib.Path:
    return pathlib.Path(data_root) / f"span-{int(span)}"


def available_spans(data_root) -> List[int]:
    """Spans with files for every split pattern under the layout's root (a path: ``span-{SPAN}/*``)."""
    layout = _layout(data_root)
    root = layout.root
    if not root.is_dir():
        raise SpanFileError(f"data folder {root} does not exist (data.root); put the spans there or point "
                            f"data.root at the folder holding them")
    sp = layout.span_pattern
    found = None
    for _, pattern in layout.patterns:
        spans = set(sp.available(root, pattern))
        found = spans if found is None else found & spans
    return sorted(found or ())


def validate_spans(data_root, spans: Sequence[int], *,
                   column_types: Optional[Mapping[str, str]] = None,
                   required_columns: Optional[Mapping[str, str]] = None,
                   max_line_bytes: int = MAX_LINE_BYTES) -> List[SpanInfo]:
    """Check every file of every span; return what was found, or raise :class:`SpanFileError`
    naming the span, file and line of the first problem (missing spans are listed together).

    ``data_root``: a :class:`Layout` (or a folder of ``span-<N>/`` CSV folders).
    ``required_columns``: {column: config key asking for it} that every file must hold (the
    label of training spans: ``model.label.column``).
    """
    layout = _layout(data_root)
    root = layout.root
    have = set(available_spans(layout))
    missing = [int(s) for s in spans if int(s) not in have]
    for span in missing:                  # a span's folder that exists but holds nothing to read
        for _, pattern in layout.patterns:
            folder = root / os.path.dirname(layout.span_pattern.glob(span, pattern))
            if folder != root and folder.is_dir() and not any(p.is_file() for p in folder.iterdir()):
                raise SpanFileError(f"span {layout.label(span)}: folder {folder} has no data files")
    if missing:
        sp = layout.span_pattern
        if not have:
            raise SpanFileError(f"data.pattern {layout.pattern!r} matches no file under {root} (format "
                                f"{layout.format}); span {sp.label(missing[0])} would be {layout.where(missing[0])}")
        raise SpanFileError(f"span(s) {sp.format_list(missing)} not found under {root} (data.pattern "
                            f"{layout.pattern!r}; available: {sp.format_list(sorted(have))})")
    return [validate_span(layout, s, column_types=column_types, required_columns=required_columns,
                          max_line_bytes=max_line_bytes) for s in spans]


def validate_span(data_root, span: int, *, column_types: Optional[Mapping[str, str]] = None,
                  required_columns: Optional[Mapping[str, str]] = None,
                  max_line_bytes: int = MAX_LINE_BYTES) -> SpanInfo:
    layout = _layout(data_root)
    sp = layout.span_pattern
    label = sp.label(span)
    checked: List[SpanFile] = []
    columns: Optional[Tuple[str, ...]] = None
    first: Optional[pathlib.Path] = None
    for split, pattern in layout.patterns:
        entries = sp.files(layout.root, span, pattern)
        where = f"span {label}" + (f" ({split} split)" if split else "")
        folders = [p for p in entries if p.is_dir()]
        if folders:
            raise SpanFileError(f"{where}: {folders[0]} is a folder; ExampleGen reads every entry matching "
                                f"{layout.root / sp.glob(span, pattern)} as a {layout.format} file, so the "
                                f"pattern must match files only (end it with /* to read a folder's files)")
        files = [p for p in entries if p.is_file()]
        if not files:
            raise SpanFileError(f"{where}: {layout.root / sp.glob(span, pattern)} matches no data file")
        for path in files:
            if layout.format == "csv":
                header, info = _check_file(label, path, column_types, max_line_bytes)
                kinds = None
            elif layout.format == "parquet":
                header, kinds, info = _check_parquet(label, path, column_types)
            else:
                header, kinds, info = _check_tfrecord(label, path, column_types)
            if columns is not None and header != columns and layout.format != "tfrecord":
                what = "a different header" if layout.format == "csv" else "different columns"
                raise SpanFileError(f"{where}: {path} has {what} than {first.name} "
                                    f"(ExampleGen reads the files of a span as one table): "
                                    f"{_header_difference(columns, header)}")
            if columns is None:
                columns, first = header, path
            for column, key in (required_columns or {}).items():
                if column not in header:
                    raise SpanFileError(f"{where}: {path} has no column {column!r} ({key}); its columns: "
                                        f"{', '.join(header)}")
            checked.append(SpanFile(path, info.rows, info.sha256))
    return SpanInfo(int(span), layout.root, columns or (), tuple(checked), label)


def _header_difference(first: Tuple[str, ...], other: Tuple[str, ...]) -> str:
    extra = [c for c in other if c not in first]
    lacking = [c for c in first if c not in other]
    if extra or lacking:
        return f"columns only here: {extra or 'none'}, missing here: {lacking or 'none'}"
    return "the same columns in another order"


def _lines(span: int, path: pathlib.Path, f, hasher, max_line_bytes: int) -> Iterator[str]:
    """Decoded lines of ``f`` (line endings kept, for :mod:`csv`); each read is capped at
    ``max_line_bytes`` so an endless line fails after that many bytes, never all of it."""
    offset = 0
    number = 0
    while True:
        raw = f.readline(max_line_bytes + 1)
        if not raw:
            return
        number += 1
        hasher.update(raw)
        if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
            raise SpanFileError(f"span {span}: {path}: line {number} is longer than {max_line_bytes:,} bytes "
                                f"(stopped reading there); a CSV row of this data is a few hundred bytes")
        if number == 1 and raw.startswith(_BOM):
            raise SpanFileError(f"span {span}: {path}: starts with a UTF-8 byte-order mark, which would "
                                f"become part of the first column's name; save the file without it")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise SpanFileError(
                f"span {span}: {path}: line {number}: invalid UTF-8 at byte offset {offset + e.start:,} of "
                f"the file (byte 0x{raw[e.start]:02x}, column {e.start + 1} of the line); span files must "
                f"be UTF-8 CSV") from None
        if "\0" in text:
            raise SpanFileError(f"span {span}: {path}: line {number} holds a NUL byte (column "
                                f"{text.index(chr(0)) + 1}); is this a binary file?")
        offset += len(raw)
        yield text


def _check_file(span: int, path: pathlib.Path, column_types: Optional[Mapping[str, str]],
                max_line_bytes: int) -> Tuple[Tuple[str, ...], SpanFile]:
    size = path.stat().st_size
    if size == 0:
        raise SpanFileError(f"span {span}: {path} is empty (0 bytes): no header and no rows")
    hasher = hashlib.sha256()
    where = f"span {span}: {path}"
    with open(path, "rb") as f:
        lines = _lines(span, path, f, hasher, max_line_bytes)
        reader = csv.reader(lines, strict=True)
        try:
            header = next(reader, None)
        except csv.Error as e:
            raise SpanFileError(f"{where}: line 1 (the header): {e}") from None
        if not header or all(not c.strip() for c in header):
            raise SpanFileError(f"{where}: line 1 (the header) is blank; the first line must name the columns")
        header = tuple(header)
        _check_header(where, header)
        numeric = {i: column_types[c] for i, c in enumerate(header)
                   if column_types and column_types.get(c) in _NUMERIC}
        bad_numbers: Dict[int, List] = {}          # column index -> [count, first line, first value]
        rows = 0
        previous_line = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise SpanFileError(f"{where}: line {reader.line_num}: {e}") from None
            line = reader.line_num
            if line - previous_line > 1:
                raise SpanFileError(f"{where}: lines {previous_line + 1}-{line}: a quoted field runs over "
                                    f"several lines; ExampleGen reads one row per line")
            previous_line = line
            if not row:
                raise SpanFileError(f"{where}: line {line} is blank; every line after the header is a row "
                                    f"of {len(header)} fields")
            if len(row) != len(header):
                raise SpanFileError(f"{where}: line {line} has {len(row)} field(s), the header has "
                                    f"{len(header)} (ragged row)")
            rows += 1
            for i, kind in numeric.items():
                value = row[i].strip()
                if value and not _parses(value, kind):
                    entry = bad_numbers.setdefault(i, [0, line, value])
                    entry[0] += 1
    if rows == 0:
        raise SpanFileError(f"{where}: has a header but no data rows")
    if bad_numbers:
        i, (count, line, value) = min(bad_numbers.items(), key=lambda kv: kv[1][1])
        others = [header[j] for j in sorted(bad_numbers) if j != i]
        what = "integers" if numeric[i] == "INT" else "numbers"
        raise SpanFileError(
            f"{where}: column {header[i]!r} is {numeric[i]} in the schema but holds text: line {line} "
            f"has {value[:40]!r} ({count:,} of {rows:,} values are not {what})"
            + (f"; also text in {', '.join(map(repr, others))}" if others else ""))
    return header, SpanFile(path, rows, hasher.hexdigest())


_ARROW_KINDS = {"INT": ("integer",), "FLOAT": ("floating", "integer"), "BYTES": ("string", "binary")}


def _arrow_kind(t) -> str:
    import pyarrow as pa

    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "floating"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def _sha256(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_kinds(where: str, kinds: Mapping[str, str], column_types: Optional[Mapping[str, str]],
                 stored_as: str) -> None:
    """A column whose stored kind cannot be the schema's type (an INT feature stored as text)."""
    for name, kind in kinds.items():
        want = (column_types or {}).get(name)
        if want in _ARROW_KINDS and kind != "null" and kind not in _ARROW_KINDS[want]:
            raise SpanFileError(f"{where}: column {name!r} is {want} in the schema but {kind} in this file "
                                f"({stored_as}); a file of another schema: write {name} as "
                                f"{_ARROW_KINDS[want][0]} or make a new schema version")


def _check_parquet(span, path: pathlib.Path, column_types):
    """Columns, kinds and row count of a Parquet file, from its footer (the rows are not read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where = f"span {span}: {path}"
    if path.stat().st_size == 0:
        raise SpanFileError(f"{where} is empty (0 bytes)")
    try:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        rows = meta.metadata.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise SpanFileError(f"{where} is not a Parquet file ExampleGen can read: {e}") from None
    kinds = {}
    for field in schema:
        t = field.type
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            t = t.value_type
        kinds[field.name] = _arrow_kind(t)
    _check_kinds(where, kinds, column_types, "Parquet")
    if rows == 0:
        raise SpanFileError(f"{where} holds no rows")
    return tuple(schema.names), kinds, SpanFile(path, int(rows), _sha256(path))


def _check_tfrecord(span, path: pathlib.Path, column_types):
    """Every record's frame of a TFRecord file (gzip or not), and the features of its first
    ``tf.Example`` (their names and kinds)."""
    import gzip
    import struct

    where = f"span {span}: {path}"
    if path.stat().st_size == 0:
        raise SpanFileError(f"{where} is empty (0 bytes)")
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    rows, first = 0, None
    try:
        with opener(path, "rb") as f:
            while True:
                head = f.read(12)
                if not head:
                    break
                if len(head) < 12:
                    raise SpanFileError(f"{where}: record {rows + 1} is cut short (a TFRecord frame header is "
                                        f"12 bytes); the file is truncated or not TFRecord")
                length, crc = struct.unpack("<QI", head)
                if _masked_crc(head[:8]) != crc:
                    raise SpanFileError(f"{where}: record {rows + 1}: bad length checksum; not a TFRecord file "
                                        f"{'(gzip-compressed)' if gzipped else '(plain; gzip files are detected)'}")
                if length > 1 << 30:
                    raise SpanFileError(f"{where}: record {rows + 1} claims {length:,} bytes")
                data = f.read(length)
                tail = f.read(4)
                if len(data) < length or len(tail) < 4:
                    raise SpanFileError(f"{where}: record {rows + 1} is cut short; the file is truncated")
                if first is None:
                    first = data
                rows += 1
    except (OSError, EOFError) as e:
        raise SpanFileError(f"{where}: cannot read it: {e}") from None
    if rows == 0:
        raise SpanFileError(f"{where} holds no records")
    try:
        kinds = _example_kinds(first)
    except ValueError as e:
        raise SpanFileError(f"{where}: record 1 is not a serialized tf.Example: {e}") from None
    _check_kinds(where, kinds, column_types, "tf.Example")
    return tuple(kinds), kinds, SpanFile(path, rows, _sha256(path))


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(buf: bytes):
    """(field number, wire type, value or (start, end)) of a protobuf message's top level."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, wire, value
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > len(buf):
                raise ValueError("field runs past the end")
            yield number, wire, (i, i + size)
            i += size
        elif wire == 5:
            i += 4
        elif wire == 1:
            i += 8
        else:
            raise ValueError(f"wire type {wire}")


def _example_kinds(data: bytes) -> Dict[str, str]:
    """{feature: "string" | "floating" | "integer" | "null"} of a serialized tf.Example, read
    from the wire format (Example.features = 1; Features.feature = 1: map<string, Feature>;
    Feature: bytes_list = 1, float_list = 2, int64_list = 3)."""
    kinds: Dict[str, str] = {}
    for number, wire, span in _fields(data):
        if number != 1 or wire != 2:
            continue
        features = data[span[0]:span[1]]
        for n2, w2, entry in _fields(features):
            if n2 != 1 or w2 != 2:
                continue
            body = features[entry[0]:entry[1]]
            name, kind = None, "null"
            for n3, w3, part in _fields(body):
                if n3 == 1 and w3 == 2:
                    name = body[part[0]:part[1]].decode("utf-8", "replace")
                elif n3 == 2 and w3 == 2:
                    feature = body[part[0]:part[1]]
                    for n4, w4, _ in _fields(feature):
                        kind = {1: "string", 2: "floating", 3: "integer"}.get(n4, kind)
            if name is not None:
                kinds[name] = kind
    if not kinds:
        raise ValueError("no features")
    return kinds


def _check_header(where: str, header: Tuple[str, ...]) -> None:
    if len(header) == 1:
        for delimiter, name in _OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                raise SpanFileError(f"{where}: line 1 (the header) is one column {header[0][:80]!r}: the file "
                                    f"looks {name}-separated; span files must be comma-separated")
    seen = set()
    for i, name in enumerate(header):
        if not name.strip():
            raise SpanFileError(f"{where}: line 1 (the header): column {i + 1} has no name")
        if name in seen:
            raise SpanFileError(f"{where}: line 1 (the header): column {name!r} appears twice")
        seen.add(name)


def _parses(value: str, kind: str) -> bool:
    try:
        int(value) if kind == "INT" else float(value)
    except ValueError:
        return False
    return True


def schema_column_types(schema) -> Dict[str, str]:
    """{feature name: 'INT' | 'FLOAT' | 'BYTES'} of a tensorflow_metadata Schema proto."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    return {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}


def changed_spans(recorded: Mapping[str, Mapping], infos: Sequence[SpanInfo]) -> None:
    """Raise :class:`SpanChangedError` if a span's fingerprint differs from the one recorded
    (``{"<span>": {"sha256", "files", "recorded_at", "command"}}``); a span seen for the
    first time, or with the same content, passes."""
    for info in infos:
        old = recorded.get(str(info.span))
        if not old or old.get("sha256") == info.sha256:
            continue
        now = info.fingerprint()["files"]
        before = old.get("files", {})
        changes = [f"{n} (sha256 {before[n][:12]} -> {now[n][:12]})" for n in sorted(now)
                   if n in before and before[n] != now[n]]
        changes += [f"{n} added" for n in sorted(set(now) - set(before))]
        changes += [f"{n} removed" for n in sorted(set(before) - set(now))]
        raise SpanChangedError(
            f"span {info.span} changed since this runs folder used it ({old.get('command', '?')} at "
            f"{old.get('recorded_at', '?')}): {'; '.join(changes) or 'different content'} in {info.folder}. "
            f"A span number stands for one dataset: put new data in a new span, or restore the old file")
