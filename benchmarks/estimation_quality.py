"""How good is the performance estimate without labels? Issue 20's benchmark on the replays.

Run by hand (it prints tables; no assertions)::

    .venv/bin/python benchmarks/estimation_quality.py             # replays taxi and flights in a new temp folder (~25 min)
    .venv/bin/python benchmarks/estimation_quality.py --examples taxi --workdir /tmp/eq   # one; a 2nd run reuses it
    .venv/bin/python benchmarks/estimation_quality.py --state demo/taxi/runs/state.json  # an existing replay, seconds

A replay is what ``make demo`` does: ``driftguard init DIR --example NAME``, then ``driftguard run``
in ``DIR`` (every span; a second run in the same folder finds them replayed and returns at once).
``--state PATH`` (repeatable; ``NAME=PATH`` names it) reads a finished replay's ``runs/state.json``
instead, and the PredictionMonitor reports beside it (``runs/pipelines/...``, for the scoring model's
version and the realized RMSE). No TensorFlow is imported here; a replay runs in its own process.

Per span (the rows of ``runs/state.json``, spans with both an estimate and a realized value):

- **ver**: the model version that *scored* the span (the PredictionMonitor's ``model_version``). The
  row's ``serving`` is the version serving *after* the span's decision, so a span that triggered a
  retraining was still scored by the previous version. Every number of a span (estimate, realized,
  both references) belongs to the scoring model, so nothing is mixed across versions;
- **estimated** (CBPE/DLE), its 95 % interval ``[estimated_low, estimated_high]`` when the state has
  one, **realized**, and the level error ``|estimated - realized|``;
- the changes, as ``pipeline/loop.py`` writes them (``components/prediction_monitor/metrics.headline``):
  *relative* changes, each against its own reference on the scoring model's held-out sample:
  ``realized_change = (realized - baseline) / |baseline|`` (baseline = the metric realized on the
  held-out reference rows) and ``estimated_change = (estimated - estimated_reference) / |estimated_reference|``
  (the estimator run on the same held-out rows). The naive "no change" forecast's error is
  ``|realized_change|``; the estimate's is ``|estimated_change - realized_change|``. The summary's
  "vs baseline" column is the change error had the estimated change been taken against the
  realized baseline instead, ``|estimated - realized| / |baseline|`` (the estimator's own bias on
  the reference rows then no longer enters the change);
- the shift-aware (PAPE-like) estimate ``estimated_shift_aware`` and its interval, when the state
  has them; its change is taken against the realized baseline, ``(shift_aware - baseline) / |baseline|``
  (the state records no reference value for it);
- the impact section's density-ratio estimate when the row has one (``impact.density_ratio``: the
  held-out rows' realized metric re-weighted by the domain classifier, ``estimated +- half_width_95``,
  ``relative_change`` against the realized baseline), a shift-aware estimate that today's replays
  already record;
- **se**: the realized value's own sampling error, with ``n = labelled_rows``: accuracy
  ``sqrt(p (1 - p) / n)``; MAE ``sqrt(RMSE^2 - MAE^2) / sqrt(n)`` (the standard deviation of the
  absolute errors, from the realized RMSE of the PredictionMonitor report); other metrics (AUC,
  macro-F1, RMSE): not computed (n/a).

Summary per replay and per estimator (all spans, then per scoring version): mean absolute error of
the level and of the change, the naive forecast's, interval coverage (share of spans whose realized
value lies in ``[low, high]``, over the spans that have an interval), sign agreement of the change, the
mean sampling error, and issue 20's targets: level MAE <= sampling error, change MAE < naive MAE,
coverage >= 90 % (met, or missed by how much).
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence

EXAMPLES = ("taxi", "flights")
COVERAGE_TARGET = 0.90
PERCENT_METRICS = ("accuracy", "auc", "macro_f1")


# ---------------------------------------------------------------- per span

def _num(x: Any) -> Optional[float]:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def sampling_error(metric: Optional[str], realized: Optional[float], n: Optional[int],
                   rmse: Optional[float] = None) -> Optional[float]:
    """The realized value's standard error on ``n`` labelled rows (None where not computed)."""
    if realized is None or not n:
        return None
    if metric == "accuracy":
        return math.sqrt(max(realized * (1 - realized), 0.0) / n)
    if metric == "mae" and rmse is not None:
        return math.sqrt(max(rmse * rmse - realized * realized, 0.0) / n)
    return None


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def span_rows(records: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """One dict per span with an estimate and a realized value. ``records`` are state.json rows,
    each optionally with ``"monitor"`` (its PredictionMonitor report: ``model_version``, realized RMSE,
    and the intervals when the row lacks them). Missing keys are None."""
    out = []
    previous_serving = None
    for rec in records:
        monitor = rec.get("monitor") or {}
        perf = monitor.get("performance") or {}
        metric = rec.get("metric") or perf.get("metric")
        est, real = _num(rec.get("estimated")), _num(rec.get("realized"))
        version = monitor.get("model_version")
        if version is None:   # no report: the version serving before the span's decision
            version = previous_serving or rec.get("serving")
        previous_serving = rec.get("serving")
        if est is None or real is None:
            continue
        low, high = _num(rec.get("estimated_low")), _num(rec.get("estimated_high"))
        if low is None and high is None:
            low, high = (list((perf.get("estimated_interval") or {}).get(metric) or []) + [None, None])[:2]
            low, high = _num(low), _num(high)
        sa = _num(rec.get("estimated_shift_aware"))
        if sa is None:
            sa = _num((perf.get("estimated_shift_aware") or {}).get(metric))
        sa_low, sa_high = _num(rec.get("estimated_shift_aware_low")), _num(rec.get("estimated_shift_aware_high"))
        if sa_low is None and sa_high is None:
            pair = list((perf.get("estimated_shift_aware_interval") or {}).get(metric) or []) + [None, None]
            sa_low, sa_high = _num(pair[0]), _num(pair[1])
        baseline = _num(rec.get("baseline"))
        r_chg, e_chg = _num(rec.get("realized_change")), _num(rec.get("estimated_change"))
        sa_chg = (sa - baseline) / abs(baseline) if sa is not None and baseline else None
        dr = (rec.get("impact") or {}).get("density_ratio") or {}
        dr_ok = (rec.get("impact") or {}).get("metric") in (None, metric)
        dr_est, half = (_num(dr.get("estimated")), _num(dr.get("half_width_95"))) if dr_ok else (None, None)
        n = rec.get("labelled_rows")
        rmse = _num((perf.get("realized") or {}).get("rmse"))
        out.append({
            "span": rec.get("span_label") or str(rec.get("span")), "version": _version_text(version),
            "metric": metric, "realized": real, "baseline": baseline, "realized_change": r_chg,
            "naive_error": abs(r_chg) if r_chg is not None else None,
            **_scored("", est, low, high, e_chg, real, r_chg), "estimated": est, "estimated_change": e_chg,
            **_scored("sa_", sa, sa_low, sa_high, sa_chg, real, r_chg), "shift_aware": sa,
            **_scored("dr_", dr_est, None if dr_est is None or half is None else dr_est - half,
                      None if dr_est is None or half is None else dr_est + half,
                      _num(dr.get("relative_change")) if dr_ok else None, real, r_chg),
            "labelled_rows": n, "se": sampling_error(metric, real, n, rmse),
        })
    return out


def _scored(prefix: str, value: Optional[float], low: Optional[float], high: Optional[float],
            change: Optional[float], realized: float, realized_change: Optional[float]) -> Dict[str, Any]:
    """One estimator's numbers of a span, keys prefixed: its value, interval, level error, change,
    change error, sign agreement with the realized change, whether the interval holds the realized value."""
    both = change is not None and realized_change is not None
    return {f"{prefix}value": value, f"{prefix}low": low, f"{prefix}high": high,
            f"{prefix}error": abs(value - realized) if value is not None else None,
            f"{prefix}change": change,
            f"{prefix}change_error": abs(change - realized_change) if both else None,
            f"{prefix}sign_agrees": _sign(change) == _sign(realized_change) if both else None,
            f"{prefix}covered": low <= realized <= high if low is not None and high is not None else None}


def _version_text(version: Any) -> str:
    if version is None:
        return "?"
    text = str(version)
    return text if text.startswith("v") or not text.isdigit() else f"v{text}"


# ---------------------------------------------------------------- summary

def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def _share(flags: Sequence[Optional[bool]]) -> Optional[float]:
    vals = [bool(f) for f in flags if f is not None]
    return sum(vals) / len(vals) if vals else None


ESTIMATORS = {   # name: key prefix of its numbers in a span row (:func:`_scored`)
    "CBPE/DLE": "",
    "shift-aware": "sa_",
    "density ratio (impact)": "dr_",
}


def summarize(rows: Sequence[Mapping[str, Any]], estimator: str = "CBPE/DLE") -> Dict[str, Any]:
    """Issue 20's summary of one estimator over ``rows`` (from :func:`span_rows`), targets included."""
    p = ESTIMATORS[estimator]
    err, chg, sign, cov = f"{p}error", f"{p}change_error", f"{p}sign_agrees", f"{p}covered"
    used = [r for r in rows if r.get(err) is not None]
    with_change = [r for r in used if r.get(chg) is not None]
    s = {"estimator": estimator, "spans": len(used), "metric": used[0]["metric"] if used else None,
         "level_mae": _mean([r[err] for r in used]),
         "change_mae": _mean([r[chg] for r in with_change]),
         "naive_mae": _mean([r["naive_error"] for r in with_change]),
         "change_mae_vs_baseline": _mean([r[err] / abs(r["baseline"]) for r in with_change if r.get("baseline")]),
         "sign_agreement": _share([r.get(sign) for r in used]),
         "coverage": _share([r.get(cov) for r in used]),
         "intervals": sum(r.get(cov) is not None for r in used),
         "sampling_error": _mean([r.get("se") for r in used])}
    s["targets"] = targets(s)
    return s


def targets(s: Mapping[str, Any]) -> Dict[str, str]:
    """'met' or 'missed by ...' (or 'n/a') for the three targets of issue 20."""
    def level():
        if s["level_mae"] is None or s["sampling_error"] is None:
            return "n/a (no sampling error)"
        gap = s["level_mae"] - s["sampling_error"]
        if gap <= 0:
            return "met"
        return f"missed by {gap * 100:.1f} pts" if s.get("metric") in PERCENT_METRICS else f"missed by {gap:.3g}"

    def change():
        if s["change_mae"] is None or s["naive_mae"] is None:
            return "n/a"
        gap = s["change_mae"] - s["naive_mae"]
        return "met" if gap < 0 else f"missed by {gap * 100:.2f} (% of ref.)"

    def coverage():
        if s["coverage"] is None:
            return "n/a (no interval)"
        gap = COVERAGE_TARGET - s["coverage"]
        return "met" if gap <= 1e-12 else f"missed by {gap * 100:.0f} pts"
    return {"level MAE <= sampling error": level(), "change MAE < naive": change(),
            "coverage >= 90 %": coverage()}


def summaries(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Every estimator present, over all spans and then per scoring version (when there are several)."""
    out = []
    versions = sorted({r["version"] for r in rows})
    for est, prefix in ESTIMATORS.items():
        if not any(r.get(f"{prefix}error") is not None for r in rows):
            continue
        out.append({**summarize(rows, est), "scope": "all spans"})
        if len(versions) > 1:
            for v in versions:
                part = summarize([r for r in rows if r["version"] == v], est)
                if part["spans"]:
                    out.append({**part, "scope": f"scored by {v}"})
    return out


# ---------------------------------------------------------------- printing

def _fmt_level(x: Optional[float], metric: Optional[str]) -> str:
    if x is None:
        return "–"
    return f"{x * 100:.1f}" if metric in PERCENT_METRICS else f"{x:.2f}"


def _fmt_pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{x * 100:+.1f}"


def _fmt_abs_pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{x * 100:.1f}"


def _interval(lo, hi, metric) -> str:
    return "–" if lo is None or hi is None else f"[{_fmt_level(lo, metric)}, {_fmt_level(hi, metric)}]"


def span_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The per-span table (Markdown): CBPE/DLE, then 4 columns per other estimator present."""
    metric = rows[0]["metric"] if rows else None
    unit = "points of %" if metric in PERCENT_METRICS else "metric units"
    others = [(name, p) for name, p in ESTIMATORS.items() if p and any(r.get(f"{p}value") is not None for r in rows)]
    head = ["span", "ver", "estimated", "95 % interval", "realized", "error", "se",
            "est. change %", "real. change %", "naive err", "change err"]
    for name, _p in others:
        head += [name, "its interval", "its error", "its change err"]
    lines = [f"levels and errors in {unit} ({metric}); changes relative to the reference, in %",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["span"], r["version"], _fmt_level(r["estimated"], metric), _interval(r["low"], r["high"], metric),
                 _fmt_level(r["realized"], metric), _fmt_level(r["error"], metric), _fmt_level(r["se"], metric),
                 _fmt_pct(r["estimated_change"]), _fmt_pct(r["realized_change"]),
                 _fmt_abs_pct(r["naive_error"]), _fmt_abs_pct(r["change_error"])]
        for _name, p in others:
            cells += [_fmt_level(r[f"{p}value"], metric), _interval(r[f"{p}low"], r[f"{p}high"], metric),
                      _fmt_level(r[f"{p}error"], metric), _fmt_abs_pct(r[f"{p}change_error"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(items: Sequence[Mapping[str, Any]], metric: Optional[str]) -> str:
    head = ["estimator", "spans", "level MAE", "sampling se", "change MAE %", "naive MAE %", "vs baseline %",
            "sign agree",
            "coverage", "level <= se", "change < naive", "coverage >= 90 %"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in items:
        t = s["targets"]
        cov = "–" if s["coverage"] is None else f"{s['coverage']:.0%} of {s['intervals']}"
        lines.append("| " + " | ".join([
            f"{s['estimator']} ({s['scope']})", str(s["spans"]), _fmt_level(s["level_mae"], metric),
            _fmt_level(s["sampling_error"], metric), _fmt_abs_pct(s["change_mae"]), _fmt_abs_pct(s["naive_mae"]),
            _fmt_abs_pct(s["change_mae_vs_baseline"]),
            "–" if s["sign_agreement"] is None else f"{s['sign_agreement']:.0%}", cov,
            t["level MAE <= sampling error"], t["change MAE < naive"], t["coverage >= 90 %"]]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- inputs

def read_state(state_path: pathlib.Path) -> List[Dict[str, Any]]:
    """The state rows of a replay, each with its PredictionMonitor report (``"monitor"``) when found."""
    from driftguard.components.reports.runs import load_spans

    records = []
    for rec in load_spans(state_path.parent):
        if rec.row:
            records.append({**rec.row, "monitor": rec.monitor})
    return records


def replay(example: str, workdir: pathlib.Path) -> pathlib.Path:
    """``driftguard init`` (once) and ``driftguard run`` of an example; its state.json."""
    project = workdir / example
    cli = [sys.executable, "-m", "driftguard.cli.main"]
    if not (project / "driftguard.yaml").exists():
        subprocess.run(cli + ["init", str(project), "--example", example], check=True)
    start = time.time()
    subprocess.run(cli + ["run"], cwd=project, check=True)
    print(f"{example}: driftguard run took {time.time() - start:.0f} s (load average now "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    return project / "runs" / "state.json"


def report(name: str, state_path: pathlib.Path) -> None:
    rows = span_rows(read_state(state_path))
    print(f"\n## {name} ({state_path})\n")
    if not rows:
        print("no span with both an estimate and a realized value")
        return
    print(span_table(rows))
    print()
    print(summary_table(summaries(rows), rows[0]["metric"]))


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--state", action="append", default=[], metavar="[NAME=]PATH",
                    help="read this runs/state.json instead of replaying (repeatable)")
    ap.add_argument("--examples", nargs="+", default=list(EXAMPLES), choices=EXAMPLES)
    ap.add_argument("--workdir", type=pathlib.Path, default=None,
                    help="where the example projects are made (default: a new temporary folder, kept)")
    args = ap.parse_args(argv)
    states = []
    for item in args.state:
        name, _, path = item.rpartition("=")
        path = pathlib.Path(path)
        states.append((name or path.resolve().parent.parent.name, path))
    if not states:
        workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="estimation-quality-"))
        workdir.mkdir(parents=True, exist_ok=True)
        print(f"projects in {workdir}", flush=True)
        states = [(ex, replay(ex, workdir)) for ex in args.examples]
    for name, path in states:
        report(name, path)


if __name__ == "__main__":
    main()
