"""Files -> serialized tf.Examples, per input format, as Beam transforms over a list of files.

SpanExampleGen reads the files of one span or of a window of spans into one Examples artifact.
TFX's own ExampleGen executors take one glob pattern per split; a window of spans is several
folders that no glob names, so these transforms take the resolved file list instead:

* CSV: the tf.Examples TFX's CsvExampleGen makes (tfx-bsl's column type inference, its
  values, missing cells), made by pyarrow's streaming CSV reader and tfx-bsl's C++ encoder
  instead of a Python parse and proto per row (:class:`CsvFilesToExamples`). Column types are
  inferred over all the files at once, so a window's spans agree on them (one ExampleGen per
  span could infer INT in one span and FLOAT in the next); files whose headers differ are read
  in the union of their columns.
* Parquet: Arrow batches (``ReadAllFromParquetBatched``) encoded as
  ``driftguard.components.model_io.encode_examples`` encodes them (tfx-bsl's C++ encoder),
  serialized deterministically as the CSV path's. TFX 1.16's own
  Parquet executor converts rows with ``utils.dict_to_example``, which tests ``if not pyval``
  and writes every 0, 0.0, "" and False as a missing value: an on-time arrival (delay 0)
  became unlabelled. Here only a null or a float NaN is missing.
* TFRecord: the serialized records as they are (``ReadAllFromTFRecord``; gzip is recognised
  by the ``.gz`` extension, as TFX's ImportExampleGen does).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import apache_beam as beam

FORMATS = ("csv", "parquet", "tfrecord")


def _encode(table) -> List[bytes]:
    """A Parquet batch as serialized tf.Examples: ``model_io.encode_examples``' columns (zeros kept,
    null and NaN missing), serialized deterministically (:func:`deterministic_examples`: the
    C++ encoder's own feature order changes per process, and with it the hash split)."""
    import pyarrow as pa

    from driftguard.components.model_io import SPLIT_COLUMN, _as_list_array

    names = [c for c in table.column_names if c != SPLIT_COLUMN]
    if table.num_rows == 0 or not names:
        return []
    return deterministic_examples(pa.RecordBatch.from_arrays([_as_list_array(table.column(c)) for c in names], names))


class _FilesTransform(beam.PTransform):
    """A read of a list of files."""

    def __init__(self, files: Sequence[str]):
        super().__init__()
        self._files = list(files)


class CsvError(ValueError):
    """A CSV file that cannot be read as ExampleGen reads CSV: the message names the file, and
    the line when it can be found (ragged row, bytes that are not UTF-8)."""


# Cells whose tfx-bsl type (and value) is certain without Python, checked on whole Arrow columns;
# every other non-empty cell (" 7", "+7", "1_000", "nan", "inf", a 19-digit number, text) goes
# through tfx-bsl's own ``_InferValueType`` and Python's int()/float(), as in TFX's CSV path.
_PLAIN_INT = r"^-?[0-9]{1,18}$"                                        # int() takes it, within int64
_PLAIN_FLOAT = r"^-?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^-?[0-9]+[eE][-+]?[0-9]+$"  # int() no, float() yes
CSV_BLOCK_BYTES = 8 << 20          # CSV bytes parsed per Arrow batch (~60k taxi rows): memory per file stays flat


def csv_header(path: str) -> List[str]:
    """A CSV file's column names, as TFX's CsvExampleGen reads them (its first line split on commas)."""
    from tfx.utils import io_utils

    return io_utils.load_csv_column_names(path)


def check_span_headers(files: Sequence[str], where: str) -> None:
    """Refuse the files of one span (one split) whose headers differ: TFX's CsvExampleGen reads
    them as one table (the spans of a window may differ: :class:`CsvFilesToExamples`)."""
    first, first_header = None, None
    for path in files:
        header = csv_header(path)
        if first is None:
            first, first_header = path, header
        elif header != first_header:
            extra = [c for c in header if c not in first_header]
            lacking = [c for c in first_header if c not in header]
            what = (f"columns only here: {extra or 'none'}, missing here: {lacking or 'none'}" if extra or lacking
                    else "the same columns in another order")
            raise CsvError(f"{where}: {path} has a different header than {first} (the files of a span are read "
                           f"as one table): {what}")


def _find_bad_line(path: str, width: int) -> str:
    """Where a CSV file stops being readable (pyarrow's errors give no line): ``"line N: ..."``."""
    import csv

    from apache_beam.io.filesystems import FileSystems

    number = 1
    try:
        with FileSystems.open(path) as f:
            f.readline()                               # the header

            def lines():
                nonlocal number
                for raw in f:
                    number += 1
                    yield raw.decode("utf-8")

            for row in csv.reader(lines()):
                if row and len(row) != width:
                    return f"line {number}: {len(row)} cells where the header has {width}"
    except UnicodeDecodeError as e:
        return f"line {number}: bytes that are not UTF-8 ({e.reason} at byte {e.start} of the line)"
    except Exception:  # noqa: BLE001 - only a diagnostic: the reader's own error is raised anyway
        return ""
    return ""


def _csv_batches(path: str, header: Sequence[str]):
    """The rows of one CSV file, streamed as Arrow RecordBatches of text columns (positional:
    column i is the header's i-th), ``CSV_BLOCK_BYTES`` of the file at a time.

    pyarrow parses as Python's csv module does for TFX (comma, ``"`` quotes, ``""`` inside quotes,
    quoted newlines); blank lines are skipped; an empty cell stays "" (a missing value)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(len(header))]
    options = dict(
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(delimiter=",", quote_char='"', double_quote=True, escape_char=False,
                                         newlines_in_values=True, ignore_empty_lines=True),
        convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, check_utf8=True,
                                             strings_can_be_null=False, quoted_strings_can_be_null=False))

    def failed(error):
        where = _find_bad_line(path, len(header))
        return CsvError(f"{path}: {where + ': ' if where else ''}{error}")

    if "://" in path:                                  # gs://, s3://...: through Beam's file systems
        from apache_beam.io.filesystems import FileSystems

        source = FileSystems.open(path)
    else:                                              # compressed when the name says so, as Beam's AUTO
        source = pa.input_stream(path, compression="detect")
    with source:
        try:
            reader = pacsv.open_csv(source, **options)
        except pa.ArrowInvalid as e:
            if str(e).startswith("Empty CSV file"):    # nothing after the header (or no header): no rows
                return
            raise failed(e) from e
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except pa.ArrowInvalid as e:
                raise failed(e) from e
            yield batch


def _cells(column):
    import pyarrow.compute as pc

    present = pc.greater(pc.binary_length(column), 0)
    return present, column.filter(present)


def _column_type(column) -> int:
    """tfx-bsl's type of a text column (``csv_decoder.ColumnType``): the highest of its cells' types,
    UNKNOWN when every cell is empty."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from tfx_bsl.coders import csv_decoder

    kinds = csv_decoder.ColumnType
    _, cells = _cells(column)
    if len(cells) == 0:
        return kinds.UNKNOWN
    plain_int = pc.match_substring_regex(cells, _PLAIN_INT)
    if pc.all(plain_int).as_py():
        return kinds.INT
    found = kinds.INT if pc.any(plain_int).as_py() else kinds.UNKNOWN
    rest = cells.filter(pc.invert(plain_int))
    plain_float = pc.match_substring_regex(rest, _PLAIN_FLOAT)
    if pc.any(plain_float).as_py():
        found = kinds.FLOAT
    for cell in pc.unique(rest.filter(pc.invert(plain_float))).cast(pa.binary()).to_pylist():
        found = max(found, csv_decoder._InferValueType(cell))  # noqa: SLF001 - TFX's own rule (tfx-bsl pinned)
        if found == kinds.STRING:
            break
    return found


def _list_array(column, kind, rows: int):
    """A text column (None: a column the file lacks, every cell empty) as the list column
    tfx-bsl's tf.Example encoder takes, with TFX's CSV values: a non-empty cell is one value
    (``int(cell)``, ``float(cell)`` as float32, the bytes), an empty cell an empty list (the
    feature is there with no value), and a column without any value in the span (UNKNOWN) a
    null (an empty ``tf.train.Feature()``, as ``_ParsedCsvToTfExample`` writes it)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from tfx_bsl.coders import csv_decoder

    kinds = csv_decoder.ColumnType
    if kind == kinds.UNKNOWN:
        return pa.nulls(rows, pa.large_list(pa.int64()))
    value_type = {kinds.INT: pa.int64(), kinds.FLOAT: pa.float32(), kinds.STRING: pa.large_binary()}[kind]
    if column is None:
        return pa.LargeListArray.from_arrays(pa.array(np.zeros(rows + 1, np.int64)), pa.array([], value_type))
    present, cells = _cells(column)
    if kind == kinds.STRING:
        values = cells.cast(pa.large_binary())
    elif kind == kinds.INT:
        if pc.all(pc.match_substring_regex(cells, _PLAIN_INT)).as_py():
            values = cells.cast(pa.int64())
        else:
            values = pa.array([int(c) for c in cells.cast(pa.binary()).to_pylist()], pa.int64())
    else:
        plain = pc.or_(pc.match_substring_regex(cells, _PLAIN_INT), pc.match_substring_regex(cells, _PLAIN_FLOAT))
        if pc.all(plain).as_py():
            values = cells.cast(pa.float64())          # correctly rounded, as float() is
        else:
            values = pa.array([float(c) for c in cells.cast(pa.binary()).to_pylist()], pa.float64())
        values = values.cast(pa.float32(), safe=False)  # as the proto's float field takes a Python float
    offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(present.to_numpy(zero_copy_only=False), out=offsets[1:])
    return pa.LargeListArray.from_arrays(pa.array(offsets), values)


def _varint_lengths(x):
    """Bytes of each protobuf varint of the non-negative ints ``x`` (numpy)."""
    import numpy as np

    size = np.ones(len(x), np.int64)
    for bits in (7, 14, 21, 28, 35):
        size += x >= (1 << bits)
    return size


def _with_example_header(body):
    """``body`` (each row: a Features message's bytes) as serialized tf.Examples: field 1 tag, length."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.binary_length(body).to_numpy(zero_copy_only=False).astype(np.int64)
    size = 1 + _varint_lengths(lengths)
    out = np.zeros((len(lengths), 6), np.uint8)
    out[:, 0] = 0x0A
    rest = lengths.copy()
    for j in range(1, 6):
        out[:, j] = (rest & 0x7F) | np.where(rest >= 0x80, 0x80, 0)
        rest >>= 7
    data = out[np.arange(6) < size[:, None]]        # row by row: tag, then the length's varint bytes
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(size, out=offsets[1:])
    header = pa.Array.from_buffers(pa.binary(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pc.binary_join_element_wise(header, body, b"")


def _without_example_header(records):
    """The Features bytes of serialized one-feature tf.Examples (their tag and length dropped)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    total = pc.binary_length(records).to_numpy(zero_copy_only=False).astype(np.int64)
    header = np.zeros(len(total), np.int64)
    for k in range(1, 6):                           # the length's varint takes k bytes
        header[_varint_lengths(np.maximum(total - 1 - k, 0)) == k] = 1 + k
    out = None
    for h in np.unique(header):
        stripped = pc.binary_replace_slice(records, start=0, stop=int(h), replacement=b"")
        out = stripped if out is None else pc.if_else(pa.array(header == h), stripped, out)
    return out


def deterministic_examples(batch) -> List[bytes]:
    """Serialized tf.Examples of a RecordBatch of list columns, the features in name order: the
    bytes of ``Example.SerializeToString(deterministic=True)``, which TFX's ExampleGen hashes to
    split the rows (it hashes a bytes record as it is).

    tfx-bsl's C++ encoder writes the features in the order of a hash map that changes from one
    process to the next (so would the bytes, and the train/eval split, from one run to the
    next). Each column is encoded alone (the C++ encoder, one feature per example) and the
    features are joined in name order, on whole Arrow columns."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from tfx_bsl.coders import example_coder

    if batch.num_rows == 0:
        return []
    parts = []
    for name in sorted(batch.schema.names):
        one = pa.RecordBatch.from_arrays([batch.column(batch.schema.get_field_index(name))], [name])
        parts.append(_without_example_header(pa.array(example_coder.RecordBatchToExamples(one), pa.binary())))
    body = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, b"")
    return _with_example_header(body).to_pylist()


def encode_csv_batch(batch, header: Sequence[str], column_names: Sequence[str], types: Dict[str, int]) -> List[bytes]:
    """Serialized tf.Examples of one batch of :func:`_csv_batches`: every column of
    ``column_names`` (the union of a window's headers) with its ``types`` (``ColumnType``),
    each record byte for byte TFX's tf.Example serialized deterministically
    (:func:`deterministic_examples`)."""
    import pyarrow as pa

    if batch.num_rows == 0:
        return []
    by_name = dict(zip(header, batch.columns))          # a repeated name: the last column, as TFX's dict
    names = sorted(set(column_names))
    arrays = [_list_array(by_name.get(name), types[name], batch.num_rows) for name in names]
    return deterministic_examples(pa.RecordBatch.from_arrays(arrays, names))


class _CsvFileTypesFn(beam.DoFn):
    """(path, header) -> {column: ColumnType} over the file's rows."""

    def process(self, item):
        from tfx_bsl.coders import csv_decoder

        path, header = item
        found: Dict[str, int] = {}
        for batch in _csv_batches(path, header):
            for name, column in zip(header, batch.columns):
                if found.get(name) != csv_decoder.ColumnType.STRING:
                    found[name] = max(found.get(name, csv_decoder.ColumnType.UNKNOWN), _column_type(column))
        yield found


class _MergeColumnTypes(beam.CombineFn):
    """The files' column types -> one type per column of the union (tfx-bsl's order: UNKNOWN <
    INT < FLOAT < STRING, as ``csv_decoder.ColumnTypeInferrer`` merges them)."""

    def __init__(self, column_names: Sequence[str]):
        self._column_names = list(column_names)

    def create_accumulator(self):
        return {}

    def add_input(self, accumulator, found):
        for name, kind in found.items():
            if name not in accumulator or kind > accumulator[name]:
                accumulator[name] = kind
        return accumulator

    def merge_accumulators(self, accumulators):
        merged = {}
        for accumulator in accumulators:
            self.add_input(merged, accumulator)
        return merged

    def extract_output(self, accumulator):
        from tfx_bsl.coders import csv_decoder

        return {name: accumulator.get(name, csv_decoder.ColumnType.UNKNOWN) for name in self._column_names}


class _CsvFileToExamplesFn(beam.DoFn):
    """(path, header) -> the file's rows as serialized tf.Examples, one Arrow batch at a time."""

    def __init__(self, column_names: Sequence[str]):
        self._column_names = list(column_names)

    def process(self, item, types):
        path, header = item
        for batch in _csv_batches(path, header):
            yield from encode_csv_batch(batch, header, self._column_names, types)


class CsvFilesToExamples(_FilesTransform):
    """CSV files (one header line each) -> serialized tf.Examples, as TFX's CsvExampleGen makes them.

    The same tf.Examples as TFX 1.16's CSV path (its record reader, tfx-bsl's line parser and
    column type inference, ``_ParsedCsvToTfExample``; ``tests/test_csv_reader.py`` compares them
    byte for byte), made vectorized: pyarrow's streaming CSV reader parses each file in blocks
    into text columns, the types are inferred on whole columns (tfx-bsl's rule: INT < FLOAT <
    STRING, empty cells ignored; a cell no regular expression vouches for goes through tfx-bsl's
    own function), and tfx-bsl's C++ encoder writes the examples.

    The files are read twice: once to infer the column types over every file (a window's spans
    then agree on them: one ExampleGen per span could infer INT in one span and FLOAT in the
    next), once to convert. One read feeding both would hold the span until the types are known.

    The files of a window may come from spans whose headers differ (a column added, dropped or
    moved): every row is laid out in the union of the columns, a column its file lacks left
    empty (the feature has no value in that example, as for an empty cell). The ExampleValidator
    then reports what differs, against the schema. A ragged row, or bytes that are not UTF-8,
    fail with the file's name and the line.
    """

    def expand(self, pipeline):
        items = [(path, csv_header(path)) for path in self._files]
        column_names: List[str] = []
        for _, header in items:
            column_names += [c for c in header if c not in column_names]
        types = beam.pvalue.AsSingleton(
            pipeline
            | "CreateFilenamesToInfer" >> beam.Create(items)
            | "InferFileColumnTypes" >> beam.ParDo(_CsvFileTypesFn())
            | "InferColumnTypes" >> beam.CombineGlobally(_MergeColumnTypes(column_names)))
        return (pipeline
                | "CreateFilenames" >> beam.Create(items)
                | "ToSerializedExamples" >> beam.ParDo(_CsvFileToExamplesFn(column_names), types))


class ParquetFilesToExamples(_FilesTransform):
    """Parquet files -> serialized tf.Examples, zeros kept (only null and NaN are missing)."""

    def expand(self, pipeline):
        return (pipeline
                | "CreateFilenames" >> beam.Create(self._files)
                | "ReadParquetBatches" >> beam.io.ReadAllFromParquetBatched()
                | "ToSerializedExamples" >> beam.FlatMap(_encode))


class TFRecordFilesToExamples(_FilesTransform):
    """TFRecord files of serialized tf.Examples (gzip when the name ends in .gz) -> the records."""

    def expand(self, pipeline):
        return (pipeline
                | "CreateFilenames" >> beam.Create(self._files)
                | "ReadTFRecords" >> beam.io.ReadAllFromTFRecord())


def files_to_examples(data_format: str, files: Sequence[str]) -> beam.PTransform:
    """The transform reading ``files`` of ``data_format`` (one of :data:`FORMATS`)."""
    if not files:
        raise ValueError("no files to read")
    readers = {"csv": CsvFilesToExamples, "parquet": ParquetFilesToExamples, "tfrecord": TFRecordFilesToExamples}
    if data_format not in readers:
        raise ValueError(f"data.format {data_format!r}: one of {', '.join(FORMATS)}")
    return readers[data_format](files)
