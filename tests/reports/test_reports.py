"""The report pages: built from a runs folder, self-contained, and clean in headless Chromium."""
from __future__ import annotations

import json
import re

import pytest

from chromium_page import CHROMIUM, open_page

@pytest.fixture
def chromium():
    """Chromium is part of the test environment (`make test` installs it): missing is a failure, not a skip."""
    if CHROMIUM is None:
        pytest.fail("Debian's chromium is not installed: run `make system-deps` (apt-get install -y chromium)")
    return CHROMIUM


needs_chromium = pytest.mark.usefixtures("chromium")
_ASSET = re.compile(r"""(?:src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//|url\(\s*["']?\s*(?:https?:)?//|@import""",
                    re.IGNORECASE)


def _pages(runs):
    return sorted((runs / "reports").glob("*.html"))


def test_build_writes_dashboard_and_one_page_per_span(report_runs):
    names = {p.name for p in _pages(report_runs)}
    spans = [r["span"] for r in json.loads((report_runs / "state.json").read_text())["spans"]]
    assert names == {"index.html", *(f"span-{s}.html" for s in spans)}


def test_pages_reference_no_remote_asset(report_runs):
    for page in _pages(report_runs):
        text = page.read_text(encoding="utf-8")
        assert not _ASSET.search(text), f"{page.name} references a remote asset: {_ASSET.search(text).group(0)}"
        assert "http://" not in text and "https://" not in text, page.name
        assert "<script" not in text, page.name


def test_dashboard_content(report_runs):
    html = (report_runs / "reports" / "index.html").read_text(encoding="utf-8")
    assert "Serving: taxi version 2 (trained on spans 5, 6)" in html
    assert 'href="span-6.html"' in html
    assert "retrained on 5,6: pushed v2" in html          # the push decision
    assert "taxi span 6: PSI 0.22 &gt; 0.2 on trip_miles" in html  # the critical alert
    assert html.count("<svg") >= 4                     # heat map, accuracy, prediction drift, alerts


def test_span_page_has_distributions_and_model_panel(report_runs):
    html = (report_runs / "reports" / "span-5.html").read_text(encoding="utf-8")
    assert 'id="distributions"' in html and "company (categorical)" in html and "trip_miles (numeric)" in html
    assert 'id="model"' in html and "realized accuracy" in html and "88.9%" in html
    assert 'id="decision"' in html and "no critical alert" in html
    assert 'href="index.html"' in html


def test_unchanged_span_pages_are_not_rewritten(report_runs, tmp_path):
    from driftguard.components.reports.build import build_span_pages
    from driftguard.components.reports.runs import load_runs

    before = {p.name: p.stat().st_mtime_ns for p in _pages(report_runs)}
    written, _ = build_span_pages(load_runs(report_runs), report_runs / "reports")
    assert written == []
    assert {p.name: p.stat().st_mtime_ns for p in _pages(report_runs) if p.name != "index.html"} == \
        {k: v for k, v in before.items() if k != "index.html"}


def test_render_html_keeps_its_old_signature(report_runs):
    from driftguard.components.drift_detector.html import render_html

    report = json.loads(next(report_runs.glob("pipelines/*/DriftDetector/*/33/report.json")).read_text())
    html = render_html(report)
    assert 'id="verdict"' in html and 'id="features"' in html and 'id="model"' not in html


@needs_chromium
@pytest.mark.parametrize("name", ["index.html", "span-6.html"])
def test_page_opens_in_headless_chromium(report_runs, name, tmp_path):
    shot = tmp_path / f"{name}.png"
    page = open_page(report_runs / "reports" / name, screenshot=shot)
    assert page.console == []
    assert 'id="verdict"' in page.dom
    assert 'id="spans"' in page.dom if name == "index.html" else 'id="features"' in page.dom
    assert shot.stat().st_size > 20_000


@needs_chromium
def test_console_errors_are_detected(tmp_path):
    """The negative control: a script error in a page is seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<p id="verdict">x</p><script>undefinedFunction()</script>')
    assert any("undefinedFunction" in line for line in open_page(bad).console)


def test_report_command(report_runs):
    from click.testing import CliRunner
    from driftguard.components.reports.cli import report

    result = CliRunner().invoke(report, [str(report_runs)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(report_runs / "reports" / "index.html")
    missing = CliRunner().invoke(report, [str(report_runs / "nope")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
