"""Plain helpers shared by the top-level tests (imported as `helpers`; fixtures live in
conftest.py). A unique module name: tests/drift/ has a conftest.py of its own."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Dict, Optional, Tuple

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "taxi"
TAXI = REPO / "examples" / "taxi"
PROJECTS = REPO / "tests" / "projects"
DRIFTGUARD = [sys.executable, "-m", "driftguard.cli"]


def run_cli(*args, config=None, project=None, env=None, timeout=1800, cwd=None):
    """Run the real `driftguard` CLI in a subprocess; return CompletedProcess."""
    cmd = list(DRIFTGUARD)
    if project is not None:
        cmd += ["--project", str(project)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def assert_refused_before_work(config, env, setting: str, secrets, absent, timeout: int = 180) -> None:
    """`train` and `check` with a bad setting: exit 2 with one ``error:`` line naming ``setting``,
    none of ``secrets`` printed, and none of ``absent`` (paths under the project's runs folder)
    created: the refusal came before any work."""
    runs = pathlib.Path(config).parent / "runs"
    for command in (["train", "--spans", "1,2"], ["check", "--span", "3"]):
        proc = run_cli(*command, config=config, env=env, timeout=timeout)
        assert proc.returncode == 2, (proc.stdout, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert setting in lines[0], lines[0]
        for secret in secrets:
            assert secret not in proc.stderr + proc.stdout
        assert not any((runs / p).exists() for p in absent), sorted(str(p) for p in runs.rglob("*"))


def tree_digest(root: pathlib.Path) -> dict:
    """{relative path: sha256} of every file under root (empty dict if root is missing)."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, mappings key by key (a copy)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# Small and fast training settings for tests: enough to learn the label (AUC ~0.9).
FAST_TRAINING = {"train_steps": 120, "eval_steps": 20,
                 "custom_config": {"batch_size": 64, "hidden_units": [32, 16], "learning_rate": 0.01}}


def taxi_config(**overrides) -> dict:
    """The taxi example's driftguard.yaml as a dict, with absolute paths to the example's model
    module, the repository's schemas and committed data (so a config file anywhere works), fast
    training settings, then ``overrides`` (merged key by key)."""
    from driftguard.pipeline.project import example_config

    base = example_config("taxi")
    base["data"]["root"] = str(DATA)
    base["training"] = merge(base["training"], FAST_TRAINING)
    return merge(base, overrides)


def write_config(path: pathlib.Path, **values) -> pathlib.Path:
    """A taxi config file at ``path`` (its folder is the project folder) with ``values`` merged in."""
    path = pathlib.Path(path)
    path.write_text(json.dumps(taxi_config(**values), indent=1))
    return path


def ws_data(workspace: pathlib.Path) -> pathlib.Path:
    """The span folder of the session's workspace (a project made by `driftguard init --example taxi`)."""
    return workspace / "data" / "taxi"


def make_config(workspace: pathlib.Path, name: str, **overrides) -> pathlib.Path:
    """``<workspace>/<name>.json``: the taxi config over the workspace's data, schemas and runs."""
    values = {"data": {"root": str(ws_data(workspace))}, "schemas": str(workspace / "schemas"),
              "runs": str(workspace / "runs")}
    return write_config(workspace / f"{name}.json", **merge(values, overrides))


def runs_of(config_path) -> pathlib.Path:
    """The runs folder of a config file (its project's ``runs`` setting, resolved)."""
    from driftguard.pipeline import config as config_lib

    return config_lib.load(config_path).runs_path


# ---------------------------------------------------------------- `driftguard serve` on a small model
# (tests/serving/test_serve_http.py, test_serve_rollout.py: no TFX run, a SavedModel made in-test)

SERVE_SCHEMA = """
default_environment: "TRAINING"
default_environment: "SERVING"
feature { name: "fare" type: FLOAT value_count { min: 1 max: 1 } }
feature { name: "trip_start_hour" type: INT value_count { min: 1 max: 1 } }
feature { name: "payment_type" type: BYTES value_count { min: 1 max: 1 } }
feature { name: "tips" type: FLOAT not_in_environment: "SERVING" }
"""


def save_small_model(path: pathlib.Path, *, flipped: bool = False, max_fare: Optional[float] = None) -> None:
    """A SavedModel at ``path`` (with ``profile/schema.pbtxt``) that parses tf.Examples with the
    taxi schema's types and answers ``{"probabilities": p}`` (:func:`small_model_prediction`).
    ``flipped``: p = 1 - sigmoid(z), a challenger whose answers differ measurably; ``max_fare``:
    a fare above it fails the model (InvalidArgumentError)."""
    import tensorflow as tf

    spec = {"fare": tf.io.FixedLenFeature([1], tf.float32, default_value=[0.0]),
            "trip_start_hour": tf.io.FixedLenFeature([1], tf.int64, default_value=[0]),
            "payment_type": tf.io.FixedLenFeature([1], tf.string, default_value=[""])}

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            f = tf.io.parse_example(examples, spec)
            if max_fare is not None:
                tf.debugging.assert_less_equal(f["fare"], float(max_fare), message="fare out of range")
            cash = tf.cast(tf.equal(f["payment_type"], "Cash"), tf.float32)
            z = 0.01 * f["fare"] + 0.05 * tf.cast(f["trip_start_hour"], tf.float32) - cash
            p = tf.sigmoid(z)
            return {"probabilities": 1.0 - p if flipped else p}

    model = Model()
    tf.saved_model.save(model, str(path), signatures={"serving_default": model.serve})
    (path / "profile").mkdir()
    (path / "profile" / "schema.pbtxt").write_text(SERVE_SCHEMA)


def small_model_prediction(fare: float, trip_start_hour: int, payment_type: str, *, flipped: bool = False) -> float:
    """What :func:`save_small_model`'s model answers for one instance (float32 arithmetic)."""
    import numpy as np

    f32 = np.float32
    z = f32(0.01) * f32(fare) + f32(0.05) * f32(trip_start_hour) - f32(payment_type == "Cash")
    p = f32(1) / (f32(1) + np.exp(-z, dtype=np.float32))
    return float(f32(1) - p if flipped else p)


class ServeProcess:
    """A real `driftguard serve --port 0` subprocess on 127.0.0.1: ``start()``, then
    ``wait_ready()`` (its start line; two servers can start side by side), ``stop()``
    (SIGTERM; exit status 0). ``url``, ``host``, ``port``, ``log_dir``, ``stderr_path``."""

    def __init__(self, root: pathlib.Path, config: pathlib.Path, *args: str, version: int = 1):
        self.root, self.config, self.args, self.version = pathlib.Path(root), config, args, version
        self.log_dir = self.root / "runs" / "prediction_logs" / "taxi"
        self.registry = self.root / "runs" / "serving" / "taxi"
        self.stderr_path = self.root / "serve.stderr"
        self.proc = None
        self.url = self.host = None
        self.port = 0

    def start(self) -> "ServeProcess":
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                [*DRIFTGUARD, "--config", str(self.config), "serve", "--port", "0", *self.args],
                cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True, env=dict(os.environ))
        return self

    def wait_ready(self, timeout: float = 600) -> "ServeProcess":
        import queue
        import re
        import threading

        import pytest

        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            pytest.fail(f"serve did not start; stderr:\n{self.stderr()[-3000:]}")
        m = re.match(rf"serving taxi v{self.version} at (http://127\.0\.0\.1:\d+)$", line.strip())
        assert m, f"{line!r}; stderr:\n{self.stderr()[-3000:]}"
        self.url = m.group(1)
        self.host, port = self.url.split("//")[1].rsplit(":", 1)
        self.port = int(port)
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            assert self.proc.wait(timeout=120) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.stdout.close()


def read_response(sock) -> Tuple[int, Dict[str, str], bytes]:
    """(status, headers with lower-case names, body) of one HTTP/1.1 response on ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed after {data!r}")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(body) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body[:n]


def raw_http(srv, data: bytes, timeout: float = 60) -> Tuple[int, Dict[str, str], bytes]:
    """Send ``data`` as is to ``srv`` (host, port) on a fresh connection; (status, headers, body)."""
    import socket

    with socket.create_connection((srv.host, srv.port), timeout=timeout) as sock:
        sock.sendall(data)
        return read_response(sock)


def post_json(srv, path: str, body, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[str, str], bytes]:
    """POST ``body`` (bytes, or JSON-encoded) to ``path`` on a fresh connection."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    return raw_http(srv, f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(data)}\r\n{extra}\r\n".encode() + data)
