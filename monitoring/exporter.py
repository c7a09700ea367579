"""Prometheus metrics of ``driftguard monitor``: a collector over the monitor's committed state,
an HTTP endpoint (``prometheus_client``'s WSGI app behind an optional bearer token) and the
node_exporter textfile.

The collector reads a snapshot the monitor replaces after every commit, so a scrape never
sees a half-updated window and the counters are the persisted ones: a restarted monitor
carries on counting from where it stopped instead of starting again at zero.

Every metric is named ``driftguard_monitor_*``; ``METRIC_NAMES`` lists them (the Grafana
dashboard's test checks its expressions against what a real scrape returns).
"""
from __future__ import annotations

import hmac
import logging
import socket
import threading
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from driftguard.serving.settings import is_loopback  # the rule serve applies: a public address needs a token

log = logging.getLogger(__name__)

PREFIX = "driftguard_monitor_"
METRICS_FILE = "metrics.prom"    # the node_exporter textfile, in the monitor's state folder
SKIP_REASONS = ("unreadable", "unknown_version")   # why a log record is left out (always exported)


class MetricsError(ValueError):
    """The metrics endpoint cannot start as asked (e.g. a public address without a token)."""


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(PREFIX + name, doc, labels=list(labels))


def _num(value: Any) -> Optional[float]:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value == value:
        return float(value)
    return None


