"""Fixtures of the report tests: a copy of the committed tiny runs folder (fixtures/runs,
pruned from a real `driftguard run` of spans 3-8 by make_fixture.py), reports built once."""
from __future__ import annotations

import pathlib
import shutil

import pytest

FIXTURE_RUNS = pathlib.Path(__file__).resolve().parent / "fixtures" / "runs"


@pytest.fixture(scope="session")
def report_runs(tmp_path_factory) -> pathlib.Path:
    """A writable copy of the fixture runs folder, with runs/reports/ built."""
    from driftguard.components.reports import build_reports

    runs = tmp_path_factory.mktemp("reports") / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    build_reports(runs)
    return runs
