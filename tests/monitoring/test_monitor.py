"""driftguard monitor on real traffic logs: the first_push model's own predictions on rows of
the workspace spans, written as prediction logs the way serve writes them.

One scenario log serves most tests (13,000 records):
  records      0 - 10,099  rows drawn with replacement from spans 1-2: nothing changed
  records 10,100 - 12,999  the same kind of rows with fare x 1.25 (feature drift)
  labels: every record's true label (big tipper), except records >= 11,500 whose labels
          are flipped (the model's accuracy collapses there)
"""
from __future__ import annotations

import http.server
import json
import os
import pathlib
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from helpers import DRIFTGUARD, REPO, make_config, ws_data

pytestmark = pytest.mark.tfx

N_CLEAN, N_TOTAL, FLIP_FROM = 10_100, 13_000, 11_500
WINDOW, STEP = 1000, 500


# ---------------------------------------------------------------- traffic


@pytest.fixture(scope="module")
def traffic(first_push, workspace):
    """Rows, the model's probabilities on them and their labels (the model is loaded once)."""
    import pandas as pd
    import pyarrow as pa

    from driftguard.components.model_io import ModelSpec, Predictor, encode_examples

    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    data = ws_data(workspace)
    pool = pd.concat([pd.read_csv(data / f"span-{s}" / "data.csv") for s in (1, 2)], ignore_index=True)
    rng = np.random.default_rng(20240601)
    rows = pool.iloc[rng.integers(0, len(pool), N_TOTAL)].reset_index(drop=True)
    labels = (rows["tips"] > 0.2 * rows["fare"].fillna(0.0)).astype(int).to_numpy()
    drifted = rows.copy()
    drifted.loc[N_CLEAN:, "fare"] = (drifted.loc[N_CLEAN:, "fare"] * 1.25).round(2)
    served = drifted.drop(columns=["tips"])                     # serving requests carry no label
    examples = encode_examples(pa.Table.from_pandas(served, preserve_index=False))
    prob = Predictor(first_push["registry"] / "1", ModelSpec()).predict(examples).value
    labels = labels.copy()
    labels[FLIP_FROM:] = 1 - labels[FLIP_FROM:]
    return {"examples": examples, "prob": prob, "labels": labels}


def write_log(directory: pathlib.Path, examples, prob, ids=None, version=1, per_request=1, max_bytes=4 << 20):
    """PredictionLog records as serve writes them (``ids=None``: TF Serving's own, without ids)."""
    from driftguard.serving import predictlog as pl

    with pl.PredictionLogWriter(directory, max_bytes=max_bytes) as w:
        for start in range(0, len(examples), per_request):
            end = min(start + per_request, len(examples))
            rids = ids[start:end] if ids is not None else [f"x{i}" for i in range(start, end)]
            record = pl.make_predict_log("taxi", version, examples[start:end],
                                         {"probabilities": np.asarray(prob[start:end], np.float32).reshape(-1, 1)},
                                         rids, timestamp=1_700_000_000 + start)
            if ids is None:
                del record.predict_log.response.outputs[pl.REQUEST_ID_OUTPUT]
            w.write(record)


def write_labels(path: pathlib.Path, ids, labels) -> None:
    path.write_text("request_id,label\n" + "".join(f"{i},{int(y)}\n" for i, y in zip(ids, labels)))


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, traffic):
    root = tmp_path_factory.mktemp("scenario")
    ids = [f"req-{i}" for i in range(N_TOTAL)]
    write_log(root / "logs", traffic["examples"], traffic["prob"], ids=ids)
    write_labels(root / "labels.csv", ids, traffic["labels"])
    return root


def runs_folder(root: pathlib.Path, first_push, name: str, **monitor) -> pathlib.Path:
    """A runs folder of its own (own outbox and alerts.jsonl) sharing the trained registry."""
    runs = root / name / "runs"
    (runs / "serving").mkdir(parents=True)
    os.symlink(first_push["registry"], runs / "serving" / "taxi")
    settings = {"window": WINDOW, "step": STEP, **monitor}
    return make_config(root / name, "cfg", runs=str(runs), monitor=settings)


def load(cfg_path):
    from driftguard.pipeline import config as config_lib

    return config_lib.load(cfg_path)


def run_monitor(cfg_path, logs, labels=None, chunks=(None,), retrain=None):
    """In-process monitor runs over the same state: each chunk is one process lifetime."""
    from driftguard.monitoring import monitor as monitor_lib

    cfg = load(cfg_path)
    for chunk in chunks:
        mon = monitor_lib.Monitor(cfg, logs=logs, labels=labels, retrain=retrain and retrain(cfg))
        try:
            monitor_lib.run(mon, once=True, max_records=chunk)
        finally:
            mon.close()
    return outcome(cfg)


