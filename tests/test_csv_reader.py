"""SpanExampleGen's CSV reader (pyarrow + tfx-bsl's C++ encoder) against TFX 1.16's own CSV path
(``csv_example_gen.executor._CsvToExample``: its record reader, tfx-bsl's line parser and type
inference, ``_ParsedCsvToTfExample``), both run in real Beam pipelines on the same files: the
serialized tf.Examples must be the same bytes as TFX's deterministically serialized ones (what
ExampleGen's hash split hashes, so rows also land in the same split)."""
from __future__ import annotations

import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
TAXI = REPO / "data" / "taxi"


def _write_and_read(pcoll, folder: pathlib.Path):
    import apache_beam as beam

    _ = pcoll | beam.io.WriteToTFRecord(str(folder / "examples"))
    return folder


def _records(folder: pathlib.Path):
    import tensorflow as tf

    files = sorted(str(f) for f in folder.iterdir())
    return [r.numpy() for r in tf.data.TFRecordDataset(files)] if files else []


def tfx_examples(input_base: pathlib.Path, pattern: str, out: pathlib.Path):
    """TFX's CsvExampleGen transform on ``input_base/pattern``, each tf.Example serialized as its
    hash split serializes it (deterministic: features sorted by name)."""
    import apache_beam as beam
    from tfx.components.example_gen.csv_example_gen.executor import _CsvToExample

    with beam.Pipeline() as p:
        _write_and_read(p | _CsvToExample({"input_base": str(input_base)}, pattern)
                        | beam.Map(lambda e: e.SerializeToString(deterministic=True)), out)
    return _records(out)


def our_examples(files, out: pathlib.Path):
    import apache_beam as beam

    from driftguard.components.example_gen.readers import CsvFilesToExamples

    with beam.Pipeline() as p:
        _write_and_read(p | CsvFilesToExamples([str(f) for f in files]), out)
    return _records(out)


def _assert_same(ours, theirs):
    import tensorflow as tf

    assert len(ours) == len(theirs)
    assert sorted(ours) == sorted(theirs)          # byte for byte, row for row
    # and the parsed protos too (the bytes could only match by accident if they were empty)
    assert sorted(map(str, map(tf.train.Example.FromString, ours))) == \
        sorted(map(str, map(tf.train.Example.FromString, theirs)))


@pytest.mark.parametrize("span", [1, 16])
def test_the_taxi_csv_gives_tfxs_examples_byte_for_byte(span, tmp_path):
    ours = our_examples([TAXI / f"span-{span}" / "data.csv"], tmp_path / "ours")
    theirs = tfx_examples(TAXI, f"span-{span}/data.csv", tmp_path / "tfx")
    assert len(ours) > 100
    _assert_same(ours, theirs)


def test_a_window_of_taxi_spans_gets_one_type_per_column_as_tfx_infers_it(tmp_path):
    files = sorted(TAXI.glob("span-1*/data.csv"))          # spans 1, 10-16: one pattern for TFX
    ours = our_examples(files, tmp_path / "ours")
    theirs = tfx_examples(TAXI, "span-1*/data.csv", tmp_path / "tfx")
    _assert_same(ours, theirs)


# Empties, quotes (commas, doubled quotes, a newline inside), ints that become floats further
# down, cells Python's int()/float() read but no simple pattern does (" 8 ", "+7", "1_000",
# "nan", "inf", "1e39" beyond float32), an int64 overflow (text), a lone space (text), UTF-8
# text, an all-empty column, a blank line, and a second file with CRLF line endings.
HAND_MADE = (
    'id,count,ratio,odd_int,odd_float,big,company,blank,space\n'
    '1,3,1,+7,nan,1,"Flash, Inc.",,x\n'
    '2,,2.5, 8 ,inf,9223372036854775807,"say ""hi""",,\n'
    '\n'
    '3,-4,,1_000,1e39,2,"multi\nline",""," "\n'
    '4,007,.5,9223372036854775807,+1.5,9223372036854775808,Café,,\n'
    '5,0,-0.0,-1,1_000.5,,,,\n'
)
HAND_MADE_CRLF = ('id,count,ratio,odd_int,odd_float,big,company,blank,space\r\n'
                  '6,12,1e5,2,-inf,3,"",,y\r\n'
                  '7,,3,,.25e-3,4,Blue,,\r\n')


