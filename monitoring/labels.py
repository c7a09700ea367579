"""Delayed labels: CSV files of ``request_id,label`` followed incrementally and restart-safely.

A labels source is one CSV file or a folder of them (read in name order, like the prediction
logs). Each file starts with the header ``request_id,label``; a label is, by the model's task
(:class:`LabelParser`): ``0``/``1`` or ``true``/``false`` (any case) for a binary classifier,
one of the configured ``classes`` (or its index) for a multi-class one, a number for a
regression model. Files may grow while they are followed: only complete lines
(ending in a newline) are read, so a writer mid-line is never half-read; the byte offset and
line number after the last complete line are the file's position, saved by the monitor with
the rest of its state.

A bad row raises :class:`LabelsError` naming the file and line (``labels.csv:17: label
'maybe' is not 0/1 or true/false``): the monitor stops rather than guess, and the position
is not advanced past it, so fixing the file and restarting resumes there.

Rows are parsed by pyarrow's CSV reader (C++, ~10x faster than Python's ``csv`` module row
by row: labels can arrive as fast as predictions). The framing around it is hand-written:
resuming at a byte offset with exact line numbers and refusing partial lines is the point. A
chunk pyarrow cannot take as-is (quoted fields, a bad row, blank fields) is read again by the
row-by-row reader, which names the file and line of the first bad row.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
from typing import Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

HEADER = ("request_id", "label")
_TRUE = {"1", "true", "1.0"}
_FALSE = {"0", "false", "0.0"}


@dataclasses.dataclass(frozen=True)
class LabelParser:
    """How a label's text becomes a number, per task: 0/1 (binary), the class index in
    ``classes`` (multi-class; the class's name or its index), the value (regression)."""

    task: str = "binary"
    classes: Tuple[str, ...] = ()

    @property
    def expected(self) -> str:
        if self.task == "binary":
            return "0/1 or true/false"
        if self.task == "multiclass":
            return f"one of the classes ({', '.join(self.classes)}) or its index"
        return "a number"

    def __call__(self, text: str, where: str) -> float:
        value = text.strip()
        if self.task == "binary":
            low = value.lower()
            if low in _TRUE:
                return 1.0
            if low in _FALSE:
                return 0.0
        elif self.task == "multiclass":
            if value in self.classes:
                return float(self.classes.index(value))
            if value.isdigit() and int(value) < len(self.classes):
                return float(int(value))
        else:
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if np.isfinite(number):
                return number
        raise LabelsError(f"{where}: label {text!r} is not {self.expected}")


BINARY = LabelParser()


class LabelsError(ValueError):
    """A labels file that cannot be read; the message names the file and line."""


@dataclasses.dataclass(frozen=True)
class FilePosition:
    offset: int = 0      # bytes consumed (always at a line start)
    line: int = 0        # lines consumed (the header is line 1)

    def to_dict(self) -> Dict[str, int]:
        return {"offset": self.offset, "line": self.line}


def label_files(path: Union[str, pathlib.Path]) -> List[pathlib.Path]:
    path = pathlib.Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise LabelsError(f"{path}: no such labels file or folder")
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() in (".csv", ".txt"))


def parse_label(text: str, where: str, parser: LabelParser = BINARY) -> float:
    return parser(text, where)


@dataclasses.dataclass
class LabelRows:
    """Labels in file order: ``ids[i]`` (a request id) has label ``values[i]`` (float64: 0/1,
    a class index or a value)."""
    ids: List[str]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def pairs(self) -> List[Tuple[str, int]]:
        return list(zip(self.ids, self.values.tolist()))


def read_new(path: Union[str, pathlib.Path], positions: Mapping[str, Mapping[str, int]],
             max_rows: int = 1_000_000, parser: LabelParser = BINARY) -> Tuple[LabelRows, Dict[str, Dict[str, int]]]:
    """Rows after ``positions`` (``{file name: {"offset", "line"}}``), at most about ``max_rows``.

    Returns ``(rows, new positions)``; the caller saves the positions together with what it
    did with the rows.
    """
    ids: List[str] = []
    values: List[np.ndarray] = []
    new_positions = {name: dict(p) for name, p in positions.items()}
    for f in label_files(path):
        if len(ids) >= max_rows:
            break
        pos = FilePosition(**positions.get(f.name, {}))
        (file_ids, file_values), pos = _read_file(f, pos, max_rows - len(ids), parser)
        ids.extend(file_ids)
        values.append(file_values)
        new_positions[f.name] = pos.to_dict()
    return LabelRows(ids, np.concatenate(values) if values else np.zeros(0, np.float64)), new_positions


