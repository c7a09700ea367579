"""AnomalyGate component: wiring only."""
from typing import Optional

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
                 fail_on_severity: str = "ERROR", examples: Optional[types.BaseChannel] = None):
        super().__init__(spec=AnomalyGateSpec(
            anomalies=anomalies,
            schema=schema,
            fail_on_severity=fail_on_severity,
            examples=examples,
            validated_schema=types.Channel(type=standard_artifacts.Schema),
        ))
