"""A prepared reference (``prepare_reference``) gives exactly the reports of the raw table.

The data is the taxi trips of the repository (``data/taxi``), read as the monitor holds them
(``monitoring/windows.py``): float64 columns with NaN, text as object arrays of ``str``
with ``None``. Reports are compared whole (``to_dict()`` and ``to_json()``): every number
must be equal, not close.
"""
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import driftguard.components.drift.numeric as numeric
from driftguard.components.drift import (DriftInputError, FeatureConfig, PreparedReference, compare_numeric, detect_drift,
                              prepare_reference, rank_correlation_check, spearman)
from driftguard.components.drift._hashing import ValueIndex
from driftguard.components.drift.multivariate import _difference_p, _midrank_cdf, _sample_rows, _spearman_ranked
from driftguard.components.drift.numeric import NumericReference

DATA = Path(__file__).resolve().parents[2] / "data" / "taxi"
#: Not compared by the monitor: the label, its default drift.exclude, and a column with no value.
NOT_FEATURES = ["tips", "trip_start_timestamp", "trip_start_month", "pickup_census_tract"]


def _columns(frame: pd.DataFrame) -> dict:
    out = {}
    for name in frame.columns:
        col = frame[name]
        if col.dtype == object:
            out[name] = np.array([v if isinstance(v, str) else None for v in col], dtype=object)
        else:
            out[name] = col.to_numpy(dtype=float)
    return out


@pytest.fixture(scope="module")
def spans():
    def read(*numbers):
        frame = pd.concat([pd.read_csv(DATA / f"span-{s}" / "data.csv") for s in numbers], ignore_index=True)
        return frame.drop(columns=NOT_FEATURES)
    return {"reference": read(1, 2), "same": read(1, 2), "drifted": read(6)}


@pytest.fixture(scope="module")
def reference(spans):
    return _columns(spans["reference"])


def _window(frame: pd.DataFrame, n: int, seed: int) -> dict:
    rows = np.random.default_rng(seed).integers(0, len(frame), n)
    return _columns(frame.iloc[rows].reset_index(drop=True))


def _same_report(prepared, raw, current, **kwargs):
    if kwargs.get("seed", 0) is None:
        # the domain classifier's folds and trees are drawn afresh by each call: compare the rest, and the
        # classifier's sample sizes (the rows are all used: nothing else is random)
        a = detect_drift(prepared, current, explain=False, **kwargs)
        b = detect_drift(raw, current, explain=False, **kwargs)
        assert (a.classifier.n_reference, a.classifier.n_current) == (b.classifier.n_reference, b.classifier.n_current)
        da, db = a.to_dict(), b.to_dict()
        for d in (da, db):
            d.pop("classifier")
            d.pop("drift_detected")
        assert da == db
        assert [f.drifted for f in a.features.values()] == [f.drifted for f in b.features.values()]
        return a
    a = detect_drift(prepared, current, **kwargs)
    b = detect_drift(raw, current, **kwargs)
    assert a.to_dict() == b.to_dict()
    assert a.to_json() == b.to_json()  # the same keys in the same order too
    return a


@pytest.mark.parametrize("kwargs", [
    {},
    {"multivariate": False},
    {"all_missing": "compare"},
    {"n_bins": 7, "test_bins": 15, "min_category_share": 0.05, "correction": "bonferroni"},
    {"max_rows": 500, "seed": 3},  # both samples drawn: the reference (1,962 rows) too
    {"seed": None},  # windows of at most max_rows rows are used whole: nothing random
    {"max_rows": 500, "seed": None},  # a fresh reference sample at every call
    {"feature_config": {"fare": FeatureConfig(method="wasserstein"), "trip_seconds": {"method": "ks"},
                        "trip_miles": FeatureConfig(method="hellinger", threshold=0.01),
                        "pickup_community_area": FeatureConfig(kind="categorical")},
     "exclude": ["company"]},
])
def test_prepared_reference_gives_the_raw_report(spans, reference, kwargs):
    prepared = prepare_reference(reference)
    for n, source, seed in ((800, "same", 1), (7_000, "drifted", 2), (12_000, "same", 3), (20, "drifted", 4)):
        window = _window(spans[source], n, seed)
        max_rows = kwargs.get("max_rows", 5_000)
        if kwargs.get("seed", 0) is None and max(n, len(reference["fare"])) > max_rows:
            # drawn afresh by each call, so two calls differ: check the features and the sample sizes
            a, b = detect_drift(prepared, window, **kwargs), detect_drift(reference, window, **kwargs)
            assert a.to_dict()["features"] == b.to_dict()["features"]
            assert (a.multivariate.n_reference, a.multivariate.n_current) == \
                (min(max_rows, len(reference["fare"])), min(max_rows, n))
            continue
        report = _same_report(prepared, reference, window, **kwargs)
        assert report.n_current == n
        if n > 100:
            assert report.drift_detected == (source == "drifted")