def _hand_made(folder: pathlib.Path) -> list:
    folder.mkdir(parents=True)
    (folder / "a.csv").write_bytes(HAND_MADE.encode())
    (folder / "b.csv").write_bytes(HAND_MADE_CRLF.encode())
    return [folder / "a.csv", folder / "b.csv"]


def test_a_hand_made_csv_gives_tfxs_examples_byte_for_byte(tmp_path):
    import tensorflow as tf

    files = _hand_made(tmp_path / "data" / "span-1")
    ours = our_examples(files, tmp_path / "ours")
    theirs = tfx_examples(tmp_path / "data", "span-1/*.csv", tmp_path / "tfx")
    _assert_same(ours, theirs)
    rows = {e.features.feature["id"].int64_list.value[0]: e.features.feature
            for e in map(tf.train.Example.FromString, ours)}
    assert len(rows) == 7
    assert list(rows[1]["count"].int64_list.value) == [3]
    assert rows[2]["count"].HasField("int64_list") and not rows[2]["count"].int64_list.value   # empty: no value
    assert list(rows[1]["ratio"].float_list.value) == [1.0]                                     # int -> FLOAT column
    assert list(rows[2]["odd_int"].int64_list.value) == [8] and list(rows[3]["odd_int"].int64_list.value) == [1000]
    assert list(rows[4]["big"].bytes_list.value) == [b"9223372036854775808"]                   # beyond int64: text
    assert list(rows[1]["company"].bytes_list.value) == [b"Flash, Inc."]
    assert list(rows[2]["company"].bytes_list.value) == [b'say "hi"']
    assert list(rows[3]["company"].bytes_list.value) == [b"multi\nline"]
    assert not rows[1]["blank"].HasField("kind")            # all-empty column: an empty Feature, as TFX
    assert list(rows[3]["space"].bytes_list.value) == [b" "]


def test_the_splits_are_the_ones_tfxs_hash_gives(tmp_path):
    """ExampleGen hashes each record's bytes (TFX: the deterministically serialized Example)."""
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn
    from tfx.proto import example_gen_pb2

    ours = our_examples([TAXI / "span-2" / "data.csv"], tmp_path / "ours")
    config = example_gen_pb2.SplitConfig(splits=[example_gen_pb2.SplitConfig.Split(name="train", hash_buckets=2),
                                                 example_gen_pb2.SplitConfig.Split(name="eval", hash_buckets=1)])
    theirs = tfx_examples(TAXI, "span-2/data.csv", tmp_path / "tfx")
    import tensorflow as tf

    def splits(records, parse):
        return sorted((_PartitionFn(parse(r), 2, [2, 3], config), r) for r in records)

    assert splits(ours, lambda r: r) == splits(theirs, tf.train.Example.FromString)


@pytest.mark.parametrize("text, line, what", [
    ("a,b\n1,2\n3\n4,5\n", 3, "1 cells where the header has 2"),
    ("a,b\n1,2\n3,4,5\n", 3, "3 cells where the header has 2"),
])
def test_a_ragged_row_names_the_file_and_line(tmp_path, text, line, what):
    from driftguard.components.example_gen.readers import CsvError

    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(CsvError, match=rf"bad\.csv: line {line}: {what}"):
        our_examples([tmp_path / "bad.csv"], tmp_path / "out")


def test_bytes_that_are_not_utf8_name_the_file_and_line(tmp_path):
    from driftguard.components.example_gen.readers import CsvError

    (tmp_path / "bad.csv").write_bytes(b"a,b\n1,x\n2,\xff\xfe\n")
    with pytest.raises(CsvError, match=r"bad\.csv: line 3: bytes that are not UTF-8"):
        our_examples([tmp_path / "bad.csv"], tmp_path / "out")


