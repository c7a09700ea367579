"""Alerting: rules turn a span's drift report into alert records, an outbox stores them,
sinks deliver them (JSON lines, webhook, Slack, Alertmanager, email).

Pure Python (standard library + click for the CLI): importing this package never imports
TensorFlow, TFX or Beam. See README.md in this folder.
"""
from driftguard.components.alerts.alert import Alert, SEVERITIES
from driftguard.components.alerts.config import AlertsConfig, AlertsConfigError, IncidentsConfig, parse_alerts_config
from driftguard.components.alerts.incidents import IncidentTracker
from driftguard.components.alerts.outbox import DeliveryResult, Outbox, OutboxError, outbox_path, send_alerts
from driftguard.components.alerts.rules import evaluate
from driftguard.components.alerts.sinks import DeliveryError, build_sinks

__all__ = ["Alert", "SEVERITIES", "AlertsConfig", "AlertsConfigError", "IncidentsConfig", "IncidentTracker",
           "parse_alerts_config",
           "DeliveryResult", "Outbox", "OutboxError", "outbox_path", "send_alerts", "evaluate", "DeliveryError",
           "build_sinks"]
