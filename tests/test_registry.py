"""Registry publishing: a version folder appears whole or not at all, numbers never collide."""
from __future__ import annotations

import os
import threading

import pytest

from driftguard.components.registry_pusher.registry import existing_versions, publish_version


def _stage(root, name, files=3):
    d = root / ".staging" / name
    d.mkdir(parents=True)
    for i in range(files):
        (d / f"f{i}").write_text(name)
    return d


def test_versions_count_up_from_one(tmp_path):
    assert publish_version(tmp_path, _stage(tmp_path, "a")) == 1
    assert publish_version(tmp_path, _stage(tmp_path, "b")) == 2
    assert existing_versions(tmp_path) == [1, 2]
    assert (tmp_path / "2" / "f0").read_text() == "b"


def test_concurrent_pushes_get_distinct_whole_versions(tmp_path):
    staged = [_stage(tmp_path, f"s{i}") for i in range(8)]
    results, errors = [], []

    def push(d):
        try:
            results.append(publish_version(tmp_path, d))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=push, args=(d,)) for d in staged]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == list(range(1, 9))
    for v in results:  # every version folder is complete: all three files, one origin
        contents = {(tmp_path / str(v) / f"f{i}").read_text() for i in range(3)}
        assert len(contents) == 1


def test_a_failed_rename_leaves_no_version(tmp_path, monkeypatch):
    staged = _stage(tmp_path, "x")

    def boom(src, dst):
        raise PermissionError("read-only registry")

    monkeypatch.setattr(os, "rename", boom)
    with pytest.raises(PermissionError):
        publish_version(tmp_path, staged)
    assert existing_versions(tmp_path) == []
