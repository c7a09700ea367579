"""A project's configuration: ``driftguard.yaml``, validated before any work starts.

A project is a folder holding ``driftguard.yaml`` (see ``pipeline/project.py``); every
relative path in the file resolves against that folder. Everything model-specific comes from
here: where the data is and how it is laid out, the model module (TFX's ``preprocessing_fn``
and ``run_fn``), the label, the task, the TFMA metrics and thresholds that gate a candidate,
the monitored features::

    model_name: flights
    task: regression
    data: {format: parquet, root: data, pattern: "{YYYY}-{MM}/*.parquet"}
    model:
      module: model.py
      label: {column: arr_delay}
    evaluation:
      metrics:
        MeanAbsoluteError: {baseline_relative_tolerance: 0.02}
    first_spans: [2013-01, 2013-02]

Unknown keys, wrong types, out-of-range values, a metric that does not fit the task, a model
module that is missing or lacks a function are rejected before any work starts, with the
dotted path of the offending key (``evaluation.metrics.AUC``) in the message.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from driftguard.components import tasks as tasks_lib
from driftguard.components.drift_detector.reference import ReferenceConfigError, ReferenceSettings

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
FORMATS = ("csv", "parquet", "tfrecord")


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range."""


# ---------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the spans are and how to read them (TFX ExampleGen's input)."""

    format: str = "csv"                  # csv | parquet | tfrecord (serialized tf.Example, gzip or not)
    root: str = "data"                   # the folder the pattern is relative to (or s3://bucket/prefix)
    pattern: str = "span-{SPAN}/*"       # the files of one span: {SPAN} or {YYYY}[-{MM}[-{DD}]]
    # Input already split: {split name: pattern}, e.g. {train: "span-{SPAN}/train/*", eval: ...}.
    # Empty: one pattern, split by ExampleGen by hash into `hash_buckets`.
    splits: Optional[Dict[str, str]] = None
    hash_buckets: Optional[Dict[str, int]] = None     # default {train: 2, eval: 1}

    def validate(self, path: str) -> None:
        from driftguard.components.spans import SpanPattern, SpanPatternError

        if self.format not in FORMATS:
            raise ConfigError(f"{path}.format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if isinstance(self.root, str) and "://" in self.root:
            from driftguard.components import storage

            try:
                storage.check_uri(f"{path}.root", self.root)
            except storage.StorageError as e:
                raise ConfigError(str(e)) from None
        else:
            _check_folder(f"{path}.root", self.root)
        patterns = {"pattern": self.pattern}
        if self.splits is not None:
            if not isinstance(self.splits, Mapping) or not self.splits:
                raise ConfigError(f"{path}.splits must be a mapping of split name to pattern "
                                  f"(e.g. {{train: 'span-{{SPAN}}/train/*', eval: 'span-{{SPAN}}/eval/*'}})")
            for name in ("train", "eval"):
                if name not in self.splits:
                    raise ConfigError(f"{path}.splits needs a '{name}' split (Trainer and Evaluator read train "
                                      f"and eval), got {sorted(self.splits)}")
            patterns.update({f"splits.{k}": v for k, v in self.splits.items()})
        kinds = set()
        for key, value in patterns.items():
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{path}.{key} must be a file pattern, got {value!r}")
            try:
                kinds.add(SpanPattern(value).unit)
            except SpanPatternError as e:
                raise ConfigError(f"{path}.{key}: {e}") from None
        if len(kinds) > 1:
            raise ConfigError(f"{path}.splits: every split pattern must use the same span placeholders as "
                              f"{path}.pattern ({self.pattern!r})")
        if self.hash_buckets is not None:
            if self.splits is not None:
                raise ConfigError(f"{path}.hash_buckets applies to one pattern split by hash; with {path}.splits "
                                  f"the input is already split")
            if not isinstance(self.hash_buckets, Mapping) or set(self.hash_buckets) != {"train", "eval"}:
                raise ConfigError(f"{path}.hash_buckets must be {{train: <int>, eval: <int>}}, got {self.hash_buckets!r}")
            for k, v in self.hash_buckets.items():
                if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                    raise ConfigError(f"{path}.hash_buckets.{k} must be an integer in 1..1000, got {v!r}")

    @property
    def span_pattern(self):
        from driftguard.components.spans import SpanPattern

        return SpanPattern(self.pattern)

    @property
    def buckets(self) -> Dict[str, int]:
        return dict(self.hash_buckets or {"train": 2, "eval": 1})


@dataclasses.dataclass(frozen=True)
class LabelConfig:
    """The label: what TFMA evaluates (``key``), and how driftguard reads it from raw rows
    (``column``, or ``fn``, a function of the model module) for realized performance."""

    key: str = ""        # TFMA's label key: a raw column, or a feature of model.transform_signature
    column: str = ""     # the raw column holding the label
    fn: str = ""         # or: a function of the model module (or module.function): pyarrow.Table -> labels

    def validate(self, path: str) -> None:
        if bool(self.column) == bool(self.fn):
            raise ConfigError(f"{path} needs exactly one of column (the raw column holding the label) or fn "
                              f"(a function of the model module computing it from raw rows), got "
                              f"{ {k: v for k, v in dataclasses.asdict(self).items() if v} or 'neither'}")
        if self.fn and not re.fullmatch(r"[A-Za-z_][\w.]*", self.fn):
            raise ConfigError(f"{path}.fn must be a function name (labels) or module.function, got {self.fn!r}")
        if self.fn and not self.key:
            raise ConfigError(f"{path}.key is needed with {path}.fn: the name of the label TFMA evaluates "
                              f"(a feature of the transform signature)")

    @property
    def tfma_key(self) -> str:
        return self.key or self.column


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The user's model: TFX's module_file convention."""

    # A file (relative to the project, like TFX's module_file) or an import path (my_pkg.model)
    # defining preprocessing_fn (Transform) and run_fn (Trainer).
    module: str = ""
    signature: str = "serving_default"      # serialized tf.Example -> outputs (what serving calls)
    output: str = ""                        # the output to read ("": the signature's only output)
    # TFMA's preprocessing function: raw examples -> the label key and weights (""  = none)
    transform_signature: str = "transform_features"
    example_weight_key: str = ""            # TFMA example weight (e.g. 0 for rows without a label)
    label: LabelConfig = LabelConfig()

    def validate(self, path: str) -> None:
        if not self.module or not isinstance(self.module, str):
            raise ConfigError(f"{path}.module is required: the file (model.py) or import path (my_pkg.model) "
                              f"defining preprocessing_fn and run_fn, as TFX's module_file")
        for key in ("signature", "output", "transform_signature", "example_weight_key"):
            value = getattr(self, key)
            if value and not re.fullmatch(r"[A-Za-z_][\w./-]*", value):
                raise ConfigError(f"{path}.{key} must be a name, got {value!r}")
        if not self.signature:
            raise ConfigError(f"{path}.signature must name the serving signature (serving_default)")
        self.label.validate(f"{path}.label")

    @property
    def is_file(self) -> bool:
        return self.module.endswith(".py") or "/" in self.module or os.sep in self.module


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    window_spans: int = 2          # rolling window: the newest N spans train the model
    train_steps: int = 1000
    eval_steps: int = 100
    # Passed to your run_fn as fn_args.custom_config (batch size, layer sizes, ...).
    custom_config: Optional[Dict[str, Any]] = None

    def validate(self, path: str) -> None:
        _check_range(f"{path}.window_spans", self.window_spans, 1, 64)
        _check_range(f"{path}.train_steps", self.train_steps, 1, 10_000_000)
        _check_range(f"{path}.eval_steps", self.eval_steps, 1, 10_000_000)
        if self.custom_config is not None:
            if not isinstance(self.custom_config, Mapping):
                raise ConfigError(f"{path}.custom_config must be a mapping (passed to run_fn as "
                                  f"fn_args.custom_config), got {type(self.custom_config).__name__}")
            try:
                json.dumps(self.custom_config)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{path}.custom_config must hold plain values (JSON): {e}") from None


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """TFMA: the metrics the Evaluator computes and the thresholds that bless a candidate."""

    # {TFMA metric class name: {min, max, baseline_tolerance, baseline_relative_tolerance,
    # higher_is_better}}; None: the task's defaults (components.tasks.DEFAULT_EVAL_METRICS).
    metrics: Optional[Dict[str, Dict[str, Any]]] = None
    slices: Tuple[Tuple[str, ...], ...] = ()   # feature lists: [[payment_type], [company]]
    min_slice_examples: int = 0                 # smaller slices are not evaluated (TFMA min_slice_size)
    gate_slices: bool = False                   # the thresholds apply to every slice too

    def validate(self, path: str, task: str) -> None:
        if self.metrics is not None:
            if not isinstance(self.metrics, Mapping) or not self.metrics:
                raise ConfigError(f"{path}.metrics must map TFMA metric class names to thresholds "
                                  f"(e.g. {{AUC: {{min: 0.7, baseline_tolerance: 0.01}}}})")
            for name, settings in self.metrics.items():
                where = f"{path}.metrics.{name}"
                if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w*", name):
                    raise ConfigError(f"{where}: not a metric class name")
                if settings is None:
                    settings = {}
                if not isinstance(settings, Mapping):
                    raise ConfigError(f"{where} must be a mapping of thresholds ({{}} for none)")
                try:
                    tasks_lib.check_eval_metric(task, name, settings, where)
                except ValueError as e:
                    raise ConfigError(str(e)) from None
        metrics = self.metrics_for(task)
        if not any(s.get("min") is not None or s.get("max") is not None for s in metrics.values()):
            example = {"binary": "AUC: {min: 0.7}", "multiclass": "SparseCategoricalAccuracy: {min: 0.5}",
                       "regression": "MeanAbsoluteError: {max: 40}"}[task]
            raise ConfigError(f"{path}.metrics: no metric has a value threshold (min or max). TFMA blesses the "
                              f"first model on value thresholds alone (there is no blessed baseline to compare "
                              f"with), so it could never be blessed: give one, e.g. {example}")
        for i, features in enumerate(self.slices):
            if not features or not all(isinstance(f, str) and f for f in features):
                raise ConfigError(f"{path}.slices[{i}] must be a non-empty list of feature names, got {list(features)!r}")
        _check_range(f"{path}.min_slice_examples", self.min_slice_examples, 0, 1_000_000_000)

    def metrics_for(self, task: str) -> Dict[str, Dict[str, Any]]:
        if self.metrics is None:
            return {k: dict(v) for k, v in tasks_lib.DEFAULT_EVAL_METRICS[task].items()}
        return {k: dict(v or {}) for k, v in self.metrics.items()}


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
    # Features compared: the schema's serving features (or only `include`), minus `exclude`
    # (e.g. a timestamp: every span's timestamps differ from the training window's by construction).
    include: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    # Per-feature overrides, e.g. {"fare": {"method": "psi", "threshold": 0.2}, "zip": {"kind": "categorical"}}.
    # An integer the schema marks categorical (int_domain.is_categorical) is categorical by default.
    features: Optional[Dict[str, Dict[str, Any]]] = None
    # What a span is compared with: {strategy: training (the serving model's training window) |
    # previous | year_ago | rolling, spans: N (rolling), period: spans per year (year_ago on
    # plain numbered spans)}; see components/drift_detector/reference.py.
    reference: ReferenceSettings = ReferenceSettings()
    # Drift per slice: feature lists as in evaluation.slices ([[payment_type]]); () = none. Not
    # defaulted from evaluation.slices: each slice costs the whole-span check a share of its level.
    slices: Tuple[Tuple[str, ...], ...] = ()
    min_slice_rows: int = 200           # rows a slice needs in the reference and in the span
    slice_alpha_share: float = 0.5      # share of alpha (and of the joint check's level) the slices get

    def validate(self, path: str, span_unit: Optional[str] = None) -> None:
        try:
            self.reference.validate(f"{path}.reference", span_unit)
        except ReferenceConfigError as e:
            raise ConfigError(str(e)) from None
        for i, features in enumerate(self.slices):
            if not features or not all(isinstance(f, str) and f for f in features):
                raise ConfigError(f"{path}.slices[{i}] must be a non-empty list of feature names, got {list(features)!r}")
            if len(set(features)) != len(features):
                raise ConfigError(f"{path}.slices[{i}] names a feature twice: {list(features)!r}")
        _check_range(f"{path}.min_slice_rows", self.min_slice_rows, 10, 1_000_000_000)
        _check_range(f"{path}.slice_alpha_share", self.slice_alpha_share, 0.01, 0.99)
        _check_range(f"{path}.alpha", self.alpha, 1e-9, 0.5)
        _check_range(f"{path}.max_rows", self.max_rows, 100, 100_000_000)
        both = sorted(set(self.include) & set(self.exclude))
        if both:
            raise ConfigError(f"{path}: {', '.join(both)} both included and excluded")
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
    # `trigger_severity` fired) | online (every span, warm-started from the serving model) |
    # impact (the estimated drop of `impact_metric` passes `impact_threshold` with confidence)
    policy: str = "triggered"
    every_spans: int = 4
    trigger_severity: str = "critical"
    # After a training, wait this many spans before a triggered retraining: drift that the
    # new model has not yet seen in its window would otherwise retrain on every span.
    min_spans_between: int = 2
    # Candidates blessed by TFMA wait as "pending" until `driftguard approve <id>`.
    require_approval: bool = False
    # policy impact: retrain when the span's estimated drop of `impact_metric` (default: the
    # metric the metric_drop rules watch), relative to the serving model's value on its held-out
    # rows, is above `impact_threshold` across the whole `impact_confidence` interval
    # (components/impact/effect.py: density-ratio re-weighting, bootstrap standard error).
    impact_threshold: float = 0.02
    impact_confidence: float = 0.95
    impact_metric: str = ""

    def validate(self, path: str, task: str = tasks_lib.BINARY) -> None:
        policies = ("never", "scheduled", "triggered", "online", "impact")
        if self.policy not in policies:
            raise ConfigError(f"{path}.policy must be one of {policies}, got {self.policy!r}")
        _check_range(f"{path}.every_spans", self.every_spans, 1, 10_000)
        _check_range(f"{path}.min_spans_between", self.min_spans_between, 0, 10_000)
        _check_range(f"{path}.impact_threshold", self.impact_threshold, 0.0, 1.0)
        _check_range(f"{path}.impact_confidence", self.impact_confidence, 0.5, 0.9999)
        if self.impact_metric:
            try:
                tasks_lib.check_metric(task, self.impact_metric, f"{path}.impact_metric")
            except ValueError as e:
                raise ConfigError(str(e)) from None
        severities = ("info", "warning", "critical")
        if self.trigger_severity not in severities:
            raise ConfigError(f"{path}.trigger_severity must be one of {severities}, "
                              f"got {self.trigger_severity!r}")


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """``driftguard monitor`` (monitoring/; command-line flags override these)."""

    window: int = 10_000                 # records per window
    step: int = 0                        # records between windows (0: tumbling, = window)
    max_false_alerts_per_100k: float = 1.0   # false-alarm budget over every test and detector
    poll_seconds: float = 5.0            # follow mode: wait between polls of an idle log
    batch_records: int = 16_384          # log records read and committed at once
    label_retention: int = 1_000_000     # predictions (and labels) kept waiting for each other
    stream_features: Tuple[str, ...] = ()    # numeric features with a streaming detector too
    multivariate: bool = True            # the rank-correlation check in every window
    classifier: bool = True              # the domain-classifier check in every window (~0.3 s at 2,000 rows)
    classifier_max_rows: int = 2000      # rows per side it samples: bounds its cost per window
    detector_block: int = 50             # records per CUSUM block

    def validate(self, path: str) -> None:
        _check_range(f"{path}.window", self.window, 100, 100_000_000)
        _check_range(f"{path}.step", self.step, 0, self.window)
        _check_range(f"{path}.max_false_alerts_per_100k", self.max_false_alerts_per_100k, 1e-6, 100_000)
        _check_range(f"{path}.poll_seconds", self.poll_seconds, 0.01, 3600)
        _check_range(f"{path}.batch_records", self.batch_records, 1, 1_000_000)
        _check_range(f"{path}.label_retention", self.label_retention, 1, 1_000_000_000)
        _check_range(f"{path}.detector_block", self.detector_block, 1, 100_000)
        _check_range(f"{path}.classifier_max_rows", self.classifier_max_rows, 40, 1_000_000)


ROLLOUT_MODES = ("shadow", "canary")


@dataclasses.dataclass(frozen=True)
class RolloutConfig:
    """``rollout:`` a blessed candidate becomes the registry's ``challenger`` label while
    ``champion`` stays where it was (components/registry_pusher/labels.py).

    ``mode``: shadow (``driftguard serve`` sends the challenger a copy of every request and answers
    with the champion) or canary (the challenger answers ``canary_share`` of the request ids, by a
    hash of the id). ``driftguard monitor`` compares the two on that traffic
    (monitoring/rollout.py) and, with ``auto``, promotes the challenger once it has ``min_labels``
    labelled records and is not worse than the champion by more than ``margin`` (in the loss's
    unit: error rate for a classifier, absolute error for regression) with confidence, or rolls
    it back (one critical alert) when it is worse with confidence or its error or confidence
    stream changes. The test looks every ``check_every`` challenger labels. Without ``auto`` the
    monitor only reports; ``driftguard promote`` / ``rollback`` decide."""

    mode: str = ""
    canary_share: float = 0.1     # canary only: the share of request ids the challenger answers
    auto: bool = True             # the monitor promotes or rolls back by itself
    min_labels: int = 500         # challenger labels needed before a promotion
    margin: float = 0.01          # how much worse the challenger may be and still be promoted
    check_every: int = 100        # challenger labels between two looks of the sequential test

    def validate(self, path: str) -> None:
        if self.mode not in ROLLOUT_MODES:
            raise ConfigError(f"{path}.mode must be one of {', '.join(ROLLOUT_MODES)}, got {self.mode!r} "
                              f"(leave out {path} to serve a blessed candidate at once)")
        if isinstance(self.canary_share, bool) or not isinstance(self.canary_share, (int, float)) \
                or not 0 < self.canary_share < 1:
            raise ConfigError(f"{path}.canary_share must be a number between 0 and 1 (exclusive), "
                              f"got {self.canary_share!r}")
        if not isinstance(self.auto, bool):
            raise ConfigError(f"{path}.auto must be true or false, got {self.auto!r}")
        _check_range(f"{path}.min_labels", self.min_labels, 1, 100_000_000)
        _check_range(f"{path}.check_every", self.check_every, 1, 100_000_000)
        if isinstance(self.margin, bool) or not isinstance(self.margin, (int, float)) or not self.margin >= 0 \
                or not math.isfinite(self.margin):
            raise ConfigError(f"{path}.margin must be a number >= 0, got {self.margin!r}")


METADATA_KINDS = ("sqlite", "postgresql", "mysql")
METADATA_PORTS = {"postgresql": 5432, "mysql": 3306}


@dataclasses.dataclass(frozen=True)
class MetadataConfig:
    """``metadata:`` where ML Metadata (MLMD) keeps the pipelines' executions and artifacts.

    ``kind: sqlite`` (the default): the file ``<runs>/metadata.sqlite``, one per project.
    ``postgresql`` or ``mysql``: a database server that several projects (and machines) share,
    at ``host``:``port`` (defaults 5432 / 3306), database ``database`` (it must exist: MLMD
    does not create it, so a typo fails instead of starting an empty store), as ``user``, with
    the password read from the environment variable named by ``password_env`` (never from this
    file). ``pipeline/metadata.py`` turns this into ml-metadata's ``ConnectionConfig``."""

    kind: str = "sqlite"
    host: str = "127.0.0.1"
    port: int = 0                 # 0: the kind's default (5432 postgresql, 3306 mysql)
    database: str = ""
    user: str = ""
    password_env: str = ""        # the NAME of the environment variable holding the password

    @property
    def is_server(self) -> bool:
        return self.kind != "sqlite"

    @property
    def server_port(self) -> int:
        return self.port or METADATA_PORTS.get(self.kind, 0)

    def validate(self, path: str) -> None:
        if self.kind not in METADATA_KINDS:
            raise ConfigError(f"{path}.kind must be one of {', '.join(METADATA_KINDS)}, got {self.kind!r}")
        if not self.is_server:
            given = [k for k in ("host", "port", "database", "user", "password_env")
                     if getattr(self, k) != getattr(MetadataConfig, k)]
            if given:
                raise ConfigError(f"{path}.{given[0]} applies to kind postgresql or mysql; kind is sqlite "
                                  f"(the file <runs>/metadata.sqlite)")
            return
        if not self.host or not re.fullmatch(r"[A-Za-z0-9_.:%-]+", self.host):
            raise ConfigError(f"{path}.host must be a host name or IP address, got {self.host!r}")
        _check_range(f"{path}.port", self.port, 0, 65535)
        for key in ("database", "user"):
            value = getattr(self, key)
            if not value or not re.fullmatch(r"[A-Za-z0-9_$.-]{1,63}", value):
                raise ConfigError(f"{path}.{key} is required for kind {self.kind}: a {key} name "
                                  f"(letters, digits, _ $ . -), got {value!r}")
        if self.password_env and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.password_env):
            raise ConfigError(f"{path}.password_env must be the NAME of an environment variable "
                              f"(e.g. DRIFTGUARD_MLMD_PASSWORD), not the password itself")


