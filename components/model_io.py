"""Model I/O: the one place that knows how driftguard talks to a user's model.

Used by the span check (PredictionMonitor, DriftDetector), ``driftguard serve`` and
``driftguard monitor`` alike:

- **user code**: import the model module's functions (a file, as TFX's ``module_file``, or an
  import path), check them before any work (:func:`check_module`, no import: the file is
  parsed), and name the user's own file and line when their code raises (:class:`UserCodeError`);
- **encode**: raw rows (a flat Arrow table) -> serialized ``tf.Example`` (:func:`encode_examples`);
- **run the signature** (:class:`Predictor`) and **read its output per task**
  (:func:`read_outputs`): the positive-class probability (binary), the class probabilities
  with their argmax and maximum (multi-class), the value (regression);
- **labels** from raw rows for realized performance (:func:`labels_of`), per task;
- **a version's baseline**: profile, schema, reference sample, the model's predictions on
  it and its feature importance (:func:`load_baseline`), and how each feature is compared (:func:`feature_kinds`: the
  schema's categorical integers are categories).

TensorFlow is imported only by what runs a model; reading a baseline, checking a module and
computing labels do not need it.
"""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib
import importlib.util
import json
import linecache
import os
import pathlib
import sys
import traceback
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import numpy as np
import pyarrow as pa

from driftguard.components import tasks as tasks_lib

SPLIT_COLUMN = "__split__"     # the reference sample's split of each row (train / eval): not a feature
# Output names tried, in order, when model.output does not name one and the signature has several.
OUTPUT_NAMES = {
    tasks_lib.BINARY: ("probabilities", "probability", "scores", "outputs", "logistic"),
    tasks_lib.MULTICLASS: ("probabilities", "probability", "scores", "outputs"),
    tasks_lib.REGRESSION: ("predictions", "prediction", "outputs", "value", "scores"),
}


class ModelIOError(ValueError):
    """A model, its output or its baseline is not what the configuration says (message names it)."""


class UserCodeError(ModelIOError):
    """The user's module failed: the message names their file, line and function."""


# ---------------------------------------------------------------- what a model is


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """What driftguard needs to know about a model beyond its SavedModel (from the config's
    ``task``, ``classes`` and ``model`` sections). Travels into TFX executors as JSON."""

    task: str = tasks_lib.BINARY
    classes: tuple = ()
    signature: str = "serving_default"
    output: str = ""
    label_column: str = ""
    label_fn: str = ""           # function name in the module, or module.function
    module: str = ""             # absolute file path, or an import path
    project_dir: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelSpec":
        data = json.loads(text)
        data["classes"] = tuple(data.get("classes") or ())
        return cls(**data)

    @property
    def n_classes(self) -> int:
        return len(self.classes) if self.task == tasks_lib.MULTICLASS else 2 if self.task == tasks_lib.BINARY else 0


# ---------------------------------------------------------------- user code


def module_file(module: str, project_dir: os.PathLike = "") -> pathlib.Path:
    """The source file of ``module`` (a file path, or an import path found without importing it)."""
    if module.endswith(".py") or "/" in module or os.sep in module:
        path = pathlib.Path(module)
        return path if path.is_absolute() else pathlib.Path(project_dir) / path
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    except (ImportError, ValueError) as e:
        raise UserCodeError(f"model.module {module!r}: cannot find it: {e}") from None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise UserCodeError(f"model.module {module!r}: no such module in the project folder or the installed "
                            f"packages (a file path ends with .py: model.py)")
    return pathlib.Path(spec.origin)


