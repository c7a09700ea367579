"""ModelRepository with version labels, over a registry of real (tiny) SavedModels loaded by
``load_version``: the champion served by default, ``get(label=...)``, a label change picked up
by ``poll()``, a 404 naming an unknown label, a corrupt labels file.

The serving tests (test_serve.py) copy the session's trained taxi model (a TFX run of minutes);
these build three one-op SavedModels instead (seconds): each returns its own version number,
so a prediction says which version answered.
"""
from __future__ import annotations

import pytest

from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.serving.repository import ModelRepository
from driftguard.serving.request import RequestError
from driftguard.serving.settings import ServeError


def _save_version(registry, version: int) -> None:
    import tensorflow as tf

    class Model(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
        def serve(self, examples):
            return {"version": tf.fill(tf.shape(examples), float(version))}

    model = Model()
    tf.saved_model.save(model, str(registry / str(version)), signatures={"serving_default": model.serve})


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny-registry")
    for v in (1, 2, 3):
        _save_version(root, v)
    return root


@pytest.fixture
def registry(saved_models, tmp_path):
    import shutil

    reg = tmp_path / "taxi"
    shutil.copytree(saved_models, reg)
    return reg


def _answer(mv) -> float:
    import tensorflow as tf

    sig = mv.signatures["serving_default"]
    return float(sig.fn(**{sig.input_name: tf.constant([b""])})["version"].numpy()[0])


def test_without_labels_the_newest_version_is_served(registry):
    repo = ModelRepository(registry, "taxi", keep=2)
    assert repo.poll()
    assert sorted(repo.loaded) == [2, 3] and repo.labels == {}
    assert repo.served.version == 3 and _answer(repo.get(None)) == 3.0
    with pytest.raises(RequestError) as e:
        repo.get(None, label="champion")
    assert e.value.status == 404 and "model taxi has no label 'champion'; labels: none" in e.value.message


def test_champion_and_canary_labels_are_served_and_picked_up_by_poll(registry):
    labels_lib.promote(registry, 1, reason="pin the old one")
    labels_lib.promote(registry, 2, label="canary", reason="try 2")
    repo = ModelRepository(registry, "taxi", keep=1)
    repo.poll()
    assert sorted(repo.loaded) == [1, 2, 3]            # labelled ones + the newest
    assert repo.served.version == 1 and _answer(repo.get(None)) == 1.0
    assert _answer(repo.get(None, label="canary")) == 2.0
    assert _answer(repo.get(None, label="champion")) == 1.0
    assert _answer(repo.get("3")) == 3.0
    with pytest.raises(RequestError) as e:
        repo.get(None, label="shadow")
    assert e.value.status == 404
    assert e.value.message == "model taxi has no label 'shadow'; labels: canary (2), champion (1)"
    with pytest.raises(RequestError) as e:
        repo.get("1", label="canary")
    assert e.value.status == 400

    labels_lib.promote(registry, 3, reason="3 is fine")      # the switch: no restart, one poll
    assert repo.served.version == 1                           # not before the poll
    assert repo.poll()
    assert repo.served.version == 3 and _answer(repo.get(None)) == 3.0
    assert not repo.poll()                                    # nothing changed since
    labels_lib.rollback(registry, reason="back")
    assert repo.poll() and repo.served.version == 1


def test_a_corrupt_labels_file_stops_the_start_and_later_keeps_the_labels(registry):
    (registry / labels_lib.LABELS_FILE).write_text("{not json")
    repo = ModelRepository(registry, "taxi")
    with pytest.raises(ServeError, match=rf"labels file {registry / 'labels.json'} is corrupt"):
        repo.poll()
    (registry / labels_lib.LABELS_FILE).unlink()
    labels_lib.promote(registry, 2, reason="x")
    repo.poll()
    assert repo.served.version == 2
    (registry / labels_lib.LABELS_FILE).write_text('{"labels": []}')
    assert not repo.poll()                                    # logged; the labels read before stay
    assert repo.served.version == 2 and repo.labels == {"champion": 2}


def test_a_champion_that_fails_to_load_falls_back_to_the_newest(registry):
    labels_lib.promote(registry, 1, reason="x")
    (registry / "1" / "saved_model.pb").write_bytes(b"broken")
    repo = ModelRepository(registry, "taxi")
    repo.poll()
    assert 1 in repo.failed and repo.served.version == 3
    with pytest.raises(RequestError) as e:
        repo.get(None, label="champion")
    assert e.value.status == 404 and "label 'champion' points to version 1, which is not loaded (it failed" \
        in e.value.message


def test_the_background_poller_switches_the_champion_without_a_restart(registry):
    import time

    repo = ModelRepository(registry, "taxi")
    repo.poll()
    assert repo.served.version == 3
    repo.start(0.05)
    try:
        labels_lib.promote(registry, 1, reason="switch while running")
        deadline = time.monotonic() + 30
        while repo.served.version != 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert repo.served.version == 1 and _answer(repo.get(None)) == 1.0
    finally:
        repo.stop()
