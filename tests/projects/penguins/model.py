"""The penguins species classifier: the module of driftguard's multi-class test project
(TFX's module_file): ``preprocessing_fn`` for Transform and ``run_fn`` for Trainer.

The label is the raw column ``species`` (Adelie, Chinstrap or Gentoo), which exists only in the
TRAINING environment. ``preprocessing_fn`` turns it into ``species_xf``, the index of the
species in the FIXED order ``CLASSES``, which is driftguard.yaml's ``classes``: the model's
i-th probability belongs to ``CLASSES[i]`` whatever species the training window holds (a
learned vocabulary would order them by frequency, and the order could change between windows).
driftguard reads realized labels from the raw column (``model.label.column``), so the module
needs no ``labels`` function.

Features: the four measurements, z-scored over the training window (a missing measurement is
0 after scaling, i.e. the window's mean), and ``island`` and ``sex`` through a vocabulary
(index 0 = missing, then the vocabulary, then one out-of-vocabulary bucket), one-hot encoded.
``year`` is not a feature: it is the span key and says nothing about the species.

Exported signatures:
  * ``serving_default``: serialized ``tf.Example`` (raw features, no ``species``) ->
    ``{"probabilities": float32[batch, 3]}`` (softmax over CLASSES).
  * ``transform_features``: serialized ``tf.Example`` -> transformed features and
    ``species_xf``, used by TFMA to evaluate on raw examples.

Training settings come from ``training.custom_config`` in driftguard.yaml (batch_size,
hidden_units, learning_rate, seed); driftguard adds ``warm_start_from`` (a SavedModel folder)
for the online retraining policy.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import tensorflow as tf  # noqa: E402
import tensorflow_transform as tft  # noqa: E402
import tf_keras as keras  # noqa: E402  (TFT's transform layer needs Keras 2)

LABEL_SOURCE = "species"
LABEL_KEY = "species_xf"
CLASSES = ("Adelie", "Chinstrap", "Gentoo")     # = driftguard.yaml classes, the output order

NUMERIC_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
VOCAB_FEATURES = ["island", "sex"]
VOCAB_OOV = 1
# Vocabulary indices are shifted by one so that 0 means "missing": 1 + vocabulary + OOV.
VOCAB_MISSING = 1


def _xf(name: str) -> str:
    return f"{name}_xf"


def _sparse(x):
    """A feature of at most one value per example as a SparseTensor, or None if dense."""
    if isinstance(x, tf.RaggedTensor):
        return x.to_sparse()
    if isinstance(x, tf.sparse.SparseTensor):
        return x
    return None


def _to_dense(x, default):
    """A SparseTensor of at most one value per example -> shape [batch], ``default`` if absent."""
    full = tf.SparseTensor(x.indices, x.values, [x.dense_shape[0], 1])
    return tf.reshape(tf.sparse.to_dense(full, default_value=default), [-1])


def _scaled(x):
    """z-score over the present values; a missing value becomes 0 (the mean) after scaling."""
    sp = _sparse(x)
    if sp is None:
        return tf.reshape(tft.scale_to_z_score(tf.cast(x, tf.float32)), [-1])
    sp = tf.SparseTensor(sp.indices, tf.cast(sp.values, tf.float32), sp.dense_shape)
    return _to_dense(tft.scale_to_z_score(sp), 0.0)


def _indexed(x, name: str):
    """Vocabulary index + 1 over the present values; 0 for a missing value."""
    sp = _sparse(x)
    if sp is None:
        sp = tf.sparse.from_dense(tf.reshape(x, [-1, 1]))
    idx = tft.compute_and_apply_vocabulary(sp, num_oov_buckets=VOCAB_OOV, vocab_filename=name)
    return _to_dense(idx, tf.constant(-1, tf.int64)) + VOCAB_MISSING


def _class_index(x):
    """The index of each species in CLASSES (fixed order); -1 for a missing or unknown one
    (the schema's species domain rejects unknown species before training)."""
    sp = _sparse(x)
    names = _to_dense(sp, b"") if sp is not None else tf.reshape(x, [-1])
    index = tf.fill(tf.shape(names), tf.constant(-1, tf.int64))
    for i, name in enumerate(CLASSES):
        index = tf.where(tf.equal(names, name), tf.constant(i, tf.int64), index)
    return index


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """tf.Transform: raw features -> model features (+ label when ``species`` is present)."""
    out = {}
    for key in NUMERIC_FEATURES:
        out[_xf(key)] = _scaled(inputs[key])
    for key in VOCAB_FEATURES:
        out[_xf(key)] = _indexed(inputs[key], key)
    if LABEL_SOURCE in inputs:
        out[LABEL_KEY] = _class_index(inputs[LABEL_SOURCE])
    return out


def _vocab_sizes(tf_transform_output) -> Dict[str, int]:
    return {_xf(key): VOCAB_MISSING + tf_transform_output.vocabulary_size_by_name(key) + VOCAB_OOV
            for key in VOCAB_FEATURES}


def build_model(tf_transform_output, hidden_units: List[int], learning_rate: float):
    inputs, parts = {}, []
    for key in NUMERIC_FEATURES:
        inp = keras.layers.Input(shape=(), name=_xf(key), dtype=tf.float32)
        inputs[_xf(key)] = inp
        parts.append(keras.layers.Reshape((1,), name=f"reshape_{key}")(inp))
    for name, size in _vocab_sizes(tf_transform_output).items():
        inp = keras.layers.Input(shape=(), name=name, dtype=tf.int64)
        inputs[name] = inp
        parts.append(keras.layers.CategoryEncoding(num_tokens=size, output_mode="one_hot",
                                                   name=f"onehot_{name}")(inp))
    x = keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(hidden_units):
        x = keras.layers.Dense(int(units), activation="relu", name=f"hidden_{i}")(x)
    output = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs=inputs, outputs=output)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    return model


