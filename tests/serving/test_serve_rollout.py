"""Shadow and canary rollouts in `driftguard serve` (serving/rollout.py): the routing rule on its
own, the settings, and three real server subprocesses on 127.0.0.1 (started side by side) over
a registry of two small SavedModels made here: version 1 (the champion) answers sigmoid(z),
version 2 (the challenger) 1 - sigmoid(z), and fails on a fare above MAX_FARE.

* shadow: version 1 answers every default-route request, version 2 predicts too and is logged
  as a second record with the same ids; a failing challenger changes no answer;
* canary (share 0.3): the challenger answers exactly the client ids canary_bucket puts below
  0.3, the same client id again gets the same version; pinned requests are never split;
* a rollout without a challenger (no label; the label on the champion's version): no split,
  no shadow records.
"""
from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import json
import re
import shutil
import time

import numpy as np
import pytest

from helpers import ServeProcess, post_json, raw_http, save_small_model, small_model_prediction, write_config
from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.serving import predictlog
from driftguard.serving.rollout import Route, canary_bucket, route
from driftguard.serving.settings import ServeError, ServeSettings

P = "/v1/models/taxi:predict"
SHARE = 0.3
MAX_FARE = 1000.0      # the challenger (version 2) fails on a fare above it


# ---------------------------------------------------------------- the rule, the settings


def test_canary_bucket_is_the_first_8_bytes_of_sha256_big_endian():
    # sha256("abc") = ba7816bf 8f01cfea 414140de ... (FIPS 180-2's example)
    assert canary_bucket("abc") == 0xBA7816BF8F01CFEA / 2 ** 64
    for rid in ("req-1", "é-ü", "x" * 128):
        want = int.from_bytes(hashlib.sha256(rid.encode("utf-8")).digest()[:8], "big") / 2 ** 64
        assert canary_bucket(rid) == canary_bucket(rid) == want
    assert canary_bucket("req-1") != canary_bucket("req-2")


@pytest.mark.parametrize("share", [0.05, SHARE, 0.5])
def test_canary_bucket_puts_about_the_share_below_it(share):
    n = 10_000
    buckets = [canary_bucket(f"client-{i}") for i in range(n)]
    assert all(0.0 <= b < 1.0 for b in buckets)
    hits = sum(b < share for b in buckets)
    sd = (n * share * (1 - share)) ** 0.5
    assert abs(hits - n * share) <= 4 * sd, (hits, n * share)


def test_route():
    champion, challenger = "v1", "v2"
    assert route(None, SHARE, "a", champion, challenger) == Route("v1")
    assert route("shadow", SHARE, "a", champion, None) == Route("v1")
    assert route("canary", SHARE, "a", champion, None) == Route("v1")
    assert route("shadow", SHARE, "a", champion, challenger) == Route("v1", shadow="v2", role="champion")
    ids = [f"r{i}" for i in range(200)]
    routes = {i: route("canary", SHARE, i, champion, challenger) for i in ids}
    assert {i for i, r in routes.items() if r.answer == "v2"} == {i for i in ids if canary_bucket(i) < SHARE}
    assert all(r.shadow is None and r.role == ("challenger" if r.answer == "v2" else "champion")
               for r in routes.values())
    with pytest.raises(ValueError, match="unknown rollout mode 'blue'"):
        route("blue", SHARE, "a", champion, challenger)


@pytest.mark.parametrize("share", [0, 0.0, 1, 1.0, 1.5, -0.1, True, "0.3", None])
def test_a_canary_share_outside_0_1_is_refused(tmp_path, share):
    s = ServeSettings(registry=tmp_path, model_name="taxi", rollout_mode="canary", canary_share=share)
    with pytest.raises(ServeError, match=r"^canary_share must be a number between 0 and 1 \(exclusive\), got "
                                         + re.escape(repr(share))):
        s.validate()


def test_an_unknown_rollout_mode_is_refused_and_good_ones_pass(tmp_path):
    with pytest.raises(ServeError, match=r"^rollout_mode must be one of shadow, canary .*got 'blue-green'"):
        ServeSettings(registry=tmp_path, model_name="taxi", rollout_mode="blue-green").validate()
    for mode in (None, "shadow", "canary"):
        ServeSettings(registry=tmp_path, model_name="taxi", rollout_mode=mode, canary_share=0.3).validate()


