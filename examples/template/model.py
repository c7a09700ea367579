"""A generic model module for tabular data (TFX's module_file): ``preprocessing_fn`` for
Transform and ``run_fn`` for Trainer. It works for any table of numbers and strings without
editing: everything it needs to know comes from driftguard.yaml.

driftguard passes the project's facts to both functions under ``custom_config["driftguard"]``:
``task`` (binary | multiclass | regression), ``classes`` (multi-class: the label's values in
the output order), ``label_column`` (the raw column holding the label), ``label_key`` (the name
of the transformed label TFMA evaluates) and ``example_weight_key`` (the name of the weight
feature, ``label_weight``).

Features (every raw column except the label):

* text: a vocabulary over the training window (the ``VOCAB_TOP_K`` most frequent values seen at
  least ``VOCAB_MIN_COUNT`` times; the rest, and values new at serving time, share one
  out-of-vocabulary index; index 0 is "missing"), then a learned embedding;
* numbers (floats and integers): z-score over the training window, clipped to +-``Z_CLIP``;
  a missing value is the mean (0 after scaling), and a feature that can be missing (the schema
  does not require it) gets a 0/1 ``<name>_present`` indicator too.

The label (only when its column is in the data: serving requests do not carry it): binary ->
0.0/1.0 (numbers 0/1, or the text "0"/"1"/"true"/"false"); multiclass -> the index of the value
in ``classes`` (a fixed table, not a learned vocabulary, so output i is always ``classes[i]``);
regression -> the value. ``label_weight`` is 1.0 where the label is present and known, else
0.0: such rows count neither in training nor in TFMA's metrics.

Optional edits: ``EXCLUDE`` (columns that are not model inputs: ids, timestamps, columns that
leak the label) and ``CATEGORICAL_INTS`` (integer codes that are categories, not quantities).

Exported signatures (what driftguard and TFMA call):
  * ``serving_default``: serialized ``tf.Example`` (raw features, no label column) ->
    ``{"probabilities": [n, 1]}`` (binary: P(label = 1)), ``{"probabilities": [n, K]}``
    (multiclass: softmax over classes) or ``{"predictions": [n, 1]}`` (regression).
  * ``transform_features``: serialized ``tf.Example`` -> the transformed features, the label
    and ``label_weight`` (TFMA evaluates on raw examples through it).

Training settings come from ``training.custom_config`` in driftguard.yaml: batch_size,
hidden_units, learning_rate, seed, embedding_dim; driftguard adds ``warm_start_from`` (a
SavedModel folder) for the online retraining policy.
"""
from __future__ import annotations

