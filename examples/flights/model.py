"""The flight arrival-delay model: the module of driftguard's flights example (TFX's module_file).

A driftguard project's model module is what a TFX pipeline's module_file is: ``preprocessing_fn``
for Transform and ``run_fn`` for Trainer. The label here is a raw column, ``arr_delay``, so the
module needs no ``labels`` function: driftguard reads the column itself for the realized MAE.

The task is regression: the arrival delay in minutes (negative: early) of a flight leaving
New York, from what is known when it is scheduled and the weather at the origin in the hour of
departure. Cancelled and diverted flights have no arrival delay: their ``arr_delay`` is null.
They stay in the data (they are real traffic, and their share is itself worth monitoring) and
``preprocessing_fn`` gives them ``label_weight`` 0, so they count neither in training nor in
TFMA's metrics (driftguard.yaml: ``example_weight_key: label_weight``).

Exported signatures:
  * ``serving_default``: serialized ``tf.Example`` (raw features, no ``arr_delay``) ->
    ``{"predictions": float32[batch, 1]}`` (the predicted arrival delay in minutes).
  * ``transform_features``: serialized ``tf.Example`` -> transformed features, the label
    ``arr_delay_label`` and the weight ``label_weight``, used by TFMA to evaluate on raw examples.

Training settings come from ``training.custom_config`` in driftguard.yaml (batch_size,
hidden_units, learning_rate, seed); driftguard adds ``warm_start_from`` (a SavedModel folder)
for the online retraining policy.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402  (TFT's transform layer needs Keras 2)

LABEL_SOURCE = "arr_delay"
LABEL_KEY = "arr_delay_label"
WEIGHT_KEY = "label_weight"

# Numeric features: name -> (value when missing, transform before the z-score).
# The weather is missing for the ~0.5 % of flights whose hour has no observation. A missing
# precip or wind speed is taken as 0: dry and calm are the most common hours. A missing
# visibility is taken as 10 miles, the reported maximum and ~90 % of the hours.
# The distance is never missing (the schema requires it).
NUMERIC_FEATURES = {
    "distance": (0.0, "log1p"),        # 17-4,983 miles: log, or Honolulu dominates the scale
    "wind_speed": (0.0, "log1p"),      # mph, long right tail
    "precip": (0.0, "log1p_cents"),    # inches per hour, 0 in 93 % of hours: log of hundredths
    "visib": (10.0, "identity"),       # miles, 0-10
}
# z-scores are clipped to +-Z_CLIP: a summer downpour is up to 11 standard deviations of a
# January-February window's precipitation (1.4 % of 2013's flights are beyond 5), and a ReLU
# network extrapolates linearly without bound beyond what it saw. Clipped, it counts as the
# heavy rain the window did hold.
Z_CLIP = 5.0
# Integer codes with a known range: name -> (offset added to the value, number of indices).
# Index 0 is "missing"; a value outside the range is treated as missing too.
CATEGORICAL_INT_FEATURES = {
    "sched_dep_hour": (1, 25),         # 0-23 -> 1-24
    "day_of_week": (0, 8),             # ISO 1 (Monday) - 7
}
# Strings through a vocabulary: name -> embedding width. Values seen fewer than
# VOCAB_MIN_COUNT times in the training window share the out-of-vocabulary index, so that
# index is trained on rare airports and carriers and means something for new ones at serving.
VOCAB_FEATURES = {"carrier": 4, "origin": 2, "dest": 8}
VOCAB_MIN_COUNT = 30
VOCAB_OOV = 1
# Not model inputs: month and day. A 2-month window cannot learn a month effect, and the
# one-hot inputs of the ten months it never saw would keep their random initial weights.
# (No temperature either: data.py explains why it is not in the data.)

# Delays are in minutes with a standard deviation of ~45: the network works in units of
# DELAY_SCALE minutes so that its last layer starts at the right order of magnitude.
DELAY_SCALE = 30.0
# Huber loss: quadratic within HUBER_DELTA minutes of the target, linear beyond. Delays have a
# heavy right tail (2013: median -5 min, mean +7, a few above 1,000): squared error would chase
# the storm days and pull every prediction up, which is bad for MAE, the metric that matters.
# Huber is absolute error for the tail and smooth near the target, where absolute error's
# gradient flips between -1 and +1. On January-February both reach the same eval MAE (20.9).
HUBER_DELTA = 10.0


def _xf(name: str) -> str:
    return f"{name}_xf"


def _dense(x, default):
    """Densify a (possibly sparse) feature of value count 0 or 1 into shape [batch]."""
    if isinstance(x, tf.sparse.SparseTensor):
        x = tf.sparse.to_dense(
            tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1]), default_value=default)
    elif isinstance(x, tf.RaggedTensor):
        x = x.to_tensor(default_value=default, shape=[None, 1])
    return tf.reshape(x, [-1])


def _present(x):
    """1.0 where a (possibly sparse) feature of value count 0 or 1 has a value, else 0.0."""
    if isinstance(x, tf.sparse.SparseTensor):
        ones = tf.SparseTensor(x.indices, tf.ones_like(x.values, tf.float32), [x.dense_shape[0], 1])
        return tf.reshape(tf.sparse.to_dense(ones), [-1])
    if isinstance(x, tf.RaggedTensor):
        return tf.cast(x.row_lengths() > 0, tf.float32)
    return tf.ones_like(tf.reshape(x, [-1]), tf.float32)


def _numeric(x, how: str):
    x = tf.cast(x, tf.float32)
    if how == "log1p":
        return tf.math.log1p(tf.maximum(x, 0.0))
    if how == "log1p_cents":
        return tf.math.log1p(100.0 * tf.maximum(x, 0.0))
    return x


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """tf.Transform: raw features -> model features (+ label and weight when ``arr_delay`` is present)."""
    out = {}
    for key, (default, how) in NUMERIC_FEATURES.items():
        x = inputs[key]
        x = _numeric(_dense(x, tf.cast(tf.constant(default), x.dtype)), how)
        out[_xf(key)] = tf.clip_by_value(tft.scale_to_z_score(x), -Z_CLIP, Z_CLIP)
    for key, (offset, size) in CATEGORICAL_INT_FEATURES.items():
        x = inputs[key]
        idx = tf.cast(_dense(x, tf.constant(-1, x.dtype)), tf.int64) + offset
        out[_xf(key)] = tf.where((idx >= 1) & (idx < size), idx, tf.zeros_like(idx))
    for key in VOCAB_FEATURES:
        x = _dense(inputs[key], tf.constant(b"", tf.string))
        out[_xf(key)] = tft.compute_and_apply_vocabulary(
            x, frequency_threshold=VOCAB_MIN_COUNT, num_oov_buckets=VOCAB_OOV, vocab_filename=key)
    if LABEL_SOURCE in inputs:
        y = inputs[LABEL_SOURCE]
        out[LABEL_KEY] = tf.cast(_dense(y, tf.constant(0, y.dtype)), tf.float32)
        out[WEIGHT_KEY] = _present(y)
    return out


def _vocab_sizes(tf_transform_output) -> Dict[str, int]:
    return {key: tf_transform_output.vocabulary_size_by_name(key) + VOCAB_OOV for key in VOCAB_FEATURES}


def build_model(tf_transform_output, hidden_units: List[int], learning_rate: float):
    inputs, parts = {}, []
    for key in NUMERIC_FEATURES:
        inp = keras.layers.Input(shape=(), name=_xf(key), dtype=tf.float32)
        inputs[_xf(key)] = inp
        parts.append(keras.layers.Reshape((1,))(inp))
    for key, (_, size) in CATEGORICAL_INT_FEATURES.items():
        inp = keras.layers.Input(shape=(), name=_xf(key), dtype=tf.int64)
        inputs[_xf(key)] = inp
        parts.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(
            keras.layers.Reshape((1,))(inp)))
    for key, size in _vocab_sizes(tf_transform_output).items():
        inp = keras.layers.Input(shape=(), name=_xf(key), dtype=tf.int64)
        inputs[_xf(key)] = inp
        parts.append(keras.layers.Embedding(size, VOCAB_FEATURES[key], name=f"embed_{key}")(inp))
    x = keras.layers.Concatenate()(parts)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{i}")(x)
    x = keras.layers.Dense(1, name="delay")(x)
    output = keras.layers.Rescaling(DELAY_SCALE, name="predictions")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=keras.losses.Huber(delta=HUBER_DELTA),
        weighted_metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    return model


def _dataset(file_pattern, data_accessor, tf_transform_output, batch_size: int, seed: int):
    """(features, label, weight) batches: cancelled flights come with weight 0."""
    from tfx_bsl.public import tfxio

    def with_weight(features, label):
        features = dict(features)
        weight = features.pop(WEIGHT_KEY)
        return features, label, weight

    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY,
                                       shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema).map(with_weight).repeat()


def _serving_signature(model, tf_transform_output):
    model.tft_layer_serving = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve(serialized):
        spec = tf_transform_output.raw_feature_spec()
        spec.pop(LABEL_SOURCE, None)
        raw = tf.io.parse_example(serialized, spec)
        transformed = model.tft_layer_serving(raw)
        transformed.pop(LABEL_KEY, None)
        transformed.pop(WEIGHT_KEY, None)
        return {"predictions": model(transformed)}

    return serve


def _transform_signature(model, tf_transform_output):
    model.tft_layer_eval = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer_eval(raw)

    return transform


def _saved_vocabulary(saved_model_dir: str, name: str):
    """The vocabulary ``name`` the model in ``saved_model_dir`` was trained with (its asset), or None."""
    path = os.path.join(saved_model_dir, "assets", name)
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def _warm_start(model, saved_model_dir: str, tf_transform_output) -> None:
    """Copy the weights of the serving model (online retraining) into ``model``.

    Layers pair by name. The embeddings are copied row by row through the two vocabularies:
    a new window's vocabulary is ordered by frequency and may gain or lose airports, so row i
    of the old table is not row i of the new one. A value new to the vocabulary starts from
    the old out-of-vocabulary row, which is what the serving model used for it. The other
    layers have fixed shapes and are copied whole; a mismatch is logged and that layer
    starts fresh.
    """
    previous = keras.models.load_model(saved_model_dir, compile=False)
    old_layers = {layer.name: layer for layer in previous.layers if layer.weights}
    copied, remapped, fresh = [], [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        old = old_layers.get(layer.name)
        if old is None:
            fresh.append(layer.name)
            continue
        old_w, new_w = old.get_weights(), layer.get_weights()
        feature = layer.name[len("embed_"):] if layer.name.startswith("embed_") else None
        old_vocab = _saved_vocabulary(saved_model_dir, feature) if feature in VOCAB_FEATURES else None
        if old_vocab is not None and len(old_w) == 1 and old_w[0].shape[0] == len(old_vocab) + VOCAB_OOV \
                and old_w[0].shape[1:] == new_w[0].shape[1:]:
            new_vocab = [bytes(v) for v in tf_transform_output.vocabulary_by_name(feature)]
            old_rows = {token: i for i, token in enumerate(old_vocab)}
            oov = old_w[0][len(old_vocab):].mean(axis=0)
            table = np.stack([old_w[0][old_rows[t]] if t in old_rows else oov for t in new_vocab]
                             + [oov] * VOCAB_OOV)
            layer.set_weights([table.astype(new_w[0].dtype)])
            remapped.append(layer.name)
        elif len(old_w) == len(new_w) and all(a.shape == b.shape for a, b in zip(old_w, new_w)):
            layer.set_weights(old_w)
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    if not copied and not remapped:
        raise ValueError(f"warm start from {saved_model_dir}: no layer matches the new model")
    logging.info("warm start from %s: copied %s; remapped by vocabulary %s; fresh: %s",
                 saved_model_dir, copied, remapped or "none", fresh or "none")


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    cfg = dict(fn_args.custom_config or {})
    seed = int(cfg.get("seed", 42))
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = int(cfg.get("batch_size", 256))
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                     batch_size, seed)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                          batch_size, seed)
    model = build_model(tf_transform_output, list(cfg.get("hidden_units", [64, 32])),
                        float(cfg.get("learning_rate", 0.003)))
    warm_from = cfg.get("warm_start_from")
    if warm_from:
        _warm_start(model, str(warm_from), tf_transform_output)
    history = model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
                        validation_steps=fn_args.eval_steps, epochs=1, verbose=0)
    logging.info("trained %d steps: %s", fn_args.train_steps,
                 {k: round(float(v[-1]), 4) for k, v in history.history.items()})
    signatures = {
        "serving_default": _serving_signature(model, tf_transform_output),
        "transform_features": _transform_signature(model, tf_transform_output),
    }
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)
