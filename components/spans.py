"""Span patterns: which files hold span N, and how a span is written for people.

A project's data is a folder of spans matched by ``data.pattern`` (relative to ``data.root``),
with the placeholders TFX's ExampleGen understands:

- ``{SPAN}``: the span number itself, ``span-{SPAN}/*`` -> ``span-7/*`` (span 7);
- calendar spans: ``{YYYY}``, ``{YYYY}-{MM}`` or ``{YYYY}-{MM}-{DD}`` (in any order and with any
  text around them), one folder or file name per year, month or day: ``{YYYY}-{MM}/*`` ->
  ``2013-05/*``. TFX's ExampleGen accepts only the three together (a day); driftguard resolves
  every calendar pattern itself (days too) and hands ExampleGen the span's literal pattern.

Every span has a number (windows and "the newest N spans" are arithmetic on it) and a label
(what people read and type). For ``{SPAN}`` they are the same. Calendar spans count from
1970 as TFX does for days: a day is its number of days since 1970-01-01 (TFX's span number),
a month its number of months since 1970-01, a year its number of years since 1970. So
consecutive months are consecutive numbers, and the label is the date (``2013-05``).

Pure Python (no TFX import): used before any work starts, to list, validate and name spans.
"""
from __future__ import annotations

import dataclasses
import datetime
import glob
import os
import pathlib
import re
from typing import Dict, List, Optional, Sequence, Tuple

SPAN_SPEC = "{SPAN}"
YEAR, MONTH, DAY = "{YYYY}", "{MM}", "{DD}"
_SPEC_RE = re.compile(r"\{[A-Z]+(?::\d+)?\}")
_KNOWN = (SPAN_SPEC, YEAR, MONTH, DAY)
_EPOCH = datetime.date(1970, 1, 1)


class SpanPatternError(ValueError):
    """A pattern, a span label or a span's files are not what the pattern allows."""


