"""One configuration object for every path, threshold and policy of driftguard.

Defaults run the embedded demo (sqlite MLMD and local files under ``runs/``) with no file at
all. A YAML or JSON file overrides any subset::

    training:
      window_spans: 3
    evaluation:
      min_auc: 0.75

Unknown keys, wrong types and out-of-range values are rejected before any work starts, with
the dotted path of the offending key (``evaluation.min_auc``) in the message.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    window_spans: int = 2          # rolling window: the newest N spans train the model
    train_steps: int = 150
    eval_steps: int = 50
    batch_size: int = 64
    hidden_units: Tuple[int, ...] = (32, 16)
    learning_rate: float = 0.01

    def validate(self, path: str) -> None:
        _check_range(f"{path}.window_spans", self.window_spans, 1, 64)
        _check_range(f"{path}.train_steps", self.train_steps, 1, 10_000_000)
        _check_range(f"{path}.eval_steps", self.eval_steps, 1, 10_000_000)
        _check_range(f"{path}.batch_size", self.batch_size, 1, 65_536)
        if not self.hidden_units or any(int(u) < 1 for u in self.hidden_units):
            raise ConfigError(f"{path}.hidden_units must be a non-empty list of positive ints, "
                              f"got {list(self.hidden_units)!r}")
        _check_range(f"{path}.learning_rate", self.learning_rate, 1e-6, 10.0)


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    # Value threshold: a candidate below this AUC is never blessed.
    min_auc: float = 0.7
    # Change threshold against the blessed baseline: the candidate's AUC may be at most this
    # much below the baseline's on the same evaluation data (0 = must not be worse at all).
    max_auc_drop: float = 0.01

    def validate(self, path: str) -> None:
        _check_range(f"{path}.min_auc", self.min_auc, 0.0, 1.0)
        _check_range(f"{path}.max_auc_drop", self.max_auc_drop, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    # Anomalies at or above this severity stop the run before Transform and Trainer.
    fail_on_severity: str = "ERROR"

    def validate(self, path: str) -> None:
        allowed = ("ERROR", "WARNING")
        if self.fail_on_severity not in allowed:
            raise ConfigError(f"{path}.fail_on_severity must be one of {allowed}, "
                              f"got {self.fail_on_severity!r}")


@dataclasses.dataclass(frozen=True)
class DriftConfig:
    # Family-wise level of the per-feature tests (driftguard.components.drift.detect_drift).
    alpha: float = 0.01
    # Rows of a span (and of the training window, as the baseline) the exact tests use; a
    # bigger span is sampled uniformly in Beam, its rows and missing values still counted.
    max_rows: int = 100_000
    # Not compared. Time itself: every quarter's timestamps and months differ from the
    # training window's by construction, so they would "drift" on every span and page people
    # about the calendar. Seasonality shows up in the features that depend on it.
    exclude: Tuple[str, ...] = ("trip_start_timestamp", "trip_start_month")
    # Per-feature overrides, e.g. {"fare": {"method": "psi", "threshold": 0.2}}
    features: Optional[Dict[str, Dict[str, Any]]] = None

    def validate(self, path: str) -> None:
        _check_range(f"{path}.alpha", self.alpha, 1e-9, 0.5)
        _check_range(f"{path}.max_rows", self.max_rows, 100, 100_000_000)
        if self.features is None:
            return
        if not isinstance(self.features, Mapping):
            raise ConfigError(f"{path}.features must be a mapping of feature name to settings")
        from driftguard.components.drift.config import as_feature_config

        for name, settings in self.features.items():
            if not isinstance(settings, Mapping):
                raise ConfigError(f"{path}.features.{name} must be a mapping (method, threshold, kind)")
            try:
                as_feature_config(settings)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{path}.features.{name}: {e}") from None


@dataclasses.dataclass(frozen=True)
class RetrainConfig:
    # never | scheduled (every `every_spans` spans) | triggered (an alert of at least
    # `trigger_severity` fired) | online (every span, warm-started from the serving model)
    policy: str = "triggered"
    every_spans: int = 4
    trigger_severity: str = "critical"
    # After a training, wait this many spans before a triggered retraining: drift that the
    # new model has not yet seen in its window would otherwise retrain on every span.
    min_spans_between: int = 2
    # Candidates blessed by TFMA wait as "pending" until `driftguard approve <id>`.
    require_approval: bool = False

    def validate(self, path: str) -> None:
        policies = ("never", "scheduled", "triggered", "online")
        if self.policy not in policies:
            raise ConfigError(f"{path}.policy must be one of {policies}, got {self.policy!r}")
        _check_range(f"{path}.every_spans", self.every_spans, 1, 10_000)
        _check_range(f"{path}.min_spans_between", self.min_spans_between, 0, 10_000)
        severities = ("info", "warning", "critical")
        if self.trigger_severity not in severities:
            raise ConfigError(f"{path}.trigger_severity must be one of {severities}, "
                              f"got {self.trigger_severity!r}")


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """``driftguard monitor`` (monitoring/monitor.py; command-line flags override these)."""

    window: int = 10_000                 # records per window
    step: int = 0                        # records between windows (0: tumbling, = window)
    max_false_alerts_per_100k: float = 1.0   # false-alarm budget over every test and detector
    poll_seconds: float = 5.0            # follow mode: wait between polls of an idle log
    batch_records: int = 16_384          # log records read and committed at once
    label_retention: int = 1_000_000     # predictions (and labels) kept waiting for each other
    stream_features: Tuple[str, ...] = ()    # numeric features with a streaming detector too
    multivariate: bool = True            # the rank-correlation check in every window
    detector_block: int = 50             # records per CUSUM block
    label_fn: str = "driftguard.pipeline.taxi_labels.labels"   # reference rows -> labels (estimated accuracy)

    def validate(self, path: str) -> None:
        _check_range(f"{path}.window", self.window, 100, 100_000_000)
        _check_range(f"{path}.step", self.step, 0, self.window)
        _check_range(f"{path}.max_false_alerts_per_100k", self.max_false_alerts_per_100k, 1e-6, 100_000)
        _check_range(f"{path}.poll_seconds", self.poll_seconds, 0.01, 3600)
        _check_range(f"{path}.batch_records", self.batch_records, 1, 1_000_000)
        _check_range(f"{path}.label_retention", self.label_retention, 1, 1_000_000_000)
        _check_range(f"{path}.detector_block", self.detector_block, 1, 100_000)
        if not re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", self.label_fn):
            raise ConfigError(f"{path}.label_fn must be a dotted path module.function, got {self.label_fn!r}")


@dataclasses.dataclass(frozen=True)
class Config:
    model_name: str = "taxi"
    data_root: str = "data/taxi"          # span-<N>/ folders, read through span-{SPAN}/*
    schema_root: str = "schemas/taxi"     # v<N>/schema.pbtxt
    schema_version: int = 2              # v2: see schemas/taxi/v2 (why it exists)
    runs_dir: str = "runs"                # MLMD, pipeline outputs, registry, reports
    first_spans: Tuple[int, ...] = (1, 2)  # spans that train version 1 in `driftguard run`
    runner: str = "local"                 # local | beam
    beam_args: Tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    validation: ValidationConfig = ValidationConfig()
    drift: DriftConfig = DriftConfig()
    retrain: RetrainConfig = RetrainConfig()
    # spans `driftguard run` replays after training on first_spans (time order)
    replay_spans: Tuple[int, ...] = (3, 4, 5, 6, 7, 8)
    # rules, sinks and delivery: see components/alerts/README.md (None = defaults:
    # every rule, one JSON-lines sink runs/alerts/alerts.jsonl)
    alerts: Optional[Dict[str, Any]] = None
    monitor: MonitorConfig = MonitorConfig()   # driftguard monitor: windows, budget, labels

    # ---- derived paths (relative paths resolve against the repo root, or against the
    # folder of the config file they came from) ----
    def _abs(self, p: str) -> pathlib.Path:
        path = pathlib.Path(p)
        return path if path.is_absolute() else (REPO_ROOT / path)

    @property
    def data_path(self) -> pathlib.Path:
        return self._abs(self.data_root)

    @property
    def runs_path(self) -> pathlib.Path:
        return self._abs(self.runs_dir)

    @property
    def schema_file(self) -> pathlib.Path:
        return self._abs(self.schema_root) / f"v{self.schema_version}" / "schema.pbtxt"

    @property
    def metadata_path(self) -> pathlib.Path:
        return self.runs_path / "metadata.sqlite"

    @property
    def pipeline_root(self) -> pathlib.Path:
        return self.runs_path / "pipelines"

    @property
    def serving_root(self) -> pathlib.Path:
        return self.runs_path / "serving"

    @property
    def model_registry(self) -> pathlib.Path:
        return self.serving_root / self.model_name

    def training_pipeline_name(self) -> str:
        return f"{self.model_name}-training"

    def check_pipeline_name(self) -> str:
        return f"{self.model_name}-check"

    def validate(self) -> "Config":
        if not _NAME_RE.match(self.model_name):
            raise ConfigError(f"model_name must match {_NAME_RE.pattern} (a plain folder name), "
                              f"got {self.model_name!r}")
        _check_range("schema_version", self.schema_version, 1, 100_000)
        _check_folders(self)
        if self.runner not in ("local", "beam"):
            raise ConfigError(f"runner must be 'local' or 'beam', got {self.runner!r}")
        if not self.first_spans or any(int(s) < 0 for s in self.first_spans):
            raise ConfigError(f"first_spans must be a non-empty list of span numbers, "
                              f"got {list(self.first_spans)!r}")
        self.training.validate("training")
        self.evaluation.validate("evaluation")
        self.validation.validate("validation")
        self.drift.validate("drift")
        self.retrain.validate("retrain")
        self.monitor.validate("monitor")
        if any(int(s) < 0 for s in self.replay_spans):
            raise ConfigError(f"replay_spans must be span numbers, got {list(self.replay_spans)!r}")
        self.alerts_settings  # parses and validates the alerts section
        return self

    @property
    def alerts_settings(self):
        """The ``alerts`` section parsed by ``driftguard.components.alerts`` (raises ConfigError)."""
        from driftguard.components.alerts.config import AlertsConfigError, parse_alerts_config

        try:
            return parse_alerts_config(self.alerts, "alerts")
        except AlertsConfigError as e:
            raise ConfigError(str(e)) from None

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def _check_folders(cfg: "Config") -> None:
    """Folders of the config author's choosing (absolute paths welcome), but real paths."""
    for key in ("data_root", "schema_root", "runs_dir"):
        value = getattr(cfg, key)
        if not value.strip() or "\0" in value:
            raise ConfigError(f"{key} must be a folder path (not empty, no NUL byte), got {value!r}")


