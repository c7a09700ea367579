"""Fixtures for the drift-statistics tests: the Chicago taxi sample shipped with TFX."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

def _taxi_csv() -> Path:
    spec = importlib.util.find_spec("tfx")  # locate the package without importing TensorFlow
    if spec is None or not spec.submodule_search_locations:
        return Path("/nonexistent")
    return Path(list(spec.submodule_search_locations)[0]) / "examples/chicago_taxi_pipeline/data/simple/data.csv"


@pytest.fixture(scope="session")
def taxi():
    """The 15,002 taxi trips as a DataFrame (skips when TFX's sample data is absent)."""
    path = _taxi_csv()
    if not path.exists():
        pytest.skip("Chicago taxi sample data (tfx/examples) not installed")
    import pandas as pd

    return pd.read_csv(path)


@pytest.fixture(scope="session")
def taxi_pair(taxi):
    """``taxi_pair(n, seed)``: two samples of one distribution, n rows each.

    Disjoint random subsets up to 7,500 rows, independent bootstrap samples above.
    """
    def draw(n: int, seed: int):
        rng = np.random.default_rng(seed)
        if 2 * n <= len(taxi):
            rows = rng.permutation(len(taxi))
            ref, cur = taxi.iloc[rows[:n]], taxi.iloc[rows[n:2 * n]]
        else:
            ref, cur = taxi.iloc[rng.integers(0, len(taxi), n)], taxi.iloc[rng.integers(0, len(taxi), n)]
        return ref.reset_index(drop=True), cur.reset_index(drop=True), rng

    return draw
