"""`driftguard monitor` on the logs of a multi-class and of a regression model: the model's
outputs are read per task (class probabilities -> the class and its probability; a value),
windows compare them with the model's outputs on its reference, and delayed labels (class names;
minutes) give the realized metric the alert rules watch.

The models are the `penguins` and `flights` session runs (tests/project_fixtures.py); the logs
are their own predictions on a span's rows, written as serve writes them.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.tfx


def _traffic(project: pathlib.Path, span_rows, n: int, seed: int = 7):
    """``n`` rows drawn from a span's table, their labels, and serialized examples without the label."""
    rng = np.random.default_rng(seed)
    rows = span_rows.take(rng.integers(0, span_rows.num_rows, n))
    return rows


def _config(project: pathlib.Path, root: pathlib.Path, **monitor) -> pathlib.Path:
    """The project's config with a runs folder of its own sharing the trained registry."""
    settings = yaml.safe_load((project / "driftguard.yaml").read_text())
    runs = root / "runs"
    (runs / "serving").mkdir(parents=True)
    model = settings["model_name"]
    os.symlink(project / "runs" / "serving" / model, runs / "serving" / model)
    settings["runs"] = str(runs)
    settings["monitor"] = {"window": 200, "step": 0, **monitor}
    path = project / f"monitor-{root.name}.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def _log_and_labels(cfg, rows, label_column: str, root: pathlib.Path, label_text):
    from driftguard.components import model_io
    from driftguard.serving import predictlog as pl

    spec = cfg.model_spec()
    served = rows.drop([label_column])
    examples = model_io.encode_examples(served)
    predictor = model_io.Predictor(cfg.model_registry / "1", spec)
    outputs = predictor.outputs(examples)
    ids = [f"r{i}" for i in range(len(examples))]
    with pl.PredictionLogWriter(root / "logs") as w:
        for i in range(len(examples)):
            w.write(pl.make_predict_log(cfg.model_name, 1, examples[i:i + 1],
                                        {k: v[i:i + 1] for k, v in outputs.items()}, ids[i:i + 1],
                                        timestamp=1_700_000_000 + i))
    labels = rows.column(label_column).to_pylist()
    (root / "labels.csv").write_text("request_id,label\n" + "".join(
        f"{rid},{label_text(y)}\n" for rid, y in zip(ids, labels) if y is not None))
    return predictor.predict(examples)


def _run(cfg, root: pathlib.Path):
    from driftguard.monitoring import monitor as monitor_lib

    mon = monitor_lib.Monitor(cfg, logs=root / "logs", labels=root / "labels.csv", state=root / "state")
    try:
        monitor_lib.run(mon, once=True)
        return mon.snapshot(), dict(mon.counters)
    finally:
        mon.close()


def test_the_monitor_follows_a_multiclass_models_classes(penguins, tmp_path):
    import pyarrow.csv as pacsv

    from driftguard.pipeline import config as config_lib

    assert penguins["proc"].returncode == 0, penguins["proc"].stderr[-3000:]
    project = penguins["root"]
    rows = _traffic(project, pacsv.read_csv(project / "data" / "span-3" / "data.csv"), 600)
    cfg = config_lib.load(_config(project, tmp_path))
    predicted = _log_and_labels(cfg, rows, "species", tmp_path, str)
    snapshot, counters = _run(cfg, tmp_path)
    assert counters["records"] == 600 and counters["windows"] == 3 and counters["window_errors"] == 0
    window = snapshot["window"]
    # the class and its probability, read from the logged [1, 3] probabilities
    shares = window["class_shares"]
    assert set(shares) == {"Adelie", "Chinstrap", "Gentoo"} and sum(shares.values()) == pytest.approx(1.0)
    last = predicted.value[400:600]
    assert shares["Gentoo"] == pytest.approx(np.mean(last == 2))
    assert 0.5 < window["mean_confidence"] <= 1.0 and window["prediction_psi"] >= 0
    assert snapshot["reference"]["metric"] == "accuracy" and snapshot["reference"]["baseline"] > 0.9
    # class names joined as labels: the realized accuracy of a window of labels
    assert counters["labels_joined"] == 600 and counters["label_windows"] == 3
    assert snapshot["label_window"]["metric"] == "accuracy" and snapshot["label_window"]["value"] > 0.9
    assert set(snapshot["label_window"]["realized"]) == {"accuracy", "macro_f1"}
    assert "confidence" in snapshot["detectors"]
    # the error stream's reference is the held-out rows of two study years: 66 penguins, too few
    # for a detector's blocks; the snapshot says why it is off
    assert "error" not in snapshot["detectors"]
    assert "fewer than 2 blocks" in snapshot["detectors_off"]["error"], snapshot["detectors_off"]


def test_the_monitor_follows_a_regression_models_values(flights, tmp_path):
    import pyarrow.parquet as pq

    from driftguard.pipeline import config as config_lib

    assert flights["proc"].returncode == 0, flights["proc"].stderr[-3000:]
    project = flights["root"]
    rows = _traffic(project, pq.read_table(project / "data" / "flights" / "2013-03" / "flights.parquet"), 600)
    cfg = config_lib.load(_config(project, tmp_path))
    predicted = _log_and_labels(cfg, rows, "arr_delay", tmp_path, lambda y: f"{y:g}")
    snapshot, counters = _run(cfg, tmp_path)
    assert counters["records"] == 600 and counters["windows"] == 3 and counters["window_errors"] == 0
    window = snapshot["window"]
    assert window["mean_prediction"] == pytest.approx(float(np.mean(predicted.value[400:600])), rel=1e-5)
    assert "class_shares" not in window and "confidence_psi" not in window
    assert "confidence" not in snapshot["detectors"]          # a regression model has no confidence
    assert snapshot["reference"]["metric"] == "mae" and 5 < snapshot["reference"]["baseline"] < 60
    # the estimate without labels (DLE) of the last window, and the realized MAE of labelled windows
    assert window["estimated_metric"] == "mae" and 5 < window["estimated"] < 60
    assert window["estimated_low"] < window["estimated"] < window["estimated_high"]      # its 95 % interval
    labelled = sum(1 for y in rows.column("arr_delay").to_pylist() if y is not None)
    assert counters["labels_joined"] == labelled
    lw = snapshot["label_window"]
    assert lw["metric"] == "mae" and set(lw["realized"]) == {"mae", "rmse"} and 5 < lw["value"] < 80
