"""driftguard.components.examples_io on real gzipped tf.Example files, through a real Beam pipeline."""
import gzip  # noqa: F401  (TFRecord files below are written by TensorFlow, gzip-compressed)

import numpy as np
import pytest

pytestmark = pytest.mark.tfx


def _write_examples(path, rows):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options="GZIP") as writer:
        for row in rows:
            feature = {}
            for name, value in row.items():
                if value is None:
                    feature[name] = tf.train.Feature()
                elif isinstance(value, str):
                    feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))
                elif isinstance(value, float):
                    feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                else:
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def _run(patterns, max_rows, out_dir, beam_args=()):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from driftguard.components.examples_io import read_sample, sample_examples, write_sample

    with beam.Pipeline(options=PipelineOptions(list(beam_args))) as p:
        write_sample(sample_examples(p, patterns, max_rows), str(out_dir))
    return read_sample(str(out_dir))


@pytest.fixture(scope="module")
def example_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("examples")
    rng = np.random.default_rng(0)
    rows = [{"fare": float(rng.gamma(2.0, 5.0)), "hour": int(i % 24),
             "payment": None if i % 10 == 0 else ("Cash" if i % 3 else "Card"),
             "tract": None} for i in range(3000)]
    # a second file in which 'payment' never occurs at all (absent from the whole batch)
    more = [{"fare": 1.0, "hour": 5, "tract": None} for _ in range(500)]
    _write_examples(root / "a.gz", rows)
    _write_examples(root / "b.gz", more)
    return root, rows, more


def test_small_span_is_kept_whole_with_exact_missing_counts(example_files, tmp_path):
    root, rows, more = example_files
    table, summary = _run([str(root / "*.gz")], 10_000, tmp_path)
    assert summary["rows"] == 3500 and summary["sampled_rows"] == 3500 and table.num_rows == 3500
    assert summary["missing"]["payment"] == 300 + 500          # None rows + the file without it
    assert summary["missing"]["fare"] == 0 and summary["missing"]["tract"] == 3500
    assert str(table.schema.field("payment").type) == "string"
    assert str(table.schema.field("hour").type) == "int64"
    # tf.Example floats are float32
    expected = np.float32([r["fare"] for r in rows] + [1.0] * 500)
    assert np.array_equal(np.sort(np.float32(table.column("fare").to_pylist())), np.sort(expected))


def test_big_span_is_sampled_uniformly_to_max_rows(example_files, tmp_path):
    root, rows, more = example_files
    table, summary = _run([str(root / "a.gz")], 1000, tmp_path)
    assert summary["rows"] == 3000 and table.num_rows == 1000
    hours = np.asarray(table.column("hour").to_pylist())
    # uniform: each of the 24 hours holds 125 of 3,000 rows, about 41.7 of 1,000 sampled
    counts = np.bincount(hours, minlength=24)
    assert counts.min() > 15 and counts.max() < 75
    assert len(set(table.column("fare").to_pylist())) == 1000  # without replacement


def test_runs_under_multi_processing_direct_runner(example_files, tmp_path):
    root, rows, more = example_files
    table, summary = _run([str(root / "a.gz"), str(root / "b.gz")], 2000, tmp_path,
                          beam_args=["--direct_running_mode=multi_processing", "--direct_num_workers=2"])
    assert summary["rows"] == 3500 and table.num_rows == 2000
    assert summary["missing"]["payment"] == 800


def test_the_sample_accumulator_stays_bounded_over_a_long_span():
    import numpy as np
    import pyarrow as pa

    from driftguard.components.examples_io import SampleSpanFn

    fn, max_rows, batch = SampleSpanFn(500), 500, 1000
    acc, others = fn.create_accumulator(), fn.create_accumulator()
    held = []
    for i in range(200):                       # 200,000 rows, 1 in 3 without "x"
        ids = np.arange(i * batch, (i + 1) * batch)
        table = pa.table({"id": ids, "x": pa.array(ids.astype(float), mask=ids % 3 == 0)})
        target = acc if i % 2 else others      # two workers' accumulators, merged at the end
        target = fn.add_input(target, table)
        held.append(sum(t.num_rows for _, t in target.pending) + (target.sample.num_rows if target.sample else 0))
    assert max(held) <= 2 * max_rows + batch
    result = fn.extract_output(fn.merge_accumulators([acc, others]))
    assert result.rows == 200_000 and result.sample.num_rows == max_rows
    assert result.missing == {"id": 0, "x": len(range(0, 200_000, 3))}
    ids = result.sample.column("id").to_numpy()
    assert len(set(ids)) == max_rows
    assert abs(ids.mean() - 100_000) < 10_000      # uniform over the span, not its first rows
    assert not result.pending and len(result.keys) == max_rows
