"""A span's per-feature drift weighted by how much the model relies on each feature.

Drift in a feature the model ignores does not change its predictions; a small shift in the
feature it leans on most can. For every compared feature::

    share_j    = max(importance_j, 0) / sum_k max(importance_k, 0)
    weighted_j = PSI_j * share_j

with ``importance_j`` the version's permutation importance for the watched metric
(:mod:`.importance`) and PSI the population stability index the drift report computes for
every feature (numeric and categorical alike, so scores are comparable across features). The
sum of ``weighted_j`` is the importance-weighted PSI of the span. The ranking lists the
features that drifted (the report's verdict, under its family-wise error control) *and*
matter (importance more than two standard errors above zero), by ``weighted_j``.

A version pushed before importance was computed has none: the section then says so
(``status: "no_importance"``) and nothing is weighted.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

from driftguard.components.impact.importance import importance_of, matters

DRIFT_SCORE = "psi"


def _drift_score(feature: Mapping[str, Any]) -> Optional[float]:
    scores = feature.get("scores") or {}
    value = scores.get(DRIFT_SCORE)
    if value is None and feature.get("method") == DRIFT_SCORE:
        value = feature.get("score")
    return None if value is None else float(value)


def importance_weighted_drift(features: Mapping[str, Mapping[str, Any]], importance: Optional[Mapping[str, Any]],
                              *, version: Optional[int] = None, metric: Optional[str] = None,
                              type_changes: Sequence[str] = ()) -> Dict[str, Any]:
    """The report's ``importance`` section.

    ``features``: the drift report's ``features`` (name -> ``{"scores": {"psi"}, "drifted", ...}``);
    ``importance``: the version's ``feature_importance.json`` (None: it has none);
    ``metric``: whose importance weighs (default: the file's primary metric);
    ``type_changes``: features whose type changed (drifted, no score: listed first, they matter
    whatever their importance, since the model cannot read them).
    """
    drifted = sorted({n for n, f in features.items() if f.get("drifted")} | set(type_changes))
    entry = importance_of(importance, metric)
    if entry is None:
        why = (importance or {}).get("note") or (
            f"no importance for version {version} (pushed before driftguard computed permutation importance; "
            f"push a new version to get it)" if importance is None else
            f"no importance for the metric {metric!r} in version {version}")
        return {"status": "no_importance", "version": version, "message": why, "n_drifted": len(drifted),
                "drifted": drifted}
    imp = entry["features"]
    repeats = int(entry.get("repeats") or 1)
    positive = {n: max(float(imp[n]["mean"]), 0.0) for n in features if n in imp}
    total = sum(positive.values())
    rows: Dict[str, Dict[str, Any]] = {}
    for name, f in features.items():
        score = _drift_score(f)
        e = imp.get(name)
        share = positive.get(name, 0.0) / total if total > 0 else 0.0
        rows[name] = {"psi": score, "drifted": bool(f.get("drifted")),
                      "importance": None if e is None else float(e["mean"]),
                      "importance_std": None if e is None else float(e["std"]),
                      "matters": bool(e is not None and matters(e, repeats)), "share": share,
                      "weighted": None if score is None else score * share}
    ranking = [n for n in type_changes] + sorted(
        (n for n, r in rows.items() if r["drifted"] and r["matters"] and n not in type_changes),
        key=lambda n: (-(rows[n]["weighted"] or 0.0), n))
    return {"status": "weighted", "version": version, "metric": entry["metric"],
            "higher_is_better": entry.get("higher_is_better"), "drift_score": DRIFT_SCORE,
            "repeats": repeats, "importance_rows": entry.get("rows"),
            "features": rows, "ranking": ranking, "n_drifted": len(drifted), "drifted": drifted,
            "drifted_unimportant": [n for n in drifted if n not in ranking],
            "weighted_psi": sum(r["weighted"] or 0.0 for r in rows.values()),
            "unweighted_psi": sum(r["psi"] or 0.0 for r in rows.values()) / max(len(rows), 1)}


def order_key(name: str, row: Mapping[str, Any]):
    """Rows of the weighted table: by weighted drift, then drifted features (by PSI), then the rest."""
    return (-(row.get("weighted") or 0.0), not row.get("drifted"), -(row.get("psi") or 0.0), name)


def summary(section: Optional[Mapping[str, Any]], limit: int = 3) -> str:
    """One line: 'drift in 6 features; 2 matter to the model: fare (PSI 0.051, importance 0.031), ...'."""
    if not section:
        return ""
    n = section.get("n_drifted", 0)
    head = f"drift in {n} feature{'s' if n != 1 else ''}"
    if section.get("status") != "weighted":
        return f"{head}; {section.get('message')}"
    ranking = list(section.get("ranking") or [])
    if not n:
        return f"{head}; importance-weighted PSI {section.get('weighted_psi', 0):.3g}"
    if not ranking:
        return f"{head}, none that the model relies on ({section.get('metric')} importance)"
    rows = section["features"]
    parts = []
    for name in ranking[:limit]:
        r = rows.get(name) or {}
        if r.get("psi") is None:
            parts.append(f"{name} (type changed)")
        else:
            parts.append(f"{name} (PSI {r['psi']:.3g} x share {r['share']:.0%})")
    more = len(ranking) - limit
    return (f"{head}; {len(ranking)} matter to the model: " + ", ".join(parts) + (f" (+{more} more)" if more > 0 else ""))


def table(section: Optional[Mapping[str, Any]], limit: int = 8) -> str:
    """Aligned text: the features that drifted or matter most, with PSI, importance, share, weighted."""
    if not section or section.get("status") != "weighted":
        return ""
    rows = section["features"]
    order = sorted(rows, key=lambda n: order_key(n, rows[n]))[:limit]
    head = ("feature", "drift", "PSI", f"importance ({section.get('metric')})", "share", "weighted")
    body = []
    for name in order:
        r = rows[name]
        imp = "-" if r["importance"] is None else f"{r['importance']:.4f} ± {r['importance_std']:.4f}"
        body.append((name, "yes" if r["drifted"] else "no", "-" if r["psi"] is None else f"{r['psi']:.4f}", imp,
                     f"{r['share']:.1%}", "-" if r["weighted"] is None else f"{r['weighted']:.4f}"))
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head] + body]
    lines.append(f"importance-weighted PSI {section['weighted_psi']:.4f} (unweighted mean "
                 f"{section['unweighted_psi']:.4f}); drifted and matter: {', '.join(section['ranking']) or 'none'}")
    return "\n".join(lines)