def _check_range(path: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{path} must be between {lo} and {hi}, got {value!r}")


def _coerce(path: str, field: dataclasses.Field, value: Any) -> Any:
    """Check one value against the dataclass field's declared type."""
    default = field.default
    if dataclasses.is_dataclass(default):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {type(value).__name__}")
        return _from_mapping(type(default), value, path)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {type(value).__name__}: {value!r}")
        elem_type = type(default[0]) if default else str
        for i, v in enumerate(value):
            if elem_type is int and (isinstance(v, bool) or not isinstance(v, int)):
                raise ConfigError(f"{path}[{i}] must be an integer, got {v!r}")
            if elem_type is str and not isinstance(v, str):
                raise ConfigError(f"{path}[{i}] must be a string, got {v!r}")
        return tuple(value)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    return value


def _from_mapping(cls, data: Mapping[str, Any], prefix: str = ""):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key {path!r}; known keys here: "
                              f"{', '.join(sorted(fields))}")
        kwargs[key] = _coerce(path, fields[key], value)
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any], base_dir: Optional[os.PathLike] = None) -> Config:
    """Build and validate a Config; relative paths in ``data`` resolve against ``base_dir``."""
    cfg = _from_mapping(Config, data)
    _check_folders(cfg)          # before relative paths are resolved (and "" becomes base_dir)
    if base_dir is not None:
        changes = {}
        for key in ("data_root", "schema_root", "runs_dir"):
            if key in data and not pathlib.Path(data[key]).is_absolute():
                changes[key] = str((pathlib.Path(base_dir) / data[key]).resolve())
        cfg = dataclasses.replace(cfg, **changes)
    return cfg.validate()