def outcome(cfg):
    """What two runs must agree on: committed counters, detector states and every alert key."""
    from driftguard.components.alerts.outbox import Outbox, outbox_path
    from driftguard.monitoring.pending import JOINED_FIELDS, LABEL_FIELDS, PREDICTION_FIELDS, PendingSet
    from driftguard.monitoring.store import STATE_FILE, StateStore, state_dir

    store = StateStore(state_dir(cfg) / STATE_FILE)
    meta = store.meta()
    pending = {kind: list(PendingSet.replay(fields, *store.journal(kind)).rows())      # in order
               for kind, fields in (("predictions", PREDICTION_FIELDS), ("labels", LABEL_FIELDS),
                                    ("joined", JOINED_FIELDS))}
    chunks = store.window_chunks()
    store.close()
    keys = sorted(r["dedup_key"] for r in Outbox(outbox_path(cfg.runs_path)).rows())
    jsonl = cfg.runs_path / "alerts.jsonl"
    lines = [json.loads(x)["dedup_key"] for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    detectors = {f"v{v}/{k}": d["state"] for v, lane in meta.get("lanes", {}).items()
                 for k, d in lane["detectors"].items()}
    # each version's windows, without the wall-clock times of their summaries
    lanes = {v: {k: ({f: x for f, x in val.items() if f != "time"} if isinstance(val, dict) else val)
                 for k, val in lane.items() if k != "detectors"}
             for v, lane in meta.get("lanes", {}).items()}
    return {"counters": meta["counters"], "detectors": detectors, "alerts": keys, "jsonl": lines,
            "position": meta["position"], "pending": pending, "meta": meta, "lanes": lanes, "chunks": chunks}


class AirflowStandIn:
    """A loopback HTTP server answering Airflow's ``POST /api/v1/dags/<id>/dagRuns``."""

    def __init__(self):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, self.headers.get("Authorization")))
                answer = json.dumps({"dag_run_id": body.get("dag_run_id"), "state": "queued",
                                     "conf": body.get("conf")}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, first_push, scenario):
    """The uninterrupted run (with an Airflow stand-in receiving the retrain trigger)."""
    from driftguard.monitoring.store import state_dir
    from driftguard.monitoring.trigger import Retrainer

    root = tmp_path_factory.mktemp("uninterrupted")
    cfg_path = runs_folder(root, first_push, "a")
    airflow = AirflowStandIn()
    try:
        result = run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv",
                             retrain=lambda cfg: Retrainer(cfg, mode="airflow", state_dir=state_dir(cfg),
                                                           airflow_url=airflow.url))
    finally:
        airflow.close()
    result["airflow"] = airflow.requests
    result["cfg_path"] = cfg_path
    return result


def _last_record(key: str) -> int:
    """The last record (or joined label) an alert key's scope covers: w<a>-<b>, labels-j<a>-<b>, r<n>, j<n>."""
    scope = key.split("/")[2]
    tail = scope.rsplit("-", 1)[-1] if "-" in scope and scope[0] in "wl" else scope
    return int(tail.lstrip("rjw"))


# ---------------------------------------------------------------- tests


def test_unchanged_traffic_raises_nothing_then_drift_and_accuracy_drop_are_caught(reference_run):
    counters, keys = reference_run["counters"], reference_run["alerts"]
    assert counters["records"] == N_TOTAL and counters["labels_joined"] == N_TOTAL
    assert counters["windows"] == (N_TOTAL - WINDOW) // STEP + 1
    # nothing about the first 10,100 unchanged records: no window, label window or detector alarm
    early = [k for k in keys if _last_record(k) < N_CLEAN]
    assert early == [], early
    # fare x1.25 from record 10,100: caught on fare in a window ending within 1,000 records
    fare = sorted(_last_record(k) for k in keys if k.endswith("/fare") and "/feature_psi/" in k)
    assert fare and fare[0] - N_CLEAN < 1000, fare
    # the dataset_drift incident opened at that window or before (one incident each, not per window)
    assert any(_last_record(k) <= fare[0] and "/dataset_drift" in k for k in keys)
    # flipped labels from 11,500: realized accuracy drop and the error-rate detector
    drops = sorted(_last_record(k) for k in keys if k.endswith("/metric_drop") and _last_record(k) >= FLIP_FROM)
    errors = sorted(_last_record(k) for k in keys if "/error_rate_change/" in k and _last_record(k) >= FLIP_FROM)
    assert drops and drops[0] < FLIP_FROM + 2 * STEP, drops      # the first label window after the flip
    assert errors and errors[0] < FLIP_FROM + 1000, errors
    # every alert reached the JSON-lines sink exactly once
    assert sorted(reference_run["jsonl"]) == keys and len(set(keys)) == len(keys)


def test_a_critical_alert_triggers_retraining_exactly_once(reference_run):
    requests = reference_run["airflow"]
    assert len(requests) == 1, requests
    path, body, _ = requests[0]
    assert path == "/api/v1/dags/taxi-training/dagRuns"
    assert body["dag_run_id"] == "driftguard-monitor-taxi-v1" and body["conf"]["source"] == "driftguard monitor"
    assert reference_run["counters"]["retrain_triggers"] == 1
    assert reference_run["meta"]["retrain"]["versions"]["1"]["status"] == "triggered"


def test_stopping_at_awkward_points_loses_and_repeats_nothing(tmp_path, first_push, scenario, reference_run):
    from driftguard.monitoring.store import state_dir
    from driftguard.monitoring.trigger import Retrainer

    cfg_path = runs_folder(tmp_path, first_push, "chunks", batch_records=700)
    airflow = AirflowStandIn()
    try:
        # stops mid-window, mid-label-window, mid-detector-block, one record before a window end
        chunked = run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv",
                              chunks=(1, 1234, 3765, 2000, 5000, None),
                              retrain=lambda cfg: Retrainer(cfg, mode="airflow", state_dir=state_dir(cfg),
                                                            airflow_url=airflow.url))
    finally:
        airflow.close()
    for key in ("counters", "detectors", "alerts", "position", "pending", "lanes"):
        assert chunked[key] == reference_run[key], key
    assert sorted(chunked["jsonl"]) == reference_run["alerts"]     # each alert delivered once
    assert len(airflow.requests) == 1        # debounced across restarts (remembered in the state)


