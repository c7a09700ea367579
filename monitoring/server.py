"""``driftguard serve``: the model registry over TF Serving's REST API, with prediction logs
and Prometheus metrics.

Endpoints (the paths and JSON shapes of TF Serving's REST API, so its clients work unchanged):

* ``POST /v1/models/<name>[/versions/<v>]:predict``: row format ``{"signature_name"?,
  "instances": [...]}`` answered with ``{"predictions": [...]}``, or columnar format
  ``{"inputs": ...}`` answered with ``{"outputs": ...}``. An instance is ``{"b64": "<base64
  serialized tf.Example>"}`` (what TF Serving clients send for the ``examples`` string input),
  ``{"examples": {"b64": ...}}``, or a plain dict of raw feature values (``{"fare": 12.5,
  "payment_type": "Cash"}``), typed by the version's schema (``profile/schema.pbtxt``).
* ``GET /v1/models/<name>[/versions/<v>]``: status (``model_version_status``);
  ``GET .../metadata``: the signatures.
* ``GET /metrics`` (Prometheus text format) and ``GET /healthz`` (never needs the token).

Errors are ``{"error": "<message>"}`` with a 4xx status naming the request part at fault.

Request ids: the client's ``X-Request-Id`` header (at most 128 characters of
``[A-Za-z0-9._:-]``) or a fresh uuid4 hex, returned in the ``X-Request-Id`` response header.
In the prediction log, instance ``i`` of a request is identified by the request id itself when
the request has one instance, and by ``<request id>-<i>`` (``i`` from 0) when it has several.
Delayed labels are joined on these ids.

Versions: the newest version in the registry is served; a background thread polls the registry
and loads a new version off the request path, then swaps it in with one assignment. The newest
``keep_versions`` (2) loaded versions answer version-specific requests. A version that fails to
load is logged and counted, and the versions already loaded keep serving.

Why ``http.server.ThreadingHTTPServer`` and not werkzeug's server: werkzeug 2.2's server
closes the connection after every response (``Connection: close``), which costs a TCP
handshake per prediction; the standard library keeps HTTP/1.1 connections alive and lets the
body limit be enforced from ``Content-Length`` before reading and again while reading. The one
hand-rolled HTTP detail, chunked request bodies, is decoded by werkzeug's ``DechunkedInput``.
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import http.server
import ipaddress
import json
import logging
import pathlib
import random
import re
import signal
import socket
import sys
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from driftguard.components import model_io
from driftguard.components.registry_pusher import registry as registry_lib
from driftguard.monitoring import predictlog

log = logging.getLogger(__name__)

DEFAULT_PORT = 8501                    # TF Serving's REST port
DEFAULT_MAX_BODY_BYTES = 10 << 20      # 10 MiB
DEFAULT_SIGNATURE = "serving_default"
REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_PATH_RE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?"
                      r"(?:(?P<metadata>/metadata)|:(?P<verb>[A-Za-z]+))?$")
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_PROBABILITY_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))
_READ_CHUNK = 64 << 10
_LINGER_SECONDS = 2.0                  # drain an unread body this long before closing
_SHUTDOWN_WAIT_SECONDS = 10.0


class ServeError(Exception):
    """A setting or registry problem that stops the server from starting."""


class RequestError(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, *, headers: Optional[Mapping[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


# ---------------------------------------------------------------- settings


@dataclasses.dataclass
class ServeSettings:
    """Everything ``serve`` needs. ``token`` is the bearer token's value (the CLI reads it from
    the environment variable named by ``--token-env``; it never comes from the command line)."""

    registry: pathlib.Path
    model_name: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    poll_seconds: float = 5.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_dir: Optional[pathlib.Path] = None     # None: no prediction logs
    log_sample_rate: float = 1.0
    log_max_bytes: int = 64 << 20
    log_max_age_seconds: float = 3600.0
    token: Optional[str] = None
    keep_versions: int = 2
    read_timeout_seconds: float = 30.0         # idle keep-alive connections and slow bodies
    # what the model's output means (task, classes, output name): model_io reads it for /metrics
    model_spec: Optional[model_io.ModelSpec] = None

    def validate(self) -> "ServeSettings":
        checks = [("poll_seconds", self.poll_seconds > 0, "must be > 0"),
                  ("max_body_bytes", self.max_body_bytes >= 1, "must be >= 1"),
                  ("log_sample_rate", 0.0 <= self.log_sample_rate <= 1.0, "must be between 0 and 1"),
                  ("log_max_bytes", self.log_max_bytes >= 1, "must be >= 1"),
                  ("log_max_age_seconds", self.log_max_age_seconds > 0, "must be > 0"),
                  ("keep_versions", self.keep_versions >= 1, "must be >= 1"),
                  ("read_timeout_seconds", self.read_timeout_seconds > 0, "must be > 0"),
                  ("port", 0 <= self.port <= 65535, "must be between 0 and 65535")]
        for name, ok, rule in checks:
            if not ok:
                raise ServeError(f"{name} {rule}, got {getattr(self, name)!r}")
        if self.token is not None and not self.token:
            raise ServeError("the bearer token is empty")
        if not self.token and not is_loopback(self.host):
            raise ServeError(
                f"refusing to bind {self.host!r} without a bearer token: it is reachable from other "
                "machines. Set a token in an environment variable and pass its name with "
                "--token-env, or bind 127.0.0.1")
        return self


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address ('' and 0.0.0.0 are not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


# ---------------------------------------------------------------- features -> tf.Example


@dataclasses.dataclass(frozen=True)
class FeatureType:
    """What the schema says about one raw feature: ``kind`` is 'int', 'float' or 'bytes'."""

    name: str
    kind: str
    max_values: Optional[int]
    serving: bool


def read_feature_types(schema_path: pathlib.Path) -> Dict[str, FeatureType]:
    """The features of a schema (``schema.pbtxt``), with their tf.Example value kind and
    whether the SERVING environment has them (TFDV's environment rules)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(pathlib.Path(schema_path).read_text(), schema_pb2.Schema())
    kinds = {schema_pb2.INT: "int", schema_pb2.FLOAT: "float", schema_pb2.BYTES: "bytes"}
    defaults = set(schema.default_environment)
    out = {}
    for f in schema.feature:
        if f.in_environment:
            serving = "SERVING" in f.in_environment
        else:
            serving = (not defaults or "SERVING" in defaults) and "SERVING" not in f.not_in_environment
        max_values = f.value_count.max if f.HasField("value_count") and f.value_count.max else None
        out[f.name] = FeatureType(f.name, kinds.get(f.type, "bytes"), max_values, serving)
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise RequestError(400, f"{where}: 'b64' must be a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, f"{where}: 'b64' is not valid base64") from None


def typed_values(values: Mapping[str, Any], features: Mapping[str, FeatureType],
                 index: int) -> Dict[str, Optional[list]]:
    """One instance's raw feature values, checked against the schema: ``{name: list or None}``.

    A value is a scalar or a list; ``null`` means missing. INT takes integers (an integral
    float such as 3.0 too), FLOAT takes numbers, BYTES takes strings or ``{"b64": ...}``.
    Booleans are refused everywhere. Errors name the instance index and the feature.
    """
    out: Dict[str, Optional[list]] = {}
    for name, raw in values.items():
        spec = features.get(name)
        if spec is None:
            serving = sorted(n for n, f in features.items() if f.serving)
            raise RequestError(400, f"instance {index}: unknown feature {_short(name)}; the model's "
                                    f"features are: {', '.join(serving)}")
        if not spec.serving:
            raise RequestError(400, f"instance {index}: feature {name!r} is not a serving feature "
                                    "(the schema leaves it out of the SERVING environment)")
        if raw is None:
            out[name] = None
            continue
        items = raw if type(raw) is list else [raw]
        if spec.max_values is not None and len(items) > spec.max_values:
            raise RequestError(400, f"instance {index}: feature {name!r} takes at most "
                                    f"{spec.max_values} value(s), got {len(items)}")
        if spec.kind == "float":
            for v in items:
                if type(v) not in (float, int):
                    raise RequestError(400, f"instance {index}: feature {name!r} expects numbers (FLOAT), "
                                            f"got {_short(raw)}")
        elif spec.kind == "int":
            if not all(type(v) is int for v in items):
                items = [_as_int(v, name, raw, index) for v in items]
            for v in items:
                if not -(1 << 63) <= v < (1 << 63):
                    raise RequestError(400, f"instance {index}: feature {name!r}: {v} is outside int64")
        else:
            items = [_as_bytes(v, name, raw, index) for v in items]
        out[name] = items
    return out


def _as_int(v: Any, name: str, raw: Any, index: int) -> int:
    if type(v) is float and v.is_integer():
        return int(v)
    if type(v) is not int:
        raise RequestError(400, f"instance {index}: feature {name!r} expects integers (INT), got {_short(raw)}")
    return v


def _as_bytes(v: Any, name: str, raw: Any, index: int) -> bytes:
    if type(v) is str:
        return v.encode("utf-8")
    if isinstance(v, dict) and set(v) == {"b64"}:
        return _b64(v["b64"], f"instance {index}: feature {name!r}")
    raise RequestError(400, f"instance {index}: feature {name!r} expects strings (BYTES), got {_short(raw)}")


def encode_examples(rows: Sequence[Mapping[str, Optional[list]]],
                    features: Mapping[str, FeatureType]) -> List[bytes]:
    """Serialized tf.Examples from checked rows (``typed_values``): model_io's encoder."""
    return model_io.encode_rows(rows, {name: f.kind for name, f in features.items()})


@dataclasses.dataclass
class PredictRequest:
    """A parsed predict body: ``columnar`` is True for ``{"inputs": ...}``."""

    signature_name: str
    columnar: bool
    instances: List[Any]


def parse_predict_body(body: bytes) -> PredictRequest:
    """Check the JSON shape of a predict body; instances are converted later, per signature."""
    if not body.strip():
        raise RequestError(400, "malformed JSON: the request body is empty")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "malformed JSON: the request body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(doc, dict):
        raise RequestError(400, f"the request body must be a JSON object, got {type(doc).__name__}")
    signature = doc.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature, str):
        raise RequestError(400, "signature_name must be a string")
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows and has_cols:
        raise RequestError(400, "the request may contain only one of 'instances' (row format) "
                                "or 'inputs' (columnar format)")
    if not has_rows and not has_cols:
        raise RequestError(400, "the request has neither 'instances' (row format) nor 'inputs' "
                                "(columnar format)")
    if has_rows:
        instances = doc["instances"]
        if not isinstance(instances, list):
            raise RequestError(400, f"'instances' must be a list, got {type(instances).__name__}")
        if not instances:
            raise RequestError(400, "'instances' is empty")
        return PredictRequest(signature, False, instances)
    return PredictRequest(signature, True, doc["inputs"])


def _columns_to_instances(inputs: Any, input_name: str) -> List[Any]:
    if isinstance(inputs, list):
        instances = inputs
    elif isinstance(inputs, dict) and set(inputs) == {"b64"}:
        instances = [inputs]
    elif isinstance(inputs, dict) and set(inputs) == {input_name}:
        instances = inputs[input_name]
        if not isinstance(instances, list):
            raise RequestError(400, f"inputs[{input_name!r}] must be a list")
        instances = [{input_name: v} for v in instances]
    elif isinstance(inputs, dict):   # columns of raw feature values
        lengths = {k: (len(v) if isinstance(v, list) else None) for k, v in inputs.items()}
        bad = [k for k, n in lengths.items() if n is None]
        if bad:
            raise RequestError(400, f"inputs: feature column {_short(bad[0])} must be a list of values")
        if len(set(lengths.values())) > 1:
            raise RequestError(400, "inputs: feature columns have different lengths ("
                               + ", ".join(f"{k}: {n}" for k, n in lengths.items()) + ")")
        n = next(iter(lengths.values()), 0)
        instances = [{k: v[i] for k, v in inputs.items()} for i in range(n)]
    else:
        raise RequestError(400, f"'inputs' must be a list or an object, got {type(inputs).__name__}")
    if not instances:
        raise RequestError(400, "'inputs' is empty")
    return instances


def instances_to_examples(instances: Sequence[Any], input_name: str,
                          features: Optional[Mapping[str, FeatureType]]) -> List[bytes]:
    """Serialized tf.Examples from row-format instances (see the module docstring)."""
    out: List[Optional[bytes]] = []
    rows, where = [], []
    for i, item in enumerate(instances):
        if isinstance(item, dict) and set(item) == {"b64"}:
            out.append(_b64(item["b64"], f"instance {i}"))
        elif isinstance(item, dict) and set(item) == {input_name}:
            value = item[input_name]
            if not (isinstance(value, dict) and set(value) == {"b64"}):
                raise RequestError(400, f"instance {i}: {input_name!r} must be {{\"b64\": <base64 "
                                        "serialized tf.Example>}")
            out.append(_b64(value["b64"], f"instance {i}"))
        elif isinstance(item, dict):
            if features is None:
                raise RequestError(400, f"instance {i}: this model version has no schema "
                                        "(profile/schema.pbtxt) to type raw feature values; send "
                                        "serialized tf.Examples as {\"b64\": ...}")
            rows.append(typed_values(item, features, i))
            where.append(i)
            out.append(None)
        else:
            raise RequestError(400, f"instance {i}: expected {{\"b64\": ...}}, {{\"{input_name}\": "
                                    f"{{\"b64\": ...}}}} or an object of feature values, got "
                                    f"{type(item).__name__}")
    if rows:
        for i, data in zip(where, encode_examples(rows, features)):
            out[i] = data
    return out  # type: ignore[return-value]


# ---------------------------------------------------------------- model versions


@dataclasses.dataclass
class Signature:
    name: str
    fn: Any                       # a TF ConcreteFunction
    input_name: Optional[str]     # the one DT_STRING input, or None when serve can't feed it
    metadata: Dict[str, Any]


@dataclasses.dataclass
class ModelVersion:
    version: int
    path: pathlib.Path
    signatures: Dict[str, Signature]
    features: Optional[Dict[str, FeatureType]]
    model: Any = None             # keeps the loaded SavedModel (and its variables) alive


def _tensor_info(name: str, spec) -> Dict[str, Any]:
    from tensorflow.core.framework import types_pb2

    dims = spec.shape.as_list() if spec.shape.rank is not None else None
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "tensor_shape": {"dim": [{"size": str(-1 if d is None else d), "name": ""} for d in dims or []],
                             "unknown_rank": dims is None},
            "name": name}


