"""Which data a span is compared with: the reference strategies of ``drift.reference``.

Pure Python (no TFX, Beam or TensorFlow): the DriftDetector's executor calls
:func:`resolve_reference` when it runs, with the spans the data holds then, so one compiled
pipeline (Kubeflow, Airflow) resolves "the previous span" of whatever span it checks.

Strategies
    ``training`` (default)
        The serving model's training window: the reference sample the RegistryPusher stored in
        ``<registry>/<version>/profile/reference_sample/``. Nothing to resolve.
    ``previous``
        The newest span the data holds before the checked one (a gap is skipped: weekday spans
        compare Monday with Friday).
    ``year_ago``
        The same period a year earlier: month - 12 for monthly spans, year - 1 for yearly spans,
        the same calendar date for daily spans (29 February compares with 28 February). Plain
        numbered spans (``span-{SPAN}``) have no calendar: ``period`` (spans per year, e.g. 4
        for quarters) says how far back a year is, and without it the config is refused.
    ``rolling``
        The ``spans`` newest spans the data holds before the checked one, read together.

Fallback
    When the strategy finds no reference span (the first span, no data a year earlier), the
    span is compared with the serving model's training window (``training``) and the report
    says so (``reference.fallback`` is true, ``reference.message`` says why). A rolling window
    with fewer spans than asked uses those it finds, and says so; it falls back only when it
    finds none.
"""
from __future__ import annotations

import dataclasses
import datetime
import os
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

TRAINING, PREVIOUS, YEAR_AGO, ROLLING = "training", "previous", "year_ago", "rolling"
STRATEGIES = (TRAINING, PREVIOUS, YEAR_AGO, ROLLING)
FALLBACK = TRAINING                  # what a strategy that finds no reference span compares with
MAX_ROLLING_SPANS = 64
_EPOCH = datetime.date(1970, 1, 1)
_CALENDAR_UNITS = ("year", "month", "day")


class ReferenceConfigError(ValueError):
    """``drift.reference`` names an unknown strategy or an impossible setting (message names the key)."""


@dataclasses.dataclass(frozen=True)
class ReferenceSettings:
    """``drift.reference`` in driftguard.yaml::

        drift:
          reference: {strategy: rolling, spans: 3}     # or previous, year_ago, training
          # plain numbered spans: year_ago needs the spans per year
          reference: {strategy: year_ago, period: 4}
    """

    strategy: str = TRAINING
    spans: int = 1        # rolling: the number of spans before the checked one
    period: int = 0       # year_ago on plain numbered spans: spans per year (0: refused there)

    def validate(self, path: str, span_unit: Optional[str] = None) -> None:
        """Raise :class:`ReferenceConfigError` naming ``path.<key>``. ``span_unit``: the data's
        span unit ('span', 'year', 'month', 'day'; None: not known, unit checks skipped)."""
        if self.strategy not in STRATEGIES:
            raise ReferenceConfigError(f"{path}.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        for key, lo, hi in (("spans", 1, MAX_ROLLING_SPANS), ("period", 0, 100_000)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ReferenceConfigError(f"{path}.{key} must be an integer in {lo}..{hi}, got {value!r}")
        if self.spans != 1 and self.strategy != ROLLING:
            raise ReferenceConfigError(f"{path}.spans is the length of a rolling window; strategy is "
                                       f"{self.strategy!r} (set strategy: rolling, or drop spans)")
        if self.period and self.strategy != YEAR_AGO:
            raise ReferenceConfigError(f"{path}.period (spans per year) is for strategy year_ago; strategy is "
                                       f"{self.strategy!r}")
        if self.strategy == YEAR_AGO and span_unit is not None:
            if span_unit == "span" and not self.period:
                raise ReferenceConfigError(
                    f"{path}.period is needed for strategy year_ago: the spans are plain numbers "
                    f"(data.pattern with {{SPAN}}), which have no calendar; give the number of spans in a year "
                    f"(e.g. period: 4 for quarterly spans, 52 for weekly ones)")
            if span_unit in _CALENDAR_UNITS and self.period:
                raise ReferenceConfigError(
                    f"{path}.period applies to plain numbered spans only: these are calendar spans (one per "
                    f"{span_unit}), whose year earlier is known; drop period")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, Any]]) -> "ReferenceSettings":
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ReferenceConfigError(f"unknown reference setting(s) {unknown}; known: strategy, spans, period")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class ReferenceChoice:
    """What a check compares with. ``used`` is the strategy applied (``training`` after a
    fallback); ``spans`` the reference spans read (empty for the training window); ``wanted``
    what the strategy asked for; ``missing`` those of them the data lacks."""

    strategy: str
    used: str
    spans: Tuple[int, ...] = ()
    wanted: Tuple[int, ...] = ()
    missing: Tuple[int, ...] = ()
    fallback: bool = False
    message: str = ""

    def to_dict(self, label=str) -> Dict[str, Any]:
        """JSON for the report; ``label``: span number -> how people write it."""
        return {"strategy": self.strategy, "used": self.used, "spans": list(self.spans),
                "span_labels": [label(s) for s in self.spans], "wanted": list(self.wanted),
                "missing": [label(s) for s in self.missing], "fallback": self.fallback, "message": self.message}