import logging
import math
import os
import re
from typing import Dict, List, Optional, Tuple

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402  (TFT's transform layer needs Keras 2)

# ---- optional edits --------------------------------------------------------------------
# Raw columns that are not model inputs: ids, timestamps, columns that leak the label.
EXCLUDE: List[str] = []
# Integer columns that are codes (zip codes, product ids, weekdays), not quantities: they go
# through a vocabulary like text. Other integers are numbers (z-scored). The schema's
# int_domain { is_categorical: true } says the same to the drift detector, not to this module.
CATEGORICAL_INTS: List[str] = []
# ----------------------------------------------------------------------------------------

VOCAB_TOP_K = 1000        # at most this many values per text feature get their own index
VOCAB_MIN_COUNT = 5       # rarer values share the out-of-vocabulary index (so that index is trained)
VOCAB_OOV = 1             # out-of-vocabulary buckets
Z_CLIP = 5.0              # z-scores beyond +-5 (outliers, a new range at serving) are clipped
# Regression loss: Huber, squared error within HUBER_DELTA standard deviations of the target,
# absolute error beyond. Small: close to absolute error (MAE is driftguard's regression metric),
# so a heavy tail (a few huge values) does not pull every prediction up. Larger (or 1e9, i.e.
# squared error) if you gate on RootMeanSquaredError instead.
HUBER_DELTA = 0.25
WEIGHT_KEY = "label_weight"
# Binary labels as text (lower-cased). driftguard's own realized accuracy reads the raw column
# and needs numbers (0/1) or booleans there: prefer a 0/1 label column.
TRUE_STRINGS = (b"1", b"true", b"yes", b"y", b"t", b"1.0")
FALSE_STRINGS = (b"0", b"false", b"no", b"n", b"f", b"0.0")


def _facts(custom_config) -> Dict:
    facts = dict((custom_config or {}).get("driftguard") or {})
    if not facts.get("task"):
        raise ValueError("custom_config has no 'driftguard' facts (task, label_column, ...): this module is "
                         "meant to run in a driftguard pipeline, which passes them")
    if not facts.get("label_column"):
        raise ValueError("model.label.column is empty: this module reads the label from a raw column "
                         "(set model.label.column in driftguard.yaml, or write your own label code)")
    return facts


def _safe(name: str) -> str:
    """A name TF accepts for ops, Keras layers and vocabulary files (usually ``name`` itself)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return safe if re.match(r"[A-Za-z0-9.]", safe) else "f" + safe


def _xf(name: str) -> str:
    return f"{_safe(name)}_xf"


def _weight_key(facts) -> str:
    return facts.get("example_weight_key") or WEIGHT_KEY


# ---------------------------------------------------------------- preprocessing_fn


def _as_sparse(x) -> Optional[tf.sparse.SparseTensor]:
    """A feature that may be missing (sparse or ragged) as a SparseTensor of at most one value
    per row (the first); None for a dense feature, which every row has."""
    if isinstance(x, tf.RaggedTensor):
        x = x.to_sparse()
    if not isinstance(x, tf.sparse.SparseTensor):
        return None
    x = tf.sparse.retain(x, tf.equal(x.indices[:, 1], 0))
    return tf.SparseTensor(x.indices, x.values, tf.stack([x.dense_shape[0], tf.constant(1, tf.int64)]))


def _dense_column(x):
    """A dense feature as shape [batch] (its first value)."""
    if x.shape.rank is not None and x.shape.rank >= 2:
        return x[:, 0]
    return tf.reshape(x, [-1])


def _densify(sp: tf.sparse.SparseTensor, default):
    return tf.reshape(tf.sparse.to_dense(sp, default_value=default), [-1])


def _present(sp: tf.sparse.SparseTensor):
    ones = tf.SparseTensor(sp.indices, tf.ones_like(sp.values, tf.float32), sp.dense_shape)
    return _densify(ones, 0.0)


def _numeric(x) -> Tuple[tf.Tensor, Optional[tf.Tensor]]:
    """z-score (missing -> 0, the mean), clipped; and the presence indicator if it can be missing."""
    sp = _as_sparse(x)
    if sp is None:
        z = tft.scale_to_z_score(tf.cast(_dense_column(x), tf.float32))
        return tf.clip_by_value(z, -Z_CLIP, Z_CLIP), None
    values = tf.SparseTensor(sp.indices, tf.cast(sp.values, tf.float32), sp.dense_shape)
    z = _densify(tft.scale_to_z_score(values), 0.0)
    return tf.clip_by_value(z, -Z_CLIP, Z_CLIP), _present(sp)


def _vocabulary(x, name: str):
    """Vocabulary index + 1 (0: missing; the last index: out of vocabulary)."""
    sp = _as_sparse(x)
    if sp is None:
        sp = tf.sparse.from_dense(tf.reshape(_dense_column(x), [-1, 1]))
    if sp.values.dtype != tf.string:
        sp = tf.SparseTensor(sp.indices, tf.strings.as_string(sp.values), sp.dense_shape)
    idx = tft.compute_and_apply_vocabulary(sp, top_k=VOCAB_TOP_K, frequency_threshold=VOCAB_MIN_COUNT,
                                           num_oov_buckets=VOCAB_OOV, vocab_filename=_safe(name))
    return _densify(idx, tf.constant(-1, tf.int64)) + 1


def _label_text(values):
    """Label values as text: integers and whole floats without a decimal point ("2", not "2.0"),
    as driftguard's own label reader compares them with ``classes``."""
    if values.dtype == tf.string:
        return values
    if values.dtype.is_integer:
        return tf.strings.as_string(values)
    v = tf.cast(values, tf.float64)
    whole = tf.equal(v, tf.round(v)) & (tf.abs(v) < 1e15)
    return tf.where(whole, tf.strings.as_string(tf.cast(tf.where(whole, v, 0.0), tf.int64)),
                    tf.strings.as_string(v, shortest=True))


def _label(x, facts):
    """(label, weight): the label per task and 1.0 where it is present and known, else 0.0."""
    sp = _as_sparse(x)
    values = _dense_column(x) if sp is None else sp.values
    task = facts["task"]
    if task == "multiclass":
        classes = [str(c) for c in facts.get("classes") or []]
        table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(classes), tf.range(len(classes), dtype=tf.int64)),
            default_value=-1)
        label = table.lookup(_label_text(values))
        known = label >= 0
    elif values.dtype == tf.string:           # binary or regression from text
        text = tf.strings.lower(tf.strings.strip(values))
        if task == "binary":
            is_true = tf.reduce_any(tf.equal(text[:, None], tf.constant(TRUE_STRINGS)[None, :]), axis=1)
            is_false = tf.reduce_any(tf.equal(text[:, None], tf.constant(FALSE_STRINGS)[None, :]), axis=1)
            label, known = tf.cast(is_true, tf.float32), is_true | is_false
        else:
            number = tf.strings.to_number(tf.where(tf.strings.regex_full_match(
                text, r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"), text, "nan"), tf.float32)
            known = tf.math.is_finite(number)
            label = tf.where(known, number, 0.0)
    else:
        number = tf.cast(values, tf.float32)
        if task == "binary":
            known = tf.equal(number, 0.0) | tf.equal(number, 1.0)
        else:
            known = tf.math.is_finite(number)
        label = tf.where(known, number, 0.0)
    weight = tf.cast(known, tf.float32)
    if sp is not None:                         # back to one row per example, missing = unknown
        label = _densify(tf.SparseTensor(sp.indices, label, sp.dense_shape),
                         tf.constant(-1 if task == "multiclass" else 0, label.dtype))
        weight = _densify(tf.SparseTensor(sp.indices, weight, sp.dense_shape), 0.0)
    return label, weight


def preprocessing_fn(inputs: Dict[str, tf.Tensor], custom_config=None) -> Dict[str, tf.Tensor]:
    """tf.Transform: raw features -> model features (+ label and weight when the label column is present)."""
    facts = _facts(custom_config)
    label_column, label_key, weight_key = facts["label_column"], facts["label_key"], _weight_key(facts)
    if weight_key in inputs and weight_key != label_column:
        raise ValueError(f"model.example_weight_key {weight_key!r} is a raw column; this module writes the "
                         f"label weight under that name: name it {WEIGHT_KEY!r}")
    out: Dict[str, tf.Tensor] = {}

    def put(name, value):
        if name in out or name in (label_key, weight_key):
            raise ValueError(f"two outputs named {name!r}: rename a column or add it to EXCLUDE in model.py")
        out[name] = value

    for name in sorted(inputs):
        if name == label_column or name in EXCLUDE:
            continue
        x = inputs[name]
        if x.dtype == tf.string or name in CATEGORICAL_INTS:
            put(_xf(name), _vocabulary(x, name))
        else:
            z, present = _numeric(x)
            put(_xf(name), z)
            if present is not None:
                put(f"{_safe(name)}_present", present)
    if not out:
        raise ValueError(f"no model inputs: the data has only the label column {label_column!r} "
                         f"(and EXCLUDE: {EXCLUDE})")
    if label_column in inputs:
        out[label_key], out[weight_key] = _label(inputs[label_column], facts)
    return out


# ---------------------------------------------------------------- run_fn


def _feature_keys(tf_transform_output, facts) -> List[str]:
    skip = {facts["label_key"], _weight_key(facts)}
    return sorted(k for k in tf_transform_output.transformed_feature_spec() if k not in skip)


def _vocab_name(key: str) -> str:
    return key[:-len("_xf")]


def _dataset(file_pattern, data_accessor, tf_transform_output, facts, batch_size: int, seed: int):
    """(features, label, weight) batches, repeated."""
    from tfx_bsl.public import tfxio

    weight_key, multiclass = _weight_key(facts), facts["task"] == "multiclass"

    def split(features, label):
        features = dict(features)
        weight = features.pop(weight_key)
        if multiclass:     # unknown classes (-1) have weight 0; Keras wants a valid index anyway
            label = tf.maximum(label, 0)
        return features, label, weight

    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=facts["label_key"], shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema).map(split).repeat()


def _label_sample(dataset, batches: int) -> Tuple[np.ndarray, np.ndarray]:
    """Labels of the rows with weight > 0 in the first ``batches`` training batches."""
    labels, weights = [], []
    for _, label, weight in dataset.take(batches):
        labels.append(np.asarray(label).reshape(-1))
        weights.append(np.asarray(weight).reshape(-1))
    y, w = np.concatenate(labels), np.concatenate(weights)
    return y[w > 0].astype(np.float64), w[w > 0]


def build_model(tf_transform_output, facts, keys: List[str], cfg: Dict, labels: np.ndarray):
    """A small MLP: numeric inputs as they are, vocabulary features through embeddings."""
    task = facts["task"]
    dim = int(cfg.get("embedding_dim", 8))
    spec = tf_transform_output.transformed_feature_spec()
    inputs, parts = {}, []
    for key in keys:
        if spec[key].dtype == tf.int64:
            size = 1 + tf_transform_output.vocabulary_size_by_name(_vocab_name(key)) + VOCAB_OOV
            inp = keras.layers.Input(shape=(), name=key, dtype=tf.int64)
            parts.append(keras.layers.Embedding(size, dim, name=f"embed_{_vocab_name(key)}")(inp))
        else:
            inp = keras.layers.Input(shape=(), name=key, dtype=tf.float32)
            parts.append(keras.layers.Reshape((1,), name=f"reshape_{key}")(inp))
        inputs[key] = inp
    x = parts[0] if len(parts) == 1 else keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(cfg.get("hidden_units", [32, 16])):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{i}")(x)
    optimizer = keras.optimizers.Adam(learning_rate=float(cfg.get("learning_rate", 0.005)))
    if task == "binary":
        p = float(np.clip(labels.mean() if labels.size else 0.5, 0.01, 0.99))
        output = keras.layers.Dense(1, activation="sigmoid", name="probabilities",
                                    bias_initializer=keras.initializers.Constant(math.log(p / (1 - p))))(x)
        loss, metrics = "binary_crossentropy", [keras.metrics.BinaryAccuracy(name="accuracy")]
    elif task == "multiclass":
        k = len(facts["classes"])
        counts = np.bincount(labels.astype(np.int64), minlength=k)[:k] + 1.0   # +1: no class at -inf
        prior = np.log(counts / counts.sum())
        output = keras.layers.Dense(k, activation="softmax", name="probabilities",
                                    bias_initializer=keras.initializers.Constant(prior.tolist()))(x)
        loss, metrics = "sparse_categorical_crossentropy", [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    else:
        # The network predicts in standard units of the label, starting at the median; the last
        # layer rescales to the label's own unit (minutes, dollars...).
        center = float(np.median(labels))
        std = float(labels.std()) if labels.size > 1 and labels.std() > 0 else 1.0
        value = keras.layers.Dense(1, name="value")(x)
        output = keras.layers.Rescaling(std, offset=center, name="predictions")(value)
        loss = keras.losses.Huber(delta=HUBER_DELTA * std)
        metrics = [keras.metrics.MeanAbsoluteError(name="mae")]
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(optimizer=optimizer, loss=loss, weighted_metrics=metrics)
    return model


def _serving_signature(model, tf_transform_output, facts, keys):
    model.tft_layer_serving = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve(serialized):
        spec = tf_transform_output.raw_feature_spec()
        spec.pop(facts["label_column"], None)
        transformed = model.tft_layer_serving(tf.io.parse_example(serialized, spec))
        output = model({k: transformed[k] for k in keys})
        return {"predictions" if facts["task"] == "regression" else "probabilities": output}

    return serve


def _transform_signature(model, tf_transform_output):
    model.tft_layer_eval = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer_eval(raw)

    return transform


def _saved_vocabulary(saved_model_dir: str, name: str) -> Optional[List[bytes]]:
    path = os.path.join(saved_model_dir, "assets", name)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def _warm_start(model, saved_model_dir: str, tf_transform_output) -> None:
    """Start ``model`` from the weights of a saved one (the serving model, online retraining).

    Layers pair by name. An embedding is copied row by row through the two vocabularies (a new
    window's vocabulary may order, gain or lose values; a new value starts from the old
    out-of-vocabulary row, which is what the serving model used for it). Other layers are
    copied when every weight's shape matches; the rest start fresh, and the log says which.
    """
    previous = keras.models.load_model(saved_model_dir, compile=False)
    saved = {layer.name: layer for layer in previous.layers}
    copied, remapped, fresh = [], [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        old = saved.get(layer.name)
        old_w = old.get_weights() if old is not None else []
        new_w = layer.get_weights()
        if layer.name.startswith("embed_") and old is not None and old_w and old_w[0].shape[1] == new_w[0].shape[1]:
            name = layer.name[len("embed_"):]
            old_vocab = _saved_vocabulary(saved_model_dir, name)
            if old_vocab is not None and len(old_vocab) + 1 + VOCAB_OOV == old_w[0].shape[0]:
                old_index = {v: i + 1 for i, v in enumerate(old_vocab)}
                old_oov = len(old_vocab) + 1
                new_vocab = tf_transform_output.vocabulary_by_name(name)
                rows = [0] + [old_index.get(v, old_oov) for v in new_vocab] + [old_oov] * VOCAB_OOV
                if len(rows) == new_w[0].shape[0]:
                    layer.set_weights([old_w[0][rows]])
                    remapped.append(layer.name)
                    continue
        if old is not None and len(old_w) == len(new_w) and all(a.shape == b.shape for a, b in zip(old_w, new_w)):
            if layer.name == "value" and isinstance(saved.get("predictions"), keras.layers.Rescaling):
                old_w = _rescaled(old_w, saved["predictions"], model.get_layer("predictions"))
            layer.set_weights(old_w)
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    if not copied and not remapped:
        raise ValueError(f"warm start from {saved_model_dir}: no layer matches the new model")
    logging.info("warm start from %s: copied %s; remapped by vocabulary %s; fresh: %s",
                 saved_model_dir, copied, remapped or "none", fresh or "none")


def _rescaled(weights, old_scaling, new_scaling):
    """The regression head's weights for the new window's label scale: the same predictions."""
    old_std, old_mean = float(old_scaling.scale), float(old_scaling.offset)
    new_std, new_mean = float(new_scaling.scale), float(new_scaling.offset)
    kernel, bias = weights
    return [kernel * old_std / new_std, (bias * old_std + old_mean - new_mean) / new_std]


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    cfg = dict(fn_args.custom_config or {})
    facts = _facts(cfg)
    seed = int(cfg.get("seed", 42))
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = int(cfg.get("batch_size", 64))
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output, facts, batch_size, seed)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output, facts, batch_size, seed)
    labels, _ = _label_sample(train, batches=max(1, min(100, fn_args.train_steps)))
    if not labels.size:
        raise ValueError(f"no training row has a known label in {facts['label_column']!r} (task {facts['task']}"
                         + (f", classes {facts['classes']}" if facts["task"] == "multiclass" else "")
                         + "): check model.label.column, task and classes in driftguard.yaml")
    keys = _feature_keys(tf_transform_output, facts)
    model = build_model(tf_transform_output, facts, keys, cfg, labels)
    warm_from = cfg.get("warm_start_from")
    if warm_from:
        _warm_start(model, str(warm_from), tf_transform_output)
    history = model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
                        validation_steps=fn_args.eval_steps, epochs=1, verbose=0)
    logging.info("trained %d steps: %s", fn_args.train_steps,
                 {k: round(float(v[-1]), 4) for k, v in history.history.items()})
    signatures = {
        "serving_default": _serving_signature(model, tf_transform_output, facts, keys),
        "transform_features": _transform_signature(model, tf_transform_output),
    }
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