def _dataset(file_patterns, tf_transform_output, batch_size: int, seed: int, shuffle: bool):
    """Transform's output examples (gzip TFRecords of tf.Example) -> (features, label) batches,
    repeated; the file order is sorted and the shuffle seeded, so a run is repeatable."""
    if isinstance(file_patterns, str):
        file_patterns = [file_patterns]
    files = sorted(f for pattern in file_patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"no transformed examples match {list(file_patterns)}")
    compression = "GZIP" if all(f.endswith(".gz") for f in files) else ""
    spec = tf_transform_output.transformed_feature_spec()

    def parse(serialized):
        features = tf.io.parse_example(serialized, spec)
        return features, features.pop(LABEL_KEY)

    ds = tf.data.TFRecordDataset(files, compression_type=compression).repeat()
    if shuffle:
        ds = ds.shuffle(1024, seed=seed)
    return ds.batch(batch_size).map(parse)


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
    """Start ``model`` from the weights of a saved one (the serving model, online retraining).

    Every layer here has a fixed name; a layer with weights takes the saved layer's weights of
    the same name when all their shapes agree. A hidden layer behind a vocabulary that changed
    size (or a new hidden_units) does not, and starts fresh: that is logged.
    """
    previous = keras.models.load_model(saved_model_dir, compile=False)
    saved = {layer.name: layer for layer in previous.layers if layer.weights}
    copied, fresh = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        old = saved.get(layer.name)
        old_w, new_w = (old.get_weights(), layer.get_weights()) if old is not None else ([], [])
        if old is not None and len(old_w) == len(new_w) and \
                all(a.shape == b.shape for a, b in zip(old_w, new_w)):
            layer.set_weights(old_w)
            copied.append(layer.name)
        else:
            fresh.append(layer.name)
    if not copied:
        raise ValueError(f"warm start from {saved_model_dir}: no layer matches the new model")
    logging.info("warm start from %s: copied %s; fresh: %s", saved_model_dir, copied, fresh or "none")


def run_fn(fn_args) -> None:
    """TFX Trainer entry point."""
    cfg = dict(fn_args.custom_config or {})
    seed = int(cfg.get("seed", 42))
    keras.utils.set_random_seed(seed)
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    batch_size = int(cfg.get("batch_size", 32))
    train = _dataset(fn_args.train_files, tf_transform_output, batch_size, seed, shuffle=True)
    evaluation = _dataset(fn_args.eval_files, tf_transform_output, batch_size, seed, shuffle=False)
    model = build_model(tf_transform_output, list(cfg.get("hidden_units", [16])),
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