def load_version(registry: pathlib.Path, version: int) -> ModelVersion:
    """Load ``<registry>/<version>`` and run its default signature once on an empty batch
    (the first call initialises lookup tables), so the swap-in serves at full speed."""
    import tensorflow as tf

    path = pathlib.Path(registry) / str(version)
    model = tf.saved_model.load(str(path))
    signatures = {}
    for name, fn in model.signatures.items():
        inputs = fn.structured_input_signature[1]
        string_inputs = [k for k, s in inputs.items() if s.dtype == tf.string]
        input_name = string_inputs[0] if len(inputs) == 1 and string_inputs else None
        outputs = fn.structured_outputs
        signatures[name] = Signature(name, fn, input_name, {
            "inputs": {k: _tensor_info(f"{name}_{k}:0", s) for k, s in inputs.items()},
            "outputs": {k: _tensor_info(f"StatefulPartitionedCall:{i}", t)
                        for i, (k, t) in enumerate(sorted(outputs.items()))},
            "method_name": "tensorflow/serving/predict"})
    default = signatures.get(DEFAULT_SIGNATURE)
    if default is None or default.input_name is None:
        raise ServeError(f"{path}: no '{DEFAULT_SIGNATURE}' signature taking one string input of "
                         f"serialized tf.Examples (signatures: {', '.join(signatures) or 'none'})")
    default.fn(**{default.input_name: tf.constant([], dtype=tf.string)})
    schema = path / registry_lib.PROFILE_DIR / "schema.pbtxt"
    features = read_feature_types(schema) if schema.is_file() else None
    if features is None:
        log.warning("%s has no profile/schema.pbtxt: only serialized tf.Examples are accepted", path)
    return ModelVersion(int(version), path, signatures, features, model)


