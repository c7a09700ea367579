"""The ``alerts:`` section of the driftguard config: rules, sinks and delivery settings.

``parse_alerts_config(None)`` gives the defaults: every rule enabled with its default threshold
and severity, and one ``jsonl`` sink writing ``alerts.jsonl`` under the runs folder::

    rules:
      feature_psi: {threshold: 0.25}
      skew: {enabled: false}
    sinks:
      - {type: jsonl, path: alerts.jsonl}
      - {type: webhook, url_env: DRIFTGUARD_WEBHOOK_URL, hmac_secret_env: DRIFTGUARD_WEBHOOK_SECRET,
         min_severity: warning}
    delivery: {timeout_seconds: 5, max_attempts: 8, backoff_seconds: 30}
    incidents: {group_wait: 30s, repeat_interval: 4h, resolve_after_windows: 3, resolve_after_records: 5000}

``incidents`` (live monitoring only; see incidents.py) turns the monitor's alarms into
incidents as Alertmanager groups alerts: one notification when an incident opens, updates at
most once per ``repeat_interval``, one when it resolves.

Secrets (webhook URLs, HMAC secrets, SMTP passwords) are never written in the config: sinks
name the environment variables that hold them (``url_env``, ``hmac_secret_env``,
``password_env``), read at send time. Errors name the dotted path of the offending key and
never repeat a value that might be a secret.
"""
from __future__ import annotations

import dataclasses
import math
import re
import types
from typing import Any, Dict, List, Mapping, Optional, Tuple, Type

from driftguard.components import tasks as tasks_lib
from driftguard.components.alerts.alert import SEVERITIES


class AlertsConfigError(ValueError):
    """An ``alerts`` setting is unknown, mistyped, out of range or a literal secret."""


# name -> (default severity, default threshold or None when the rule takes none, threshold range)
RULES: Dict[str, Tuple[str, Optional[float], Optional[Tuple[float, float]]]] = {
    "feature_psi": ("critical", 0.2, (0.0, 100.0)),             # PSI > threshold on a feature
    "dataset_drift": ("warning", None, None),
    "multivariate_drift": ("warning", None, None),
    "schema_anomalies": ("critical", None, None),
    "skew": ("warning", None, None),
    "slice_drift": ("warning", None, None),                     # drift within a slice (drift.slices)
    # the realized metric of a slice (drift.slices) worse than on the held-out rows of that slice by
    # more than `threshold` (relative), and its errors significantly larger (Bonferroni across slices)
    "slice_metric_drop": ("warning", 0.05, (0.0, 1.0)),
    # the task's performance metric (components.tasks.METRICS: accuracy, auc, macro_f1, mae, rmse;
    # `metric`, default by task) worse than the blessed baseline by more than `threshold` (relative)
    "metric_drop": ("critical", 0.05, (0.0, 1.0)),
    "estimated_metric_drop": ("warning", 0.05, (0.0, 1.0)),      # the same, estimated without labels
    "model_cannot_score": ("critical", None, None),             # the serving model fails on the span
    # live monitoring only (driftguard monitor): see rules.py
    "prediction_drift": ("warning", None, None),                # the model's outputs drifted in a window
    "stream_change": ("warning", None, None),                   # a streaming detector alarmed
    "error_rate_change": ("critical", None, None),              # the error-rate detector alarmed upward
}

_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SINK_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
# Keys people write when they paste a secret; each gets a message pointing at the *_env key.
_LITERAL_SECRETS = {"url": "url_env", "webhook_url": "url_env", "hmac_secret": "hmac_secret_env",
                    "secret": "hmac_secret_env", "password": "password_env", "token": "url_env",
                    "username": "username_env"}


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    name: str
    enabled: bool = True
    severity: str = "warning"
    threshold: Optional[float] = None
    metric: Optional[str] = None      # metric_drop rules: the performance metric watched


METRIC_RULES = ("metric_drop", "estimated_metric_drop")
_RENAMED_RULES = {"accuracy_drop": "metric_drop", "estimated_accuracy_drop": "estimated_metric_drop"}


