"""A bad config is rejected when it is loaded, before any work starts: unknown keys, wrong types,
every threshold out of range, unknown sink types, literal secrets, a schema version that does
not exist. The message names the file and the key's dotted path; the runs folder is not created.
"""
from __future__ import annotations

import json
import math

import pytest

from helpers import REPO, run_cli, taxi_config, write_config
from driftguard.pipeline import config as config_lib

BAD = [
    # unknown keys, at every level
    ({"drfit": {}}, r"unknown config key 'drfit'"),
    ({"drift": {"alpah": 0.01}}, r"unknown config key 'drift.alpah'"),
    ({"alerts": {"sinks": [{"type": "jsonl", "colour": "red"}]}}, r"alerts\.sinks\[0\]\.colour: unknown key"),
    ({"alerts": {"rules": {"feature_psi": {"treshold": 0.3}}}}, r"alerts\.rules\.feature_psi\.treshold: unknown key"),
    ({"alerts": {"rules": {"psi_of_everything": {}}}}, r"alerts\.rules\.psi_of_everything: unknown rule"),
    # wrong types
    ({"training": {"window_spans": "2"}}, r"training\.window_spans must be an integer"),
    ({"retrain": {"require_approval": "yes"}}, r"retrain\.require_approval must be true or false"),
    ({"replay_spans": {"from": 3}}, r"replay_spans must be a list of spans"),
    ({"replay_spans": ["3-x"]}, r"replay_spans\[0\]: span '3-x' is not a span number"),
    ({"schema_version": "../v1"}, r"schema_version must be an integer"),
    ({"alerts": {"delivery": {"max_attempts": 2.5}}}, r"alerts\.delivery\.max_attempts must be int"),
    # thresholds out of range
    ({"drift": {"alpha": 0}}, r"drift\.alpha must be between"),
    ({"drift": {"alpha": 1.5}}, r"drift\.alpha must be between"),
    ({"drift": {"alpha": math.nan}}, r"drift\.alpha must be between"),
    ({"drift": {"max_rows": 10}}, r"drift\.max_rows must be between"),
    ({"drift": {"features": {"fare": {"threshold": -0.1}}}}, r"drift\.features\.fare: threshold must be a finite number >= 0"),
    ({"drift": {"features": {"fare": {"method": "psi", "threshold": math.inf}}}}, r"drift\.features\.fare: threshold"),
    ({"drift": {"features": {"fare": {"method": "kl"}}}}, r"drift\.features\.fare: unknown drift method 'kl'"),
    ({"evaluation": {"metrics": {"AUC": {"baseline_tolerance": -0.1}}}},
     r"evaluation\.metrics\.AUC\.baseline_tolerance must be >= 0"),
    ({"evaluation": {"metrics": {"AUC": {"min": 0.9, "max": 0.8}}}}, r"evaluation\.metrics\.AUC: min 0\.9 is above max"),
    ({"evaluation": {"min_slice_examples": -1}}, r"evaluation\.min_slice_examples must be between 0"),
    ({"training": {"custom_config": [32, 16]}}, r"training\.custom_config must be a mapping"),
    ({"training": {"train_steps": 0}}, r"training\.train_steps must be between"),
    ({"retrain": {"every_spans": 0}}, r"retrain\.every_spans must be between 1"),
    ({"retrain": {"min_spans_between": -1}}, r"retrain\.min_spans_between must be between 0"),
    ({"retrain": {"policy": "sometimes"}}, r"retrain\.policy must be one of"),
    ({"retrain": {"trigger_severity": "fatal"}}, r"retrain\.trigger_severity must be one of"),
    ({"alerts": {"rules": {"feature_psi": {"threshold": 0}}}}, r"alerts\.rules\.feature_psi\.threshold must be > 0"),
    ({"alerts": {"rules": {"metric_drop": {"threshold": 1.5}}}}, r"alerts\.rules\.metric_drop\.threshold must be > 0 and < 1"),
    ({"alerts": {"rules": {"skew": {"threshold": 0.1}}}}, r"alerts\.rules\.skew\.threshold: unknown key"),
    ({"alerts": {"delivery": {"timeout_seconds": 0}}}, r"alerts\.delivery\.timeout_seconds must be > 0"),
    ({"alerts": {"delivery": {"timeout_seconds": -1}}}, r"alerts\.delivery\.timeout_seconds must be > 0"),
    ({"alerts": {"delivery": {"timeout_seconds": math.nan}}}, r"alerts\.delivery\.timeout_seconds must be a finite number"),
    ({"alerts": {"delivery": {"max_attempts": 0}}}, r"alerts\.delivery\.max_attempts must be in 1"),
    ({"alerts": {"delivery": {"backoff_seconds": -5}}}, r"alerts\.delivery\.backoff_seconds must be in 0"),
    # sinks
    ({"alerts": {"sinks": [{"type": "pager"}]}}, r"alerts\.sinks\[0\]\.type: unknown sink type 'pager'; known: jsonl, webhook"),
    ({"alerts": {"sinks": [{"type": "webhook", "url": "https://hooks.example/T0/secret"}]}},
     r"alerts\.sinks\[0\]\.url: secrets are not allowed in the config file"),
    ({"alerts": {"sinks": [{"type": "email", "sender": "a@b.c", "to": ["d@e.f"], "port": 70000}]}},
     r"alerts\.sinks\[0\]\.port must be in 1\.\.65535"),
    # folders
    ({"runs": ""}, r"runs must be a folder path \(not empty"),
    ({"data": {"root": "data\0taxi"}}, r"data\.root must be a folder path .*no NUL byte"),
]