def year_ago(span: int, unit: str, period: int = 0) -> int:
    """The span number of the same period a year before ``span``.

    >>> year_ago(520, "month"), year_ago(43, "year"), year_ago(12, "span", period=4)
    (508, 42, 8)
    >>> import datetime
    >>> d = (datetime.date(2016, 2, 29) - datetime.date(1970, 1, 1)).days
    >>> datetime.date(1970, 1, 1) + datetime.timedelta(days=year_ago(d, "day"))
    datetime.date(2015, 2, 28)
    """
    span = int(span)
    if unit == "month":
        return span - 12
    if unit == "year":
        return span - 1
    if unit == "day":
        date = _EPOCH + datetime.timedelta(days=span)
        day = min(date.day, 28) if (date.month, date.day) == (2, 29) else date.day
        return (datetime.date(date.year - 1, date.month, day) - _EPOCH).days
    if unit == "span":
        if not period:
            raise ReferenceConfigError("drift.reference.period is needed for strategy year_ago on plain "
                                       "numbered spans (the number of spans in a year)")
        return span - int(period)
    raise ValueError(f"unknown span unit {unit!r}; one of span, {', '.join(_CALENDAR_UNITS)}")


def resolve_reference(settings: ReferenceSettings, current: int, available: Sequence[int], unit: str,
                      label=str) -> ReferenceChoice:
    """The reference spans of the check of span ``current``, among the spans the data holds
    (``available``: span numbers, in any order; later spans than ``current`` are ignored).
    ``unit``: the span unit (:attr:`driftguard.components.spans.SpanPattern.unit`); ``label``:
    span number -> how people write it, for the message.

    >>> resolve_reference(ReferenceSettings("previous"), 7, [1, 2, 5, 7, 8], "span").spans
    (5,)
    >>> c = resolve_reference(ReferenceSettings("rolling", spans=3), 3, [1, 2, 3], "span")
    >>> c.spans, c.message
    ((1, 2), 'the 2 spans before span 3 (1, 2): the data holds 2 of the 3 the rolling window asks for')
    >>> c = resolve_reference(ReferenceSettings("previous"), 1, [1, 2], "span")
    >>> c.used, c.fallback
    ('training', True)
    """
    strategy = settings.strategy
    current = int(current)
    if strategy == TRAINING:
        return ReferenceChoice(TRAINING, TRAINING, message="the serving model's training window")
    before = sorted({int(s) for s in available if int(s) < current})
    fmt = ", ".join
    if strategy == PREVIOUS:
        if before:
            s = before[-1]
            gap = "" if s == current - 1 else f" (the newest before it; {current - 1 - s} span(s) in between hold no data)"
            return ReferenceChoice(PREVIOUS, PREVIOUS, (s,), (s,), (), False, f"the previous span {label(s)}{gap}")
        return _fallback(settings, (), (), f"span {label(current)} is the first span the data holds: there is no "
                                              f"previous span")
    if strategy == YEAR_AGO:
        wanted = year_ago(current, unit, settings.period)
        if wanted >= 0 and wanted in before:
            return ReferenceChoice(YEAR_AGO, YEAR_AGO, (wanted,), (wanted,), (), False,
                                   f"the same period a year earlier: span {label(wanted)}")
        where = f"span {label(wanted)}" if wanted >= 0 else "a span before the first span number"
        return _fallback(settings, (wanted,) if wanted >= 0 else (), (wanted,) if wanted >= 0 else (),
                         f"no data a year before span {label(current)} ({where} is not in the data)")
    if strategy == ROLLING:
        n = int(settings.spans)
        chosen = tuple(before[-n:])
        if not chosen:
            return _fallback(settings, (), (), f"span {label(current)} is the first span the data holds: no span "
                                                  f"before it for a rolling window of {n}")
        names = fmt(label(s) for s in chosen)
        if len(chosen) < n:
            return ReferenceChoice(ROLLING, ROLLING, chosen, chosen, (), False,
                                   f"the {len(chosen)} span{'s' if len(chosen) != 1 else ''} before span "
                                   f"{label(current)} ({names}): the data holds {len(chosen)} of the {n} the "
                                   f"rolling window asks for")
        return ReferenceChoice(ROLLING, ROLLING, chosen, chosen, (), False,
                               f"the {n} span{'s' if n != 1 else ''} before span {label(current)} ({names})")
    raise ReferenceConfigError(f"drift.reference.strategy must be one of {', '.join(STRATEGIES)}, got {strategy!r}")


