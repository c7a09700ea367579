"""The model versions ``serve`` answers with: loading a SavedModel version from the registry
(signatures, their metadata, the schema's feature types) and :class:`ModelRepository`, which
keeps the newest versions loaded and polls the registry for new ones off the request path."""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading
import time
from typing import Any, Callable, Dict, Mapping, Optional

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

    def get(self, version: Optional[str], label: Optional[str] = None) -> ModelVersion:
        if label is not None:
            raise RequestError(404, f"model {self.name} has no version labelled {shorten(label)}")
        loaded = self._loaded
        if version is None:
            if not loaded:
                raise RequestError(503, f"model {self.name} has no version loaded")
            return loaded[max(loaded)]
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

