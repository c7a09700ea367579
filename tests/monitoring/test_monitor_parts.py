"""The monitor's parts on small, hand-made inputs (no trained model): batched log reading and
decoding against predictlog's one-record reference, labels files, the metrics endpoint's
guard, the config section and the live alert rules."""
from __future__ import annotations

import urllib.request

import numpy as np
import pytest

from driftguard.monitoring import labels as labels_lib
from driftguard.monitoring import logreader
from driftguard.serving import predictlog as pl


def _example(fare, company=None, hour=None) -> bytes:
    import tensorflow as tf

    feature = {"fare": tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))}
    if company is not None:
        feature["company"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[company.encode()]))
    if hour is not None:
        feature["trip_start_hour"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[hour]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _log(i, n=1, ids=True, version=3):
    examples = [_example(float(i * 10 + j), company=("A" if j % 2 else None), hour=j) for j in range(n)]
    record = pl.make_predict_log("taxi", version, examples,
                                 {"probabilities": np.full((n, 1), 0.1 * (i % 10), np.float32)},
                                 [f"r{i}-{j}" for j in range(n)], timestamp=1_700_000_000 + i)
    if not ids:
        del record.predict_log.response.outputs[pl.REQUEST_ID_OUTPUT]
    return record


KINDS = {"fare": "float", "company": "string", "trip_start_hour": "int"}


def test_batches_read_exactly_what_follow_reads_across_rotation_and_torn_tails(tmp_path):
    clock = [0.0]
    w = pl.PredictionLogWriter(tmp_path, max_bytes=1500, clock=lambda: clock[0])
    for i in range(40):
        w.write(_log(i, n=1 + i % 3))
        clock[0] += 1
    w.close()
    files = pl.log_files(tmp_path)
    assert len(files) > 3
    # a writer killed mid-record in an older file, and one still writing the newest
    older = files[1]
    older.write_bytes(older.read_bytes() + pl.frame(_log(99).SerializeToString())[:30])
    newest = files[-1]
    complete = newest.read_bytes()
    newest.write_bytes(complete + pl.frame(_log(98).SerializeToString())[:25])
    expected = list(pl.follow(tmp_path))
    got, pos = [], pl.Position()
    for size in [1, 2, 5, 7, 100, 3] * 20:
        batch = logreader.read_batch(tmp_path, pos, max_records=size)
        if batch is None:
            break
        got += [(batch.record(i), batch.position_after(i)) for i in range(len(batch))]
        pos = batch.position
    assert got == expected
    assert pos == expected[-1][1] and pos.offset == len(complete)
    assert logreader.read_batch(tmp_path, pos) is None       # the torn tail of the newest file waits


@pytest.mark.parametrize("c_crc", [True, False], ids=["crc32c-from-compiled-code", "crc32c-per-record"])
def test_a_corrupt_record_is_named_by_file_and_byte(tmp_path, monkeypatch, c_crc):
    assert logreader._C_CRC32C, "google_crc32c's C library was not found: the compiled CRC path is not used"
    monkeypatch.setattr(logreader, "_C_CRC32C", c_crc)
    with pl.PredictionLogWriter(tmp_path) as w:
        for i in range(3):
            w.write(_log(i))
    f = pl.log_files(tmp_path)[0]
    data = bytearray(f.read_bytes())
    first = 16 + int.from_bytes(data[:8], "little")
    data[first + 20] ^= 0xFF
    assert len(logreader.read_batch(tmp_path)) == 3
    f.write_bytes(bytes(data))
    with pytest.raises(pl.PredictionLogError, match=rf"{f.name}: corrupt record at byte {first} \(data CRC"):
        logreader.read_batch(tmp_path)


def test_decoder_agrees_with_predictlog_decode_on_every_kind_of_record(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    records = [_log(0), _log(1, n=3), _log(2, ids=False), _log(3, n=2, version=4)]
    two_class = _log(4, n=2)                                  # [n, 2] output: the positive class is column 1
    two_class.predict_log.response.outputs["probabilities"].CopyFrom(
        __import__("tensorflow").make_tensor_proto(np.array([[0.8, 0.2], [0.3, 0.7]], np.float32)))
    records.append(two_class)
    classify = prediction_log_pb2.PredictionLog()              # TF Serving's Classify API log
    classify.log_metadata.model_spec.name = "taxi"
    classify.log_metadata.model_spec.version.value = 3
    ex = classify.classify_log.request.input.example_list.examples.add()
    ex.ParseFromString(_example(7.5, "B", 5))
    cls = classify.classify_log.response.result.classifications.add()
    cls.classes.add(label="0", score=0.4)
    cls.classes.add(label="1", score=0.6)
    records.append(classify)
    with pl.PredictionLogWriter(tmp_path) as w:
        for r in records:
            w.write(r)
    batch = logreader.read_batch(tmp_path)
    d = logreader.LogDecoder(KINDS).decode(batch)
    assert d.record_ends.tolist() == [1, 4, 5, 7, 9, 10]
    np.testing.assert_allclose(d.probability, [0, .1, .1, .1, .2, .3, .3, .2, .7, .6], atol=1e-6)
    assert d.request_ids.tolist() == ["r0-0", "r1-0", "r1-1", "r1-2", None, "r3-0", "r3-1", "r4-0", "r4-1", None]
    assert d.versions.tolist() == [3, 3, 3, 3, 3, 4, 4, 3, 3, 3]
    np.testing.assert_allclose(d.columns["fare"], [0, 10, 11, 12, 20, 30, 31, 40, 41, 7.5])
    assert d.columns["company"].tolist() == [None, None, "A", None, None, None, "A", None, "A", "B"]
    np.testing.assert_allclose(d.columns["trip_start_hour"], [0, 0, 1, 2, 0, 0, 1, 0, 1, 5])
    assert d.last_timestamp is None or d.last_timestamp == 0      # the classify record carries no time
    # the fast path alone (no record needing predictlog.decode) gives the same rows
    with pl.PredictionLogWriter(tmp_path / "fast") as w:
        for r in records[:4]:
            w.write(r)
    fast = logreader.LogDecoder(KINDS).decode(logreader.read_batch(tmp_path / "fast"))
    assert fast.request_ids.tolist() == d.request_ids.tolist()[:7]
    np.testing.assert_allclose(fast.columns["fare"], d.columns["fare"][:7])
    assert fast.last_timestamp == 1_700_000_003
    # without labels the monitor only needs to know which predictions carry an id
    unread = logreader.LogDecoder(KINDS).decode(logreader.read_batch(tmp_path / "fast"), request_ids=False)
    assert unread.request_ids.tolist() == ["", "", "", "", None, "", ""]


def test_a_feature_of_another_type_counts_as_missing(tmp_path):
    import tensorflow as tf

    odd = tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"12.5"]))})).SerializeToString()
    with pl.PredictionLogWriter(tmp_path) as w:
        w.write(pl.make_predict_log("taxi", 1, [_example(3.0), odd], {"probabilities": np.zeros((2, 1))}, ["a", "b"]))
    d = logreader.LogDecoder(KINDS).decode(logreader.read_batch(tmp_path))
    assert d.columns["fare"][0] == 3.0 and np.isnan(d.columns["fare"][1])