class ModelRepository:
    """The loaded versions of one model; ``poll()`` brings them in line with the registry.

    The newest ``keep`` loadable versions on disk are kept loaded; the newest loaded one is
    served. A version that fails to load is remembered (a published version never changes,
    so it is not retried) and the loaded ones keep serving.
    """

    def __init__(self, registry: pathlib.Path, name: str, *, keep: int = 2,
                 loader: Callable[[pathlib.Path, int], ModelVersion] = load_version,
                 on_load: Callable[[bool], None] = lambda ok: None,
                 on_change: Callable[[Mapping[int, ModelVersion]], None] = lambda loaded: None):
        self.registry, self.name, self.keep = pathlib.Path(registry), name, keep
        self._loader, self._on_load, self._on_change = loader, on_load, on_change
        self._loaded: Dict[int, ModelVersion] = {}
        self.failed: Dict[int, str] = {}
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def loaded(self) -> Dict[int, ModelVersion]:
        return self._loaded

    @property
    def served(self) -> Optional[ModelVersion]:
        loaded = self._loaded
        return loaded[max(loaded)] if loaded else None

    def poll(self) -> bool:
        """Load new versions, drop old ones; True when the set of loaded versions changed."""
        with self._poll_lock:
            on_disk = [v for v in registry_lib.existing_versions(self.registry) if v not in self.failed]
            current = self._loaded
            wanted: Dict[int, ModelVersion] = {}
            for v in reversed(on_disk):
                if len(wanted) >= self.keep:
                    break
                if v in current:
                    wanted[v] = current[v]
                    continue
                t0 = time.monotonic()
                try:
                    wanted[v] = self._loader(self.registry, v)
                except Exception as e:  # noqa: BLE001 - any failure: log, count, keep serving
                    self.failed[v] = f"{type(e).__name__}: {e}"
                    log.error("model %s version %d failed to load from %s (the loaded versions keep "
                              "serving): %s", self.name, v, self.registry / str(v), self.failed[v])
                    self._on_load(False)
                    continue
                log.info("loaded model %s version %d in %.1f s", self.name, v, time.monotonic() - t0)
                self._on_load(True)
            if not wanted:
                if current:
                    log.warning("no loadable version of %s in %s; still serving version(s) %s",
                                self.name, self.registry, sorted(current))
                return False
            if set(wanted) == set(current):
                return False
            self._loaded = dict(sorted(wanted.items()))   # the atomic swap
            self._on_change(self._loaded)
            log.info("model %s: serving version %d (loaded: %s)", self.name, max(wanted), sorted(wanted))
            return True

    def get(self, version: Optional[str]) -> ModelVersion:
        loaded = self._loaded
        if version is None:
            if not loaded:
                raise RequestError(503, f"model {self.name} has no version loaded")
            return loaded[max(loaded)]
        if not version.isdigit():
            raise RequestError(404, f"model {self.name} has no version {_short(version)} "
                                    "(versions are positive integers)")
        v = int(version)
        if v in loaded:
            return loaded[v]
        why = f" (it failed to load: {self.failed[v]})" if v in self.failed else ""
        raise RequestError(404, f"model {self.name} version {v} is not loaded{why}; loaded "
                                f"versions: {', '.join(map(str, sorted(loaded, reverse=True))) or 'none'}")

    def start(self, poll_seconds: float) -> None:
        def loop():
            while not self._stop.wait(poll_seconds):
                try:
                    self.poll()
                except Exception:  # noqa: BLE001 - the poller must survive, e.g. a registry on a flaky mount
                    log.exception("polling the registry %s failed", self.registry)

        self._thread = threading.Thread(target=loop, name="registry-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)


# ---------------------------------------------------------------- metrics


class Metrics:
    """The server's Prometheus metrics, in a registry of their own."""

    def __init__(self, model: str):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("driftguard_serve_requests", "HTTP requests by path kind and status code",
                                ["path", "code"], registry=r)
        self.latency = Histogram("driftguard_serve_request_latency_seconds",
                                 "Request latency from the request line to the response, by path kind",
                                 ["path"], buckets=_LATENCY_BUCKETS, registry=r)
        self.request_bytes = Counter("driftguard_serve_request_bytes", "Request body bytes read", registry=r)
        self.instances = Counter("driftguard_serve_instances_predicted", "Instances predicted, by model version",
                                 ["version"], registry=r)
        # What the model predicted, per task: the positive-class probability (binary, a histogram),
        # the predicted class (multi-class, a counter per class), the value (regression, a summary).
        self.prediction = Histogram("driftguard_serve_prediction", "Predicted positive-class probabilities "
                                    "(binary classifiers)", buckets=_PROBABILITY_BUCKETS, registry=r)
        self.predicted_class = Counter("driftguard_serve_predicted_class", "Predicted classes (multi-class)",
                                       ["class_"], registry=r)
        self.prediction_value = Summary("driftguard_serve_prediction_value", "Predicted values (regression)",
                                        registry=r)
        self.model_version = Gauge("driftguard_serve_model_version", "The version served by default",
                                   ["model"], registry=r)
        self.loaded_versions = Gauge("driftguard_serve_loaded_versions", "Model versions loaded",
                                     ["model"], registry=r)
        self.log_records = Counter("driftguard_serve_log_records",
                                   "Prediction log records: written, failed (write error) or sampled_out",
                                   ["result"], registry=r)
        self.model_loads = Counter("driftguard_serve_model_loads", "Model version loads (start and reloads)",
                                   ["result"], registry=r)
        for result in ("written", "failed", "sampled_out"):
            self.log_records.labels(result)
        for result in ("ok", "failed"):
            self.model_loads.labels(result)
        self._model = model

    def set_versions(self, loaded: Mapping[int, ModelVersion]) -> None:
        self.model_version.labels(self._model).set(max(loaded) if loaded else 0)
        self.loaded_versions.labels(self._model).set(len(loaded))

    def render(self) -> Tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# ---------------------------------------------------------------- the service


def _model_error_message(error: Exception, sig: Signature, examples: Sequence[bytes]) -> str:
    """TF's InvalidArgumentError, without the graph noise; ``Index`` is the instance index."""
    lines = [ln.strip() for ln in str(error).splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("Graph execution error", "Detected at node",
                                                             "<stack traces", "[[", "{{"))]
    text = " ".join(lines) or type(error).__name__
    text = re.sub(r"\s*\[Op:[^\]]*\]$", "", text)
    m = re.search(r"Key: (\S+), Index: (\d+)\.\s*(.*)", text)
    if m:
        return f"instance {m.group(2)}: feature {m.group(1)!r}: {m.group(3)}"
    if "Could not parse example input" in text:
        # TF does not say which one (and Python's protobuf parser is more lenient than TF's):
        # on this error path only, feed the instances one at a time to find it.
        import tensorflow as tf

        for i, data in enumerate(examples):
            try:
                sig.fn(**{sig.input_name: tf.constant([data], dtype=tf.string)})
            except tf.errors.InvalidArgumentError:
                return f"instance {i}: the b64 value is not a serialized tf.Example"
        return "an instance is not a serialized tf.Example"
    return f"the model rejected the input: {text[:500]}"


