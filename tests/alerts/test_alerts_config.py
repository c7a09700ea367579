"""parse_alerts_config: defaults, a full config, and errors that name the dotted path."""
import re

import pytest

from driftguard.components.alerts.config import (AlertsConfigError, EmailSinkConfig, JsonlSinkConfig, WebhookSinkConfig,
                                      parse_alerts_config)

FULL = {
    "rules": {"feature_psi": {"threshold": 0.25, "severity": "warning"}, "skew": {"enabled": False}},
    "sinks": [
        {"type": "jsonl", "path": "alerts.jsonl"},
        {"type": "webhook", "url_env": "DRIFTGUARD_WEBHOOK_URL", "hmac_secret_env": "DRIFTGUARD_WEBHOOK_SECRET",
         "min_severity": "warning"},
        {"type": "slack", "url_env": "DRIFTGUARD_SLACK_URL"},
        {"type": "alertmanager", "url_env": "DRIFTGUARD_ALERTMANAGER_URL"},
        {"type": "email", "host": "127.0.0.1", "port": 25, "sender": "a@b", "to": ["c@d"],
         "username_env": "SMTP_USER", "password_env": "SMTP_PASSWORD", "starttls": False},
    ],
    "delivery": {"timeout_seconds": 5, "max_attempts": 8, "backoff_seconds": 30},
}


def test_defaults_enable_every_rule_and_one_jsonl_sink():
    cfg = parse_alerts_config(None)
    assert set(cfg.rules) == {"feature_psi", "dataset_drift", "multivariate_drift", "schema_anomalies", "skew",
                              "metric_drop", "estimated_metric_drop", "model_cannot_score",
                              "prediction_drift", "stream_change", "error_rate_change", "slice_drift",
                              "slice_metric_drop"}
    assert all(r.enabled for r in cfg.rules.values())
    assert cfg.rules["feature_psi"].threshold == 0.2 and cfg.rules["feature_psi"].severity == "critical"
    assert cfg.rules["metric_drop"].threshold == 0.05 and cfg.rules["metric_drop"].metric == "accuracy"
    assert cfg.rules["estimated_metric_drop"].severity == "warning"
    assert cfg.sinks == (JsonlSinkConfig(name="jsonl", path="alerts.jsonl"),)
    assert (cfg.delivery.timeout_seconds, cfg.delivery.max_attempts, cfg.delivery.backoff_seconds) == (5, 8, 30)
    assert parse_alerts_config({}) == cfg


def test_full_config():
    cfg = parse_alerts_config(FULL)
    assert cfg.rules["feature_psi"].threshold == 0.25 and cfg.rules["feature_psi"].severity == "warning"
    assert not cfg.rules["skew"].enabled and cfg.rules["dataset_drift"].enabled
    assert [s.name for s in cfg.sinks] == ["jsonl", "webhook", "slack", "alertmanager", "email"]
    assert cfg.sinks[1] == WebhookSinkConfig(name="webhook", min_severity="warning", url_env="DRIFTGUARD_WEBHOOK_URL",
                                             hmac_secret_env="DRIFTGUARD_WEBHOOK_SECRET")
    assert isinstance(cfg.sinks[4], EmailSinkConfig) and cfg.sinks[4].to == ("c@d",)
    with pytest.raises(Exception):
        cfg.sinks[0].path = "x"   # frozen
    assert parse_alerts_config({"sinks": []}).sinks == ()