def test_the_compiled_path_reads_the_usual_records_itself_and_leaves_the_rest(tmp_path):
    from tensorflow_serving.apis import prediction_log_pb2

    two_class = _log(4, n=2)
    two_class.predict_log.response.outputs["probabilities"].CopyFrom(
        __import__("tensorflow").make_tensor_proto(np.array([[0.8, 0.2], [0.3, 0.7]], np.float32)))
    doubles = _log(5, n=2)                                    # float64 values in double_val, no request ids
    out = doubles.predict_log.response.outputs["probabilities"]
    out.Clear()
    out.dtype, out.tensor_shape.dim.add().size = 2, 2
    out.double_val.extend([0.25, 0.75])
    del doubles.predict_log.response.outputs[pl.REQUEST_ID_OUTPUT]
    regress = prediction_log_pb2.PredictionLog()
    regress.regress_log.request.input.example_list.examples.add().ParseFromString(_example(1.0))
    records = [_log(0), _log(1, n=3), two_class, doubles, regress]
    with pl.PredictionLogWriter(tmp_path) as w:
        for r in records:
            w.write(r)
    batch = logreader.read_batch(tmp_path)
    decoder = logreader.LogDecoder(KINDS)
    fast, parts = decoder._scan(batch)
    assert fast.tolist() == [True, True, True, True, False]
    assert parts["m"].tolist() == [1, 3, 2, 2, 0]
    np.testing.assert_allclose(parts["prob"], [0, .1, .1, .1, .2, .7, .25, .75], atol=1e-6)
    assert parts["ids"].tolist() == ["r0-0", "r1-0", "r1-1", "r1-2", "r4-0", "r4-1", None, None]
    d = decoder.decode(batch)
    assert d.record_ends.tolist() == [1, 4, 6, 8, 9]          # the regress log: one row, via predictlog.decode
    np.testing.assert_allclose(d.columns["fare"][-1], 1.0)


