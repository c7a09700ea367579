"""The server's Prometheus metrics (``driftguard_serve_*``), served at ``GET /metrics``."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Tuple

if TYPE_CHECKING:
    from driftguard.serving.repository import ModelVersion

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self, model: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("driftguard_serve_requests", "HTTP requests by path kind and status code",
                                ["path", "code"], registry=r)
        self.latency = Histogram("driftguard_serve_request_latency_seconds",
                                 "Request latency from the request line to the response, by path kind",
                                 ["path"], buckets=_LATENCY_BUCKETS, registry=r)
        self.request_bytes = Counter("driftguard_serve_request_bytes", "Request body bytes read", registry=r)
        self.instances = Counter("driftguard_serve_instances_predicted", "Instances predicted, by model version",
                                 ["version"], registry=r)
        # What the model predicted, per task: the positive-class probability (binary, a histogram),
        # the predicted class (multi-class, a counter per class), the value (regression, a summary).
        self.prediction = Histogram("driftguard_serve_prediction", "Predicted positive-class probabilities "
                                    "(binary classifiers)", buckets=_PROBABILITY_BUCKETS, registry=r)
        self.predicted_class = Counter("driftguard_serve_predicted_class", "Predicted classes (multi-class)",
                                       ["class_"], registry=r)
        self.prediction_value = Summary("driftguard_serve_prediction_value", "Predicted values (regression)",
                                        registry=r)
        self.model_version = Gauge("driftguard_serve_model_version", "The version served by default",
                                   ["model"], registry=r)
        self.loaded_versions = Gauge("driftguard_serve_loaded_versions", "Model versions loaded",
                                     ["model"], registry=r)
        self.log_records = Counter("driftguard_serve_log_records",
                                   "Prediction log records: written, failed (write error) or sampled_out",
                                   ["result"], registry=r)
        self.model_loads = Counter("driftguard_serve_model_loads", "Model version loads (start and reloads)",
                                   ["result"], registry=r)
        # serving/rollout.py: who answered default-route requests while a rollout was active, and
        # the shadow predictions (the challenger's, in shadow mode) that succeeded or failed
        self.rollout_requests = Counter("driftguard_serve_rollout_requests",
                                        "Default-route predict requests answered while a rollout was "
                                        "active, by the role that answered (champion, challenger)",
                                        ["role"], registry=r)
        self.shadow_predictions = Counter("driftguard_serve_shadow_predictions",
                                          "Shadow predictions by the challenger (rollout mode shadow): ok or "
                                          "failed (the champion's answer stands either way)",
                                          ["result"], registry=r)
        for role in ("champion", "challenger"):
            self.rollout_requests.labels(role)
        for result in ("ok", "failed"):
            self.shadow_predictions.labels(result)
        for result in ("written", "failed", "sampled_out"):
            self.log_records.labels(result)
        for result in ("ok", "failed"):
            self.model_loads.labels(result)
        self._model = model

    def set_versions(self, loaded: Mapping[int, ModelVersion]) -> None:
        self.model_version.labels(self._model).set(max(loaded) if loaded else 0)
        self.loaded_versions.labels(self._model).set(len(loaded))

    def render(self) -> Tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