@dataclasses.dataclass(frozen=True)
class SpanPattern:
    """``data.pattern`` (``pattern``) of a project, read once.

    >>> p = SpanPattern("{YYYY}-{MM}/*.parquet")
    >>> p.number("2013-05"), p.label(520), p.glob(520)
    (520, '2013-05', '2013-05/*.parquet')
    >>> SpanPattern("span-{SPAN}/*").glob(7)
    'span-7/*'
    """

    pattern: str

    def __post_init__(self):
        specs = _SPEC_RE.findall(self.pattern)
        unknown = [s for s in specs if s not in _KNOWN]
        if unknown:
            raise SpanPatternError(f"pattern {self.pattern!r}: unknown placeholder {unknown[0]} (use {{SPAN}}, "
                                   f"or {{YYYY}}, {{YYYY}}-{{MM}}, {{YYYY}}-{{MM}}-{{DD}} for calendar spans)")
        if self.pattern.startswith("/") or ".." in pathlib.PurePosixPath(self.pattern).parts:
            raise SpanPatternError(f"pattern {self.pattern!r} must stay inside the data folder "
                                   f"(relative, no '..')")
        has_span = SPAN_SPEC in specs
        dates = [s for s in specs if s in (YEAR, MONTH, DAY)]
        if has_span and dates:
            raise SpanPatternError(f"pattern {self.pattern!r} mixes {{SPAN}} with calendar placeholders; use one kind")
        if not has_span and not dates:
            raise SpanPatternError(f"pattern {self.pattern!r} has no span placeholder: put {{SPAN}} (span-{{SPAN}}/*) "
                                   f"or a calendar one ({{YYYY}}-{{MM}}/*) where the span's folder or file name varies")
        for spec in specs:
            if specs.count(spec) > 1:
                raise SpanPatternError(f"pattern {self.pattern!r} holds {spec} twice")
        if dates and YEAR not in dates or (DAY in dates and MONTH not in dates):
            raise SpanPatternError(f"pattern {self.pattern!r}: calendar spans are {{YYYY}}, {{YYYY}}-{{MM}} or "
                                   f"{{YYYY}}-{{MM}}-{{DD}} (a coarser unit cannot be missing)")

    # ---- what kind of span

    @property
    def unit(self) -> str:
        """'span', 'year', 'month' or 'day'."""
        if SPAN_SPEC in self.pattern:
            return "span"
        return "day" if DAY in self.pattern else "month" if MONTH in self.pattern else "year"

    @property
    def example(self) -> str:
        """A label written the way this pattern's spans are (for messages)."""
        return {"span": "7", "year": "2013", "month": "2013-05", "day": "2013-05-17"}[self.unit]

    # ---- number <-> label

    def label(self, number: int) -> str:
        number = int(number)
        unit = self.unit
        if unit == "span":
            return str(number)
        if unit == "year":
            return f"{1970 + number:04d}"
        if unit == "month":
            return f"{1970 + number // 12:04d}-{number % 12 + 1:02d}"
        d = _EPOCH + datetime.timedelta(days=number)
        return d.isoformat()

    def number(self, label) -> int:
        """The span number of a label (``"2013-05"``, ``7``, ``"7"``), or SpanPatternError."""
        text = str(label).strip()
        unit = self.unit
        if unit == "span":
            if not re.fullmatch(r"\d+", text):
                raise SpanPatternError(f"span {text!r} is not a span number (spans of {self.pattern!r} are "
                                       f"numbers like 7)")
            return int(text)
        forms = {"year": (r"(\d{4})", "2013"), "month": (r"(\d{4})-(\d{1,2})", "2013-05"),
                 "day": (r"(\d{4})-(\d{1,2})-(\d{1,2})", "2013-05-17")}
        regex, shown = forms[unit]
        m = re.fullmatch(regex, text)
        if not m:
            raise SpanPatternError(f"span {text!r} is not a {unit} (spans of {self.pattern!r} are written like "
                                   f"{shown})")
        parts = [int(g) for g in m.groups()]
        try:
            date = datetime.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
        except ValueError as e:
            raise SpanPatternError(f"span {text!r}: {e}") from None
        if date < _EPOCH:
            raise SpanPatternError(f"span {text!r} is before 1970, where span numbers start")
        if unit == "year":
            return date.year - 1970
        if unit == "month":
            return (date.year - 1970) * 12 + date.month - 1
        return (date - _EPOCH).days

    def parse_list(self, text) -> List[int]:
        """``'3'``, ``'1,2'``, ``'1-4'`` or, for calendar spans, ``'2013-03..2013-06'`` -> sorted numbers."""
        out: List[int] = []
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            if ".." in part and self.unit != "span":
                first, last = part.split("..", 1)
                try:
                    lo, hi = self.number(first), self.number(last)
                except SpanPatternError:
                    raise SpanPatternError(f"span range {part!r}: write it like {self.example}..{self.example} "
                                           f"(spans of {self.pattern!r})") from None
            elif self.unit == "span" and re.fullmatch(r"\d+-\d+", part):
                lo, hi = (int(p) for p in part.split("-"))
            else:
                lo = hi = self.number(part)
            if hi < lo:
                raise SpanPatternError(f"span range {part!r}: the end is before the start (spans of "
                                       f"{self.pattern!r} are written like {self.example}; a range like "
                                       f"{'1-4' if self.unit == 'span' else self.example + '..' + self.example}")
            out.extend(range(lo, hi + 1))
        if not out:
            raise SpanPatternError(f"no span in {text!r}: write spans like '{self.example}'"
                                   + (", '1,2' or '1-4'" if self.unit == "span" else f" or '{self.example}..'"))
        return sorted(set(out))

    def format_list(self, numbers: Sequence[int]) -> str:
        return ", ".join(self.label(n) for n in numbers)

    # ---- files

    def _values(self, number: int) -> Dict[str, str]:
        unit = self.unit
        if unit == "span":
            return {SPAN_SPEC: str(int(number))}
        label = self.label(number).split("-")
        return dict(zip((YEAR, MONTH, DAY), label))

    def glob(self, number: int, pattern: Optional[str] = None) -> str:
        """The pattern of span ``number`` (relative to the data folder), placeholders filled in."""
        text = pattern or self.pattern
        for spec, value in self._values(number).items():
            text = text.replace(spec, value)
        return text

    def _matcher(self, pattern: Optional[str] = None) -> Tuple[str, "re.Pattern"]:
        """(glob with wildcards for the placeholders, regex capturing them) over relative paths."""
        text = pattern or self.pattern
        out_glob, out_re, pos = [], [], 0
        for m in _SPEC_RE.finditer(text):
            literal = text[pos:m.start()]
            out_glob.append(literal)
            out_re.append(_glob_to_regex(literal))
            spec = m.group(0)
            out_glob.append("*")
            width = {YEAR: r"\d{4}", MONTH: r"\d{2}", DAY: r"\d{2}", SPAN_SPEC: r"\d+"}[spec]
            out_re.append(f"(?P<{spec[1:-1]}>{width})")
            pos = m.end()
        out_glob.append(text[pos:])
        out_re.append(_glob_to_regex(text[pos:]))
        return "".join(out_glob), re.compile("".join(out_re) + r"\Z")

    def available(self, root: os.PathLike, pattern: Optional[str] = None) -> List[int]:
        """Span numbers with at least one entry matching the pattern under ``root``."""
        root = pathlib.Path(root)
        wild, regex = self._matcher(pattern)
        found = set()
        for path in glob.glob(str(root / wild)):
            rel = pathlib.Path(path).relative_to(root).as_posix()
            m = regex.match(rel)
            if not m:
                continue
            groups = m.groupdict()
            if "SPAN" in groups:
                found.add(int(groups["SPAN"]))
                continue
            try:
                date = datetime.date(int(groups["YYYY"]), int(groups.get("MM") or 1), int(groups.get("DD") or 1))
            except ValueError:
                continue
            if date >= _EPOCH:
                found.add(self.number(self.label_of_date(date)))
        return sorted(found)

    def label_of_date(self, date: datetime.date) -> str:
        return {"year": f"{date.year:04d}", "month": f"{date.year:04d}-{date.month:02d}",
                "day": date.isoformat()}[self.unit]

    def files(self, root: os.PathLike, number: int, pattern: Optional[str] = None) -> List[pathlib.Path]:
        """Entries of span ``number`` under ``root`` (files and folders, sorted by name)."""
        return sorted(pathlib.Path(p) for p in glob.glob(str(pathlib.Path(root) / self.glob(number, pattern))))


def _glob_to_regex(text: str) -> str:
    out = []
    for ch in text:
        if ch == "*":
            out.append(r"[^/]*")
        elif ch == "?":
            out.append(r"[^/]")
        else:
            out.append(re.escape(ch))
    return "".join(out)