@pytest.mark.parametrize("data, message", BAD, ids=[json.dumps(d)[:60] for d, _ in BAD])
def test_bad_config_names_the_key(tmp_path, data, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(taxi_config(**{"runs": str(tmp_path / "runs"), **data})))
    with pytest.raises(config_lib.ConfigError, match=message) as caught:
        config_lib.load(path)
    assert str(caught.value).startswith(f"{path}: "), "the message names the config file"
    assert not (tmp_path / "runs").exists()


def test_a_rejected_literal_secret_is_not_repeated(tmp_path):
    secret = "https://hooks.example/T0/B0/s3cr3t-token"
    with pytest.raises(config_lib.ConfigError) as caught:
        config_lib.from_dict(taxi_config(alerts={"sinks": [{"type": "slack", "url_env": secret}]}), tmp_path)
    assert "the NAME of an environment variable" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


COMMANDS = [("run",), ("train", "--spans", "1"), ("check", "--span", "1"), ("data", "validate")]


@pytest.mark.parametrize("args", COMMANDS, ids=[a[0] for a in COMMANDS])
def test_a_missing_schema_version_stops_every_command_before_work(tmp_path, args):
    cfg = write_config(tmp_path / "c.json", schema_version=7, runs=str(tmp_path / "runs"), first_spans=[1],
                       replay_spans=[])
    proc = run_cli(*args, config=cfg, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert (f"schema version 7 not found (config key schema_version): {REPO}/schemas/taxi/v7/schema.pbtxt "
            f"does not exist (versions under {REPO}/schemas/taxi: v1, v2") in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_bad_threshold_in_yaml_stops_run_naming_file_and_key(tmp_path):
    import yaml

    cfg = tmp_path / "prod.yaml"
    cfg.write_text(yaml.safe_dump(taxi_config(runs=str(tmp_path / "runs"),
                                              alerts={"delivery": {"timeout_seconds": 0}})))
    proc = run_cli("run", config=cfg, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {cfg}: alerts.delivery.timeout_seconds must be > 0 and <= 300, "
                                   f"got 0.0")
    assert proc.stdout == "" and not (tmp_path / "runs").exists()