def defined_names(path: pathlib.Path) -> Dict[str, int]:
    """Top-level names a Python file defines (functions, classes, assignments, imports) -> line."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as e:
        raise UserCodeError(f"{path}, line {e.lineno}: {e.msg}") from None
    names: Dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names[node.name] = node.lineno
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name):
                    names[t.id] = node.lineno
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = node.lineno
    return names


def check_module(module: str, project_dir: os.PathLike, functions: Sequence[str],
                 where: str = "model.module") -> pathlib.Path:
    """The module's file, after checking that it exists, parses and defines ``functions`` at
    its top level (read, not imported: no TensorFlow start-up, no side effect)."""
    path = module_file(module, project_dir)
    if not path.is_file():
        raise UserCodeError(f"{where}: {path} does not exist (relative paths are relative to the project "
                            f"folder {project_dir})")
    names = defined_names(path)
    missing = [f for f in functions if f not in names]
    if missing:
        why = ("TFX's module_file convention: def preprocessing_fn(inputs) for Transform, def run_fn(fn_args) "
               "for Trainer" if where == "model.module" else "a function of raw rows (a pyarrow.Table) "
               "returning the labels")
        raise UserCodeError(f"{where}: {path} defines no {', '.join(missing)} at its top level ({why})")
    return path


_LOADED: Dict[str, Any] = {}


def import_module(module: str, project_dir: os.PathLike = ""):
    """The user's module, imported once per process: a file under a name of its own (two projects'
    ``model.py`` never collide), an import path as itself. Errors name the user's file and line."""
    if not (module.endswith(".py") or "/" in module or os.sep in module):
        try:
            return importlib.import_module(module)
        except Exception as e:  # noqa: BLE001 - the user's code may raise anything
            raise UserCodeError(f"model.module {module!r}: importing it failed: {describe_user_error(e)}") from None
    path = module_file(module, project_dir).resolve()
    key = str(path)
    if key in _LOADED:
        return _LOADED[key]
    name = "driftguard_user_" + hashlib.sha1(key.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"model.module: cannot load {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001
        sys.modules.pop(name, None)
        raise UserCodeError(f"model.module {path}: importing it failed: {describe_user_error(e, path)}") from None
    _LOADED[key] = mod
    return mod


def import_function(ref: str, module: str, project_dir: os.PathLike = "", where: str = "model.label.fn") -> Callable:
    """``ref`` is a function of the model module (``labels``) or a full ``module.function``."""
    if "." in ref:
        mod_name, _, fn_name = ref.rpartition(".")
        mod = import_module(mod_name)
    else:
        mod, fn_name = import_module(module, project_dir), ref
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise UserCodeError(f"{where}: {getattr(mod, '__file__', mod.__name__)} defines no function {fn_name}")
    return fn


def describe_user_error(error: BaseException, path: Optional[os.PathLike] = None) -> str:
    """``ValueError: boom (model.py, line 17, in labels: return table['x'])``: the exception and the
    innermost frame of the user's file (or, without ``path``, the innermost frame outside
    driftguard, TensorFlow and the standard library)."""
    frames = traceback.extract_tb(error.__traceback__)
    frame = None
    want = str(pathlib.Path(path).resolve()) if path else None
    for f in reversed(frames):
        fname = str(pathlib.Path(f.filename).resolve()) if f.filename else ""
        if want is not None and fname == want:
            frame = f
            break
        if want is None and not _library_file(fname):
            frame = f
            break
    text = f"{type(error).__name__}: {error}"
    if frame is not None:
        line = (frame.line or linecache.getline(frame.filename, frame.lineno)).strip()
        text += f" ({pathlib.Path(frame.filename).name}, line {frame.lineno}, in {frame.name}: {line})"
    return text


def _library_file(filename: str) -> bool:
    """A file of driftguard, of an installed package or of the standard library (not user code)."""
    own = [str(pathlib.Path(__file__).resolve().parent)]
    for name in ("driftguard.pipeline", "driftguard.serving", "driftguard.monitoring"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            own.extend(str(pathlib.Path(p).resolve()) for p in spec.submodule_search_locations)
    roots = own + [sys.prefix, sys.base_prefix]
    return not filename or "site-packages" in filename or any(filename.startswith(r + os.sep) for r in roots)


def user_frame_from_text(text: str, path: Optional[os.PathLike]) -> Optional[str]:
    """The innermost ``File "<path>", line N, in fn`` of a traceback held as text (an error TFX
    stored in MLMD), as ``model.py, line N, in fn: <code>``; None when the user's file is absent."""
    if not text or not path:
        return None
    want = str(pathlib.Path(path).resolve())
    found = None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith('File "') and '", line ' in s:
            fname = s[6:s.index('", line ')]
            try:
                same = str(pathlib.Path(fname).resolve()) == want
            except OSError:
                same = False
            if same:
                rest = s[s.index('", line ') + 8:]
                number, _, fn = rest.partition(", in ")
                code = lines[i + 1].strip() if i + 1 < len(lines) and not lines[i + 1].strip().startswith("File ") else ""
                found = f"{pathlib.Path(fname).name}, line {number}, in {fn}" + (f": {code}" if code else "")
    return found


# ---------------------------------------------------------------- raw rows -> tf.Example


def _as_list_array(column) -> pa.Array:
    """One flat column as the list column tf.Example encoding takes (missing = no value)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    n = len(column)
    t = column.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):     # several values per row: kept as they are
        values = column.flatten()
        vt = values.type
        target = (pa.float32() if pa.types.is_floating(vt) else pa.int64() if pa.types.is_integer(vt)
                  else pa.binary())
        import pyarrow.compute as pc

        lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        return pa.ListArray.from_arrays(pa.array(offsets), values.cast(target))   # flatten() skips nulls
    if pa.types.is_null(t):
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.float32()))
    valid = np.asarray(column.is_valid(), dtype=bool) if column.null_count else np.ones(n, bool)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        as_float = column.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False)
        valid &= ~np.isnan(as_float)   # NaN is a missing value, as in ExampleGen
        values = column.filter(pa.array(valid)).cast(pa.float32())
    elif pa.types.is_integer(t) or pa.types.is_boolean(t):
        values = column.filter(pa.array(valid)).cast(pa.int64())
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
        values = column.filter(pa.array(valid)).cast(pa.binary())
    else:
        raise ModelIOError(f"cannot encode a column of type {t} as a tf.Example feature")
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(valid, out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def encode_examples(table: pa.Table, columns: Optional[Sequence[str]] = None) -> List[bytes]:
    """Serialized ``tf.Example`` s of a flat table, as ExampleGen writes them: ints as int64,
    floats as float, text as bytes; a missing value (null, NaN) is a feature with no value.
    tfx-bsl's C++ encoder: ~1 us per row where building protos in Python took ~25."""
    from tfx_bsl.coders import example_coder

    names = [c for c in (columns or table.column_names) if c != SPLIT_COLUMN and c in table.column_names]
    if table.num_rows == 0:
        return []
    arrays = [_as_list_array(table.column(c)) for c in names]
    batch = pa.RecordBatch.from_arrays(arrays, names)
    return example_coder.RecordBatchToExamples(batch)


_ARROW_LIST_TYPES = {"float": "float32", "int": "int64", "bytes": "large_binary"}


def encode_rows(rows: Sequence[Mapping[str, Optional[list]]], kinds: Mapping[str, str]) -> List[bytes]:
    """Serialized tf.Examples from rows of typed value lists (``{"fare": [12.5], "company": None}``;
    ``kinds``: feature -> 'float' | 'int' | 'bytes'), what serve builds from JSON instances.
    None or [] is a feature with no values, as ExampleGen writes an empty CSV cell."""
    from tfx_bsl.coders import example_coder

    names = sorted({k for r in rows for k in r})
    if not names:
        from tensorflow.core.example import example_pb2

        return [example_pb2.Example().SerializeToString()] * len(rows)
    columns = [pa.array([r.get(n) for r in rows], type=pa.large_list(getattr(pa, _ARROW_LIST_TYPES[kinds[n]])()))
               for n in names]
    return example_coder.RecordBatchToExamples(pa.RecordBatch.from_arrays(columns, names))


# ---------------------------------------------------------------- outputs per task


@dataclasses.dataclass
class Predictions:
    """A model's outputs for n rows, read per task.

    ``value``: the number monitored as "the prediction": the positive-class probability
    (binary), the predicted class index (multi-class), the predicted value (regression).
    ``confidence``: the top-class probability (classification; None for regression).
    ``probabilities``: (n, K) class probabilities (multi-class; binary: (n, 2)).
    """

    task: str
    value: np.ndarray
    confidence: Optional[np.ndarray] = None
    probabilities: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.value.size)

    @property
    def predicted_class(self) -> Optional[np.ndarray]:
        if self.task == tasks_lib.BINARY:
            return np.where(np.isfinite(self.value), (self.value > 0.5).astype(float), np.nan)
        if self.task == tasks_lib.MULTICLASS:
            return self.value
        return None

    def take(self, index) -> "Predictions":
        return Predictions(self.task, self.value[index],
                           None if self.confidence is None else self.confidence[index],
                           None if self.probabilities is None else self.probabilities[index])

    @staticmethod
    def concat(parts: Sequence["Predictions"], task: str) -> "Predictions":
        if not parts:
            return Predictions(task, np.zeros(0))
        def cat(name):
            arrays = [getattr(p, name) for p in parts]
            return None if any(a is None for a in arrays) else np.concatenate(arrays)
        return Predictions(task, cat("value"), cat("confidence"), cat("probabilities"))

    def to_arrays(self) -> Dict[str, np.ndarray]:
        out = {"value": self.value}
        if self.confidence is not None:
            out["confidence"] = self.confidence
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        return out

    @classmethod
    def from_arrays(cls, task: str, arrays: Mapping[str, np.ndarray]) -> "Predictions":
        return cls(task, np.asarray(arrays["value"], np.float64),
                   None if "confidence" not in arrays else np.asarray(arrays["confidence"], np.float64),
                   None if "probabilities" not in arrays else np.asarray(arrays["probabilities"], np.float64))


def pick_output(outputs: Mapping[str, Any], spec: ModelSpec) -> str:
    """The name of the output to read: ``model.output``, the only output, or the first of
    :data:`OUTPUT_NAMES` for the task. ModelIOError listing the outputs otherwise."""
    names = list(outputs)
    if spec.output:
        if spec.output not in outputs:
            raise ModelIOError(f"model.output {spec.output!r} is not an output of signature {spec.signature!r} "
                               f"(outputs: {', '.join(names) or 'none'})")
        return spec.output
    if len(names) == 1:
        return names[0]
    for name in OUTPUT_NAMES[spec.task]:
        if name in outputs:
            return name
    raise ModelIOError(f"signature {spec.signature!r} has several outputs ({', '.join(names)}); set model.output "
                       f"to the one holding the {'value' if spec.task == tasks_lib.REGRESSION else 'probabilities'}")


def read_outputs(values, n: int, spec: ModelSpec, where: str = "the model") -> Predictions:
    """One output tensor's values for ``n`` rows (any shape holding n*k numbers) read per task.

    - binary: one probability per row ((n,) or (n, 1)), or two ((n, 2): the second is the
      positive class);
    - multi-class: K = len(classes) probabilities per row;
    - regression: one value per row.
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    task = spec.task
    if n == 0:
        return Predictions(task, np.zeros(0), None if task == tasks_lib.REGRESSION else np.zeros(0))
    if arr.size % n:
        raise ModelIOError(f"{where}: {arr.size} output values for {n} rows")
    k = arr.size // n
    if task == tasks_lib.REGRESSION:
        if k != 1:
            raise ModelIOError(f"{where}: {k} values per row; a regression model (task: regression) outputs one "
                               f"(set model.output if the signature has another output for the value)")
        return Predictions(task, arr)
    if task == tasks_lib.BINARY:
        if k == 1:
            p = arr
        elif k == 2:
            p = arr.reshape(n, 2)[:, 1]
        else:
            raise ModelIOError(f"{where}: {k} values per row; a binary classifier outputs the positive-class "
                               f"probability (or two class probabilities); is the task multiclass?")
        if np.any((p < -1e-6) | (p > 1 + 1e-6)):
            raise ModelIOError(f"{where}: outputs outside [0, 1] ({np.nanmin(p):.3g} .. {np.nanmax(p):.3g}); "
                               f"driftguard reads probabilities (a sigmoid output), not logits")
        probs = np.stack([1.0 - p, p], axis=1)
        return Predictions(task, p, np.maximum(p, 1.0 - p), probs)
    n_classes = len(spec.classes)
    if k != n_classes:
        raise ModelIOError(f"{where}: {k} values per row, but classes lists {n_classes} "
                           f"({', '.join(spec.classes)}): the model's output must hold one probability per class")
    probs = arr.reshape(n, k)
    finite = np.isfinite(probs).all(axis=1)
    value = np.where(finite, np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1).astype(float), np.nan)
    conf = np.where(finite, np.max(np.nan_to_num(probs, nan=-1.0), axis=1), np.nan)
    return Predictions(task, value, conf, probs)


def predict_log(examples: Sequence[bytes], outputs: Mapping[str, np.ndarray], *, input_name: str,
                signature: str):
    """A ``PredictionLog`` of one Predict call, as TF Serving logs it: the request holding the
    serialized tf.Examples (a [n] string tensor under ``input_name``) and the response with every
    output ([n, ...]). ``driftguard serve`` adds its metadata and request ids; the PredictionMonitor
    logs one per scored batch."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    log = prediction_log_pb2.PredictionLog()
    request = log.predict_log.request
    request.model_spec.signature_name = signature
    tensor = request.inputs[input_name]
    tensor.dtype = tf.string.as_datatype_enum
    tensor.tensor_shape.dim.add().size = len(examples)
    tensor.string_val.extend(examples)
    response = log.predict_log.response
    response.model_spec.signature_name = signature
    for name, values in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(values)))
    return log


