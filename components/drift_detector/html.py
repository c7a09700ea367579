"""Self-contained HTML page of one DriftReport (no script, no external asset: opens from disk)."""
from __future__ import annotations

import os
import pathlib
import tempfile
from typing import Any, Mapping

import jinja2

from components.drift_detector.compare import headline

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("components.drift_detector", "templates"),
                          autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 10 ** -digits or abs(value) >= 10 ** 6):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


_ENV.filters["fmt"] = _fmt


def render_html(report: Mapping[str, Any]) -> str:
    features = report.get("features", {})

    def severity(item):
        f = item[1]
        checks = f.get("checks", {}).values()
        worst = max(((c["score"] or 0) / c["threshold"] if c.get("threshold") else 0 for c in checks), default=0)
        return (not f.get("drifted"), -worst, item[0])

    ordered = sorted(features.items(), key=severity)
    return _ENV.get_template("drift_report.html.j2").render(
        report=report, features=ordered, headline=headline(report), context=report.get("context", {}))


def write_html(report: Mapping[str, Any], path: pathlib.Path) -> None:
    """Write atomically (temp file + rename): a reader never sees half a page."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".report-", suffix=".html")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render_html(report))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
