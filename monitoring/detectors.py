"""The monitor's false-alarm budget and its streaming detectors, designed on a model version's
baseline: the budget (``monitor.max_false_alerts_per_100k``) is split over every window test and
every detector (:func:`driftguard.components.drift.streaming.budget_split`); a CUSUM detector
runs on the confidence of every prediction (classifiers), on the error of every joined label,
and on each numeric feature named in ``monitor.stream_features``."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Tuple

import numpy as np

from driftguard.monitoring.baseline import Baseline
from driftguard.monitoring.errors import MonitorError

log = logging.getLogger(__name__)


def budget(settings, baseline: Baseline, *, labels: bool, step_records: int):
    """The budget's split for ``baseline`` (``labels``: delayed labels are joined)."""
    from driftguard.components.drift.streaming import budget_split

    n_tests = 2 + int(settings.multivariate)                            # features (+ joint), outputs
    n_tests += int(bool(baseline.estimated_reference))                  # estimated performance
    n_tests += int(labels)                                              # realized performance
    n_detectors = int(baseline.confidence.size > 0)                     # confidence (classifiers)
    n_detectors += int(labels and baseline.reference_errors is not None)
    n_detectors += len([f for f in settings.stream_features if f in baseline.features])
    return budget_split(settings.max_false_alerts_per_100k, n_window_tests=n_tests,
                        window_step=step_records, n_stream_detectors=n_detectors)


def build_detectors(settings, baseline: Baseline, *, labels: bool, step_records: int
                    ) -> Tuple[Dict[str, Any], Dict[str, str], Dict[str, Any]]:
    """(detectors by stream, why a stream has none, the budget as the metrics show it)."""
    from driftguard.components.drift.streaming import Cusum

    split = budget(settings, baseline, labels=labels, step_records=step_records)
    streams: List[Tuple[str, np.ndarray, str]] = []
    if baseline.confidence.size:
        streams.append(("confidence", baseline.confidence, "mean"))
    if labels and baseline.reference_errors is not None:
        streams.append(("error", baseline.reference_errors, "mean"))
    for name in settings.stream_features:
        if name not in baseline.features:
            raise MonitorError(f"monitor.stream_features names {name!r}, which is not a compared feature of "
                               f"model version {baseline.version} (compared: {', '.join(baseline.features)})")
        if baseline.kinds[name] == "string":
            raise MonitorError(f"monitor.stream_features: {name!r} is categorical; streaming detectors take "
                               "numeric features (its drift is tested in every window)")
        values = baseline.reference[name]
        streams.append((name, values[np.isfinite(values)], "rank"))
    detectors: Dict[str, Any] = {}
    off: Dict[str, str] = {}
    for name, values, transform in streams:
        try:
            detectors[name] = Cusum.from_reference(name, values, arl0_records=split.arl0_records,
                                                   block=settings.detector_block, transform=transform)
        except ValueError as e:
            log.warning("no streaming detector on %s: %s", name, e)
            off[name] = str(e)
    info = {"alpha": split.alpha_per_window_test, "arl0_records": split.arl0_records,
            "max_false_per_100k": split.max_false_per_100k, "window_tests": split.n_window_tests,
            "detectors": split.n_stream_detectors}
    return detectors, off, info