class Predictor:
    """A SavedModel's serving signature on serialized ``tf.Example`` s, read per task."""

    def __init__(self, model_dir: os.PathLike, spec: ModelSpec):
        import tensorflow as tf

        self.model_dir, self.spec = pathlib.Path(model_dir), spec
        try:
            self._model = tf.saved_model.load(str(model_dir))
        except Exception as e:  # noqa: BLE001 - TF raises many types
            raise ModelIOError(f"cannot load the SavedModel in {model_dir}: {type(e).__name__}: "
                               f"{str(e).strip().splitlines()[0][:300]}") from None
        signatures = self._model.signatures
        if spec.signature not in signatures:
            raise ModelIOError(f"model.signature {spec.signature!r} is not in {model_dir} "
                               f"(signatures: {', '.join(signatures) or 'none'})")
        self._fn = signatures[spec.signature]
        args = self._fn.structured_input_signature[1]
        if len(args) != 1:
            raise ModelIOError(f"signature {spec.signature!r} of {model_dir} takes {sorted(args)}; driftguard calls "
                               f"it with one input of serialized tf.Examples")
        self.input_name = next(iter(args))
        self.output_name = pick_output(self._fn.structured_outputs, spec)

    def outputs(self, serialized: Sequence[bytes]) -> Dict[str, np.ndarray]:
        """Every output of the signature (what TF Serving answers)."""
        import tensorflow as tf

        result = self._fn(**{self.input_name: tf.constant(list(serialized), dtype=tf.string)})
        return {k: v.numpy() for k, v in result.items()}

    def predict(self, serialized: Sequence[bytes], batch_size: int = 4096) -> Predictions:
        parts = []
        for start in range(0, len(serialized), batch_size):
            chunk = serialized[start:start + batch_size]
            out = self.outputs(chunk)
            parts.append(read_outputs(out[self.output_name], len(chunk), self.spec,
                                      where=f"output {self.output_name!r} of {self.model_dir}"))
        return Predictions.concat(parts, self.spec.task)

    def predict_table(self, table: pa.Table) -> Predictions:
        return self.predict(encode_examples(table))


