"""Fixtures for the alerting tests: real receivers on 127.0.0.1 (HTTP, SMTP, a hanging socket)
and a real DriftDetector report of span 8 (tests/alerts/span8_report.json, trimmed: per-feature
details, the text table and the settings removed)."""
from __future__ import annotations

import json
import pathlib

import pytest

from alerts_servers import Hanging, Mailbox, Receiver

HERE = pathlib.Path(__file__).resolve().parent


@pytest.fixture
def receiver():
    """``receiver(status=200, port=0, echo_path=False)`` -> a running Receiver, closed after the test."""
    started = []

    def start(**kwargs):
        r = Receiver(**kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


@pytest.fixture
def hanging():
    h = Hanging()
    yield h
    h.close()


@pytest.fixture
def mailbox():
    started = []

    def start(**kwargs):
        m = Mailbox(**kwargs)
        started.append(m)
        return m

    yield start
    for m in started:
        m.close()


@pytest.fixture
def span8_report():
    return json.loads((HERE / "span8_report.json").read_text())


@pytest.fixture
def make_alert():
    from driftguard.components.alerts import Alert

    def make(key: str = "taxi/span-8/dataset_drift", severity: str = "warning", rule: str = "dataset_drift"):
        return Alert(rule=rule, severity=severity, title=f"taxi span 8: {rule} ({key})",
                     summary="line one\nline two", labels={"model": "taxi", "span": "8", "rule": rule},
                     dedup_key=key, created_at="2026-11-25T21:26:48Z", values={"score": 0.3})

    return make
