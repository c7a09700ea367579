"""DriftDetector component: wiring only."""
import json
from typing import Any, Dict, Optional, Sequence

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec

from driftguard.components.drift_detector import executor
from driftguard.components.drift_detector.spec import DriftDetectorSpec, DriftReport


class DriftDetector(base_beam_component.BaseBeamComponent):
    """Compares a span's examples with the profile stored next to the serving model version.

    The baseline is found on disk (``<registry_dir>/<newest version>/profile/``), the same way on
    every orchestrator. The span is the one its ExampleGen read (``span`` on the Examples
    artifact), resolved when the pipeline runs. ``reference``: ``drift.reference``'s strategy and
    the data layout (another span than the training window is read from the data when the check
    runs: ``reference.py``); ``slices``: ``drift.slices`` (drift per slice, ``components/drift/slices.py``).
    Before any push it records "no baseline" explicitly. Output: a
    ``DriftguardDriftReport`` artifact (``report.json`` + ``report.html``) with the int custom
    property ``drift_detected`` for ``tfx.dsl.Cond``.
    """

    SPEC_CLASS = DriftDetectorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, registry_dir: str,
                 anomalies: Optional[types.BaseChannel] = None, alpha: float = 0.01,
                 max_rows: int = 100_000, exclude: Sequence[str] = (), include: Sequence[str] = (),
                 feature_config: Optional[Dict[str, Dict[str, Any]]] = None,
                 reference: Optional[Dict[str, Any]] = None, slices: Optional[Dict[str, Any]] = None):
        super().__init__(spec=DriftDetectorSpec(
            examples=examples, anomalies=anomalies, registry_dir=str(registry_dir), alpha=float(alpha),
            max_rows=int(max_rows), exclude_json=json.dumps(list(exclude)), include_json=json.dumps(list(include)),
            feature_config_json=json.dumps(feature_config or {}, sort_keys=True),
            reference_json=json.dumps(reference or {}, sort_keys=True),
            slices_json=json.dumps(slices or {}, sort_keys=True),
            drift_report=types.Channel(type=DriftReport)))
