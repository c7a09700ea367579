"""Prediction logs: ``PredictionLog`` protos in TFRecord files, as TF Serving's request logging
writes them, plus the byte positions a follower needs to resume exactly where it stopped.

Why the TFRecord framing is hand-written here: ``tf.data``/``tf.io`` readers expose no byte
offsets, so a follower could not remember "record N of file F" across a restart without
re-reading (and re-counting) everything before it. The framing itself is four fields
(TFRecord format, tensorflow/core/lib/io/record_writer.cc)::

    uint64 length | uint32 masked_crc32c(length) | bytes data[length] | uint32 masked_crc32c(data)

and files written here are read unchanged by ``tf.data.TFRecordDataset``.

What ``serve`` logs for one request (``make_predict_log``):

* ``log_metadata``: model name, version, signature, ``timestamp_secs``, ``sampling_config``;
* ``predict_log.request.inputs["examples"]``: the serialized ``tf.Example`` s the model scored;
* ``predict_log.response.outputs``: the model's outputs (``probabilities``) and, as an extra
  string tensor ``request_id`` (one per example), the ids delayed labels are joined on. TF
  Serving's own logs have no request id; their records read the same, without ids.

Under a shadow rollout (serving/rollout.py) a request answered by the champion has a second
record right after it (written together, in the same file, sampled together): the same layout,
model name, signature, ``timestamp_secs``, examples and ``request_id`` values, with the
challenger's version in ``model_spec.version`` and the challenger's outputs. Nothing else marks
it: a record whose ids were already logged under another version is the shadow's.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
import struct
import threading
import time
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import google_crc32c
import numpy as np

log = logging.getLogger(__name__)

LOG_PREFIX = "prediction_log"
REQUEST_ID_OUTPUT = "request_id"
EXAMPLES_INPUT = "examples"
HEADER = struct.Struct("<QI")   # uint64 length, uint32 masked CRC of the length
FOOTER = struct.Struct("<I")    # uint32 masked CRC of the data
MASK_DELTA = 0xA282EAD8


class PredictionLogError(ValueError):
    """A prediction log that cannot be read; the message names the file and byte offset."""


def masked_crc(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + MASK_DELTA) & 0xFFFFFFFF


def frame(data: bytes) -> bytes:
    """One TFRecord: ``data`` with its length, CRCs and nothing else."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + FOOTER.pack(masked_crc(data))


# ---------------------------------------------------------------- positions and reading


@dataclasses.dataclass(frozen=True, order=True)
class Position:
    """Where a follower stands: ``offset`` bytes into ``file`` (a name inside the log folder).
    ``Position()`` is the beginning of the first file."""

    file: str = ""
    offset: int = 0

    def to_dict(self) -> Dict[str, object]:
        return {"file": self.file, "offset": self.offset}

    @classmethod
    def from_dict(cls, data: Optional[Mapping[str, object]]) -> "Position":
        if not data:
            return cls()
        return cls(file=str(data.get("file", "")), offset=int(data.get("offset", 0)))


def log_files(path: Union[str, pathlib.Path]) -> List[pathlib.Path]:
    """The log files a follower reads, in order: ``path`` itself if it is a file, else the
    regular files in the folder whose names don't start with ``.``, sorted by name (ours are
    named by start time, so name order is time order)."""
    path = pathlib.Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise PredictionLogError(f"{path}: no such prediction log file or folder")
    return sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def unread_files(path: Union[str, pathlib.Path], position: Position = Position()
                 ) -> List[Tuple[pathlib.Path, int, bool]]:
    """``(file, offset to start at, is the newest file)`` for every log file at or after
    ``position``, in order: what a follower still has to read."""
    files = log_files(path)
    return [(f, position.offset if f.name == position.file else 0, i == len(files) - 1)
            for i, f in enumerate(files) if not (position.file and f.name < position.file)]


