"""RetrainGate component: wiring only."""
import json
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec

from driftguard.components.retrain_gate import executor
from driftguard.components.retrain_gate.spec import RetrainDecision, RetrainGateSpec


class RetrainGate(base_component.BaseComponent):
    """Evaluates the alert rules on the span's reports and applies the retraining policy.

    Output: ``RetrainDecision`` (``decision.json`` with the decision, its reason, the training
    window and the alerts) with the int custom property ``retrain``. The span, and the spans a
    window may take, are those of ``examples`` (the check's ExampleGen), resolved when it runs. Alerts are *evaluated*
    here and *delivered* by the caller through the outbox, so no secret ever reaches TFX.
    """

    SPEC_CLASS = RetrainGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, examples: types.BaseChannel, drift_report: types.BaseChannel, registry_dir: str,
                 model_name: str, policy: Dict[str, Any], window_spans: int,
                 alerts_config: Optional[Dict[str, Any]] = None,
                 model_monitor: Optional[types.BaseChannel] = None, task: str = "binary"):
        super().__init__(spec=RetrainGateSpec(
            examples=examples, drift_report=drift_report, model_monitor=model_monitor, registry_dir=str(registry_dir),
            model_name=model_name, window_spans=int(window_spans), task=task,
            alerts_config_json=json.dumps(alerts_config, sort_keys=True),
            retrain_policy_json=json.dumps(policy, sort_keys=True),
            decision=types.Channel(type=RetrainDecision)))
