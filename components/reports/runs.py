"""Read a ``runs/`` folder into plain dicts: spans (drift report, monitor, gate decision, state
row), alerts, model versions and training attempts. Pure Python (json + sqlite3), no TF.

Everything is found on disk, so a runs folder that was moved or copied still reads: paths
recorded in ``state.json`` are tried as written, then re-rooted under ``runs_dir``.

The span checks' outputs are read under ``<runs>/pipelines`` (a local pipeline root) and under
``<runs>/pipeline-cache/pipelines``: the local mirror of an object-storage ``pipeline_root``
(``s3://...``), which holds only the files :func:`report_input` accepts and names the bucket
prefix it copies in ``<runs>/pipeline-cache/.source``. The command line fills it before it
builds the reports (``driftguard.pipeline.loop.mirror_pipeline_root``); nothing here reaches a
bucket.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
import sqlite3
from typing import Any, Dict, List, Optional

logger = logging.getLogger(__name__)

# MLMD Event.type values (ml_metadata/proto/metadata_store.proto)
_EVENT_INPUT, _EVENT_OUTPUT = 3, 4


@dataclasses.dataclass
class SpanRecord:
    """Everything known about one checked span (the latest check when a span was re-checked)."""

    span: int
    report: Optional[Dict[str, Any]] = None       # DriftDetector report.json
    report_path: Optional[pathlib.Path] = None
    monitor: Optional[Dict[str, Any]] = None      # PredictionMonitor monitor.json
    monitor_path: Optional[pathlib.Path] = None
    decision: Optional[Dict[str, Any]] = None     # RetrainGate decision.json
    decision_path: Optional[pathlib.Path] = None
    row: Optional[Dict[str, Any]] = None          # runs/state.json row (driftguard run only)

    @property
    def span_label(self) -> str:
        """The span as people write it (``7``, ``2013-05``), as the check recorded it."""
        for source in (self.row, (self.report or {}).get("context"), self.monitor):
            if source and source.get("span_label"):
                return str(source["span_label"])
        return str(self.span)

    @property
    def period(self) -> Optional[str]:
        """When the span's data is from, if the project's data says (``<data>/spans.json``)."""
        period = (self.row or {}).get("period")
        return None if not period or period == self.span_label else str(period)

    @property
    def label(self) -> str:
        return f"span {self.span_label}"

    @property
    def compared_version(self) -> Optional[int]:
        """The model version this span was checked against."""
        ctx = (self.report or {}).get("context", {})
        return ctx.get("baseline_version") or (self.monitor or {}).get("model_version")

    @property
    def inputs(self) -> List[pathlib.Path]:
        return [p for p in (self.report_path, self.monitor_path, self.decision_path) if p]


@dataclasses.dataclass
class ModelVersion:
    model: str
    version: str                                  # "3", or "c1" for a candidate
    status: str                                   # serving | challenger | pushed | pending approval | rejected
    profile: Dict[str, Any]

    @property
    def eval_metrics(self) -> Dict[str, Dict[str, float]]:
        return self.profile.get("eval_metrics") or {}


@dataclasses.dataclass
class Runs:
    root: pathlib.Path
    spans: List[SpanRecord]
    alerts: List[Dict[str, Any]]
    versions: List[ModelVersion]
    trainings: List[Dict[str, Any]]               # one per span whose gate said retrain

    @property
    def serving(self) -> Optional[ModelVersion]:
        return next((v for v in self.versions if v.status == "serving"), None)

    def features(self) -> List[str]:
        """Every compared feature, the most often drifted first."""
        count: Dict[str, int] = {}
        for s in self.spans:
            for name, f in ((s.report or {}).get("features") or {}).items():
                count[name] = count.get(name, 0) + (1 if f.get("drifted") else 0)
        return sorted(count, key=lambda n: (-count[n], n))


def _read_json(path: pathlib.Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        logger.warning("cannot read %s: %s", path, e)
        return None


PIPELINE_MIRROR = "pipeline-cache"     # <runs>/pipeline-cache/pipelines/<pipeline>/<Component>/...
MIRROR_SOURCE = ".source"              # <runs>/pipeline-cache/.source: the pipeline_root URI it copies
# (component, file) of every file the reports read from a pipeline root (the statistics for
# statistics_by_span): all a mirror of an object-storage pipeline root holds
REPORT_INPUTS = {("DriftDetector", "report.json"), ("DriftDetector", "report.html"),
                 ("PredictionMonitor", "monitor.json"), ("RetrainGate", "decision.json"),
                 ("StatisticsGen", "FeatureStats.pb")}


def report_input(rel: str) -> bool:
    """Whether ``rel``, a path below a pipeline root, is a file the reports read:
    ``<pipeline>/<Component>/<output>/<artifact id>/<file>`` (statistics one level deeper,
    ``.../<id>/Split-<name>/FeatureStats.pb``) for a (component, file) of :data:`REPORT_INPUTS`.
    Examples, models, transform graphs, evaluations and prediction logs are not."""
    parts = rel.split("/")
    if len(parts) == 6 and parts[4].startswith("Split-"):
        parts = parts[:4] + parts[5:]
    return len(parts) == 5 and parts[3].isdigit() and (parts[1], parts[4]) in REPORT_INPUTS


def _mirror_source(runs_dir: pathlib.Path) -> str:
    try:
        return (pathlib.Path(runs_dir) / PIPELINE_MIRROR / MIRROR_SOURCE).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def rebase(path: str, runs_dir: pathlib.Path) -> pathlib.Path:
    """A path recorded in a runs folder, found again after the folder moved; an object-storage
    URI under the pipeline root that ``<runs>/pipeline-cache`` mirrors, found in the mirror."""
    if "://" in str(path):
        source = _mirror_source(runs_dir).rstrip("/")
        if source and str(path).startswith(source + "/"):
            rest = str(path)[len(source) + 1:].strip("/")
            return pathlib.Path(runs_dir, PIPELINE_MIRROR, "pipelines", *rest.split("/"))
    p = pathlib.Path(path)
    parts = p.parts
    if "pipelines" in parts:
        inside = pathlib.Path(runs_dir).joinpath(*parts[parts.index("pipelines"):])
        if inside.exists() or not p.exists():
            return inside
    return p


def _artifacts(runs_dir: pathlib.Path, component: str, filename: str) -> List[pathlib.Path]:
    """``runs/pipelines/<pipeline>/<component>/<output>/<id>/<filename>`` (and the same under
    the mirror of an object-storage pipeline root), by artifact id."""
    found = [p for root in (runs_dir, runs_dir / PIPELINE_MIRROR)
             for p in root.glob(f"pipelines/*/{component}/*/*/{filename}")]
    return sorted((p for p in found if p.parent.name.isdigit()), key=lambda p: int(p.parent.name))


def _nearest(candidates: List[tuple], artifact_id: int):
    """The (id, path, data) whose artifact id is nearest: the same span check's output."""
    return min(candidates, key=lambda c: abs(c[0] - artifact_id), default=(None, None, None))


