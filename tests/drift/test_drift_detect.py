"""detect_drift: inputs, errors, configuration, report shape."""
import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from driftguard.components.drift import DriftInputError, DriftReport, FeatureConfig, detect_drift


def _tables(n=600, seed=0, fare_factor=1.0):
    rng = np.random.default_rng(seed)
    def one(factor):
        fare = rng.lognormal(2.0, 0.6, n) * factor
        miles = fare / 3 + rng.exponential(0.5, n)
        return pd.DataFrame({
            "fare": fare,
            "trip_miles": miles,
            "hour": rng.integers(0, 24, n),
            "payment_type": rng.choice(["Cash", "Credit Card", "No Charge"], n, p=[0.6, 0.38, 0.02]),
            "company": np.where(rng.random(n) < 0.3, None, rng.choice(["A", "B", "C"], n)).astype(object),
        })
    return one(1.0), one(fare_factor)


def test_report_shape_and_contract():
    ref, cur = _tables(fare_factor=1.3)
    report = detect_drift(ref, cur)
    assert isinstance(report, DriftReport)
    d = report.to_dict()
    assert isinstance(d["drift_detected"], bool) and d["drift_detected"] is True
    assert set(d["features"]) == set(ref.columns)
    for name, f in d["features"].items():
        assert {"method", "score", "threshold", "p_value", "drifted"} <= set(f), name
        assert "psi" in f["scores"], name  # alert rules use "PSI > 0.2 on any feature"
    assert d["features"]["fare"]["drifted"] is True and d["features"]["fare"]["reasons"] == ["distribution", "location"]
    assert {"drifted", "pairs", "method", "alpha", "threshold"} <= set(d["multivariate"])
    assert d["n_reference"] == d["n_current"] == 600
    assert d["settings"]["alpha"] == 0.01 and d["settings"]["correction"] == "holm"
    assert json.loads(report.to_json()) == json.loads(json.dumps(d))


def test_every_score_and_p_value_is_kept_even_below_threshold():
    ref, cur = _tables()
    f = detect_drift(ref, cur).features
    assert set(f["fare"].scores) >= {"psi", "jensen_shannon", "hellinger", "linf", "cramers_v", "chi_square", "ks",
                                     "wasserstein"}
    assert set(f["fare"].p_values) == {"chi_square", "ks", "location"}
    assert set(f["fare"].checks) == {"distribution", "location"}
    assert set(f["payment_type"].checks) == {"distribution", "unseen_categories"}
    assert set(f["company"].checks) == {"distribution", "unseen_categories", "missing_rate"}
    assert not any(x.drifted for x in f.values())


def test_json_is_strict_json_without_nan():
    ref, cur = _tables()
    ref["constant"], cur["constant"] = 1.0, 1.0  # constant: no correlation (NaN internally)
    text = detect_drift(ref, cur).to_json()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert "NaN" not in text and "Infinity" not in text


def test_same_result_from_dataframe_arrow_and_dict():
    ref, cur = _tables(fare_factor=1.2)
    a = detect_drift(ref, cur).to_dict()
    b = detect_drift(pa.Table.from_pandas(ref, preserve_index=False), pa.Table.from_pandas(cur, preserve_index=False))
    c = detect_drift({k: ref[k].to_numpy() for k in ref}, {k: cur[k].to_numpy() for k in cur})
    for other in (b.to_dict(), c.to_dict()):
        assert other["drift_detected"] == a["drift_detected"]
        for name in a["features"]:
            assert other["features"][name]["score"] == pytest.approx(a["features"][name]["score"])
            assert other["features"][name]["p_value"] == pytest.approx(a["features"][name]["p_value"])


def test_feature_config_overrides_method_and_threshold():
    ref, cur = _tables(fare_factor=1.1)
    report = detect_drift(ref, cur, feature_config={
        "fare": FeatureConfig(method="psi", threshold=0.2),
        "trip_miles": {"method": "wasserstein", "threshold": 0.5},
        "hour": FeatureConfig(kind="categorical"),
    })
    fare = report.features["fare"]
    assert (fare.method, fare.threshold) == ("psi", 0.2) and not fare.drifted
    assert report.features["trip_miles"].method == "wasserstein"
    assert report.features["trip_miles"].checks["distribution"].p_value == report.features["trip_miles"].p_values["ks"]
    assert report.features["hour"].kind == "categorical"
    assert report.settings["feature_config"]["fare"] == {"method": "psi", "threshold": 0.2, "kind": None}


def test_unknown_method_lists_available_names():
    with pytest.raises(ValueError, match=r"unknown drift method 'kl'; available: psi, jensen_shannon, .*, ks"):
        FeatureConfig(method="kl")
    ref, cur = _tables()
    with pytest.raises(ValueError, match=r"unknown drift method 'kl'; available: psi"):
        detect_drift(ref, cur, feature_config={"fare": {"method": "kl"}})
    with pytest.raises(ValueError, match=r"'ks' does not apply to categorical features; available for categorical: "):
        detect_drift(ref, cur, feature_config={"payment_type": FeatureConfig(method="ks")})