class MonitorCollector:
    """``prometheus_client`` collector over ``snapshot`` (a plain dict; see ``Monitor.snapshot``)."""

    def __init__(self):
        self.snapshot: Mapping[str, Any] = {}

    def describe(self):
        return []

    def collect(self):  # noqa: C901 - one block per metric family reads best
        s = self.snapshot
        if not s:
            return
        model = s.get("model", "")
        c = s.get("counters", {})
        out = []

        def counter(name, doc, value, labels=(), label_values=()):
            m = _counter(name, doc, labels)
            m.add_metric(list(label_values), float(value or 0))
            out.append(m)

        counter("records", "Predictions read from the log (a request with n instances counts n).",
                c.get("records", 0), ["model"], [model])
        counter("log_records", "Prediction log records (requests) read.", c.get("log_records", 0), ["model"], [model])
        skipped = _counter("records_skipped", "Log records left out, by reason.", ["model", "reason"])
        for reason, n in sorted({**dict.fromkeys(SKIP_REASONS, 0), **(c.get("skipped") or {})}.items()):
            skipped.add_metric([model, reason], float(n))
        out.append(skipped)
        counter("windows", "Feature windows evaluated.", c.get("windows", 0), ["model"], [model])
        counter("label_windows", "Windows of joined labels evaluated.", c.get("label_windows", 0), ["model"], [model])
        counter("window_records_discarded", "Records of an unfinished window dropped (none since windows are kept "
                "per model version; kept for old state files).", c.get("discarded", 0), ["model"], [model])
        counter("windows_features_skipped", "Windows whose feature check was skipped (the features could not be "
                "compared; the log and console say why).", c.get("window_errors", 0), ["model"], [model])
        counter("labels_duplicate", "Labels for a request id already labelled (dropped; the first counts).",
                c.get("labels_duplicate", 0), ["model"], [model])
        counter("labels_unknown_id", "Labels for request ids no logged prediction carries (dropped once the log "
                "was read to its end after them).", c.get("labels_unknown_id", 0), ["model"], [model])
        counter("predictions_reused_id", "Predictions reusing a request id already predicted (not joined to a label).",
                c.get("predictions_reused_id", 0), ["model"], [model])
        per_version = _counter("version_records", "Records answered by each model version (each to its own windows).",
                               ["model", "version"])
        version_windows = _counter("version_windows", "Windows evaluated per model version.", ["model", "version"])
        for v, lane in sorted((s.get("lanes") or {}).items(), key=lambda kv: int(kv[0])):
            per_version.add_metric([model, str(v)], float(lane.get("records", 0)))
            version_windows.add_metric([model, str(v)], float(lane.get("windows", 0)))
        out.extend([per_version, version_windows])
        counter("labels_read", "Label rows read.", c.get("labels_read", 0), ["model"], [model])
        counter("labels_joined", "Labels joined to a logged prediction.", c.get("labels_joined", 0),
                ["model"], [model])
        counter("labels_expired", "Labels dropped unmatched (retention limit).", c.get("labels_expired", 0),
                ["model"], [model])
        counter("predictions_expired", "Predictions dropped before their label arrived (retention limit).",
                c.get("predictions_expired", 0), ["model"], [model])
        counter("predictions_without_id", "Predictions logged without a request id (no label can join).",
                c.get("without_id", 0), ["model"], [model])
        alerts = _counter("alerts", "Alerts raised, by rule and severity.", ["model", "rule", "severity"])
        for key, n in sorted((c.get("alerts") or {}).items()):
            rule, severity = key.split("/", 1)
            alerts.add_metric([model, rule, severity], float(n))
        out.append(alerts)
        incidents = s.get("incidents") or {}
        events = _counter("incident_events", "Incident notifications and recorded repeats, by event: opened, "
                          "updated (paged after repeat_interval), repeated (recorded, not paged), resolved.",
                          ["model", "event"])
        for event in ("opened", "updated", "repeated", "resolved"):
            events.add_metric([model, event], float((incidents.get("totals") or {}).get(event, 0)))
        out.append(events)
        open_now = _gauge("incidents_open", "Incidents open now, by rule and severity.", ["model", "rule", "severity"])
        counts: Dict[Tuple[str, str], int] = {}
        for i in incidents.get("open") or ():
            counts[(i["rule"], i["severity"])] = counts.get((i["rule"], i["severity"]), 0) + 1
        for (rule, severity), n in sorted(counts.items()):
            open_now.add_metric([model, rule, severity], float(n))
        out.append(open_now)
        alarms = _counter("detector_alarms", "Streaming detector alarms, by stream.", ["model", "stream"])
        for stream, n in sorted((c.get("detector_alarms") or {}).items()):
            alarms.add_metric([model, stream], float(n))
        out.append(alarms)
        counter("retrain_triggers", "Retraining runs triggered.", c.get("retrain_triggers", 0), ["model"], [model])

        def gauge(name, doc, value, labels=("model",), label_values=None):
            v = _num(value)
            m = _gauge(name, doc, labels)
            if v is not None:
                m.add_metric(list(label_values or [model]), v)
            out.append(m)

        gauge("serving_version", "Model version whose predictions are being monitored.", s.get("version"))
        rollout = s.get("rollout") or {}
        active = rollout.get("active") or {}
        gauge("rollout_challenger_version", "The challenger version compared with the champion (0: no rollout).",
              active.get("challenger", 0))
        for name, doc, key in (("rollout_labels", "Joined labels of each version in the running rollout.", "labels"),
                               ("rollout_loss", "Mean loss on joined labels in the running rollout (error rate; "
                                "absolute error for regression), by role.", "loss")):
            m = _gauge(name, doc, ["model", "role"])
            for role, value in sorted((active.get(key) or {}).items()):
                if _num(value) is not None:
                    m.add_metric([model, role], float(value))
            out.append(m)
        gauge("rollout_agreement", "Share of shadowed request ids both versions predicted the same way.",
              active.get("agreement"))
        decisions = _counter("rollout_decisions", "Rollout decisions, by action (promote, rollback).",
                             ["model", "action"])
        for action in ("promote", "rollback"):
            decisions.add_metric([model, action], float((c.get("rollout_decisions") or {}).get(action, 0)))
        out.append(decisions)
        budget = s.get("budget") or {}
        gauge("window_alpha", "Level of each window test (from the false-alarm budget).", budget.get("alpha"))
        gauge("detector_arl0_records", "In-control average run length of each streaming detector (records).",
              budget.get("arl0_records"))
        gauge("false_alarm_budget_per_100k", "False-alarm budget: expected false alerts per 100,000 records.",
              budget.get("max_false_per_100k"))
        w = s.get("window") or {}
        psi = _gauge("feature_psi", "PSI of each feature in the last window against the serving version's "
                     "reference sample.", ["model", "feature"])
        drifted = _gauge("feature_drifted", "1 when the feature drifted in the last window.", ["model", "feature"])
        pval = _gauge("feature_p_value", "Adjusted p-value of the feature's deciding check in the last window.",
                      ["model", "feature"])
        for name, f in sorted((w.get("features") or {}).items()):
            if _num(f.get("psi")) is not None:
                psi.add_metric([model, name], float(f["psi"]))
            drifted.add_metric([model, name], float(bool(f.get("drifted"))))
            if _num(f.get("p_value")) is not None:
                pval.add_metric([model, name], float(f["p_value"]))
        out.extend([psi, drifted, pval])
        gauge("dataset_drifted", "1 when any feature (or the joint check) drifted in the last window.",
              w.get("drift_detected"))
        gauge("multivariate_drifted", "1 when the rank-correlation check fired in the last window.",
              w.get("multivariate_drifted"))
        gauge("prediction_psi", "PSI of the prediction (probability, class or value) in the last window.",
              w.get("prediction_psi"))
        gauge("confidence_psi", "PSI of the confidence (top-class probability) in the last window.",
              w.get("confidence_psi"))
        gauge("prediction_drifted", "1 when the prediction or confidence distribution drifted in the last window.",
              w.get("prediction_drifted"))
        quant = _gauge("prediction_quantile", "Quantiles of the prediction (probability or value) in the last window.",
                       ["model", "quantile"])
        for q, v in sorted((w.get("prediction_quantiles") or {}).items()):
            if _num(v) is not None:
                quant.add_metric([model, q], float(v))
        out.append(quant)
        gauge("positive_rate", "Share of predictions above 0.5 in the last window (binary).", w.get("positive_rate"))
        gauge("mean_probability", "Mean predicted probability in the last window (binary).", w.get("mean_probability"))
        gauge("mean_prediction", "Mean prediction in the last window (binary, regression).", w.get("mean_prediction"))
        shares = _gauge("class_share", "Share of each predicted class in the last window (multi-class).",
                        ["model", "class_"])
        for name, v in sorted((w.get("class_shares") or {}).items()):
            shares.add_metric([model, name], float(v))
        out.append(shares)
        gauge("mean_confidence", "Mean confidence (top-class probability) in the last window.",
              w.get("mean_confidence"))
        gauge("reference_mean_confidence", "Mean confidence on the serving version's reference sample.",
              (s.get("reference") or {}).get("mean_confidence"))
        ref = s.get("reference") or {}
        metric = ref.get("metric") or w.get("estimated_metric") or "accuracy"
        gauge("estimated_metric", "The watched performance metric (label metric) estimated on the last window "
              "without labels (CBPE, DLE).", w.get("estimated"), ["model", "metric"], [model, metric])
        gauge("estimated_metric_low", "Lower end of the 95 % interval of estimated_metric (the window's sampling "
              "error and the calibration's).", w.get("estimated_low"), ["model", "metric"], [model, metric])
        gauge("estimated_metric_high", "Upper end of the 95 % interval of estimated_metric.",
              w.get("estimated_high"), ["model", "metric"], [model, metric])
        gauge("estimated_metric_reference", "The same estimator on the held-out reference rows.",
              ref.get("estimated"), ["model", "metric"], [model, metric])
        gauge("baseline_metric", "The watched metric of the serving version on its held-out reference rows.",
              ref.get("baseline"), ["model", "metric"], [model, metric])
        gauge("window_last_record", "Index of the last record of the last window.", w.get("last"))
        gauge("last_window_timestamp_seconds", "Unix time the last window was evaluated.", w.get("time"))
        lw = s.get("label_window") or {}
        gauge("realized_metric", "The watched metric (label metric) on the last window of joined labels.",
              lw.get("value"), ["model", "metric"], [model, lw.get("metric") or metric])
        gauge("realized_metric_labels", "Labels in the last window of joined labels.", lw.get("labels"))
        gauge("last_label_window_timestamp_seconds", "Unix time the last label window was evaluated.",
              lw.get("time"))
        pending = s.get("pending") or {}
        gauge("labels_pending", "Labels waiting for their prediction.", pending.get("labels"))
        gauge("predictions_awaiting_label", "Predictions waiting for their label.", pending.get("predictions"))
        stat = _gauge("detector_statistic", "CUSUM statistic of each streaming detector, in block standard "
                      "deviations.", ["model", "stream", "side"])
        thr = _gauge("detector_threshold", "Alarm threshold of each streaming detector.", ["model", "stream"])
        fed = _gauge("detector_records", "Records each streaming detector has seen.", ["model", "stream"])
        for stream, d in sorted((s.get("detectors") or {}).items()):
            stat.add_metric([model, stream, "up"], float(d.get("up", 0.0)))
            stat.add_metric([model, stream, "down"], float(d.get("down", 0.0)))
            thr.add_metric([model, stream], float(d.get("threshold", 0.0)))
            fed.add_metric([model, stream], float(d.get("records", 0)))
        out.extend([stat, thr, fed])
        lag = s.get("lag") or {}
        gauge("log_lag_bytes", "Bytes of prediction log not read yet.", lag.get("bytes"))
        gauge("log_lag_seconds", "Seconds between now and the log time of the last record read.", lag.get("seconds"))
        gauge("last_record_timestamp_seconds", "Log time of the last record read.", lag.get("record_time"))
        yield from out


