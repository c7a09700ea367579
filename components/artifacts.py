"""Small helpers shared by driftguard's TFX components."""
from __future__ import annotations

import os
from typing import Dict, Optional


def artifact_span(artifact, span_by_node: Optional[Dict[str, int]] = None) -> Optional[int]:
    """The span an artifact belongs to.

    The pipeline passes ``span_by_node`` ({node id: span}) for its per-span nodes, and TFX
    writes outputs under ``<pipeline_root>/<node_id>/<key>/<execution>``: that mapping comes
    first, because calendar spans reach ExampleGen as literal patterns (span 0 in its own
    record). Otherwise: ExampleGen records the span as a *custom*
    property, while StatisticsGen and ExampleValidator copy the (unset, 0) *property* onward.
    """
    parts = os.path.normpath(artifact.uri).split(os.sep)
    for node_id, span in (span_by_node or {}).items():
        if node_id in parts:
            return int(span)
    if artifact.has_custom_property("span"):
        return int(artifact.get_int_custom_property("span"))
    if getattr(artifact, "span", 0):
        return int(artifact.span)
    return None