def follow(path: Union[str, pathlib.Path], position: Position = Position(),
           max_records: Optional[int] = None) -> Iterator[Tuple[bytes, Position]]:
    """Yield ``(record, position_after_it)`` for every complete record after ``position``.

    Stops at the end of the newest file. An incomplete record at the end of the newest file
    (a writer mid-write) is left for the next call; at the end of an older file (a writer that
    was killed) it is skipped with a warning, since nothing will ever complete it. A record
    whose CRC does not match raises :class:`PredictionLogError` naming file and offset.
    """
    count = 0
    for f, offset, newest in unread_files(path, position):
        name = f.name
        with open(f, "rb") as fh:
            fh.seek(offset)
            while True:
                if max_records is not None and count >= max_records:
                    return
                head = fh.read(HEADER.size)
                if not head:
                    break
                if len(head) < HEADER.size:
                    _incomplete(f, offset, newest)
                    break
                length, length_crc = HEADER.unpack(head)
                if masked_crc(head[:8]) != length_crc:
                    raise PredictionLogError(f"{f}: corrupt record length at byte {offset} "
                                             "(CRC mismatch): not a TFRecord file, or damaged")
                body = fh.read(length + FOOTER.size)
                if len(body) < length + FOOTER.size:
                    _incomplete(f, offset, newest)
                    break
                data = body[:length]
                if masked_crc(data) != FOOTER.unpack(body[length:])[0]:
                    raise PredictionLogError(f"{f}: corrupt record at byte {offset} (data CRC mismatch)")
                offset += HEADER.size + length + FOOTER.size
                count += 1
                yield data, Position(name, offset)
        if newest:
            return


def _incomplete(f: pathlib.Path, offset: int, newest: bool) -> None:
    if not newest:
        log.warning("%s: incomplete record at byte %d at the end of a closed log file (a writer "
                    "stopped mid-record?); skipped", f, offset)


# ---------------------------------------------------------------- decoding


@dataclasses.dataclass
class LogEntry:
    """One logged request, decoded. ``examples`` are serialized ``tf.Example`` s (None when the
    request carried named input tensors instead: then ``inputs`` holds them)."""

    model: str
    version: Optional[int]
    timestamp: float
    examples: Optional[List[bytes]]
    inputs: Dict[str, np.ndarray]
    outputs: Dict[str, np.ndarray]
    request_ids: Optional[List[str]]

    @property
    def size(self) -> int:
        if self.examples is not None:
            return len(self.examples)
        for v in self.inputs.values():
            return int(v.shape[0]) if v.ndim else 1
        return 0


def _tensor(t) -> np.ndarray:
    # Fast paths for what serve writes (repeated fields, no tensor_content); TF for the rest.
    from tensorflow.core.framework import types_pb2

    shape = [d.size for d in t.tensor_shape.dim]
    if not t.tensor_content:
        if t.dtype == types_pb2.DT_STRING:
            return np.array(list(t.string_val), dtype=object).reshape(shape or [-1])
        if t.dtype == types_pb2.DT_FLOAT and (len(t.float_val) > 1 or not shape):
            return np.asarray(t.float_val, dtype=np.float32).reshape(shape or [-1])
    import tensorflow as tf

    return tf.make_ndarray(t)


def decode(record: bytes, *, where: str = "") -> LogEntry:
    """A ``PredictionLog`` (``predict_log``, ``classify_log`` or ``regress_log``) as a LogEntry."""
    from tensorflow_serving.apis import prediction_log_pb2

    pl = prediction_log_pb2.PredictionLog()
    try:
        pl.ParseFromString(record)
    except Exception as e:  # google.protobuf.message.DecodeError
        raise PredictionLogError(f"{where or 'record'}: not a PredictionLog ({e})") from None
    md = pl.log_metadata
    version = md.model_spec.version.value if md.model_spec.HasField("version") else None
    kind = pl.WhichOneof("log_type")
    examples: Optional[List[bytes]] = None
    inputs: Dict[str, np.ndarray] = {}
    outputs: Dict[str, np.ndarray] = {}
    if kind == "predict_log":
        req, resp = pl.predict_log.request, pl.predict_log.response
        string_inputs = [k for k, t in req.inputs.items() if t.dtype == 7]  # DT_STRING
        if len(req.inputs) == 1 and string_inputs:
            examples = list(req.inputs[string_inputs[0]].string_val)
        else:
            inputs = {k: _tensor(t) for k, t in req.inputs.items()}
        outputs = {k: _tensor(t) for k, t in resp.outputs.items()}
    elif kind in ("classify_log", "regress_log"):
        sub = getattr(pl, kind)
        ex_list = sub.request.input.example_list.examples
        examples = [e.SerializeToString() for e in ex_list]
        if kind == "regress_log":
            outputs = {"outputs": np.asarray([r.value for r in sub.response.result.regressions], dtype=np.float32)}
        else:
            classes = sub.response.result.classifications
            outputs = {"scores": np.asarray([[c.score for c in cl.classes] for cl in classes], dtype=np.float32)}
    else:
        raise PredictionLogError(f"{where or 'record'}: PredictionLog of kind {kind!r} is not supported "
                                 "(predict_log, classify_log and regress_log are)")
    ids = outputs.pop(REQUEST_ID_OUTPUT, None)
    request_ids = [x.decode() if isinstance(x, bytes) else str(x) for x in ids.reshape(-1)] if ids is not None else None
    return LogEntry(model=md.model_spec.name, version=version, timestamp=float(md.timestamp_secs),
                    examples=examples, inputs=inputs, outputs=outputs, request_ids=request_ids)


