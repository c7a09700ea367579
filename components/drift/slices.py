r"""Drift per slice: :func:`detect_drift` within each value of a slicing feature, one error budget.

A shift confined to one segment (fares up 30 % for cash trips only) is diluted in the whole
table: half the rows moved, the other half did not, and the table's test may stay quiet.
Comparing each slice (``payment_type=Cash``, ``payment_type=Credit Card``, ...) with the same
slice of the reference finds it and says where.

Error control
    Every tested slice is a family of its own (:func:`detect_drift` controls the family-wise
    error of its checks at the level it is given, Holm over features and checks, and the
    joint check at its own level). With :math:`K` slices tested, each gets
    :math:`\alpha / K` and :math:`\alpha_{mv} / K` (Bonferroni across slices), so the chance
    of any false slice alarm is at most :math:`\alpha + \alpha_{mv}` by the union bound, under
    any dependence between slices. :math:`K` counts only the slices actually tested (those
    with at least ``min_rows`` rows on both sides), which depends on the row counts, not on
    the compared values, so the bound holds given the counts. The span check gives the slices
    a share of its level and the whole table the rest (weighted Bonferroni, see
    ``components/drift_detector/README.md``): whole table and slices together stay within
    the level of the whole table alone.

    Why not one Holm correction over every check of every slice: it is more powerful, but
    needs the raw p-values of every family :func:`detect_drift` runs (features, the joint
    check, and any later one) re-corrected together; the Bonferroni split composes with
    whatever :func:`detect_drift` does inside, as long as it keeps its own level.

What is compared
    Within a slice the slicing features are constant, so they are left out (their shares
    across slices are the whole table's business: ``payment_type``'s own drift check). A
    row whose slicing feature is missing belongs to no slice. Slices with fewer than
    ``min_rows`` rows on either side are listed under ``skipped`` with the reason, as are the
    values beyond the ``max_values`` largest of a slicing spec.

No pyarrow import at module import (``driftguard.components.drift`` stays light); tables are
pyarrow Tables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .detect import DEFAULT_ALPHA, detect_drift
from .errors import DriftInputError
from .multivariate import DEFAULT_MULTIVARIATE_ALPHA
from .report import DriftReport, json_safe

__all__ = ["detect_slice_drift", "SliceDrift", "SliceDriftReport", "slice_name", "slice_keys", "DEFAULT_MIN_ROWS",
           "DEFAULT_MAX_VALUES"]

DEFAULT_MIN_ROWS = 200        # rows per side a slice needs to be tested
DEFAULT_MAX_VALUES = 50       # the largest values of one slicing spec tested; the rest skipped


def slice_name(key: Mapping[str, Any]) -> str:
    """``payment_type=Cash``; ``company=Flash Cab, payment_type=Cash`` for two features."""
    return ", ".join(f"{k}={_value_text(v)}" for k, v in key.items())


def _value_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class SliceDrift:
    """One tested slice: its key (``{feature: value}``), row counts and :class:`DriftReport`."""

    key: Dict[str, Any]
    report: DriftReport

    @property
    def name(self) -> str:
        return slice_name(self.key)

    @property
    def drifted(self) -> bool:
        return bool(self.report.drift_detected)

    def to_dict(self) -> Dict[str, Any]:
        r = self.report
        ranked = sorted((f for f in r.features.values() if f.drifted), key=lambda f: -f.severity)
        mv = r.multivariate
        return json_safe({
            "name": self.name, "key": {k: _value_text(v) for k, v in self.key.items()},
            "rows": {"reference": r.n_reference, "current": r.n_current},
            "drift_detected": r.drift_detected, "drifted_features": [f.name for f in ranked],
            "features": {name: {"kind": f.kind, "method": f.method, "score": f.score, "threshold": f.threshold,
                                "p_value": f.p_value, "p_value_adjusted": f.p_value_adjusted,
                                "drifted": f.drifted, "direction": f.direction, "reasons": list(f.reasons),
                                "psi": f.scores.get("psi")}
                         for name, f in r.features.items()},
            "multivariate": None if mv is None else {
                "drifted": mv.drifted,
                "pairs": [list(p.features) for p in mv.pairs if p.drifted]},
        })


@dataclass(frozen=True)
class SliceDriftReport:
    """Every slice tested or skipped, and the levels each was tested at."""

    slices: List[SliceDrift]
    skipped: List[Dict[str, Any]]
    alpha: float                   # the slices' family-wise budget, split across them
    multivariate_alpha: float
    min_rows: int
    specs: Tuple[Tuple[str, ...], ...] = ()
    settings: Dict[str, Any] = field(default_factory=dict)

    @property
    def tested(self) -> int:
        return len(self.slices)

    @property
    def alpha_per_slice(self) -> Optional[float]:
        return self.alpha / self.tested if self.tested else None

    @property
    def drifted_slices(self) -> List[SliceDrift]:
        """Drifted slices, the most severe first."""
        hit = [s for s in self.slices if s.drifted]
        return sorted(hit, key=lambda s: (-max((f.severity for f in s.report.features.values() if f.drifted),
                                               default=0.0), s.name))

    @property
    def drift_detected(self) -> bool:
        return any(s.drifted for s in self.slices)

    def to_dict(self) -> Dict[str, Any]:
        return json_safe({
            "drift_detected": self.drift_detected,
            "drifted_slices": [s.name for s in self.drifted_slices],
            "specs": [list(s) for s in self.specs],
            "alpha": self.alpha, "multivariate_alpha": self.multivariate_alpha,
            "tested": self.tested, "alpha_per_slice": self.alpha_per_slice,
            "multivariate_alpha_per_slice": self.multivariate_alpha / self.tested if self.tested else None,
            "correction": "bonferroni across slices, holm within each",
            "min_rows": self.min_rows,
            "slices": [s.to_dict() for s in self.slices],
            "skipped": list(self.skipped),
        })

    def format_table(self) -> str:
        """One line per tested slice (drifted first), then the skipped ones in a line."""
        lines = [f"slices: {self.tested} tested at alpha {_fmt(self.alpha_per_slice)} each "
                 f"(Bonferroni of {self.alpha:g}), {len(self.skipped)} skipped"]
        order = self.drifted_slices + [s for s in self.slices if not s.drifted]
        for s in order:
            r = s.report
            top = [f"{f.name} {f.method}={f.score:.3g}" for f in
                   sorted((f for f in r.features.values() if f.drifted), key=lambda f: -f.severity)[:3]]
            if r.multivariate is not None and r.multivariate.drifted:
                top.append("joint")
            verdict = ("DRIFT: " + ", ".join(top)) if s.drifted else "ok"
            lines.append(f"  {s.name} ({r.n_reference} -> {r.n_current} rows): {verdict}")
        if self.skipped:
            shown = "; ".join(f"{k['name']}: {k['reason']}" for k in self.skipped[:5])
            more = len(self.skipped) - 5
            lines.append(f"  skipped: {shown}{f' (+{more} more)' if more > 0 else ''}")
        return "\n".join(lines)


def _fmt(x: Optional[float]) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3g}"


def slice_keys(table, features: Sequence[str]) -> List[Optional[tuple]]:
    """The slice key of every row of an Arrow table (None where a slicing feature is missing)."""
    columns = [table.column(f).to_pylist() for f in features]
    out: List[Optional[tuple]] = []
    for values in zip(*columns):
        bad = any(v is None or (isinstance(v, float) and math.isnan(v)) for v in values)
        out.append(None if bad else tuple(values))
    return out


def _index(keys: Sequence[Optional[tuple]]) -> Dict[tuple, np.ndarray]:
    groups: Dict[tuple, List[int]] = {}
    for i, k in enumerate(keys):
        if k is not None:
            groups.setdefault(k, []).append(i)
    return {k: np.asarray(v, dtype=np.int64) for k, v in groups.items()}


def detect_slice_drift(reference, current, slices: Sequence[Sequence[str]], *,
                       features: Optional[Sequence[str]] = None, alpha: float = DEFAULT_ALPHA,
                       multivariate_alpha: float = DEFAULT_MULTIVARIATE_ALPHA, min_rows: int = DEFAULT_MIN_ROWS,
                       max_values: int = DEFAULT_MAX_VALUES,
                       feature_config: Optional[Mapping[str, Any]] = None, **detect_kwargs) -> SliceDriftReport:
    r"""Compare each slice of ``current`` with the same slice of ``reference``.

    Parameters
    ----------
    reference, current : pyarrow.Table
        One scalar column per feature; the slicing features in both.
    slices : sequence of sequences of str
        Slicing specs: ``[["payment_type"]]`` gives one slice per payment type;
        ``[["payment_type", "company"]]`` one per pair of values.
    features : sequence of str, optional
        Columns compared within each slice (default: the columns both tables hold); the
        slicing features of a spec are always left out of its slices.
    alpha, multivariate_alpha : float
        The family-wise budget of all slices together, split evenly across the slices tested
        (Bonferroni); each slice's :func:`detect_drift` gets its share.
    min_rows : int, default 200
        Rows a slice needs on each side to be tested.
    max_values : int, default 50
        Per spec, only the values with the most current rows are tested.
    feature_config, **detect_kwargs
        Passed to :func:`detect_drift` (``feature_config`` restricted to the compared columns).

    Returns
    -------
    SliceDriftReport

    Raises
    ------
    DriftInputError
        A slicing feature in neither table, an empty spec, or an invalid ``min_rows``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> rng = np.random.default_rng(3)
    >>> n = 4000
    >>> kind = rng.choice(["a", "b"], n)
    >>> ref = pa.table({"kind": kind, "x": rng.normal(0, 1, n)})
    >>> x = rng.normal(0, 1, n)
    >>> cur = pa.table({"kind": kind, "x": np.where(kind == "a", x + 0.5, x)})   # "a" moved, "b" did not
    >>> r = detect_slice_drift(ref, cur, [["kind"]])
    >>> [s.name for s in r.drifted_slices], r.tested, r.alpha_per_slice
    (['kind=a'], 2, 0.005)
    """
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 1:
        raise DriftInputError(f"min_rows must be an integer >= 1, got {min_rows!r}")
    if isinstance(max_values, bool) or not isinstance(max_values, (int, np.integer)) or max_values < 1:
        raise DriftInputError(f"max_values must be an integer >= 1, got {max_values!r}")
    for name, value in (("alpha", alpha), ("multivariate_alpha", multivariate_alpha)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
            raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    specs = tuple(tuple(str(f) for f in spec) for spec in slices)
    shared = [c for c in reference.column_names if c in set(current.column_names)]
    compared_all = [c for c in (features if features is not None else shared)]
    candidates: List[Tuple[Dict[str, Any], np.ndarray, np.ndarray, List[str]]] = []
    skipped: List[Dict[str, Any]] = []
    for spec in specs:
        if not spec:
            raise DriftInputError("a slicing spec must name at least one feature, got []")
        spec_name = ", ".join(spec)
        absent = [(f, side) for f in spec for side, t in (("reference", reference), ("current", current))
                  if f not in t.column_names]
        if absent:
            f, side = absent[0]
            if all(f not in t.column_names for t in (reference, current)):
                raise DriftInputError(f"slicing feature {f!r} is in neither table", column=f)
            skipped.append({"name": spec_name, "reason": f"feature {f} is not in the {side} table",
                            "rows": {"reference": None, "current": None}})
            continue
        ref_groups, cur_groups = _index(slice_keys(reference, spec)), _index(slice_keys(current, spec))
        compared = [c for c in compared_all if c not in spec]
        if not compared:
            raise DriftInputError(f"slicing spec [{spec_name}]: no other feature left to compare within its slices",
                                  column=spec[0])
        order = sorted(set(ref_groups) | set(cur_groups),
                       key=lambda k: (-len(cur_groups.get(k, ())), -len(ref_groups.get(k, ())), str(k)))
        taken = 0
        for k in order:
            key = dict(zip(spec, k))
            n_ref, n_cur = len(ref_groups.get(k, ())), len(cur_groups.get(k, ()))
            rows = {"reference": n_ref, "current": n_cur}
            if n_ref < min_rows or n_cur < min_rows:
                sides = [f"{n} row{'s' if n != 1 else ''} in the {side}"
                         for side, n in (("reference", n_ref), ("current", n_cur)) if n < min_rows]
                skipped.append({"name": slice_name(key), "reason": f"{' and '.join(sides)} (fewer than {min_rows})",
                                "rows": rows})
                continue
            if taken >= max_values:
                skipped.append({"name": slice_name(key), "reason": f"beyond the {max_values} largest slices of "
                                                                   f"[{spec_name}]", "rows": rows})
                continue
            taken += 1
            candidates.append((key, ref_groups[k], cur_groups[k], compared))
    k_tested = len(candidates)
    results: List[SliceDrift] = []
    if k_tested:
        each, mv_each = float(alpha) / k_tested, float(multivariate_alpha) / k_tested
        import pyarrow as pa

        for key, ref_idx, cur_idx, compared in candidates:
            config = {n: v for n, v in (feature_config or {}).items() if n in compared}
            ref_part = reference.select(compared).take(pa.array(ref_idx))
            cur_part = current.select([c for c in compared if c in current.column_names]).take(pa.array(cur_idx))
            report = detect_drift(ref_part, cur_part, feature_config=config, alpha=each,
                                  multivariate_alpha=mv_each, all_missing="compare", **detect_kwargs)
            results.append(SliceDrift(key, report))
    return SliceDriftReport(results, skipped, float(alpha), float(multivariate_alpha), int(min_rows), specs,
                            {"max_values": int(max_values)})
