"""``driftguard monitor``: watch live traffic in the prediction logs, window by window.

What it does, per serving model version (the version that answered, read from each log record):

* **windows** of ``window`` records (tumbling, or sliding every ``step`` records) are compared
  with the version's reference sample (``serving/<model>/<v>/profile/reference_sample``):
  features with :func:`driftguard.components.drift.detect_drift` (the config's ``drift`` settings:
  excluded features, per-feature methods, the schema's categorical ints as categories), the
  model's prediction (probability, class or value: read per task by ``components.model_io``)
  and confidence against its predictions on the reference rows, and the watched performance
  metric estimated without labels (:mod:`driftguard.components.prediction_monitor.performance`:
  CBPE, DLE, fitted on the held-out reference rows);
* **delayed labels** (CSV ``request_id,label``) are joined to logged predictions by request id,
  whichever arrives first; windows of joined labels give the realized metric;
* **streaming detectors** (:class:`driftguard.components.drift.streaming.Cusum`, designed on the
  reference) run on the confidence of every prediction (classifiers), on the error of every
  joined label (0/1 for a classifier, absolute for regression), and on any numeric features named in ``monitor.stream_features``;
* a **false-alarm budget** (``max_false_alerts_per_100k``) is split over all of them with
  :func:`driftguard.components.drift.streaming.budget_split`: each window test runs at the level it gets,
  each detector at the run length it gets;
* **alerts** go through the span check's rules and sinks (``driftguard.components.alerts``), keyed by
  window (``taxi/live/w1000-1999/feature_psi/fare``) so re-evaluating a window after a restart
  sends nothing twice; a critical alert can **trigger retraining** once per serving version;
* **metrics** for Prometheus (``driftguard.monitoring.exporter``) and ``metrics.prom`` for node_exporter.

Restart safety: everything (log position, label file positions, the unfinished windows'
rows, detector states, counters, predictions and labels waiting for each other, the retrain
decision) lives in one sqlite file (``<runs>/monitor/<model>/state.sqlite``) and is committed
in one transaction per batch, after the batch's alerts are in the outbox. A crash (even
SIGKILL) loses the uncommitted batch only, which the next run reads again from the committed
position: nothing is skipped and nothing is counted twice, and its alerts carry the same
keys as before.

Records: one record is one prediction (a request with n instances is n records). With
``max_records``, a run stops at the first request boundary at or after that many records.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import fcntl
import io
import itertools
import json
import logging
import math
import operator
import os
import pathlib
import signal
import sqlite3
import subprocess
import sys
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from driftguard.monitoring import labels as labels_lib
from driftguard.serving import predictlog as pl

log = logging.getLogger(__name__)

STATE_FORMAT = 2                 # 1: one sqlite row per pending prediction/label (read and upgraded)
STATE_FILE = "state.sqlite"
METRICS_FILE = "metrics.prom"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
THRESHOLD = 0.5                  # a probability above it predicts the positive class
RETRAIN_MODES = ("none", "local", "airflow", "kfp")
_MAX_LABEL_ROWS_PER_STEP = 1_000_000


class MonitorError(Exception):
    """Something the user can fix: the message names the file, field or setting at fault."""


# ---------------------------------------------------------------- paths


def state_dir(cfg) -> pathlib.Path:
    return cfg.runs_path / "monitor" / cfg.model_name


def default_log_dir(cfg) -> pathlib.Path:
    return cfg.runs_path / "prediction_logs" / cfg.model_name


# ---------------------------------------------------------------- the serving version's baseline


@dataclasses.dataclass
class Baseline:
    """What live traffic of one model version is compared with."""

    version: int
    task: str                            # binary | multiclass | regression (components.tasks)
    features: List[str]                  # compared features, in schema order
    kinds: Dict[str, str]                # feature -> float | int | string (how the logs carry it)
    reference: Dict[str, np.ndarray]     # feature -> float64 (NaN missing) or object (None missing)
    prediction: np.ndarray               # the model on the reference rows: probability, class index or value
    confidence_values: Optional[np.ndarray]   # top-class probability (classification), else None
    probabilities: Optional[np.ndarray]  # (n, K) class probabilities (classification)
    label: Optional[np.ndarray]          # their labels (NaN unknown), from model.label
    held_out: np.ndarray                 # rows of the eval split (the model did not train on them)
    metric: str                          # the metric the alert rules watch (alerts.rules.metric_drop.metric)
    baseline_metrics: Dict[str, float]   # the task's metrics on the held-out reference rows
    estimated_reference: Dict[str, float]
    not_compared: Dict[str, str]
    n_classes: int = 0
    # the estimate of a window's metrics, fitted once on the held-out reference rows (CBPE, DLE)
    estimator: Any = None
    feature_config: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)

    @property
    def confidence(self) -> np.ndarray:
        if self.confidence_values is None:
            return np.zeros(0)
        c = self.confidence_values
        return c[np.isfinite(c)]

    @property
    def baseline_metric(self) -> Optional[float]:
        return self.baseline_metrics.get(self.metric)

    @functools.cached_property
    def prepared(self):
        """The features' reference, read once for every window (``detect_drift`` then redoes
        only the current side: ~10x faster per window)."""
        from driftguard.components.drift import prepare_reference

        return prepare_reference(self.reference)

    @functools.cached_property
    def prepared_outputs(self):
        """The reference of the prediction and confidence checks, likewise."""
        from driftguard.components.drift import prepare_reference

        return prepare_reference(self.output_columns(self.prediction, self.confidence_values))

    @property
    def output_config(self) -> Dict[str, Dict[str, Any]]:
        return {"prediction": {"kind": "categorical"}} if self.task == "multiclass" else {}

    def output_columns(self, prediction: np.ndarray, confidence: Optional[np.ndarray]) -> Dict[str, np.ndarray]:
        """The model's outputs as drift columns: the prediction (a class name for a multi-class
        model, so the check counts classes), and the confidence of a classifier."""
        keep = np.isfinite(prediction)
        out: Dict[str, np.ndarray] = {}
        if self.task == "multiclass":
            names = np.empty(int(keep.sum()), dtype=object)
            names[:] = [str(int(c)) for c in prediction[keep]]
            out["prediction"] = names
        else:
            out["prediction"] = prediction[keep]
        if self.task == "binary":
            p = prediction[keep]
            out["confidence"] = np.maximum(p, 1.0 - p)
        elif self.task == "multiclass" and confidence is not None:
            out["confidence"] = confidence[keep]
        return out

    def errors(self, prediction: np.ndarray, label: np.ndarray) -> np.ndarray:
        """The error stream of joined labels: 0/1 wrong for a classifier, the absolute error of
        a regression model (both in the units its CUSUM detector is designed on)."""
        if self.task == "regression":
            return np.abs(prediction - label)
        if self.task == "binary":
            return ((prediction > THRESHOLD) != (label > 0.5)).astype(float)
        return (prediction != label).astype(float)

    @property
    def reference_errors(self) -> Optional[np.ndarray]:
        """The error stream on the held-out reference rows (the detector's in-control design)."""
        if self.label is None:
            return None
        have = np.isfinite(self.label) & np.isfinite(self.prediction) & self.held_out
        if have.sum() < 2:
            return None
        return self.errors(self.prediction[have], self.label[have])


_BASELINES: Dict[Tuple[str, str], Baseline] = {}   # in-process: one baseline per model version and config
_DECODERS: Dict[Tuple[Any, ...], Any] = {}


def load_baseline(cfg, version: int) -> Baseline:
    """The reference of ``version``: its profile's sample (model_io.load_baseline), the compared
    features (the schema's serving features, drift.include/exclude, categorical ints as
    categories), the model's predictions on the sample (stored with the profile at push, or
    scored now), the labels (model.label), the task's metrics on the held-out rows and the
    estimator of a window's metrics fitted on them."""
    import pyarrow as pa

    from driftguard.components import model_io
    from driftguard.components.examples_io import column_floats
    from driftguard.components.prediction_monitor import performance

    spec = cfg.model_spec()
    model_dir = cfg.model_registry / str(version)
    memo_key = (str(model_dir.resolve()), spec.to_json() + json.dumps(dataclasses.asdict(cfg.drift), sort_keys=True,
                                                                      default=str) + cfg.metric)
    if memo_key in _BASELINES:
        return _BASELINES[memo_key]
    try:
        b = model_io.load_baseline(cfg.model_registry, version, spec, score=True)
    except model_io.ModelIOError as e:
        raise MonitorError(f"model version {version}: {e}") from None
    table = b.reference
    exclude = set(cfg.drift.exclude)
    features, kinds, reference, not_compared = [], {}, {}, {}
    for name in model_io.compared_features(b.schema, cfg.drift.include, ()):
        if name in exclude:
            not_compared[name] = "excluded by configuration (drift.exclude)"
            continue
        if name not in table.column_names:
            not_compared[name] = "not in the reference sample"
            continue
        col = table.column(name)
        t = col.type
        if pa.types.is_floating(t):
            kind = "float"
        elif pa.types.is_integer(t):
            kind = "int"
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            kind = "string"
        else:
            not_compared[name] = "no value in the reference sample" if pa.types.is_null(t) else f"unsupported type {t}"
            continue
        features.append(name)
        kinds[name] = kind
        if kind == "string":
            values = np.empty(len(col), dtype=object)
            values[:] = col.to_pylist()
            reference[name] = values
        else:
            reference[name] = column_floats(col)
    if not features:
        raise MonitorError(f"model version {version}: no feature of the schema can be compared "
                           f"({not_compared})")
    p = b.predictions
    try:
        label = model_io.labels_of(table, spec)
    except model_io.ModelIOError as e:
        raise MonitorError(f"model version {version}: labels of the reference sample: {e}") from None
    held = b.held_out
    baseline_metrics: Dict[str, float] = {}
    estimated_reference: Dict[str, float] = {}
    estimator = None
    if label is not None:
        ho = p.take(held)
        baseline_metrics = performance.realized(cfg.task, ho.value, label[held])
        feats = {k: v[held] for k, v in reference.items()}
        estimator, note = performance.fit_estimator(cfg.task, ho.value, label[held], ho.probabilities, feats)
        if estimator is not None:
            estimated_reference = estimator.estimate(ho.value, ho.probabilities, feats)
        else:
            log.info("model version %d: %s", version, note)
    baseline = Baseline(version=version, task=cfg.task, features=features, kinds=kinds, reference=reference,
                        prediction=p.value, confidence_values=p.confidence, probabilities=p.probabilities,
                        label=label, held_out=held, metric=cfg.metric, baseline_metrics=baseline_metrics,
                        estimated_reference=estimated_reference, not_compared=not_compared,
                        n_classes=len(cfg.classes), estimator=estimator,
                        feature_config=model_io.feature_kinds(b.schema, cfg.drift.features, features))
    _BASELINES[memo_key] = baseline
    return baseline


def _top_class_matrix(index: np.ndarray, confidence: np.ndarray, k: int) -> np.ndarray:
    """(n, k) probabilities holding only each row's predicted class and its probability (the
    rest spread evenly): what a window keeps of a multi-class model's output."""
    n = index.size
    rest = np.clip((1.0 - confidence) / max(k - 1, 1), 0.0, 1.0)
    out = np.repeat(rest[:, None], k, axis=1)
    out[np.arange(n), index.astype(int)] = confidence
    return out


# ---------------------------------------------------------------- state store


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS window_chunks (first_row INTEGER PRIMARY KEY, last_row INTEGER NOT NULL,
    data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pending_journal (id INTEGER PRIMARY KEY, kind TEXT NOT NULL, rows INTEGER NOT NULL,
    data BLOB NOT NULL);
"""

# What waits for what: a pending prediction is request id -> probability + version * 1j (one
# complex number: a batch of joins becomes arrays in one numpy call, ~0.06 us per join, where
# a tuple per prediction cost ~0.5 us); a pending label is request id -> label. Each commit
# appends one journal entry per kind: the batch's operations in order (op 1 = add or replace
# and move to the end, 0 = remove), so replaying the journal rebuilds each set exactly, in its
# order (the oldest expires first). One sqlite row per record (insert at one commit, delete at
# the next) cost 4-7 us per record;
# an entry costs ~0.1-0.2 us per operation. When the journal holds many more operations than
# the set has entries, the commit writes the whole set instead (a snapshot) and drops the rest.
PENDING_FIELDS: Dict[str, Tuple[Tuple[str, Any, Any], ...]] = {
    "predictions": (("probability", np.float64, np.nan), ("version", np.int64, -1)),
    "labels": (("label", np.float64, np.nan),),
}
_SNAPSHOT_SLACK = 100_000          # journal operations allowed beyond twice the set's size


def _journal_bytes(kind: str, chunks: Sequence[Tuple[int, List[str], Optional[Mapping[str, np.ndarray]]]]
                   ) -> bytes:
    ops: List[np.ndarray] = [np.zeros(0, np.int8)]
    ids: List[str] = []
    columns: Dict[str, List[np.ndarray]] = {name: [np.zeros(0, dtype)] for name, dtype, _ in PENDING_FIELDS[kind]}
    for op, chunk_ids, values in chunks:
        n = len(chunk_ids)
        ops.append(np.full(n, op, np.int8))
        ids.extend(chunk_ids)
        for name, dtype, fill in PENDING_FIELDS[kind]:
            columns[name].append(np.asarray(values[name], dtype=dtype) if op else np.full(n, fill, dtype))
    return _table_bytes({"op": np.concatenate(ops), "request_id": ids,
                         **{name: np.concatenate(parts) for name, parts in columns.items()}})


def _snapshot_chunk(kind: str, pending: Mapping[str, Any]) -> Tuple[int, List[str], Dict[str, np.ndarray]]:
    ids = list(pending)
    if kind == "predictions":
        values = np.fromiter(pending.values(), dtype=np.complex128, count=len(ids))
        columns = {"probability": values.real, "version": values.imag.astype(np.int64)}
    else:
        columns = {"label": np.fromiter(pending.values(), dtype=np.float64, count=len(ids))}
    return 1, ids, columns


def _pending_values(probability: np.ndarray, version) -> List[complex]:
    values = np.empty(probability.size, dtype=np.complex128)
    values.real = probability
    values.imag = version
    return values.tolist()


def _pick(items: List[Any], mask: np.ndarray) -> List[Any]:
    """The items where ``mask`` is true (the list itself when all are)."""
    return items if mask.all() else [items[i] for i in np.flatnonzero(mask).tolist()]


def _replay(kind: str, blobs: Sequence[bytes]) -> Dict[str, Any]:
    pending: Dict[str, Any] = {}
    for data in blobs:
        entry = _table_columns(data)
        if kind == "predictions":
            values = _pending_values(entry["probability"], entry["version"])
        else:
            values = entry["label"].tolist()
        for op, rid, value in zip(entry["op"].tolist(), entry["request_id"].tolist(), values):
            pending.pop(rid, None)
            if op:
                pending[rid] = value
    return pending


class StateStore:
    """The monitor's sqlite file. One :meth:`commit` per batch writes everything at once."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        # Most of what a commit writes is blobs (window rows, journal entries: ~100 bytes per
        # record). With sqlite's defaults (4 KiB pages, a checkpoint every 4 MiB of WAL, each
        # with an fsync) writing them cost ~20 ms per MB here; 64 KiB pages and a 64 MiB WAL
        # ~7 ms (benchmarks/serving_monitor.py). The page size only applies to a new file.
        self.db.execute("PRAGMA page_size=65536")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")   # durable across process crashes (WAL)
        page = self.db.execute("PRAGMA page_size").fetchone()[0]
        self.db.execute(f"PRAGMA wal_autocheckpoint={max(1000, (64 << 20) // page)}")
        self.db.execute(f"PRAGMA journal_size_limit={64 << 20}")
        self.db.executescript(_SCHEMA)
        self._upgrade_format_1()

    def _upgrade_format_1(self) -> None:
        """Format 1 kept one row per pending prediction and label: moved into one journal
        snapshot per kind, in the same order, in one transaction."""
        db = self.db
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "pending_predictions" not in tables:
            return
        predictions = {r[0]: complex(float("nan") if r[1] is None else r[1], r[2]) for r in db.execute(
            "SELECT request_id, probability, version FROM pending_predictions ORDER BY seq")}
        labels = {r[0]: r[1] for r in db.execute("SELECT request_id, label FROM pending_labels ORDER BY seq")}
        db.execute("BEGIN IMMEDIATE")
        try:
            for kind, pending in (("predictions", predictions), ("labels", labels)):
                db.execute("INSERT INTO pending_journal (kind, rows, data) VALUES (?, ?, ?)",
                           (kind, len(pending), _journal_bytes(kind, [_snapshot_chunk(kind, pending)])))
            db.execute("DROP TABLE pending_predictions")
            db.execute("DROP TABLE pending_labels")
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('format', ?)", (json.dumps(STATE_FORMAT),))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        log.info("%s: state format 1 upgraded to %d (%d pending prediction(s), %d label(s) kept)", self.path,
                 STATE_FORMAT, len(predictions), len(labels))

    def meta(self) -> Dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def blob(self, key: str) -> Optional[bytes]:
        row = self.db.execute("SELECT value FROM blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def window_chunks(self) -> List[bytes]:
        return [bytes(r[0]) for r in self.db.execute("SELECT data FROM window_chunks ORDER BY first_row")]

    def pending(self, kind: str) -> Tuple[Dict[str, Any], int]:
        """The committed pending set of ``kind`` ("predictions" or "labels"), in order, and the
        number of operations its journal holds."""
        rows = self.db.execute("SELECT rows, data FROM pending_journal WHERE kind = ? ORDER BY id", (kind,)).fetchall()
        return _replay(kind, [bytes(r[1]) for r in rows]), sum(r[0] for r in rows)

    def commit(self, meta: Mapping[str, Any], blobs: Mapping[str, bytes],
               journal: Mapping[str, Tuple[bool, int, bytes]] = {},
               chunks: Tuple[bool, Optional[int], Sequence[Tuple[int, int, bytes]]] = (False, None, ())) -> None:
        """One transaction. ``journal``: kind -> (snapshot: replaces the kind's entries, number of
        operations, entry); ``chunks`` = (drop all, drop those ending before this row, new ones)."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()])
            db.executemany("INSERT OR REPLACE INTO blobs (key, value) VALUES (?, ?)", list(blobs.items()))
            clear, before, new = chunks
            if clear:
                db.execute("DELETE FROM window_chunks")
            elif before is not None:
                db.execute("DELETE FROM window_chunks WHERE last_row < ?", (before,))
            db.executemany("INSERT OR REPLACE INTO window_chunks (first_row, last_row, data) VALUES (?, ?, ?)", new)
            for kind, (snapshot, n, data) in journal.items():
                if snapshot:
                    db.execute("DELETE FROM pending_journal WHERE kind = ?", (kind,))
                db.execute("INSERT INTO pending_journal (kind, rows, data) VALUES (?, ?, ?)", (kind, n, data))
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()


def _table_bytes(columns: Mapping[str, Union[np.ndarray, List[str]]]) -> bytes:
    """Columns (numpy arrays; object arrays or lists of str for text) as an Arrow IPC file."""
    import pyarrow as pa

    arrays, names = [], []
    for name, values in columns.items():
        if isinstance(values, list):
            arrays.append(pa.array(values, type=pa.string()))
        elif values.dtype == object:
            arrays.append(pa.array(values.tolist(), type=pa.string()))
        else:
            arrays.append(pa.array(values))
        names.append(name)
    sink = io.BytesIO()
    table = pa.Table.from_arrays(arrays, names=names)
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _table_columns(data: Optional[bytes]) -> Dict[str, np.ndarray]:
    if not data:
        return {}
    import pyarrow as pa

    table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_string(col.type):
            values = np.empty(len(col), dtype=object)
            values[:] = col.to_pylist()
            out[name] = values
        else:
            out[name] = col.to_numpy()
    return out


# ---------------------------------------------------------------- the monitor


def _new_counters() -> Dict[str, Any]:
    return {"records": 0, "log_records": 0, "skipped": {}, "windows": 0, "label_windows": 0, "discarded": 0,
            "labels_read": 0, "labels_joined": 0, "labels_expired": 0, "predictions_expired": 0, "without_id": 0,
            "alerts": {}, "detector_alarms": {}, "retrain_triggers": 0, "window_errors": 0}


@dataclasses.dataclass
class StepResult:
    records: int = 0
    log_records: int = 0
    labels: int = 0
    windows: int = 0
    alerts: int = 0

    @property
    def idle(self) -> bool:
        return not (self.records or self.log_records or self.labels)


class Monitor:
    """The monitoring engine over one prediction log source and one state folder.

    ``Monitor(cfg, logs=..., labels=..., state=...)`` restores the committed state;
    :meth:`step` processes one batch and commits; :meth:`run` loops.
    """

    def __init__(self, cfg, *, logs: Optional[pathlib.Path] = None, labels: Optional[pathlib.Path] = None,
                 state: Optional[pathlib.Path] = None, retrain: Optional["Retrainer"] = None,
                 config_path: Optional[str] = None):
        self.cfg = cfg
        self.settings = cfg.monitor
        self.logs = pathlib.Path(logs) if logs is not None else default_log_dir(cfg)
        self.labels_path = pathlib.Path(labels) if labels is not None else None
        self.state_dir = pathlib.Path(state) if state is not None else state_dir(cfg)
        if not self.logs.exists():
            raise MonitorError(f"prediction log folder {self.logs} does not exist (driftguard serve writes "
                               "it; TF Serving writes where its logging config says; pass --logs PATH)")
        if self.labels_path is not None and not self.labels_path.exists():
            raise MonitorError(f"labels file or folder {self.labels_path} does not exist")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.state_dir / ".lock", "w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise MonitorError(f"another driftguard monitor is using {self.state_dir}; stop it first, or "
                               "give this one another --state-dir") from None
        self.alerts_config = cfg.alerts_settings
        self.retrainer = retrain or Retrainer(cfg, mode="none", state_dir=self.state_dir, config_path=config_path)
        self.store = StateStore(self.state_dir / STATE_FILE)
        self._baselines: Dict[int, Baseline] = {}
        self._decoder = None
        self._record_bytes = 1024.0     # log bytes per record, to size reads
        self._restore()

    # -- state

    def _restore(self) -> None:
        meta = self.store.meta()
        fmt = meta.get("format")
        if fmt is not None and fmt != STATE_FORMAT:
            raise MonitorError(f"{self.store.path}: state format {fmt}, this driftguard reads format {STATE_FORMAT}; "
                               "move the folder away to start afresh")
        source = str(self.logs.resolve())
        if meta.get("logs") not in (None, source):
            raise MonitorError(f"{self.store.path} follows the prediction log {meta['logs']}, not {source}: "
                               "positions would not mean anything there; give this log another --state-dir")
        labels_source = labels_lib.files_signature(self.labels_path)
        if meta.get("labels_source") not in (None, labels_source):
            raise MonitorError(f"{self.store.path} joined labels from {meta['labels_source']}, not "
                               f"{labels_source}; give this source another --state-dir")
        self.position = pl.Position.from_dict(meta.get("position"))
        self.label_positions: Dict[str, Dict[str, int]] = meta.get("label_positions", {})
        self.counters = {**_new_counters(), **meta.get("counters", {})}
        self.serving: Dict[str, Any] = meta.get("serving", {"version": None, "origin": 0, "next_end": None})
        self.label_window: Dict[str, Any] = meta.get("label_window", {"first": 0})
        self.retrain_state: Dict[str, Any] = meta.get("retrain", {"versions": {}})
        self.last_window: Dict[str, Any] = meta.get("last_window", {})
        self.last_label_window: Dict[str, Any] = meta.get("last_label_window", {})
        self.lag: Dict[str, Any] = meta.get("lag", {})
        self.budget_info: Dict[str, Any] = meta.get("budget", {})
        # the unfinished windows' rows: chunks appended batch by batch (writing the whole buffer
        # at every commit would cost O(window) per batch), trimmed to the rows still needed
        self.buffer = {}
        for part in map(_table_columns, self.store.window_chunks()):
            self.buffer = {k: np.concatenate([self.buffer[k], v]) for k, v in part.items()} if self.buffer else part
        if self.buffer and self.serving.get("next_end") is not None:
            cut = int(np.searchsorted(self.buffer["row"], self.serving["next_end"] - self.settings.window))
            self.buffer = {k: v[cut:] for k, v in self.buffer.items()}
        self._persisted_row = int(self.buffer["row"][-1]) if self.buffer and len(self.buffer["row"]) else -1
        self._chunks_clear = False
        self.label_buffer = _table_columns(self.store.blob("label_buffer"))
        self.pending_predictions, journal_p = self.store.pending("predictions")
        self.pending_labels, journal_l = self.store.pending("labels")
        self._journal_rows = {"predictions": journal_p, "labels": journal_l}
        self._detector_states: Dict[str, Any] = meta.get("detectors", {})
        self.detectors: Dict[str, Any] = {}
        self.detectors_off: Dict[str, str] = {}      # stream -> why it has no detector
        if self.serving.get("version") is not None:
            from driftguard.components.drift.streaming import StreamDetector

            for name, d in self._detector_states.items():
                self.detectors[name] = StreamDetector.from_state(name, d)
        # the pending sets' operations since the last commit, in order: (1, ids, values) adds
        # (or replaces and moves to the end), (0, ids, None) removes
        self._ops: Dict[str, List[Tuple[int, List[str], Optional[Dict[str, np.ndarray]]]]] = {
            "predictions": [], "labels": []}

    def _commit(self) -> None:
        meta = {
            "format": STATE_FORMAT, "logs": str(self.logs.resolve()),
            "labels_source": labels_lib.files_signature(self.labels_path),
            "position": self.position.to_dict(), "label_positions": self.label_positions,
            "counters": self.counters, "serving": self.serving, "label_window": self.label_window,
            "retrain": self.retrain_state,
            "last_window": self.last_window, "last_label_window": self.last_label_window, "lag": self.lag,
            "budget": self.budget_info,
            "detectors": {name: d.state_dict() for name, d in self.detectors.items()},
        }
        blobs = {"label_buffer": _table_bytes(self.label_buffer)}
        new_chunks = []
        rows = self.buffer.get("row")
        keep_from = None
        if rows is not None and len(rows):
            keep_from = int(rows[0])
            at = int(np.searchsorted(rows, self._persisted_row + 1))
            if at < len(rows):
                part = {k: v[at:] for k, v in self.buffer.items()}
                new_chunks.append((int(rows[at]), int(rows[-1]), _table_bytes(part)))
                self._persisted_row = int(rows[-1])
        elif self.serving.get("next_end") is not None:
            keep_from = self.serving["next_end"] - self.settings.window
        journal, journal_rows = {}, {}
        for kind, pending in (("predictions", self.pending_predictions), ("labels", self.pending_labels)):
            ops = self._ops[kind]
            n = sum(len(ids) for _, ids, _ in ops)
            if not n:
                continue
            if self._journal_rows[kind] + n > 2 * len(pending) + _SNAPSHOT_SLACK:
                journal[kind] = (True, len(pending), _journal_bytes(kind, [_snapshot_chunk(kind, pending)]))
                journal_rows[kind] = len(pending)
            else:
                journal[kind] = (False, n, _journal_bytes(kind, ops))
                journal_rows[kind] = self._journal_rows[kind] + n
        self.store.commit(meta, blobs, journal, (self._chunks_clear, keep_from, new_chunks))
        self._journal_rows.update(journal_rows)
        self._ops = {"predictions": [], "labels": []}
        self._chunks_clear = False

    # -- baselines, budget, detectors

    def baseline(self, version: int) -> Baseline:
        if version not in self._baselines:
            self._baselines[version] = load_baseline(self.cfg, version)
        return self._baselines[version]

    def _registry_versions(self) -> List[int]:
        from driftguard.components.registry_pusher.registry import existing_versions

        return existing_versions(self.cfg.model_registry)

    @property
    def step_records(self) -> int:
        return int(self.settings.step or self.settings.window)

    def budget(self, baseline: Baseline):
        from driftguard.components.drift.streaming import budget_split

        n_tests = 2 + int(self.settings.multivariate)                       # features (+ joint), outputs
        n_tests += int(bool(baseline.estimated_reference))                  # estimated performance
        n_tests += int(self.labels_path is not None)                        # realized performance
        n_detectors = int(baseline.confidence.size > 0)                     # confidence (classifiers)
        n_detectors += int(self.labels_path is not None and baseline.reference_errors is not None)
        n_detectors += len([f for f in self.settings.stream_features if f in baseline.features])
        return budget_split(self.settings.max_false_alerts_per_100k, n_window_tests=n_tests,
                            window_step=self.step_records, n_stream_detectors=n_detectors)

    def _build_detectors(self, baseline: Baseline) -> None:
        from driftguard.components.drift.streaming import Cusum

        budget = self.budget(baseline)
        block = self.settings.detector_block
        streams: List[Tuple[str, np.ndarray, str]] = []
        if baseline.confidence.size:
            streams.append(("confidence", baseline.confidence, "mean"))
        if self.labels_path is not None and baseline.reference_errors is not None:
            streams.append(("error", baseline.reference_errors, "mean"))
        for name in self.settings.stream_features:
            if name not in baseline.features:
                raise MonitorError(f"monitor.stream_features names {name!r}, which is not a compared feature of "
                                   f"model version {baseline.version} (compared: {', '.join(baseline.features)})")
            if baseline.kinds[name] == "string":
                raise MonitorError(f"monitor.stream_features: {name!r} is categorical; streaming detectors take "
                                   "numeric features (its drift is tested in every window)")
            values = baseline.reference[name]
            streams.append((name, values[np.isfinite(values)], "rank"))
        self.detectors, self.detectors_off = {}, {}
        for name, values, transform in streams:
            try:
                self.detectors[name] = Cusum.from_reference(name, values, arl0_records=budget.arl0_records,
                                                            block=block, transform=transform)
            except ValueError as e:
                log.warning("no streaming detector on %s: %s", name, e)
                self.detectors_off[name] = str(e)
        self.budget_info = {"alpha": budget.alpha_per_window_test, "arl0_records": budget.arl0_records,
                            "max_false_per_100k": budget.max_false_per_100k, "window_tests": budget.n_window_tests,
                            "detectors": budget.n_stream_detectors}

    def _switch_version(self, version: int, first_row: int) -> Baseline:
        baseline = self.baseline(version)
        old = self.serving.get("version")
        if old is not None:
            dropped = len(self.buffer.get("row", ()))
            self.counters["discarded"] += dropped
            log.info("serving version %s -> %s at record %d; %d record(s) of an unfinished window dropped",
                     old, version, first_row, dropped)
        self.serving = {"version": version, "origin": first_row, "next_end": first_row + self.settings.window}
        self.buffer = {}
        self._chunks_clear = True
        self._persisted_row = first_row - 1
        self.label_buffer = {}
        self.label_window = {"first": self.counters["labels_joined"]}
        self._build_detectors(baseline)
        return baseline

    def _decoder_for(self, baseline: Baseline):
        from driftguard.monitoring.logreader import LogDecoder

        spec = self.cfg.model_spec()
        if self._decoder is None or self._decoder.kinds != baseline.kinds or self._decoder.spec != spec:
            key = (tuple(sorted(baseline.kinds.items())), spec.to_json())
            if key not in _DECODERS:           # one per process: tracing its graphs takes seconds
                _DECODERS[key] = LogDecoder(baseline.kinds, spec)
            self._decoder = _DECODERS[key]
        return self._decoder

    # -- one step

    def step(self, max_records: Optional[int] = None) -> StepResult:
        """Read new labels, then at most one batch of log records; evaluate every window that
        closes; deliver the alerts; commit. Returns what was processed."""
        from driftguard.monitoring.logreader import read_batch

        result = StepResult()
        alerts: List[Any] = []
        if self.labels_path is not None:
            result.labels = self._ingest_labels(alerts)
        limit = self.settings.batch_records if max_records is None else min(self.settings.batch_records, max_records)
        batch = None
        if limit > 0:   # read about what the batch needs (the next batch reads from its end anyway)
            batch = read_batch(self.logs, self.position, max_records=limit,
                               max_bytes=int(limit * self._record_bytes * 1.25) + (64 << 10))
        if batch is not None and len(batch):
            self._record_bytes = max(64.0, batch.framed_bytes / len(batch))
            baseline = self._current_or_newest()
            decoded = self._decoder_for(baseline).decode(batch, request_ids=self.labels_path is not None)
            for where, why in decoded.skipped:
                log.warning("skipped %s: %s", where, why)
            if decoded.skipped:
                self.counters["skipped"]["unreadable"] = self.counters["skipped"].get("unreadable", 0) + \
                    len(decoded.skipped)
            result.records = decoded.n
            result.log_records = len(batch)
            self.counters["log_records"] += len(batch)
            result.windows = self._process(decoded, alerts)
            if decoded.last_timestamp:
                self.lag["record_time"] = decoded.last_timestamp
        if batch is not None:
            self.position = batch.position
        if batch is None and not result.labels and not alerts:
            self._update_lag()
            return result
        self._update_lag()
        if alerts:
            self._deliver(alerts)
            result.alerts = len(alerts)
            self.retrainer.maybe_trigger(self, alerts)
        self._commit()
        return result

    def _current_or_newest(self) -> Baseline:
        version = self.serving.get("version")
        if version is None:
            versions = self._registry_versions()
            if not versions:
                raise MonitorError(f"no model version in {self.cfg.model_registry}: nothing to compare traffic with "
                                   "(train one: driftguard train --spans 1,2)")
            version = versions[-1]
        return self.baseline(version)

    def _process(self, d, alerts: List[Any]) -> int:
        """Rows of a decoded batch, in runs of one model version."""
        versions = d.versions
        current = self.serving.get("version")
        if current is None:
            current = self._current_or_newest().version
        versions = np.where(versions < 0, current, versions)
        bounds = np.flatnonzero(np.diff(versions)) + 1
        starts = np.concatenate([[0], bounds])
        ends = np.concatenate([bounds, [versions.size]])
        known = set(self._registry_versions())
        windows = 0
        for a, b in zip(starts.tolist(), ends.tolist()):
            if a == b:
                continue
            v = int(versions[a])
            if v not in known and v not in self._baselines:
                reason = "unknown_version"
                self.counters["skipped"][reason] = self.counters["skipped"].get(reason, 0) + (b - a)
                log.warning("%d record(s) answered by model version %d, which is not in %s; skipped", b - a, v,
                            self.cfg.model_registry)
                continue
            columns = {k: c[a:b] for k, c in d.columns.items()}
            conf = d.confidence[a:b] if d.confidence is not None else np.full(b - a, np.nan)
            windows += self._rows(v, columns, d.probability[a:b], d.request_ids[a:b], alerts, conf)
        return windows

    def _rows(self, version: int, columns, prob: np.ndarray, ids: np.ndarray, alerts: List[Any],
              confidence: Optional[np.ndarray] = None) -> int:
        """Records of one version: ``prob`` is the prediction as model_io reads it (the positive-
        class probability, the class index, the value), ``confidence`` a multi-class model's
        top-class probability."""
        first = int(self.counters["records"])
        if self.serving.get("version") != version:
            baseline = self._switch_version(version, first)
        else:
            baseline = self.baseline(version)
        n = prob.size
        rows = np.arange(first, first + n, dtype=np.int64)
        self.counters["records"] += n
        finite = np.isfinite(prob)
        if baseline.task == "binary":
            conf = np.maximum(prob, 1.0 - prob)
        elif baseline.task == "multiclass" and confidence is not None:
            conf = confidence
        else:
            conf = None
        if conf is not None:
            self._feed("confidence", conf[finite], rows[finite], alerts)
        for name in self.settings.stream_features:
            if name in self.detectors:
                values = columns[name]
                ok = np.isfinite(values)
                self._feed(name, values[ok], rows[ok], alerts)
        if self.labels_path is not None:
            self._join_predictions(version, prob, ids, alerts)
        else:
            self.counters["without_id"] += ids.tolist().count(None)
        # the window buffer
        new = {f: columns[f] for f in baseline.features}
        new["probability"] = prob
        if baseline.task == "multiclass":
            new["confidence"] = confidence if confidence is not None else np.full(n, np.nan)
        new["row"] = rows
        if self.buffer:
            self.buffer = {k: np.concatenate([self.buffer[k], new[k]]) for k in new}
        else:
            self.buffer = new
        windows = 0
        window, step = self.settings.window, self.step_records
        last_row = first + n - 1
        while self.serving["next_end"] - 1 <= last_row:
            end = self.serving["next_end"]
            start = end - window
            lo = int(np.searchsorted(self.buffer["row"], start))
            hi = int(np.searchsorted(self.buffer["row"], end))
            self._evaluate_window(baseline, start, end - 1, {k: v[lo:hi] for k, v in self.buffer.items()}, alerts)
            windows += 1
            self.serving["next_end"] = end + step
        keep_from = self.serving["next_end"] - window
        cut = int(np.searchsorted(self.buffer["row"], keep_from))
        if cut:
            self.buffer = {k: v[cut:] for k, v in self.buffer.items()}
        return windows

    # -- streaming detectors

    def _feed(self, stream: str, values: np.ndarray, rows: np.ndarray, alerts: List[Any], scope_prefix: str = "r"
              ) -> None:
        det = self.detectors.get(stream)
        if det is None or not values.size:
            return
        before = det.n_records
        for alarm in det.update(values):
            at = int(rows[alarm.index_in_stream - before - 1])
            self.counters["detector_alarms"][stream] = self.counters["detector_alarms"].get(stream, 0) + 1
            info = alarm.to_dict()
            info.update(detector="CUSUM", transform=det.design.transform, version=self.serving["version"],
                        record=at)
            log.info("streaming detector %s alarmed (%s) at %s%d", stream, alarm.direction, scope_prefix, at)
            self._raise(alerts, scope=f"live/{scope_prefix}{at}", alarms=[info])

    # -- labels

    def _ingest_labels(self, alerts: List[Any]) -> int:
        rows, positions = labels_lib.read_new(self.labels_path, self.label_positions,
                                              max_rows=_MAX_LABEL_ROWS_PER_STEP,
                                              parser=labels_lib.LabelParser(self.cfg.task, tuple(self.cfg.classes)))
        self.label_positions = positions
        n = len(rows)
        if not n:
            return 0
        self.counters["labels_read"] += n
        ids = rows.ids
        found, hits = self._take("predictions", ids)
        if hits:
            joined = np.array(hits, dtype=np.complex128)
            self._joined(joined.real, rows.values[found], joined.imag, alerts)
        if not found.all():
            values = rows.values[~found]
            self._add_pending("labels", _pick(ids, ~found), values.tolist(), {"label": values})
            self.counters["labels_expired"] += self._expire("labels")
        return n

    def _pending(self, kind: str) -> Dict[str, Any]:
        return self.pending_predictions if kind == "predictions" else self.pending_labels

    def _take(self, kind: str, ids: List[Optional[str]]) -> Tuple[np.ndarray, List[Any]]:
        """Remove the ``ids`` waiting in the pending set ``kind`` (a label's prediction, a
        prediction's label): which were there, and their values, in order. dict.pop mapped over
        the batch keeps the per-id work in C (a Python loop cost ~1-2 us per id)."""
        hits = list(map(self._pending(kind).pop, ids, itertools.repeat(None)))   # None ids never match
        found = np.fromiter(map(operator.is_not, hits, itertools.repeat(None)), dtype=bool, count=len(ids))
        if not found.any():
            return found, []
        self._ops[kind].append((0, _pick(ids, found), None))
        return found, _pick(hits, found)

    def _add_pending(self, kind: str, ids: List[str], values: Sequence[Any], columns: Dict[str, np.ndarray]) -> None:
        """Add ``ids`` (with ``values``) at the end of a pending set, in order; an id already
        there is replaced and moves to the end."""
        pending = self._pending(kind)
        size = len(pending)
        pending.update(zip(ids, values))
        if len(pending) != size + len(ids):     # an id seen again (a client retrying): update() kept
            for rid in list(dict.fromkeys(reversed(ids)))[::-1]:    # its old place; move the ids to
                pending[rid] = pending.pop(rid)                     # the end, by last occurrence
        self._ops[kind].append((1, ids, columns))

    def _expire(self, kind: str) -> int:
        """Drop the oldest entries beyond ``label_retention``; returns how many."""
        pending = self._pending(kind)
        excess = len(pending) - self.settings.label_retention
        if excess <= 0:
            return 0
        old = list(itertools.islice(iter(pending), excess))
        for rid in old:
            del pending[rid]
        self._ops[kind].append((0, old, None))
        return excess

    def _join_predictions(self, version: int, prob: np.ndarray, ids: np.ndarray, alerts: List[Any]) -> None:
        ids_list = ids.tolist()
        found, hits = self._take("labels", ids_list)
        if hits:
            self._joined(prob[found], np.array(hits, dtype=np.float64), np.full(len(hits), version, np.float64),
                         alerts)
        wait = ~found
        without = ids_list.count(None)
        if without:
            self.counters["without_id"] += without
            wait &= np.fromiter(map(operator.is_not, ids_list, itertools.repeat(None)), dtype=bool, count=len(ids_list))
        if wait.any():
            p = prob[wait]
            self._add_pending("predictions", _pick(ids_list, wait), _pending_values(p, version),
                              {"probability": p, "version": np.full(p.size, version, np.int64)})
            self.counters["predictions_expired"] += self._expire("predictions")

    def _joined(self, prob: np.ndarray, label: np.ndarray, versions: np.ndarray, alerts: List[Any]) -> None:
        """Labels matched to predictions, in join order: the error stream and label windows."""
        if not prob.size:
            return
        first = int(self.counters["labels_joined"])
        self.counters["labels_joined"] += prob.size
        version = self.serving.get("version")
        index = np.arange(first, first + prob.size, dtype=np.int64)
        mine = (versions == version) & np.isfinite(prob)
        if not mine.any():
            return
        prob, label, index = prob[mine].astype(np.float64), label[mine].astype(np.float64), index[mine]
        baseline = self.baseline(version)
        self._feed("error", baseline.errors(prob, label), index, alerts, scope_prefix="j")
        new = {"probability": prob, "label": label, "join": index}
        if self.label_buffer:
            self.label_buffer = {k: np.concatenate([self.label_buffer[k], new[k]]) for k in new}
        else:
            self.label_buffer = new
        size = self.step_records
        while len(self.label_buffer["join"]) >= size:
            part = {k: v[:size] for k, v in self.label_buffer.items()}
            self.label_buffer = {k: v[size:] for k, v in self.label_buffer.items()}
            self._evaluate_label_window(baseline, part, alerts)

    # -- windows

    def _evaluate_window(self, baseline: Baseline, first: int, last: int, rows: Mapping[str, np.ndarray],
                         alerts: List[Any]) -> None:
        from driftguard.components.drift import DriftInputError, detect_drift

        alpha = self.budget_info["alpha"]
        features = {f: rows[f] for f in baseline.features}
        feature_config = baseline.feature_config
        self.counters["windows"] += 1
        scope = f"live/w{first}-{last}"
        try:
            report = detect_drift(baseline.prepared, features, feature_config=feature_config, alpha=alpha,
                                  multivariate=self.settings.multivariate, multivariate_alpha=alpha,
                                  all_missing="compare")
        except DriftInputError as e:
            self.counters["window_errors"] += 1
            log.warning("window %s: features not compared: %s", scope, e)
            report = None
        prob = rows["probability"]
        p = prob[np.isfinite(prob)]
        window: Dict[str, Any] = {"first": first, "last": last, "records": int(prob.size),
                                  "time": time.time(), "version": baseline.version}
        drift: Optional[Dict[str, Any]] = None
        if report is not None:
            drift = report.to_dict()
            drift["status"] = "compared"
            ranked = sorted((f for f in report.features.values() if f.drifted), key=lambda f: -f.severity)
            drift["drifted_features"] = [f.name for f in ranked]
            window["features"] = {name: {"psi": f.scores.get("psi"), "drifted": f.drifted,
                                         "p_value": f.p_value_adjusted}
                                  for name, f in report.features.items()}
            window["drift_detected"] = report.drift_detected
            window["multivariate_drifted"] = bool(report.multivariate is not None and report.multivariate.drifted)
            window["drifted_features"] = drift["drifted_features"]
        monitor: Dict[str, Any] = {"task": baseline.task}
        if p.size:
            conf_rows = rows.get("confidence")
            columns = baseline.output_columns(prob, conf_rows)
            outputs = detect_drift(baseline.prepared_outputs, columns, alpha=alpha, multivariate=False,
                                   feature_config=baseline.output_config)
            for what, f in outputs.features.items():
                monitor[what] = {"drifted": f.drifted, "psi": f.scores.get("psi"), "p_value": f.p_value_adjusted,
                                 "direction": f.direction}
            window.update(prediction_psi=outputs.features["prediction"].scores.get("psi"),
                          prediction_drifted=bool(outputs.drift_detected))
            if "confidence" in outputs.features:
                conf = columns["confidence"]
                window.update(confidence_psi=outputs.features["confidence"].scores.get("psi"),
                              mean_confidence=float(np.mean(conf)) if conf.size else None)
            if baseline.task == "multiclass":
                shares = np.bincount(p.astype(int), minlength=baseline.n_classes) / p.size
                window["class_shares"] = {str(c): float(v) for c, v in zip(self.cfg.classes, shares)}
            else:
                window.update(prediction_quantiles={str(q): float(v) for q, v in zip(QUANTILES, np.quantile(p, QUANTILES))},
                              mean_prediction=float(np.mean(p)))
                if baseline.task == "binary":
                    window.update(positive_rate=float(np.mean(p > THRESHOLD)), mean_probability=float(np.mean(p)))
            perf = self._estimated(baseline, prob, rows, alpha)
            if perf is not None:
                monitor["performance"] = perf
                window["estimated"] = perf["estimated"].get(baseline.metric)
                window["estimated_metric"] = baseline.metric
        new = self._raise(alerts, scope=scope, drift_report=drift, monitor=monitor)
        window["alerts"] = [a.dedup_key for a in new]
        self.last_window = window
        log.info("window %s: %s; %d alert(s)", scope,
                 "drift in " + ", ".join(window.get("drifted_features") or []) if window.get("drift_detected")
                 else "no feature drift", len(new))

    def _estimated(self, baseline: Baseline, prob: np.ndarray, rows: Mapping[str, np.ndarray], alpha: float
                   ) -> Optional[Dict[str, Any]]:
        """The window's performance estimated without labels (CBPE, DLE) against the same
        estimate on the held-out reference rows, and whether the worsening is significant: a
        one-sided z-test on the per-row loss (a classifier's expected 0/1 error, whose
        standard deviation is at most 0.5; a regression's predicted absolute error, with its
        reference standard deviation)."""
        from driftguard.components import tasks as tasks_lib

        if baseline.estimator is None or not baseline.estimated_reference:
            return None
        keep = np.isfinite(prob)
        if not keep.any():
            return None
        features = {f: rows[f][keep] for f in baseline.features}
        probs = None
        if baseline.task == "binary":
            probs = np.stack([1.0 - prob[keep], prob[keep]], axis=1)
        elif baseline.task == "multiclass":
            # a window keeps the class and its probability, not the whole vector: the estimate
            # calibrates the top-class probability (one-vs-rest on the predicted class)
            probs = _top_class_matrix(prob[keep], rows["confidence"][keep], baseline.n_classes)
        est = baseline.estimator.estimate(prob[keep], probs, features)
        metric = baseline.metric
        value, ref = est.get(metric), baseline.estimated_reference.get(metric)
        significant = False
        if value is not None and ref is not None:
            worse = tasks_lib.worse_by(baseline.task, metric, value, ref) * abs(ref)
            sd = 0.5 if baseline.task != "regression" else float(np.std(baseline.reference_errors)
                                                                  if baseline.reference_errors is not None else 0.0)
            if sd > 0:
                z = worse / (sd / math.sqrt(int(keep.sum())))
                significant = bool(0.5 * math.erfc(z / math.sqrt(2.0)) <= alpha)
        return {"task": baseline.task, "metric": metric, "estimated": est,
                "estimated_reference": dict(baseline.estimated_reference), "estimated_significant": significant}

    def _evaluate_label_window(self, baseline: Baseline, part: Mapping[str, np.ndarray], alerts: List[Any]) -> None:
        """A window of joined labels: the realized metrics, and a one-sided test of the watched
        metric's worsening against the held-out reference (a binomial test of accuracy; a
        Welch test of the absolute errors for MAE; the share test of the 0/1 error otherwise)."""
        from scipy.stats import binomtest, ttest_ind

        from driftguard.components.prediction_monitor import performance

        n = int(part["label"].size)
        value, label = part["probability"], part["label"]
        realized = performance.realized(baseline.task, value, label)
        first, last = int(part["join"][0]), int(part["join"][-1])
        self.counters["label_windows"] += 1
        metric = baseline.metric
        perf: Dict[str, Any] = {"task": baseline.task, "metric": metric, "realized": realized,
                                "baseline": dict(baseline.baseline_metrics)}
        p_value = None
        base = baseline.baseline_metric
        if base is not None and realized.get(metric) is not None:
            errors = baseline.errors(value, label)
            if baseline.task == "regression" and baseline.reference_errors is not None:
                p_value = float(ttest_ind(errors, baseline.reference_errors, equal_var=False,
                                          alternative="greater").pvalue)
            elif metric == "accuracy":
                p_value = float(binomtest(int(n - errors.sum()), n, min(max(base, 1e-9), 1 - 1e-9),
                                          alternative="less").pvalue)
            elif baseline.reference_errors is not None:     # AUC, macro-F1: the 0/1 error's share
                ref_err = float(np.mean(baseline.reference_errors))
                p_value = float(binomtest(int(errors.sum()), n, min(max(ref_err, 1e-9), 1 - 1e-9),
                                          alternative="greater").pvalue)
            if p_value is not None:
                perf["realized_significant"] = p_value <= self.budget_info["alpha"]
        scope = f"live/labels-j{first}-{last}"
        new = self._raise(alerts, scope=scope, drift_report=None, monitor={"task": baseline.task, "performance": perf})
        self.last_label_window = {"first": first, "last": last, "labels": n, "metric": metric,
                                  "value": realized.get(metric), "realized": realized, "p_value": p_value,
                                  "time": time.time(), "alerts": [a.dedup_key for a in new]}
        if metric == "accuracy":
            self.last_label_window["accuracy"] = realized.get("accuracy")

    # -- alerts

    def _raise(self, alerts: List[Any], *, scope: str, drift_report=None, monitor=None, alarms=None) -> List[Any]:
        from driftguard.components.alerts import evaluate

        new = evaluate(self.alerts_config, model=self.cfg.model_name, scope=scope, drift_report=drift_report,
                       monitor=monitor, alarms=alarms)
        for a in new:
            key = f"{a.rule}/{a.severity}"
            self.counters["alerts"][key] = self.counters["alerts"].get(key, 0) + 1
        alerts.extend(new)
        return new

    def _deliver(self, alerts: List[Any]) -> None:
        from driftguard.components.alerts import send_alerts

        result = send_alerts(self.alerts_config, alerts, self.cfg.runs_path)
        for _, sink, message in result.errors[:3]:
            log.warning("alert delivery to %s failed (kept in the outbox): %s", sink, message)

    # -- lag and metrics

    def _update_lag(self) -> None:
        try:
            files = pl.log_files(self.logs)
        except pl.PredictionLogError:
            return
        behind = 0
        for f in files:
            if self.position.file and f.name < self.position.file:
                continue
            try:
                size = f.stat().st_size
            except OSError:
                continue
            behind += size - (self.position.offset if f.name == self.position.file else 0)
        self.lag["bytes"] = max(0, behind)
        if self.lag.get("record_time"):
            self.lag["seconds"] = max(0.0, time.time() - float(self.lag["record_time"]))

    def snapshot(self) -> Dict[str, Any]:
        """What the metrics show: the committed counters and the last windows."""
        version = self.serving.get("version")
        reference: Dict[str, Any] = {}
        if version is not None:
            b = self.baseline(version)          # cached on disk: cheap after the first run
            reference = {"metric": b.metric, "baseline": b.baseline_metric,
                         "estimated": b.estimated_reference.get(b.metric),
                         "mean_confidence": float(np.mean(b.confidence)) if b.confidence.size else None}
        detectors = {}
        for name, d in self.detectors.items():
            up, down = d.statistics
            detectors[name] = {"up": up, "down": down, "threshold": d.design.h, "records": d.n_records}
        return {"model": self.cfg.model_name, "version": version, "counters": json.loads(json.dumps(self.counters)),
                "window": dict(self.last_window), "label_window": dict(self.last_label_window),
                "reference": reference, "budget": dict(self.budget_info), "detectors": detectors,
                "detectors_off": dict(self.detectors_off),
                "pending": {"labels": len(self.pending_labels), "predictions": len(self.pending_predictions)},
                "lag": dict(self.lag)}

    def close(self) -> None:
        self.store.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


# ---------------------------------------------------------------- retraining


class Retrainer:
    """Triggers retraining on a critical alert, once per serving version (remembered in the
    monitor's state, and marked there *before* the trigger, so a crash never triggers twice).

    ``local`` starts ``driftguard run`` in the background (its pid and log file are logged);
    ``airflow`` posts a DAG run of the training DAG through Airflow's REST API
    (``driftguard.pipeline.orchestrate.triggers.trigger_airflow_dag``, basic auth from ``AIRFLOW_USERNAME`` /
    ``AIRFLOW_PASSWORD``); ``kfp`` submits the compiled pipeline package to Kubeflow Pipelines.
    """

    def __init__(self, cfg, *, mode: str = "none", state_dir: pathlib.Path, config_path: Optional[str] = None,
                 airflow_url: Optional[str] = None, dag_id: Optional[str] = None,
                 kfp_host: Optional[str] = None, kfp_package: Optional[str] = None):
        if mode not in RETRAIN_MODES:
            raise MonitorError(f"--retrain must be one of {', '.join(RETRAIN_MODES)}, got {mode!r}")
        if mode == "airflow" and not airflow_url:
            raise MonitorError("--retrain airflow needs --airflow-url URL (the Airflow webserver)")
        if mode == "kfp" and not kfp_host:
            raise MonitorError("--retrain kfp needs --kfp-host URL")
        self.cfg, self.mode, self.state_dir, self.config_path = cfg, mode, state_dir, config_path
        self.airflow_url, self.dag_id = airflow_url, dag_id or cfg.training_pipeline_name()
        self.kfp_host, self.kfp_package = kfp_host, kfp_package or "build/kfp/pipeline.yaml"

    def maybe_trigger(self, monitor: Monitor, alerts: Sequence[Any]) -> None:
        if self.mode == "none":
            return
        critical = [a for a in alerts if a.severity == "critical"]
        version = monitor.serving.get("version")
        if not critical or version is None:
            return
        done = monitor.retrain_state.setdefault("versions", {})
        if str(version) in done:
            log.info("retraining for serving version %s was already triggered (%s); not again", version,
                     done[str(version)].get("status"))
            return
        reason = critical[0].dedup_key
        record = {"status": "starting", "mode": self.mode, "reason": reason, "at": time.time()}
        done[str(version)] = record
        monitor._commit()          # the intent first: a crash after this never triggers twice
        try:
            record.update(self._trigger(version, reason))
            record["status"] = "triggered"
            monitor.counters["retrain_triggers"] += 1
        except Exception as e:  # noqa: BLE001 - a failed trigger is reported, monitoring goes on
            record["status"] = "failed"
            record["error"] = f"{type(e).__name__}: {e}"[:500]
            log.error("retraining trigger (%s) failed: %s", self.mode, record["error"])

    def _trigger(self, version: int, reason: str) -> Dict[str, Any]:
        if self.mode == "local":
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            log_path = self.state_dir / f"retrain-{stamp}.log"
            cmd = [sys.executable, "-m", "driftguard.cli"]
            if self.config_path:
                cmd += ["--config", str(self.config_path)]
            cmd += ["run"]
            with open(log_path, "ab") as out:
                proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        cwd=str(pathlib.Path(__file__).resolve().parent.parent),
                                        start_new_session=True)
            log.warning("critical alert %s: started `driftguard run` (pid %d), log %s", reason, proc.pid, log_path)
            return {"pid": proc.pid, "log": str(log_path), "command": cmd}
        if self.mode == "airflow":
            from driftguard.pipeline.orchestrate.triggers import AIRFLOW_PASSWORD_ENV, AIRFLOW_USER_ENV, trigger_airflow_dag

            user, password = os.environ.get(AIRFLOW_USER_ENV), os.environ.get(AIRFLOW_PASSWORD_ENV)
            auth = None
            if user and password:
                import base64

                auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
            run_id = f"driftguard-monitor-{self.cfg.model_name}-v{version}"
            answer = trigger_airflow_dag(self.airflow_url, self.dag_id,
                                         {"reason": reason, "source": "driftguard monitor"}, auth, run_id=run_id)
            log.warning("critical alert %s: triggered Airflow DAG %s run %s", reason, self.dag_id,
                        answer.get("dag_run_id"))
            return {"dag_id": self.dag_id, "dag_run_id": answer.get("dag_run_id", run_id)}
        from driftguard.pipeline.orchestrate.triggers import kfp_client

        run = kfp_client(self.kfp_host).create_run_from_pipeline_package(
            str(self.kfp_package), arguments={}, run_name=f"driftguard-monitor-v{version}",
            experiment_name="driftguard", enable_caching=False)
        log.warning("critical alert %s: submitted %s to KFP run %s", reason, self.kfp_package, run.run_id)
        return {"kfp_run_id": run.run_id}


# ---------------------------------------------------------------- the loop


def run(monitor: Monitor, *, once: bool = False, max_records: Optional[int] = None, poll_seconds: float = 5.0,
        on_window: Optional[Callable[[Dict[str, Any]], None]] = None,
        should_stop: Callable[[], bool] = lambda: False) -> Dict[str, int]:
    """Process the log until it is exhausted (``once``), ``max_records`` records were read, or
    ``should_stop()``; in follow mode wait ``poll_seconds`` between polls of an idle log.
    ``on_window(snapshot)`` runs after every commit that closed a window (metrics)."""
    total = {"records": 0, "log_records": 0, "labels": 0, "windows": 0, "alerts": 0}
    while not should_stop():
        left = None if max_records is None else max_records - total["records"]
        if left is not None and left <= 0:
            break
        r = monitor.step(max_records=left)
        for k in total:
            total[k] += getattr(r, k)
        if on_window is not None and (r.windows or r.alerts or r.labels or r.idle):
            on_window(monitor.snapshot())
        if r.idle:
            if once:
                break
            deadline = time.monotonic() + poll_seconds
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(0.1, poll_seconds))
    return total


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM / SIGINT finish the current batch (commit) and stop; yields ``should_stop``."""
    flag = {"stop": False}

    def handler(signum, frame):
        flag["stop"] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield lambda: flag["stop"]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