def load_spans(runs_dir: pathlib.Path) -> List[SpanRecord]:
    runs_dir = pathlib.Path(runs_dir)
    by_span: Dict[int, Dict[str, List[tuple]]] = {}
    for kind, component, filename in (("report", "DriftDetector", "report.json"),
                                      ("monitor", "PredictionMonitor", "monitor.json"),
                                      ("decision", "RetrainGate", "decision.json")):
        for path in _artifacts(runs_dir, component, filename):
            data = _read_json(path)
            if not data:
                continue
            span = data.get("span", (data.get("context") or {}).get("span"))
            if span is None:
                continue
            by_span.setdefault(int(span), {}).setdefault(kind, []).append((int(path.parent.name), path, data))
    state = _read_json(runs_dir / "state.json") if (runs_dir / "state.json").is_file() else None
    rows = {int(r["span"]): r for r in (state or {}).get("spans", [])}
    out = []
    for span in sorted(set(by_span) | set(rows)):
        found = by_span.get(span, {})
        rec = SpanRecord(span=span, row=rows.get(span))
        reports = found.get("report", [])
        chosen = None
        if rec.row and rec.row.get("report"):
            wanted = rebase(rec.row["report"], runs_dir).with_name("report.json")
            chosen = next((r for r in reports if r[1] == wanted), None)
        chosen = chosen or (reports[-1] if reports else None)
        if chosen:
            rid, rec.report_path, rec.report = chosen
            _, rec.monitor_path, rec.monitor = _nearest(found.get("monitor", []), rid)
            _, rec.decision_path, rec.decision = _nearest(found.get("decision", []), rid)
        out.append(rec)
    return out


def load_alerts(runs_dir: pathlib.Path) -> List[Dict[str, Any]]:
    """``runs/alerts.jsonl`` (every alert raised, whatever the sinks), oldest first."""
    path = pathlib.Path(runs_dir) / "alerts.jsonl"
    alerts = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    alerts.append(json.loads(line))
                except ValueError:
                    logger.warning("%s: skipping a line that is not JSON", path)
    seen, unique = set(), []
    for a in alerts:          # a re-delivered alert keeps its dedup key: show it once
        key = a.get("dedup_key") or id(a)
        if key not in seen:
            seen.add(key)
            unique.append(a)
    return unique


def alert_span(alert: Dict[str, Any]) -> Optional[int]:
    span = (alert.get("labels") or {}).get("span")
    try:
        return int(span)
    except (TypeError, ValueError):
        return None