METRIC_NAMES = (
    "records_total", "log_records_total", "records_skipped_total", "windows_total", "label_windows_total",
    "window_records_discarded_total", "windows_features_skipped_total", "labels_duplicate_total",
    "labels_unknown_id_total", "predictions_reused_id_total", "version_records_total", "version_windows_total",
    "labels_read_total", "labels_joined_total", "labels_expired_total",
    "predictions_expired_total", "predictions_without_id_total", "alerts_total", "incident_events_total",
    "incidents_open", "detector_alarms_total",
    "retrain_triggers_total", "serving_version", "rollout_challenger_version", "rollout_labels", "rollout_loss",
    "rollout_agreement", "rollout_decisions_total", "window_alpha", "detector_arl0_records",
    "false_alarm_budget_per_100k", "feature_psi", "feature_drifted", "feature_p_value", "dataset_drifted",
    "multivariate_drifted", "prediction_psi", "confidence_psi", "prediction_drifted", "prediction_quantile",
    "positive_rate", "mean_probability", "mean_prediction", "class_share", "mean_confidence",
    "reference_mean_confidence", "estimated_metric", "estimated_metric_low", "estimated_metric_high",
    "estimated_metric_reference", "baseline_metric",
    "window_last_record", "last_window_timestamp_seconds",
    "realized_metric", "realized_metric_labels", "last_label_window_timestamp_seconds", "labels_pending",
    "predictions_awaiting_label", "detector_statistic", "detector_threshold", "detector_records",
    "log_lag_bytes", "log_lag_seconds", "last_record_timestamp_seconds",
)