# ---------------------------------------------------------------- labels from raw rows


def labels_of(table: pa.Table, spec: ModelSpec) -> Optional[np.ndarray]:
    """The label of every row as float (NaN: unknown), or None when no row has one yet (a span
    checked before its labels arrived). Binary: 0/1; multi-class: the class index in
    ``classes``; regression: the value. The column or function comes from ``model.label``."""
    if spec.label_column:
        if spec.label_column not in table.column_names:
            return None
        raw = table.column(spec.label_column)
    else:
        fn = import_function(spec.label_fn, spec.module, spec.project_dir)
        try:
            raw = fn(table)
        except Exception as e:  # noqa: BLE001 - the user's function may raise anything
            path = module_file(spec.module, spec.project_dir) if "." not in spec.label_fn else None
            raise UserCodeError(f"model.label.fn {spec.label_fn} failed on {table.num_rows} rows: "
                                f"{describe_user_error(e, path)}") from None
        if raw is None:
            return None
    return encode_labels(raw, spec, where=f"label {spec.label_column or spec.label_fn}")


# A binary label written as text (what the template's model.py reads as text too).
_BINARY_TEXT = {"true": 1.0, "t": 1.0, "yes": 1.0, "y": 1.0, "false": 0.0, "f": 0.0, "no": 0.0, "n": 0.0}


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def encode_labels(raw, spec: ModelSpec, where: str = "label") -> Optional[np.ndarray]:
    """Raw label values (Arrow, numpy or a list) as floats per task (NaN unknown); None if all unknown."""
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_floating(raw.type) or pa.types.is_integer(raw.type):
            as_float = raw.cast(pa.float64())
            if isinstance(as_float, pa.ChunkedArray):
                as_float = as_float.combine_chunks() if as_float.num_chunks else pa.array([], pa.float64())
            values = as_float.to_numpy(zero_copy_only=False)     # nulls -> NaN
        else:
            values = raw.to_pylist()
    else:
        values = raw
    task = spec.task
    if task == tasks_lib.MULTICLASS:
        index = {str(c): float(i) for i, c in enumerate(spec.classes)}
        out = np.full(len(values), np.nan)
        unknown = {}
        for i, v in enumerate(values):
            if v is None or (isinstance(v, float) and not np.isfinite(v)):
                continue
            key = str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer() \
                and str(int(v)) in index else str(v)
            if key in index:
                out[i] = index[key]
            else:
                unknown[key] = unknown.get(key, 0) + 1
        if unknown:
            shown = ", ".join(f"{k!r} ({c})" for k, c in sorted(unknown.items())[:5])
            raise ModelIOError(f"{where}: value(s) {shown} are not among classes ({', '.join(spec.classes)})")
    else:
        if task == tasks_lib.BINARY and not isinstance(values, np.ndarray):
            values = [_BINARY_TEXT.get(v.strip().lower(), v) if isinstance(v, (str, bytes)) else v
                      for v in (x.decode() if isinstance(x, bytes) else x for x in values)]
        try:
            out = np.array([np.nan if v is None else v for v in values], dtype=np.float64) \
                if not isinstance(values, np.ndarray) else values.astype(np.float64)
        except (TypeError, ValueError):
            bad_value = next((v for v in values if v is not None and not _is_number(v)), None)
            raise ModelIOError(f"{where}: labels of a {task} model must be "
                               + ("0/1 or true/false" if task == tasks_lib.BINARY else "numbers")
                               + f", got {bad_value!r}") from None
        if task == tasks_lib.BINARY:
            seen = out[np.isfinite(out)]
            bad = seen[(seen != 0) & (seen != 1)]
            if bad.size:
                raise ModelIOError(f"{where}: a binary label is 0 or 1 (or true/false), got {bad[0]:g} "
                                   f"({bad.size} such rows)")
    if not np.isfinite(out).any():
        return None
    return out


