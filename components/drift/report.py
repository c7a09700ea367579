"""Typed results of :func:`driftguard.components.drift.detect_drift` and their JSON / text forms.

``DriftReport.to_dict()`` is the contract of ``driftguard drift --json``::

    {"drift_detected": bool,
     "features": {name: {"method", "score", "threshold", "p_value", "drifted", ...}},
     "multivariate": {...} or null,
     "classifier": {"auc", "p_value", "p_value_adjusted", "threshold", "drifted", "folds",
                    "explanation": {"separating_features", "importances", "segments"} or null, ...} or null,
     ...}

Every value is JSON-safe: numpy scalars become Python numbers and NaN or infinity
becomes ``null``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np

from .classifier import ClassifierResult
from .multivariate import MultivariateResult

__all__ = ["CheckResult", "FeatureDrift", "DriftReport", "json_safe"]


def json_safe(value: Any) -> Any:
    """Recursively convert to JSON-safe Python values (NaN and infinities become ``None``).

    Examples
    --------
    >>> json_safe({"a": float("nan"), "b": (np.float64(1.5), np.int64(2), np.bool_(True))})
    {'a': None, 'b': [1.5, 2, True]}
    """
    kind = type(value)  # the plain Python types a report is mostly made of, tested first (same results)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is str or kind is bool or kind is int or value is None:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): json_safe(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [json_safe(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if hasattr(value, "to_dict"):
        return json_safe(value.to_dict())
    return str(value)


@dataclass(frozen=True)
class CheckResult:
    """One hypothesis about one feature: its score, threshold, p-values and verdict.

    ``name`` is ``"distribution"``, ``"missing_rate"`` or ``"unseen_categories"``;
    ``drifted`` is ``p_value_adjusted <= alpha and score >= threshold``.
    """

    name: str
    method: str
    score: float
    threshold: float
    p_value: float
    p_value_adjusted: float
    drifted: bool
    direction: str

    @property
    def severity(self) -> float:
        """``score / threshold`` (how far past its threshold the score is)."""
        if self.threshold > 0:
            return self.score / self.threshold
        return math.inf if self.score > 0 else 0.0

    def to_dict(self) -> Dict[str, Any]:
        return {"method": self.method, "score": self.score, "threshold": self.threshold, "p_value": self.p_value,
                "p_value_adjusted": self.p_value_adjusted, "drifted": self.drifted, "direction": self.direction}


@dataclass(frozen=True)
class FeatureDrift:
    """Drift result of one feature.

    The top-level ``method``, ``score``, ``threshold``, ``p_value``,
    ``p_value_adjusted`` and ``direction`` are those of the *deciding* check: the
    distribution check, unless it did not drift while the unseen-categories or the
    missing-rate check did. ``reasons`` lists the checks that drifted; ``checks`` holds
    all of them; ``scores`` and ``p_values`` every score and raw p-value computed
    (``scores["psi"]`` is always there).
    """

    name: str
    kind: str
    method: str
    score: float
    threshold: float
    p_value: float
    p_value_adjusted: float
    drifted: bool
    direction: str
    reasons: Tuple[str, ...]
    checks: Dict[str, CheckResult]
    scores: Dict[str, float]
    p_values: Dict[str, float]
    n_reference: int
    n_current: int
    details: Dict[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> float:
        return max(c.severity for c in self.checks.values())

    def to_dict(self) -> Dict[str, Any]:
        return json_safe({
            "method": self.method, "score": self.score, "threshold": self.threshold, "p_value": self.p_value,
            "drifted": self.drifted, "p_value_adjusted": self.p_value_adjusted, "kind": self.kind,
            "direction": self.direction, "reasons": list(self.reasons),
            "checks": {k: c.to_dict() for k, c in self.checks.items()},
            "scores": self.scores, "p_values": self.p_values,
            "n_reference": self.n_reference, "n_current": self.n_current, "details": self.details,
        })


def _fmt(value: Optional[float], digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and abs(value) < 10 ** -digits:
        return f"{value:.0e}"
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class DriftReport:
    """Everything :func:`driftguard.components.drift.detect_drift` found.

    ``drift_detected`` is true when any feature drifted, the multivariate (Spearman) check
    fired or the domain classifier did (``classifier``; ``None`` when switched off).
    ``settings`` records every parameter used, ``excluded`` the columns left out.
    """

    drift_detected: bool
    features: Dict[str, FeatureDrift]
    multivariate: Optional[MultivariateResult]
    n_reference: int
    n_current: int
    settings: Dict[str, Any]
    excluded: Tuple[str, ...] = ()
    classifier: Optional[ClassifierResult] = None

    @property
    def drifted_features(self) -> List[str]:
        return [name for name, f in self.features.items() if f.drifted]

    def to_dict(self) -> Dict[str, Any]:
        # FeatureDrift.to_dict() is JSON-safe already: its values are not walked a second time
        return {
            "drift_detected": json_safe(self.drift_detected),
            "features": {str(name): f.to_dict() for name, f in self.features.items()},
            **json_safe({
                "multivariate": self.multivariate.to_dict() if self.multivariate is not None else None,
                "classifier": self.classifier.to_dict() if self.classifier is not None else None,
                "drifted_features": self.drifted_features,
                "n_reference": self.n_reference,
                "n_current": self.n_current,
                "excluded": list(self.excluded),
                "settings": self.settings,
            }),
        }

    def to_json(self, indent: Optional[int] = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def format_table(self) -> str:
        """Aligned text table, drifted features first, then by decreasing severity, plus the verdict."""
        order = sorted(self.features.values(), key=lambda f: (not f.drifted, -f.severity, f.name))
        header = ("feature", "kind", "method", "score", "threshold", "p-value", "p-adj", "drift", "detail")
        rows = [header]
        for f in order:
            detail = f.direction if not f.reasons else "; ".join(
                f"{r}: {f.checks[r].direction}" for r in f.reasons)
            rows.append((f.name, f.kind, f.method, _fmt(f.score), _fmt(f.threshold), _fmt(f.p_value, 3),
                         _fmt(f.p_value_adjusted, 3), "DRIFT" if f.drifted else "ok", detail))
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len(header[-1]))
        mv = self.multivariate
        if mv is not None:
            if mv.pairs:
                top = mv.pairs[0]
                lines.append("")
                lines.append(f"multivariate ({mv.method}, {len(mv.pairs)} pairs): {'DRIFT' if mv.drifted else 'ok'}; "
                             f"largest change {top.features[0]} x {top.features[1]}: rho {top.rho_reference:.3f} -> "
                             f"{top.rho_current:.3f} (p-adj {_fmt(top.p_value_adjusted, 3)})")
            else:
                lines.append("")
                lines.append("multivariate: no pair of numeric features to compare")
        cls = self.classifier
        if cls is not None:
            lines.append("")
            if cls.skipped:
                lines.append(f"classifier: not run ({cls.skipped})")
            else:
                lines.append(f"classifier (domain classifier, {len(cls.columns)} features, {cls.n_reference} + "
                             f"{cls.n_current} rows): {'DRIFT' if cls.drifted else 'ok'}; cross-fitted AUC "
                             f"{cls.auc:.3f} (threshold {cls.threshold:.2f}), p-adj {_fmt(cls.p_value_adjusted, 3)}")
            if cls.explanation is not None:
                lines.extend(cls.explanation.format_lines())
        drifted = self.drifted_features
        lines.append("")
        if self.drift_detected:
            parts = [f"{len(drifted)} of {len(self.features)} features drifted"]
            if mv is not None and mv.drifted:
                parts.append(f"joint drift in {len(mv.drifted_pairs)} feature pairs")
            if cls is not None and cls.drifted:
                parts.append(f"the domain classifier tells the tables apart (AUC {cls.auc:.3f})")
            lines.append(f"DRIFT DETECTED: {', '.join(parts)} "
                         f"(reference {self.n_reference} rows, current {self.n_current} rows)")
        else:
            lines.append(f"No drift detected in {len(self.features)} features (reference {self.n_reference} rows, "
                         f"current {self.n_current} rows)")
        return "\n".join(lines)
