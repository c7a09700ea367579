"""Reports a person can open from disk: per-span pages and the trend dashboard of a runs folder.

``charts`` (inline SVG) and ``runs`` (reading a runs folder) are pure Python; ``build`` writes
the pages; ``cli`` holds ``driftguard report``. Nothing here imports TensorFlow.
"""


def build_reports(runs_dir):
    """See :func:`driftguard.components.reports.build.build_reports` (imported lazily: no import cycle with
    driftguard.components.drift_detector.html, which draws its charts with driftguard.components.reports.charts)."""
    from driftguard.components.reports.build import build_reports as _build

    return _build(runs_dir)
