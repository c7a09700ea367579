"""``PredictionService``: requests -> model -> responses, prediction logs and metrics, with no
HTTP in it (``serving/server.py`` puts it on the network)."""
from __future__ import annotations

import dataclasses
import hmac
import logging
import random
import re
import secrets
import threading
import time
from typing import Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from driftguard.components import model_io
from driftguard.serving import predictlog, rollout
from driftguard.serving.metrics import Metrics
from driftguard.serving.repository import ModelRepository, ModelVersion, Signature
from driftguard.serving.request import (RequestError, columns_to_instances, format_outputs, instances_to_examples,
                                        parse_predict_body, shorten)
from driftguard.serving.settings import ServeError, ServeSettings

log = logging.getLogger(__name__)

_SHUTDOWN_WAIT_SECONDS = 10.0
_UNSET = object()


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


def instance_ids(request_id: str, n: int) -> List[str]:
    """The ids of a request's instances in the prediction log: the request id itself for one
    instance, ``<request id>-<i>`` (i from 0) for instance i of several."""
    return [request_id] if n == 1 else [f"{request_id}-{i}" for i in range(n)]


class IssuedIds:
    """The request and instance ids this server has written to its prediction log, so that no
    id is issued twice: delayed labels are joined on them, and a label for an id logged twice
    would join to two predictions (or a reused id leave one waiting forever).

    ``issue(request_id, n)`` keeps ``request_id`` when neither it nor any of its instance ids
    was issued before, else rewrites it to ``<request_id>.<8 hex>`` (the original cut to 119
    characters, so the result is still a valid ``X-Request-Id`` of at most 128). Ids are held
    as 64-bit hashes in two generations of at most ``capacity // 2`` each: the newest
    ``capacity // 2`` to ``capacity`` ids are remembered (about 60 bytes each); an id reused
    after that many newer ones is not detected. A hash collision only rewrites an id that
    did not need it.
    """

    def __init__(self, capacity: int = 1_000_000):
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {capacity!r}")
        self.capacity = capacity
        self._current: Set[int] = set()
        self._previous: Set[int] = set()
        self._lock = threading.Lock()

    def _seen(self, key: int) -> bool:
        return key in self._current or key in self._previous

    def _add(self, key: int) -> None:
        if len(self._current) >= self.capacity // 2:
            self._previous, self._current = self._current, set()
        self._current.add(key)

    def issue(self, request_id: str, n: int) -> str:
        """The request id to log ``n`` instances under (``request_id`` or a rewrite of it)."""
        with self._lock:
            rid = request_id
            while True:
                keys = {hash(rid), *(hash(i) for i in instance_ids(rid, n))}
                if not any(self._seen(k) for k in keys):
                    break
                rid = f"{request_id[:119]}.{secrets.token_hex(4)}"
            for k in keys:
                self._add(k)
            return rid


@dataclasses.dataclass
class Prediction:
    """A predict answer: the response body, the request id its instances were logged under
    (``rewritten_from``: the client's id when it had been used before, else None) and the model
    version that answered (the ``X-Model-Version`` response header)."""

    body: Dict[str, Any]
    request_id: str
    rewritten_from: Optional[str] = None
    version: Optional[int] = None


