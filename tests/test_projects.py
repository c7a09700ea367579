"""Projects other than the taxi example, run for real: a multi-class model (Palmer penguins,
tests/projects/penguins) whose class probabilities are monitored; the same project with its
spans in Parquet and in TFRecord files, each checking a span; a model module whose run_fn
raises, named by its own file and line, with nothing stored changed.
"""
from __future__ import annotations

import json
import pathlib
import shutil

import pytest
import yaml

from helpers import run_cli, tree_digest
from project_fixtures import CLASSES, flights_span, make_penguins, monitor_of

pytestmark = pytest.mark.tfx


def test_a_multiclass_model_is_trained_gated_and_checked(penguins):
    proc = penguins["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training penguins (multiclass) on span(s) 1, 2" in proc.stderr
    assert "candidate blessed: SparseCategoricalAccuracy" in proc.stdout
    assert "pushed penguins version 1" in proc.stdout
    assert "span  3 |" in proc.stdout and "| accuracy 0." in proc.stdout
    rows = json.loads((penguins["runs"] / "state.json").read_text())["spans"]
    assert rows[0]["metric"] == "accuracy" and rows[0]["realized"] > 0.8 and rows[0]["estimated"] > 0.8


def test_a_multiclass_models_class_probabilities_are_monitored(penguins):
    assert penguins["proc"].returncode == 0, penguins["proc"].stderr[-3000:]
    monitor = monitor_of(penguins["runs"], 3)
    assert monitor["status"] == "monitored" and monitor["task"] == "multiclass" and monitor["classes"] == CLASSES
    p = monitor["prediction"]
    assert p["kind"] == "class"
    assert set(p["class_share_reference"]) == set(p["class_share_current"]) == set(CLASSES)
    assert sum(p["class_share_current"].values()) == pytest.approx(1.0)
    assert set(p["class_probabilities"]) == set(CLASSES)
    for name, c in p["class_probabilities"].items():
        assert 0.0 <= c["mean_reference"] <= 1.0 and 0.0 <= c["mean_current"] <= 1.0, name
        assert c["psi"] >= 0 and 0.0 <= c["p_value"] <= 1.0
    assert sum(c["mean_current"] for c in p["class_probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert 0.5 < monitor["confidence"]["mean_current"] <= 1.0
    perf = monitor["performance"]
    assert perf["task"] == "multiclass" and perf["labelled_rows"] == 120
    assert set(perf["realized"]) == {"accuracy", "macro_f1"} and perf["realized"]["accuracy"] > 0.9
    assert set(perf["estimated"]) == {"accuracy", "macro_f1"} and perf["estimator"].startswith("CBPE")
    # the span page shows the class table
    page = (penguins["runs"] / "reports" / "span-3.html").read_text()
    assert 'id="class-probabilities"' in page and "Chinstrap" in page


@pytest.mark.parametrize("fmt", ["parquet", "tfrecord"])
def test_parquet_and_tfrecord_projects_check_a_span(penguins, tmp_path, fmt):
    """The same project with its spans in another format checks span 3 against the version
    trained on the CSV spans (a model reads tf.Examples, whatever the files were)."""
    assert penguins["proc"].returncode == 0, penguins["proc"].stderr[-3000:]
    root = make_penguins(tmp_path / fmt, fmt)
    shutil.copytree(penguins["runs"] / "serving", root / "runs" / "serving")
    proc = run_cli("check", "--span", "3", "--json", cwd=root)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == "compared" and out["rows"]["current"]["rows"] == 120
    assert out["anomalies"] == [], out["anomalies"]
    assert set(out["features"]) >= {"island", "bill_length_mm", "sex"} and "species" not in out["features"]
    assert out["monitor"]["status"] == "monitored" and out["monitor"]["performance"]["realized"]["accuracy"] > 0.9
    csv_monitor = monitor_of(penguins["runs"], 3)
    # the same rows, the same model: the same predictions whatever the file format
    assert out["monitor"]["prediction"]["class_share_current"] == csv_monitor["prediction"]["class_share_current"]


def test_a_run_fn_that_raises_is_named_by_its_line_and_nothing_is_stored(tmp_path):
    root = make_penguins(tmp_path / "broken")
    source = (root / "model.py").read_text()
    marker = "def run_fn(fn_args"
    assert marker in source
    start = source.index(marker)
    body = source.index("\n", start) + 1
    broken = source[:body] + '    raise ValueError("learning rate schedule not found")\n' + source[body:]
    (root / "model.py").write_text(broken)
    line = broken[:body].count("\n") + 1
    (root / "runs").mkdir()
    before = tree_digest(root / "runs")
    proc = run_cli("train", "--spans", "1,2", cwd=root)
    assert proc.returncode == 2, proc.stdout
    assert "the training pipeline failed at Trainer" in proc.stderr
    assert "ValueError: learning rate schedule not found" in proc.stderr
    assert (f"in your model module (model.module): model.py, line {line}, in run_fn: "
            f"raise ValueError(\"learning rate schedule not found\")") in proc.stderr, proc.stderr
    assert "nothing was pushed" in proc.stderr
    assert not (root / "runs" / "serving" / "penguins").exists()
    after = tree_digest(root / "runs")
    assert all(after.get(k) == v for k, v in before.items())



def test_a_model_module_given_as_an_import_path_trains(penguins):
    """model.module may name a module (a package of the team's, found from the project folder)
    instead of a file: Transform and Trainer get its functions by import path. The session's
    penguins project is made that way (project_fixtures.make_penguins_package): its training is
    this one."""
    root, proc = penguins["root"], penguins["proc"]
    settings = yaml.safe_load((root / "driftguard.yaml").read_text())
    assert settings["model"]["module"] == "penguin_models.species"
    assert not (root / "model.py").exists() and (root / "penguin_models" / "species.py").is_file()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training penguins (multiclass) on span(s) 1, 2" in proc.stderr
    assert "candidate blessed: SparseCategoricalAccuracy" in proc.stdout, proc.stdout
    assert "pushed penguins version 1" in proc.stdout
    assert (penguins["runs"] / "serving" / "penguins" / "1" / "saved_model.pb").is_file()

# ---------------------------------------------------------------- regression: NYC flights 2013

def test_the_flights_example_trains_and_checks_a_regression_model(flights):
    proc = flights["proc"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "training flights (regression) on span(s) 2013-01" in proc.stderr
    assert "candidate blessed: MeanAbsoluteError" in proc.stdout and "pushed flights version 1" in proc.stdout
    assert "span 2013-03 |" in proc.stdout and "| MAE " in proc.stdout
    monitor = monitor_of(flights["runs"], flights_span("2013-03"))
    assert monitor["span_label"] == "2013-03" and monitor["task"] == "regression"
    p = monitor["prediction"]
    assert p["kind"] == "value" and "confidence" not in monitor and p["psi"] >= 0
    perf = monitor["performance"]
    assert perf["metric"] == "mae" and set(perf["realized"]) == {"mae", "rmse"}
    assert 5 < perf["realized"]["mae"] < 60 and perf["realized"]["rmse"] >= perf["realized"]["mae"]
    assert perf["labelled_rows"] > 1000                      # cancelled flights have no label
    assert set(perf["baseline"]) == {"mae", "rmse"}
    assert perf["estimator"].startswith("DLE") and 5 < perf["estimated"]["mae"] < 60
    profile = json.loads((flights["runs"] / "serving" / "flights" / "1" / "profile" / "profile.json").read_text())
    assert profile["span_labels"] == ["2013-01"] and profile["task"] == "regression"


def _learnable_february(root: pathlib.Path) -> None:
    """Span 2013-02: January's flights with an arrival delay the features determine (distance
    and origin): a trained model fits it closely, a constant prediction cannot."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    data = root / "data" / "flights"
    table = pq.read_table(data / "2013-01" / "flights.parquet")
    delay = pc.add(pc.divide(pc.cast(table.column("distance"), pa.float64()), 25.0),
                   pc.multiply(pc.cast(pc.equal(table.column("origin"), "EWR"), pa.float64()), 40.0))
    table = table.set_column(table.schema.get_field_index("arr_delay"), "arr_delay", delay)
    (data / "2013-02").mkdir()
    pq.write_table(table, data / "2013-02" / "flights.parquet")


def test_a_regression_candidate_worse_on_mae_than_the_serving_model_is_not_pushed(flights):
    """A candidate that learnt the span is pushed; one that barely trained (a near-constant
    prediction) is then worse on MAE than the serving model by more than the 2 % allowed: the
    Evaluator does not bless it and the registry stays byte-for-byte the same."""
    assert flights["proc"].returncode == 0, flights["proc"].stderr[-3000:]
    root = flights["root"]
    registry = flights["runs"] / "serving" / "flights"
    _learnable_february(root)
    settings = dict(flights["settings"])
    # only the change threshold decides: the value bound is out of reach
    settings["evaluation"] = {"metrics": {"MeanAbsoluteError": {"max": 10_000, "baseline_relative_tolerance": 0.02}}}
    (root / "learnt.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    good = run_cli("--config", root / "learnt.yaml", "train", "--spans", "2013-02", cwd=root)
    assert good.returncode == 0, good.stderr[-3000:]
    assert "candidate blessed: MeanAbsoluteError" in good.stdout, good.stdout
    [pushed] = [line for line in good.stdout.splitlines() if line.startswith("pushed flights version ")]
    version = int(pushed.split()[3])
    before = tree_digest(registry)

    worse = dict(settings)
    worse["training"] = {**worse["training"], "train_steps": 2,
                         "custom_config": {**worse["training"]["custom_config"], "learning_rate": 1e-6}}
    (root / "worse.yaml").write_text(yaml.safe_dump(worse, sort_keys=False))
    proc = run_cli("--config", root / "worse.yaml", "train", "--spans", "2013-02", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "candidate NOT blessed by the Evaluator: MeanAbsoluteError" in proc.stdout, proc.stdout
    assert "(blessed baseline " in proc.stdout and "at most 2.0% above the baseline" in proc.stdout
    assert f"nothing was pushed; serving stays at version {version}" in proc.stdout
    assert tree_digest(registry) == before