# ---------------------------------------------------------------- the project's config


@dataclasses.dataclass(frozen=True)
class Config:
    model_name: str = "model"             # registry folder, pipeline names, alert keys
    task: str = "binary"                  # binary | multiclass | regression
    classes: Tuple[str, ...] = ()         # multiclass: the label's values, in the model's output order
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    schemas: str = "schemas"              # <schemas>/<model_name>/v<N>/schema.pbtxt
    schema_version: int = 1
    runs: str = "runs"                    # MLMD, pipeline outputs, registry, reports, outbox, state
    # Where the model registries live (<registry>/<model_name>/<version>/): "" = <runs>/serving,
    # or an object-storage URI s3:// or gs://bucket/prefix (components/storage.py, docs/storage.md)
    registry: str = ""
    # Also copy the HTML reports (dashboard, span pages) to s3:// or gs://bucket/prefix/<model_name>/ after
    # every build; "" = only <runs>/reports (docs/storage.md)
    reports: str = ""
    # Where TFX writes the pipelines' artifacts (examples, statistics, schema, model, evaluation,
    # reports of the span check): "" = <runs>/pipelines, or s3://bucket/prefix (the pipelines go
    # under <pipeline_root>/<pipeline name>; components/object_root.py, docs/storage.md). MLMD,
    # state, logs and caches stay in the local runs folder.
    pipeline_root: str = ""
    first_spans: Tuple[str, ...] = ()     # `driftguard run` trains version 1 on these
    replay_spans: Tuple[str, ...] = ()    # then checks these in time order
    runner: str = "local"                 # local | beam
    beam_args: Tuple[str, ...] = ("--direct_running_mode=in_memory", "--direct_num_workers=1")
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    validation: ValidationConfig = ValidationConfig()
    drift: DriftConfig = DriftConfig()
    retrain: RetrainConfig = RetrainConfig()
    # rules, sinks and delivery: see components/alerts/README.md (None = defaults:
    # every rule, one JSON-lines sink <runs>/alerts.jsonl)
    alerts: Optional[Dict[str, Any]] = None
    monitor: MonitorConfig = MonitorConfig()
    # A blessed candidate becomes the `challenger` label instead of being served (None: no rollout).
    rollout: Optional[RolloutConfig] = None
    # Where MLMD lives: the sqlite file <runs>/metadata.sqlite, or a PostgreSQL / MySQL server.
    metadata: MetadataConfig = MetadataConfig()
    # The project folder (where driftguard.yaml is): set by the loader, not read from the file.
    project_dir: str = ""

    # ---- paths (relative ones resolve against the project folder)
    def _abs(self, p: str) -> pathlib.Path:
        path = pathlib.Path(p)
        if path.is_absolute():
            return path
        if not self.project_dir:
            raise ConfigError(f"relative path {p!r} but no project folder (load the config with "
                              f"driftguard.pipeline.project.load)")
        return pathlib.Path(self.project_dir) / path

    @property
    def project_path(self) -> pathlib.Path:
        return pathlib.Path(self.project_dir)

    @property
    def data_uri(self) -> str:
        """``data.root`` when it is in object storage (s3://...); "" when it is a folder."""
        return self.data.root if "://" in self.data.root else ""

    @property
    def data_path(self) -> pathlib.Path:
        """The spans' folder: ``data.root``; for an s3:// ``data.root``, its local copy
        ``<runs>/data-cache`` (brought up to date by every command: components/storage.py)."""
        if self.data_uri:
            return self.runs_path / "data-cache"
        return self._abs(self.data.root)

    @property
    def runs_path(self) -> pathlib.Path:
        return self._abs(self.runs)

    @property
    def schema_root(self) -> pathlib.Path:
        """The folder of this model's schema versions (v1/, v2/, ...)."""
        return self._abs(self.schemas) / self.model_name

    @property
    def schema_file(self) -> pathlib.Path:
        return self.schema_root / f"v{self.schema_version}" / "schema.pbtxt"

    @property
    def module_path(self) -> Optional[pathlib.Path]:
        """The model module's file, when ``model.module`` is a file (else None: an import path)."""
        return self._abs(self.model.module) if self.model.is_file else None

    @property
    def metadata_path(self) -> pathlib.Path:
        """The sqlite store's file (``metadata.kind: sqlite``); pipeline/metadata.py connects."""
        return self.runs_path / "metadata.sqlite"

    @property
    def pipeline_root_uri(self) -> str:
        """Where TFX writes artifacts: ``pipeline_root`` (a folder or s3://bucket/prefix), by
        default the folder ``<runs>/pipelines``."""
        if self.pipeline_root_is_remote:
            return self.pipeline_root
        return str(self._abs(self.pipeline_root) if self.pipeline_root else self.runs_path / "pipelines")

    @property
    def pipeline_root_is_remote(self) -> bool:
        return "://" in self.pipeline_root

    def pipeline_root_of(self, pipeline_name: str) -> str:
        """The root of one pipeline's artifacts (``<pipeline_root>/<pipeline_name>``)."""
        return f"{self.pipeline_root_uri}/{pipeline_name}"

    @property
    def registry_is_remote(self) -> bool:
        return "://" in self.registry

    @property
    def registry_uri(self) -> str:
        """The model's registry in object storage (``<registry>/<model_name>``); "" when local."""
        return f"{self.registry}/{self.model_name}" if self.registry_is_remote else ""

    @property
    def reports_uri(self) -> str:
        """Where the HTML reports are copied (``<reports>/<model_name>``); "" when only local."""
        return f"{self.reports}/{self.model_name}" if self.reports else ""

    @property
    def serving_root(self) -> pathlib.Path:
        """The local folder of the registries: ``<runs>/serving``; with an object-storage
        registry, the local mirror every reader reads (``<runs>/registry-cache``)."""
        if self.registry_is_remote:
            return self.runs_path / "registry-cache"
        return self.runs_path / "serving"

    @property
    def model_registry(self) -> pathlib.Path:
        return self.serving_root / self.model_name

    def training_pipeline_name(self) -> str:
        return f"{self.model_name}-training"

    def check_pipeline_name(self) -> str:
        return f"{self.model_name}-check"

    # ---- spans
    @property
    def spans(self):
        """The data's :class:`~driftguard.components.spans.SpanPattern` (numbers <-> labels <-> files)."""
        return self.data.span_pattern

    def span_numbers(self, labels) -> List[int]:
        """Span numbers of a list of spans as written (``[1, 2]``, ``["3-8"]``, ``["2013-03..2013-06"]``)."""
        out = set()
        for label in labels:
            out.update(self.spans.parse_list(str(label)))
        return sorted(out)

    def span_label(self, number: int) -> str:
        return self.spans.label(number)

    @property
    def metric(self) -> str:
        """The performance metric the ``metric_drop`` rules watch (alerts.rules.metric_drop.metric)."""
        return self.alerts_settings.rules["metric_drop"].metric or tasks_lib.DEFAULT_METRIC[self.task]

    # ---- validation
    def validate(self) -> "Config":
        if not _NAME_RE.match(self.model_name):
            raise ConfigError(f"model_name must match {_NAME_RE.pattern} (a plain folder name), "
                              f"got {self.model_name!r}")
        if self.task not in tasks_lib.TASKS:
            raise ConfigError(f"task must be one of {', '.join(tasks_lib.TASKS)}, got {self.task!r}")
        if self.task == tasks_lib.MULTICLASS:
            if len(self.classes) < 2:
                raise ConfigError("classes must list the label's values in the model's output order (at least "
                                  f"two) for task multiclass, got {list(self.classes)!r}")
            if len(set(self.classes)) != len(self.classes):
                raise ConfigError(f"classes must be distinct, got {list(self.classes)!r}")
        elif self.classes:
            raise ConfigError(f"classes is for task multiclass; task is {self.task}")
        _check_range("schema_version", self.schema_version, 1, 100_000)
        for key in ("schemas", "runs"):
            _check_folder(key, getattr(self, key))
        if self.registry_is_remote:
            from driftguard.components import storage

            try:
                storage.check_uri("registry", self.registry)
            except storage.StorageError as e:
                raise ConfigError(str(e)) from None
            if self.retrain.require_approval:
                raise ConfigError("retrain.require_approval is not supported with an object-storage registry "
                                  f"(registry: {self.registry}): pending candidates are held by a local rename; "
                                  "see docs/storage.md")
        if self.reports:
            from driftguard.components import storage

            try:
                storage.check_uri("reports", self.reports)
            except storage.StorageError as e:
                raise ConfigError(f"{e} (reports names where the HTML reports are copied; they are always "
                                  f"built in <runs>/reports)") from None
        if self.pipeline_root_is_remote:
            from driftguard.components import object_root

            try:
                object_root.check_uri("pipeline_root", self.pipeline_root)
            except object_root.ObjectRootError as e:
                raise ConfigError(str(e)) from None
        elif self.pipeline_root:
            _check_folder("pipeline_root", self.pipeline_root)
        if self.registry and not self.registry_is_remote:
            raise ConfigError(f"registry must be an object-storage URI (s3:// or gs://bucket/prefix), got {self.registry!r}; "
                              f"leave it out for the local registry <runs>/serving (docs/storage.md)")
        if self.runner not in ("local", "beam"):
            raise ConfigError(f"runner must be 'local' or 'beam', got {self.runner!r}")
        self.data.validate("data")
        self.model.validate("model")
        if self.project_dir:
            self.check_module()
        self.training.validate("training")
        self.evaluation.validate("evaluation", self.task)
        self.validation.validate("validation")
        self.drift.validate("drift", span_unit=self.data.span_pattern.unit)
        self.retrain.validate("retrain", self.task)
        self.monitor.validate("monitor")
        if self.rollout is not None:
            self.rollout.validate("rollout")
        self.metadata.validate("metadata")
        pattern = self.spans
        for key in ("first_spans", "replay_spans"):
            for i, label in enumerate(getattr(self, key)):
                try:
                    pattern.parse_list(label)
                except ValueError as e:
                    raise ConfigError(f"{key}[{i}]: {e}") from None
        self.alerts_settings  # parses and validates the alerts section
        return self

    def check_module(self) -> pathlib.Path:
        """The model module exists, parses and defines preprocessing_fn, run_fn (and the label
        function): read, not imported, so a typo fails in milliseconds, not after TF starts."""
        import sys

        from driftguard.components import model_io

        if not self.model.is_file and self.project_dir not in sys.path:
            # an import path is found from the project folder (then the installed packages), as
            # Python finds a script's modules beside it; TFX's executors import it in this process
            sys.path.insert(0, self.project_dir)
        try:
            path = model_io.check_module(self.model.module, self.project_dir, ["preprocessing_fn", "run_fn"])
            label_fn = self.model.label.fn
            if label_fn and "." not in label_fn:
                model_io.check_module(self.model.module, self.project_dir, [label_fn], where="model.label.fn")
        except model_io.ModelIOError as e:
            raise ConfigError(str(e)) from None
        return path

    def model_spec(self):
        """What the span check, serve and monitor need to know about the model (model_io.ModelSpec)."""
        from driftguard.components import model_io

        module = str(self.module_path) if self.model.is_file else self.model.module
        return model_io.ModelSpec(task=self.task, classes=tuple(self.classes), signature=self.model.signature,
                                  output=self.model.output, label_column=self.model.label.column,
                                  label_fn=self.model.label.fn, module=module, project_dir=self.project_dir)

    @property
    def alerts_settings(self):
        """The ``alerts`` section parsed by ``driftguard.components.alerts`` (raises ConfigError)."""
        from driftguard.components.alerts.config import AlertsConfigError, parse_alerts_config

        try:
            return parse_alerts_config(self.alerts, "alerts", task=self.task)
        except AlertsConfigError as e:
            raise ConfigError(str(e)) from None

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> Dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