def test_sigkill_mid_log_then_resume_equals_one_uninterrupted_run(tmp_path, first_push, scenario, reference_run):
    from driftguard.monitoring.store import STATE_FILE, state_dir

    cfg_path = runs_folder(tmp_path, first_push, "killed", batch_records=300)
    cfg = load(cfg_path)     # the profile holds the model's predictions on its reference: no SavedModel load
    cmd = DRIFTGUARD + ["--config", str(cfg_path), "monitor", "--logs", str(scenario / "logs"),
                        "--labels", str(scenario / "labels.csv"), "--poll-seconds", "0.1", "--metrics-port", "0"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first_line = proc.stdout.readline().decode()           # printed before any record is read
    assert first_line.startswith("metrics: http://127.0.0.1:"), (first_line, proc.stderr.read().decode()[-2000:])
    url = first_line.split()[1]
    db_path = state_dir(cfg) / STATE_FILE
    seen, scraped = 0, None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if db_path.exists():
            try:
                db = sqlite3.connect(db_path, timeout=1)
                row = db.execute("SELECT value FROM meta WHERE key = 'counters'").fetchone()
                db.close()
                seen = json.loads(row[0])["records"] if row else 0
            except sqlite3.Error:
                pass
        if seen >= 1000 and scraped is None:          # the live endpoint of the running monitor
            from driftguard.monitoring.exporter import parse_exposition

            scraped = parse_exposition(urllib.request.urlopen(url, timeout=30).read().decode())
        if seen >= 4000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1].decode()[-3000:]
    assert scraped["driftguard_monitor_records_total"][(("model", "taxi"),)] >= 1000
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    killed_at = outcome(cfg)["counters"]["records"]
    assert 4000 <= killed_at < N_TOTAL
    resumed = run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv")
    for key in ("detectors", "alerts", "position", "pending", "lanes"):
        assert resumed[key] == reference_run[key], key
    assert sorted(resumed["jsonl"]) == reference_run["alerts"]
    mine = {k: v for k, v in resumed["counters"].items() if k != "retrain_triggers"}
    theirs = {k: v for k, v in reference_run["counters"].items() if k != "retrain_triggers"}
    assert mine == theirs


def test_tf_serving_logs_without_request_ids(tmp_path, first_push, traffic):
    n = 3000
    examples = traffic["examples"][N_CLEAN - 1500:N_CLEAN + 1500]
    write_log(tmp_path / "logs", examples, traffic["prob"][N_CLEAN - 1500:N_CLEAN + 1500], ids=None, per_request=3)
    write_labels(tmp_path / "labels.csv", [f"x{i}" for i in range(n)], np.zeros(n))
    result = run_monitor(runs_folder(tmp_path, first_push, "tfs"), tmp_path / "logs", tmp_path / "labels.csv")
    c = result["counters"]
    assert c["records"] == n and c["log_records"] == n // 3
    assert c["without_id"] == n and c["labels_joined"] == 0 and c["label_windows"] == 0
    # no logged prediction carries an id: once the log is read to its end, the labels are counted as
    # labels for unknown ids and dropped (they waited for good before)
    assert c["labels_unknown_id"] == n
    assert {k: len(v) for k, v in result["pending"].items()} == {"predictions": 0, "labels": 0, "joined": 0}
    assert any("/feature_psi/fare" in k for k in result["alerts"]), result["alerts"]
    assert not any("metric_drop" in k or "error_rate" in k for k in result["alerts"])


def test_metrics_endpoint_textfile_and_dashboard(tmp_path, reference_run):
    from driftguard.monitoring import exporter
    from driftguard.monitoring import monitor as monitor_lib
    from driftguard.monitoring.store import state_dir

    cfg = load(reference_run["cfg_path"])
    text = state_dir(cfg) / exporter.METRICS_FILE
    # a fresh endpoint over the committed state of the uninterrupted run
    mon = monitor_lib.Monitor(cfg, logs=pathlib.Path(reference_run["meta"]["logs"]),
                              labels=pathlib.Path(reference_run["meta"]["labels_source"]))
    try:
        collector = exporter.MonitorCollector()
        collector.snapshot = mon.snapshot()
        registry = exporter.make_registry(collector)
        exporter.write_textfile(text, registry)
        server = exporter.MetricsServer(registry, "127.0.0.1", 0, token="s3cret")
        try:
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(server.url, timeout=10)
            assert err.value.code == 401
            request = urllib.request.Request(server.url, headers={"Authorization": "Bearer s3cret"})
            scraped = urllib.request.urlopen(request, timeout=10).read().decode()
        finally:
            server.close()
    finally:
        mon.close()
    samples = exporter.parse_exposition(scraped)
    model = (("model", "taxi"),)
    c = reference_run["counters"]
    assert samples["driftguard_monitor_records_total"][model] == N_TOTAL
    assert samples["driftguard_monitor_labels_joined_total"][model] == c["labels_joined"]
    alerts = samples["driftguard_monitor_alerts_total"]
    assert sum(alerts.values()) == sum(c["alerts"].values())      # every alarm the rules raised
    assert len(reference_run["alerts"]) < sum(c["alerts"].values())   # ... more than the incidents' pages
    totals = reference_run["meta"]["incidents"]["totals"]
    events = samples["driftguard_monitor_incident_events_total"]
    assert events[(("event", "opened"), ("model", "taxi"))] == totals["opened"] >= 1
    assert events[(("event", "repeated"), ("model", "taxi"))] == totals["repeated"] >= 10
    assert samples["driftguard_monitor_incidents_open"][
        (("model", "taxi"), ("rule", "error_rate_change"), ("severity", "critical"))] == 1
    assert samples["driftguard_monitor_feature_psi"][(("feature", "fare"), ("model", "taxi"))] > 0.2
    assert samples["driftguard_monitor_serving_version"][model] == 1
    assert 0 < samples["driftguard_monitor_window_alpha"][model] < 0.01
    for key, value in samples["driftguard_monitor_estimated_metric"].items():     # its 95 % interval beside it
        low, high = samples["driftguard_monitor_estimated_metric_low"][key], samples["driftguard_monitor_estimated_metric_high"][key]
        assert low <= value <= high and low < high
    assert exporter.parse_exposition(text.read_text()) == samples
    # every metric the dashboard's queries use is one the endpoint really exports
    import re

    dashboard = json.loads((REPO / "monitoring" / "grafana_dashboard.json").read_text())
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert any(v["type"] == "datasource" and v.get("query") == "prometheus"
               for v in dashboard["templating"]["list"])
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = set(re.findall(r"driftguard_monitor_[a-z0-9_]+", " ".join(exprs)))
    assert len(exprs) >= 10 and used
    missing = sorted(used - set(samples))
    assert missing == [], missing