# ---------------------------------------------------------------- writing


def make_predict_log(model: str, version: int, examples: Sequence[bytes], outputs: Mapping[str, np.ndarray],
                     request_ids: Sequence[str], *, signature: str = "serving_default",
                     timestamp: Optional[float] = None, sampling_rate: float = 1.0):
    """The ``PredictionLog`` serve writes for one request (see the module docstring)."""
    from driftguard.components import model_io

    pl = model_io.predict_log(examples, outputs, input_name=EXAMPLES_INPUT, signature=signature)
    md = pl.log_metadata
    md.model_spec.name = model
    md.model_spec.version.value = int(version)
    md.model_spec.signature_name = signature
    md.timestamp_secs = int(time.time() if timestamp is None else timestamp)
    md.sampling_config.sampling_rate = float(sampling_rate)
    pl.predict_log.request.model_spec.CopyFrom(md.model_spec)
    resp = pl.predict_log.response
    resp.model_spec.CopyFrom(md.model_spec)
    ids = resp.outputs[REQUEST_ID_OUTPUT]
    ids.dtype = 7
    ids.tensor_shape.dim.add().size = len(request_ids)
    ids.string_val.extend(r.encode() for r in request_ids)
    return pl


class PredictionLogWriter:
    """Appends records to ``<dir>/prediction_log.<UTC start time>-<seq>.tfrecord``; starts a new
    file when the current one reaches ``max_bytes`` or is ``max_age_seconds`` old. Thread-safe.
    Each record is flushed as it is written, so a follower sees it at once; a crash can leave at
    most one incomplete record at the end of a file, which :func:`follow` skips."""

    def __init__(self, directory: Union[str, pathlib.Path], *, max_bytes: int = 64 << 20,
                 max_age_seconds: float = 3600.0, clock: Callable[[], float] = time.time):
        if max_bytes <= 0 or max_age_seconds <= 0:
            raise ValueError("max_bytes and max_age_seconds must be positive")
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_age_seconds, self._clock = int(max_bytes), float(max_age_seconds), clock
        self._lock = threading.Lock()
        self._fh = None
        self._path: Optional[pathlib.Path] = None
        self._opened_at = 0.0
        self._size = 0
        self._seq = 0
        self.records_written = 0

    @property
    def current_file(self) -> Optional[pathlib.Path]:
        return self._path

    def _open(self) -> None:
        now = self._clock()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        while True:
            self._seq += 1
            path = self.directory / f"{LOG_PREFIX}.{stamp}-{self._seq:06d}.tfrecord"
            if not path.exists():
                break
        self._fh = open(path, "ab")
        self._path, self._opened_at, self._size = path, now, 0

    def write(self, record) -> None:
        self.write_all([record])

    def write_all(self, records: Sequence) -> None:
        """Write ``records`` (PredictionLog protos or serialized bytes) one after the other, with
        no other writer's record between them and in one file (``serve``'s shadow record right
        after its champion record)."""
        framed = b"".join(frame(bytes(r if isinstance(r, (bytes, bytearray)) else r.SerializeToString()))
                          for r in records)
        with self._lock:
            if self._fh is not None and (self._size + len(framed) > self.max_bytes and self._size > 0
                                         or self._clock() - self._opened_at >= self.max_age_seconds):
                self._fh.close()
                self._fh = None
            if self._fh is None:
                self._open()
            try:
                self._fh.write(framed)
                self._fh.flush()
            except BaseException:
                # Part of the record may be on disk: never append after it. The next record
                # starts a new file, and follow() skips an incomplete record at the end of an
                # older file.
                fh, self._fh = self._fh, None
                try:
                    fh.close()
                except OSError:
                    pass
                raise
            self._size += len(framed)
            self.records_written += len(records)

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.flush()
                os.fsync(self._fh.fileno())
                self._fh.close()
                self._fh = None

    def __enter__(self) -> "PredictionLogWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
