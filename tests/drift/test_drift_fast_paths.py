"""The linear-time paths for large tables give bit-for-bit the results of the sort/Counter paths."""
from collections import Counter

import numpy as np
import pytest

import driftguard.components.drift.binning as binning
import driftguard.components.drift.numeric as numeric
import driftguard.components.drift.tables as tables
from driftguard.components.drift import category_counts, detect_drift, quantile_edges
from driftguard.components.drift._hashing import HashTable, distinct_objects
from driftguard.components.drift.binning import quantile_edges_from_counts

TAXI_EXCLUDE = ["tips", "pickup_census_tract"]


def _sorted_grid(x, y):
    values, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
    return values, np.bincount(inverse[:x.size], minlength=values.size), np.bincount(inverse[x.size:],
                                                                                      minlength=values.size)


@pytest.mark.parametrize("make", [
    lambda rng, n: rng.integers(0, 50, n).astype(float),
    lambda rng, n: np.round(rng.lognormal(2, 1, n), 2),
    lambda rng, n: rng.choice([-3.5, 0.0, 1e300, -1e-300, 7.25], n),
    lambda rng, n: rng.integers(0, 30_000, n) * 60.0,
])
def test_hashed_grid_equals_numpy_unique(make):
    rng = np.random.default_rng(3)
    x, y = make(rng, 90_000), make(rng, 70_000)
    grid = numeric._hashed_grid(x, y)
    assert grid is not None and grid.hashed
    for got, want in zip(grid[:3], _sorted_grid(x, y)):
        assert np.array_equal(got, want) and got.dtype.kind == want.dtype.kind


def test_hashed_grid_declines_continuous_data_and_mixed_zeros():
    rng = np.random.default_rng(4)
    assert numeric._hashed_grid(rng.normal(size=80_000), rng.normal(size=80_000)) is None
    zeros = rng.choice([-0.0, 0.0, 1.0], 80_000)
    assert numeric._hashed_grid(zeros, zeros.copy()) is None  # numpy.unique merges -0.0 and 0.0
    grid = numeric._Grid.build(zeros, zeros.copy())  # ... so the sort answers
    assert not grid.hashed and grid.values.size == 2


def test_hash_table_gives_up_when_over_half_full():
    table = HashTable(10)
    assert table.insert(np.arange(2000, dtype=np.uint64)) is None


@pytest.mark.parametrize("n_bins", [2, 10, 20])
def test_quantile_edges_from_counts_equal_quantile_edges(n_bins):
    rng = np.random.default_rng(n_bins)
    for values in (rng.integers(0, 7, 1001).astype(float), np.round(rng.lognormal(1, 1.5, 5000), 1),
                   np.r_[np.zeros(700), rng.exponential(size=300)], np.array([4.0, 4.0])):
        distinct, counts = np.unique(values, return_counts=True)
        assert np.array_equal(quantile_edges_from_counts(distinct, counts, n_bins), quantile_edges(values, n_bins))


def test_category_counts_fast_path_equals_counter():
    rng = np.random.default_rng(5)
    words = ["Cash", "Credit Card", "Dispute", "No Charge"]
    # equal strings held by distinct objects must be merged by value, as Counter does
    labels = np.array([((words[i] + ".")[:-1] if rng.random() < 0.001 else words[i])
                       for i in rng.integers(0, len(words), 80_000)], dtype=object)
    assert len({id(v) for v in labels}) > 2 * len(words)
    assert binning._count_strings(labels) is not None
    counter = Counter(labels.tolist())
    assert category_counts(labels) == {k: counter[k] for k in sorted(counter)}
    mixed = labels.copy()
    mixed[7] = 1  # not all str: Counter's own rules
    assert binning._count_strings(mixed) is None
    assert category_counts(mixed)["1"] == 1


def test_distinct_objects_round_trip():
    a, b = "x", "y"
    items = np.array([a, b, None, a, float("nan")] * 5000, dtype=object)
    objects, codes = distinct_objects(items)
    assert len(objects) == 4 and all(o is v for o, v in zip(objects[codes].tolist(), items.tolist()))


def test_large_taxi_report_is_identical_on_fast_and_slow_paths(taxi, monkeypatch):
    rng = np.random.default_rng(8)
    ref = taxi.iloc[rng.integers(0, len(taxi), 70_000)].reset_index(drop=True)
    cur = taxi.iloc[rng.integers(0, len(taxi), 70_000)].reset_index(drop=True)
    cur["fare"] = cur["fare"] * 1.10
    cur.loc[rng.choice(len(cur), 5000, replace=False), "company"] = None
    fast = detect_drift(ref, cur, exclude=TAXI_EXCLUDE).to_json()
    for module, name in ((numeric, "_HASH_MIN_ROWS"), (tables, "_FAST_MIN_ROWS"), (binning, "_FAST_MIN_ROWS")):
        monkeypatch.setattr(module, name, 10 ** 12)
    slow = detect_drift(ref, cur, exclude=TAXI_EXCLUDE).to_json()
    assert fast == slow
    assert '"fare"' in fast and detect_drift(ref, cur, exclude=TAXI_EXCLUDE).features["fare"].drifted
