"""Files -> serialized tf.Examples, per input format, as Beam transforms over a list of files.

SpanExampleGen reads the files of one span or of a window of spans into one Examples artifact.
TFX's own ExampleGen executors take one glob pattern per split; a window of spans is several
folders that no glob names, so these transforms take the resolved file list instead:

* CSV: TFX's CSV reading (``tfx.components.example_gen.csv_example_gen.executor``: its record
  reader, tfx-bsl's line parser and column type inference, its tf.Example conversion), over the
  list. Column types are inferred over all the files at once, so a window's spans agree on
  them (one ExampleGen per span could infer INT in one span and FLOAT in the next); files
  whose headers differ are read in the union of their columns.
* Parquet: Arrow batches (``ReadAllFromParquetBatched``) encoded by
  ``driftguard.components.model_io.encode_examples`` (tfx-bsl's C++ encoder). TFX 1.16's own
  Parquet executor converts rows with ``utils.dict_to_example``, which tests ``if not pyval``
  and writes every 0, 0.0, "" and False as a missing value: an on-time arrival (delay 0)
  became unlabelled. Here only a null or a float NaN is missing.
* TFRecord: the serialized records as they are (``ReadAllFromTFRecord``; gzip is recognised
  by the ``.gz`` extension, as TFX's ImportExampleGen does).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import apache_beam as beam

FORMATS = ("csv", "parquet", "tfrecord")


def _encode(table) -> List[bytes]:
    from driftguard.components.model_io import encode_examples

    return encode_examples(table)


class _FilesTransform(beam.PTransform):
    """A read of a list of files."""

    def __init__(self, files: Sequence[str]):
        super().__init__()
        self._files = list(files)


class CsvFilesToExamples(_FilesTransform):
    """CSV files (one header line each) -> tf.Example protos.

    The files of a window may come from spans whose headers differ (a column added, dropped or
    moved): every row is laid out in the union of the columns, in order of first appearance,
    a column its file lacks left empty (the feature is absent from that example, as for an
    empty cell). The ExampleValidator then reports what differs, against the schema; types are
    inferred over every row, as CsvExampleGen infers them over its one pattern.
    """

    def expand(self, pipeline):
        # TFX 1.16's private CSV pieces (tfx is pinned): the same parsing and type inference as
        # CsvExampleGen, over a list of files instead of one pattern.
        from tfx.components.example_gen.csv_example_gen.executor import (_ParsedCsvToTfExample,
                                                                         _ReadCsvRecordsFromTextFile)
        from tfx.utils import io_utils
        from tfx_bsl.coders import csv_decoder

        by_header: Dict[tuple, List[str]] = {}
        for path in self._files:
            by_header.setdefault(tuple(io_utils.load_csv_column_names(path)), []).append(path)
        column_names: List[str] = []
        for header in by_header:
            column_names += [c for c in header if c not in column_names]

        def parsed_lines(label: str):
            groups = []
            for i, (header, files) in enumerate(by_header.items()):
                rows = (pipeline
                        | f"{label}CreateFilenames{i}" >> beam.Create(files)
                        | f"{label}ReadFromText{i}" >> beam.ParDo(_ReadCsvRecordsFromTextFile())
                        | f"{label}ParseCSVLine{i}" >> beam.ParDo(csv_decoder.ParseCSVLine(delimiter=","))
                        | f"{label}ExtractParsedCSVLines{i}" >> beam.Keys())
                if list(header) != column_names:          # only files whose header is not the union's
                    where = [header.index(c) if c in header else None for c in column_names]
                    rows = rows | f"{label}InUnionColumns{i}" >> beam.Map(_in_columns, where, len(header))
                groups.append(rows)
            return groups | f"{label}Flatten" >> beam.Flatten()

        # The files are read twice: once to infer the column types, once to convert the rows
        # with those types (a side input). One read feeding both would make the runner hold
        # every parsed line until the types are known: the span in memory.
        column_infos = beam.pvalue.AsSingleton(
            parsed_lines("Infer")
            | "InferColumnTypes" >> beam.CombineGlobally(
                csv_decoder.ColumnTypeInferrer(column_names, skip_blank_lines=True)))
        return parsed_lines("") | "ToTFExample" >> beam.ParDo(_ParsedCsvToTfExample(), column_infos)


def _in_columns(row: Sequence[bytes], where: Sequence[Optional[int]], width: int) -> Sequence[bytes]:
    """``row`` laid out in the union's columns: ``where[i]`` is the row's index of union column
    ``i``, None when its file lacks that column (an empty cell). A ragged row (not ``width``
    cells, its header's) is left as it is, for the CSV decoder to refuse."""
    if len(row) != width:
        return row
    return [row[w] if w is not None else b"" for w in where]


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
