"""A RetrainGate decision's alerts -> the outbox -> the sinks; a summary of what happened.

No TFX, TensorFlow or Beam import: the executor is a thin shell over :func:`deliver`, and
``driftguard.components.alerts`` does the work (``send_alerts``: enqueue once per
``(dedup_key, sink)``, then deliver every due pending row).

Failure semantics are those of ``driftguard run`` / ``check``: a sink that fails leaves its
rows pending in the outbox (retried by the next delivery or ``driftguard alerts deliver``, with
backoff) and is reported, not raised; an outbox that cannot be written raises
:class:`~driftguard.components.alerts.OutboxError`, since the alerts would otherwise be lost.
"""
from __future__ import annotations

import logging
import pathlib
from typing import Any, Dict, Mapping, Optional, Union

from driftguard.components.alerts import Alert, parse_alerts_config, send_alerts
from driftguard.components.alerts.config import AlertsConfig
from driftguard.components.alerts.outbox import STATES, Outbox, outbox_path

log = logging.getLogger(__name__)


def delivery_settings(raw: Optional[Mapping[str, Any]]) -> AlertsConfig:
    """The sinks and delivery settings of a config's ``alerts`` section (None: the defaults).

    The rules are not read here (the RetrainGate evaluated them with the task's metrics), so
    they are left out rather than validated against a task this component does not know.
    """
    data = {k: v for k, v in (raw or {}).items() if k != "rules"}
    return parse_alerts_config(data, "alerts")


def deliver(decision: Mapping[str, Any], config: AlertsConfig,
            outbox_dir: Union[str, pathlib.Path]) -> Dict[str, Any]:
    """Queue ``decision["alerts"]`` (``Alert.to_dict()`` records) for every sink whose
    ``min_severity`` they meet, deliver every due row, and summarise.

    Returns ``{"span", "span_label", "model", "alerts", "outbox", "states", "sinks", "pass",
    "errors"}``: ``states`` counts this decision's outbox rows by state (``pending``,
    ``delivered``, ``failed``) after the pass, ``sinks`` the same per sink; ``pass`` is what this
    delivery pass did over the whole outbox (``delivered``, ``failed`` attempts, ``gave_up``,
    ``deferred``, ``outbox_pending``); ``errors`` are the sinks' secret-free messages.

    A decision without alerts still delivers the outbox's due rows when an outbox exists (so
    each scheduled check retries what an earlier one left pending), and creates none otherwise.
    """
    alerts = [Alert.from_dict(a) for a in decision.get("alerts") or []]
    path = outbox_path(outbox_dir)
    summary: Dict[str, Any] = {
        "span": decision.get("span"), "span_label": decision.get("span_label"), "model": decision.get("model"),
        "alerts": len(alerts), "outbox": str(path),
        "states": dict.fromkeys(STATES, 0),
        "sinks": {s.name: dict.fromkeys(STATES, 0) for s in config.sinks},
        "pass": {"delivered": 0, "failed": 0, "gave_up": 0, "deferred": 0, "outbox_pending": 0},
        "errors": []}
    if not alerts and not path.exists():
        return summary
    result = send_alerts(config, alerts, outbox_dir)
    summary["pass"] = {"delivered": result.delivered, "failed": result.failed, "gave_up": result.gave_up,
                       "deferred": result.deferred, "outbox_pending": result.pending}
    summary["errors"] = [{"dedup_key": key, "sink": sink, "error": message} for key, sink, message in result.errors]
    keys = {a.dedup_key for a in alerts}
    for row in Outbox(path).rows():
        if row["dedup_key"] in keys:
            summary["states"][row["state"]] += 1
            summary["sinks"].setdefault(row["sink"], dict.fromkeys(STATES, 0))[row["state"]] += 1
    return summary


def headline(summary: Mapping[str, Any]) -> str:
    """One line: ``span 8: 2 alert(s), 3 deliveries: 3 delivered, 0 pending, 0 failed; 3 sent in this pass``."""
    s = summary["states"]
    text = (f"span {summary.get('span_label') or summary.get('span')}: {summary['alerts']} alert(s), "
            f"{sum(s.values())} deliveries: {s['delivered']} delivered, {s['pending']} pending, {s['failed']} failed; "
            f"{summary['pass']['delivered']} sent in this pass")
    if s["pending"]:
        text += " (pending rows are retried by the next delivery or `driftguard alerts deliver`)"
    return text