@dataclasses.dataclass(frozen=True)
class SinkConfig:
    """Fields every sink has. ``name`` defaults to the type; two sinks of one type need names."""

    name: str = ""
    min_severity: str = "info"

    type = ""  # class attribute, set by each subclass


@dataclasses.dataclass(frozen=True)
class JsonlSinkConfig(SinkConfig):
    type = "jsonl"
    path: str = "alerts.jsonl"        # relative paths resolve against the runs folder


@dataclasses.dataclass(frozen=True)
class WebhookSinkConfig(SinkConfig):
    type = "webhook"
    url_env: str = "DRIFTGUARD_WEBHOOK_URL"
    hmac_secret_env: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class SlackSinkConfig(SinkConfig):
    type = "slack"
    url_env: str = "DRIFTGUARD_SLACK_URL"


@dataclasses.dataclass(frozen=True)
class AlertmanagerSinkConfig(SinkConfig):
    type = "alertmanager"
    url_env: str = "DRIFTGUARD_ALERTMANAGER_URL"   # base URL; alerts go to {base}/api/v2/alerts


@dataclasses.dataclass(frozen=True)
class EmailSinkConfig(SinkConfig):
    type = "email"
    host: str = "127.0.0.1"
    port: int = 25
    sender: str = ""
    to: Tuple[str, ...] = ()
    username_env: Optional[str] = None
    password_env: Optional[str] = None
    starttls: bool = False


SINK_TYPES: Dict[str, Type[SinkConfig]] = {
    c.type: c for c in (JsonlSinkConfig, WebhookSinkConfig, SlackSinkConfig, AlertmanagerSinkConfig,
                        EmailSinkConfig)}


@dataclasses.dataclass(frozen=True)
class DeliveryConfig:
    timeout_seconds: float = 5.0      # the whole attempt (connect, request, reply), per send
    max_attempts: int = 8             # then the row is 'failed' and no longer retried
    backoff_seconds: float = 30.0     # retry n waits backoff * 2**(n-1) ...
    max_backoff_seconds: float = 3600.0   # ... capped here


@dataclasses.dataclass(frozen=True)
class IncidentsConfig:
    """How the live monitor groups alarms into incidents (components/alerts/incidents.py).

    Durations are seconds; the config also takes Prometheus-style strings (``30s``, ``5m``,
    ``4h``, ``1h30m``), as Alertmanager's ``group_wait`` and ``repeat_interval`` do.
    """

    enabled: bool = True
    group_wait: float = 0.0              # hold a new incident's page this long to batch others that open
    repeat_interval: float = 4 * 3600.0  # an incident still alarming is re-sent (an update) at most this often
    resolve_after_windows: int = 3       # window / label-window rules: this many evaluations in a row without it
    # streaming detectors: this many records (joined labels for the error stream) without an alarm;
    # None: the monitor's window
    resolve_after_records: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class AlertsConfig:
    rules: Mapping[str, RuleConfig]
    sinks: Tuple[SinkConfig, ...]
    delivery: DeliveryConfig = DeliveryConfig()
    incidents: IncidentsConfig = IncidentsConfig()

    def rule(self, name: str) -> RuleConfig:
        return self.rules[name]


def secret_variables(config: "AlertsConfig") -> List[str]:
    """The environment variables the sinks read their secrets from (URLs with tokens, HMAC keys,
    SMTP credentials), sorted: what a deployment must provide (a Kubernetes secret, a worker's
    environment), never the values."""
    names = set()
    for sink in config.sinks:
        for field in dataclasses.fields(sink):
            value = getattr(sink, field.name)
            if field.name.endswith("_env") and value:
                names.add(str(value))
    return sorted(names)


def default_rules(task: str = tasks_lib.BINARY) -> Mapping[str, RuleConfig]:
    return types.MappingProxyType({
        name: RuleConfig(name, True, sev, thr, tasks_lib.DEFAULT_METRIC[task] if name in METRIC_RULES else None)
        for name, (sev, thr, _) in RULES.items()})


