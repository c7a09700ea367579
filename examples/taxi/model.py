"""The taxi "big tipper" model: the module of driftguard's taxi example (TFX's module_file).

A driftguard project's model module is what a TFX pipeline's module_file is: ``preprocessing_fn``
for Transform and ``run_fn`` for Trainer. driftguard adds one optional function, ``labels``,
which computes the label from raw rows (a ``pyarrow.Table``) when the label is not a raw column:
the span check and the live monitor use it for realized accuracy. driftguard.yaml names them.

The label is ``big_tipper``: the tip is more than 20 % of the fare (as in the TFX taxi
example). It is derived from the raw ``tips`` column, which exists only in the TRAINING
environment; serving requests carry every other feature.

Exported signatures:
  * ``serving_default``: serialized ``tf.Example`` (raw features, no ``tips``) ->
    ``{"probabilities": float32[batch, 1]}`` (probability of a big tip).
  * ``transform_features``: serialized ``tf.Example`` -> transformed features and label,
    used by TFMA to evaluate on raw examples.

Training settings come from ``training.custom_config`` in driftguard.yaml (batch_size,
hidden_units, learning_rate); driftguard adds ``warm_start_from`` (a SavedModel folder) for
the online retraining policy.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402  (TFT's transform layer needs Keras 2)

LABEL_SOURCE = "tips"
LABEL_KEY = "big_tipper"
BIG_TIP_SHARE = 0.2      # big_tipper: tips > BIG_TIP_SHARE * fare

# log1p then z-score: fare, miles and seconds are heavy-tailed (fare up to 700, miles 1,710).
DENSE_FLOAT_FEATURES = ["fare", "trip_miles", "trip_seconds"]
# Integer categories with a known range: feature -> number of values (index 0 = missing).
CATEGORICAL_INT_FEATURES = {
    "trip_start_hour": 24,
    "trip_start_day": 8,
    "trip_start_month": 13,
    "pickup_community_area": 78,
    "dropoff_community_area": 78,
}
BUCKET_FEATURES = ["pickup_latitude", "pickup_longitude", "dropoff_latitude", "dropoff_longitude"]
BUCKET_COUNT = 10
VOCAB_FEATURES = ["payment_type", "company"]
VOCAB_TOP_K = 100
VOCAB_OOV = 1


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


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """tf.Transform: raw features -> model features (+ label when ``tips`` is present)."""
    out = {}
    for key in DENSE_FLOAT_FEATURES:
        x = tf.cast(_dense(inputs[key], tf.constant(0.0, inputs[key].dtype)), tf.float32)
        out[_xf(key)] = tft.scale_to_z_score(tf.math.log1p(tf.maximum(x, 0.0)))
    for key, size in CATEGORICAL_INT_FEATURES.items():
        x = _dense(inputs[key], tf.constant(0, inputs[key].dtype))
        idx = tf.cast(x, tf.int64)
        out[_xf(key)] = tf.where((idx >= 0) & (idx < size), idx, tf.zeros_like(idx))
    for key in BUCKET_FEATURES:
        x = tf.cast(_dense(inputs[key], tf.constant(0.0, inputs[key].dtype)), tf.float32)
        present = tf.not_equal(x, 0.0)
        # Bucket 0 is "missing"; real coordinates land in 1..BUCKET_COUNT.
        b = tft.bucketize(x, BUCKET_COUNT) + 1
        out[_xf(key)] = tf.where(present, b, tf.zeros_like(b))
    for key in VOCAB_FEATURES:
        x = _dense(inputs[key], tf.constant(b"", tf.string))
        out[_xf(key)] = tft.compute_and_apply_vocabulary(
            x, top_k=VOCAB_TOP_K, num_oov_buckets=VOCAB_OOV, vocab_filename=key)
    if LABEL_SOURCE in inputs:
        tips = tf.cast(_dense(inputs[LABEL_SOURCE], tf.constant(0.0, inputs[LABEL_SOURCE].dtype)),
                       tf.float32)
        fare = tf.cast(_dense(inputs["fare"], tf.constant(0.0, inputs["fare"].dtype)), tf.float32)
        out[LABEL_KEY] = tf.cast(tips > BIG_TIP_SHARE * fare, tf.int64)
    return out


def _feature_sizes(tf_transform_output) -> Dict[str, int]:
    sizes = {}
    for key, size in CATEGORICAL_INT_FEATURES.items():
        sizes[_xf(key)] = size
    for key in BUCKET_FEATURES:
        sizes[_xf(key)] = BUCKET_COUNT + 2
    for key in VOCAB_FEATURES:
        sizes[_xf(key)] = tf_transform_output.vocabulary_size_by_name(key) + VOCAB_OOV
    return sizes


def build_model(tf_transform_output, hidden_units: List[int], learning_rate: float):
    inputs, parts = {}, []
    for key in DENSE_FLOAT_FEATURES:
        inp = keras.layers.Input(shape=(), name=_xf(key), dtype=tf.float32)
        inputs[_xf(key)] = inp
        parts.append(keras.layers.Reshape((1,))(inp))
    for name, size in _feature_sizes(tf_transform_output).items():
        inp = keras.layers.Input(shape=(), name=name, dtype=tf.int64)
        inputs[name] = inp
        parts.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot")(
            keras.layers.Reshape((1,))(inp)))
    x = keras.layers.Concatenate()(parts)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{i}")(x)
    output = keras.layers.Dense(1, activation="sigmoid", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy")])
    return model


def _dataset(file_pattern, data_accessor, tf_transform_output, batch_size: int, seed: int):
    from tfx_bsl.public import tfxio

    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=LABEL_KEY,
                                       shuffle_seed=seed),
        tf_transform_output.transformed_metadata.schema).repeat()


def _serving_signature(model, tf_transform_output):
    model.tft_layer_serving = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def serve(serialized):
        spec = tf_transform_output.raw_feature_spec()
        spec.pop(LABEL_SOURCE, None)
        raw = tf.io.parse_example(serialized, spec)
        transformed = model.tft_layer_serving(raw)
        transformed.pop(LABEL_KEY, None)
        return {"probabilities": model(transformed)}

    return serve


def _transform_signature(model, tf_transform_output):
    model.tft_layer_eval = tf_transform_output.transform_features_layer()

    @tf.function(input_signature=[tf.TensorSpec(shape=[None], dtype=tf.string, name="examples")])
    def transform(serialized):
        raw = tf.io.parse_example(serialized, tf_transform_output.raw_feature_spec())
        return model.tft_layer_eval(raw)

    return transform


def _warm_start(model, saved_model_dir: str) -> None:
    """Copy the weights of the serving model (online retraining) into ``model``.

    Layers with weights are paired in order when both models have the same number of them
    (models saved before the hidden layers had fixed names), else by name; a pair is copied
    when every weight's shape matches (the vocabulary sizes are fixed by top_k + OOV buckets,
    so they usually do). A mismatch is logged and that layer starts fresh.
    """
    previous = keras.models.load_model(saved_model_dir, compile=False)
    old_layers = [layer for layer in previous.layers if layer.weights]
    new_layers = [layer for layer in model.layers if layer.weights]
    if len(old_layers) == len(new_layers):
        pairs = list(zip(old_layers, new_layers))
    else:
        by_name = {layer.name: layer for layer in old_layers}
        pairs = [(by_name[layer.name], layer) for layer in new_layers if layer.name in by_name]
    copied, skipped = [], [layer.name for layer in new_layers]
    for old, new in pairs:
        old_w, new_w = old.get_weights(), new.get_weights()
        if len(old_w) == len(new_w) and all(a.shape == b.shape for a, b in zip(old_w, new_w)):
            new.set_weights(old_w)
            copied.append(new.name)
            skipped.remove(new.name)
    if not copied:
        raise ValueError(f"warm start from {saved_model_dir}: no layer matches the new model")
    logging.info("warm start from %s: copied %s; fresh: %s", saved_model_dir, copied, skipped or "none")


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    cfg = dict(fn_args.custom_config or {})
    seed = int(cfg.get("seed", 42))
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = int(cfg.get("batch_size", 64))
    train = _dataset(fn_args.train_files, fn_args.data_accessor, tf_transform_output,
                     batch_size, seed)
    evaluation = _dataset(fn_args.eval_files, fn_args.data_accessor, tf_transform_output,
                          batch_size, seed)
    model = build_model(tf_transform_output, list(cfg.get("hidden_units", [32, 16])),
                        float(cfg.get("learning_rate", 0.01)))
    warm_from = cfg.get("warm_start_from")
    if warm_from:
        _warm_start(model, str(warm_from))
    history = model.fit(train, steps_per_epoch=fn_args.train_steps, validation_data=evaluation,
                        validation_steps=fn_args.eval_steps, epochs=1, verbose=0)
    logging.info("trained %d steps: %s", fn_args.train_steps,
                 {k: round(float(v[-1]), 4) for k, v in history.history.items()})
    signatures = {
        "serving_default": _serving_signature(model, tf_transform_output),
        "transform_features": _transform_signature(model, tf_transform_output),
    }
    model.save(fn_args.serving_model_dir, save_format="tf", signatures=signatures)


def labels(table):
    """The label from raw rows (a ``pyarrow.Table``): 1.0 big tipper, 0.0 not, NaN no tip
    recorded; None before labels arrive (no ``tips`` column). The same rule as preprocessing_fn."""
    import numpy as np
    import pyarrow as pa

    if "tips" not in table.column_names:
        return None

    def floats(name):
        return table.column(name).cast(pa.float64()).to_numpy()

    tips = floats("tips")
    fare = np.nan_to_num(floats("fare"), nan=0.0) if "fare" in table.column_names else np.zeros(len(tips))
    out = (tips > BIG_TIP_SHARE * fare).astype(float)
    out[np.isnan(tips)] = np.nan
    return out
