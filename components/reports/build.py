"""Write the reports of a runs folder: one page per checked span and the trend dashboard.

    runs/reports/index.html          the trend dashboard
    runs/reports/span-<N>.html       the span's drift report + model panel + gate decision

The DriftDetector's own ``report.html`` (written inside the TFX artifact, which is never
edited afterwards) cannot show the PredictionMonitor's results, which come later in the same
check; the pages here join them. A span page is rewritten only when it is missing, older than
one of its inputs, or written by another version of the templates/code (a stamp in the page).
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import pathlib
import re
import tempfile
from typing import Dict, List, Optional, Tuple

import jinja2

from driftguard.components.reports import charts
from driftguard.components.reports.runs import Runs, SpanRecord, load_runs

logger = logging.getLogger(__name__)

REPORTS_DIR = "reports"
INDEX = "index.html"
_HERE = pathlib.Path(__file__).resolve().parent
_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_HERE / "templates")), autoescape=True,
                          undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_STAMP_RE = re.compile(r'<meta name="driftguard-stamp" content="([0-9a-f]+)">')


def _code_stamp() -> str:
    """Changes whenever the code or a template that draws a page changes."""
    h = hashlib.sha256()
    dd = _HERE.parent / "drift_detector"
    for p in sorted([_HERE / "charts.py", _HERE / "build.py", dd / "html.py", *dd.glob("templates/*.j2"),
                     *(_HERE / "templates").glob("*.j2")]):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _write(path: pathlib.Path, text: str) -> None:
    """Atomically (temp file + fsync + rename): a reader never sees half a page, and a failed
    write (disk full, read-only folder) leaves the previous page as it was."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".html")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise ReportWriteError(path, e) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


class ReportWriteError(OSError):
    """A page could not be written; the message names the page (the old one is intact)."""

    def __init__(self, path: pathlib.Path, error: OSError):
        super().__init__(error.errno, f"cannot write {path}: {error.strerror or error} "
                                      f"(the previous page, if any, is unchanged)")
        self.path = path


_SAFE_LABEL = re.compile(r"^[0-9]{1,8}(-[0-9]{1,2}){0,2}$")


def span_page_name(span: int, label: Optional[str] = None) -> str:
    """``span-7.html``, or ``span-2013-05.html`` for a calendar span: named by the span's number
    or its date label only, so no recorded value can name a page outside the reports folder."""
    if label is not None and _SAFE_LABEL.match(str(label)):
        return f"span-{label}.html"
    return f"span-{int(span)}.html"


def _needs_rebuild(page: pathlib.Path, rec: SpanRecord, stamp: str) -> bool:
    if not page.is_file():
        return True
    head = page.read_text(encoding="utf-8", errors="replace")[:2000]
    m = _STAMP_RE.search(head)
    if not m or m.group(1) != stamp:
        return True
    mtime = page.stat().st_mtime
    return any(p.stat().st_mtime > mtime for p in rec.inputs if p.exists())


def render_span_page(rec: SpanRecord, stamp: str = "") -> str:
    from driftguard.components.drift_detector.html import render_html

    page = render_html(rec.report, rec.monitor, decision=rec.decision, dashboard=INDEX)
    meta = f'<meta name="driftguard-stamp" content="{stamp}">' if stamp else ""
    return page.replace('<meta charset="utf-8">', '<meta charset="utf-8">' + meta, 1)


def build_span_pages(runs: Runs, out_dir: pathlib.Path, force: bool = False) -> Tuple[List[int], Dict[int, str]]:
    """(spans rewritten, {span: page file name}) for every span that has a drift report."""
    stamp = _code_stamp()
    written, pages = [], {}
    for rec in runs.spans:
        if not rec.report:
            continue
        page = out_dir / span_page_name(rec.span, rec.span_label)
        pages[rec.span] = page.name
        if force or _needs_rebuild(page, rec, stamp):
            _write(page, render_span_page(rec, stamp))
            written.append(rec.span)
    return written, pages


def _span_label(rec: SpanRecord) -> str:
    return rec.span_label + (f" · {rec.period}" if rec.period else "")


def _performance(rec: SpanRecord) -> dict:
    """The watched metric of a span: realized, estimated, baseline (components.prediction_monitor)."""
    from driftguard.components.prediction_monitor.metrics import headline

    perf = (rec.monitor or {}).get("performance")
    return headline(perf) if perf else {}


def _estimates(rec: SpanRecord) -> dict:
    """The watched metric's estimate interval and shift-aware estimate of a span: the
    PredictionMonitor's ``estimated_interval`` / ``estimated_shift_aware`` ({metric: ...}), else the
    state row's ``estimated_low`` / ``estimated_high`` / ``estimated_shift_aware``; None when missing."""
    perf = (rec.monitor or {}).get("performance") or {}
    row = rec.row or {}
    metric = perf.get("metric") or row.get("metric")

    def num(x):
        return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None
    interval = (perf.get("estimated_interval") or {}).get(metric)
    low, high = (interval[0], interval[1]) if isinstance(interval, (list, tuple)) and len(interval) == 2 else \
        (row.get("estimated_low"), row.get("estimated_high"))
    low, high = num(low), num(high)
    if low is None or high is None:
        low = high = None
    shift = (perf.get("estimated_shift_aware") or {}).get(metric)
    return {"low": low, "high": high,
            "shift_aware": num(shift if shift is not None else row.get("estimated_shift_aware"))}