def test_a_header_only_file_has_no_rows(tmp_path):
    (tmp_path / "a.csv").write_text("a,b\n1,x\n")
    (tmp_path / "b.csv").write_text("a,b\n")
    assert len(our_examples([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "out")) == 1


def _run_span_example_gen(data_root: pathlib.Path, out: pathlib.Path, span: int):
    """The span check's ExampleGen (SpanExampleGen, no shuffle) on a CSV span, as its executor runs."""
    from tfx.types import standard_artifacts

    from driftguard.components.example_gen import executor, spec
    from driftguard.components.example_gen.component import SpanExampleGen

    component = SpanExampleGen(data_root=str(data_root), pattern="span-{SPAN}/*", data_format="csv",
                               spans=[span], shuffle=False)
    examples = standard_artifacts.Examples()
    examples.uri = str(out)
    executor.Executor().Do({}, {spec.EXAMPLES_KEY: [examples]}, dict(component.exec_properties))
    return examples


def test_a_span_checks_examples_are_the_ones_tfxs_csv_path_gives_split_for_split(tmp_path):
    """What every component of a span check reads (the Examples artifact, split by split) is
    what it was with TFX's CSV path: the same records in the same splits, so the same verdict."""
    import tensorflow as tf
    from tfx.components.example_gen.base_example_gen_executor import _PartitionFn
    from tfx.types import artifact_utils

    from driftguard.components.example_gen.component import DEFAULT_BUCKETS
    from tfx.proto import example_gen_pb2

    examples = _run_span_example_gen(TAXI, tmp_path / "examples", 3)
    names = artifact_utils.decode_split_names(examples.split_names)
    assert names == list(DEFAULT_BUCKETS)
    got = {}
    for name in names:
        files = [str(p) for p in (tmp_path / "examples" / f"Split-{name}").iterdir()]
        got[name] = sorted(r.numpy() for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    config = example_gen_pb2.SplitConfig(splits=[example_gen_pb2.SplitConfig.Split(name=n, hash_buckets=b)
                                                 for n, b in DEFAULT_BUCKETS.items()])
    buckets = [2, 3]
    theirs = tfx_examples(TAXI, "span-3/*", tmp_path / "tfx")
    expected = {n: [] for n in names}
    for record in theirs:
        expected[names[_PartitionFn(tf.train.Example.FromString(record), 2, buckets, config)]].append(record)
    assert got == {n: sorted(v) for n, v in expected.items()}
    assert len(got["train"]) > len(got["eval"]) > 0


def test_files_of_one_span_with_different_headers_are_refused_naming_both(tmp_path):
    from driftguard.components.example_gen.readers import CsvError

    span = tmp_path / "data" / "span-4"
    span.mkdir(parents=True)
    (span / "a.csv").write_text("fare,company\n1.5,Flash\n")
    (span / "b.csv").write_text("fare,tips\n2.5,1\n")
    with pytest.raises(CsvError, match=r"span 4: .*b\.csv has a different header than .*a\.csv.*"
                                       r"columns only here: \['tips'\], missing here: \['company'\]"):
        _run_span_example_gen(tmp_path / "data", tmp_path / "examples", 4)


def test_parquet_examples_are_serialized_deterministically_too(tmp_path):
    """The Parquet reader shares the encoding: its records are their own deterministic
    serialization (the C++ encoder alone orders features by a per-process hash)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf
    import apache_beam as beam

    from driftguard.components.example_gen.readers import ParquetFilesToExamples

    pq.write_table(pa.table({f"f{i}": pa.array([i, None, 0], pa.int64()) for i in range(12)}
                            | {"name": pa.array(["a", "", None])}), tmp_path / "a.parquet")
    with beam.Pipeline() as p:
        _write_and_read(p | ParquetFilesToExamples([str(tmp_path / "a.parquet")]), tmp_path / "out")
    records = _records(tmp_path / "out")
    assert len(records) == 3
    assert all(r == tf.train.Example.FromString(r).SerializeToString(deterministic=True) for r in records)