def test_an_example_that_is_not_valid_wire_format_counts_as_missing(tmp_path, caplog):
    good = _example(3.0, "A", 7)
    with pl.PredictionLogWriter(tmp_path) as w:
        w.write(pl.make_predict_log("taxi", 1, [good, b"\x0a\xff\xff\xff", good],
                                    {"probabilities": np.zeros((3, 1))}, ["a", "b", "c"]))
    d = logreader.LogDecoder(KINDS).decode(logreader.read_batch(tmp_path))
    np.testing.assert_array_equal(d.columns["fare"], [3.0, np.nan, 3.0])
    assert d.columns["company"].tolist() == ["A", None, "A"]
    assert d.request_ids.tolist() == ["a", "b", "c"]
    assert "1 logged example(s) are not valid tf.Example bytes" in caplog.text



def test_text_values_are_grouped_by_their_bytes():
    from driftguard.monitoring import wire

    rng = np.random.default_rng(0)            # many short, repeated, empty and invalid-UTF-8 values
    words = [bytes(rng.integers(97, 100, rng.integers(0, 4))) for _ in range(3000)] + [b"\xff", b"\xff"]
    raw = b"".join(words)
    lengths = np.array([len(w) for w in words])
    ends = np.cumsum(lengths)
    starts = ends - lengths
    starts[::7] = -1                            # missing
    got = wire.group_strings(raw, np.frombuffer(raw, np.uint8), starts, ends)
    assert got.tolist() == [None if s < 0 else raw[s:e].decode("utf-8", "replace")
                            for s, e in zip(starts.tolist(), ends.tolist())]


# ---------------------------------------------------------------- labels


def test_labels_are_read_incrementally_and_bad_rows_name_file_and_line(tmp_path):
    folder = tmp_path / "labels"
    folder.mkdir()
    a = folder / "a.csv"
    a.write_text("request_id,label\nr1,1\nr2,FALSE\nr3,tr")          # r3's line is still being written
    rows, pos = labels_lib.read_new(folder, {})
    assert rows.pairs() == [("r1", 1), ("r2", 0)]
    with open(a, "a") as f:
        f.write("ue\n")
    (folder / "b.csv").write_text("request_id,label\r\nr4,0\r\n\r\n")
    rows, pos = labels_lib.read_new(folder, pos)
    assert rows.pairs() == [("r3", 1), ("r4", 0)]
    assert labels_lib.read_new(folder, pos)[0].pairs() == []
    with open(a, "a") as f:
        f.write("r5,1\nr6,2\n")
    with pytest.raises(labels_lib.LabelsError, match=r"a\.csv:6: label '2' is not 0/1 or true/false"):
        labels_lib.read_new(folder, pos)
    (tmp_path / "h.csv").write_text("id,y\n1,1\n")
    with pytest.raises(labels_lib.LabelsError, match=r"h\.csv:1: the header must be 'request_id,label'"):
        labels_lib.read_new(tmp_path / "h.csv", {})
    (tmp_path / "f.csv").write_text("request_id,label\nr1,1,extra\n")
    with pytest.raises(labels_lib.LabelsError, match=r"f\.csv:2: expected 2 fields"):
        labels_lib.read_new(tmp_path / "f.csv", {})
    with pytest.raises(labels_lib.LabelsError, match="nope: no such labels file or folder"):
        labels_lib.read_new(tmp_path / "nope", {})