# ---------------------------------------------------------------- parsing

# Keys of earlier driftguard versions, and where their value goes now.
_MOVED = {
    "data_root": "data.root",
    "schema_root": "schemas (the folder holding <model_name>/v<N>/schema.pbtxt)",
    "runs_dir": "runs",
    "training.hidden_units": "training.custom_config.hidden_units (passed to your run_fn)",
    "training.learning_rate": "training.custom_config.learning_rate (passed to your run_fn)",
    "training.batch_size": "training.custom_config.batch_size (passed to your run_fn)",
    "evaluation.min_auc": "evaluation.metrics.AUC.min",
    "evaluation.max_auc_drop": "evaluation.metrics.AUC.baseline_tolerance",
    "monitor.label_fn": "model.label.fn",
}


def _check_folder(key: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip() or "\0" in value:
        raise ConfigError(f"{key} must be a folder path (not empty, no NUL byte), got {value!r}")
    if "://" in value:
        raise ConfigError(f"{key}: {value!r}: an object-storage URI is not supported for {key} (registry, "
                          f"reports and data.root may be s3:// or gs://bucket/prefix, pipeline_root s3://; {key} must be a local "
                          f"or mounted folder; see docs/storage.md)")


def _check_range(path: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{path} must be a number, got {value!r}")
    if not lo <= value <= hi:
        raise ConfigError(f"{path} must be between {lo} and {hi}, got {value!r}")


_SPAN_LISTS = ("first_spans", "replay_spans")


def _coerce(path: str, field: dataclasses.Field, value: Any) -> Any:
    """Check one value against the dataclass field's declared type."""
    default = field.default
    if field.name == "rollout" and path == "rollout":
        return _rollout(path, value)
    if field.name == "metadata" and path == "metadata" and isinstance(value, Mapping) and "password" in value:
        raise ConfigError("metadata.password: a password is never read from the config file; put it in an "
                          "environment variable and name that variable in metadata.password_env")
    if dataclasses.is_dataclass(default):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{path} must be a mapping, got {type(value).__name__}")
        return _from_mapping(type(default), value, path)
    if field.name in _SPAN_LISTS:
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list of spans, got {type(value).__name__}: {value!r}")
        for i, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise ConfigError(f"{path}[{i}] must be a span (a number, or a date for calendar spans), got {v!r}")
        return tuple(str(v) for v in value)
    if field.name == "slices":
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list of feature lists, got {value!r}")
        return tuple(tuple(v) if isinstance(v, (list, tuple)) else (v,) for v in value)
    if field.name == "classes":
        if not isinstance(value, (list, tuple)) or any(isinstance(v, (bool, dict, list)) for v in value):
            raise ConfigError(f"{path} must be a list of the label's values, got {value!r}")
        return tuple(str(v) for v in value)
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


def _rollout(path: str, value: Any) -> Optional[RolloutConfig]:
    """``rollout:`` absent or null: no rollout; a mapping needs ``mode``."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path} must be a mapping such as {{mode: canary, canary_share: 0.1}}, "
                          f"got {type(value).__name__}: {value!r}")
    if "mode" not in value:
        raise ConfigError(f"{path}.mode is required: one of {', '.join(ROLLOUT_MODES)}")
    if value.get("mode") == "shadow" and "canary_share" in value:
        raise ConfigError(f"{path}.canary_share applies to mode canary; mode is shadow (the challenger "
                          f"gets a copy of every request)")
    rollout = _from_mapping(RolloutConfig, value, path)
    rollout.validate(path)
    return rollout


def _from_mapping(cls, data: Mapping[str, Any], prefix: str = ""):
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "project_dir"}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            if path in _MOVED:
                raise ConfigError(f"config key {path!r} moved: it is now {_MOVED[path]}")
            raise ConfigError(f"unknown config key {path!r}; known keys here: "
                              f"{', '.join(sorted(fields))}")
        kwargs[key] = _coerce(path, fields[key], value)
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any], project_dir: os.PathLike) -> Config:
    """Build and validate a Config whose relative paths resolve against ``project_dir``."""
    if not isinstance(data, Mapping):
        raise ConfigError("the config must be a mapping at the top level")
    cfg = _from_mapping(Config, data)
    cfg = dataclasses.replace(cfg, project_dir=str(pathlib.Path(project_dir).resolve()))
    return cfg.validate()


def read_file(path: os.PathLike) -> Dict[str, Any]:
    """The mapping in a YAML or JSON config file (ConfigError naming the file otherwise)."""
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
        raise ConfigError(f"config file {p} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping at the top level")
    return data


def load(path: os.PathLike, overrides: Optional[Mapping[str, Any]] = None) -> Config:
    """Load the config file at ``path`` (YAML or JSON); its folder is the project folder."""
    data = read_file(path)
    if overrides:
        data = {**data, **overrides}
    try:
        return from_dict(data, pathlib.Path(path).resolve().parent)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
