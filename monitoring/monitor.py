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
  window (``taxi/live/w1000-1999/feature_psi/fare``), and are grouped into **incidents**
  (``components/alerts/incidents.py``): one per rule and feature, paged when it opens, as an
  update at most once per ``repeat_interval`` and when it resolves, so a sustained change is not
  an alert storm; a critical alert can **trigger retraining** once per serving version;
* **metrics** for Prometheus (``driftguard.monitoring.exporter``) and ``metrics.prom`` for node_exporter.

Restart safety: everything (log position, label file positions, the unfinished windows'
rows, detector states, counters, predictions and labels waiting for each other, the retrain
decision, the open incidents) lives in one sqlite file (``<runs>/monitor/<model>/state.sqlite``)
and is committed in one transaction per batch, after the batch's notifications are in the outbox. A crash (even
SIGKILL) loses the uncommitted batch only, which the next run reads again from the committed
position: nothing is skipped and nothing is counted twice, and its alerts carry the same
keys as before.

Where the parts live: the baseline (``baseline.py``), the state file (``store.py``), the
predictions and labels waiting for each other (``pending.py``), what a window shows
(``windows.py``), the retrain trigger (``trigger.py``); this module cuts the windows and runs
the loop.

Records: one record is one prediction (a request with n instances is n records). With
``max_records``, a run stops at the first request boundary at or after that many records.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import pathlib
import signal
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from driftguard.monitoring import detectors as detectors_lib
from driftguard.monitoring import labels as labels_lib
from driftguard.monitoring import windows
from driftguard.monitoring.baseline import Baseline, load_baseline
from driftguard.monitoring.errors import MonitorError
from driftguard.monitoring.pending import LABEL_FIELDS, PREDICTION_FIELDS, PendingSet, pick, with_id
from driftguard.monitoring.store import STATE_FILE, STATE_FORMAT, StateStore, state_dir, table_bytes, table_columns
from driftguard.monitoring.trigger import Retrainer
from driftguard.serving import predictlog as pl

log = logging.getLogger(__name__)

_MAX_LABEL_ROWS_PER_STEP = 1_000_000
_DECODERS: Dict[Tuple[Any, ...], Any] = {}   # one per process and feature kinds: tracing its graphs takes seconds