def _read_rows_one_by_one(path):
    """The row-by-row reader over a whole file: what the fast path must agree with."""
    data = path.read_bytes()
    text = data[:data.rfind(b"\n") + 1].decode("utf-8")
    return labels_lib._read_rows(path, text, labels_lib.FilePosition(), 10 ** 9)


@pytest.mark.parametrize("body", [
    "a1,1\na2,0\n",
    " a1 ,  TRUE \r\na2,false\r\na3,1.0\r\n",           # spaces, case, CRLF
    "a1,1\n\na2,0\n,\na3,1\n",                            # blank lines and a blank row: skipped
    '"a,1",1\n"a2",0\n',                                    # quoted ids
    "".join(f"q{k},{k % 2}\n" for k in range(5000)),
])
def test_labels_fast_path_agrees_with_the_row_by_row_reader(tmp_path, body):
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\n" + body, newline="")
    expected, end = _read_rows_one_by_one(path)
    plain = '"' not in body and "\n\n" not in body and "\n,\n" not in body
    assert (labels_lib._parse_fast(body.encode(), body.count("\n")) is not None) == plain   # which reader runs
    rows, pos = labels_lib.read_new(path, {})
    assert rows.pairs() == expected and pos[path.name] == end.to_dict()
    # in pieces of at most 7 rows each, resuming from the saved position: the same rows
    pieces, pos = [], {}
    while True:
        part, pos = labels_lib.read_new(path, pos, max_rows=7)
        if not len(part) and pos[path.name]["offset"] == end.offset:
            break
        assert len(part) <= 7
        pieces += part.pairs()
    assert pieces == expected and pos[path.name] == end.to_dict()


def test_request_ids_with_bad_utf8_are_replaced_not_fatal():
    raw = b"..r1..\xff\xfe..\xc3\xa9..q"
    buf = np.frombuffer(raw, np.uint8)
    starts, ends = np.array([2, 6, 10, 14, 2]), np.array([4, 8, 12, 15, 2])
    assert logreader._strings(raw, buf, starts, ends).tolist() == ["r1", "\ufffd\ufffd", "\u00e9", "q", ""]
    assert logreader._strings(raw, buf, starts[[0, 2, 3]], ends[[0, 2, 3]]).tolist() == ["r1", "\u00e9", "q"]


# ---------------------------------------------------------------- the pending sets' journal


def _bare_monitor(tmp_path, **settings):
    """A Monitor over an empty log folder: its state store and pending sets, no model needed."""
    from driftguard.pipeline import config as config_lib
    from driftguard.monitoring import monitor as monitor_lib

    (tmp_path / "logs").mkdir(exist_ok=True)
    from helpers import write_config

    cfg = config_lib.load(write_config(tmp_path / "c.json", runs=str(tmp_path / "runs"), monitor=settings))
    return lambda: monitor_lib.Monitor(cfg, logs=tmp_path / "logs", state=tmp_path / "state")


