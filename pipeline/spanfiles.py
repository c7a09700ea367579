"""Span files checked before any work starts: structure, encoding, size of a line, fingerprint.

Every entry point that reads spans (``driftguard run``, ``train``, ``check``, ``data validate``,
``schema new-version``) calls :func:`validate_spans` first. It reads each file once, streaming,
and refuses what CsvExampleGen would choke on or silently misread, naming the span, the file
and the line:

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

MAX_LINE_BYTES = 1 << 20          # one CSV row; the taxi rows are ~200 bytes
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
    folder: pathlib.Path
    columns: Tuple[str, ...]
    files: Tuple[SpanFile, ...]

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def sha256(self) -> str:
        """The span's fingerprint: sha256 over its files' names and sha256s (sorted by name)."""
        h = hashlib.sha256()
        for f in sorted(self.files, key=lambda f: f.path.name):
            h.update(f"{f.path.name}\0{f.sha256}\n".encode("utf-8"))
        return h.hexdigest()

    def fingerprint(self) -> Dict[str, object]:
        """What the runs folder records: the span's sha256, each file's, and the row count."""
        return {"sha256": self.sha256, "rows": self.rows,
                "files": {f.path.name: f.sha256 for f in sorted(self.files, key=lambda f: f.path.name)}}


def span_folder(data_root: os.PathLike, span: int) -> pathlib.Path:
    return pathlib.Path(data_root) / f"span-{int(span)}"


def available_spans(data_root: os.PathLike) -> List[int]:
    root = pathlib.Path(data_root)
    if not root.is_dir():
        raise SpanFileError(f"data folder {root} does not exist; run `driftguard data prepare` or "
                            f"point data_root at a folder of span-<N>/ folders")
    return sorted(int(c.name[5:]) for c in root.iterdir()
                  if c.is_dir() and c.name.startswith("span-") and c.name[5:].isdigit())


def validate_spans(data_root: os.PathLike, spans: Sequence[int], *,
                   column_types: Optional[Mapping[str, str]] = None,
                   max_line_bytes: int = MAX_LINE_BYTES) -> List[SpanInfo]:
    """Check every file of every span; return what was found, or raise :class:`SpanFileError`
    naming the span, file and line of the first problem (missing spans are listed together)."""
    root = pathlib.Path(data_root)
    have = set(available_spans(root))
    missing = [int(s) for s in spans if int(s) not in have]
    if missing:
        raise SpanFileError(f"span(s) {', '.join(map(str, missing))} not found under {root} "
                            f"(available: {', '.join(map(str, sorted(have))) or 'none'})")
    return [validate_span(root, s, column_types=column_types, max_line_bytes=max_line_bytes) for s in spans]


def validate_span(data_root: os.PathLike, span: int, *, column_types: Optional[Mapping[str, str]] = None,
                  max_line_bytes: int = MAX_LINE_BYTES) -> SpanInfo:
    folder = span_folder(data_root, span)
    if not folder.is_dir():
        raise SpanFileError(f"span {span}: folder {folder} does not exist")
    entries = sorted(folder.iterdir())
    subdirs = [p for p in entries if p.is_dir()]
    if subdirs:
        raise SpanFileError(f"span {span}: {subdirs[0]} is a folder; ExampleGen reads every entry of "
                            f"{folder}/ as a CSV file, so a span folder holds files only")
    files = [p for p in entries if p.is_file()]
    if not files:
        raise SpanFileError(f"span {span}: folder {folder} has no data files")
    checked: List[SpanFile] = []
    columns: Optional[Tuple[str, ...]] = None
    for path in files:
        header, info = _check_file(span, path, column_types, max_line_bytes)
        if columns is not None and header != columns:
            raise SpanFileError(f"span {span}: {path} has a different header than {files[0].name} "
                                f"(ExampleGen reads the files of a span as one table): "
                                f"{_header_difference(columns, header)}")
        columns = header
        checked.append(info)
    return SpanInfo(int(span), folder, columns or (), tuple(checked))


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
