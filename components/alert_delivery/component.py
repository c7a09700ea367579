"""AlertDelivery component: wiring only."""
import json
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec

from driftguard.components.alert_delivery import executor
from driftguard.components.alert_delivery.spec import AlertDeliveryReport, AlertDeliverySpec


class AlertDelivery(base_component.BaseComponent):
    """Queues the alerts of a RetrainGate decision in the outbox and delivers the due rows.

    ``alerts_config`` is the config's ``alerts`` section (the same the RetrainGate gets; None:
    the defaults); its sinks name the environment variables holding their secrets, which the
    executor reads at send time, so no secret reaches the pipeline definition or MLMD.
    ``outbox_dir`` is the project's runs folder: the outbox is ``<outbox_dir>/alerts/outbox.sqlite``
    and relative JSON-lines paths resolve against it. Output: a ``DriftguardAlertDelivery``
    artifact (``delivery.json``) with the int custom properties ``delivered``, ``pending``,
    ``failed`` (this span's rows by state) and ``delivered_now``.
    """

    SPEC_CLASS = AlertDeliverySpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, decision: types.BaseChannel, outbox_dir: str,
                 alerts_config: Optional[Dict[str, Any]] = None):
        if not str(outbox_dir):
            raise ValueError("AlertDelivery needs outbox_dir: the project's runs folder (the outbox is "
                             "<outbox_dir>/alerts/outbox.sqlite)")
        super().__init__(spec=AlertDeliverySpec(
            decision=decision, alerts_config_json=json.dumps(alerts_config, sort_keys=True),
            outbox_dir=str(outbox_dir), delivery=types.Channel(type=AlertDeliveryReport)))