@pytest.mark.parametrize("data, message", [
    ({"rule": {}}, r"^alerts\.rule: unknown key; allowed: rules, sinks, delivery, incidents$"),
    ({"rules": {"feature_psi": {"treshold": 0.3}}}, r"^alerts\.rules\.feature_psi\.treshold: unknown key"),
    ({"rules": {"skew": {"threshold": 0.3}}}, r"^alerts\.rules\.skew\.threshold: unknown key"),
    ({"rules": {"psi": {}}}, r"^alerts\.rules\.psi: unknown rule 'psi'; known: feature_psi, dataset_drift"),
    ({"rules": {"feature_psi": {"threshold": -1}}}, r"^alerts\.rules\.feature_psi\.threshold must be > 0"),
    ({"rules": {"metric_drop": {"threshold": 1.5}}}, r"^alerts\.rules\.metric_drop\.threshold must be"),
    ({"rules": {"accuracy_drop": {"threshold": 0.1}}}, r"^alerts\.rules\.accuracy_drop: the rule is now metric_drop"),
    ({"rules": {"feature_psi": {"threshold": "high"}}}, r"^alerts\.rules\.feature_psi\.threshold must be a finite"),
    ({"rules": {"dataset_drift": {"enabled": "yes"}}}, r"^alerts\.rules\.dataset_drift\.enabled must be bool"),
    ({"rules": {"skew": {"severity": "error"}}},
     r"^alerts\.rules\.skew\.severity: unknown severity 'error'; known: info, warning, critical$"),
    ({"sinks": [{"type": "jsonl"}, {"type": "pagerduty"}]},
     r"^alerts\.sinks\[1\]\.type: unknown sink type 'pagerduty'; known: jsonl, webhook, slack, alertmanager, email$"),
    ({"sinks": [{"path": "x"}]}, r"^alerts\.sinks\[0\]\.type is missing"),
    ({"sinks": [{"type": "webhook", "min_severity": "fatal"}]}, r"^alerts\.sinks\[0\]\.min_severity: unknown severity"),
    ({"sinks": [{"type": "webhook", "url": "https://hooks.example/T0/B0/xyz"}]},
     r"^alerts\.sinks\[0\]\.url: secrets are not allowed in the config file; .* `url_env`$"),
    ({"sinks": [{"type": "email", "sender": "a@b", "to": ["c@d"], "password": "pw"}]},
     r"^alerts\.sinks\[0\]\.password: secrets are not allowed .* `password_env`"),
    ({"sinks": [{"type": "webhook", "color": "red"}]}, r"^alerts\.sinks\[0\]\.color: unknown key; allowed: type, name"),
    ({"sinks": [{"type": "webhook"}, {"type": "webhook"}]}, r"^alerts\.sinks\[1\]\.name: duplicate sink name 'webhook'"),
    ({"sinks": [{"type": "email", "to": ["c@d"]}]}, r"^alerts\.sinks\[0\]\.sender is required"),
    ({"sinks": [{"type": "email", "sender": "a@b", "to": ["c@d"], "port": 0}]}, r"^alerts\.sinks\[0\]\.port must be in"),
    ({"sinks": [{"type": "email", "sender": "a@b", "to": ["nobody"]}]}, r"^alerts\.sinks\[0\]\.to\[0\] must be an e-mail"),
    ({"sinks": {"type": "jsonl"}}, r"^alerts\.sinks must be a list"),
    ({"delivery": {"timeout_seconds": 0}}, r"^alerts\.delivery\.timeout_seconds must be > 0"),
    ({"delivery": {"max_attempts": 2.5}}, r"^alerts\.delivery\.max_attempts must be int"),
    ({"delivery": {"retries": 3}}, r"^alerts\.delivery\.retries: unknown key"),
])
def test_errors_name_the_dotted_path(data, message):
    with pytest.raises(AlertsConfigError, match=message):
        parse_alerts_config(data)


def test_error_uses_the_given_path_and_is_a_value_error():
    with pytest.raises(ValueError, match=r"^cfg\.alerts\.sinks\[0\]\.type: unknown sink type"):
        parse_alerts_config({"sinks": [{"type": "sms"}]}, path="cfg.alerts")


def test_a_secret_pasted_into_url_env_is_not_echoed():
    secret = "https://hooks.slack.com/services/T000/B000/SECRETTOKEN123"
    with pytest.raises(AlertsConfigError) as e:
        parse_alerts_config({"sinks": [{"type": "slack", "url_env": secret}]})
    assert re.match(r"alerts\.sinks\[0\]\.url_env must be the NAME of an environment variable", str(e.value))
    assert "SECRETTOKEN123" not in str(e.value)