def test_exclude_is_reported():
    ref, cur = _tables()
    report = detect_drift(ref, cur, exclude=["company"])
    assert "company" not in report.features and report.excluded == ("company",)
    with pytest.raises(DriftInputError, match="'nope'"):
        detect_drift(ref, cur, exclude=["nope"])


def test_excluded_column_may_be_broken():
    ref, cur = _tables()
    ref["label"], cur["label"] = np.nan, "text"
    assert not detect_drift(ref, cur, exclude=["label"]).drift_detected


@pytest.mark.parametrize("change, pattern, column, side", [
    (lambda r, c: c.assign(fare=c["fare"].astype(str)), r"column 'fare' is numeric in the reference table but text in "
     r"the current table", "fare", None),
    (lambda r, c: c.assign(extra=1.0), r"column\(s\) \['extra'\] only in the current table", "extra", None),
    (lambda r, c: c.drop(columns=["hour"]), r"column\(s\) \['hour'\] only in the reference table", "hour", None),
    (lambda r, c: c.assign(company=None), r"column 'company' of the current table has only missing values", "company",
     "current"),
    (lambda r, c: c.assign(fare=np.where(np.arange(len(c)) == 3, np.inf, c["fare"])),
     r"column 'fare' of the current table holds 1 infinite value", "fare", "current"),
    (lambda r, c: c.iloc[:0], r"the current table has no rows", None, "current"),
])
def test_bad_inputs_raise_drift_input_error_naming_column_and_side(change, pattern, column, side):
    ref, cur = _tables()
    with pytest.raises(DriftInputError, match=pattern) as info:
        detect_drift(ref, change(ref, cur), all_missing="error")
    assert isinstance(info.value, ValueError)
    assert (info.value.column, info.value.side) == (column, side)


def test_all_null_reference_column_names_reference():
    ref, cur = _tables()
    ref["fare"] = np.nan
    with pytest.raises(DriftInputError, match="column 'fare' of the reference table has only missing values"):
        detect_drift(ref, cur, all_missing="error")


@pytest.mark.parametrize("kwargs, pattern", [
    ({"alpha": 0}, "alpha must be"), ({"alpha": 1.5}, "alpha must be"), ({"correction": "sidak"}, "unknown correction"),
    ({"n_bins": 1}, "n_bins"), ({"missing_threshold": -0.1}, "missing_threshold"),
    ({"feature_config": {"fare": {"threshold": float("nan")}}}, "threshold must be"),
    ({"feature_config": {"nope": FeatureConfig()}}, "'nope'"),
])
def test_bad_parameters(kwargs, pattern):
    ref, cur = _tables()
    with pytest.raises(ValueError, match=pattern):
        detect_drift(ref, cur, **kwargs)


def test_seeded_and_leaves_global_rng_alone():
    ref, cur = _tables(n=6000)  # above max_rows: the multivariate check samples rows
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    a = detect_drift(ref, cur, seed=1).to_dict()
    b = detect_drift(ref, cur, seed=1).to_dict()
    assert (np.random.get_state()[1] == state).all()
    assert a == b
    assert a["multivariate"]["n_reference"] == 5000


def test_missing_rate_drift_is_its_own_check():
    ref, cur = _tables(n=2000)
    cur.loc[cur.sample(frac=0.10, random_state=0).index, "fare"] = np.nan
    f = detect_drift(ref, cur).features["fare"]
    assert f.drifted and f.reasons == ("missing_rate",)
    assert f.method == "missing_rate_difference" and f.score == pytest.approx(0.10)
    assert f.details["missing_rate_current"] == pytest.approx(0.10)


def test_text_table_is_aligned_and_sorted_drifted_first():
    ref, cur = _tables(n=2000, fare_factor=1.3)
    text = detect_drift(ref, cur).format_table()
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["feature", "kind", "method", "score"]
    assert lines[2].startswith("fare ") and "DRIFT" in lines[2]
    assert lines[-1].startswith("DRIFT DETECTED: 2 of 5 features drifted")  # trip_miles follows fare here
    table = lines[:lines.index("")]
    start = lines[0].index("score")
    assert all(line[start - 2:start] == "  " and line[start] != " " for line in table[2:])


def test_multivariate_can_be_disabled_and_has_own_settings():
    ref, cur = _tables()
    report = detect_drift(ref, cur, multivariate=False)
    assert report.multivariate is None and report.to_dict()["multivariate"] is None
    mv = detect_drift(ref, cur, multivariate_alpha=0.001, multivariate_threshold=0.2).multivariate
    assert (mv.alpha, mv.threshold) == (0.001, 0.2)
    assert math.isfinite(mv.score)