class PredictionService:
    """Requests -> model -> responses, prediction logs and metrics; no HTTP in here."""

    def __init__(self, settings: ServeSettings, *, repository: Optional[ModelRepository] = None):
        self.settings = settings
        self.metrics = Metrics(settings.model_name)
        self.repository = repository or ModelRepository(
            settings.registry, settings.model_name, keep=settings.keep_versions,
            on_load=lambda ok: self.metrics.model_loads.labels("ok" if ok else "failed").inc(),
            on_change=self.metrics.set_versions)
        self.writer: Optional[predictlog.PredictionLogWriter] = None
        if settings.log_dir is not None:
            self.writer = predictlog.PredictionLogWriter(
                settings.log_dir, max_bytes=settings.log_max_bytes,
                max_age_seconds=settings.log_max_age_seconds)
        self._rng = random.Random()
        self._inflight = 0
        self._idle = threading.Condition()
        self.stopping = False
        self._spec = settings.model_spec or model_io.ModelSpec()
        self._warned = False

    # -- lifecycle
    def start(self) -> None:
        self.repository.poll()
        if not self.repository.loaded:
            failed = "; ".join(f"version {v}: {e}" for v, e in self.repository.failed.items())
            raise ServeError(f"no model version of {self.settings.model_name} could be loaded from "
                             f"{self.settings.registry}"
                             + (f" ({failed})" if failed else " (the registry has no versions yet: "
                                "train one with `driftguard train` or `driftguard run`)"))
        self.repository.start(self.settings.poll_seconds)

    def close(self) -> None:
        """Stop polling, wait (bounded) for requests in flight, close the log writer."""
        self.stopping = True
        self.repository.stop()
        deadline = time.monotonic() + _SHUTDOWN_WAIT_SECONDS
        with self._idle:
            while self._inflight and time.monotonic() < deadline:
                self._idle.wait(0.1)
            if self._inflight:
                log.warning("closing with %d request(s) still in flight", self._inflight)
        if self.writer is not None:
            self.writer.close()

    def begin(self) -> None:
        with self._idle:
            self._inflight += 1

    def end(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    # -- auth
    def check_token(self, header: Optional[str]) -> None:
        token = self.settings.token
        if not token:
            return
        challenge = {"WWW-Authenticate": 'Bearer realm="driftguard"'}
        if not header:
            raise RequestError(401, "missing bearer token (send 'Authorization: Bearer <token>')",
                               headers=challenge)
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise RequestError(401, "invalid bearer token", headers=challenge)

    # -- endpoints
    def _check_name(self, name: str) -> None:
        if name != self.settings.model_name:
            raise RequestError(404, f"unknown model {_short(name)}: this server serves "
                                    f"'{self.settings.model_name}'")

    def status(self, name: str, version: Optional[str]) -> Dict[str, Any]:
        self._check_name(name)
        if version is not None:
            versions = [self.repository.get(version).version]
        else:
            versions = sorted(self.repository.loaded, reverse=True)
        return {"model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in versions]}

    def metadata(self, name: str, version: Optional[str]) -> Dict[str, Any]:
        self._check_name(name)
        mv = self.repository.get(version)
        return {"model_spec": {"name": name, "signature_name": "", "version": str(mv.version)},
                "metadata": {"signature_def": {"signature_def": {
                    n: s.metadata for n, s in mv.signatures.items()}}}}

    def predict(self, name: str, version: Optional[str], body: bytes, request_id: str) -> Dict[str, Any]:
        import tensorflow as tf

        self._check_name(name)
        req = parse_predict_body(body)
        mv = self.repository.get(version)
        sig = mv.signatures.get(req.signature_name)
        if sig is None:
            raise RequestError(400, f"signature_name {_short(req.signature_name)} not found in "
                                    f"{name} version {mv.version}; signatures: {', '.join(mv.signatures)}")
        if sig.input_name is None:
            raise RequestError(400, f"signature {sig.name!r} does not take one string input of "
                                    "serialized tf.Examples, which is what serve feeds")
        instances = _columns_to_instances(req.instances, sig.input_name) if req.columnar else req.instances
        examples = instances_to_examples(instances, sig.input_name, mv.features)
        try:
            result = sig.fn(**{sig.input_name: tf.constant(examples, dtype=tf.string)})
        except tf.errors.InvalidArgumentError as e:
            raise RequestError(400, _model_error_message(e, sig, examples)) from None
        outputs = {k: v.numpy() for k, v in result.items()}
        n = len(examples)
        self.metrics.instances.labels(str(mv.version)).inc(n)
        if sig.name == self._spec.signature:
            self._observe(outputs, n)
        ids = [request_id] if n == 1 else [f"{request_id}-{i}" for i in range(n)]
        self._log(mv, sig.name, examples, outputs, ids, request_id)
        return _format_outputs(outputs, req.columnar)

    def _observe(self, outputs: Mapping[str, Any], n: int) -> None:
        """The predictions of a request in /metrics, read per task by model_io (a model whose
        outputs do not fit the config is logged once, and the answer stands)."""
        spec = self._spec
        try:
            p = model_io.read_outputs(outputs[model_io.pick_output(outputs, spec)], n, spec)
        except model_io.ModelIOError as e:
            if not self._warned:
                log.warning("predictions not counted in /metrics: %s", e)
                self._warned = True
            return
        if spec.task == "binary":
            for v in p.value:
                self.metrics.prediction.observe(float(v))
        elif spec.task == "multiclass":
            for v in p.value[np.isfinite(p.value)]:
                self.metrics.predicted_class.labels(str(spec.classes[int(v)])).inc()
        else:
            for v in p.value[np.isfinite(p.value)]:
                self.metrics.prediction_value.observe(float(v))

    def _log(self, mv: ModelVersion, signature: str, examples, outputs, ids, request_id: str) -> None:
        if self.writer is None:
            return
        rate = self.settings.log_sample_rate
        if rate < 1.0 and self._rng.random() >= rate:
            self.metrics.log_records.labels("sampled_out").inc()
            return
        try:
            record = predictlog.make_predict_log(self.settings.model_name, mv.version, examples, outputs,
                                                 ids, signature=signature, sampling_rate=rate)
            self.writer.write(record)
        except Exception as e:  # noqa: BLE001 - the answer stands; the loss is counted and logged
            self.metrics.log_records.labels("failed").inc()
            log.error("prediction log write failed for request %s (%d instance(s), model %s version %d); "
                      "the request was answered but is NOT in the prediction log: %s: %s",
                      request_id, len(ids), self.settings.model_name, mv.version, type(e).__name__, e)
            return
        self.metrics.log_records.labels("written").inc()


def _format_outputs(outputs: Mapping[str, Any], columnar: bool) -> Dict[str, Any]:
    """TF Serving's response shapes: one output -> its values; several -> by name (row format:
    one object per instance)."""
    if columnar:
        if len(outputs) == 1:
            return {"outputs": next(iter(outputs.values())).tolist()}
        return {"outputs": {k: v.tolist() for k, v in outputs.items()}}
    if len(outputs) == 1:
        return {"predictions": next(iter(outputs.values())).tolist()}
    lists = {k: v.tolist() for k, v in outputs.items()}
    n = len(next(iter(lists.values())))
    return {"predictions": [{k: v[i] for k, v in lists.items()} for i in range(n)]}


# ---------------------------------------------------------------- HTTP


def _route(path: str) -> Tuple[str, Dict[str, Optional[str]]]:
    """(path kind, parts): kind is predict | status | metadata | metrics | healthz | unknown."""
    if path == "/metrics":
        return "metrics", {}
    if path == "/healthz":
        return "healthz", {}
    m = _PATH_RE.match(path)
    if not m:
        return "unknown", {}
    parts = {"name": m.group("name"), "version": m.group("version")}
    if m.group("metadata"):
        return "metadata", parts
    verb = m.group("verb")
    if verb is None:
        return "status", parts
    if verb == "predict":
        return "predict", parts
    return "unsupported_verb", {**parts, "verb": verb}


_METHODS = {"predict": "POST", "status": "GET", "metadata": "GET", "metrics": "GET", "healthz": "GET"}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (~40 ms per response on Linux).
    disable_nagle_algorithm = True
    server_version = "driftguard-serve"
    sys_version = ""
    service: PredictionService       # set on the subclass made by make_server
    timeout: float = 30.0

    def version_string(self) -> str:
        return self.server_version

    def handle_expect_100(self) -> bool:
        # No "100 Continue" for a body that will be refused anyway: the client then sends nothing
        # and reads the 413 that _read_body answers from the Content-Length.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > self.service.settings.max_body_bytes:
            return True
        return super().handle_expect_100()

    def log_message(self, fmt: str, *args) -> None:  # access lines at DEBUG, not on stderr
        log.debug("%s %s", self.address_string(), fmt % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_HEAD(self):
        self._handle("HEAD")

    def do_OPTIONS(self):
        self._handle("OPTIONS")

    # -- body
    def _read_body(self) -> bytes:
        limit = self.service.settings.max_body_bytes
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length_text = self.headers.get("Content-Length")
        if chunked:
            from werkzeug.serving import DechunkedInput

            stream, remaining = DechunkedInput(self.rfile), None
        elif length_text is None:
            self._unread = False
            if self.command == "POST":
                raise RequestError(411, "the request needs a Content-Length header (or chunked "
                                        "Transfer-Encoding)")
            return b""
        else:
            try:
                remaining = int(length_text)
                if remaining < 0:
                    raise ValueError
            except ValueError:
                raise RequestError(400, "the Content-Length header is not a non-negative integer") from None
            if remaining > limit:
                raise RequestError(413, f"the request body is {remaining} bytes, more than the limit of "
                                        f"{limit} bytes (--max-body-bytes)")
            stream = self.rfile
        parts, size = [], 0
        try:
            while remaining is None or remaining > 0:
                want = _READ_CHUNK if remaining is None else min(_READ_CHUNK, remaining)
                data = stream.read(want)
                if not data:
                    if remaining:
                        raise RequestError(400, f"the request body ended {remaining} bytes short of "
                                                "its Content-Length")
                    break
                size += len(data)
                self.service.metrics.request_bytes.inc(len(data))
                if size > limit:
                    raise RequestError(413, f"the request body is more than the limit of {limit} bytes "
                                            "(--max-body-bytes)")
                parts.append(data)
                if remaining is not None:
                    remaining -= len(data)
        except socket.timeout:
            raise RequestError(408, "timed out reading the request body") from None
        except OSError as e:  # werkzeug's DechunkedInput raises OSError on a malformed chunk
            raise RequestError(400, f"malformed chunked request body: {e}") from None
        self._unread = False
        return b"".join(parts)

    # -- responses
    def _send(self, status: int, payload: Any, *, content_type: str = "application/json",
              headers: Optional[Mapping[str, str]] = None) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header(REQUEST_ID_HEADER, self._request_id)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self._unread or self.service.stopping:
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self._status = status

    def _linger(self) -> None:
        """After answering without reading the whole body (413, 401, ...): stop writing, then
        read and drop what the client still sends for a moment, so closing does not reset the
        connection before the client has read the answer."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + _LINGER_SECONDS
            drained = 0
            while time.monotonic() < deadline and drained < 4 * self.service.settings.max_body_bytes + (1 << 20):
                self.connection.settimeout(max(0.01, deadline - time.monotonic()))
                data = self.connection.recv(_READ_CHUNK)
                if not data:
                    break
                drained += len(data)
        except OSError:
            pass

    def _handle(self, method: str) -> None:
        service = self.service
        started = time.perf_counter()
        path = self.path.split("?", 1)[0]
        kind, parts = _route(path)
        self._status, self._unread = 500, True
        self._request_id = uuid.uuid4().hex
        has_body = "chunked" in self.headers.get("Transfer-Encoding", "").lower() or \
            self.headers.get("Content-Length", "0").strip() not in ("", "0")
        if not has_body:
            self._unread = False
        service.begin()
        try:
            try:
                given = self.headers.get(REQUEST_ID_HEADER)
                if given is not None:
                    if not _REQUEST_ID_RE.match(given):
                        raise RequestError(400, f"the {REQUEST_ID_HEADER} header must be 1-128 characters "
                                                "of A-Z a-z 0-9 . _ : - (a fresh id was assigned)")
                    self._request_id = given
                if service.stopping:
                    raise RequestError(503, "the server is shutting down")
                if kind != "healthz":
                    service.check_token(self.headers.get("Authorization"))
                if kind == "unknown":
                    raise RequestError(404, f"no such endpoint: {_short(path, 80)} (see TF Serving's REST "
                                            "API: /v1/models/<name>[/versions/<v>][:predict|/metadata])")
                if kind == "unsupported_verb":
                    raise RequestError(400, f"':{_short(parts['verb'])[1:-1]}' is not supported; serve "
                                            "answers ':predict'")
                allowed = _METHODS[kind]
                if method != allowed:
                    raise RequestError(405, f"{method} is not allowed on {_short(path, 80)}; use {allowed}",
                                       headers={"Allow": allowed})
                if kind == "predict":
                    body = self._read_body()
                    self._send(200, service.predict(parts["name"], parts["version"], body, self._request_id))
                elif kind == "status":
                    self._send(200, service.status(parts["name"], parts["version"]))
                elif kind == "metadata":
                    self._send(200, service.metadata(parts["name"], parts["version"]))
                elif kind == "metrics":
                    data, ctype = service.metrics.render()
                    self._send(200, data, content_type=ctype)
                else:
                    served = service.repository.served
                    self._send(200, {"status": "ok", "model": service.settings.model_name,
                                     "version": served.version if served else None})
            except RequestError as e:
                self._send(e.status, {"error": e.message}, headers=e.headers)
            except Exception as e:  # noqa: BLE001 - answer 500, keep serving
                log.exception("request %s %s failed", self._request_id, path)
                self._send(500, {"error": f"internal error ({type(e).__name__}); request id "
                                          f"{self._request_id}"})
        except OSError as e:   # the client went away mid-response
            self.close_connection = True
            log.debug("request %s: connection lost: %s", self._request_id, e)
        finally:
            service.end()
            service.metrics.requests.labels(kind, str(self._status)).inc()
            service.metrics.latency.labels(kind).observe(time.perf_counter() - started)
            if self._unread:
                self.close_connection = True
                self._linger()


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(service: PredictionService) -> http.server.ThreadingHTTPServer:
    """A threaded HTTP server for ``service`` bound to its settings' host and port (not started)."""
    handler = type("Handler", (_Handler,), {"service": service,
                                            "timeout": service.settings.read_timeout_seconds})
    host = service.settings.host
    cls = _Server6 if ":" in host else _Server
    try:
        return cls((host.strip("[]"), service.settings.port), handler)
    except OSError as e:
        raise ServeError(f"cannot bind {host}:{service.settings.port}: {e.strerror or e}") from None


def url_of(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(settings: ServeSettings, *, out=None) -> None:
    """Load the newest version, print ``serving <model> v<N> at <url>``, serve until SIGTERM or
    SIGINT, then stop accepting, finish the requests in flight and close the prediction log."""
    settings.validate()
    service = PredictionService(settings)
    service.start()
    server = make_server(service)
    out = out or sys.stdout

    def stop(signum, _frame):
        log.info("signal %d: shutting down", signum)
        service.stopping = True
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        served = service.repository.served
        print(f"serving {settings.model_name} v{served.version} at {url_of(server)}", file=out, flush=True)
        log.info("serving %s v%d at %s (registry %s, prediction logs: %s)", settings.model_name,
                 served.version, url_of(server), settings.registry, settings.log_dir or "off")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        service.close()
        for s, h in previous.items():
            signal.signal(s, h)
        log.info("stopped; prediction log closed")
