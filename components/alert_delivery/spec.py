"""Keys, artifact type and spec of AlertDelivery, imported by both the component and the executor."""
from tfx import types
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.types.system_artifacts import Metrics

from driftguard.components.retrain_gate.spec import RetrainDecision

DECISION_KEY = "decision"               # the RetrainGate's output (decision.json with its alerts)
DELIVERY_KEY = "delivery"
ALERTS_CONFIG_KEY = "alerts_config_json"   # the config's alerts section: env var NAMES, never secrets
OUTBOX_DIR_KEY = "outbox_dir"           # the runs folder: outbox at <outbox_dir>/alerts/outbox.sqlite

DELIVERY_JSON = "delivery.json"

# Int custom properties of the delivery artifact: this span's (alert, sink) rows in the outbox
# by state after the pass, and what the pass itself delivered (older due rows included).
DELIVERED = "delivered"
PENDING = "pending"
FAILED = "failed"
DELIVERED_NOW = "delivered_now"
N_ALERTS = "n_alerts"


class AlertDeliveryReport(types.Artifact):
    """What one delivery pass did with a span's alerts (delivery.json)."""

    TYPE_NAME = "DriftguardAlertDelivery"
    TYPE_ANNOTATION = Metrics


class AlertDeliverySpec(types.ComponentSpec):
    PARAMETERS = {
        ALERTS_CONFIG_KEY: ExecutionParameter(type=str),
        OUTBOX_DIR_KEY: ExecutionParameter(type=str),
    }
    INPUTS = {DECISION_KEY: ChannelParameter(type=RetrainDecision)}
    OUTPUTS = {DELIVERY_KEY: ChannelParameter(type=AlertDeliveryReport)}