def test_pending_sets_survive_restarts_exactly_through_journal_and_snapshots(tmp_path, monkeypatch):
    """Random adds (repeated ids among them), joins and expiries over many commits, with
    restarts: the restored sets equal the live ones, in order; snapshots keep the journal
    short."""
    from driftguard.monitoring import pending as pending_lib

    monkeypatch.setattr(pending_lib, "SNAPSHOT_SLACK", 50)
    new_monitor = _bare_monitor(tmp_path, label_retention=300)
    rng = np.random.default_rng(7)
    mon = new_monitor()
    snapshots = 0

    def sets(m):
        return {"predictions": m.pending_predictions, "labels": m.pending_labels}

    try:
        for step in range(60):
            ids = [f"id{k}" for k in rng.integers(0, 600, int(rng.integers(1, 80)))]
            if step % 3:                                   # predictions wait (retried ids replace)
                prob = np.where(rng.random(len(ids)) < 0.1, np.nan, rng.random(len(ids)))
                version = int(rng.integers(1, 4))
                mon.pending_predictions.add(ids, {"probability": prob, "version": np.full(len(ids), version)})
                mon.pending_predictions.expire(300)
            else:                                          # labels wait
                labels = rng.integers(0, 2, len(ids)).astype(np.int8)
                mon.pending_labels.add(ids, {"label": labels})
                mon.pending_labels.expire(300)
            gone = mon.pending_predictions.ids()[::5] + ["never-pending"]   # joined
            found, hit = mon.pending_predictions.take(gone)
            assert found.tolist() == [True] * (len(gone) - 1) + [False] and hit["version"].size == len(gone) - 1
            before = {k: p.journal_rows for k, p in sets(mon).items()}
            mon.commit()
            snapshots += sum(p.journal_rows < before[k] for k, p in sets(mon).items())
            for live in sets(mon).values():
                assert len(live) <= 300
                assert live.journal_rows <= 2 * len(live) + 50 + 80 * 2
            if step % 7 == 6:                              # restart
                live = {k: list(p.rows()) for k, p in sets(mon).items()}
                mon.close()
                mon = new_monitor()
                restored = {k: list(p.rows()) for k, p in sets(mon).items()}
                assert [(k, repr(v)) for k, v in restored["predictions"]] == \
                    [(k, repr(v)) for k, v in live["predictions"]]          # nan-safe, in order
                assert restored["labels"] == live["labels"]
    finally:
        mon.close()
    assert snapshots >= 3


def test_a_pending_set_joins_in_order_and_a_retried_id_moves_to_the_end():
    from driftguard.monitoring.pending import PREDICTION_FIELDS, PendingSet

    pending = PendingSet(PREDICTION_FIELDS)
    pending.add(["a", "b", "c"], {"probability": np.array([0.1, np.nan, 0.3]), "version": np.array([1, 2, 3])})
    pending.add(["a", "d"], {"probability": np.array([0.4, 0.5]), "version": np.array([4, 5])})   # a retried
    assert pending.ids() == ["b", "c", "a", "d"]
    found, hit = pending.take(["d", None, "zz", "b"])
    assert found.tolist() == [True, False, False, True]
    assert hit["version"].tolist() == [5, 2] and hit["version"].dtype == np.int64
    assert hit["probability"][0] == 0.5 and np.isnan(hit["probability"][1])
    assert pending.expire(1) == 1 and list(pending.rows()) == [("a", (0.4, 4))]