class PredictionService:
    """Requests -> model -> responses, prediction logs and metrics; no HTTP in here."""

    def __init__(self, settings: ServeSettings, *, repository: Optional[ModelRepository] = None):
        self.settings = settings
        self.metrics = Metrics(settings.model_name)
        self.repository = repository or ModelRepository(
            settings.registry, settings.model_name, keep=settings.keep_versions,
            on_load=lambda ok: self.metrics.model_loads.labels("ok" if ok else "failed").inc(),
            on_change=self.metrics.set_versions, on_swap=self._rollout_changed)
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
        self.ids = IssuedIds(settings.remembered_ids)
        # (champion, challenger) while a rollout is active, None while not; _UNSET before the first poll
        self._rollout_state: Any = _UNSET
        self._shadow_errors: Set[Tuple[int, str]] = set()       # (version, error type) logged once
        self._shadow_lock = threading.Lock()

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

    # -- rollout (serving/rollout.py)
    def _rollout_changed(self) -> None:
        """After a registry poll changed the versions or labels: log (once, not per request)
        whether a configured rollout is active at start, and when it becomes active, changes
        versions or becomes inactive."""
        mode = self.settings.rollout_mode
        if mode is None:
            return
        champion, challenger = self.repository.served_and_challenger()
        state = (champion.version, challenger.version) if champion and challenger else None
        if state == self._rollout_state:
            return
        if state is not None:
            what = (f"challenger version {state[1]} predicts every default-route request in the shadow "
                    f"(prediction log only); champion version {state[0]} answers" if mode == rollout.SHADOW else
                    f"challenger version {state[1]} answers {self.settings.canary_share:.0%} of the default-route "
                    f"requests (by request id), champion version {state[0]} the rest")
            log.info("rollout %s active: %s", mode, what)
        else:
            labels = self.repository.labels
            v = labels.get(rollout.CHALLENGER)
            why = ("no challenger label" if v is None else
                   f"the challenger label is the served version {v}" if champion and v == champion.version else
                   f"challenger version {v} is not loaded"
                   + (f" ({self.repository.failed[v]})" if v in self.repository.failed else ""))
            log.info("rollout %s inactive: %s; version %s answers every request", mode, why,
                     champion.version if champion else "none")
        self._rollout_state = state

    def _shadow(self, mv: ModelVersion, signature: str, examples: Sequence[bytes]) -> Optional[Dict[str, Any]]:
        """The challenger's outputs on the champion's examples, or None when it failed: counted,
        and logged once per (version, error type); the champion's answer stands either way."""
        import tensorflow as tf

        sig = mv.signatures.get(signature)
        try:
            if sig is None or sig.input_name is None:
                raise LookupError(f"no signature {signature!r} taking serialized tf.Examples "
                                  f"(signatures: {', '.join(mv.signatures)})")
            result = sig.fn(**{sig.input_name: tf.constant(examples, dtype=tf.string)})
            outputs = {k: v.numpy() for k, v in result.items()}
        except Exception as e:  # noqa: BLE001 - a shadow failure never reaches the client
            self.metrics.shadow_predictions.labels("failed").inc()
            key = (mv.version, type(e).__name__)
            with self._shadow_lock:
                first = key not in self._shadow_errors
                self._shadow_errors.add(key)
            if first:
                try:
                    text = (_model_error_message(e, sig, examples) if isinstance(e, tf.errors.InvalidArgumentError)
                            else f"{e}")[:500]
                except Exception:  # noqa: BLE001 - the message only: never fail the answered request
                    text = f"{e}"[:500]
                log.warning("shadow prediction by challenger version %d failed: %s: %s (the champion's answers "
                            "stand; further %s failures of version %d are only counted, in "
                            "driftguard_serve_shadow_predictions_total{result=\"failed\"})",
                            mv.version, type(e).__name__, text, type(e).__name__, mv.version)
            return None
        self.metrics.shadow_predictions.labels("ok").inc()
        return outputs

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
            raise RequestError(404, f"unknown model {shorten(name)}: this server serves "
                                    f"'{self.settings.model_name}'")

    def status(self, name: str, version: Optional[str], label: Optional[str] = None) -> Dict[str, Any]:
        self._check_name(name)
        if version is not None or label is not None:
            versions = [self.repository.get(version, label=label).version]
        else:
            versions = sorted(self.repository.loaded, reverse=True)
        return {"model_version_status": [
            {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
            for v in versions]}

    def metadata(self, name: str, version: Optional[str], label: Optional[str] = None) -> Dict[str, Any]:
        self._check_name(name)
        mv = self.repository.get(version, label=label)
        return {"model_spec": {"name": name, "signature_name": "", "version": str(mv.version)},
                "metadata": {"signature_def": {"signature_def": {
                    n: s.metadata for n, s in mv.signatures.items()}}}}

    def predict(self, name: str, version: Optional[str], body: bytes, request_id: str,
                label: Optional[str] = None) -> Prediction:
        """Answer a predict body; its instances are logged under ``request_id``, or under a
        fresh rewrite of it when it was issued before (see :class:`IssuedIds`)."""
        import tensorflow as tf

        self._check_name(name)
        req = parse_predict_body(body)
        route = None
        if version is None and label is None and self.settings.rollout_mode is not None:
            champion, challenger = self.repository.served_and_challenger()
            if champion is not None:
                # the client's id (or the one made for it), before any rewrite: sticky per client id
                route = rollout.route(self.settings.rollout_mode, self.settings.canary_share, request_id,
                                      champion, challenger)
        mv = route.answer if route is not None else self.repository.get(version, label=label)
        sig = mv.signatures.get(req.signature_name)
        if sig is None:
            raise RequestError(400, f"signature_name {shorten(req.signature_name)} not found in "
                                    f"{name} version {mv.version}; signatures: {', '.join(mv.signatures)}")
        if sig.input_name is None:
            raise RequestError(400, f"signature {sig.name!r} does not take one string input of "
                                    "serialized tf.Examples, which is what serve feeds")
        instances = columns_to_instances(req.instances, sig.input_name) if req.columnar else req.instances
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
        if route is not None and route.role is not None:
            self.metrics.rollout_requests.labels(route.role).inc()
        records = [(mv, outputs)]
        if route is not None and route.shadow is not None:
            # synchronously, in this inference thread: shadow mode doubles the model work per request
            shadow_outputs = self._shadow(route.shadow, sig.name, examples)
            if shadow_outputs is not None:
                records.append((route.shadow, shadow_outputs))
        used = self.ids.issue(request_id, n)
        if used != request_id:
            log.info("request id %s was issued before: its %d instance(s) are logged as %s", request_id, n, used)
        self._log(records, sig.name, examples, instance_ids(used, n), used)
        return Prediction(format_outputs(outputs, req.columnar), used,
                          request_id if used != request_id else None, version=mv.version)

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

    def _log(self, records: Sequence[Tuple[ModelVersion, Mapping[str, Any]]], signature: str, examples,
             ids, request_id: str) -> None:
        """One record per (version, outputs): the answer's, then the shadow's when there is one,
        written together (adjacent in one file) and sampled together (one decision per request)."""
        if self.writer is None:
            return
        rate = self.settings.log_sample_rate
        if rate < 1.0 and self._rng.random() >= rate:
            self.metrics.log_records.labels("sampled_out").inc(len(records))
            return
        now = time.time()
        try:
            self.writer.write_all([
                predictlog.make_predict_log(self.settings.model_name, mv.version, examples, outputs, ids,
                                            signature=signature, timestamp=now, sampling_rate=rate)
                for mv, outputs in records])
        except Exception as e:  # noqa: BLE001 - the answer stands; the loss is counted and logged
            self.metrics.log_records.labels("failed").inc(len(records))
            log.error("prediction log write failed for request %s (%d instance(s), model %s version %s); "
                      "the request was answered but is NOT in the prediction log: %s: %s",
                      request_id, len(ids), self.settings.model_name,
                      " and ".join(str(mv.version) for mv, _ in records), type(e).__name__, e)
            return
        self.metrics.log_records.labels("written").inc(len(records))