def test_one_prepared_reference_serves_many_windows_and_parameters(spans, reference):
    """Caches are keyed by what they depend on: a call with other parameters leaves the next call exact."""
    prepared = prepare_reference(reference)
    settings = [{}, {"n_bins": 5, "test_bins": 8}, {"max_rows": 300, "seed": 11}, {"multivariate": False},
                {"feature_config": {"fare": {"kind": "categorical"}}}, {"min_category_share": 0.2}, {},
                {"max_rows": 300, "seed": 11}, {"max_rows": 300, "seed": 12}, {"n_bins": 5, "test_bins": 8}]
    for i, kwargs in enumerate(settings):
        window = _window(spans["same" if i % 3 else "drifted"], [1_000, 10_000, 6_000][i % 3], 100 + i)
        _same_report(prepared, reference, window, all_missing="compare", **kwargs)
    assert isinstance(prepared, PreparedReference) and prepared.n_rows == len(reference["fare"])


def test_fine_test_bins_are_read_at_each_call(spans, reference, monkeypatch):
    prepared = prepare_reference(reference)
    window = _window(spans["drifted"], 3_000, 5)
    _same_report(prepared, reference, window)
    monkeypatch.setattr(numeric, "FINE_TEST_BINS", 30)
    report = _same_report(prepared, reference, window)
    assert report.features["fare"].details["chi_square_tests"][1]["bins"] <= 30
    monkeypatch.setattr(numeric, "FINE_TEST_BINS", 0)
    assert len(_same_report(prepared, reference, window).features["fare"].details["chi_square_tests"]) == 1


def test_missing_values_unseen_categories_and_columns_without_values(spans, reference):
    prepared = prepare_reference(reference)
    window = _window(spans["same"], 5_000, 7)
    window["company"][:400] = "A brand new cab company"  # unseen in the reference
    window["fare"][::7] = np.nan
    window["payment_type"][::11] = None
    report = _same_report(prepared, reference, window)
    assert report.features["company"].details["unseen_categories"] == ["A brand new cab company"]
    assert report.features["fare"].checks["missing_rate"].drifted

    window["dropoff_census_tract"][:] = np.nan  # stopped arriving
    window["company"][:] = None
    report = _same_report(prepared, reference, window, all_missing="compare")
    assert report.features["dropoff_census_tract"].details["all_missing"] == "current"
    assert report.features["company"].details["all_missing"] == "current"
    assert "dropoff_census_tract" not in report.multivariate.columns

    ref_missing = dict(reference, fare=np.full(len(reference["fare"]), np.nan))  # a reference without any fare
    _same_report(prepare_reference(ref_missing), ref_missing, window, all_missing="compare")


def test_windows_are_read_as_the_monitor_and_as_dataframes(spans, reference):
    frame = spans["reference"]
    prepared = prepare_reference(frame)
    window = spans["drifted"].sample(2_000, replace=True, random_state=0).reset_index(drop=True)
    _same_report(prepared, frame, window)
    _same_report(prepared, frame, _columns(window))


def test_the_prepared_reference_keeps_its_own_copy(spans):
    frame = spans["reference"].copy()
    original = frame.copy()
    prepared = prepare_reference(frame)
    window = _window(spans["drifted"], 2_000, 9)
    detect_drift(prepared, window)  # fill the caches
    view = frame["fare"].to_numpy()  # numeric pandas columns are read as views of the frame
    assert np.shares_memory(view, frame["fare"].to_numpy())
    view *= 2.0  # the caller's changes must not reach the prepared reference
    frame.loc[0, "payment_type"] = "Changed"
    assert detect_drift(prepared, window).to_dict() == detect_drift(original, window).to_dict()