def test_a_state_file_of_another_format_is_refused_naming_it(tmp_path):
    import sqlite3

    from driftguard.monitoring.errors import MonitorError
    from driftguard.monitoring.store import STATE_FILE

    path = tmp_path / "state" / STATE_FILE
    path.parent.mkdir()
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('format', '1');
    """)
    db.commit()
    db.close()
    with pytest.raises(MonitorError, match=r"state\.sqlite: state format 1, this driftguard reads format 3 \(and upgrades 2\)"):
        _bare_monitor(tmp_path)()


# ---------------------------------------------------------------- metrics endpoint


def test_metrics_refuse_a_public_address_without_a_token_and_check_it_with_one():
    from driftguard.monitoring import exporter

    collector = exporter.MonitorCollector()
    collector.snapshot = {"model": "taxi", "version": 2, "counters": {"records": 5, "alerts": {"feature_psi/critical": 1}}}
    registry = exporter.make_registry(collector)
    with pytest.raises(exporter.MetricsError, match="refusing to serve metrics on '0.0.0.0' without a bearer token"):
        exporter.MetricsServer(registry, "0.0.0.0", 0)
    assert exporter.is_loopback("127.0.0.1") and exporter.is_loopback("localhost")
    assert not exporter.is_loopback("0.0.0.0") and not exporter.is_loopback("")
    server = exporter.MetricsServer(registry, "127.0.0.1", 0)
    try:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        samples = exporter.parse_exposition(urllib.request.urlopen(server.url, timeout=10).read().decode())
    finally:
        server.close()
    assert samples["driftguard_monitor_records_total"][(("model", "taxi"),)] == 5
    assert samples["driftguard_monitor_alerts_total"][(("model", "taxi"), ("rule", "feature_psi"),
                                                       ("severity", "critical"))] == 1
    assert samples["driftguard_monitor_serving_version"][(("model", "taxi"),)] == 2


# ---------------------------------------------------------------- config and rules


@pytest.mark.parametrize("monitor, message", [
    ({"window": 50}, r"monitor\.window must be between 100"),
    ({"window": 1000, "step": 2000}, r"monitor\.step must be between 0 and 1000"),
    ({"windw": 1000}, r"unknown config key 'monitor\.windw'"),
    ({"max_false_alerts_per_100k": 0}, r"monitor\.max_false_alerts_per_100k must be between"),
    ({"label_fn": "labels"}, r"config key 'monitor\.label_fn' moved: it is now model\.label\.fn"),
    ({"stream_features": "fare"}, r"monitor\.stream_features must be a list"),
])
def test_monitor_config_errors_name_the_key(tmp_path, monitor, message):
    from driftguard.pipeline import config as config_lib

    from helpers import write_config

    path = write_config(tmp_path / "c.json", monitor=monitor)
    with pytest.raises(config_lib.ConfigError, match=message):
        config_lib.load(path)


def test_live_rules_are_keyed_by_window_and_need_the_test_to_agree():
    from driftguard.components.alerts import evaluate, parse_alerts_config

    cfg = parse_alerts_config(None)
    report = {"status": "compared", "drift_detected": True, "drifted_features": ["fare"],
              "features": {"fare": {"scores": {"psi": 0.4}, "drifted": True, "kind": "numeric"},
                           "company": {"scores": {"psi": 0.3}, "drifted": False, "kind": "categorical"}}}
    monitor = {"performance": {"task": "binary", "metric": "accuracy", "baseline": {"accuracy": 0.9},
                               "realized": {"accuracy": 0.5}, "realized_significant": False},
               "prediction": {"drifted": True, "psi": 0.3, "p_value": 1e-9}}
    keys = sorted(a.dedup_key for a in evaluate(cfg, model="taxi", scope="live/w0-999", drift_report=report,
                                                monitor=monitor))
    # company's PSI is above 0.2 but its test did not fire in the window; the drop is not significant
    assert keys == ["taxi/live/w0-999/dataset_drift", "taxi/live/w0-999/feature_psi/fare",
                    "taxi/live/w0-999/prediction_drift"]
    # the span check applies the same rule: PSI above the threshold and the drift test
    span_keys = sorted(a.dedup_key for a in evaluate(cfg, model="taxi", span=8, drift_report=report))
    assert "taxi/span-8/feature_psi/fare" in span_keys and "taxi/span-8/feature_psi/company" not in span_keys
    alarm = {"name": "error", "direction": "up", "mean_before": 0.1, "mean_after_estimate": 0.4, "statistic": 9.0,
             "threshold": 8.0, "change_point": 500, "index_in_stream": 700}
    alerts = evaluate(cfg, model="taxi", scope="live/j700", drift_report=None, alarms=[alarm])
    assert [(a.rule, a.severity, a.dedup_key) for a in alerts] == [
        ("error_rate_change", "critical", "taxi/live/j700/error_rate_change/error")]
    conf = dict(alarm, name="confidence", direction="down")
    assert [a.rule for a in evaluate(cfg, model="taxi", scope="live/r9", drift_report=None, alarms=[conf])] == \
        ["stream_change"]
    with pytest.raises(ValueError, match="exactly one of span"):
        evaluate(cfg, model="taxi", span=1, scope="live/w0-1", drift_report=None)
