"""The taxi label from raw columns, without TensorFlow (the PredictionMonitor's realized accuracy).

Must agree with ``driftguard.pipeline.taxi_model.preprocessing_fn``: big_tipper = tips > 0.2 * fare.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from driftguard.components.examples_io import column_floats

BIG_TIP_SHARE = 0.2  # driftguard.pipeline.taxi_model imports it from here


def labels(table) -> Optional[np.ndarray]:
    """0/1 per row as float (NaN when the row has no tip recorded); None when labels have not arrived."""
    if "tips" not in table.column_names:
        return None
    tips = column_floats(table.column("tips"))
    if np.all(np.isnan(tips)):
        return None
    fare = column_floats(table.column("fare")) if "fare" in table.column_names else np.zeros(len(tips))
    fare = np.nan_to_num(fare, nan=0.0)
    out = (tips > BIG_TIP_SHARE * fare).astype(float)
    out[np.isnan(tips)] = np.nan
    return out