def load(path: Optional[os.PathLike] = None, overrides: Optional[Mapping[str, Any]] = None
         ) -> Config:
    """Load the config file at ``path`` (YAML or JSON), or the defaults when ``path`` is None."""
    data: Dict[str, Any] = {}
    base_dir = None
    if path is not None:
        p = pathlib.Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        text = p.read_text()
        try:
            if p.suffix in (".yaml", ".yml"):
                import yaml
                data = yaml.safe_load(text) or {}
            else:
                data = json.loads(text)
        except Exception as e:  # yaml.YAMLError / json.JSONDecodeError
            raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}"
                              ) from e
        if not isinstance(data, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        base_dir = p.parent
    if overrides:
        data = {**data, **overrides}
    try:
        return from_dict(data, base_dir)
    except ConfigError as e:
        if path is not None:
            raise ConfigError(f"{path}: {e}") from None
        raise


def parse_spans(text: str) -> List[int]:
    """Parse '1,2' or '1-4' or '3' into a sorted list of span numbers."""
    spans: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ConfigError(f"invalid span list {text!r}: use numbers like '3', '1,2' or '1-4'")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if hi < lo:
            raise ConfigError(f"invalid span range {part!r}: end is before start")
        spans.extend(range(lo, hi + 1))
    if not spans:
        raise ConfigError(f"invalid span list {text!r}: no span numbers")
    return sorted(set(spans))