def _fallback(settings: ReferenceSettings, wanted: Tuple[int, ...], missing: Tuple[int, ...],
              why: str) -> ReferenceChoice:
    return ReferenceChoice(settings.strategy, FALLBACK, (), wanted, missing, True,
                           f"{why}; compared with the serving model's training window instead")


def describe(reference: Optional[Mapping[str, Any]], context: Optional[Mapping[str, Any]] = None) -> str:
    """What a report was compared with, for people: ``previous span 7``, ``spans 4, 5, 6
    (rolling window)``, ``version 1's training window (spans 1, 2)``; a fallback says so."""
    ref = dict(reference or {})
    ctx = dict(context or {})
    used = ref.get("used") or TRAINING
    if used == TRAINING:
        spans = ctx.get("baseline_span_labels") or ctx.get("baseline_spans") or []
        text = f"version {ctx.get('baseline_version', '?')}'s training window"
        if spans:
            text += f" (spans {', '.join(map(str, spans))})"
        if ref.get("fallback"):
            text += f", as {ref.get('strategy')} found no reference span"
        return text
    labels = ref.get("span_labels") or [str(s) for s in ref.get("spans", [])]
    if used == PREVIOUS:
        return f"the previous span {', '.join(labels)}"
    if used == YEAR_AGO:
        return f"span {', '.join(labels)} (a year earlier)"
    return f"span{'s' if len(labels) != 1 else ''} {', '.join(labels)} (rolling window)"


# ---------------------------------------------------------------- the data's spans and files

def available_spans(root: os.PathLike, pattern: str, patterns: Sequence[str]) -> List[int]:
    """The spans with files for every one of ``patterns`` (the split patterns, or ``pattern``)
    under ``root``; [] when ``root`` is not a folder."""
    from driftguard.components.spans import SpanPattern

    if not os.path.isdir(root):
        return []
    spans = SpanPattern(pattern)
    found = None
    for p in patterns or [pattern]:
        these = set(spans.available(root, p))
        found = these if found is None else found & these
    return sorted(found or ())


def span_files(root: os.PathLike, pattern: str, patterns: Sequence[str], numbers: Sequence[int]) -> List[str]:
    """The files of spans ``numbers`` for every split pattern (ValueError naming the glob when
    a span has none)."""
    from driftguard.components.spans import SpanPattern

    spans = SpanPattern(pattern)
    out: List[str] = []
    for number in numbers:
        for p in patterns or [pattern]:
            found = [str(f) for f in spans.files(root, number, p) if f.is_file()]
            if not found:
                raise ValueError(f"reference span {spans.label(number)}: no file matches "
                                 f"{pathlib.Path(root) / spans.glob(number, p)}")
            out += found
    return out