def _read_file(f: pathlib.Path, pos: FilePosition, max_rows: int, parser: LabelParser = BINARY
               ) -> Tuple[Tuple[List[str], np.ndarray], FilePosition]:
    with open(f, "rb") as fh:
        fh.seek(pos.offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return ([], np.zeros(0, np.float64)), pos
    complete = data[:end + 1]
    try:
        complete.decode("utf-8")
    except UnicodeDecodeError as e:
        line = pos.line + complete[:e.start].count(b"\n") + 1
        raise LabelsError(f"{f}:{line}: not UTF-8 text ({e.reason} at byte {pos.offset + e.start})") from None
    head = 0
    if pos.line == 0:                 # the header, checked by the row-by-row reader
        head = complete.index(b"\n") + 1
        _, header_pos = _read_rows(f, complete[:head].decode("utf-8"), pos, 1, parser)
    else:
        header_pos = pos
    body = complete[head:]
    newlines = np.flatnonzero(np.frombuffer(body, np.uint8) == ord("\n"))
    if max_rows < newlines.size:          # cut after max_rows lines
        newlines = newlines[:max_rows]
        body = body[:int(newlines[-1]) + 1] if max_rows else b""
    fast = _parse_fast(body, newlines.size, parser)
    if fast is not None:
        return fast, FilePosition(header_pos.offset + len(body), header_pos.line + newlines.size)
    rows, new_pos = _read_rows(f, body.decode("utf-8"), header_pos, max_rows, parser)
    return ([r[0] for r in rows], np.array([r[1] for r in rows], dtype=np.float64)), new_pos


def _parse_fast(body: bytes, lines: int, parser: LabelParser = BINARY) -> Optional[Tuple[List[str], np.ndarray]]:
    """Rows of ``body`` (``lines`` complete lines after the header) by pyarrow, or None when any row is
    not plain ``id,label`` with a non-empty id and a known label (the caller then reads the
    chunk row by row, which skips blank lines and names the first bad row)."""
    if not body:
        return [], np.zeros(0, np.float64)
    if b'"' in body:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc
    from pyarrow import csv as pa_csv

    try:
        # open_csv, not read_csv: on Python 3.10 read_csv's interrupt handler walks every
        # object in the heap (gc.get_referrers), ~50 ms per call in the monitor's process
        table = pa_csv.open_csv(
            pa.BufferReader(body),
            read_options=pa_csv.ReadOptions(column_names=list(HEADER), use_threads=False),
            parse_options=pa_csv.ParseOptions(quote_char=False, escape_char=False, newlines_in_values=False,
                                              ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types={n: pa.string() for n in HEADER},
                                                  strings_can_be_null=False, quoted_strings_can_be_null=False)
        ).read_all()
    except pa.ArrowException:
        return None
    if table.num_rows != lines:
        return None
    ids = pc.utf8_trim_whitespace(table.column("request_id"))
    if pc.any(pc.equal(pc.utf8_length(ids), 0)).as_py():
        return None
    text = pc.utf8_trim_whitespace(table.column("label"))
    if parser.task == "binary":
        label = pc.utf8_lower(text)
        one = pc.is_in(label, value_set=pa.array(sorted(_TRUE)))
        zero = pc.is_in(label, value_set=pa.array(sorted(_FALSE)))
        if not pc.all(pc.or_(one, zero)).as_py():
            return None
        values = pc.cast(one, pa.float64())
    elif parser.task == "multiclass":
        values = pc.index_in(text, value_set=pa.array(list(parser.classes)))
        if values.null_count:
            return None                 # an index, or an unknown class: the row-by-row reader
        values = pc.cast(values, pa.float64())
    else:
        try:
            values = pc.cast(text, pa.float64())
        except pa.ArrowInvalid:
            return None
        if values.null_count or not np.isfinite(values.to_numpy()).all():
            return None
    return ids.to_numpy().tolist(), np.asarray(values.to_numpy(), dtype=np.float64)


def _read_rows(f: pathlib.Path, text: str, pos: FilePosition, max_rows: int, parser: LabelParser = BINARY
               ) -> Tuple[List[Tuple[str, float]], FilePosition]:
    """Python's csv module, row by row: exact line numbers in errors; skips blank rows."""
    rows: List[Tuple[str, float]] = []
    line = pos.line
    offset = pos.offset
    for raw in io.StringIO(text, newline=""):
        if len(rows) >= max_rows:
            break
        line += 1
        where = f"{f}:{line}"
        fields = next(csv.reader([raw]), [])
        if line == 1:
            names = tuple(x.strip().lower() for x in fields)
            if names != HEADER:
                raise LabelsError(f"{where}: the header must be 'request_id,label', got {raw.strip()!r}")
        elif fields and any(x.strip() for x in fields):
            if len(fields) != 2:
                raise LabelsError(f"{where}: expected 2 fields (request_id,label), got {len(fields)}: "
                                  f"{raw.strip()[:80]!r}")
            rid = fields[0].strip()
            if not rid:
                raise LabelsError(f"{where}: empty request_id")
            rows.append((rid, parser(fields[1], where)))
        offset += len(raw.encode("utf-8"))
    return rows, FilePosition(offset, line)


def files_signature(path: Optional[Union[str, pathlib.Path]]) -> Optional[str]:
    """What a labels source is, for the state: its resolved path."""
    return None if path is None else str(pathlib.Path(path).resolve())
