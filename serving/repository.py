"""The model versions ``serve`` answers with: loading a SavedModel version from the registry
(signatures, their metadata, the schema's feature types) and :class:`ModelRepository`, which
keeps the newest and the labelled versions loaded and polls the registry for new versions and
label changes off the request path."""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from driftguard.components.registry_pusher import remote
from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.components.registry_pusher import registry as registry_lib
from driftguard.serving.request import DEFAULT_SIGNATURE, FeatureType, RequestError, read_feature_types, shorten
from driftguard.serving.settings import ServeError

log = logging.getLogger(__name__)


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


@dataclasses.dataclass(frozen=True)
class _Snapshot:
    """What requests read, swapped whole by ``poll()``: the loaded versions and the labels."""

    loaded: Dict[int, ModelVersion]
    labels: Dict[str, int]          # the registry's labels.json as last read (labels_lib)


class ModelRepository:
    """The loaded versions of one model and its version labels; ``poll()`` brings them in line
    with the registry.

    The newest ``keep`` loadable versions on disk are kept loaded, and every labelled version
    (``<registry>/labels.json``, TF Serving's ``version_labels``) too. The ``champion`` label's
    version is served by default; without a champion label, the newest loaded one is (as before
    labels existed). A version that fails to load is remembered (a published version never
    changes, so it is not retried) and the loaded ones keep serving. A label change is picked up
    by the next poll, off the request path: loaded first, then swapped in with the labels.
    """

    def __init__(self, registry: pathlib.Path, name: str, *, keep: int = 2,
                 loader: Callable[[pathlib.Path, int], ModelVersion] = load_version,
                 on_load: Callable[[bool], None] = lambda ok: None,
                 on_change: Callable[[Mapping[int, ModelVersion]], None] = lambda loaded: None,
                 on_swap: Callable[[], None] = lambda: None):
        self.registry, self.name, self.keep = pathlib.Path(registry), name, keep
        self._loader, self._on_load, self._on_change = loader, on_load, on_change
        self._on_swap = on_swap      # after every swap (versions or labels changed), on the polling thread
        self._state = _Snapshot({}, {})
        self._polled = False
        self._labels_error: Optional[str] = None
        self.failed: Dict[int, str] = {}
        self._poll_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    @property
    def loaded(self) -> Dict[int, ModelVersion]:
        return self._state.loaded

    @property
    def labels(self) -> Dict[str, int]:
        """``{label: version}`` as of the last poll (the versions may not all be loaded)."""
        return self._state.labels

    @property
    def served(self) -> Optional[ModelVersion]:
        return self._default(self._state)

    def served_and_challenger(self) -> Tuple[Optional[ModelVersion], Optional[ModelVersion]]:
        """From one snapshot: the served version, and the ``challenger`` label's version when it
        is loaded and is not the served one (else None: no challenger to route to)."""
        state = self._state
        served = self._default(state)
        v = state.labels.get(labels_lib.CHALLENGER)
        if served is None or v is None or v == served.version:
            return served, None
        return served, state.loaded.get(v)

    @staticmethod
    def _default(state: _Snapshot) -> Optional[ModelVersion]:
        loaded = state.loaded
        champion = state.labels.get(labels_lib.CHAMPION)
        if champion in loaded:
            return loaded[champion]
        return loaded[max(loaded)] if loaded else None

    def _read_labels(self, previous: Dict[str, int]) -> Dict[str, int]:
        """The registry's labels; a corrupt labels file stops the first poll (``serve`` does not
        start), and later keeps the labels last read (logged once per distinct error)."""
        try:
            labels = labels_lib.read_labels(self.registry)
        except (labels_lib.LabelError, OSError) as e:
            if not self._polled:
                raise ServeError(str(e)) from None
            if str(e) != self._labels_error:
                log.error("model %s: %s; still serving with the labels read before: %s", self.name, e,
                          previous or "none")
            self._labels_error = str(e)
            return previous
        self._labels_error = None
        return labels

    def poll(self) -> bool:
        """Load new versions, drop old ones, read the labels; True when the loaded versions or
        the labels changed."""
        with self._poll_lock:
            source = remote.mirror_source(self.registry)
            if source:
                # the local mirror of an s3:// registry: fetch what was published or labelled there
                # since (on the polling thread, off the request path; components/registry_pusher/remote.py)
                remote.sync(source, self.registry)
            current = self._state
            labels = self._read_labels(current.labels)
            self._polled = True
            on_disk = [v for v in registry_lib.existing_versions(self.registry) if v not in self.failed]
            champion = labels.get(labels_lib.CHAMPION)
            labelled = ([champion] if champion in on_disk else []) + sorted(
                {v for v in labels.values() if v in on_disk and v != champion}, reverse=True)
            for label, v in labels.items() if labels != current.labels else ():
                if v not in on_disk and v not in self.failed:
                    log.warning("model %s: label %r points to version %d, which is not in %s", self.name,
                                label, v, self.registry)
            wanted: Dict[int, ModelVersion] = {}
            for v in labelled + list(reversed(on_disk)):
                if v in wanted:
                    continue
                if v not in labelled and sum(1 for w in wanted if w not in labelled) >= self.keep:
                    break
                if v in current.loaded:
                    wanted[v] = current.loaded[v]
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
                if current.loaded:
                    log.warning("no loadable version of %s in %s; still serving version(s) %s",
                                self.name, self.registry, sorted(current.loaded))
                return False
            if set(wanted) == set(current.loaded) and labels == current.labels:
                return False
            state = _Snapshot(dict(sorted(wanted.items())), dict(labels))
            if champion is not None and champion not in state.loaded:
                log.error("model %s: the champion label points to version %d, which is not loaded%s; serving "
                          "the newest loaded version instead", self.name, champion,
                          f" ({self.failed[champion]})" if champion in self.failed else "")
            self._state = state   # the atomic swap
            if set(wanted) != set(current.loaded):
                self._on_change(state.loaded)
            served = self._default(state)
            log.info("model %s: serving version %d%s (loaded: %s; labels: %s)", self.name, served.version,
                     " (champion)" if served.version == champion else "", sorted(wanted),
                     ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none")
            self._on_swap()
            return True

    def get(self, version: Optional[str], label: Optional[str] = None) -> ModelVersion:
        """The version a request asks for: ``version`` (``/versions/<v>``), ``label``
        (``/labels/<label>``) or, with neither, the served one. RequestError 404 names the
        unknown version or label."""
        state = self._state
        loaded = state.loaded
        if version is not None and label is not None:
            raise RequestError(400, f"ask model {self.name} for a version or a label, not both")
        if label is not None:
            if label not in state.labels:
                have = ", ".join(f"{k} ({v})" for k, v in sorted(state.labels.items())) or "none"
                raise RequestError(404, f"model {self.name} has no label {shorten(label)}; labels: {have}")
            v = state.labels[label]
            if v in loaded:
                return loaded[v]
            why = f" (it failed to load: {self.failed[v]})" if v in self.failed else ""
            raise RequestError(404, f"model {self.name} label {shorten(label)} points to version {v}, which is "
                                    f"not loaded{why}; loaded versions: "
                                    f"{', '.join(map(str, sorted(loaded, reverse=True))) or 'none'}")
        if version is None:
            served = self._default(state)
            if served is None:
                raise RequestError(503, f"model {self.name} has no version loaded")
            return served
        if not version.isdigit():
            raise RequestError(404, f"model {self.name} has no version {shorten(version)} "
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

