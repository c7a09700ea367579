"""RetrainGate executor: reports -> alerts (driftguard.components.alerts.rules) -> policy.decide -> decision.json."""
from __future__ import annotations

import json
import pathlib

from tfx.dsl.components.base import base_executor
from tfx.types import artifact_utils

from driftguard.components import artifact_dirs
from driftguard.components.registry_pusher import remote
from driftguard.components.alerts.config import parse_alerts_config
from driftguard.components.alerts.rules import evaluate
from driftguard.components.artifacts import example_spans
from driftguard.components.registry_pusher.labels import champion_version
from driftguard.components.registry_pusher.registry import read_profile
from driftguard.components.retrain_gate import spec
from driftguard.components.retrain_gate.policy import decide, impact_evidence


def _read_json(artifacts, name: str):
    if not artifacts:
        return None
    return json.loads(artifact_dirs.read_text(artifact_utils.get_single_uri(artifacts), name))


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        # outputs on object storage are written locally, then copied (artifact_dirs)
        with artifact_dirs.written_locally(output_dict[spec.DECISION_KEY]):
            self._do(input_dict, output_dict, exec_properties)

    def _do(self, input_dict, output_dict, exec_properties) -> None:
        out = artifact_utils.get_single_instance(output_dict[spec.DECISION_KEY])
        read = example_spans(input_dict[spec.EXAMPLES_KEY])     # resolved when the ExampleGen ran
        span = read.span
        model = exec_properties[spec.MODEL_NAME_KEY]
        registry = pathlib.Path(exec_properties[spec.REGISTRY_DIR_KEY])
        remote.refresh(registry)      # the mirror of an s3:// registry: up to date first
        policy = json.loads(exec_properties[spec.POLICY_KEY])
        report = _read_json(input_dict.get(spec.DRIFT_REPORT_KEY), "report.json")
        monitor = _read_json(input_dict.get(spec.MONITOR_KEY), "monitor.json")
        task = exec_properties.get(spec.TASK_KEY) or "binary"
        span_label = read.label(span)
        alerts_config = parse_alerts_config(json.loads(exec_properties[spec.ALERTS_CONFIG_KEY]), task=task)
        alerts = evaluate(alerts_config, model=model, span=span, drift_report=report, monitor=monitor,
                          span_label=span_label)
        # the serving version: the champion label's, else the newest (labels.py); its spans are
        # what the policy compares with. Under a rollout the challenger's spans are not considered.
        serving_version = champion_version(registry) if registry.is_dir() else None
        serving_spans = read_profile(registry, serving_version).get("spans") if serving_version is not None else None
        # the same rule as AnomalyGate's, which would stop a training on these spans
        from driftguard.components.anomaly_gate.executor import blocking as blocking_anomalies

        blocking = blocking_anomalies((report or {}).get("anomalies", []), policy.get("fail_on_severity", "ERROR"))
        decision = decide(policy["policy"], span=span, serving_spans=serving_spans, blocking_anomalies=len(blocking),
                          blocked_spans=[int(s) for s in policy.get("blocked_spans", [])],
                          alerts=[a.to_dict() for a in alerts],
                          window_spans=int(exec_properties[spec.WINDOW_SPANS_KEY]),
                          every_spans=int(policy.get("every_spans", 4)),
                          trigger_severity=policy.get("trigger_severity", "critical"),
                          min_spans_between=int(policy.get("min_spans_between", 2)),
                          available=sorted(set(read.available) | {span}),
                          labels={str(k): v for k, v in read.labels.items()},
                          impact=impact_evidence(report, monitor, policy.get("impact_metric") or
                                                 ((monitor or {}).get("performance") or {}).get("metric") or ""),
                          impact_threshold=float(policy.get("impact_threshold", 0.02)),
                          impact_confidence=float(policy.get("impact_confidence", 0.95)))
        payload = {"span": span, "span_label": span_label, "model": model, "serving_version": serving_version,
                   "serving_spans": serving_spans, "decision": decision.to_dict(),
                   "alerts": [a.to_dict() for a in alerts]}
        path = pathlib.Path(out.uri)
        path.mkdir(parents=True, exist_ok=True)
        (path / spec.DECISION_JSON).write_text(json.dumps(payload, indent=1, sort_keys=True))
        out.set_int_custom_property(spec.RETRAIN, int(decision.retrain))
        out.set_int_custom_property("n_alerts", len(alerts))
        out.set_int_custom_property("span", span)
        out.set_string_custom_property("reason", decision.reason)
