"""SpanExampleGen's readers on real files, in real Beam pipelines: Parquet keeping zeros (TFX
1.16's own Parquet executor writes every 0, 0.0 as a missing value), and CSV files of a window
whose headers differ."""
from __future__ import annotations


def test_zeros_stay_values_and_only_nulls_and_nan_are_missing(tmp_path):
    import apache_beam as beam
    import pyarrow as pa
    import pyarrow.parquet as pq
    import tensorflow as tf

    from driftguard.components.example_gen.readers import ParquetFilesToExamples

    (tmp_path / "2013-01").mkdir()
    pq.write_table(pa.table({
        "arr_delay": pa.array([0.0, None, -3.5, float("nan")], pa.float64()),
        "precip": pa.array([0.0, 0.0, 0.25, 0.0], pa.float64()),
        "hour": pa.array([0, 23, None, 5], pa.int64()),
        "carrier": pa.array(["", "UA", None, "B6"], pa.string()),
    }), tmp_path / "2013-01" / "part.parquet")
    with beam.Pipeline() as p:
        (p | ParquetFilesToExamples([str(tmp_path / "2013-01" / "part.parquet")])
         | beam.io.WriteToTFRecord(str(tmp_path / "out" / "examples")))
    got = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in (tmp_path / "out").iterdir()])]

    def values(example, name):
        f = tf.train.Example.FromString(example).features.feature[name]
        return list(f.float_list.value) or list(f.int64_list.value) or [v.decode() for v in f.bytes_list.value]

    table = [{k: values(e, k) for k in ("arr_delay", "precip", "hour", "carrier")} for e in got]
    assert len(table) == 4
    assert {"arr_delay": [0.0], "precip": [0.0], "hour": [0], "carrier": [""]} in table    # zeros and "" kept
    assert {"arr_delay": [], "precip": [0.0], "hour": [23], "carrier": ["UA"]} in table   # null: no value
    assert {"arr_delay": [-3.5], "precip": [0.25], "hour": [], "carrier": []} in table
    assert {"arr_delay": [], "precip": [0.0], "hour": [5], "carrier": ["B6"]} in table    # NaN: no value


def test_csv_files_with_different_headers_are_read_in_the_union_of_their_columns(tmp_path):
    import apache_beam as beam
    import tensorflow as tf

    from driftguard.components.example_gen.readers import CsvFilesToExamples

    files = {"a.csv": "fare,company\n1.5,Flash\n2,Blue\n",          # span 1
             "b.csv": "company,fare,tips\nFlash,3.25,1\n",           # span 2: moved, one more
             "c.csv": "fare\n4\n"}                                   # span 3: company dropped
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with beam.Pipeline() as p:
        (p | CsvFilesToExamples([str(tmp_path / n) for n in files])          # serialized tf.Examples
         | beam.io.WriteToTFRecord(str(tmp_path / "out" / "examples")))
    rows = []
    for r in tf.data.TFRecordDataset([str(f) for f in (tmp_path / "out").iterdir()]):
        feats = tf.train.Example.FromString(r.numpy()).features.feature
        rows.append({k: (list(f.float_list.value) or list(f.int64_list.value)
                         or [v.decode() for v in f.bytes_list.value]) for k, f in feats.items()})
    by_fare = {row["fare"][0]: row for row in rows}
    assert sorted(by_fare) == [1.5, 2.0, 3.25, 4.0]            # one type for the column: FLOAT
    assert by_fare[3.25] == {"fare": [3.25], "company": ["Flash"], "tips": [1]}
    assert by_fare[1.5]["company"] == ["Flash"] and by_fare[1.5].get("tips", []) == []
    assert by_fare[4.0].get("company", []) == [] and by_fare[2.0]["company"] == ["Blue"]


def _run_span_example_gen(tmp_path, name: str, shuffle: int):
    import json

    from tfx.types import standard_artifacts

    from driftguard.components.example_gen import executor, spec
    from driftguard.components.example_gen.component import SpanExampleGen

    component = SpanExampleGen(data_root=str(tmp_path / "data"), pattern="span-{SPAN}/*", data_format="csv",
                               spans=[3], shuffle=bool(shuffle))
    properties = dict(component.exec_properties)
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / name)
    executor.Executor().Do({}, {spec.EXAMPLES_KEY: [examples]}, properties)
    assert properties[spec.SHUFFLE_KEY] == shuffle and json.loads(properties[spec.SPANS_KEY]) == [3]
    return examples


def test_a_span_written_without_shuffle_holds_the_same_splits_and_rows(tmp_path):
    import tensorflow as tf
    from tfx.components.util import examples_utils
    from tfx.types import artifact_utils

    span = tmp_path / "data" / "span-3"
    span.mkdir(parents=True)
    lines = ["trip_id,fare,company"] + [f"{i},{i * 0.5},{'Flash' if i % 2 else ''}" for i in range(3000)]
    (span / "a.csv").write_text("\n".join(lines[:1500]) + "\n")
    (span / "b.csv").write_text("\n".join(lines[:1] + lines[1500:]) + "\n")

    def rows(examples):
        out = {}
        for split in artifact_utils.decode_split_names(examples.split_names):
            files = [str(p) for p in (tmp_path / examples.uri / f"Split-{split}").iterdir()]
            assert files and all(f.endswith(".gz") for f in files)
            out[split] = sorted(tf.train.Example.FromString(r.numpy()).features.feature["trip_id"].int64_list.value[0]
                                for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
        return out

    shuffled, in_order = _run_span_example_gen(tmp_path, "shuffled", 1), _run_span_example_gen(tmp_path, "ordered", 0)
    assert in_order.split_names == shuffled.split_names == '["train", "eval"]'
    assert rows(in_order) == rows(shuffled)          # the same hash split, row for row
    assert sorted(rows(in_order)["train"] + rows(in_order)["eval"]) == list(range(3000))
    for examples in (in_order, shuffled):
        assert examples_utils.get_payload_format(examples) == examples_utils.get_payload_format(shuffled)
        assert examples.get_string_custom_property("file_format") == "tfrecords_gzip"
