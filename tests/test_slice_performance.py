"""The serving model's realized performance per slice (components/prediction_monitor/slices.py)
and the slice_metric_drop alert: plain arrays and Arrow tables, no TFX."""
from __future__ import annotations

import doctest

import numpy as np
import pyarrow as pa
import pytest

from driftguard.components.alerts import rules
from driftguard.components.alerts.config import parse_alerts_config
from driftguard.components.prediction_monitor import slices as slices_mod
from driftguard.components.prediction_monitor.slices import slice_performance


def _case(task, n=3000, worse_in=None, seed=0):
    rng = np.random.default_rng(seed)
    seg = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    if task == "regression":
        y = rng.normal(50, 10, n)
        ref = y + rng.normal(0, 5, n)
        cur = y + rng.normal(0, 5, n) * np.where(seg == worse_in, 1.6, 1.0)
    else:
        y = rng.integers(0, 2, n).astype(float)
        ref = np.where(rng.random(n) < 0.88, y, 1 - y)
        flip = (seg == worse_in) & (rng.random(n) < 0.15)
        cur0 = np.where(rng.random(n) < 0.88, y, 1 - y)
        cur = np.where(flip, 1 - cur0, cur0)
    rows = pa.table({"seg": seg})
    return dict(reference_rows=rows, ref_value=ref, ref_label=y, held_out=np.ones(n, bool),
                current_rows=rows, cur_value=cur, cur_label=y)


@pytest.mark.parametrize("task,metric", [("binary", "accuracy"), ("regression", "mae")])
def test_a_slice_where_the_model_got_worse_is_found_and_named(task, metric):
    out = slice_performance(task, metric, [["seg"]], **_case(task, worse_in="b"))
    assert out["worse_slices"] == ["seg=b"] and out["tested"] == 3
    [b] = [s for s in out["slices"] if s["name"] == "seg=b"]
    assert b["p_value_adjusted"] == pytest.approx(min(1.0, 3 * b["p_value"]))
    assert (b["realized"] < b["baseline"]) if task == "binary" else (b["realized"] > b["baseline"])
    alerts = rules.evaluate(parse_alerts_config(None, task=task), model="m", span=4, drift_report={},
                            monitor={"task": task, "performance_slices": out})
    [alert] = [a for a in alerts if a.rule == "slice_metric_drop"]
    assert alert.labels["slice"] == "seg=b" and alert.dedup_key == "m/span-4/slice_metric_drop/seg=b"
    assert " in slice seg=b " in alert.title


@pytest.mark.parametrize("task,metric", [("binary", "accuracy"), ("regression", "mae")])
def test_no_slice_is_called_worse_when_nothing_changed(task, metric):
    calls = 0
    for seed in range(10):
        out = slice_performance(task, metric, [["seg"]], **_case(task, seed=seed))
        calls += bool(out["worse_slices"])
        alerts = rules.evaluate(parse_alerts_config(None, task=task), model="m", span=4, drift_report={},
                                monitor={"task": task, "performance_slices": out})
        assert not [a for a in alerts if a.rule == "slice_metric_drop"] or out["worse_slices"]
    assert calls <= 1


def test_small_slices_and_missing_features_are_skipped_with_reasons():
    case = _case("binary")
    out = slice_performance("binary", "accuracy", [["seg"], ["nope"]], min_rows=1000, **case)
    names = {s["name"] for s in out["slices"]}
    assert names == {"seg=a"}                                   # ~1,500 rows; b ~900 and c ~600
    reasons = {k["name"]: k["reason"] for k in out["skipped"]}
    assert "fewer than 1000 on a side" in reasons["seg=c"] and reasons["nope"] == "not in the reference sample"


def test_doctests():
    result = doctest.testmod(slices_mod)
    assert result.attempted > 0 and result.failed == 0
