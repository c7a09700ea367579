"""Predict requests in, responses out: TF Serving's REST JSON shapes, and raw feature values
typed by the model version's schema and encoded as serialized ``tf.Example`` s.

An instance is ``{"b64": "<base64 serialized tf.Example>"}`` (what TF Serving clients send for
the ``examples`` string input), ``{"examples": {"b64": ...}}``, or a plain dict of raw feature
values (``{"fare": 12.5, "payment_type": "Cash"}``), typed by the version's schema
(``profile/schema.pbtxt``). Every refusal is a :class:`RequestError` whose message names the
request part at fault (the instance index, the feature).
"""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import pathlib
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from driftguard.components import model_io

DEFAULT_SIGNATURE = "serving_default"
MAX_JSON_DEPTH = 64          # TF Serving shapes need 4-6 levels (rows of features, named b64)
FLOAT32_MAX = float(np.finfo(np.float32).max)


class RequestError(Exception):
    """A request the server answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str, *, headers: Optional[Mapping[str, str]] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, dict(headers or {})


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


def shorten(value: Any, limit: int = 40) -> str:
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

    A value is a scalar or a list; ``null`` means missing. INT takes integers within int64 (an
    integral float such as 3.0 too), FLOAT takes finite numbers within float32's range
    (integers of any size are converted), BYTES takes strings or ``{"b64": ...}``. Booleans,
    NaN and infinities are refused everywhere. Errors name the instance index and the feature.
    """
    out: Dict[str, Optional[list]] = {}
    for name, raw in values.items():
        spec = features.get(name)
        if spec is None:
            serving = sorted(n for n, f in features.items() if f.serving)
            raise RequestError(400, f"instance {index}: unknown feature {shorten(name)}; the model's "
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
            items = [_as_float(v, name, raw, index) for v in items]
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


def _as_float(v: Any, name: str, raw: Any, index: int) -> float:
    """A FLOAT value as the float32 a tf.Example holds: integers of any size are converted
    (rounded to float32's 24-bit precision); NaN, infinities and numbers
    beyond float32's range (about 3.4e38) are refused, since they would reach the model and
    the monitor's feature statistics as NaN or inf."""
    if type(v) is float:
        value = v
    elif type(v) is int:
        try:
            value = float(v)
        except OverflowError:
            value = math.inf
    else:
        raise RequestError(400, f"instance {index}: feature {name!r} expects numbers (FLOAT), got {shorten(raw)}")
    if math.isnan(value):
        raise RequestError(400, f"instance {index}: feature {name!r}: NaN is not a number serve accepts "
                                "(send null for a missing value)")
    if abs(value) > FLOAT32_MAX:
        what = ("-Infinity" if v < 0 else "Infinity") if type(v) is float and math.isinf(v) else shorten(v)
        raise RequestError(400, f"instance {index}: feature {name!r}: {what} is outside the range of FLOAT "
                                "(float32, about +-3.4e38); infinities and numbers that overflow (1e309) "
                                "are refused")
    return value


def _as_int(v: Any, name: str, raw: Any, index: int) -> int:
    if type(v) is float and not math.isfinite(v):
        raise RequestError(400, f"instance {index}: feature {name!r} expects integers (INT), got "
                                f"{'NaN' if math.isnan(v) else 'Infinity'} (not a finite number)")
    if type(v) is float and v.is_integer():
        return int(v)
    if type(v) is not int:
        raise RequestError(400, f"instance {index}: feature {name!r} expects integers (INT), got {shorten(raw)}")
    return v


def _as_bytes(v: Any, name: str, raw: Any, index: int) -> bytes:
    if type(v) is str:
        return v.encode("utf-8")
    if isinstance(v, dict) and set(v) == {"b64"}:
        return _b64(v["b64"], f"instance {index}: feature {name!r}")
    raise RequestError(400, f"instance {index}: feature {name!r} expects strings (BYTES), got {shorten(raw)}")


def encode_examples(rows: Sequence[Mapping[str, Optional[list]]],
                    features: Mapping[str, FeatureType]) -> List[bytes]:
    """Serialized tf.Examples from checked rows (``typed_values``): model_io's encoder."""
    return model_io.encode_rows(rows, {name: f.kind for name, f in features.items()})


_KEEP_QUOTES_AND_BRACKETS = bytes(b for b in range(256) if b not in b'"[]{}')


def json_depth(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings do not
    count), found without parsing: ``json.loads`` recurses once per level and raises
    RecursionError near 1000, so the depth is checked before it runs. A body with at most
    ``MAX_JSON_DEPTH`` brackets is not scanned: its bracket count (a bound) is returned.

    Only C-speed byte operations: drop the escapes that could hide a quote (``\\\\`` and
    ``\\"``), keep only quotes and brackets, drop what lies between quotes (strings)."""
    opened = body.count(b"[") + body.count(b"{")
    if opened <= MAX_JSON_DEPTH:   # the common small request
        return opened
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    text = body.translate(None, _KEEP_QUOTES_AND_BRACKETS)
    brackets = b"".join(text.split(b'"')[::2])
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


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
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(400, f"the JSON is nested {depth} levels deep; serve accepts at most "
                                f"{MAX_JSON_DEPTH}")
    try:
        doc = json.loads(body)
    except UnicodeDecodeError:
        raise RequestError(400, "malformed JSON: the request body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise RequestError(400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:   # not reached below MAX_JSON_DEPTH; kept as a guard
        raise RequestError(400, "the JSON is nested too deeply") from None
    except ValueError as e:  # an integer of more than 4300 digits (sys.set_int_max_str_digits)
        raise RequestError(400, f"malformed JSON: {e}") from None
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


def columns_to_instances(inputs: Any, input_name: str) -> List[Any]:
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
            raise RequestError(400, f"inputs: feature column {shorten(bad[0])} must be a list of values")
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


def format_outputs(outputs: Mapping[str, Any], columnar: bool) -> Dict[str, Any]:
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


