"""The dashboard's metric chart: the estimate with its interval as a shaded band, the shift-aware
estimate and the realized value on one chart (issue 20); no band where the interval is missing."""
from __future__ import annotations

import json
import re
import shutil

from conftest import FIXTURE_RUNS

#: monitor.json artifact id -> (interval, shift-aware) added to its performance section; the
#: other spans keep today's reports (no interval, no shift-aware estimate)
ADDED = {16: ([0.880, 0.925], 0.893), 23: ([0.871, 0.915], 0.884), 57: ([0.877, 0.909], None)}


def _runs_with_intervals(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    for artifact, (interval, shift) in ADDED.items():
        path = runs / "pipelines" / "taxi-check" / "PredictionMonitor" / "model_monitor" / str(artifact) / "monitor.json"
        monitor = json.loads(path.read_text())
        perf = monitor["performance"]
        perf["estimated_interval"] = {perf["metric"]: interval}
        if shift is not None:
            perf["estimated_shift_aware"] = {perf["metric"]: shift}
            perf["estimated_shift_aware_interval"] = {perf["metric"]: [shift - 0.03, shift + 0.03]}
        path.write_text(json.dumps(monitor))
    return runs


def _metric_chart(html):
    charts = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    [chart] = [c for c in charts if "of the serving model per span" in c]
    return chart


def test_dashboard_draws_band_estimate_shift_aware_and_realized(tmp_path):
    from driftguard.components.reports import build_reports

    html = build_reports(_runs_with_intervals(tmp_path)).read_text(encoding="utf-8")
    chart = _metric_chart(html)
    # spans 3-4 (artifacts 16, 23) are consecutive: one band polygon; span 7 (57) alone: a short bar
    bands = re.findall(r'<polygon class="band" points="([^"]+)"', chart)
    assert len(bands) == 2
    assert sorted(len(b.split()) for b in bands) == [4, 4]
    for name in ("realized", "estimated (no labels)", "shift-aware estimate", "95 % interval", "held-out reference"):
        assert f">{name}</text>" in chart, name                       # in the legend
    assert chart.count("<path ") == 4                                 # one line per series
    assert "estimated (no labels) · 3: 90.9% (95 % interval 88.0% – 92.5%)" in chart
    assert "shift-aware estimate · 4: 88.4%" in chart
    assert ">span</text>" in chart                                    # the x axis says what it counts
    assert re.findall(r'fill="#6b7580">(\d+%)</text>', chart) == ["86%", "88%", "90%", "92%", "94%"]  # round ticks
    spans = html.split('id="spans"', 1)[1].split("</table>", 1)[0]
    assert "88.0–92.5%" in spans and "shift-aware 88.4%" in spans     # the span table too


def test_dashboard_without_intervals_has_no_band(tmp_path):
    from driftguard.components.reports import build_reports

    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    chart = _metric_chart(build_reports(runs).read_text(encoding="utf-8"))
    assert 'class="band"' not in chart and "95 % interval" not in chart and "shift-aware" not in chart
    assert ">realized</text>" in chart and ">estimated (no labels)</text>" in chart


def test_line_chart_band_skips_missing_ends():
    from driftguard.components.reports.charts import line_chart

    svg = str(line_chart(["1", "2", "3", "4"], {"est": [0.5, 0.6, 0.7, 0.8]},
                         bands={"est": ([0.4, None, 0.6, 0.7], [0.6, 0.7, 0.8, 0.9]), "absent": ([0.1], [0.2])}))
    assert svg.count('class="band"') == 2                              # span 1 alone, spans 3-4
    assert "absent" not in svg                                         # a band of no series is ignored