def _published_status(version: int, serving: Optional[int], labels: Dict[str, int]) -> str:
    """'serving' (the champion, else the newest), 'challenger', or 'pushed' with any other labels."""
    from driftguard.components.registry_pusher.labels import CHALLENGER

    if version == serving:
        return "serving"
    if labels.get(CHALLENGER) == version:
        return "challenger"
    others = sorted(k for k, v in labels.items() if v == version)
    return f"pushed ({', '.join(others)})" if others else "pushed"


def load_versions(runs_dir: pathlib.Path) -> List[ModelVersion]:
    """Published versions (the champion serves, else the highest, as in TF Serving), pending and
    rejected candidates. A corrupt labels.json raises LabelError (a ValueError) naming it."""
    from driftguard.components.registry_pusher import labels as labels_lib

    out: List[ModelVersion] = []
    # <runs>/serving, or the local mirror of an object-storage registry (components/registry_pusher/remote.py)
    model_dirs = [p for root in ("serving", "registry-cache") for p in (pathlib.Path(runs_dir) / root).glob("*")]
    for model_dir in sorted((p for p in model_dirs if p.is_dir()), key=lambda p: p.name):
        published = sorted((p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()),
                           key=lambda p: int(p.name))
        labels = labels_lib.read_labels(model_dir)
        serving = labels_lib.champion_version(model_dir, labels)
        for vdir in published:
            profile = _read_json(vdir / "profile" / "profile.json") or {}
            out.append(ModelVersion(model_dir.name, vdir.name, _published_status(int(vdir.name), serving, labels),
                                    profile))
        for sub, status in ((".pending", "pending approval"), (".rejected", "rejected")):
            for cdir in sorted((model_dir / sub).glob("c*")):
                profile = _read_json(cdir / "profile" / "profile.json") or {}
                out.append(ModelVersion(model_dir.name, cdir.name, status, profile))
    return out


def load_runs(runs_dir) -> Runs:
    """Everything the dashboard shows, read from ``runs_dir``."""
    runs_dir = pathlib.Path(runs_dir).resolve()
    if not runs_dir.is_dir():
        raise FileNotFoundError(f"runs folder {runs_dir} does not exist (run `driftguard run` first, "
                                f"or pass the folder that holds state.json)")
    spans = load_spans(runs_dir)
    trainings = []
    for s in spans:
        d = (s.row or {}).get("decision") or (s.decision or {}).get("decision") or {}
        if d.get("retrain"):
            trainings.append({"span": s.span, "label": s.span_label, "spans": d.get("spans", []),
                              "span_labels": d.get("span_labels") or [], "reason": d.get("reason", ""),
                              "policy": d.get("policy", ""), "outcome": (s.row or {}).get("outcome", "")})
    return Runs(runs_dir, spans, load_alerts(runs_dir), load_versions(runs_dir), trainings)


def statistics_by_span(runs_dir, pipeline_suffix: str = "-check") -> Dict[int, pathlib.Path]:
    """{span: StatisticsGen output folder} of the span checks, from MLMD lineage:
    statistics <-OUTPUT- StatisticsGen execution -INPUT-> examples, whose ``span`` property
    driftguard's SpanExampleGen sets when it runs. Runs of earlier driftguard versions had one
    ExampleGen node per span (``ExampleGen_span<N>``, span property 0): the node names the span.
    The newest statistics win when a span was checked twice.
    """
    runs_dir = pathlib.Path(runs_dir)
    db = runs_dir / "metadata.sqlite"
    if not db.is_file():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT s.id, s.uri, e.uri, p.int_value FROM Artifact s "
            "JOIN Event so ON so.artifact_id = s.id AND so.type = ? "
            "JOIN Event ei ON ei.execution_id = so.execution_id AND ei.type = ? "
            "JOIN Artifact e ON e.id = ei.artifact_id "
            "LEFT JOIN ArtifactProperty p ON p.artifact_id = e.id AND p.name = 'span' AND p.is_custom_property = 0 "
            "WHERE s.uri LIKE '%/StatisticsGen/%' AND e.uri LIKE '%/ExampleGen%' ORDER BY s.id",
            (_EVENT_OUTPUT, _EVENT_INPUT)).fetchall()
    finally:
        con.close()
    out: Dict[int, pathlib.Path] = {}
    for _, stats_uri, examples_uri, span in rows:
        parts = pathlib.Path(examples_uri).parts
        node = next((p for p in parts if p == "ExampleGen" or p.startswith("ExampleGen_span")), None)
        if node is None:
            continue
        pipeline = parts[parts.index(node) - 1]
        if not pipeline.endswith(pipeline_suffix):
            continue
        if node.startswith("ExampleGen_span"):
            span = int(node[len("ExampleGen_span"):])
        if span:
            out[int(span)] = rebase(stats_uri, runs_dir)
    return out