# ---------------------------------------------------------------- a version's baseline


@dataclasses.dataclass
class Baseline:
    """What a model version is compared with: its profile (``<registry>/<v>/profile/``)."""

    version: int
    model_dir: pathlib.Path
    profile: Dict[str, Any]
    schema: Any                               # tensorflow_metadata Schema proto
    reference: pa.Table                       # the reference sample (training window rows)
    summary: Dict[str, Any]                   # rows counted, missing values per feature
    predictions: Optional[Predictions] = None  # the model on the reference rows (when scored)
    importance: Optional[Dict[str, Any]] = None  # profile/feature_importance.json; None: pushed without it

    @property
    def split(self) -> Optional[np.ndarray]:
        if SPLIT_COLUMN not in self.reference.column_names:
            return None
        return np.asarray(self.reference.column(SPLIT_COLUMN).to_pylist(), dtype=object)

    @property
    def held_out(self) -> np.ndarray:
        """Rows of the eval split (the model did not train on them); all rows when unknown."""
        return held_out_rows(self.reference)


def held_out_rows(reference: pa.Table) -> np.ndarray:
    """The reference sample's rows of the eval split (the model did not train on them), as a
    boolean mask; all rows when the sample has no split column or no eval row."""
    if SPLIT_COLUMN not in reference.column_names:
        return np.ones(reference.num_rows, bool)
    mask = np.asarray(reference.column(SPLIT_COLUMN).to_pylist(), dtype=object) == "eval"
    return mask if mask.any() else np.ones(reference.num_rows, bool)


