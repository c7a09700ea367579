"""The notebooks run top to bottom (nbclient) on a copy of the fixture runs folder."""
from __future__ import annotations

import os
import pathlib
import shutil

import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
FIXTURE_RUNS = pathlib.Path(__file__).resolve().parent / "fixtures" / "runs"


@pytest.mark.parametrize("name", ["drift_over_time", "data_validation", "model_analysis"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    monkeypatch.setenv("DRIFTGUARD_RUNS", str(runs))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
