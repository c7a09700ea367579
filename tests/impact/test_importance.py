"""driftguard.components.impact.importance and .weighted: pure, on synthetic models."""
import numpy as np
import pyarrow as pa
import pytest

from driftguard.components.impact.importance import importance_of, matters, permutation_importance
from driftguard.components.impact.weighted import importance_weighted_drift, summary, table


def _data(n=1000, seed=1):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    y = (x1 + 0.3 * rng.normal(size=n) > 0).astype(float)
    city = rng.choice(["a", "b"], n)
    return pa.table({"x1": x1, "x2": x2, "city": city}), y


def _predict(t: pa.Table) -> np.ndarray:       # uses x1 only
    return 1.0 / (1.0 + np.exp(-3.0 * np.asarray(t.column("x1"))))


def test_the_feature_the_model_uses_matters_and_the_others_are_exactly_zero():
    t, y = _data()
    out = permutation_importance(t, y, _predict, "binary", ["x1", "x2", "city", "gone"], n_repeats=4)
    assert out["status"] == "computed" and out["rows"] == 1000 and out["skipped"] == ["gone"]
    acc = out["metrics"]["accuracy"]
    assert acc["higher_is_better"] and acc["baseline"] > 0.85
    assert acc["features"]["x1"]["mean"] > 0.3          # shuffled x1: accuracy falls to ~0.5
    assert acc["features"]["x2"] == {"mean": 0.0, "std": 0.0, "drops": [0.0] * 4}
    assert matters(acc["features"]["x1"], 4) and not matters(acc["features"]["x2"], 4)
    assert out["metrics"]["auc"]["features"]["x1"]["mean"] > 0.3
    assert importance_of(out)["metric"] == "accuracy"
    assert importance_of({**out, "primary": "auc"})["metric"] == "auc"
    assert importance_of(out, "mae") is None and importance_of(None) is None


def test_regression_importance_is_the_rise_of_the_error():
    t, _ = _data()
    x1 = np.asarray(t.column("x1"))
    out = permutation_importance(t, 2 * x1, lambda tab: 2 * np.asarray(tab.column("x1")), "regression",
                                 ["x1", "x2"], n_repeats=3, max_rows=300)
    mae = out["metrics"]["mae"]
    assert out["rows"] == 300 and not mae["higher_is_better"] and mae["baseline"] == 0.0
    assert mae["features"]["x1"]["mean"] > 1.0 and mae["features"]["x2"]["mean"] == 0.0


def test_too_few_labels_say_so_and_bad_input_is_named():
    t, y = _data(n=100)
    y[:80] = np.nan
    out = permutation_importance(t, y, _predict, "binary", ["x1"])
    assert out["status"] == "not_computed" and "20 labelled reference rows" in out["note"]
    with pytest.raises(ValueError, match="label: 3 values for a table of 100 rows"):
        permutation_importance(t, np.ones(3), _predict, "binary", ["x1"])
    with pytest.raises(ValueError, match="n_repeats must be at least 2"):
        permutation_importance(t, np.ones(100), _predict, "binary", ["x1"], n_repeats=1)


def _feature(psi, drifted):
    return {"method": "psi", "score": psi, "scores": {"psi": psi}, "drifted": drifted}


IMPORTANCE = {"status": "computed", "repeats": 5, "rows": 600, "primary": "accuracy", "metrics": {"accuracy": {
    "higher_is_better": True, "baseline": 0.9, "features": {
        "fare": {"mean": 0.06, "std": 0.01}, "company": {"mean": 0.0005, "std": 0.004},
        "miles": {"mean": 0.02, "std": 0.002}, "hour": {"mean": -0.001, "std": 0.001}}}}}


def test_drift_is_weighted_by_importance_and_the_ranking_keeps_what_matters():
    features = {"fare": _feature(0.05, True), "company": _feature(0.30, True), "miles": _feature(0.10, True),
                "hour": _feature(0.001, False)}
    s = importance_weighted_drift(features, IMPORTANCE, version=2)
    assert s["status"] == "weighted" and s["metric"] == "accuracy" and s["n_drifted"] == 3
    shares = {n: r["share"] for n, r in s["features"].items()}
    assert shares["hour"] == 0.0 and abs(sum(shares.values()) - 1.0) < 1e-12
    assert shares["fare"] == pytest.approx(0.06 / 0.0805)
    # company drifted most but the model does not rely on it (importance within noise of 0)
    assert s["ranking"] == ["fare", "miles"] and s["drifted_unimportant"] == ["company"]
    assert s["features"]["miles"]["weighted"] == pytest.approx(0.10 * 0.02 / 0.0805)
    assert s["weighted_psi"] == pytest.approx(sum(r["weighted"] for r in s["features"].values()))
    assert summary(s).startswith("drift in 3 features; 2 matter to the model: fare (PSI 0.05 x share 75%)")
    assert "drifted and matter: fare, miles" in table(s)


def test_a_version_without_importance_still_reports_and_says_so():
    s = importance_weighted_drift({"fare": _feature(0.2, True)}, None, version=1)
    assert s["status"] == "no_importance" and s["n_drifted"] == 1
    assert s["message"].startswith("no importance for version 1")
    assert summary(s).startswith("drift in 1 feature; no importance for version 1") and table(s) == ""
    s = importance_weighted_drift({"fare": _feature(0.2, True)}, {"status": "not_computed", "note": "no labels"})
    assert s["message"] == "no labels"


def test_a_type_change_ranks_first_whatever_the_importance():
    s = importance_weighted_drift({"fare": _feature(0.2, True)}, IMPORTANCE, type_changes=["hour"])
    assert s["ranking"] == ["hour", "fare"] and s["n_drifted"] == 2