def test_bad_inputs_name_the_file_line_or_byte(tmp_path, first_push, scenario):
    from driftguard.monitoring import monitor as monitor_lib
    from driftguard.serving import predictlog as pl
    from driftguard.monitoring.labels import LabelsError

    cfg_path = runs_folder(tmp_path, first_push, "bad")
    # a missing log folder: exit status 2, the path named, before TensorFlow is imported
    proc = subprocess.run(DRIFTGUARD + ["--config", str(cfg_path), "monitor", "--once"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "prediction log folder" in proc.stderr and "prediction_logs/taxi does not exist" in proc.stderr
    # a corrupt record: file and byte offset
    logs = tmp_path / "corrupt"
    logs.mkdir()
    source = pl.log_files(scenario / "logs")[0]
    data = bytearray(source.read_bytes())
    frame = 16 + int.from_bytes(data[:8], "little")
    second = frame + 16 + int.from_bytes(data[frame:frame + 8], "little")
    data[second + 40] ^= 0xFF                                  # inside the third record's data
    (logs / source.name).write_bytes(bytes(data))
    cfg = load(cfg_path)
    mon = monitor_lib.Monitor(cfg, logs=logs, state=tmp_path / "s1")
    try:
        with pytest.raises(pl.PredictionLogError, match=rf"{source.name}: corrupt record at byte {second} "):
            monitor_lib.run(mon, once=True)
        assert mon.counters["records"] == 0            # nothing of that batch was committed
    finally:
        mon.close()
    # a labels file with a bad row: file and line; the position stays before it
    labels = tmp_path / "labels.csv"
    labels.write_text("request_id,label\nreq-0,1\nreq-1,true\nreq-2,maybe\nreq-3,0\n")
    mon = monitor_lib.Monitor(cfg, logs=scenario / "logs", labels=labels, state=tmp_path / "s2")
    try:
        with pytest.raises(LabelsError, match=r"labels\.csv:4: label 'maybe' is not 0/1 or true/false"):
            mon.step()
    finally:
        mon.close()
    assert not (tmp_path / "s2" / "state.sqlite").exists() or \
        sqlite3.connect(tmp_path / "s2" / "state.sqlite").execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0


# ---------------------------------------------------------------- incidents (no alert storms)


def _incident_rows(keys):
    """{group (rule[/feature]): [open key, update keys..., resolved key]} from notification keys."""
    groups = {}
    for key in keys:
        parts = key.split("/")
        kind = "resolved" if parts[-1] == "resolved" else "update" if parts[-1].startswith("update-") else "open"
        what = "/".join(parts[3:] if kind == "open" else parts[3:-1])
        groups.setdefault(what, []).append(kind)
    return groups


def test_a_sustained_change_is_one_incident_per_rule_not_a_storm(reference_run):
    """The scenario's changes last to the end of the log: each rule and feature that fires opens
    one incident, delivered once; the dozens of alarms behind it are counted, not paged."""
    alarms = reference_run["counters"]["alerts"]
    keys = reference_run["alerts"]
    groups = _incident_rows(keys)
    print(f"\nalarms raised by the rules: {sum(alarms.values())} {dict(sorted(alarms.items()))}"
          f"\nnotifications in the outbox: {len(keys)} {groups}")
    assert alarms["error_rate_change/critical"] >= 10          # the storm the rules still raise
    assert groups["error_rate_change/error"] == ["open"]       # ... is one page (repeat_interval 4h)
    assert groups["feature_psi/fare"] == ["open"]
    assert all(kinds.count("open") == 1 for kinds in groups.values()), groups
    assert len(keys) <= len(groups) * 2 < sum(alarms.values()) / 3
    incidents = reference_run["meta"]["incidents"]
    assert incidents["totals"]["opened"] == len(groups)
    assert incidents["totals"]["repeated"] == sum(alarms.values()) - incidents["totals"]["opened"] \
        - incidents["totals"]["updated"]
    assert "taxi/live/error_rate_change/error" in incidents["open"]


def test_without_incidents_every_alarm_is_a_page(tmp_path, first_push, scenario, reference_run):
    """``alerts.incidents: false``: the behaviour before incidents, one notification per alarm
    (the storm the incidents replace), measured on the same log."""
    runs = tmp_path / "off" / "runs"
    (runs / "serving").mkdir(parents=True)
    os.symlink(first_push["registry"], runs / "serving" / "taxi")
    cfg_path = make_config(tmp_path / "off", "cfg", runs=str(runs), monitor={"window": WINDOW, "step": STEP},
                           alerts={"incidents": False})
    result = run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv")
    alarms = result["counters"]["alerts"]
    print(f"\nincidents off: {len(result['alerts'])} notifications for {sum(alarms.values())} alarms; "
          f"incidents on: {len(reference_run['alerts'])}")
    assert alarms == reference_run["counters"]["alerts"]
    assert len(result["alerts"]) == sum(alarms.values()) == len(set(result["jsonl"]))
    assert len(result["alerts"]) >= 10 * len(reference_run["alerts"])


def test_group_wait_sends_the_incidents_that_open_together_as_one_page(tmp_path, first_push, scenario,
                                                                       reference_run, monkeypatch):
    """group_wait 10m: the four incidents of the scenario open within seconds of each other and
    go out as one notification when the --once run ends; a real HTTP receiver standing in for
    Alertmanager gets one POST holding one alert per incident."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "alerts"))
    from alerts_servers import Receiver

    receiver = Receiver()
    monkeypatch.setenv("DG_TEST_AM", receiver.url())
    runs = tmp_path / "grouped" / "runs"
    (runs / "serving").mkdir(parents=True)
    os.symlink(first_push["registry"], runs / "serving" / "taxi")
    cfg_path = make_config(tmp_path / "grouped", "cfg", runs=str(runs), monitor={"window": WINDOW, "step": STEP},
                           alerts={"sinks": [{"type": "jsonl"}, {"type": "alertmanager", "url_env": "DG_TEST_AM"}],
                                   "incidents": {"group_wait": "10m"}})
    try:
        result = run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv")
        posts = [json.loads(r["body"]) for r in receiver.requests]
    finally:
        receiver.close()
    assert result["meta"]["incidents"]["held"] == []
    assert len(result["jsonl"]) == 1 and len(posts) == 1, (result["jsonl"], posts)
    opened = sorted(reference_run["alerts"])                  # the incidents of the run without group_wait
    assert sorted(a["labels"]["incident"] for a in posts[0]) == opened
    assert all("scope" not in a["labels"] and "endsAt" not in a for a in posts[0])
    assert result["jsonl"][0] in opened


def _sinks_config(root, first_push, name, webhook_port, smtp_port, **incidents):
    runs = root / name / "runs"
    (runs / "serving").mkdir(parents=True)
    os.symlink(first_push["registry"], runs / "serving" / "taxi")
    alerts = {"sinks": [{"type": "jsonl"},
                        {"type": "webhook", "url_env": "DG_TEST_INCIDENT_HOOK"},
                        {"type": "email", "host": "127.0.0.1", "port": smtp_port, "sender": "dg@example.org",
                         "to": ["oncall@example.org"]}],
              "delivery": {"backoff_seconds": 0, "timeout_seconds": 5},
              "incidents": incidents}
    # small batches: the test's clock (records read) moves between the error detector's alarms
    return make_config(root / name, "cfg", runs=str(runs), monitor={"window": WINDOW, "step": STEP,
                                                                    "batch_records": 250}, alerts=alerts)


def test_a_change_that_ends_resolves_and_real_sinks_get_each_notification_once_across_a_crash(
        tmp_path, first_push, traffic, monkeypatch):
    """Clean traffic, then 2,900 records with fare x1.25 (labels flipped for the last 1,500), then
    clean again: each incident opens once, updates at most once per repeat_interval, and resolves
    once the stream is back in control. The webhook receiver is down for the first part (the
    notifications wait in the outbox), and the monitor dies once between putting a batch's
    notifications in the outbox and committing its state: a real HTTP receiver and a real SMTP
    server still get every notification exactly once."""
    import email
    import email.policy
    import sys

    sys.path.insert(0, str(REPO / "tests" / "alerts"))
    from alerts_servers import Mailbox, Receiver, free_port
    from driftguard.components.alerts.outbox import Outbox, outbox_path
    from driftguard.monitoring import monitor as monitor_lib

    order = np.r_[0:6000, N_CLEAN:N_TOTAL, 6000:N_CLEAN]            # clean, changed, clean again
    ids = [f"req-{i}" for i in order]
    write_log(tmp_path / "logs", [traffic["examples"][i] for i in order], traffic["prob"][order], ids=ids)
    write_labels(tmp_path / "labels.csv", ids, traffic["labels"][order])
    hook_port = free_port()                                         # nothing listens yet
    mailbox = Mailbox()
    cfg_path = _sinks_config(tmp_path, first_push, "ends", hook_port, mailbox.port, repeat_interval="10m")
    monkeypatch.setenv("DG_TEST_INCIDENT_HOOK", f"http://127.0.0.1:{hook_port}/hook")
    cfg = load(cfg_path)

    # the monitor's clock: one second per record, as the log's timestamps go (deterministic)
    def monitor(**kw):
        mon = monitor_lib.Monitor(cfg, logs=tmp_path / "logs", labels=tmp_path / "labels.csv", **kw)
        mon.clock = lambda: 1_700_000_000.0 + mon.counters["records"]
        return mon

    class Crash(Exception):
        pass

    commit = monitor_lib.Monitor.commit
    crashed = []

    def crash_once(self):            # dies after the outbox has the batch's pages, before the commit
        if not crashed and self.incidents.totals["pages"] > 0:
            crashed.append(self.counters["records"])
            raise Crash
        commit(self)

    receiver = None
    try:
        monkeypatch.setattr(monitor_lib.Monitor, "commit", crash_once)
        mon = monitor()
        with pytest.raises(Crash):
            monitor_lib.run(mon, once=True, max_records=8000)
        mon.close()
        monkeypatch.setattr(monitor_lib.Monitor, "commit", commit)
        mon = monitor()                                  # restart: replays the uncommitted batch
        monitor_lib.run(mon, once=True, max_records=8000)
        mon.close()
        receiver = Receiver(port=hook_port)              # the webhook receiver comes up
        mon = monitor()
        monitor_lib.run(mon, once=True)
        mon.close()
        d = cfg.alerts_settings.delivery                 # what `driftguard alerts deliver` does
        from driftguard.components.alerts.sinks import build_sinks

        Outbox(outbox_path(cfg.runs_path)).deliver(build_sinks(cfg.alerts_settings, cfg.runs_path),
                                                   timeout=d.timeout_seconds, max_attempts=d.max_attempts,
                                                   backoff_seconds=0)
        hooked = [json.loads(r["body"])["dedup_key"] for r in receiver.requests]
        mailed = [email.message_from_bytes(m["data"] if isinstance(m["data"], bytes) else m["data"].encode(),
                                           policy=email.policy.default) for m in mailbox.messages]
    finally:
        if receiver is not None:
            receiver.close()
        mailbox.close()
    assert crashed, "the monitor never died between the outbox and the commit"
    result = outcome(cfg)
    keys, alarms = sorted(set(result["alerts"])), result["counters"]["alerts"]      # 3 sinks: 3 rows a key
    groups = _incident_rows(keys)
    print(f"\nalarms raised by the rules: {sum(alarms.values())} {dict(sorted(alarms.items()))}"
          f"\nnotifications: {len(keys)} {groups}")
    rows = Outbox(outbox_path(cfg.runs_path)).rows()
    assert all(r["state"] == "delivered" for r in rows), [r for r in rows if r["state"] != "delivered"]
    # exactly once per sink: the JSON lines, the HTTP receiver (down, then up) and the mailbox
    assert len(rows) == 3 * len(keys)
    assert sorted(result["jsonl"]) == keys and sorted(hooked) == keys
    mailed_keys = sorted(str(m["X-Driftguard-Dedup-Key"]) for m in mailed)
    assert mailed_keys == keys
    # one incident per rule and feature; the error rate and fare came back, so those resolved
    assert all(kinds.count("open") == 1 and kinds.count("resolved") <= 1 for kinds in groups.values()), groups
    assert groups["error_rate_change/error"].count("resolved") == 1
    assert groups["feature_psi/fare"].count("resolved") == 1
    # updates: at most one per repeat_interval (600 s = 600 records of this clock) of alarming
    flipped = N_TOTAL - FLIP_FROM
    assert 1 <= groups["error_rate_change/error"].count("update") <= flipped // 600 + 1
    assert alarms["error_rate_change/critical"] > 3 * len(groups["error_rate_change/error"])
    meta = result["meta"]["incidents"]
    assert "taxi/live/error_rate_change/error" not in meta["open"]
    assert meta["totals"]["resolved"] == sum(kinds.count("resolved") for kinds in groups.values())


# ---------------------------------------------------------------- two versions, labels and ids left out
#
# The first 10,100 (unchanged) records, one per request, answered by version 2 except every 40th
# (records 39, 79, ...), pinned to version 1 (both versions are the trained model: the registry
# links "1" and "2" to it). Records 5,000 and 5,001 carry fare = Infinity. Records 6,000-6,009
# reuse the request ids of records 100-109, record 8,001 that of 8,000 and 8,003 that of 8,002.
# Labels: one per id (flipped for version 1's records: its accuracy collapses), then again for
# req ids 0-29 (duplicates), then 20 ids never predicted.
# Then 5 records answered by version 7, which the registry does not hold.

PIN_EVERY, VWINDOW, N_MIXED = 40, 200, N_CLEAN
REUSED = {**{6000 + k: 100 + k for k in range(10)}, 8001: 8000, 8003: 8002}
N_DUP, N_GHOST, N_UNKNOWN_VERSION = 30, 20, 5


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, traffic):
    import tensorflow as tf

    from driftguard.serving import predictlog as pl

    root = tmp_path_factory.mktemp("mixed")
    examples = list(traffic["examples"][:N_MIXED])
    for i in (5000, 5001):
        ex = tf.train.Example.FromString(examples[i])
        ex.features.feature["fare"].float_list.value[:] = [float("inf")]
        examples[i] = ex.SerializeToString()
    versions = np.where(np.arange(N_MIXED) % PIN_EVERY == PIN_EVERY - 1, 1, 2)
    ids = [f"m-{i}" for i in range(N_MIXED)]
    for i, j in REUSED.items():
        ids[i] = ids[j]
    with pl.PredictionLogWriter(root / "logs") as w:
        for i in range(N_MIXED):
            prob = np.asarray(traffic["prob"][i:i + 1], np.float32).reshape(-1, 1)
            w.write(pl.make_predict_log("taxi", int(versions[i]), examples[i:i + 1], {"probabilities": prob},
                                        ids[i:i + 1], timestamp=1_700_000_000 + i))
        for k in range(N_UNKNOWN_VERSION):
            w.write(pl.make_predict_log("taxi", 7, examples[k:k + 1],
                                        {"probabilities": np.full((1, 1), 0.5, np.float32)}, [f"v7-{k}"],
                                        timestamp=1_700_100_000 + k))
    first = sorted(set(range(N_MIXED)) - set(REUSED))
    label_ids = [ids[i] for i in first] + [ids[i] for i in range(N_DUP)] + [f"ghost-{k}" for k in range(N_GHOST)]
    truth = np.where(versions == 1, 1 - traffic["labels"][:N_MIXED], traffic["labels"][:N_MIXED])
    label_values = [truth[i] for i in first] + [truth[i] for i in range(N_DUP)] + [0] * N_GHOST
    write_labels(root / "labels.csv", label_ids, label_values)
    return {"root": root, "versions": versions, "first": first}


def two_versions(root: pathlib.Path, first_push, name: str, **monitor) -> pathlib.Path:
    """A runs folder whose registry holds versions 1 and 2 (both the trained model)."""
    runs = root / name / "runs"
    registry = runs / "serving" / "taxi"
    registry.mkdir(parents=True)
    for v in (1, 2):
        os.symlink(first_push["registry"] / "1", registry / str(v))
    return make_config(root / name, "cfg", runs=str(runs), monitor={"window": VWINDOW, "step": 0, **monitor})


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, first_push, mixed):
    """`driftguard monitor --once` on the mixed log (in process), its console and its state."""
    from click.testing import CliRunner

    from driftguard.cli.main import main

    root = tmp_path_factory.mktemp("mixed-run")
    cfg_path = two_versions(root, first_push, "a")
    airflow = AirflowStandIn()
    try:
        result = CliRunner().invoke(main, ["--config", str(cfg_path), "monitor", "--once", "--logs",
                                           str(mixed["root"] / "logs"), "--labels", str(mixed["root"] / "labels.csv"),
                                           "--retrain", "airflow", "--airflow-url", airflow.url])
    finally:
        airflow.close()
    assert result.exit_code == 0, (result.output, result.exception)
    return {"output": result.output, "cfg_path": cfg_path, "airflow": airflow.requests, **outcome(load(cfg_path))}


def test_pinned_traffic_keeps_each_versions_windows(mixed, mixed_run):
    c, lanes = mixed_run["counters"], mixed_run["lanes"]
    n1 = int((mixed["versions"] == 1).sum())
    n2 = N_MIXED - n1
    assert (n1, n2) == (252, 9848)
    # every record went to its own version's windows; nothing was dropped
    assert c["records"] == N_MIXED and c["discarded"] == 0
    assert c["skipped"] == {"unknown_version": N_UNKNOWN_VERSION}          # counted, and printed (below)
    assert lanes["2"]["records"] == n2 and lanes["2"]["windows"] == n2 // VWINDOW == 49
    assert lanes["1"]["records"] == n1 and lanes["1"]["windows"] == n1 // VWINDOW == 1
    assert c["windows"] == 50
    # version 1's window holds its first 200 records only: records 39 .. 39 + 199 * 40
    w1 = lanes["1"]["last_window"]
    assert (w1["version"], w1["first"], w1["last"], w1["records"]) == (1, 39, 39 + 199 * PIN_EVERY, VWINDOW)
    w2 = lanes["2"]["last_window"]
    assert (w2["version"], w2["records"]) == (2, VWINDOW)
    # the unfinished windows' rows are in the state, each under its version
    chunks = {}
    for version, data in mixed_run["chunks"]:
        from driftguard.monitoring.store import table_columns

        chunks.setdefault(version, []).extend(table_columns(data)["row"].tolist())
    assert sorted(chunks) == [1, 2]
    assert all(r % PIN_EVERY == PIN_EVERY - 1 for r in chunks[1]) and len(chunks[1]) >= n1 - VWINDOW
    assert not any(r % PIN_EVERY == PIN_EVERY - 1 for r in chunks[2]) and len(chunks[2]) >= n2 % VWINDOW
    # the serving version is the one answering most of the traffic
    assert mixed_run["meta"]["serving"]["version"] == 2
    # labels joined to predictions of either version fill that version's label windows
    assert c["label_windows"] == n1 // VWINDOW + (c["labels_joined"] - n1) // VWINDOW


def test_a_skipped_feature_check_is_said_on_the_console_not_no_drift(mixed_run):
    out = mixed_run["output"]
    window_lines = [x for x in out.splitlines() if x.startswith("window w")]
    assert len(window_lines) == 50, out[-3000:]
    skipped = [x for x in window_lines if "feature check skipped" in x]
    assert len(skipped) == 1 and "no feature drift" not in skipped[0], skipped
    assert "(v2, 200 records): feature check skipped: column 'fare' of the current table holds 2 infinite " \
           "value(s)" in skipped[0], skipped
    assert mixed_run["counters"]["window_errors"] == 1
    assert sum("(v1, 200 records)" in x for x in window_lines) == 1


def test_duplicate_unknown_and_reused_ids_are_counted_and_printed(mixed_run, first_push):
    c, out = mixed_run["counters"], mixed_run["output"]
    assert c["labels_read"] == N_MIXED - len(REUSED) + N_DUP + N_GHOST
    assert c["labels_duplicate"] == N_DUP
    assert c["labels_unknown_id"] == N_GHOST
    assert c["predictions_reused_id"] == len(REUSED)
    assert c["labels_joined"] == N_MIXED - len(REUSED)
    assert {k: len(v) for k, v in mixed_run["pending"].items()} == \
        {"predictions": 0, "labels": 0, "joined": N_MIXED - len(REUSED)}      # nothing waits for good
    assert f"left out: {N_DUP} duplicate label(s) dropped" in out, out[-3000:]
    assert f"left out: {N_GHOST} label(s) for request ids no logged prediction carries" in out
    assert f"left out: {len(REUSED)} prediction(s) reusing a request id" in out
    assert f"left out: {N_UNKNOWN_VERSION} record(s) skipped: answered by a model version not in the registry " \
           f"({N_UNKNOWN_VERSION} in all)" in out
    assert "per version: v1: 252 records, 1 windows, 52 in the next, v2: 9848 records, 49 windows, 48 in the next" \
        in out
    # and in the metrics
    from driftguard.monitoring import exporter

    text = state_dir_of(mixed_run["cfg_path"]) / exporter.METRICS_FILE
    samples = exporter.parse_exposition(text.read_text())
    model = (("model", "taxi"),)
    assert samples["driftguard_monitor_labels_duplicate_total"][model] == N_DUP
    assert samples["driftguard_monitor_labels_unknown_id_total"][model] == N_GHOST
    assert samples["driftguard_monitor_predictions_reused_id_total"][model] == len(REUSED)
    assert samples["driftguard_monitor_windows_features_skipped_total"][model] == 1
    assert samples["driftguard_monitor_version_windows_total"][(("model", "taxi"), ("version", "1"))] == 1
    assert samples["driftguard_monitor_version_records_total"][(("model", "taxi"), ("version", "2"))] == 9848
    assert samples["driftguard_monitor_serving_version"][model] == 2


def state_dir_of(cfg_path) -> pathlib.Path:
    from driftguard.monitoring.store import state_dir

    return state_dir(load(cfg_path))


def test_restarts_keep_each_versions_windows(tmp_path, first_push, mixed, mixed_run):
    cfg_path = two_versions(tmp_path, first_push, "chunks", batch_records=700)
    chunked = run_monitor(cfg_path, mixed["root"] / "logs", mixed["root"] / "labels.csv",
                          chunks=(1, 1234, 3765, 2000, None))
    for key in ("counters", "detectors", "alerts", "position", "pending", "lanes"):
        assert chunked[key] == mixed_run[key], key


def test_a_format_2_state_is_upgraded_and_resumes_as_one_run(tmp_path, first_push, scenario, reference_run):
    """A state written in format 2 (one serving version's windows, numbered from its origin) is
    made by hand from a run stopped mid-window; the upgraded resume ends as the uninterrupted run."""
    from driftguard.monitoring.store import STATE_FILE, state_dir, table_bytes, table_columns

    cfg_path = runs_folder(tmp_path, first_push, "old", batch_records=700)
    run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv", chunks=(3765,))
    db = sqlite3.connect(state_dir(load(cfg_path)) / STATE_FILE)
    meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    lane = meta.pop("lanes")["1"]
    assert lane["records"] == meta["counters"]["records"] and lane["windows"] > 0
    old = {"format": 2, "serving": {"version": 1, "origin": 0, "next_end": lane["next_end"]},
           "detectors": lane["detectors"], "budget": lane["budget"], "last_window": lane["last_window"],
           "last_label_window": lane["last_label_window"], "label_window": {"first": 0}}
    chunks = [(f, last, table_bytes({k: v for k, v in table_columns(bytes(d)).items() if k != "seq"}))
              for f, last, d in db.execute("SELECT first_row, last_row, data FROM window_chunks")]
    assert chunks
    with db:
        db.execute("DELETE FROM meta WHERE key = 'lanes'")
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in old.items()])
        db.execute("UPDATE blobs SET key = 'label_buffer' WHERE key = 'label_buffer/1'")
        db.execute("DELETE FROM pending_journal WHERE kind = 'joined'")
        db.execute("DROP TABLE window_chunks")
        db.execute("CREATE TABLE window_chunks (first_row INTEGER PRIMARY KEY, last_row INTEGER NOT NULL, "
                   "data BLOB NOT NULL)")
        db.executemany("INSERT INTO window_chunks VALUES (?, ?, ?)", chunks)
    db.close()
    resumed = run_monitor(cfg_path, scenario / "logs", scenario / "labels.csv")
    assert resumed["meta"]["format"] == 3
    for key in ("detectors", "alerts", "position", "lanes"):
        assert resumed[key] == reference_run[key], key
    mine = {k: v for k, v in resumed["counters"].items() if k != "retrain_triggers"}      # no retrainer here
    assert mine == {k: v for k, v in reference_run["counters"].items() if k != "retrain_triggers"}
    for kind in ("predictions", "labels"):
        assert resumed["pending"][kind] == reference_run["pending"][kind], kind


def test_pinned_traffics_critical_alerts_are_raised_but_do_not_retrain(mixed_run):
    """Version 1's labels are flipped: its error detector and label window alert (critical), in
    version 1's lane only; version 2 serves and is fine, so nothing is retrained."""
    jsonl = load(mixed_run["cfg_path"]).runs_path / "alerts.jsonl"
    sent = [json.loads(x) for x in jsonl.read_text().splitlines()]
    errors = [a for a in sent if a["rule"] == "error_rate_change"]
    assert errors and all(a["severity"] == "critical" and a["values"]["version"] == 1 for a in errors), sent
    # version 1's first label window: its first 200 joined labels, joins 39 .. 7989
    assert "taxi/live/labels-j39-7989/metric_drop" in mixed_run["alerts"], mixed_run["alerts"]
    assert mixed_run["lanes"]["1"]["last_label_window"]["version"] == 1
    assert mixed_run["detectors"]["v1/error"] != mixed_run["detectors"]["v2/error"]
    assert mixed_run["counters"]["detector_alarms"].get("error", 0) >= 1
    assert mixed_run["airflow"] == [] and mixed_run["counters"]["retrain_triggers"] == 0
    assert mixed_run["meta"]["retrain"]["versions"] == {}