@pytest.mark.parametrize("change, pattern, column, side", [
    (lambda ref, cur: cur.pop("fare"), r"\['fare'\] only in the reference table", "fare", None),
    (lambda ref, cur: cur.update(extra=np.ones(len(cur["fare"]))), r"\['extra'\] only in the current table", "extra",
     None),
    (lambda ref, cur: cur.update(fare=np.full(len(cur["fare"]), np.nan)), "current table has only missing values",
     "fare", "current"),
    (lambda ref, cur: cur["fare"].__setitem__(3, np.inf), "current table holds 1 infinite", "fare", "current"),
    (lambda ref, cur: cur.update(payment_type=np.arange(len(cur["fare"])).astype(float)),
     "text in the reference table but numeric in the current", "payment_type", None),
])
def test_bad_input_gives_the_same_errors(spans, reference, change, pattern, column, side):
    ref = {k: v.copy() for k, v in reference.items()}
    cur = _window(spans["same"], 1_000, 4)
    change(ref, cur)
    prepared = prepare_reference(ref)
    errors = []
    for table in (prepared, ref):
        with pytest.raises(DriftInputError, match=pattern) as info:
            detect_drift(table, cur, all_missing="error")
        errors.append((str(info.value), info.value.column, info.value.side))
    assert errors[0] == errors[1] and errors[0][1:] == (column, side)
    with pytest.raises(DriftInputError, match="feature_config names column"):
        detect_drift(prepared, _window(spans["same"], 100, 4), feature_config={"nope": {}})


def test_a_bad_reference_fails_when_prepared():
    bad = {"fare": np.array([1.0, np.inf, 3.0])}
    with pytest.raises(DriftInputError, match="reference table holds 1 infinite") as info:
        prepare_reference(bad)
    assert (info.value.column, info.value.side) == ("fare", "reference")
    with pytest.raises(DriftInputError, match="reference table has no rows"):
        prepare_reference({"fare": np.array([])})


@pytest.mark.parametrize("max_rows, seed, n", [(5_000, 0, 800), (5_000, 0, 9_000), (300, 7, 9_000), (300, 7, 200)])
def test_rank_check_equals_spearman_pair_by_pair(spans, reference, max_rows, seed, n):
    """Each pair's rho and se are those of ``spearman`` on the same rows, bit for bit."""
    numeric_names = [k for k, v in reference.items() if v.dtype != object]
    ref = {k: reference[k] for k in numeric_names}
    window = _window(spans["drifted"], n, 12)
    cur = {k: window[k] for k in numeric_names}
    prepared = prepare_reference(reference)
    results = [rank_correlation_check(table, cur, numeric_names, max_rows=max_rows, seed=seed)
               for table in (ref, prepared, prepared)]
    assert results[0] == results[1] == results[2]
    assert rank_correlation_check(prepared, cur, max_rows=max_rows, seed=seed) == results[0]  # default: numeric

    rng = np.random.default_rng(seed)
    rows_ref = _sample_rows(len(ref["fare"]), max_rows, rng)
    rows_cur = _sample_rows(n, max_rows, rng)
    assert (results[0].n_reference, results[0].n_current) == (rows_ref.size, rows_cur.size)
    for pair in results[0].pairs:
        for data, rows, rho, count in ((ref, rows_ref, pair.rho_reference, pair.n_reference),
                                       (cur, rows_cur, pair.rho_current, pair.n_current)):
            x, y = (data[k][rows] for k in pair.features)
            both = ~np.isnan(x) & ~np.isnan(y)
            assert spearman(x[both], y[both]).rho == rho and both.sum() == count
            # the standard error enters through the p-value
            if data is cur:
                r_ref = spearman(*(ref[k][rows_ref][_complete(ref, rows_ref, pair)] for k in pair.features))
                r_cur = spearman(x[both], y[both])
                assert _difference_p(r_ref, r_cur) == pair.p_value


def _complete(data, rows, pair):
    a, b = (data[k][rows] for k in pair.features)
    return ~np.isnan(a) & ~np.isnan(b)


def test_rank_check_rejects_text_columns_of_a_prepared_reference(reference):
    prepared = prepare_reference(reference)
    with pytest.raises(ValueError, match="'company' is not a numeric column"):
        rank_correlation_check(prepared, {"company": reference["company"]}, ["company"])


