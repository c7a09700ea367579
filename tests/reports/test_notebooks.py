"""The notebooks run top to bottom (nbclient) on a copy of the fixture runs folder."""
from __future__ import annotations

import pathlib
import shutil

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
FIXTURE_RUNS = pathlib.Path(__file__).resolve().parent / "fixtures" / "runs"
SLICE_FEATURE = "payment_type"    # the fixture is a taxi replay


def _write_project(folder: pathlib.Path, runs: pathlib.Path) -> None:
    """The taxi example's driftguard.yaml for the fixture's runs (the notebooks read the task,
    the label and the slices from it)."""
    from driftguard.pipeline.project import PROJECT_FILE, example_config

    settings = example_config("taxi")
    settings["runs"] = str(runs)
    settings["data"]["root"] = str(REPO / "data" / "taxi")
    # the example's slices, set here so that the test does not depend on them
    settings.setdefault("evaluation", {})["slices"] = [[SLICE_FEATURE]]
    (folder / PROJECT_FILE).write_text(yaml.safe_dump(settings, sort_keys=False))


@pytest.mark.parametrize("name", ["drift_over_time", "data_validation", "model_analysis"])
def test_notebook_runs(name, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    runs = tmp_path / "runs"
    shutil.copytree(FIXTURE_RUNS, runs)
    _write_project(tmp_path, runs)
    monkeypatch.setenv("DRIFTGUARD_RUNS", str(runs))
    monkeypatch.setenv("DRIFTGUARD_PROJECT", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors, "\n".join(f"{o.ename}: {o.evalue}" for o in errors)
    if name == "model_analysis":
        # the last cell shows the serving model's metrics per slice: Overall and one row per
        # value of the configured feature (the fixture's newest span has several)
        last = [c for c in nb.cells if c.cell_type == "code"][-1]
        shown = "".join(o.get("data", {}).get("text/plain", "") for o in last.get("outputs", []))
        assert "Overall" in shown, shown
        assert shown.count(f"{SLICE_FEATURE}=") >= 2, shown
