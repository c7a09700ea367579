"""Version labels of the registry (components/registry_pusher/labels.py): atomic writes, no lost
update under concurrent promotes, the audit trail, rollback, corrupt files named."""
from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time

import pytest

from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.components.registry_pusher.labels import (AUDIT_FILE, CHAMPION, LABELS_FILE, LabelError,
                                                          champion_version, promote, read_audit, read_labels,
                                                          rollback)


def _registry(root, n=3):
    for v in range(1, n + 1):
        (root / str(v)).mkdir(parents=True)
    return root


def test_no_labels_file_serves_the_newest_version(tmp_path):
    reg = _registry(tmp_path)
    assert read_labels(reg) == {}
    assert champion_version(reg) == 3
    assert champion_version(tmp_path / "missing") is None


def test_promote_writes_labels_and_an_audit_line(tmp_path):
    reg = _registry(tmp_path)
    change = promote(reg, 1, reason="v3 misbehaves", who="ana@host")
    assert (change.label, change.version, change.previous) == (CHAMPION, 1, 3)
    assert read_labels(reg) == {"champion": 1}
    assert champion_version(reg) == 1
    [entry] = read_audit(reg)
    assert entry["who"] == "ana@host" and entry["action"] == "promote" and entry["reason"] == "v3 misbehaves"
    assert entry["version"] == 1 and entry["previous"] == 3 and entry["previous_implicit"] is True
    assert entry["time"].endswith("+00:00")
    promote(reg, 2, label="canary", reason="try it")
    assert read_labels(reg) == {"champion": 1, "canary": 2}
    assert promote(reg, 2, label="canary", reason="again") is None      # already there: no line
    assert len(read_audit(reg)) == 2
    assert not [p for p in reg.iterdir() if p.name.endswith(".tmp")]


def test_a_label_must_point_to_an_existing_version(tmp_path):
    reg = _registry(tmp_path)
    with pytest.raises(LabelError, match=r"version 7 does not exist in .* \(versions: 1, 2, 3\); label 'champion'"):
        promote(reg, 7, reason="x")
    with pytest.raises(LabelError, match=r"'1abc' is not a valid label"):
        promote(reg, 1, label="1abc", reason="x")
    assert not (reg / LABELS_FILE).exists() and not (reg / AUDIT_FILE).exists()


def test_rollback_walks_back_the_champions(tmp_path):
    reg = _registry(tmp_path, 4)
    with pytest.raises(LabelError, match=r"no previous champion .* audit trail .*audit\.jsonl"):
        rollback(reg, reason="nothing yet")
    promote(reg, 2, reason="a")          # champion was implicitly 4
    promote(reg, 3, reason="b")
    assert rollback(reg, reason="3 is bad").version == 2
    assert rollback(reg, reason="2 too").version == 4
    with pytest.raises(LabelError, match="no previous champion"):
        rollback(reg, reason="no more")
    assert read_labels(reg) == {"champion": 4}
    assert [e["action"] for e in read_audit(reg)] == ["promote", "promote", "rollback", "rollback"]


def test_corrupt_labels_file_is_named_and_left_alone(tmp_path):
    reg = _registry(tmp_path)
    (reg / LABELS_FILE).write_text('{"labels": {"champion": ')
    with pytest.raises(LabelError, match=rf"labels file {reg / LABELS_FILE} is corrupt \(not JSON"):
        read_labels(reg)
    with pytest.raises(LabelError, match="is corrupt"):
        promote(reg, 1, reason="x")
    (reg / LABELS_FILE).write_text('{"labels": {"champion": "three"}}')
    with pytest.raises(LabelError, match=r"label 'champion' -> 'three', not a version number"):
        champion_version(reg)
    assert (reg / LABELS_FILE).read_text() == '{"labels": {"champion": "three"}}'
    assert not (reg / AUDIT_FILE).exists()


def test_a_failed_write_leaves_the_old_file_whole(tmp_path, monkeypatch):
    reg = _registry(tmp_path)
    promote(reg, 1, reason="first")
    before = (reg / LABELS_FILE).read_text()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        promote(reg, 2, reason="second")
    assert (reg / LABELS_FILE).read_text() == before
    assert len(read_audit(reg)) == 1
    assert not [p for p in reg.iterdir() if p.name.endswith(".tmp")]


def test_a_change_without_its_audit_line_is_recovered(tmp_path, monkeypatch):
    reg = _registry(tmp_path)
    monkeypatch.setattr(labels_lib, "_append_audit", lambda registry, entries: None)   # killed after the rename
    promote(reg, 1, reason="lost line")
    monkeypatch.undo()
    assert read_audit(reg) == []
    promote(reg, 2, label="canary", reason="next")
    entries = read_audit(reg)
    assert [(e["label"], e["reason"], e.get("recovered")) for e in entries] == [
        ("champion", "lost line", True), ("canary", "next", None)]


def test_concurrent_promotes_from_threads_lose_no_update(tmp_path, monkeypatch):
    reg = _registry(tmp_path, 2)
    errors = []
    read = labels_lib._read_state

    def slow_read(registry):   # widens the read-modify-write window (without the lock: 1 label of 16 kept)
        state = read(registry)
        time.sleep(0.01)
        return state

    monkeypatch.setattr(labels_lib, "_read_state", slow_read)

    def work(i):
        try:
            promote(reg, 1 + i % 2, label=f"l{i}", reason=f"thread {i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert read_labels(reg) == {f"l{i}": 1 + i % 2 for i in range(16)}
    assert sorted(e["revision"] for e in read_audit(reg)) == list(range(1, 17))


def _promote_many(reg, worker, n):
    for i in range(n):
        promote(reg, 1 + (i + worker) % 2, label=f"w{worker}-{i}", reason="process")


def test_concurrent_promotes_from_two_processes_lose_no_update(tmp_path):
    reg = _registry(tmp_path, 2)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_promote_many, args=(reg, w, 25)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    labels = read_labels(reg)
    assert len(labels) == 50
    entries = read_audit(reg)
    assert sorted(e["revision"] for e in entries) == list(range(1, 51))
    assert json.loads((reg / LABELS_FILE).read_text())["revision"] == 50


def test_rollback_fails_when_a_promote_moved_the_champion_meanwhile(tmp_path, monkeypatch):
    reg = _registry(tmp_path)
    promote(reg, 1, reason="a")
    promote(reg, 2, reason="b")
    real = labels_lib.read_audit

    def racing(registry):   # another promote lands between rollback's read and its write
        entries = real(registry)
        monkeypatch.setattr(labels_lib, "read_audit", real)
        promote(reg, 3, reason="c")
        return entries

    monkeypatch.setattr(labels_lib, "read_audit", racing)
    with pytest.raises(LabelError, match=r"label 'champion' .* moved meanwhile \(now 3, expected 2\)"):
        rollback(reg, reason="x")
    assert read_labels(reg) == {"champion": 3}


def test_a_torn_audit_line_is_skipped_and_the_next_line_starts_fresh(tmp_path):
    reg = _registry(tmp_path)
    promote(reg, 1, reason="a")
    with open(reg / AUDIT_FILE, "a") as f:
        f.write('{"time": "2026-')                     # a writer killed mid-line
    assert [e["reason"] for e in read_audit(reg)] == ["a"]
    promote(reg, 2, reason="b")
    assert [e["reason"] for e in read_audit(reg)] == ["a", "b"]
    assert rollback(reg, reason="c").version == 1