def parse_alerts_config(data: Optional[Mapping[str, Any]], path: str = "alerts",
                        task: str = tasks_lib.BINARY) -> AlertsConfig:
    """Validate the ``alerts`` mapping (from YAML/JSON) into an :class:`AlertsConfig`.

    ``None`` gives the defaults. ``task`` (binary, multiclass, regression) decides which
    performance metrics the metric rules may watch. Raises :class:`AlertsConfigError` naming
    the dotted path.
    """
    if data is None:
        data = {}
    _expect_mapping(data, path)
    _reject_unknown(data, path, ("rules", "sinks", "delivery", "incidents"))
    rules = _parse_rules(data.get("rules"), f"{path}.rules", task)
    if "sinks" in data:
        sinks = _parse_sinks(data["sinks"], f"{path}.sinks")
    else:
        sinks = (JsonlSinkConfig(name="jsonl"),)
    delivery = _parse_delivery(data.get("delivery"), f"{path}.delivery")
    incidents = _parse_incidents(data.get("incidents"), f"{path}.incidents")
    return AlertsConfig(rules=rules, sinks=sinks, delivery=delivery, incidents=incidents)


def _parse_rules(data: Any, path: str, task: str) -> Mapping[str, RuleConfig]:
    rules = dict(default_rules(task))
    if data is None:
        return types.MappingProxyType(rules)
    _expect_mapping(data, path)
    for name, settings in data.items():
        where = f"{path}.{name}"
        if name in _RENAMED_RULES:
            raise AlertsConfigError(f"{where}: the rule is now {_RENAMED_RULES[name]} (any performance metric of "
                                    f"the task: set metric, e.g. accuracy)")
        if name not in RULES:
            raise AlertsConfigError(f"{where}: unknown rule {name!r}; known: {', '.join(RULES)}")
        severity, threshold, bounds = RULES[name]
        if settings is None:
            settings = {}
        if isinstance(settings, bool):          # `skew: false` as shorthand
            settings = {"enabled": settings}
        _expect_mapping(settings, where)
        allowed = ("enabled", "severity") + (("threshold",) if bounds else ()) + \
            (("metric",) if name in METRIC_RULES else ())
        _reject_unknown(settings, where, allowed)
        metric = rules[name].metric
        if "metric" in settings:
            metric = settings["metric"]
            try:
                tasks_lib.check_metric(task, metric, f"{where}.metric")
            except ValueError as e:
                raise AlertsConfigError(str(e)) from None
        enabled = _typed(settings, "enabled", bool, where, True)
        severity = _severity(settings.get("severity", severity), f"{where}.severity")
        if bounds:
            threshold = _number(settings, "threshold", where, threshold)
            lo, hi = bounds
            if not lo < threshold < hi:
                raise AlertsConfigError(f"{where}.threshold must be > {lo:g} and < {hi:g}, got {threshold!r}")
        rules[name] = RuleConfig(name, enabled, severity, threshold, metric)
    return types.MappingProxyType(rules)


def _parse_sinks(data: Any, path: str) -> Tuple[SinkConfig, ...]:
    if not isinstance(data, (list, tuple)):
        raise AlertsConfigError(f"{path} must be a list of sinks, got {type(data).__name__}")
    sinks: List[SinkConfig] = []
    seen: Dict[str, str] = {}
    for i, item in enumerate(data):
        where = f"{path}[{i}]"
        _expect_mapping(item, where)
        kind = item.get("type")
        if kind is None:
            raise AlertsConfigError(f"{where}.type is missing; known: {', '.join(SINK_TYPES)}")
        if kind not in SINK_TYPES:
            raise AlertsConfigError(f"{where}.type: unknown sink type {kind!r}; known: {', '.join(SINK_TYPES)}")
        sink = _parse_sink(SINK_TYPES[kind], item, where)
        if sink.name in seen:
            raise AlertsConfigError(f"{where}.name: duplicate sink name {sink.name!r} (also {seen[sink.name]}); "
                                    "give each sink of the same type a distinct `name`")
        seen[sink.name] = where
        sinks.append(sink)
    return tuple(sinks)