def default_log_dir(cfg) -> pathlib.Path:
    return cfg.runs_path / "prediction_logs" / cfg.model_name


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
    :meth:`step` processes one batch and commits; :func:`run` loops.
    """

    def __init__(self, cfg, *, logs: Optional[pathlib.Path] = None, labels: Optional[pathlib.Path] = None,
                 state: Optional[pathlib.Path] = None, retrain: Optional[Retrainer] = None,
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
        for part in map(table_columns, self.store.window_chunks()):
            self.buffer = {k: np.concatenate([self.buffer[k], v]) for k, v in part.items()} if self.buffer else part
        if self.buffer and self.serving.get("next_end") is not None:
            cut = int(np.searchsorted(self.buffer["row"], self.serving["next_end"] - self.settings.window))
            self.buffer = {k: v[cut:] for k, v in self.buffer.items()}
        self._persisted_row = int(self.buffer["row"][-1]) if self.buffer and len(self.buffer["row"]) else -1
        self._chunks_clear = False
        self.label_buffer = table_columns(self.store.blob("label_buffer"))
        # predictions waiting for their label and labels waiting for their prediction
        self.pending_predictions = PendingSet.replay(PREDICTION_FIELDS, *self.store.journal("predictions"))
        self.pending_labels = PendingSet.replay(LABEL_FIELDS, *self.store.journal("labels"))
        self._detector_states: Dict[str, Any] = meta.get("detectors", {})
        self._restore_incidents(meta.get("incidents"))
        self.detectors: Dict[str, Any] = {}
        self.detectors_off: Dict[str, str] = {}      # stream -> why it has no detector
        if self.serving.get("version") is not None:
            from driftguard.components.drift.streaming import StreamDetector

            for name, d in self._detector_states.items():
                self.detectors[name] = StreamDetector.from_state(name, d)

    def commit(self) -> None:
        meta = {
            "format": STATE_FORMAT, "logs": str(self.logs.resolve()),
            "labels_source": labels_lib.files_signature(self.labels_path),
            "position": self.position.to_dict(), "label_positions": self.label_positions,
            "counters": self.counters, "serving": self.serving, "label_window": self.label_window,
            "retrain": self.retrain_state,
            "last_window": self.last_window, "last_label_window": self.last_label_window, "lag": self.lag,
            "budget": self.budget_info,
            "detectors": {name: d.state_dict() for name, d in self.detectors.items()},
            "incidents": self.incidents.state_dict(),
        }
        blobs = {"label_buffer": table_bytes(self.label_buffer)}
        new_chunks = []
        rows = self.buffer.get("row")
        keep_from = None
        if rows is not None and len(rows):
            keep_from = int(rows[0])
            at = int(np.searchsorted(rows, self._persisted_row + 1))
            if at < len(rows):
                part = {k: v[at:] for k, v in self.buffer.items()}
                new_chunks.append((int(rows[at]), int(rows[-1]), table_bytes(part)))
                self._persisted_row = int(rows[-1])
        elif self.serving.get("next_end") is not None:
            keep_from = self.serving["next_end"] - self.settings.window
        pending = {"predictions": self.pending_predictions, "labels": self.pending_labels}
        entries = {kind: p.journal_entry() for kind, p in pending.items()}
        journal = {kind: entry for kind, entry in entries.items() if entry is not None}
        self.store.commit(meta, blobs, journal, (self._chunks_clear, keep_from, new_chunks))
        for kind, p in pending.items():
            p.committed(entries[kind])
        self._chunks_clear = False

    # -- baselines, detectors

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

    def _build_detectors(self, baseline: Baseline) -> None:
        self.detectors, self.detectors_off, self.budget_info = detectors_lib.build_detectors(
            self.settings, baseline, labels=self.labels_path is not None, step_records=self.step_records)

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
        self.incident_events = []          # what this step opened, updated and resolved (the console)
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
        if batch is None and not result.labels and not alerts and not self._notifications_due():
            self._update_lag()
            return result
        self._update_lag()
        self._deliver(alerts)
        if alerts:
            result.alerts = len(alerts)
            self.retrainer.maybe_trigger(self, alerts)
        self.commit()
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
            log.debug("streaming detector %s alarmed (%s) at %s%d", stream, alarm.direction, scope_prefix, at)
            self._raise(alerts, scope=f"live/{scope_prefix}{at}", alarms=[info], source=f"stream:{stream}",
                        position=at)
        # the records fed without an alarm count towards resolving the stream's incidents
        self._raise(alerts, scope="", source=f"stream:{stream}", position=int(rows[-1]), quiet=True)

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
        found, hit = self.pending_predictions.take(ids)
        if found.any():
            self._joined(hit["probability"], rows.values[found], hit["version"], alerts)
        if not found.all():
            self.pending_labels.add(pick(ids, ~found), {"label": rows.values[~found]})
            self.counters["labels_expired"] += self.pending_labels.expire(self.settings.label_retention)
        return n

    def _join_predictions(self, version: int, prob: np.ndarray, ids: np.ndarray, alerts: List[Any]) -> None:
        ids_list = ids.tolist()
        found, hit = self.pending_labels.take(ids_list)
        if found.any():
            self._joined(prob[found], hit["label"], np.full(int(found.sum()), version, np.int64), alerts)
        wait = ~found
        without = ids_list.count(None)
        if without:
            self.counters["without_id"] += without
            wait &= with_id(ids_list)
        if wait.any():
            p = prob[wait]
            self.pending_predictions.add(pick(ids_list, wait),
                                         {"probability": p, "version": np.full(p.size, version, np.int64)})
            self.counters["predictions_expired"] += self.pending_predictions.expire(self.settings.label_retention)

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
        self.counters["windows"] += 1
        report = windows.evaluate_window(baseline, first, last, rows, alpha=self.budget_info["alpha"],
                                         multivariate=self.settings.multivariate, classes=self.cfg.classes,
                                         classifier=self.settings.classifier,
                                         classifier_max_rows=self.settings.classifier_max_rows)
        if report.features_error is not None:
            self.counters["window_errors"] += 1
        new = self._raise(alerts, scope=report.scope, drift_report=report.drift, monitor=report.monitor,
                          source="window", position=self.counters["windows"])
        window = report.summary
        window["alerts"] = [a.dedup_key for a in new]
        self.last_window = window
        log.info("window %s: %s; %d alert(s)", report.scope,
                 "drift in " + ", ".join(window.get("drifted_features") or []) if window.get("drift_detected")
                 else "no feature drift", len(new))

    def _evaluate_label_window(self, baseline: Baseline, part: Mapping[str, np.ndarray], alerts: List[Any]) -> None:
        self.counters["label_windows"] += 1
        report = windows.evaluate_label_window(baseline, part, alpha=self.budget_info["alpha"])
        new = self._raise(alerts, scope=report.scope, drift_report=None, monitor=report.monitor,
                          source="labels", position=self.counters["label_windows"])
        self.last_label_window = {**report.summary, "alerts": [a.dedup_key for a in new]}

    # -- alerts

    def _restore_incidents(self, state: Optional[Mapping[str, Any]]) -> None:
        from driftguard.components.alerts.incidents import IncidentTracker

        self.clock: Callable[[], float] = time.time      # incidents' group_wait and repeat_interval
        self.incidents = IncidentTracker(self.alerts_config.incidents, model=self.cfg.model_name,
                                         resolve_records=int(self.settings.window), state=state)

    def _raise(self, alerts: List[Any], *, scope: str, drift_report=None, monitor=None, alarms=None,
               source: str, position: int, quiet: bool = False) -> List[Any]:
        """Evaluate the rules on one window, label window or detector alarm (``source`` at
        ``position``) and hand what fired to the incident tracker; ``quiet``: no evaluation, the
        source only moved on (records fed to a detector without an alarm)."""
        from driftguard.components.alerts import evaluate

        new = [] if quiet else evaluate(self.alerts_config, model=self.cfg.model_name, scope=scope,
                                        drift_report=drift_report, monitor=monitor, alarms=alarms)
        for a in new:
            key = f"{a.rule}/{a.severity}"
            self.counters["alerts"][key] = self.counters["alerts"].get(key, 0) + 1
        alerts.extend(new)
        if self.alerts_config.incidents.enabled:
            self.incidents.observe(source, position, new, self.clock())
        return new

    def _notifications_due(self) -> bool:
        return self.alerts_config.incidents.enabled and self.incidents.due(self.clock())

    def flush_incidents(self) -> None:
        """Send the incidents still within their ``group_wait`` now and commit (a ``--once`` run
        ends: the next run may be hours away)."""
        if self.alerts_config.incidents.enabled and self.incidents.held:
            self._deliver([], flush=True)
            self.commit()

    def _deliver(self, alerts: List[Any], flush: bool = False) -> None:
        """Enqueue and send the batch's incident notifications (opens past group_wait, updates
        past repeat_interval, resolves), or every alert with ``alerts.incidents.enabled: false``."""
        from driftguard.components.alerts import send_alerts

        if self.alerts_config.incidents.enabled:
            alerts = self.incidents.take(self.clock(), flush=flush)
            for kind, incident, title in self.incidents.events:
                log.info("incident %s: %s: %s", kind, incident, title)
            self.incident_events = list(self.incidents.events)
            self.incidents.events.clear()
        if not alerts:
            return
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
                "incidents": {**self.incidents.summary(), "events": list(getattr(self, "incident_events", []))},
                "pending": {"labels": len(self.pending_labels), "predictions": len(self.pending_predictions)},
                "lag": dict(self.lag)}

    def close(self) -> None:
        self.store.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


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
                monitor.flush_incidents()
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