def test_arrow_columns_are_read_from_buffers_with_offsets_and_nulls():
    import datetime

    from driftguard.components.drift.tables import read_table

    table = pa.table({
        "i": pa.array([1, None, 3, 4], pa.int32()),
        "u": pa.array([1, 2, None, 4], pa.uint8()),
        "f": pa.array([1.5, None, 2.5, 3.5], pa.float32()),
        "ts": pa.array([datetime.datetime(2020, 1, 1), None, datetime.datetime(2021, 1, 1), None]),
        "d": pa.array([datetime.date(2020, 1, 1), None, None, datetime.date(2020, 1, 3)]),
        "dic": pa.array(["a", "b", None, "a"]).dictionary_encode(),
        "b": pa.array([True, None, False, True]),
        "s": pa.array(["x", None, "y", "z"]),
    })
    sliced = pa.concat_tables([table, table]).slice(1, 6)  # two chunks, non-zero offset
    cols = read_table(sliced, "current")
    expected = pd.concat([table.to_pandas(), table.to_pandas()]).iloc[1:7]
    np.testing.assert_array_equal(cols["i"].values, expected["i"].to_numpy(dtype=float))
    np.testing.assert_array_equal(cols["u"].values, expected["u"].to_numpy(dtype=float))
    np.testing.assert_array_equal(cols["f"].values, expected["f"].to_numpy(dtype=float))
    assert cols["ts"].kind == "numeric"
    assert np.isnan(cols["ts"].values).tolist() == [True, False, True, False, True, False]
    assert cols["d"].values[2] - cols["d"].values[3] == pytest.approx(2.0)  # date32: days
    assert cols["dic"].values.tolist() == ["b", None, "a", "a", "b", None]
    assert cols["b"].values.tolist() == [None, "False", "True", "True", None, "False"]
    assert cols["s"].values.tolist() == [None, "y", "z", "x", None, "y"]


def test_a_feature_that_stopped_arriving_is_drift_by_default():
    rng = np.random.default_rng(3)
    ref = {"a": rng.normal(size=2000), "b": rng.choice(["x", "y"], 2000), "gone": [None] * 2000,
           "dropped": rng.normal(size=2000)}
    cur = {"a": rng.normal(size=2000), "b": [None] * 2000, "gone": [None] * 2000, "added": rng.normal(size=2000)}
    report = detect_drift(ref, cur)
    assert report.drift_detected and report.drifted_features == ["b", "dropped", "added"]
    assert report.features["b"].reasons == ("missing_rate",)
    assert report.features["b"].details["all_missing"] == "current" and "absent" not in report.features["b"].details
    assert report.features["dropped"].details["absent"] == "current"      # the column itself is gone
    assert report.features["added"].details["absent"] == "reference"      # a new column
    assert report.features["dropped"].score == 1.0
    assert report.excluded == ("gone",)
    assert not report.features["a"].drifted
    with pytest.raises(DriftInputError, match="'b' of the current table has only missing values"):
        detect_drift({k: v for k, v in ref.items() if k != "dropped"}, {k: v for k, v in cur.items() if k != "added"},
                     all_missing="error")
    with pytest.raises(DriftInputError, match="only in the reference table"):
        detect_drift(ref, cur, all_missing="error")
    with pytest.raises(DriftInputError, match="only in the reference table"):       # nothing shared: refused
        detect_drift({"x": [1.0, 2.0]}, {"y": [1.0, 2.0]})


def test_location_check_sees_the_distance_a_grid_feature_moved_which_bins_round_away(monkeypatch):
    """A score recorded in whole units (sd 3) moved by 0.45 units, 0.15 sd: every edge sits halfway between two
    units, so no value crosses one and the binned checks see nothing; the winsorized mean sees the distance.
    A shift of 0.05 sd on 100,000 rows is significant but under the location threshold: not reported."""
    from driftguard.components.drift import numeric
    rng = np.random.default_rng(3)
    ref = {"score": np.round(rng.normal(50, 3, 5000)), "hour": rng.integers(0, 24, 5000).astype(float)}
    cur = {"score": np.round(rng.normal(50, 3, 5000)) + 0.45, "hour": rng.integers(0, 24, 5000).astype(float)}
    f = detect_drift(ref, cur, multivariate=False).features["score"]
    assert f.reasons == ("location",) and not f.checks["distribution"].drifted
    assert f.checks["location"].score == pytest.approx(0.15, abs=0.03) and "+0.1" in f.checks["location"].direction
    assert f.checks["location"].threshold == 0.07 and f.details["winsorized_t_test"]["share"] == 0.1
    big_ref = {"score": np.round(rng.normal(50, 3, 100_000))}
    big_cur = {"score": np.round(rng.normal(50, 3, 100_000)) + 0.15}
    small = detect_drift(big_ref, big_cur, multivariate=False).features["score"].checks["location"]
    assert small.p_value_adjusted < 1e-10 and small.score < 0.07 and not small.drifted
    monkeypatch.setattr(numeric, "LOCATION_SHARE", 0)  # the rule before the location check: the shift is missed
    f = detect_drift(ref, cur, multivariate=False).features["score"]
    assert "location" not in f.checks and not f.drifted


def test_location_threshold_is_validated_and_used():
    ref, cur = _tables(fare_factor=1.3)
    with pytest.raises(ValueError, match="location_threshold"):
        detect_drift(ref, cur, location_threshold=-1)
    report = detect_drift(ref, cur, location_threshold=10.0, multivariate=False)
    assert report.features["fare"].reasons == ("distribution",)
    assert report.features["fare"].checks["location"].threshold == 10.0
