"""``driftguard monitor``: watch live traffic in the prediction logs, window by window.

What it does, per model version (the version that answered, read from each log record: each
version's records go to that version's windows, ``monitoring/lanes.py``, so traffic pinned to
an older version never cuts the serving version's windows short):

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

Restart safety: everything (log position, label file positions, each version's unfinished
windows' rows and detector states, counters, predictions and labels waiting for each other, the
ids joined lately, the retrain decision, the open incidents) lives in one sqlite file
(``<runs>/monitor/<model>/state.sqlite``) and is committed in one transaction per batch, after
the batch's notifications are in the outbox. A crash (even SIGKILL) loses the uncommitted batch only,
which the next run reads again from the committed position: nothing is skipped and nothing is
counted twice, and its alerts carry the same keys as before. A critical alert of the serving
version's windows or detectors can trigger retraining; those of traffic pinned to another
version do not.

Where the parts live: the baseline (``baseline.py``), the state file (``store.py``), the
predictions and labels waiting for each other (``pending.py``), what a window shows
(``windows.py``), each version's windows (``lanes.py``), the retrain trigger (``trigger.py``);
this module feeds the lanes and runs the loop.

What is left out is counted and printed (``driftguard monitor``'s console): log records that
cannot be read or were answered by a version not in the registry (``skipped``); a window whose
features could not be compared (``window_errors``; the console says why, never "no feature
drift"); a second label for a request id (``labels_duplicate``: the first one counts, later
ones are dropped); labels that waited for a prediction until the retention limit dropped them
(``labels_expired``) or still waited when the log had been read to its end after them
(``labels_unknown_id``: ids no logged prediction carries); a request id predicted again
(``predictions_reused_id``: only its first prediction waits for the label, so a label never
joins the wrong one and no repeat waits forever).

Records: one record is one prediction (a request with n instances is n records). With
``max_records``, a run stops at the first request boundary at or after that many records.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import os
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
from driftguard.monitoring.lanes import Lane, serving_version
from driftguard.monitoring.pending import (JOINED_FIELDS, LABEL_FIELDS, PREDICTION_FIELDS, PendingSet,
                                           first_occurrences, pick, version_key, with_id)
from driftguard.monitoring.rollout import Rollout
from driftguard.monitoring.store import (STATE_FILE, STATE_FORMAT, UPGRADABLE_FORMATS, StateStore, state_dir,
                                         table_bytes, table_columns)
from driftguard.monitoring.trigger import Retrainer
from driftguard.serving import predictlog as pl

log = logging.getLogger(__name__)

_MAX_LABEL_ROWS_PER_STEP = 1_000_000
_KEEP_DECISIONS = 100               # rollout decisions kept in the state (the registry's audit keeps all)
# DRIFTGUARD_FAULT_KILL_IN_ROLLOUT=before_apply|after_apply: SIGKILL this process just before (after)
# a committed rollout decision changes the registry's labels (tests/monitoring: restart safety)
FAULT_KILL_ENV = "DRIFTGUARD_FAULT_KILL_IN_ROLLOUT"
_DECODERS: Dict[Tuple[Any, ...], Any] = {}   # one per process and feature kinds: tracing its graphs takes seconds


def default_log_dir(cfg) -> pathlib.Path:
    return cfg.runs_path / "prediction_logs" / cfg.model_name


# ---------------------------------------------------------------- the monitor


def _new_counters() -> Dict[str, Any]:
    return {"records": 0, "log_records": 0, "skipped": {}, "windows": 0, "label_windows": 0, "discarded": 0,
            "labels_read": 0, "labels_joined": 0, "labels_expired": 0, "predictions_expired": 0, "without_id": 0,
            "labels_duplicate": 0, "labels_unknown_id": 0, "predictions_reused_id": 0,
            "alerts": {}, "detector_alarms": {}, "retrain_triggers": 0, "window_errors": 0}


@dataclasses.dataclass
class StepResult:
    records: int = 0
    log_records: int = 0
    labels: int = 0
    windows: int = 0
    alerts: int = 0
    left_out: int = 0       # records skipped, duplicate labels, reused ids: worth a console line

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
        if fmt is not None and fmt != STATE_FORMAT and fmt not in UPGRADABLE_FORMATS:
            raise MonitorError(f"{self.store.path}: state format {fmt}, this driftguard reads format {STATE_FORMAT} "
                               f"(and upgrades {', '.join(map(str, UPGRADABLE_FORMATS))}); move the folder away to "
                               "start afresh")
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
        self.retrain_state: Dict[str, Any] = meta.get("retrain", {"versions": {}})
        self.lag: Dict[str, Any] = meta.get("lag", {})
        # each version's windows; their unfinished rows are chunks appended batch by batch (writing
        # the whole buffer at every commit would cost O(window) per batch), trimmed to what is needed
        self.lanes: Dict[int, Lane] = {int(v): Lane.from_meta(int(v), m) for v, m in meta.get("lanes", {}).items()}
        origins: Dict[int, int] = {}
        if fmt == 2:
            origins = self._upgrade_format_2(meta)
        parts: Dict[int, List[Dict[str, np.ndarray]]] = {}
        for version, data in self.store.window_chunks():
            parts.setdefault(version, []).append(table_columns(data))
        for version, lane in self.lanes.items():
            for part in parts.get(version, []):
                if "seq" not in part:               # a format 2 chunk: the lane's records started at its origin
                    part["seq"] = part["row"] - origins.get(version, 0)
                lane.buffer = {k: np.concatenate([lane.buffer[k], v]) for k, v in part.items()} if lane.buffer else part
            lane.trim(self.settings.window)
            lane.persisted_seq = int(lane.buffer["seq"][-1]) if lane.unfinished() else lane.records - 1
            lane.label_buffer = table_columns(self.store.blob(f"label_buffer/{version}")) or lane.label_buffer
            if lane.label_windows < 0:     # a state from before lanes counted their own: the global count is
                lane.label_windows = int(self.counters["label_windows"])    # at least every recorded position
        self.serving: Dict[str, Any] = {"version": serving_version(self.lanes, int(self.counters["records"]),
                                                                   self.settings.window)}
        self.step_windows: List[Dict[str, Any]] = []      # the summaries of the windows the last step closed
        self._alert_versions: Dict[str, int] = {}        # the last step's alerts: the version whose lane raised each
        # predictions waiting for their label, labels waiting for their prediction, ids joined lately
        self.pending_predictions = PendingSet.replay(PREDICTION_FIELDS, *self.store.journal("predictions"))
        self.pending_labels = PendingSet.replay(LABEL_FIELDS, *self.store.journal("labels"))
        self.recent_joins = PendingSet.replay(JOINED_FIELDS, *self.store.journal("joined"))
        self._restore_incidents(meta.get("incidents"))
        rollout = meta.get("rollout") or {}
        self.rollout: Optional[Rollout] = Rollout.from_dict(rollout["active"]) if rollout.get("active") else None
        self.decisions: List[Dict[str, Any]] = list(rollout.get("decisions", []))
        if self.rollout is not None and self.rollout.decision is not None:     # one record of it, updated in place
            self.rollout.decision = next((d for d in self.decisions if d["id"] == self.rollout.decision["id"]),
                                         self.rollout.decision)
        self.step_decisions: List[Dict[str, Any]] = []
        self._direct: List[Any] = []       # this step's rollout notifications (no incident grouping)
        self._labels_warning: Optional[str] = None

    def _upgrade_format_2(self, meta: Mapping[str, Any]) -> Dict[int, int]:
        """A format 2 state (the windows, detectors and label window of one serving version,
        numbered from its ``origin`` record) as that version's lane; returns {version: origin}."""
        from driftguard.components.drift.streaming import StreamDetector

        old = meta.get("serving") or {}
        version = old.get("version")
        self.store.upgrade_chunks(-1 if version is None else int(version))
        if version is None:
            return {}
        version, origin, records = int(version), int(old["origin"]), int(self.counters["records"])
        next_end, step = int(old["next_end"]) - origin, self.step_records
        lane = Lane(version=version, records=records - origin, next_end=next_end, last_row=records - 1,
                    windows=max(0, (next_end - self.settings.window) // step), budget=dict(meta.get("budget", {})),
                    label_windows=int(self.counters["label_windows"]),     # the one version's label windows
                    detectors={name: StreamDetector.from_state(name, d)
                               for name, d in meta.get("detectors", {}).items()},
                    last_window=dict(meta.get("last_window", {})),
                    last_label_window=dict(meta.get("last_label_window", {})))
        size = self.settings.window
        if records > origin:
            lane._count(np.arange(max(origin, (records // size - 1) * size), records, dtype=np.int64), size)
        lane.label_buffer = table_columns(self.store.blob("label_buffer"))
        self.lanes = {version: lane}
        log.info("%s: state format 2 upgraded to %d (model version %d's windows from record %d)", self.store.path,
                 STATE_FORMAT, version, origin)
        return {version: origin}

    def commit(self) -> None:
        meta = {
            "format": STATE_FORMAT, "logs": str(self.logs.resolve()),
            "labels_source": labels_lib.files_signature(self.labels_path),
            "position": self.position.to_dict(), "label_positions": self.label_positions,
            "counters": self.counters, "serving": self.serving, "retrain": self.retrain_state, "lag": self.lag,
            "incidents": self.incidents.state_dict(),
            "rollout": {"active": self.rollout.to_dict() if self.rollout else None,
                        "decisions": self.decisions[-_KEEP_DECISIONS:]},
            "lanes": {str(v): lane.meta() for v, lane in self.lanes.items()},
        }
        blobs = {f"label_buffer/{v}": table_bytes(lane.label_buffer) for v, lane in self.lanes.items()}
        drops: Dict[int, Optional[int]] = {}
        new_chunks = []
        for version, lane in self.lanes.items():
            if not lane.unfinished():
                drops[version] = None
                lane.persisted_seq = lane.records - 1
                continue
            seq, rows = lane.buffer["seq"], lane.buffer["row"]
            drops[version] = int(rows[0])
            at = int(np.searchsorted(seq, lane.persisted_seq + 1))
            if at < len(seq):
                part = {k: v[at:] for k, v in lane.buffer.items()}
                new_chunks.append((int(rows[at]), int(rows[-1]), version, table_bytes(part)))
                lane.persisted_seq = int(seq[-1])
        pending = {"predictions": self.pending_predictions, "labels": self.pending_labels,
                   "joined": self.recent_joins}
        entries = {kind: p.journal_entry() for kind, p in pending.items()}
        journal = {kind: entry for kind, entry in entries.items() if entry is not None}
        self.store.commit(meta, blobs, journal, (drops, new_chunks))
        for kind, p in pending.items():
            p.committed(entries[kind])

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

    def _lane(self, version: int, first_row: int) -> Lane:
        """``version``'s lane, opened (detectors and budget designed on its reference) at its
        first record."""
        lane = self.lanes.get(version)
        if lane is None:
            baseline = self.baseline(version)
            lane = Lane(version=version, next_end=self.settings.window)
            lane.detectors, lane.detectors_off, lane.budget = detectors_lib.build_detectors(
                self.settings, baseline, labels=self.labels_path is not None, step_records=self.step_records)
            self.lanes[version] = lane
            log.info("model version %d answered record %d: its windows start there (%d version(s) watched)",
                     version, first_row, len(self.lanes))
        return lane

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
        self.incident_events = []          # what this step opened, updated and resolved (the console)
        alerts: List[Any] = []
        self.step_windows = []
        self._alert_versions = {}
        self.step_decisions, self._direct = [], []
        self._apply_decisions()            # a decision committed by a run killed before applying it
        self._sync_rollout()
        before = self._left_out()
        labels_before = int(self.counters["labels_read"])
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
            shadow = self.rollout is not None and self.rollout.mode == "shadow"
            decoded = self._decoder_for(baseline).decode(batch, request_ids=self.labels_path is not None or shadow)
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
        elif self.labels_path is not None and limit > 0:       # the log is read to its end
            self._drop_unknown_labels(labels_before)
        self.serving["version"] = self._serving_version()
        result.left_out = self._left_out() - before
        if batch is None and not result.labels and not alerts and not result.left_out and not self._direct \
                and not self._notifications_due():
            self._update_lag()
            return result
        self._update_lag()
        self._deliver(alerts)
        result.alerts = len(alerts) + len(self._direct)
        if alerts:
            # retraining answers the serving version's alerts, not those of traffic pinned to another
            serving = self.serving.get("version")
            mine = [a for a in alerts if self._alert_versions.get(a.dedup_key) == serving]
            self.retrainer.maybe_trigger(self, mine)
        self.commit()
        self._apply_decisions()
        return result

    def _of_version(self, lane: Lane, new: List[Any]) -> List[Any]:
        for a in new:
            self._alert_versions[a.dedup_key] = lane.version
        return new

    def _left_out(self) -> int:
        c = self.counters
        return sum(c["skipped"].values()) + c["labels_duplicate"] + c["labels_unknown_id"] + \
            c["predictions_reused_id"] + c["window_errors"] + c["labels_expired"] + c["predictions_expired"]

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
        self._shadow_pairs(d, versions)
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
        """Records of one version, to its lane: ``prob`` is the prediction as model_io reads it
        (the positive-class probability, the class index, the value), ``confidence`` a
        multi-class model's top-class probability."""
        first = int(self.counters["records"])
        lane = self._lane(version, first)
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
            self._feed(lane, "confidence", conf[finite], rows[finite], alerts)
        for name in self.settings.stream_features:
            if name in lane.detectors:
                values = columns[name]
                ok = np.isfinite(values)
                self._feed(lane, name, values[ok], rows[ok], alerts)
        if self.labels_path is not None:
            self._join_predictions(version, prob, ids, alerts)
        else:
            self.counters["without_id"] += ids.tolist().count(None)
        new = {f: columns[f] for f in baseline.features}
        new["probability"] = prob
        if baseline.task == "multiclass":
            new["confidence"] = confidence if confidence is not None else np.full(n, np.nan)
        lane.append(new, rows, self.settings.window)
        windows = 0
        for first_row, last_row, part in lane.closing(self.settings.window, self.step_records):
            self._evaluate_window(lane, baseline, first_row, last_row, part, alerts)
            windows += 1
        return windows

    # -- streaming detectors

    def _feed(self, lane: Lane, stream: str, values: np.ndarray, rows: np.ndarray, alerts: List[Any],
              scope_prefix: str = "r") -> None:
        det = lane.detectors.get(stream)
        if det is None or not values.size:
            return
        before = det.n_records
        for alarm in det.update(values):
            at = int(rows[alarm.index_in_stream - before - 1])
            self.counters["detector_alarms"][stream] = self.counters["detector_alarms"].get(stream, 0) + 1
            info = alarm.to_dict()
            info.update(detector="CUSUM", transform=det.design.transform, version=lane.version, record=at)
            log.info("streaming detector %s of version %d alarmed (%s) at %s%d", stream, lane.version,
                     alarm.direction, scope_prefix, at)
            # incidents count this stream's own values (not other versions' records in between)
            self._of_version(lane, self._raise(alerts, scope=f"live/{scope_prefix}{at}", alarms=[info],
                                               source=f"stream:v{lane.version}:{stream}",
                                               position=int(alarm.index_in_stream), version=lane.version))
            if self.rollout is not None and stream in ("error", "confidence"):
                self._decided(self.rollout.stream_alarm(lane.version, stream, alarm.direction, at))
        # the records fed without an alarm count towards resolving the stream's incidents
        self._raise(alerts, scope="", source=f"stream:v{lane.version}:{stream}", position=int(det.n_records),
                    quiet=True, version=lane.version)

    # -- labels

    def _ingest_labels(self, alerts: List[Any]) -> int:
        """New labels: each joins its waiting prediction, or waits for it. A second label for an
        id (in the batch, already waiting, or joined lately) is a duplicate: counted, dropped."""
        rows, positions = labels_lib.read_new(self.labels_path, self.label_positions,
                                              max_rows=_MAX_LABEL_ROWS_PER_STEP,
                                              parser=labels_lib.LabelParser(self.cfg.task, tuple(self.cfg.classes)))
        self.label_positions = positions
        n = len(rows)
        if not n:
            return 0
        self.counters["labels_read"] += n
        first = first_occurrences(rows.ids)
        ids, values = pick(rows.ids, first), rows.values[first]
        duplicates = n - len(ids)
        found, hit = self.pending_predictions.take(ids)
        first_hit = {"version": np.full(len(ids), -1, np.int64), "probability": np.full(len(ids), np.nan)}
        if found.any():
            for k in first_hit:
                first_hit[k][found] = hit[k]
            self._joined(hit["probability"], values[found], hit["version"], alerts)
            self._remember_joins(pick(ids, found), hit["version"], values[found], hit["probability"])
        if len(self.lanes) > 1:     # other versions' predictions for the same ids (a shadow rollout)
            for version in sorted(self.lanes):
                keys = [version_key(i, version) for i in ids]
                more, hit = self.pending_predictions.take(keys)
                if more.any():
                    self._rollout_pairs(first_hit["version"][more], first_hit["probability"][more], version,
                                        hit["probability"], values[more])
                    self._joined(hit["probability"], values[more], hit["version"], alerts)
                    self._remember_joins(pick(keys, more), hit["version"], values[more], hit["probability"])
                    found |= more
        if not found.all():
            ids, values = pick(ids, ~found), values[~found]
            repeat = self.pending_labels.holds(ids) | self.recent_joins.holds(ids)
            duplicates += int(repeat.sum())
            if not repeat.all():
                order = self.counters["labels_read"] - n + np.flatnonzero(first)[~found][~repeat]
                self.pending_labels.add(pick(ids, ~repeat), {"label": values[~repeat], "read": order})
                self.counters["labels_expired"] += self.pending_labels.expire(self.settings.label_retention)
        if duplicates:
            self.counters["labels_duplicate"] += duplicates
            log.warning("%d duplicate label(s) (a request id labelled again): the first label counts, these are "
                        "dropped (%d in all)", duplicates, self.counters["labels_duplicate"])
        return n

    def _drop_unknown_labels(self, read_before: int) -> None:
        """The log is read to its end: a label read in an earlier step still waiting had its
        prediction's whole log go by (serve flushes every record, and a label comes after its
        prediction), so no logged prediction carries its id. Counted and dropped."""
        if not len(self.pending_labels):
            return
        ids = self.pending_labels.ids()
        old = self.pending_labels.columns()["read"] < read_before
        if not old.any():
            return
        gone = pick(ids, old)
        self.pending_labels.take(gone)
        self.counters["labels_unknown_id"] += len(gone)
        log.warning("%d label(s) for request ids no logged prediction carries (still unmatched with the log read to "
                    "its end): counted and dropped, e.g. %s (%d in all)", len(gone), ", ".join(gone[:3]),
                    self.counters["labels_unknown_id"])

    def _join_predictions(self, version: int, prob: np.ndarray, ids: np.ndarray, alerts: List[Any]) -> None:
        """Predictions of ``version``: each joins its waiting label, or waits for it. A request id
        predicted again by the same version (in the batch, already waiting, or joined lately) is
        reused: counted, and only its first prediction is joinable (a label cannot say which one
        it is for). An id another version predicted first (the challenger's copy of a shadowed
        request) waits under its version's key, or joins the label that id already met."""
        ids_list = ids.tolist()
        has = with_id(ids_list)
        without = int(has.size - has.sum())
        if without:
            self.counters["without_id"] += without
        candidates = has & first_occurrences(ids_list)
        held = self.pending_predictions.holds(ids_list) | self.recent_joins.holds(ids_list)
        fresh = candidates & ~held
        taken = 0
        if (candidates & held).any() and len(self.lanes) > 1:
            taken = int(self._second_versions(version, prob, ids_list, candidates & held, alerts).sum())
        reused = int(has.sum() - fresh.sum()) - taken
        if reused:
            self.counters["predictions_reused_id"] += reused
            log.warning("%d prediction(s) of version %d reuse a request id already predicted: counted, not joined "
                        "to a label (%d in all)", reused, version, self.counters["predictions_reused_id"])
        if not fresh.any():
            return
        ids_list, prob = pick(ids_list, fresh), prob[fresh]
        found, hit = self.pending_labels.take(ids_list)
        if found.any():
            versions = np.full(int(found.sum()), version, np.int64)
            self._joined(prob[found], hit["label"], versions, alerts)
            self._remember_joins(pick(ids_list, found), versions, hit["label"], prob[found])
        wait = ~found
        if wait.any():
            p = prob[wait]
            self.pending_predictions.add(pick(ids_list, wait),
                                         {"probability": p, "version": np.full(p.size, version, np.int64)})
            self.counters["predictions_expired"] += self.pending_predictions.expire(self.settings.label_retention)

    def _second_versions(self, version: int, prob: np.ndarray, ids: List[Optional[str]], mask: np.ndarray,
                         alerts: List[Any]) -> np.ndarray:
        """Of the rows in ``mask`` (ids already waiting or joined), those another version
        predicted first and ``version`` not yet: each waits under its version's key or joins
        the label its id met. Returns which rows were taken (the rest are reused ids)."""
        taken = np.zeros(len(ids), dtype=bool)
        rows = np.flatnonzero(mask)
        sub = [ids[i] for i in rows.tolist()]
        keys = [version_key(i, version) for i in sub]
        mine = self.pending_predictions.holds(keys) | self.recent_joins.holds(keys)
        waiting, w = self.pending_predictions.peek(sub)
        other = np.zeros(len(sub), dtype=bool)
        other[np.flatnonzero(waiting)[w["version"] != version]] = True
        joined, j = self.recent_joins.peek(sub)
        label, first_prob = np.full(len(sub), np.nan), np.full(len(sub), np.nan)
        first_version = np.full(len(sub), -1, np.int64)
        at = np.flatnonzero(joined)
        other_joined = j["version"] != version
        label[at[other_joined]] = j["label"][other_joined]
        first_prob[at[other_joined]] = j["probability"][other_joined]
        first_version[at[other_joined]] = j["version"][other_joined]
        wait = other & ~mine
        join = ~waiting & np.isfinite(label) & ~mine
        if wait.any():
            p = prob[rows[wait]]
            self.pending_predictions.add(pick(keys, wait), {"probability": p,
                                                            "version": np.full(p.size, version, np.int64)})
        if join.any():
            versions = np.full(int(join.sum()), version, np.int64)
            self._rollout_pairs(first_version[join], first_prob[join], version, prob[rows[join]], label[join])
            self._joined(prob[rows[join]], label[join], versions, alerts)
            self._remember_joins(pick(keys, join), versions, label[join], prob[rows[join]])
        taken[rows[wait | join]] = True
        return taken

    def _remember_joins(self, ids: List[str], versions: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> None:
        """Joined ids are remembered (as many as ``label_retention``) with their label and
        prediction, to tell repeats from firsts and to join (and pair) another version's
        prediction of the same id."""
        self.recent_joins.add(ids, {"version": versions, "label": labels, "probability": probs})
        self.recent_joins.expire(self.settings.label_retention)

    def _joined(self, prob: np.ndarray, label: np.ndarray, versions: np.ndarray, alerts: List[Any]) -> None:
        """Labels matched to predictions, in join order: each version's error stream and label
        windows."""
        if not prob.size:
            return
        first = int(self.counters["labels_joined"])
        self.counters["labels_joined"] += prob.size
        index = np.arange(first, first + prob.size, dtype=np.int64)
        evidence = []
        for version in np.unique(versions).tolist():
            lane = self.lanes.get(int(version))
            mine = (versions == version) & np.isfinite(prob)
            if lane is None or not mine.any():
                continue
            p, y, at = prob[mine].astype(np.float64), label[mine].astype(np.float64), index[mine]
            baseline = self.baseline(lane.version)
            errors = baseline.errors(p, y)
            evidence.append((at, lane.version, errors))
            self._feed(lane, "error", errors, at, alerts, scope_prefix="j")
            new = {"probability": p, "label": y, "join": at}
            buf = lane.label_buffer
            buf = {k: np.concatenate([buf[k], new[k]]) for k in new} if buf else new
            size = self.step_records
            while len(buf["join"]) >= size:
                part = {k: v[:size] for k, v in buf.items()}
                buf = {k: v[size:] for k, v in buf.items()}
                self._evaluate_label_window(lane, baseline, part, alerts)
            lane.label_buffer = buf
        self._rollout_evidence(evidence)

    # -- rollout: champion against challenger (monitoring/rollout.py)

    def _sync_rollout(self) -> None:
        """Read the registry's labels: a rollout runs while ``champion`` and ``challenger`` name
        two versions and the config has ``rollout:``; a new pair starts a new comparison."""
        from driftguard.components.registry_pusher import labels as registry_labels

        try:
            self.registry_labels = registry_labels.read_labels(self.cfg.model_registry)
            self._labels_warning = None
        except (registry_labels.LabelError, OSError) as e:
            if str(e) != self._labels_warning:
                log.error("%s; the rollout and the serving version keep the labels read before", e)
            self._labels_warning = str(e)
            return
        rollout_cfg = self.cfg.rollout
        champion = self.registry_labels.get(registry_labels.CHAMPION)
        challenger = self.registry_labels.get(registry_labels.CHALLENGER)
        r = self.rollout
        if rollout_cfg is None or champion is None or challenger is None or champion == challenger:
            if r is not None:
                log.info("rollout of version %d against version %d ended (labels: %s)", r.challenger, r.champion,
                         self.registry_labels or "none")
                if r.decision is None:
                    self.decisions.append({**r.summary(), "id": r.decision_id, "action": "ended", "status": "ended",
                                           "reason": "the challenger label was moved or removed outside the monitor"})
            self.rollout = None
            return
        if r is not None and (r.champion, r.challenger) == (champion, challenger) and r.mode == rollout_cfg.mode:
            return
        self.rollout = Rollout(champion=champion, challenger=challenger, mode=rollout_cfg.mode,
                               since=int(self.counters["records"]))
        log.info("rollout %s: challenger version %d against champion version %d from record %d", rollout_cfg.mode,
                 challenger, champion, self.rollout.since)

    def _serving_version(self) -> Optional[int]:
        """The champion label's version once it answered records, else the traffic majority."""
        from driftguard.components.registry_pusher.labels import CHAMPION

        champion = getattr(self, "registry_labels", {}).get(CHAMPION)
        if champion in self.lanes:
            return champion
        return serving_version(self.lanes, int(self.counters["records"]), self.settings.window)

    def _held_versions(self) -> set:
        """Versions whose alerts are not paged: the challenger, and challengers rolled back
        (their last records may still be in the log), unless one became the champion since."""
        from driftguard.components.registry_pusher.labels import CHAMPION

        held = {d["challenger"] for d in self.decisions if d.get("action") == "rollback"}
        if self.rollout is not None:
            held.add(self.rollout.challenger)
        held.discard(getattr(self, "registry_labels", {}).get(CHAMPION))
        return held

    def _shadow_pairs(self, d, versions: np.ndarray) -> None:
        """Shadow: the two versions' predictions for the same request ids in this batch (serve
        writes the challenger's record right after the champion's), for their agreement."""
        r = self.rollout
        if r is None or r.mode != "shadow" or d.request_ids is None:
            return
        champion = np.flatnonzero(versions == r.champion)
        challenger = np.flatnonzero(versions == r.challenger)
        if not champion.size or not challenger.size:
            return
        ids = d.request_ids
        where = {rid: i for rid, i in zip(ids[champion].tolist(), champion.tolist()) if rid is not None}
        pairs = [(where[rid], j) for rid, j in zip(ids[challenger].tolist(), challenger.tolist()) if rid in where]
        if pairs:
            a, b = np.asarray(pairs, dtype=np.int64).T
            from driftguard.monitoring.baseline import THRESHOLD

            r.add_pairs(d.probability[a], d.probability[b], self.cfg.task, THRESHOLD)

    def _rollout_pairs(self, first_versions: np.ndarray, first: np.ndarray, version: int, second: np.ndarray,
                       label: np.ndarray) -> None:
        """Two versions' predictions of the same labelled ids (shadow): the champion's and the
        challenger's losses side by side, for the paired test."""
        r = self.rollout
        if r is None or version not in (r.champion, r.challenger):
            return
        other = r.champion if version == r.challenger else r.challenger
        mine = (first_versions == other) & np.isfinite(first) & np.isfinite(second) & np.isfinite(label)
        if not mine.any():
            return
        y = label[mine].astype(np.float64)
        loss_first = self.baseline(other).errors(first[mine].astype(np.float64), y)
        loss_second = self.baseline(version).errors(second[mine].astype(np.float64), y)
        champion, challenger = (loss_first, loss_second) if version == r.challenger else (loss_second, loss_first)
        r.add_paired_losses(champion, challenger)

    def _rollout_evidence(self, evidence: List[Tuple[np.ndarray, int, np.ndarray]]) -> None:
        """Joined labels' losses of the champion and the challenger, in join order, with a look
        of the sequential test each time the challenger reaches ``check_every`` more labels (so
        the looks fall at the same labels however the log and labels are cut into batches)."""
        r = self.rollout
        if r is None or r.decision is not None:
            return
        parts = [(at, np.full(at.size, v), x) for at, v, x in evidence if v in (r.champion, r.challenger)]
        if not parts:
            return
        at, versions, losses = (np.concatenate(c) for c in zip(*parts))
        order = np.argsort(at, kind="stable")
        is_ch, losses = versions[order] == r.challenger, losses[order]
        settings, lane = self.cfg.rollout, self.lanes[r.challenger] if r.challenger in self.lanes else None
        start = 0
        while start < losses.size and r.decision is None:
            need = max(1, r.next_look - r.losses["challenger"].n)
            ch_at = np.flatnonzero(is_ch[start:])
            end = losses.size if ch_at.size < need else start + int(ch_at[need - 1]) + 1
            seg, ch = losses[start:end], is_ch[start:end]
            r.add_losses(r.champion, seg[~ch])
            r.add_losses(r.challenger, seg[ch])
            start = end
            if lane is None:
                continue
            self._decided(r.decide(alpha=float(lane.budget["alpha"]), margin=float(settings.margin),
                                   min_labels=int(settings.min_labels), check_every=int(settings.check_every),
                                   binary=self.cfg.task != "regression", record=int(self.counters["records"])))

    def _decided(self, decision: Optional[Dict[str, Any]]) -> None:
        """A new rollout decision: journaled (applied to the registry after the commit, by
        :meth:`_apply_decisions`, when ``rollout.auto``) and notified once."""
        from driftguard.components.alerts.alert import Alert

        if decision is None:
            return
        if not self.cfg.rollout.auto:
            decision["status"] = "advised"
        self.decisions.append(decision)
        self.step_decisions.append(decision)
        counts = self.counters.setdefault("rollout_decisions", {})
        counts[decision["action"]] = counts.get(decision["action"], 0) + 1
        model, action = self.cfg.model_name, decision["action"]
        ch, cp = decision["challenger"], decision["champion"]
        done = "" if self.cfg.rollout.auto else " advised (rollout.auto is off: driftguard promote/rollback decides)"
        title = (f"{model}: challenger version {ch} rolled back, champion version {cp} stays" if action == "rollback"
                 else f"{model}: challenger version {ch} promoted to champion (was version {cp})") + done
        log.warning("rollout decision %s: %s: %s", decision["id"], title, decision["reason"])
        self._direct.append(Alert(
            rule=f"rollout_{action}", severity="critical" if action == "rollback" else "info", title=title,
            summary=decision["reason"], dedup_key=f"{model}/live/rollout-{decision['id']}/rollout_{action}",
            labels={"model": model, "rule": f"rollout_{action}", "scope": f"live/rollout-{decision['id']}",
                    "champion": str(cp), "challenger": str(ch)},
            values={"record": decision["record"], **(self.rollout.last_look if self.rollout else {})}))
        key = f"rollout_{action}/{'critical' if action == 'rollback' else 'info'}"
        self.counters["alerts"][key] = self.counters["alerts"].get(key, 0) + 1

    def _apply_decisions(self) -> None:
        """Apply the committed decisions to the registry's labels, each exactly once: the audit
        trail names the decision it applied, so a run killed after the label change and before
        its commit finds it there and does not apply it again; a compare-and-swap refuses a
        decision whose labels someone moved meanwhile (recorded as superseded)."""
        from driftguard.components.registry_pusher import labels as registry_labels

        registry = self.cfg.model_registry
        for d in [d for d in self.decisions if d.get("status") == "pending"]:   # called when all is committed
            _fault("before_apply")
            applied = any(e.get("decision") == d["id"] for e in registry_labels.read_audit(registry))
            if not applied:
                expect = {registry_labels.CHAMPION: d["champion"], registry_labels.CHALLENGER: d["challenger"]}
                promote = d["action"] == "promote"
                try:
                    changes = registry_labels.set_labels(
                        registry, {registry_labels.CHAMPION: d["challenger"]} if promote else {},
                        remove=[registry_labels.CHALLENGER], expect=expect, who="driftguard monitor",
                        action=registry_labels.PROMOTE if promote else registry_labels.ROLLBACK,
                        reason=f"rollout decision {d['id']}: {d['reason']}", extra={"decision": d["id"]})
                except registry_labels.LabelError as e:
                    d["status"], d["error"] = "superseded", str(e)
                    log.error("rollout decision %s (%s) not applied: %s", d["id"], d["action"], e)
                else:
                    self._record_in_mlmd(changes)
            if d["status"] == "pending":
                d["status"] = "applied"
                log.warning("rollout decision %s applied: %s of version %d", d["id"], d["action"], d["challenger"])
            _fault("after_apply")
            self.commit()

    def _record_in_mlmd(self, changes) -> None:
        """The label changes in the project's MLMD store, as ``driftguard promote`` records them
        (best effort: they are in the audit trail whatever MLMD says)."""
        from driftguard.components.registry_pusher import labels as registry_labels
        from driftguard.components.registry_pusher import mlmd_record

        from driftguard.pipeline import metadata

        try:
            connection = metadata.connection_config(self.cfg) if metadata.store_exists(self.cfg) else None
            mlmd_record.record_label_changes(connection, self.cfg.model_registry, self.cfg.model_name,
                                             changes, registry_labels.read_labels(self.cfg.model_registry))
        except Exception as e:  # noqa: BLE001 - e.g. the store locked by a running pipeline
            log.warning("rollout label change is in the audit trail but not in MLMD (%s): %s: %s",
                        metadata.describe(self.cfg), type(e).__name__, e)

    # -- windows

    def _evaluate_window(self, lane: Lane, baseline: Baseline, first: int, last: int,
                         rows: Mapping[str, np.ndarray], alerts: List[Any]) -> None:
        self.counters["windows"] += 1
        report = windows.evaluate_window(baseline, first, last, rows, alpha=lane.budget["alpha"],
                                         multivariate=self.settings.multivariate, classes=self.cfg.classes,
                                         classifier=self.settings.classifier,
                                         classifier_max_rows=self.settings.classifier_max_rows)
        if report.features_error is not None:
            self.counters["window_errors"] += 1
        new = self._of_version(lane, self._raise(alerts, scope=report.scope, source=f"window:v{lane.version}",
                                                 position=lane.windows, drift_report=report.drift,
                                                 monitor=report.monitor, version=lane.version))
        window = report.summary
        window["alerts"] = [a.dedup_key for a in new]
        lane.last_window = window
        self.step_windows.append(window)
        log.info("window %s of version %d: %s; %d alert(s)", report.scope, lane.version, windows.features_text(window),
                 len(new))

    def _evaluate_label_window(self, lane: Lane, baseline: Baseline, part: Mapping[str, np.ndarray],
                               alerts: List[Any]) -> None:
        self.counters["label_windows"] += 1
        lane.label_windows += 1
        report = windows.evaluate_label_window(baseline, part, alpha=lane.budget["alpha"])
        new = self._of_version(lane, self._raise(alerts, scope=report.scope, drift_report=None, monitor=report.monitor,
                                                 source=f"labels:v{lane.version}",
                                                 position=lane.label_windows, version=lane.version))
        lane.last_label_window = {**report.summary, "version": lane.version, "alerts": [a.dedup_key for a in new]}

    # -- alerts

    def _restore_incidents(self, state: Optional[Mapping[str, Any]]) -> None:
        from driftguard.components.alerts.incidents import IncidentTracker

        self.clock: Callable[[], float] = time.time      # incidents' group_wait and repeat_interval
        self.incidents = IncidentTracker(self.alerts_config.incidents, model=self.cfg.model_name,
                                         resolve_records=int(self.settings.window), state=state)

    def _raise(self, alerts: List[Any], *, scope: str, drift_report=None, monitor=None, alarms=None,
               source: str, position: int, version: int, quiet: bool = False) -> List[Any]:
        """Evaluate the rules on one window, label window or detector alarm of ``version``'s
        lane (``source`` at ``position``) and hand what fired to the incident tracker; ``quiet``:
        no evaluation, the source only moved on (records fed to a detector without an alarm).

        A challenger's alerts are counted and shown in its windows but not paged: its
        performance is the rollout's decision (one notification), and under shadow its feature
        windows see the champion's traffic again."""
        from driftguard.components.alerts import evaluate

        new = [] if quiet else evaluate(self.alerts_config, model=self.cfg.model_name, scope=scope,
                                        drift_report=drift_report, monitor=monitor, alarms=alarms)
        for a in new:
            key = f"{a.rule}/{a.severity}"
            self.counters["alerts"][key] = self.counters["alerts"].get(key, 0) + 1
        if new and version in self._held_versions():
            self.counters["challenger_alerts_held"] = self.counters.get("challenger_alerts_held", 0) + len(new)
            return new
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
            self._direct = []                      # sent by their step already
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
        alerts = list(alerts) + self._direct       # rollout decisions: one notification each, never grouped
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
        """What the metrics show: the committed counters, the serving version's last windows and
        detectors, every version's windows (``lanes``) and the windows the last step closed."""
        version = self.serving.get("version")
        reference: Dict[str, Any] = {}
        lane = self.lanes.get(version) if version is not None else None
        if version is not None:
            b = self.baseline(version)          # cached on disk: cheap after the first run
            reference = {"metric": b.metric, "baseline": b.baseline_metric,
                         "estimated": b.estimated_reference.get(b.metric),
                         "mean_confidence": float(np.mean(b.confidence)) if b.confidence.size else None}
        detectors = {}
        for name, d in (lane.detectors if lane is not None else {}).items():
            up, down = d.statistics
            detectors[name] = {"up": up, "down": down, "threshold": d.design.h, "records": d.n_records}
        lanes = {str(v): {"records": ln.records, "windows": ln.windows, "unfinished": ln.unfinished(),
                          "last_window": {k: ln.last_window.get(k) for k in ("first", "last", "records")}
                          if ln.last_window else {}}
                 for v, ln in sorted(self.lanes.items())}
        return {"model": self.cfg.model_name, "version": version, "counters": json.loads(json.dumps(self.counters)),
                "window": dict(lane.last_window) if lane is not None else {},
                "label_window": dict(lane.last_label_window) if lane is not None else {},
                "reference": reference, "budget": dict(lane.budget) if lane is not None else {},
                "detectors": detectors, "detectors_off": dict(lane.detectors_off) if lane is not None else {},
                "lanes": lanes, "step_windows": [dict(w) for w in self.step_windows],
                "incidents": {**self.incidents.summary(), "events": list(getattr(self, "incident_events", []))},
                "pending": {"labels": len(self.pending_labels), "predictions": len(self.pending_predictions)},
                "rollout": {"active": self._rollout_summary(),
                            "decisions": [dict(d) for d in self.decisions[-5:]],
                            "step_decisions": [dict(d) for d in self.step_decisions]},
                "lag": dict(self.lag)}

    def _rollout_summary(self) -> Optional[Dict[str, Any]]:
        """The running comparison, with each version's last window's estimated metric."""
        r = self.rollout
        if r is None:
            return None
        lanes = {role: self.lanes.get(v) for role, v in (("champion", r.champion), ("challenger", r.challenger))}
        return {**r.summary(), "estimated": {role: lane.last_window.get("estimated") if lane else None
                                             for role, lane in lanes.items()}}

    def close(self) -> None:
        self.store.close()
        with contextlib.suppress(OSError):
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()


def _fault(point: str) -> None:
    """The test hook of FAULT_KILL_ENV: SIGKILL this process at ``point``."""
    if os.environ.get(FAULT_KILL_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


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
        if on_window is not None and (r.windows or r.alerts or r.labels or r.left_out or r.idle):
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