def test_pair_engine_equals_spearman_on_ties_and_gaps():
    """Columns with heavy ties, constant stretches, missing values in different rows."""
    rng = np.random.default_rng(3)
    n = 2_000
    x = rng.integers(0, 5, n).astype(float)
    y = np.round(x + rng.normal(size=n), 1)
    z = rng.lognormal(size=n)
    y[rng.random(n) < 0.1] = np.nan
    z[rng.random(n) < 0.2] = np.nan
    data = {"x": x, "y": y, "z": z, "c": np.where(rng.random(n) < 0.5, 1.0, np.nan)}
    result = rank_correlation_check(data, data, max_rows=n)
    assert result.skipped == {"c": "constant in the reference sample"}
    for pair in result.pairs:
        u, v = (data[k] for k in pair.features)
        both = ~np.isnan(u) & ~np.isnan(v)
        direct = _spearman_ranked(_midrank_cdf(u[both]), _midrank_cdf(v[both]), int(both.sum()))
        assert (pair.rho_reference, pair.rho_current) == (direct.rho, direct.rho)
        assert pair.p_value == 1.0 and pair.delta == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_compiled_loops_equal_numpy_bit_for_bit(seed, monkeypatch):
    """The joint check's compiled loops (mid-ranks, own terms, pair terms) against numpy's
    passes over the rows: ties, gaps, a column of distinct values, few and many groups."""
    from driftguard.components.drift import multivariate as mv

    assert mv._kernels() is not None                # numba is in the lock: the loops are what runs
    rng = np.random.default_rng(seed)
    for n, groups in ((30, 3), (777, 40), (5_000, 5_000), (5_000, 12)):
        x = rng.integers(0, groups, n) + (rng.normal(size=n) if seed % 2 else 0.0)
        data = {"x": x, "y": np.round(0.4 * x + rng.normal(size=n), seed), "z": rng.lognormal(size=n)}
        data["z"][rng.random(n) < 0.2] = np.nan
        cur = {k: v[::-1].copy() for k, v in data.items()}
        cur["y"] = rng.permutation(cur["y"])
        results = []
        for compiled in (True, False):
            monkeypatch.setattr(mv, "USE_COMPILED", compiled)
            results.append(rank_correlation_check(data, cur, max_rows=n, seed=seed))
            ranked = mv.RankedSample(data.__getitem__, "current")
            pair = (ranked._ranked("x", None, None), ranked._ranked("y", None, None))
            results.append([(r.u.tobytes(), r.b, None if r.own is None else r.own.tobytes()) for r in pair])
            results.append(mv._pair(*pair, n))
        assert results[:3] == results[3:], (n, groups)
        assert results[0].pairs                                     # something was compared


@pytest.mark.parametrize("make", [
    lambda rng, n: np.round(rng.lognormal(2, 0.6, n), 2),
    lambda rng, n: rng.normal(size=n),  # continuous: every current value new
    lambda rng, n: rng.integers(0, 24, n).astype(float),
    lambda rng, n: rng.choice([-0.0, 0.0, 1.5], n),  # negative zeros: numpy's own quantiles
    lambda rng, n: np.full(n, 4.0),
    lambda rng, n: rng.integers(0, 30_000, n) * 60.0,  # many distinct values, hashed pooled grid from 65,536 rows
])
@pytest.mark.parametrize("sizes", [(50, 3_000), (3_000, 50), (40_000, 90_000), (70_000, 2_000)])
def test_numeric_reference_equals_compare_numeric(make, sizes):
    rng = np.random.default_rng(sizes[1])
    x = make(rng, sizes[0])
    reference = NumericReference(x)
    for bins in ((10, 20, None), (7, 7, None), (10, 20, 0), (4, 9, 13)):
        y = make(rng, sizes[1]) * (1.0 if bins[0] != 7 else 1.05)
        comparison, located = reference.compare(y, *bins)
        expected = compare_numeric(x, y, *bins)
        assert (comparison.scores, comparison.p_values, comparison.details) == \
            (expected.scores, expected.p_values, expected.details)
        if located is not None:  # each current value's index among the pooled distinct values
            positions, n_distinct = located
            pooled = np.unique(np.concatenate([x, y]))
            assert n_distinct == pooled.size and np.array_equal(pooled[positions], y)


def test_value_index_finds_what_a_binary_search_finds():
    rng = np.random.default_rng(8)
    for size in (1, 7, 900, 20_000):
        distinct = np.unique(np.round(rng.lognormal(2, 1, size), 2))
        values = np.round(rng.lognormal(2, 1, 5_000), 2)  # about half of them absent
        at = np.minimum(np.searchsorted(distinct, values), distinct.size - 1)
        assert np.array_equal(ValueIndex(distinct).positions(values), np.where(distinct[at] == values, at, -1))
    with pytest.raises(ValueError, match="at most 65536 values"):
        ValueIndex(np.arange(70_000.0))


def test_numeric_reference_keeps_edges_per_binning():
    rng = np.random.default_rng(0)
    reference = NumericReference(np.round(rng.lognormal(2, 0.6, 1_000), 1))
    a = reference.bins(10)
    b = reference.bins(50, 20)
    assert reference.bins(10) is a and reference.bins(50, 20) is b and not np.array_equal(a[0], b[0])
    assert a[1].sum() == b[1].sum() == 1_000


def test_prepared_reference_repr_and_numeric_columns(reference):
    prepared = prepare_reference(reference)
    assert repr(prepared) == f"PreparedReference(14 columns, {len(reference['fare'])} rows)"
    assert "company" not in prepared.numeric_columns() and "fare" in prepared.numeric_columns()
    assert math.isfinite(json.loads(detect_drift(prepared, reference).to_json())["features"]["fare"]["score"])