def held_out_note(reference: pa.Table) -> str:
    """Which reference rows :func:`held_out_rows` picked, for reports."""
    mask = held_out_rows(reference)
    if SPLIT_COLUMN in reference.column_names and not mask.all():
        return (f"{int(mask.sum())} held-out rows of the reference sample (the training window's eval split, "
                f"which the model did not train on)")
    return (f"all {reference.num_rows} rows of the reference sample (training rows: the sample has no eval "
            f"split, so the model's errors there are optimistic)")


PREDICTIONS_FILE = "predictions.npz"   # beside the reference sample: the model's outputs on it


def load_baseline(registry: os.PathLike, version: int, spec: Optional[ModelSpec] = None,
                  score: bool = False) -> Baseline:
    """Version ``version``'s profile, schema and reference sample; with ``score`` also the
    model's predictions on the sample (read from the profile, or computed and not stored)."""
    from driftguard.components.examples_io import read_sample
    from driftguard.components.registry_pusher.registry import (PROFILE_DIR, REFERENCE_SAMPLE_DIR,
                                                                read_profile)

    registry = pathlib.Path(registry)
    model_dir = registry / str(version)
    profile_dir = model_dir / PROFILE_DIR
    try:
        profile = read_profile(registry, version)
    except (OSError, ValueError) as e:
        raise ModelIOError(f"model version {version}: cannot read its profile in {profile_dir}: {e}") from None
    schema_file = profile_dir / "schema.pbtxt"
    try:
        schema = read_schema(schema_file)
    except (OSError, ValueError) as e:
        raise ModelIOError(f"model version {version}: cannot read {schema_file}: {e}") from None
    sample_dir = profile_dir / REFERENCE_SAMPLE_DIR
    if not sample_dir.is_dir():
        raise ModelIOError(f"{profile_dir} has no {REFERENCE_SAMPLE_DIR}/ (pushed by an older driftguard?); "
                           f"push a model again to give version {version} a drift baseline")
    try:
        table, summary = read_sample(str(sample_dir))
    except Exception as e:  # noqa: BLE001 - NotFoundError, OSError, ArrowInvalid
        raise ModelIOError(f"model version {version}: cannot read the reference sample in {sample_dir}: {e}") from None
    baseline = Baseline(version, model_dir, profile, schema, table, summary,
                        importance=read_importance(profile_dir, version))
    if score:
        if spec is None:
            raise ValueError("load_baseline(score=True) needs the model's spec")
        baseline.predictions = reference_predictions(baseline, spec)
    return baseline