# ---------------------------------------------------------------- real servers


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A registry folder without labels: version 1 (champion-to-be) and 2 (flipped, fails above MAX_FARE)."""
    made = tmp_path_factory.mktemp("rollout-models")
    save_small_model(made / "1")
    save_small_model(made / "2", flipped=True, max_fare=MAX_FARE)
    return made


def _registry(models, registry, labels):
    shutil.copytree(models, registry)
    labels_lib.set_labels(registry, labels, action="promote", reason="test", who="t@h")
    return registry


def test_shadow_records_are_sampled_together_with_their_champion_record(models, tmp_path):
    """In process (PredictionService, no HTTP): one sampling decision per request."""
    from driftguard.serving.service import PredictionService

    registry = _registry(models, tmp_path / "taxi", {"champion": 1, "challenger": 2})
    settings = ServeSettings(registry=registry, model_name="taxi", log_dir=tmp_path / "logs", log_sample_rate=0.5,
                             rollout_mode="shadow").validate()
    service = PredictionService(settings)
    service.start()
    n = 200
    try:
        for i in range(n):
            answer = service.predict("taxi", None, json.dumps({"instances": [_instance(i)]}).encode(), f"s-{i}")
            assert answer.version == 1
    finally:
        service.close()
    logged = collections.defaultdict(list)
    for r, _ in predictlog.follow(tmp_path / "logs"):
        e = predictlog.decode(r)
        logged[e.request_ids[0]].append(e.version)
    assert all(v == [1, 2] for v in logged.values()), {k: v for k, v in logged.items() if v != [1, 2]}
    assert 0.3 * n < len(logged) < 0.7 * n
    value = service.metrics.registry.get_sample_value
    assert value("driftguard_serve_log_records_total", {"result": "written"}) == 2 * len(logged)
    assert value("driftguard_serve_log_records_total", {"result": "sampled_out"}) == 2 * (n - len(logged))
    assert value("driftguard_serve_shadow_predictions_total", {"result": "ok"}) == n


@pytest.fixture(scope="module")
def servers(models, tmp_path_factory):
    """{"shadow", "canary", "unlabelled"}: three servers over registries of versions 1 and 2,
    labels champion=1 and challenger=2 (champion=1 only for "unlabelled", a shadow rollout)."""
    plan = {"shadow": ({"mode": "shadow"}, {"champion": 1, "challenger": 2}),
            "canary": ({"mode": "canary", "canary_share": SHARE}, {"champion": 1, "challenger": 2}),
            "unlabelled": ({"mode": "shadow"}, {"champion": 1})}
    procs = {}
    for name, (rollout, labels) in plan.items():
        root = tmp_path_factory.mktemp(f"rollout-{name}")
        _registry(models, root / "runs" / "serving" / "taxi", labels)
        cfg = write_config(root / "serve.json", runs=str(root / "runs"), rollout=rollout)
        procs[name] = ServeProcess(root, cfg, "--poll-seconds", "0.5")
    try:
        for p in procs.values():
            p.start()
        for p in procs.values():
            p.wait_ready()
        yield procs
    finally:
        for p in procs.values():
            p.stop()


def _instance(i):
    return {"fare": 5.0 + 0.75 * i, "trip_start_hour": i % 24, "payment_type": "Cash" if i % 3 == 0 else "Card"}


def _expected(inst, version):
    return small_model_prediction(inst["fare"], inst["trip_start_hour"], inst["payment_type"], flipped=version == 2)


def _send(srv, requests, path=P, threads=4):
    """POST each (request id, [instances]); [(id sent, status, headers, predictions as floats)]."""
    def one(req):
        rid, instances = req
        status, h, body = post_json(srv, path, {"instances": instances}, {"X-Request-Id": rid})
        assert status == 200, body
        return rid, h, [float(np.ravel(p)[0]) for p in json.loads(body)["predictions"]]

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, requests))


def _records(srv):
    """The decoded prediction log records in log order."""
    return [predictlog.decode(r) for r, _ in predictlog.follow(srv.log_dir)]


def _metric(srv, name, **labels):
    from prometheus_client.parser import text_string_to_metric_families

    status, _, text = raw_http(srv, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 200
    total = 0.0
    found = False
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
                found = True
    assert found, f"{name}{labels} is not in /metrics"
    return total


def _probabilities(entry):
    return [float(x) for x in np.ravel(entry.outputs["probabilities"])]


def test_shadow_the_champion_answers_and_the_challenger_is_logged_beside_it(servers):
    srv = servers["shadow"]
    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="ok") == 0
    n = 60
    requests = [(f"shadow-{i}", [_instance(i)]) for i in range(n)] + [("shadow-multi", [_instance(i) for i in range(3)])]
    answers = _send(srv, requests)
    for (rid, h, preds), (_, instances) in zip(answers, requests):
        assert h["x-model-version"] == "1" and h["x-request-id"] == rid
        assert preds == pytest.approx([_expected(x, 1) for x in instances], abs=1e-6)

    records = _records(srv)
    by_ids = collections.defaultdict(list)
    for k, e in enumerate(records):
        by_ids[tuple(e.request_ids)].append((k, e))
    for rid, instances in requests:
        ids = (rid,) if len(instances) == 1 else tuple(f"{rid}-{i}" for i in range(len(instances)))
        got = by_ids[ids]
        assert [e.version for _, e in got] == [1, 2], (rid, [e.version for _, e in got])
        (k1, champion), (k2, shadow) = got
        assert k2 == k1 + 1, f"{rid}: the shadow record is not right after the champion's"
        assert shadow.examples == champion.examples
        assert _probabilities(champion) == pytest.approx([_expected(x, 1) for x in instances], abs=1e-6)
        assert _probabilities(shadow) == pytest.approx([_expected(x, 2) for x in instances], abs=1e-6)
    assert len(records) == 2 * len(requests)

    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="ok") == len(requests)
    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="failed") == 0
    assert _metric(srv, "driftguard_serve_rollout_requests_total", role="champion") == len(requests)
    assert _metric(srv, "driftguard_serve_rollout_requests_total", role="challenger") == 0
    assert _metric(srv, "driftguard_serve_log_records_total", result="written") == 2 * len(requests)
    assert srv.stderr().count("rollout shadow active: challenger version 2") == 1


def test_shadow_a_failing_challenger_changes_no_answer_and_is_logged_once(servers):
    srv = servers["shadow"]
    before = len(_records(srv))
    failed = _metric(srv, "driftguard_serve_shadow_predictions_total", result="failed")
    big = [(f"shadow-big-{i}", [{"fare": 5000.0 + i, "trip_start_hour": 3, "payment_type": "Card"}])
           for i in range(3)]
    for (rid, h, preds), (_, instances) in zip(_send(srv, big, threads=1), big):
        assert h["x-model-version"] == "1"
        assert preds == pytest.approx([_expected(instances[0], 1)], abs=1e-6)
    new = _records(srv)[before:]
    assert [(e.version, e.request_ids) for e in new] == [(1, [rid]) for rid, _ in big]
    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="failed") == failed + 3
    assert srv.stderr().count("shadow prediction by challenger version 2 failed") == 1, srv.stderr()[-3000:]


def test_shadow_pinned_requests_are_not_shadowed(servers):
    srv = servers["shadow"]
    ok = _metric(srv, "driftguard_serve_shadow_predictions_total", result="ok")
    before = len(_records(srv))
    for k, (path, version) in enumerate((("/v1/models/taxi/versions/2:predict", 2),
                                         ("/v1/models/taxi/labels/champion:predict", 1),
                                         ("/v1/models/taxi/versions/1:predict", 1),
                                         ("/v1/models/taxi/labels/challenger:predict", 2))):
        [(rid, h, preds)] = _send(srv, [(f"pinned-{k}", [_instance(7)])], path=path)
        assert h["x-model-version"] == str(version), path
        assert preds == pytest.approx([_expected(_instance(7), version)], abs=1e-6)
    assert [e.version for e in _records(srv)[before:]] == [2, 1, 1, 2]
    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="ok") == ok


def test_canary_the_challenger_answers_the_ids_in_its_bucket_sticky_by_client_id(servers):
    srv = servers["canary"]
    n = 400
    requests = [(f"canary-{i}", [_instance(i)]) for i in range(n)]
    answers = _send(srv, requests)
    want = {rid: 2 if canary_bucket(rid) < SHARE else 1 for rid, _ in requests}
    got = {rid: int(h["x-model-version"]) for rid, h, _ in answers}
    assert got == want
    assert 0.2 * n < sum(v == 2 for v in got.values()) < 0.4 * n
    for (rid, h, preds), (_, instances) in zip(answers, requests):
        assert preds == pytest.approx([_expected(instances[0], want[rid])], abs=1e-6)

    # the same client ids again: rewritten (IssuedIds), answered by the same version as before
    again = _send(srv, requests[:100])
    for rid, h, preds in again:
        assert h["x-request-id-rewritten"] == rid and h["x-request-id"] != rid
        assert int(h["x-model-version"]) == want[rid], rid

    # pinned requests are never split: /versions/1 for ids in the challenger's bucket, the
    # challenger's label for ids in the champion's
    ones = [rid for rid, _ in requests if want[rid] == 2][:20]
    twos = [rid for rid, _ in requests if want[rid] == 1][:20]
    pinned = (_send(srv, [(f"{rid}.v1", [_instance(0)]) for rid in ones], path="/v1/models/taxi/versions/1:predict")
              + _send(srv, [(f"{rid}.ch", [_instance(0)]) for rid in twos],
                      path="/v1/models/taxi/labels/challenger:predict"))
    assert [int(h["x-model-version"]) for _, h, _ in pinned] == [1] * 20 + [2] * 20

    answered = {h["x-request-id"]: int(h["x-model-version"]) for _, h, _ in answers + again + pinned}
    records = _records(srv)
    assert len(records) == len(answered)
    logged = collections.Counter()
    for e in records:
        [rid] = e.request_ids
        logged[rid] += 1
        assert e.version == answered[rid], rid
    assert set(logged) == set(answered) and set(logged.values()) == {1}

    challenger = sum(v == 2 for v in want.values()) + sum(want[rid] == 2 for rid, _ in requests[:100])
    assert _metric(srv, "driftguard_serve_rollout_requests_total", role="challenger") == challenger
    assert _metric(srv, "driftguard_serve_rollout_requests_total", role="champion") == n + 100 - challenger
    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="ok") == 0
    assert srv.stderr().count("rollout canary active: challenger version 2 answers 30%") == 1


def _wait_for(srv, text, timeout=60):
    deadline = time.monotonic() + timeout
    while text not in srv.stderr():
        assert time.monotonic() < deadline, f"{text!r} not in the server's log:\n{srv.stderr()[-3000:]}"
        time.sleep(0.2)


def test_without_a_challenger_label_there_is_no_shadow(servers):
    srv = servers["unlabelled"]
    assert "rollout shadow inactive: no challenger label" in srv.stderr()
    requests = [(f"plain-{i}", [_instance(i)]) for i in range(30)]
    for rid, h, preds in _send(srv, requests):
        assert h["x-model-version"] == "1"
    assert sorted((e.version, e.request_ids) for e in _records(srv)) == sorted((1, [rid]) for rid, _ in requests)
    assert _metric(srv, "driftguard_serve_shadow_predictions_total", result="ok") == 0
    assert _metric(srv, "driftguard_serve_rollout_requests_total", role="champion") == 0


def test_canary_with_the_challenger_label_on_the_champion_does_not_split(servers):
    """Runs after the canary test (file order): the challenger label moves to version 1."""
    srv = servers["canary"]
    labels_lib.promote(srv.registry, 1, label="challenger", reason="test: the challenger is the champion")
    _wait_for(srv, "rollout canary inactive: the challenger label is the served version 1")
    before = len(_records(srv))
    routed = _metric(srv, "driftguard_serve_rollout_requests_total", role="challenger")
    ids = [f"late-{i}" for i in range(400) if canary_bucket(f"late-{i}") < SHARE][:30]
    for rid, h, preds in _send(srv, [(rid, [_instance(1)]) for rid in ids]):
        assert h["x-model-version"] == "1"
        assert preds == pytest.approx([_expected(_instance(1), 1)], abs=1e-6)
    assert [e.version for e in _records(srv)[before:]] == [1] * len(ids)
    assert _metric(srv, "driftguard_serve_rollout_requests_total", role="challenger") == routed