def _metric_title(runs: Runs) -> Tuple[str, bool]:
    """(the watched metric's name, whether it is a share shown in percent)."""
    from driftguard.components import tasks as tasks_lib

    for s in runs.spans:
        metric = _performance(s).get("metric")
        if metric:
            return tasks_lib.METRIC_TITLES.get(metric, metric), metric in ("accuracy", "auc", "macro_f1")
    return "accuracy", True


def version_metrics(v) -> list:
    """[(name, candidate value, change vs baseline)] of a version's TFMA evaluation (counts last)."""
    cand = (v.eval_metrics.get("candidate") or {})
    diff = (v.eval_metrics.get("candidate_diff") or {})
    names = sorted(cand, key=lambda n: (n.endswith("count"), n))
    return [(n, cand[n], diff.get(n)) for n in names][:4]


def dashboard_context(runs: Runs, pages: Optional[Dict[int, str]] = None) -> dict:
    """Everything the dashboard template shows, charts included (also used by the notebook)."""
    pages = pages or {}
    spans = [s for s in runs.spans if s.report or s.row]
    cols = [s.span_label for s in spans]
    features = runs.features()
    cells = {}
    for s in spans:
        for name, f in ((s.report or {}).get("features") or {}).items():
            cells[(name, s.span_label)] = f
    groups = [f"v{s.compared_version}" if s.compared_version else "–" for s in spans]
    heat = charts.heatmap(features, cols, cells, title="Drift score per feature and span (vs the serving model's profile)",
                          col_groups=groups, links=[pages.get(s.span) for s in spans])

    def metric(key):
        out = []
        for s in spans:
            v = _performance(s).get(key)
            out.append(v if isinstance(v, (int, float)) else None)
        return out

    name, percent = _metric_title(runs)
    estimates = [_estimates(s) for s in spans]
    series = {"realized": metric("realized"), "estimated (no labels)": metric("estimated"),
              "held-out reference": metric("baseline")}
    shift_aware = [e["shift_aware"] for e in estimates]
    if any(v is not None for v in shift_aware):
        series["shift-aware estimate"] = shift_aware
    accuracy = charts.line_chart(cols, series, title=f"{name} of the serving model per span", percent=percent,
                                 dashed=("held-out reference",), x_title="span",
                                 bands={"estimated (no labels)": ([e["low"] for e in estimates],
                                                                  [e["high"] for e in estimates])})
    lines = {"prediction PSI": [((s.monitor or {}).get("prediction") or {}).get("psi") for s in spans],
             "confidence PSI": [((s.monitor or {}).get("confidence") or {}).get("psi") for s in spans]}
    if not any(v is not None for v in lines["confidence PSI"]):      # a regression model has none
        del lines["confidence PSI"]
    pred = charts.line_chart(cols, lines, title="Prediction " + ("and confidence " if len(lines) > 1 else "")
                             + "drift (PSI vs the reference)")
    rules = sorted({a.get("rule", "?") for a in runs.alerts},
                   key=lambda r: (not any(a.get("rule") == r and a.get("severity") == "critical" for a in runs.alerts), r))
    timeline = charts.alert_timeline(cols, rules, [{**a, "x": str((a.get("labels") or {}).get("span"))}
                                                   for a in runs.alerts],
                                     title="Alerts per span (hover for the message)") if runs.alerts else None
    rows = []
    for s in spans:
        row = s.row or {}
        d = (row.get("decision") or (s.decision or {}).get("decision") or {})
        alerts = [a for a in runs.alerts if str((a.get("labels") or {}).get("span")) == s.span_label]
        rows.append({"span": s.span, "label": _span_label(s), "page": pages.get(s.span),
                     "verdict": row.get("drift") or _headline(s), "drift": bool((s.report or {}).get("drift_detected")),
                     "no_baseline": (s.report or {}).get("status") == "no_baseline",
                     "compared": s.compared_version, "anomalies": len((s.report or {}).get("anomalies") or []),
                     "realized": _performance(s).get("realized"),
                     "estimated": _performance(s).get("estimated"), **{f"estimated_{k}": v for k, v in _estimates(s).items()},
                     "alerts": len(alerts), "critical": sum(a.get("severity") == "critical" for a in alerts),
                     "decision": row.get("outcome") or (("retrain: " if d.get("retrain") else "no retraining: ") + d.get("reason", "")),
                     "serving_after": row.get("serving")})
    return {"runs": runs, "root": str(runs.root), "spans": rows, "heatmap": heat, "accuracy": accuracy,
            "metric_name": name, "percent": percent, "version_metrics": version_metrics,
            "prediction": pred, "timeline": timeline, "versions": runs.versions, "serving": runs.serving,
            "trainings": runs.trainings, "alerts": list(reversed(runs.alerts))}


def _headline(rec: SpanRecord) -> str:
    if not rec.report:
        return "no drift report"
    from driftguard.components.drift_detector.compare import headline

    return headline(rec.report)


def render_dashboard(runs: Runs, pages: Optional[Dict[int, str]] = None) -> str:
    return _ENV.get_template("dashboard.html.j2").render(**dashboard_context(runs, pages))


def build_reports(runs_dir, force: bool = False) -> pathlib.Path:
    """(Re)build ``<runs_dir>/reports/``: the span pages that need it and the dashboard.

    Returns the dashboard's path. Raises FileNotFoundError naming the folder when it is missing.
    """
    runs = load_runs(runs_dir)
    out = runs.root / REPORTS_DIR
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportWriteError(out, e) from None
    written, pages = build_span_pages(runs, out, force=force)
    logger.info("span pages rewritten: %s", written or "none")
    index = out / INDEX
    _write(index, render_dashboard(runs, pages))
    return index
