"""Delayed labels: CSV files of ``request_id,label`` followed incrementally and restart-safely.

A labels source is one CSV file or a folder of them (read in name order, like the prediction
logs). Each file starts with the header ``request_id,label``; a label is ``0``/``1`` or
``true``/``false`` (any case). Files may grow while they are followed: only complete lines
(ending in a newline) are read, so a writer mid-line is never half-read; the byte offset and
line number after the last complete line are the file's position, saved by the monitor with
the rest of its state.

A bad row raises :class:`LabelsError` naming the file and line (``labels.csv:17: label
'maybe' is not 0/1 or true/false``): the monitor stops rather than guess, and the position
is not advanced past it, so fixing the file and restarting resumes there.

Hand-written rather than ``pandas.read_csv``: resuming at a byte offset with exact line
numbers and refusing partial lines is the point, and the format is two columns.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import pathlib
from typing import Dict, List, Mapping, Optional, Tuple, Union

HEADER = ("request_id", "label")
_TRUE = {"1", "true", "1.0"}
_FALSE = {"0", "false", "0.0"}


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


def parse_label(text: str, where: str) -> int:
    value = text.strip().lower()
    if value in _TRUE:
        return 1
    if value in _FALSE:
        return 0
    raise LabelsError(f"{where}: label {text!r} is not 0/1 or true/false")


def read_new(path: Union[str, pathlib.Path], positions: Mapping[str, Mapping[str, int]],
             max_rows: int = 1_000_000) -> Tuple[List[Tuple[str, int]], Dict[str, Dict[str, int]]]:
    """Rows after ``positions`` (``{file name: {"offset", "line"}}``), at most about ``max_rows``.

    Returns ``([(request_id, label), ...], new positions)``; the caller saves the positions
    together with what it did with the rows.
    """
    out: List[Tuple[str, int]] = []
    new_positions = {name: dict(p) for name, p in positions.items()}
    for f in label_files(path):
        if len(out) >= max_rows:
            break
        pos = FilePosition(**positions.get(f.name, {}))
        rows, pos = _read_file(f, pos, max_rows - len(out))
        out.extend(rows)
        new_positions[f.name] = pos.to_dict()
    return out, new_positions


def _read_file(f: pathlib.Path, pos: FilePosition, max_rows: int) -> Tuple[List[Tuple[str, int]], FilePosition]:
    with open(f, "rb") as fh:
        fh.seek(pos.offset)
        data = fh.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], pos
    complete = data[:end + 1]
    try:
        text = complete.decode("utf-8")
    except UnicodeDecodeError as e:
        line = pos.line + complete[:e.start].count(b"\n") + 1
        raise LabelsError(f"{f}:{line}: not UTF-8 text ({e.reason} at byte {pos.offset + e.start})") from None
    rows: List[Tuple[str, int]] = []
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
            rows.append((rid, parse_label(fields[1], where)))
        offset += len(raw.encode("utf-8"))
    return rows, FilePosition(offset, line)


def files_signature(path: Optional[Union[str, pathlib.Path]]) -> Optional[str]:
    """What a labels source is, for the state: its resolved path."""
    return None if path is None else str(pathlib.Path(path).resolve())