def make_registry(collector: MonitorCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def write_textfile(path, registry: CollectorRegistry) -> None:
    """node_exporter's textfile collector format, written atomically (temp file + rename)."""
    from prometheus_client import write_to_textfile

    write_to_textfile(str(path), registry)


# ---------------------------------------------------------------- HTTP endpoint


def _with_token(app, token: Optional[str]):
    if not token:
        return app
    expected = token.encode()

    def guarded(environ, start_response):
        given = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), expected):
            body = b"missing or invalid bearer token (send 'Authorization: Bearer <token>')\n"
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", str(len(body))),
                                                ("WWW-Authenticate", 'Bearer realm="driftguard monitor"')])
            return [body]
        return app(environ, start_response)

    return guarded


class MetricsServer:
    """``/metrics`` on ``host:port`` (port 0 picks a free one) in a daemon thread."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0,
                 token: Optional[str] = None):
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from prometheus_client import make_wsgi_app
        from prometheus_client.exposition import ThreadingWSGIServer

        if token is not None and not token:
            raise MetricsError("the bearer token is empty")
        if not token and not is_loopback(host):
            raise MetricsError(f"refusing to serve metrics on {host!r} without a bearer token: it is reachable "
                               "from other machines. Put a token in an environment variable and pass its name "
                               "with --token-env, or bind 127.0.0.1")

        class Quiet(WSGIRequestHandler):
            def log_message(self, fmt, *args):  # access lines at DEBUG, not on stderr
                log.debug("metrics: " + fmt, *args)

        class Server(ThreadingWSGIServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        try:
            self._server = make_server(host, port, _with_token(make_wsgi_app(registry), token),
                                       server_class=Server, handler_class=Quiet)
        except OSError as e:
            raise MetricsError(f"cannot serve metrics on {host}:{port}: {e.strerror or e}") from None
        self.host, self.port = host, int(self._server.server_port)
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def parse_exposition(text: str) -> Dict[str, Dict[Tuple[Tuple[str, str], ...], float]]:
    """{sample name: {sorted label pairs: value}} of a scrape (for tests and the benchmark)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Dict[str, Dict[Tuple[Tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out
