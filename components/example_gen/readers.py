"""Files -> serialized tf.Examples, per input format, as Beam transforms over a list of files.

SpanExampleGen reads the files of one span or of a window of spans into one Examples artifact.
TFX's own ExampleGen executors take one glob pattern per split; a window of spans is several
folders that no glob names, so these transforms take the resolved file list instead:

* CSV: TFX's CSV reading (``tfx.components.example_gen.csv_example_gen.executor``: its record
  reader, tfx-bsl's line parser and column type inference, its tf.Example conversion), over the
  list. Column types are inferred over all the files at once, so a window's spans agree on
  them (one ExampleGen per span could infer INT in one span and FLOAT in the next).
* Parquet: Arrow batches (``ReadAllFromParquetBatched``) encoded by
  ``driftguard.components.model_io.encode_examples`` (tfx-bsl's C++ encoder). TFX 1.16's own
  Parquet executor converts rows with ``utils.dict_to_example``, which tests ``if not pyval``
  and writes every 0, 0.0, "" and False as a missing value: an on-time arrival (delay 0)
  became unlabelled. Here only a null or a float NaN is missing.
* TFRecord: the serialized records as they are (``ReadAllFromTFRecord``; gzip is recognised
  by the ``.gz`` extension, as TFX's ImportExampleGen does).
"""
from __future__ import annotations

from typing import List, Sequence

import apache_beam as beam

FORMATS = ("csv", "parquet", "tfrecord")


def _encode(table) -> List[bytes]:
    from driftguard.components.model_io import encode_examples

    return encode_examples(table)


class CsvFilesToExamples(beam.PTransform):
    """CSV files (one header line each, the same in every file) -> tf.Example protos."""

    def __init__(self, files: Sequence[str]):
        super().__init__()
        self._files = list(files)

    def expand(self, pipeline):
        # TFX 1.16's private CSV pieces (tfx is pinned): the same parsing and type inference as
        # CsvExampleGen, over a list of files instead of one pattern.
        from tfx.components.example_gen.csv_example_gen.executor import (_ParsedCsvToTfExample,
                                                                         _ReadCsvRecordsFromTextFile)
        from tfx.utils import io_utils
        from tfx_bsl.coders import csv_decoder

        column_names = io_utils.load_csv_column_names(self._files[0])
        for path in self._files[1:]:
            names = io_utils.load_csv_column_names(path)
            if names != column_names:
                raise ValueError(f"{path}: its header {names} differs from {self._files[0]}'s {column_names}; "
                                 f"every CSV file read together needs the same columns in the same order")
        lines = (pipeline
                 | "CreateFilenames" >> beam.Create(self._files)
                 | "ReadFromText" >> beam.ParDo(_ReadCsvRecordsFromTextFile())
                 | "ParseCSVLine" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
                 | "ExtractParsedCSVLines" >> beam.Keys())
        column_infos = beam.pvalue.AsSingleton(
            lines | "InferColumnTypes" >> beam.CombineGlobally(
                csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True)))
        return lines | "ToTFExample" >> beam.ParDo(_ParsedCsvToTfExample(), column_infos)


class ParquetFilesToExamples(beam.PTransform):
    """Parquet files -> serialized tf.Examples, zeros kept (only null and NaN are missing)."""

    def __init__(self, files: Sequence[str]):
        super().__init__()
        self._files = list(files)

    def expand(self, pipeline):
        return (pipeline
                | "CreateFilenames" >> beam.Create(self._files)
                | "ReadParquetBatches" >> beam.io.ReadAllFromParquetBatched()
                | "ToSerializedExamples" >> beam.FlatMap(_encode))


class TFRecordFilesToExamples(beam.PTransform):
    """TFRecord files of serialized tf.Examples (gzip when the name ends in .gz) -> the records."""

    def __init__(self, files: Sequence[str]):
        super().__init__()
        self._files = list(files)

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