def read_importance(profile_dir: os.PathLike, version: int) -> Optional[Dict[str, Any]]:
    """A version's permutation importance (``feature_importance.json``), or None: versions
    pushed before driftguard computed it have none."""
    from driftguard.components.registry_pusher.registry import IMPORTANCE_FILE

    path = pathlib.Path(profile_dir) / IMPORTANCE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelIOError(f"model version {version}: cannot read {path}: {e}") from None


def reference_predictions(baseline: Baseline, spec: ModelSpec) -> Predictions:
    """The model's predictions on its reference sample: stored at push (``predictions.npz``),
    or computed now (an older profile)."""
    from driftguard.components.registry_pusher.registry import PROFILE_DIR, REFERENCE_SAMPLE_DIR

    stored = baseline.model_dir / PROFILE_DIR / REFERENCE_SAMPLE_DIR / PREDICTIONS_FILE
    if stored.is_file():
        with np.load(stored, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        if arrays.get("value") is not None and arrays["value"].size == baseline.reference.num_rows \
                and str(arrays.get("task", spec.task)) == spec.task:
            return Predictions.from_arrays(spec.task, arrays)
    return Predictor(baseline.model_dir, spec).predict_table(baseline.reference)


def write_predictions(directory: os.PathLike, predictions: Predictions) -> pathlib.Path:
    path = pathlib.Path(directory) / PREDICTIONS_FILE
    np.savez(path, task=np.array(predictions.task), **predictions.to_arrays())
    return path


def read_schema(path: os.PathLike):
    """A ``schema.pbtxt`` as a tensorflow_metadata Schema proto (no TensorFlow import)."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        return text_format.Parse(pathlib.Path(path).read_text(), schema_pb2.Schema())
    except text_format.ParseError as e:
        raise ValueError(str(e)) from None


# ---------------------------------------------------------------- features and their kinds


def serving_features(schema) -> List[str]:
    """Names of the schema's features the SERVING environment expects, not deprecated."""
    names = []
    for feature in schema.feature:
        # PLANNED, DEPRECATED, DEBUG_ONLY, DISABLED (tensorflow_metadata LifecycleStage): not live features
        if feature.lifecycle_stage in (1, 5, 6, 7):
            continue
        if "SERVING" in feature.not_in_environment:
            continue
        if feature.in_environment and "SERVING" not in feature.in_environment:
            continue
        names.append(feature.name)
    return names


def compared_features(schema, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> List[str]:
    """The features drift is measured on: the schema's serving features (or ``include`` of
    them), minus ``exclude``, in schema order."""
    names = serving_features(schema)
    if include:
        keep = set(include)
        names = [n for n in names if n in keep]
    skip = set(exclude)
    return [n for n in names if n not in skip]


def categorical_ints(schema) -> List[str]:
    """INT features the schema marks as categories (``int_domain { is_categorical: true }``, or a
    named int_domain that is categorical): codes, not quantities."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    out = []
    domains = {d.name: d for d in schema.int_domain}
    for f in schema.feature:
        if f.type != schema_pb2.INT:
            continue
        if f.HasField("int_domain") and f.int_domain.is_categorical:
            out.append(f.name)
        elif f.HasField("domain") and f.domain in domains and domains[f.domain].is_categorical:
            out.append(f.name)
    return out


def feature_kinds(schema, overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
                  names: Optional[Sequence[str]] = None) -> Dict[str, Dict[str, Any]]:
    """``drift.features`` with ``kind: categorical`` added for the schema's categorical ints (an
    explicit ``kind`` in the config wins): the per-feature config ``detect_drift`` takes, for
    the features ``names`` (default: all)."""
    keep = None if names is None else set(names)
    out = {name: dict(settings) for name, settings in (overrides or {}).items() if keep is None or name in keep}
    for name in categorical_ints(schema):
        if keep is None or name in keep:
            out.setdefault(name, {}).setdefault("kind", "categorical")
    return out
