"""Bin labels of the drift charts (components/reports/charts.py)."""
from driftguard.components.reports.charts import bin_labels


def test_neighbouring_edges_of_close_values_get_distinct_labels():
    # coordinates a hundredth of a degree apart read "41.9 - 41.9" at three significant digits
    labels = bin_labels({"bin_edges": [41.8801, 41.8912, 41.9004, 41.9201], "reference_counts": [1] * 5})
    assert labels == ["≤ 41.88", "41.88 – 41.89", "41.89 – 41.9", "41.9 – 41.92", "> 41.92"]
    assert len(set(labels)) == len(labels)


def test_well_separated_edges_keep_short_labels():
    assert bin_labels({"bin_edges": [1.5, 7.25, 300.0], "reference_counts": [1] * 4}) == \
        ["≤ 1.5", "1.5 – 7.25", "7.25 – 300", "> 300"]
    assert bin_labels({"bins": ["Cash", "Credit Card"], "reference_counts": [1, 2]}) == ["Cash", "Credit Card"]
