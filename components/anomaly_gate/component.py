"""AnomalyGate component: wiring only."""
import json
from typing import Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts

from driftguard.components.anomaly_gate import executor
from driftguard.components.anomaly_gate.spec import AnomalyGateSpec


class AnomalyGate(base_component.BaseComponent):
    """Fails the run, naming span, split, feature and anomaly, when validation found errors."""

    SPEC_CLASS = AnomalyGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, anomalies: types.BaseChannel, schema: types.BaseChannel,
                 fail_on_severity: str = "ERROR",
                 span_by_node: Optional[Dict[str, int]] = None,
                 span_labels: Optional[Dict[int, str]] = None):
        super().__init__(spec=AnomalyGateSpec(
            anomalies=anomalies,
            schema=schema,
            fail_on_severity=fail_on_severity,
            span_by_node_json=json.dumps(span_by_node or {}, sort_keys=True),
            span_labels_json=json.dumps({str(k): v for k, v in (span_labels or {}).items()}, sort_keys=True),
            validated_schema=types.Channel(type=standard_artifacts.Schema),
        ))
