"""Read tf.Example spans as flat Arrow tables in Beam: a bounded uniform sample plus exact counts.

Used by the DriftDetector (the current span) and the RegistryPusher (the training window,
stored as the baseline's reference sample). One pass over the data, in Beam, so it scales
with the span and runs on any Beam runner (DirectRunner multi_processing, Dataflow, Flink):

- every row is counted, and every feature's missing values, exactly;
- a uniform sample of at most ``max_rows`` rows is kept (bottom-k on random keys, which
  merges across workers); a span with at most ``max_rows`` rows is kept whole, so small
  spans give exact, reproducible results.

Hand-written because neither tfx-bsl nor TFDV returns rows: TFDV's statistics keep
histograms and quantiles, too coarse for the exact tests of ``driftguard.components.drift``, and
``beam.combiners.Sample`` keeps Python objects one row at a time (slow) instead of Arrow
batches.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

import apache_beam as beam
import numpy as np
import pyarrow as pa

DEFAULT_MAX_ROWS = 100_000
READ_BATCH_ROWS = 4096          # records per batch read from a span's TFRecord files


def flatten_batch(batch: pa.RecordBatch) -> pa.Table:
    """A tf.Example RecordBatch (one list column per feature) as one scalar column per feature.

    A feature with no value in a row is null; a feature with several values keeps the first
    (the taxi features are all single-valued; the schema check reports other valencies).
    Bytes become UTF-8 text.
    """
    columns, names = [], []
    for name, column in zip(batch.schema.names, batch.columns):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if pa.types.is_null(column.type):
            columns.append(pa.nulls(len(column)))
        elif pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            offsets = np.asarray(column.offsets)
            lengths = np.diff(offsets)
            has_value = lengths > 0
            if column.null_count:
                has_value &= ~np.asarray(column.is_null())
            index = pa.array(np.where(has_value, offsets[:-1], 0), mask=~has_value)
            values = column.values
            if pa.types.is_null(values.type):
                columns.append(pa.nulls(len(column)))
                names.append(name)
                continue
            first = values.take(index) if len(values) else pa.nulls(len(column), values.type)
            if pa.types.is_binary(first.type) or pa.types.is_large_binary(first.type):
                first = first.cast(pa.string())
            columns.append(first)
        else:
            columns.append(column)
        names.append(name)
    return pa.Table.from_arrays(columns, names=names)


def column_floats(column) -> np.ndarray:
    """A pyarrow (chunked) numeric column as float64 numpy, NaN for nulls."""
    column = column.cast(pa.float64())
    chunks = getattr(column, "chunks", [column])
    return np.concatenate([c.to_numpy(zero_copy_only=False) for c in chunks]) if chunks else np.zeros(0)


@dataclass
class SpanSample:
    """Exact counts over every row, and a uniform sample of at most ``max_rows`` rows."""

    rows: int = 0
    present: Dict[str, int] = field(default_factory=dict)  # rows holding a value, per feature
    keys: Optional[np.ndarray] = None
    sample: Optional[pa.Table] = None
    # while combining: batches not merged into the sample yet, and the largest key of a full
    # sample (a row with a larger key cannot enter it)
    pending: List[tuple] = field(default_factory=list)
    pending_rows: int = 0
    threshold: Optional[float] = None

    @property
    def missing(self) -> Dict[str, int]:
        """Rows without a value, per feature (a batch lacking the feature counts all its rows)."""
        return {name: self.rows - count for name, count in sorted(self.present.items())}

    def summary(self) -> Dict[str, object]:
        return {"rows": self.rows, "sampled_rows": 0 if self.sample is None else self.sample.num_rows,
                "missing": self.missing}


def _concat(tables: List[pa.Table]) -> pa.Table:
    names: List[str] = []
    for table in tables:
        names.extend(n for n in table.column_names if n not in names)
    filled = []
    for table in tables:
        for name in names:
            if name not in table.column_names:
                table = table.append_column(name, pa.nulls(table.num_rows))
        filled.append(table.select(names))
    # promote=True turns a column that is all-null in one batch (type null) into its real type.
    return pa.concat_tables(filled, promote=True)


class SampleSpanFn(beam.CombineFn):
    """Beam CombineFn: flat Arrow tables in, one :class:`SpanSample` out."""

    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS):
        if max_rows < 1:
            raise ValueError(f"max_rows must be >= 1, got {max_rows}")
        self._max_rows = int(max_rows)
        self._rng = None

    def _random(self, n: int) -> np.ndarray:
        if self._rng is None:  # per worker; seeded from the OS so workers differ
            self._rng = np.random.default_rng()
        return self._rng.random(n)

    def create_accumulator(self) -> SpanSample:
        return SpanSample()

    def add_input(self, accumulator: SpanSample, table: pa.Table) -> SpanSample:
        accumulator.rows += table.num_rows
        for name, column in zip(table.column_names, table.columns):
            accumulator.present[name] = accumulator.present.get(name, 0) + table.num_rows - int(column.null_count)
        keys = self._random(table.num_rows)
        if accumulator.threshold is not None:          # rows that cannot make the bottom k: dropped now
            below = keys < accumulator.threshold
            if not below.all():
                keys, table = keys[below], table.filter(pa.array(below))
        if table.num_rows:
            accumulator.pending.append((keys, table))
            accumulator.pending_rows += table.num_rows
        # compacting costs O(max_rows): done once the pending rows reach max_rows, not per batch,
        # so a span of N rows costs O(N) and the accumulator holds at most ~2 * max_rows rows
        if accumulator.pending_rows >= self._max_rows:
            self._compact(accumulator)
        return accumulator

    def _compact(self, accumulator: SpanSample) -> None:
        keys, tables = [k for k, _ in accumulator.pending], [t for _, t in accumulator.pending]
        if accumulator.sample is not None and accumulator.sample.num_rows:
            keys.insert(0, accumulator.keys)
            tables.insert(0, accumulator.sample)
        accumulator.pending, accumulator.pending_rows = [], 0
        if not tables:
            return
        table = _concat(tables)
        all_keys = np.concatenate(keys)
        if table.num_rows > self._max_rows:
            keep = np.sort(np.argpartition(all_keys, self._max_rows - 1)[:self._max_rows])
            table, all_keys = table.take(pa.array(keep)), all_keys[keep]
            accumulator.threshold = float(all_keys.max())
        accumulator.sample, accumulator.keys = table, all_keys

    def merge_accumulators(self, accumulators: Iterable[SpanSample]) -> SpanSample:
        merged = SpanSample()
        for acc in accumulators:
            merged.rows += acc.rows
            for name, count in acc.present.items():
                merged.present[name] = merged.present.get(name, 0) + count
            if acc.sample is not None and acc.sample.num_rows:
                merged.pending.append((acc.keys, acc.sample))
            merged.pending.extend(acc.pending)
        self._compact(merged)
        return merged

    def extract_output(self, accumulator: SpanSample) -> SpanSample:
        self._compact(accumulator)
        accumulator.threshold = None
        return accumulator


def examples_file_patterns(examples_artifacts: Sequence, splits: Optional[Sequence[str]] = None) -> List[str]:
    """``<uri>/Split-<name>/*`` for every split of every Examples artifact."""
    from tfx.types import artifact_utils

    patterns = []
    for artifact in examples_artifacts:
        for split in artifact_utils.decode_split_names(artifact.split_names):
            if splits is None or split in splits:
                patterns.append(os.path.join(artifact_utils.get_split_uri([artifact], split), "*"))
    return patterns


def examples_split_patterns(examples_artifacts: Sequence) -> List[tuple]:
    """``[(split name, "<uri>/Split-<name>/*"), ...]`` for every split of every Examples artifact."""
    from tfx.types import artifact_utils

    out = []
    for artifact in examples_artifacts:
        for split in artifact_utils.decode_split_names(artifact.split_names):
            out.append((split, os.path.join(artifact_utils.get_split_uri([artifact], split), "*")))
    return out


def _tag_split(table: pa.Table, split: str) -> pa.Table:
    from driftguard.components.model_io import SPLIT_COLUMN

    return table.append_column(SPLIT_COLUMN, pa.array([split] * table.num_rows, pa.string()))


class ReadRecordBatchesFn(beam.DoFn):
    """A TFRecord file name -> its serialized records, ``batch_rows`` at a time (lists of bytes).

    Hand-written instead of ``beam.io.ReadFromTFRecord`` + ``BatchElements``: Beam's reader
    unframes and un-gzips every record in Python (~2.5 s per 100k taxi rows); tf.data's C++
    reader does it in a fraction of that. The unit of parallelism is a file (ExampleGen writes
    one or more per split).
    """

    def __init__(self, batch_rows: int):
        self._batch_rows = int(batch_rows)

    def process(self, path: str):
        import tensorflow as tf

        compression = "GZIP" if path.endswith(".gz") else ""
        for batch in tf.data.TFRecordDataset(path, compression_type=compression).batch(self._batch_rows):
            yield list(batch.numpy())


def read_record_batches(pipeline: beam.Pipeline, file_patterns: Sequence[str], batch_rows: int,
                        label: str = "ReadRecordBatches"):
    """PCollection of lists of at most ``batch_rows`` serialized records of the files matching
    ``file_patterns`` (gzip when a name ends in .gz, as ExampleGen writes them)."""
    import tensorflow as tf

    files = sorted({f for pattern in file_patterns for f in tf.io.gfile.glob(pattern)})
    if not files:
        raise ValueError(f"no examples to read: nothing matches {', '.join(file_patterns)}")
    return (pipeline
            | f"{label}Files" >> beam.Create(files)
            | f"{label}Read" >> beam.ParDo(ReadRecordBatchesFn(batch_rows)))


def decode_batch(records: List[bytes]) -> pa.Table:
    """Serialized tf.Examples -> a flat Arrow table (:func:`flatten_batch`), decoded by tfx-bsl
    without a schema, as ``tfxio.TFExampleRecord`` decodes them."""
    from tfx_bsl.coders import example_coder

    return flatten_batch(example_coder.ExamplesToRecordBatchDecoder().DecodeBatch(records))


def sample_examples(pipeline: beam.Pipeline, file_patterns: Sequence, max_rows: int = DEFAULT_MAX_ROWS,
                    label: str = "SampleExamples"):
    """PCollection holding one :class:`SpanSample` of the gzipped tf.Example files.

    ``file_patterns``: glob patterns, or ``(split, pattern)`` pairs
    (:func:`examples_split_patterns`), whose rows then carry their split in the column
    ``driftguard.components.model_io.SPLIT_COLUMN`` (the reference sample: held-out rows are
    the eval split's).
    """
    if not file_patterns:
        raise ValueError("no examples to read (no split files)")
    if all(isinstance(p, str) for p in file_patterns):
        tables = (read_record_batches(pipeline, file_patterns, READ_BATCH_ROWS, f"{label}Read")
                  | f"{label}Decode" >> beam.Map(decode_batch))
    else:
        parts = []
        for i, (split, pattern) in enumerate(file_patterns):
            parts.append(read_record_batches(pipeline, [pattern], READ_BATCH_ROWS, f"{label}Read{i}")
                         | f"{label}Decode{i}" >> beam.Map(decode_batch)
                         | f"{label}Tag{i}" >> beam.Map(_tag_split, split))
        tables = parts | f"{label}Splits" >> beam.Flatten()
    return tables | f"{label}Combine" >> beam.CombineGlobally(SampleSpanFn(max_rows))


def _serialized(example) -> bytes:
    return example if isinstance(example, bytes) else example.SerializeToString()


def sample_span_files(pipeline: beam.Pipeline, data_format: str, files: Sequence[str],
                      max_rows: int = DEFAULT_MAX_ROWS, label: str = "SampleSpanFiles"):
    """PCollection holding one :class:`SpanSample` of a span's own files (``data.format``: csv,
    parquet, tfrecord), read as SpanExampleGen reads them (``example_gen.readers``): the
    DriftDetector's reference when it is another span than the training window."""
    from tfx_bsl.public import tfxio

    from driftguard.components.example_gen import readers

    source = tfxio.TFExampleBeamRecord(physical_format="inmem", telemetry_descriptors=["driftguard"])
    return (pipeline
            | f"{label}Read" >> readers.files_to_examples(data_format, files)
            | f"{label}Serialize" >> beam.Map(_serialized)
            | f"{label}Decode" >> source.BeamSource()
            | f"{label}Flatten" >> beam.Map(flatten_batch)
            | f"{label}Combine" >> beam.CombineGlobally(SampleSpanFn(max_rows)))


def _write_sample(result: SpanSample, directory: str) -> None:
    import json

    import pyarrow.parquet as pq
    import tensorflow as tf  # gfile: artifact URIs may be gs:// or hdfs:// on a distributed runner

    tf.io.gfile.makedirs(directory)
    table = result.sample if result.sample is not None else pa.table({})
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    with tf.io.gfile.GFile(os.path.join(directory, SAMPLE_FILE), "wb") as f:
        f.write(buffer.getvalue().to_pybytes())
    with tf.io.gfile.GFile(os.path.join(directory, SUMMARY_FILE), "w") as f:
        f.write(json.dumps(result.summary(), indent=1, sort_keys=True))


SAMPLE_FILE = "sample.parquet"
SUMMARY_FILE = "sample_summary.json"


def write_sample(samples, directory: str, label: str = "WriteSample"):
    """Write the one :class:`SpanSample` of ``samples`` to ``directory``/{sample.parquet, sample_summary.json}.

    The worker writes it, so the driver reads a file afterwards: nothing large travels back
    through the runner, and it works the same on a distributed runner with shared storage.
    """
    return samples | label >> beam.Map(_write_sample, directory)


def read_sample(directory: str):
    """``(pyarrow.Table, summary dict)`` written by :func:`write_sample`."""
    import json

    import pyarrow.parquet as pq
    import tensorflow as tf

    with tf.io.gfile.GFile(os.path.join(directory, SAMPLE_FILE), "rb") as f:
        table = pq.read_table(pa.BufferReader(f.read()))
    with tf.io.gfile.GFile(os.path.join(directory, SUMMARY_FILE)) as f:
        summary = json.loads(f.read())
    return table, summary
