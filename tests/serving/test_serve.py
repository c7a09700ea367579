"""`driftguard serve` as a real subprocess on 127.0.0.1, serving a copy of the session's first
pushed model: TF Serving REST clients, bad requests, auth, metrics, load, logs, hot reload.

One server process for the module (its start-up imports TensorFlow). The tests run in file
order; the last one stops the server with SIGTERM. Only the refused-bind test needs no model.
"""
from __future__ import annotations

import base64
import collections
import concurrent.futures
import http.client
import json
import os
import pathlib
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from driftguard.components.registry_pusher import registry as registry_lib
from helpers import REPO, write_config, ws_data
from driftguard.serving import predictlog

tfx = pytest.mark.tfx   # needs the session's trained model (first_push)

MAX_BODY = 256 << 10
TOKEN_ENV = "DRIFTGUARD_TEST_SERVE_TOKEN"


class Server:
    def __init__(self, proc, url, token, registry, log_dir, stderr_path):
        self.proc, self.url, self.token = proc, url, token
        self.registry, self.log_dir, self.stderr_path = registry, log_dir, stderr_path
        self.host, self.port = url.split("//")[1].rsplit(":", 1)

    def stderr(self) -> str:
        return self.stderr_path.read_text()


def _wait_for_start_line(proc, stderr_path, deadline_s=600):
    lines = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        line = lines.get(timeout=deadline_s)
    except queue.Empty:
        proc.kill()
        pytest.fail(f"serve printed nothing in {deadline_s} s; stderr:\n{stderr_path.read_text()[-3000:]}")
    m = re.match(r"serving taxi v(\d+) at (http://127\.0\.0\.1:\d+)$", line.strip())
    assert m, f"unexpected start line {line!r}; stderr:\n{stderr_path.read_text()[-3000:]}"
    return m.group(2)


@pytest.fixture(scope="module")
def server_process(first_push, tmp_path_factory):
    """The `driftguard serve` subprocess, started (not yet ready: see `server`)."""
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-3000:]
    root = tmp_path_factory.mktemp("serve")
    registry = root / "runs" / "serving" / "taxi"
    registry.mkdir(parents=True)
    shutil.copytree(first_push["registry"] / "1", registry / "1")
    cfg = write_config(root / "serve.json", runs=str(root / "runs"))
    token = secrets.token_hex(16)
    stderr_path = root / "serve.stderr"
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "driftguard.cli", "--config", str(cfg), "serve", "--port", "0",
             "--poll-seconds", "0.5", "--log-max-mb", "0.02", "--max-body-bytes", str(MAX_BODY),
             "--token-env", TOKEN_ENV],
            cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, TOKEN_ENV: token})
    try:
        yield proc, token, registry, root / "runs" / "prediction_logs" / "taxi", stderr_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
        proc.stdout.close()


@pytest.fixture(scope="module")
def server(server_process, reference):
    """The server, once it printed its start line. `reference` loads the SavedModel in this
    process meanwhile, so the two TensorFlow start-ups overlap."""
    proc, token, registry, log_dir, stderr_path = server_process
    url = _wait_for_start_line(proc, stderr_path)
    return Server(proc, url, token, registry, log_dir, stderr_path)