def _parse_sink(cls: Type[SinkConfig], item: Mapping[str, Any], where: str) -> SinkConfig:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in item:
        if key in _LITERAL_SECRETS and key not in fields:
            raise AlertsConfigError(
                f"{where}.{key}: secrets are not allowed in the config file; put the value in an "
                f"environment variable and name that variable with `{_LITERAL_SECRETS[key]}`")
    _reject_unknown(item, where, ("type",) + tuple(fields))
    values: Dict[str, Any] = {}
    for name in fields:
        if name not in item:
            continue
        key_path = f"{where}.{name}"
        value = item[name]
        if name == "min_severity":
            values[name] = _severity(value, key_path)
        elif name.endswith("_env"):
            values[name] = _env_name(value, key_path, optional=name != "url_env")
        elif name == "to":
            values[name] = _addresses(value, key_path)
        elif name == "port":
            port = _typed(item, "port", int, where, 25)
            if not 1 <= port <= 65535:
                raise AlertsConfigError(f"{key_path} must be in 1..65535, got {port!r}")
            values[name] = port
        elif name == "starttls":
            values[name] = _typed(item, name, bool, where, False)
        else:   # name, path, host, sender: non-empty strings
            values[name] = _typed(item, name, str, where, "")
            if not values[name].strip():
                raise AlertsConfigError(f"{key_path} must be a non-empty string")
    if "path" in values:
        _log_path(values["path"], f"{where}.path")
    values.setdefault("name", cls.type)
    if not _SINK_NAME_RE.match(values["name"]):
        raise AlertsConfigError(f"{where}.name must match {_SINK_NAME_RE.pattern}, got {values['name']!r}")
    if cls is EmailSinkConfig:
        for required in ("sender", "to"):
            if required not in values:
                raise AlertsConfigError(f"{where}.{required} is required for an email sink")
        if ("username_env" in values) != ("password_env" in values):
            raise AlertsConfigError(f"{where}: username_env and password_env go together (SMTP login)")
    return cls(**values)


def _parse_delivery(data: Any, path: str) -> DeliveryConfig:
    if data is None:
        return DeliveryConfig()
    _expect_mapping(data, path)
    _reject_unknown(data, path, tuple(f.name for f in dataclasses.fields(DeliveryConfig)))
    d = DeliveryConfig()
    timeout = _number(data, "timeout_seconds", path, d.timeout_seconds)
    attempts = _typed(data, "max_attempts", int, path, d.max_attempts)
    backoff = _number(data, "backoff_seconds", path, d.backoff_seconds)
    cap = _number(data, "max_backoff_seconds", path, d.max_backoff_seconds)
    if not 0 < timeout <= 300:
        raise AlertsConfigError(f"{path}.timeout_seconds must be > 0 and <= 300, got {timeout!r}")
    if not 1 <= attempts <= 1000:
        raise AlertsConfigError(f"{path}.max_attempts must be in 1..1000, got {attempts!r}")
    if not 0 <= backoff <= 86400:
        raise AlertsConfigError(f"{path}.backoff_seconds must be in 0..86400, got {backoff!r}")
    if not 0 <= cap <= 7 * 86400:
        raise AlertsConfigError(f"{path}.max_backoff_seconds must be in 0..604800, got {cap!r}")
    return DeliveryConfig(timeout, attempts, backoff, cap)


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
_DURATION_RE = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w))+$")
_DURATION_PART_RE = re.compile(r"(\d+)(ms|s|m|h|d|w)")


