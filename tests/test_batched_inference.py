"""The PredictionMonitor's batched inference (``score_examples``) on a real SavedModel: the same
predictions as row-by-row scoring, every row logged once, and a sample that stays bounded."""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from helpers import save_small_model, small_model_prediction

ROWS = 9_000          # > 2 batches of 4096, and a partial last one


@pytest.fixture(scope="module")
def span(tmp_path_factory):
    """A SavedModel and ROWS gzipped tf.Examples in two files (as ExampleGen's two splits)."""
    import tensorflow as tf

    from driftguard.components.model_io import encode_examples

    root = tmp_path_factory.mktemp("batched")
    save_small_model(root / "model")
    rng = np.random.default_rng(3)
    table = pa.table({"fare": rng.uniform(2, 80, ROWS).round(2),
                      "trip_start_hour": rng.integers(0, 24, ROWS),
                      "payment_type": rng.choice(["Cash", "Credit Card", "No Charge"], ROWS),
                      "trip_id": np.arange(ROWS)})
    for split, part in (("train", table.slice(0, 6000)), ("eval", table.slice(6000))):
        (root / "examples" / f"Split-{split}").mkdir(parents=True)
        options = tf.io.TFRecordOptions(compression_type="GZIP")
        with tf.io.TFRecordWriter(str(root / "examples" / f"Split-{split}" / "data.gz"), options) as w:
            for record in encode_examples(part):
                w.write(record)
    return root, table


def _score(root, max_rows: int, batch_rows: int = 4096):
    import apache_beam as beam

    from driftguard.components.model_io import ModelSpec
    from driftguard.components.prediction_monitor.executor import score_examples

    out = root / f"out-{max_rows}-{batch_rows}"
    spec = ModelSpec(task="binary", classes=("0", "1"))
    with beam.Pipeline() as pipeline:
        score_examples(pipeline, str(root / "examples" / "Split-*" / "*"), str(root / "model"), spec,
                       str(out / "logs" / "prediction_logs"), str(out / "sample"), max_rows, batch_rows)
    return out, spec


def test_batched_predictions_are_the_row_by_row_ones_and_every_row_is_logged_once(span):
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    from driftguard.components.examples_io import read_sample
    from driftguard.components.prediction_monitor.executor import VALUE_COLUMN, split_sample

    root, table = span
    out, spec = _score(root, max_rows=100_000)
    expected = np.array([small_model_prediction(f, h, p) for f, h, p in
                         zip(*(table.column(c).to_pylist() for c in ("fare", "trip_start_hour", "payment_type")))])

    # the logs: one PredictionLog per batch, whose request holds the batch's examples
    logged = {}
    files = sorted(str(p) for p in (out / "logs").glob("prediction_logs-*.gz"))
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log
        examples = log.request.inputs["examples"].string_val
        probabilities = tf.make_ndarray(log.response.outputs["probabilities"]).reshape(-1)
        assert len(examples) == len(probabilities) <= 4096
        assert list(log.request.inputs["examples"].tensor_shape.dim)[0].size == len(examples)
        for serialized, p in zip(examples, probabilities):
            trip = tf.train.Example.FromString(serialized).features.feature["trip_id"].int64_list.value[0]
            assert trip not in logged
            logged[trip] = p
    assert sorted(logged) == list(range(ROWS))
    np.testing.assert_allclose([logged[i] for i in range(ROWS)], expected, rtol=1e-6)

    # the sample: every row (ROWS < max_rows), its own prediction beside its raw features
    sample, summary = read_sample(str(out / "sample"))
    assert summary["rows"] == ROWS and sample.num_rows == ROWS
    raw, predictions = split_sample(sample, spec)
    ids = raw.column("trip_id").to_numpy()
    assert sorted(ids) == list(range(ROWS)) and VALUE_COLUMN not in raw.column_names
    np.testing.assert_allclose(predictions.value, expected[ids], rtol=1e-6)
    np.testing.assert_allclose(predictions.probabilities[:, 1], predictions.value)


def test_the_sample_stays_bounded_and_keeps_rows_with_their_predictions(span):
    from driftguard.components.examples_io import read_sample
    from driftguard.components.prediction_monitor.executor import split_sample

    root, table = span
    out, spec = _score(root, max_rows=500, batch_rows=1000)
    sample, summary = read_sample(str(out / "sample"))
    assert summary["rows"] == ROWS and summary["sampled_rows"] == 500 and sample.num_rows == 500
    raw, predictions = split_sample(sample, spec)
    ids = raw.column("trip_id").to_numpy()
    assert len(set(ids)) == 500
    expected = [small_model_prediction(table.column("fare")[i].as_py(), table.column("trip_start_hour")[i].as_py(),
                                       table.column("payment_type")[i].as_py()) for i in ids]
    np.testing.assert_allclose(predictions.value, expected, rtol=1e-6)
    assert json.loads((out / "sample" / "sample_summary.json").read_text())["missing"]["fare"] == 0


def test_a_model_failing_on_the_span_is_an_inference_error_not_a_config_error(span, tmp_path):
    import apache_beam as beam

    from driftguard.components.model_io import ModelSpec
    from driftguard.components.prediction_monitor.executor import _config_error, _inference_error, score_examples

    root, _ = span
    save_small_model(tmp_path / "model", max_fare=50.0)
    with pytest.raises(Exception) as raised:
        with beam.Pipeline() as pipeline:
            score_examples(pipeline, str(root / "examples" / "Split-*" / "*"), str(tmp_path / "model"),
                           ModelSpec(task="binary", classes=("0", "1")), str(tmp_path / "logs" / "p"),
                           str(tmp_path / "sample"), 1000)
    assert not _config_error(raised.value)
    assert "fare out of range" in _inference_error(raised.value)