def call(srv, method, path, body=None, *, headers=None, token=True):
    """A plain urllib client of TF Serving's REST API: (status, headers, parsed JSON or text)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    hdrs = dict(headers or {})
    if token:
        hdrs.setdefault("Authorization", f"Bearer {srv.token}")
    req = urllib.request.Request(srv.url + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            status, rh, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        status, rh, raw = e.code, e.headers, e.read()
    try:
        return status, rh, json.loads(raw)
    except ValueError:
        return status, rh, raw.decode()


GOOD = {"instances": [{"fare": 9.25, "payment_type": "Cash", "trip_start_hour": 14}]}


def assert_still_serving(srv):
    status, _, body = call(srv, "POST", "/v1/models/taxi:predict", GOOD)
    assert status == 200 and len(body["predictions"]) == 1, body


# ---------------------------------------------------------------- reference data


def _feature_kinds(schema_path: pathlib.Path):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_path.read_text(), schema_pb2.Schema())
    return {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}


def _example(row, kinds) -> bytes:
    import tensorflow as tf

    feats = {}
    for k, v in row.items():
        if v is None:
            continue
        if kinds[k] == "INT":
            feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
        elif kinds[k] == "FLOAT":
            feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
        else:
            feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode()]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


@pytest.fixture(scope="module")
def reference(server_process, workspace):
    """30 real trips (span 2 CSV) as feature dicts and tf.Examples, and the SavedModel's own
    predictions on them."""
    import pandas as pd
    import tensorflow as tf

    df = pd.read_csv(ws_data(workspace) / "span-2" / "data.csv").drop(columns=["tips"]).iloc[::37].head(30)
    rows = json.loads(df.to_json(orient="records"))          # NaN -> null (a missing feature)
    registry = server_process[2]
    kinds = _feature_kinds(registry / "1" / "profile" / "schema.pbtxt")
    examples = [_example(r, kinds) for r in rows]
    model = tf.saved_model.load(str(registry / "1"))
    expected = model.signatures["serving_default"](examples=tf.constant(examples))["probabilities"].numpy()
    assert expected.shape == (30, 1) and 0 < expected.mean() < 1
    return {"rows": rows, "examples": examples, "expected": expected}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------- tests


@tfx
def test_a_tf_serving_client_gets_the_saved_models_predictions(server, reference):
    rows, examples, expected = reference["rows"], reference["examples"], reference["expected"]
    requests = {
        "b64 rows": {"instances": [{"b64": _b64(e)} for e in examples]},
        "named b64 rows": {"signature_name": "serving_default",
                           "instances": [{"examples": {"b64": _b64(e)}} for e in examples]},
        "feature-dict rows": {"instances": rows},
    }
    for what, body in requests.items():
        status, headers, out = call(server, "POST", "/v1/models/taxi/versions/1:predict", body)
        assert status == 200, (what, out)
        np.testing.assert_allclose(np.array(out["predictions"]), expected, rtol=1e-5, atol=1e-7, err_msg=what)
        assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-Id"])
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    for what, body in {"columnar features": {"inputs": columns},
                       "columnar b64": {"inputs": {"examples": [{"b64": _b64(e)} for e in examples]}}}.items():
        status, _, out = call(server, "POST", "/v1/models/taxi/versions/1:predict", body)
        assert status == 200, (what, out)
        np.testing.assert_allclose(np.array(out["outputs"]), expected, rtol=1e-5, atol=1e-7, err_msg=what)
    status, headers, out = call(server, "POST", "/v1/models/taxi:predict", {"instances": rows[:1]},
                                headers={"X-Request-Id": "client-id.7:a_b"})
    assert status == 200 and headers["X-Request-Id"] == "client-id.7:a_b"
    np.testing.assert_allclose(out["predictions"], expected[:1], rtol=1e-5, atol=1e-7)

    status, _, out = call(server, "GET", "/v1/models/taxi/versions/1")
    assert status == 200 and out == {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    status, _, out = call(server, "GET", "/v1/models/taxi/metadata")
    assert status == 200
    sig = out["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["inputs"]["examples"]["dtype"] == "DT_STRING"
    assert sig["outputs"]["probabilities"]["dtype"] == "DT_FLOAT"


def _example_with(**features) -> str:
    import tensorflow as tf

    feats = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()])) for k, v in features.items()}
    return _b64(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())


P = "/v1/models/taxi:predict"
BAD_REQUESTS = {
    "malformed JSON": ("POST", P, b'{"instances": [', 400, r"malformed JSON: .* line 1 column 16"),
    "not an object": ("POST", P, [1, 2], 400, r"must be a JSON object, got list"),
    "no instances": ("POST", P, {"signature_name": "serving_default"}, 400,
                     r"neither 'instances' \(row format\) nor 'inputs'"),
    "both formats": ("POST", P, {"instances": [{"fare": 1}], "inputs": {"fare": [1]}}, 400, r"only one of"),
    "empty instances": ("POST", P, {"instances": []}, 400, r"'instances' is empty"),
    "unknown feature": ("POST", P, {"instances": [{"fare": 1.0}, {"farez": 1.0}]}, 400,
                        r"instance 1: unknown feature 'farez'; the model's features are: company, "),
    "label feature": ("POST", P, {"instances": [{"fare": 1.0, "tips": 2.0}]}, 400,
                      r"instance 0: feature 'tips' is not a serving feature"),
    "text for FLOAT": ("POST", P, {"instances": [{"fare": 1.0}, {"fare": 2.0}, {"fare": "twelve"}]}, 400,
                       r"instance 2: feature 'fare' expects numbers \(FLOAT\), got 'twelve'"),
    "fraction for INT": ("POST", P, {"instances": [{"trip_start_hour": 3.5}]}, 400,
                         r"instance 0: feature 'trip_start_hour' expects integers \(INT\), got 3.5"),
    "number for BYTES": ("POST", P, {"instances": [{"payment_type": 7}]}, 400,
                         r"instance 0: feature 'payment_type' expects strings \(BYTES\), got 7"),
    "two values": ("POST", P, {"instances": [{"fare": [1.0, 2.0]}]}, 400,
                   r"instance 0: feature 'fare' takes at most 1 value\(s\), got 2"),
    "ragged columns": ("POST", P, {"inputs": {"fare": [1.0, 2.0], "company": ["x"]}}, 400,
                       r"columns have different lengths \(fare: 2, company: 1\)"),
    "bad b64": ("POST", P, {"instances": [{"b64": "not base64!"}]}, 400, r"instance 0: 'b64' is not valid base64"),
    "b64 not an Example": ("POST", P, {"instances": [{"b64": _b64(b"\x00\x01garbage")}]}, 400,
                           r"instance 0: the b64 value is not a serialized tf.Example"),
    "Example with a wrong type": ("POST", P, lambda: {"instances": [{"b64": _example_with(fare="twelve")}]}, 400,
                                  r"instance 0: feature 'fare': .*Expected type: float, Actual type: string"),
    "unknown signature": ("POST", P, {"signature_name": "nope", "instances": [{"fare": 1.0}]}, 400,
                          r"signature_name 'nope' not found .* signatures: serving_default, transform_features"),
    "unknown model": ("POST", "/v1/models/nosuch:predict", GOOD, 404, r"unknown model 'nosuch'.* serves 'taxi'"),
    "unknown version": ("POST", "/v1/models/taxi/versions/99:predict", GOOD, 404,
                        r"model taxi version 99 is not loaded; loaded versions: "),
    "unknown model status": ("GET", "/v1/models/nosuch", None, 404, r"unknown model 'nosuch'"),
    "unknown endpoint": ("GET", "/v2/anything", None, 404, r"no such endpoint"),
    "classify": ("POST", "/v1/models/taxi:classify", GOOD, 400, r"':classify' is not supported"),
    "GET predict": ("GET", P, None, 405, r"GET is not allowed on '/v1/models/taxi:predict'; use POST"),
    "DELETE status": ("DELETE", "/v1/models/taxi", None, 405, r"DELETE is not allowed"),
    "bad request id": ("POST", P, GOOD, 400, r"X-Request-Id header must be 1-128 characters"),
    "oversized body": ("POST", P, b"{" + b" " * MAX_BODY + b"}", 413,
                       rf"request body is {MAX_BODY + 2} bytes, more than the limit of {MAX_BODY} bytes"),
}


@tfx
@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_request_gets_a_4xx_naming_the_problem_and_the_server_keeps_serving(server, case):
    method, path, body, want_status, pattern = BAD_REQUESTS[case]
    body = body() if callable(body) else body
    headers = {"X-Request-Id": "bad id with spaces"} if case == "bad request id" else None
    status, resp_headers, out = call(server, method, path, body, headers=headers)
    assert status == want_status, out
    assert re.search(pattern, out["error"]), out["error"]
    assert resp_headers["X-Request-Id"]
    if want_status == 405:
        assert resp_headers["Allow"] in ("GET", "POST")
    assert_still_serving(server)


@tfx
def test_an_oversized_chunked_body_is_cut_off_while_reading(server):
    conn = http.client.HTTPConnection(server.host, int(server.port), timeout=120)
    sent = [0]

    def body():
        for _ in range(2 * MAX_BODY // 4096):
            sent[0] += 4096
            yield b" " * 4096

    conn.request("POST", P, body=body(), encode_chunked=True,
                 headers={"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"})
    resp = conn.getresponse()
    out = json.loads(resp.read())
    conn.close()
    assert resp.status == 413 and resp.getheader("Connection") == "close"
    assert f"more than the limit of {MAX_BODY} bytes" in out["error"]
    assert_still_serving(server)


@tfx
def test_bearer_token_is_required_and_never_echoed(server):
    status, headers, out = call(server, "POST", P, GOOD, token=False)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "missing bearer token" in out["error"]
    wrong = "Bearer " + secrets.token_hex(16)
    status, _, out = call(server, "POST", P, GOOD, headers={"Authorization": wrong})
    assert status == 401 and out["error"] == "invalid bearer token"
    status, _, out = call(server, "GET", "/metrics", headers={"Authorization": "Basic " + server.token})
    assert status == 401 and server.token not in json.dumps(out)
    status, _, out = call(server, "GET", "/healthz", token=False)
    assert status == 200 and out["status"] == "ok"
    assert_still_serving(server)
    assert server.token not in server.stderr()


def test_refused_starts_say_why(tmp_path):
    """Non-loopback bind without a token, a token variable that is unset, an empty registry."""
    cfg = write_config(tmp_path / "c.json", runs=str(tmp_path / "runs"))
    cmd = [sys.executable, "-m", "driftguard.cli", "--config", str(cfg), "serve", "--port", "0"]
    proc = subprocess.run(cmd + ["--host", "0.0.0.0"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "refusing to bind '0.0.0.0' without a bearer token" in proc.stderr
    env = {k: v for k, v in os.environ.items() if k != "DRIFTGUARD_UNSET_TOKEN"}
    proc = subprocess.run(cmd + ["--token-env", "DRIFTGUARD_UNSET_TOKEN"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 2
    assert "environment variable DRIFTGUARD_UNSET_TOKEN is not set or empty" in proc.stderr
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert re.search(r"no model version of taxi could be loaded from .*serving/taxi \(the registry has no "
                     r"versions yet: train one with `driftguard train`", proc.stderr), proc.stderr


def _metrics(srv):
    from prometheus_client.parser import text_string_to_metric_families

    status, _, text = call(srv, "GET", "/metrics")
    assert status == 200
    out = collections.defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _m(metrics, name, **labels):
    return metrics[(name, tuple(sorted(labels.items())))]


@tfx
def test_metrics_count_what_was_sent(server, reference):
    rows = reference["rows"]
    before = _metrics(server)
    version = str(int(_m(before, "driftguard_serve_model_version", model="taxi")))
    bodies = [json.dumps({"instances": rows[:n]}).encode() for n in (1, 3, 7)]
    bad = [b'{"instances": [{"fare": "x"}]}', b"{nope"]
    for b in bodies + bad:
        call(server, "POST", P, b)
    call(server, "GET", "/v1/models/taxi/versions/12345")
    after = _metrics(server)

    def delta(name, **labels):
        return _m(after, name, **labels) - _m(before, name, **labels)

    assert delta("driftguard_serve_requests_total", path="predict", code="200") == 3
    assert delta("driftguard_serve_requests_total", path="predict", code="400") == 2
    assert delta("driftguard_serve_requests_total", path="status", code="404") == 1
    assert delta("driftguard_serve_instances_predicted_total", version=version) == 11
    assert delta("driftguard_serve_prediction_count") == 11
    assert delta("driftguard_serve_request_latency_seconds_count", path="predict") == 5
    assert delta("driftguard_serve_request_bytes_total") == sum(map(len, bodies + bad))
    assert delta("driftguard_serve_log_records_total", result="written") == 3
    assert _m(after, "driftguard_serve_log_records_total", result="failed") == 0
    assert _m(after, "driftguard_serve_model_loads_total", result="ok") >= 1
    assert _m(after, "driftguard_serve_model_loads_total", result="failed") == 0


def _logged_ids(log_dir):
    ids, versions = [], collections.Counter()
    for record, _ in predictlog.follow(log_dir):
        entry = predictlog.decode(record)
        assert len(entry.request_ids) == len(entry.examples) == entry.outputs["probabilities"].shape[0]
        ids += entry.request_ids
        versions[entry.version] += 1
    return ids, versions


@tfx
def test_load_every_request_answered_and_logged_exactly_once(server, reference):
    rows = reference["rows"]
    n_requests, n_threads = 400, 8
    local = threading.local()

    def one(i):
        if not hasattr(local, "conn"):
            local.conn = http.client.HTTPConnection(server.host, int(server.port), timeout=120)
        k = 5 if i % 4 == 0 else 1
        body = json.dumps({"instances": [rows[(i + j) % len(rows)] for j in range(k)]})
        headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
        if i % 2:
            headers["X-Request-Id"] = f"load-{i}"
        local.conn.request("POST", P, body=body, headers=headers)
        resp = local.conn.getresponse()
        out = json.loads(resp.read())
        rid = resp.getheader("X-Request-Id")
        assert resp.status == 200 and len(out["predictions"]) == k, out
        return [rid] if k == 1 else [f"{rid}-{j}" for j in range(k)]

    with concurrent.futures.ThreadPoolExecutor(n_threads) as pool:
        expected = [i for ids in pool.map(one, range(n_requests)) for i in ids]
    assert len(expected) == 100 * 5 + 300 and len(set(expected)) == len(expected)
    assert sum(i.startswith("load-") for i in expected) == 200
    logged, _ = _logged_ids(server.log_dir)
    counts = collections.Counter(logged)
    assert all(counts[i] == 1 for i in expected), [i for i in expected if counts[i] != 1][:5]
    assert len(predictlog.log_files(server.log_dir)) >= 5, "--log-max-mb 0.02 rotates the log"


@tfx
def test_a_failed_log_write_is_counted_and_logged_not_silent(server, reference):
    before = _metrics(server)
    moved = server.log_dir.with_name("taxi.moved")
    os.rename(server.log_dir, moved)
    server.log_dir.write_text("not a folder")          # the writer's next file cannot be created
    try:
        body = {"instances": reference["rows"] * 4}     # bigger than --log-max-mb: a new file
        status, headers, out = call(server, "POST", P, body, headers={"X-Request-Id": "unlogged-1"})
        assert status == 200 and len(out["predictions"]) == 120
    finally:
        server.log_dir.unlink()
        os.rename(moved, server.log_dir)
    status, _, _ = call(server, "POST", P, GOOD, headers={"X-Request-Id": "logged-again"})
    assert status == 200
    after = _metrics(server)
    assert _m(after, "driftguard_serve_log_records_total", result="failed") - \
        _m(before, "driftguard_serve_log_records_total", result="failed") == 1
    assert _m(after, "driftguard_serve_log_records_total", result="written") - \
        _m(before, "driftguard_serve_log_records_total", result="written") == 1
    assert re.search(r"ERROR .*prediction log write failed for request unlogged-1 \(120 instance", server.stderr())
    logged, _ = _logged_ids(server.log_dir)
    assert "logged-again" in logged and not any(i.startswith("unlogged-1") for i in logged)


def _wait_for(predicate, what, deadline_s=300):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"gave up waiting for {what} after {deadline_s} s")


@tfx
def test_a_newly_published_version_is_served_without_restart(server, reference):
    newest = max(registry_lib.existing_versions(server.registry))
    staged = server.registry / registry_lib.STAGING_DIR / "copy"
    shutil.copytree(server.registry / str(newest), staged)
    new = registry_lib.publish_version(server.registry, staged)
    assert new == newest + 1

    def status_versions():
        status, _, out = call(server, "GET", "/v1/models/taxi")
        return [s["version"] for s in out["model_version_status"]] if status == 200 else None

    _wait_for(lambda: status_versions() == [str(new), str(newest)], f"version {new} to be served")
    status, _, out = call(server, "POST", P, {"instances": reference["rows"][:2]},
                          headers={"X-Request-Id": "after-reload"})
    assert status == 200
    np.testing.assert_allclose(out["predictions"], reference["expected"][:2], rtol=1e-5, atol=1e-7)
    status, _, out = call(server, "POST", f"/v1/models/taxi/versions/{newest}:predict", GOOD,
                          headers={"X-Request-Id": "older-version"})
    assert status == 200, "the previous version stays loaded"
    versions = {}
    for record, _ in predictlog.follow(server.log_dir):
        entry = predictlog.decode(record)
        versions.update({i: entry.version for i in entry.request_ids})
    assert versions["after-reload-0"] == new and versions["older-version"] == newest

    # A version that cannot load is logged and counted; the loaded ones keep serving.
    broken = server.registry / registry_lib.STAGING_DIR / "broken"
    (broken / "profile").mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    bad = registry_lib.publish_version(server.registry, broken)
    _wait_for(lambda: _m(_metrics(server), "driftguard_serve_model_loads_total", result="failed") == 1,
              "the broken version's load to fail")
    assert re.search(rf"ERROR .*model taxi version {bad} failed to load", server.stderr())
    assert status_versions() == [str(new), str(newest)]
    assert _m(_metrics(server), "driftguard_serve_model_version", model="taxi") == new
    status, _, out = call(server, "POST", f"/v1/models/taxi/versions/{bad}:predict", GOOD)
    assert status == 404 and f"version {bad} is not loaded (it failed to load: " in out["error"]
    assert_still_serving(server)


@tfx
def test_sigterm_stops_gracefully_and_closes_the_log(server):
    """Last test of the module: it stops the shared server."""
    written = _m(_metrics(server), "driftguard_serve_log_records_total", result="written")
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=120) == 0
    assert "stopped; prediction log closed" in server.stderr()
    records = sum(1 for _ in predictlog.follow(server.log_dir))   # every file reads to its end
    assert records == written > 400