def parse_duration(value: Any, path: str) -> float:
    """Seconds from a number (seconds) or a Prometheus/Alertmanager duration string (``30s``,
    ``5m``, ``4h``, ``1h30m``, ``1d``); :class:`AlertsConfigError` naming ``path`` otherwise."""
    if isinstance(value, bool):
        raise AlertsConfigError(f"{path} must be a duration (seconds, or a string like 30s, 5m, 4h), got {value!r}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str) and _DURATION_RE.match(value.strip()):
        seconds = sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART_RE.findall(value.strip()))
    else:
        raise AlertsConfigError(f"{path} must be a duration (seconds, or a string like 30s, 5m, 4h, 1h30m), "
                                f"got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise AlertsConfigError(f"{path} must be a duration >= 0, got {value!r}")
    return seconds


def _parse_incidents(data: Any, path: str) -> IncidentsConfig:
    if data is None:
        return IncidentsConfig()
    if isinstance(data, bool):                 # `incidents: false` as shorthand
        data = {"enabled": data}
    _expect_mapping(data, path)
    _reject_unknown(data, path, tuple(f.name for f in dataclasses.fields(IncidentsConfig)))
    d = IncidentsConfig()
    enabled = _typed(data, "enabled", bool, path, d.enabled)
    group_wait = parse_duration(data.get("group_wait", d.group_wait), f"{path}.group_wait")
    repeat = parse_duration(data.get("repeat_interval", d.repeat_interval), f"{path}.repeat_interval")
    if group_wait > 3600:
        raise AlertsConfigError(f"{path}.group_wait must be at most 1h (3600 s), got {data.get('group_wait')!r}")
    if repeat <= 0:
        raise AlertsConfigError(f"{path}.repeat_interval must be > 0 (a duration like 4h), got "
                                f"{data.get('repeat_interval')!r}")
    windows = _typed(data, "resolve_after_windows", int, path, d.resolve_after_windows)
    if not 1 <= windows <= 1000:
        raise AlertsConfigError(f"{path}.resolve_after_windows must be in 1..1000, got {windows!r}")
    records = data.get("resolve_after_records", d.resolve_after_records)
    if records is not None:
        records = _typed(data, "resolve_after_records", int, path, None)
        if not 1 <= records <= 10 ** 9:
            raise AlertsConfigError(f"{path}.resolve_after_records must be in 1..1000000000 (or null: the "
                                    f"monitor's window), got {records!r}")
    return IncidentsConfig(enabled, group_wait, repeat, windows, records)


# -- small validators -------------------------------------------------------------------------

def _expect_mapping(value: Any, path: str) -> None:
    if not isinstance(value, Mapping):
        raise AlertsConfigError(f"{path} must be a mapping, got {type(value).__name__}")


def _reject_unknown(data: Mapping[str, Any], path: str, allowed: Tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            raise AlertsConfigError(f"{path}.{key}: unknown key; allowed: {', '.join(allowed)}")


def _typed(data: Mapping[str, Any], key: str, kind: type, path: str, default: Any) -> Any:
    value = data.get(key, default)
    # bool is an int subclass: `port: true` must not pass as 1.
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise AlertsConfigError(f"{path}.{key} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _number(data: Mapping[str, Any], key: str, path: str, default: Any) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise AlertsConfigError(f"{path}.{key} must be a finite number, got {value!r}")
    return float(value)


def _severity(value: Any, path: str) -> str:
    if value not in SEVERITIES:
        raise AlertsConfigError(f"{path}: unknown severity {value!r}; known: {', '.join(SEVERITIES)}")
    return value


def _env_name(value: Any, path: str, optional: bool) -> Optional[str]:
    if value is None and optional:
        return None
    # The value is not echoed: someone may have pasted the secret itself here.
    if not isinstance(value, str) or not _ENV_NAME_RE.match(value):
        raise AlertsConfigError(f"{path} must be the NAME of an environment variable (letters, digits, _), "
                                "not the secret itself; the value is not shown here")
    return value


def _log_path(value: str, path: str) -> None:
    """A JSON-lines file: relative paths stay inside the runs folder (no '..' part, no NUL); an
    absolute path is the config author's explicit choice of another place."""
    if "\0" in value:
        raise AlertsConfigError(f"{path} must not contain a NUL byte")
    parts = value.replace("\\", "/").split("/")
    if ".." in parts:
        raise AlertsConfigError(f"{path}: {value!r} leaves the runs folder ('..'); give a path inside it "
                                f"(relative paths resolve against the runs folder) or an absolute path")
    if value.endswith("/") or parts[-1] in ("", "."):
        raise AlertsConfigError(f"{path}: {value!r} names a folder, not a file")


def _addresses(value: Any, path: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise AlertsConfigError(f"{path} must be a non-empty list of e-mail addresses")
    for i, a in enumerate(value):
        if not isinstance(a, str) or "@" not in a:
            raise AlertsConfigError(f"{path}[{i}] must be an e-mail address, got {a!r}")
    return tuple(value)
