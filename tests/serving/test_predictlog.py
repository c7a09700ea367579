"""Prediction log files: TF reads what we write; a follower resumes exactly where it stopped."""
from __future__ import annotations

import numpy as np
import pytest

from driftguard.serving import predictlog as pl


def _example(fare: float) -> bytes:
    import tensorflow as tf

    return tf.train.Example(features=tf.train.Features(feature={
        "fare": tf.train.Feature(float_list=tf.train.FloatList(value=[fare]))})).SerializeToString()


def _log(i: int, n: int = 2):
    examples = [_example(float(i * 10 + j)) for j in range(n)]
    return pl.make_predict_log("taxi", 3, examples, {"probabilities": np.full((n, 1), 0.25, np.float32)},
                               [f"r{i}-{j}" for j in range(n)], timestamp=1_700_000_000 + i)


def test_tensorflow_reads_our_files_and_entries_round_trip(tmp_path):
    import tensorflow as tf

    with pl.PredictionLogWriter(tmp_path) as w:
        for i in range(3):
            w.write(_log(i))
    files = pl.log_files(tmp_path)
    assert len(files) == 1
    raw = [r.numpy() for r in tf.data.TFRecordDataset([str(f) for f in files])]
    assert len(raw) == 3
    entry = pl.decode(raw[1])
    assert (entry.model, entry.version, entry.timestamp) == ("taxi", 3, 1_700_000_001.0)
    assert entry.request_ids == ["r1-0", "r1-1"] and entry.size == 2
    assert entry.examples == [_example(10.0), _example(11.0)]
    np.testing.assert_allclose(entry.outputs["probabilities"], [[0.25], [0.25]])
    assert pl.REQUEST_ID_OUTPUT not in entry.outputs


def test_follow_resumes_without_skipping_or_repeating_across_rotation(tmp_path):
    clock = [0.0]
    w = pl.PredictionLogWriter(tmp_path, max_bytes=700, clock=lambda: clock[0])
    for i in range(10):
        w.write(_log(i))
        clock[0] += 1
    assert len(pl.log_files(tmp_path)) > 2, "the size limit rotates files"
    seen, pos = [], pl.Position()
    for chunk in (3, 4, 100):
        got = list(pl.follow(tmp_path, pos, max_records=chunk))
        seen += [pl.decode(r).request_ids[0] for r, _ in got]
        pos = got[-1][1] if got else pos
    assert seen == [f"r{i}-0" for i in range(10)]
    assert list(pl.follow(tmp_path, pos)) == []
    w.write(_log(10))
    assert [pl.decode(r).request_ids[0] for r, _ in pl.follow(tmp_path, pos)] == ["r10-0"]
    w.close()


def test_age_rotation(tmp_path):
    clock = [0.0]
    w = pl.PredictionLogWriter(tmp_path, max_age_seconds=60, clock=lambda: clock[0])
    w.write(_log(0))
    clock[0] += 61
    w.write(_log(1))
    w.close()
    assert len(pl.log_files(tmp_path)) == 2


def test_partial_tail_waits_and_corruption_names_file_and_offset(tmp_path):
    with pl.PredictionLogWriter(tmp_path) as w:
        w.write(_log(0))
    f = pl.log_files(tmp_path)[0]
    good = f.read_bytes()
    full = pl.frame(_log(1).SerializeToString())
    f.write_bytes(good + full[:20])             # a writer mid-record
    got = list(pl.follow(tmp_path))
    assert len(got) == 1 and got[0][1].offset == len(good)
    f.write_bytes(good + full)                  # ... which then completes it
    assert len(list(pl.follow(tmp_path, got[0][1]))) == 1
    damaged = bytearray(good + full)
    damaged[len(good) + 20] ^= 0xFF
    f.write_bytes(bytes(damaged))
    with pytest.raises(pl.PredictionLogError, match=rf"{f.name}: corrupt record at byte {len(good)}"):
        list(pl.follow(tmp_path))


def test_truncated_older_file_is_skipped(tmp_path):
    (tmp_path / "a.tfrecord").write_bytes(pl.frame(_log(0).SerializeToString()) + b"\x05\x00")
    (tmp_path / "b.tfrecord").write_bytes(pl.frame(_log(1).SerializeToString()))
    ids = [pl.decode(r).request_ids[0] for r, _ in pl.follow(tmp_path)]
    assert ids == ["r0-0", "r1-0"]


def test_missing_path_is_named(tmp_path):
    with pytest.raises(pl.PredictionLogError, match="nope: no such prediction log"):
        list(pl.follow(tmp_path / "nope"))


def test_a_failed_write_never_leaves_a_partial_record_before_later_ones(tmp_path):
    """A real write error (RLIMIT_FSIZE in a child process): the writer drops the file it was
    writing, so the next record starts a new file and follow() reads every complete record."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(pl.__file__.rsplit('/serving/', 1)[0])!r})
        from driftguard.serving import predictlog as pl
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # EFBIG instead of a killed process
        w = pl.PredictionLogWriter({str(tmp_path)!r})
        w.write(b"first" * 10)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, hard))
        try:
            w.write(b"x" * 500)
        except OSError as e:
            print("failed:", e.errno)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        w.write(b"third" * 10)
        w.close()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "failed: 27"             # EFBIG
    files = pl.log_files(tmp_path)
    assert len(files) == 2 and files[0].stat().st_size == 100   # first record + part of the second
    assert [r for r, _ in pl.follow(tmp_path)] == [b"first" * 10, b"third" * 10]
