"""``gs://`` for the registry, the reports and data.root (components/storage.py,
components/storage_gcs.py, components/registry_pusher/remote.py) against gcp-storage-emulator on
127.0.0.1 (tests/gcs_fixture.py): publishing, the mirror, labels, serve's poll, the spans' copy,
the reports' copy, the preflight's messages.

The emulator ignores ``ifGenerationMatch`` (tests/gcs_fixture.py), so racing publishers cannot
be shown to get distinct versions against it; instead a recording proxy in front of it checks
that every claim, marker and label write carries the precondition, and that a 412 is taken as
"someone else wrote it first" (the next number; the labels read again and re-applied).
"""
from __future__ import annotations

import json
import pathlib

import pytest

from driftguard.components import storage
from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.components.registry_pusher import remote
from driftguard.components.registry_pusher.registry import existing_versions
from s3_fixture import free_port


def _staged(tmp_path: pathlib.Path, name: str, payload: str) -> pathlib.Path:
    d = tmp_path / name
    (d / "profile").mkdir(parents=True)
    (d / "saved_model.pb").write_text(payload)
    (d / "profile" / "profile.json").write_text(json.dumps({"model_artifact": {"uri": payload}}))
    return d


def _prefix(uri: str) -> str:
    return uri.split("/", 3)[3]


def test_publish_claims_numbers_and_marks_last(gcs_env, tmp_path):
    uri = gcs_env.prefix_uri()
    assert remote.published_versions(uri) == []
    assert remote.publish_version(uri, _staged(tmp_path, "a", "m1")) == 1
    assert remote.publish_version(uri, _staged(tmp_path, "b", "m2")) == 2
    assert remote.published_versions(uri) == [1, 2]
    prefix = _prefix(uri)
    keys = gcs_env.keys(prefix)
    for key in (".claims/1", ".claims/2", ".published/2", "2/saved_model.pb", "2/profile/profile.json"):
        assert f"{prefix}/{key}" in keys, (key, keys)
    manifest = json.loads(gcs_env.read(f"{prefix}/.published/1"))
    assert sorted(f["path"] for f in manifest["files"]) == ["profile/profile.json", "saved_model.pb"]


def test_every_claim_marker_and_label_write_is_conditional(gcs_proxy, gcs_server, tmp_path):
    uri = gcs_server.prefix_uri()
    remote.publish_version(uri, _staged(tmp_path, "a", "m1"))
    remote.publish_version(uri, _staged(tmp_path, "b", "m2"))
    for suffix in ("/.claims/1", "/.claims/2", "/.published/1", "/.published/2"):
        [write] = gcs_proxy.writes(suffix)
        assert write.query.get("ifGenerationMatch") == "0", (suffix, write)
    # the version's files are plain uploads (the claim already made the number ours)
    assert all("ifGenerationMatch" not in w.query for w in gcs_proxy.writes("/saved_model.pb"))
    mirror = tmp_path / "mirror"
    remote.sync(uri, mirror)
    labels_lib.promote(mirror, 1, reason="test")           # no labels.json yet: create only if absent
    generation = gcs_server.client().bucket(gcs_server.bucket).get_blob(f"{_prefix(uri)}/labels.json").generation
    labels_lib.promote(mirror, 2, reason="test")           # then: replace only the generation read
    first, second = gcs_proxy.writes("/labels.json")
    assert first.query.get("ifGenerationMatch") == "0"
    assert second.query.get("ifGenerationMatch") == str(generation), second
    assert first.status == second.status == 200


def test_a_claim_answered_412_takes_the_next_number(gcs_proxy, gcs_server, tmp_path):
    uri = gcs_server.prefix_uri()
    refused = gcs_proxy.refuse("/.claims/1", status=412)    # another publisher claimed 1 first
    assert remote.publish_version(uri, _staged(tmp_path, "a", "m1")) == 2
    assert len(refused.hits) == 1 and refused.hits[0].query.get("ifGenerationMatch") == "0"
    assert remote.published_versions(uri) == [2]
    assert not [k for k in gcs_server.keys(_prefix(uri)) if k.endswith("/1/saved_model.pb")]


def test_a_label_write_answered_412_reads_again_and_reapplies(gcs_proxy, gcs_server, tmp_path):
    uri = gcs_server.prefix_uri()
    for i in range(2):
        remote.publish_version(uri, _staged(tmp_path, f"s{i}", f"m{i}"))
    one, two = tmp_path / "host1", tmp_path / "host2"
    remote.sync(uri, one)
    remote.sync(uri, two)
    labels_lib.promote(one, 1, reason="test")
    # host2's next labels write is refused once, as GCS does when another writer changed the
    # object between its read and its write: it must read again and re-apply, losing nothing
    refused = gcs_proxy.refuse("/labels.json", status=412)
    labels_lib.promote(two, 2, label="challenger", reason="test")
    assert len(refused.hits) == 1
    writes = gcs_proxy.writes("/labels.json")
    assert len(writes) == 3 and all("ifGenerationMatch" in w.query for w in writes)
    remote.sync(uri, one)
    assert labels_lib.read_labels(one) == {"champion": 1, "challenger": 2}
    assert [e["label"] for e in labels_lib.read_audit(one)] == ["champion", "challenger"]


def test_a_marker_answered_412_is_an_error_not_a_silent_overwrite(gcs_proxy, gcs_server, tmp_path):
    uri = gcs_server.prefix_uri()
    gcs_proxy.refuse("/.published/1", status=412)
    with pytest.raises(storage.Conflict):
        remote.publish_version(uri, _staged(tmp_path, "a", "m1"))
    assert remote.published_versions(uri) == []


def test_a_marker_written_but_answered_412_is_recognized_as_ours(gcs_proxy, gcs_server, tmp_path):
    """A retried create whose first answer was lost gets 412 from its own first write: the
    marker there is this publisher's (same manifest), so the version is published."""
    uri = gcs_server.prefix_uri()
    gcs_proxy.refuse("/.published/1", status=412, forward=True)
    assert remote.publish_version(uri, _staged(tmp_path, "a", "m1")) == 1
    assert remote.published_versions(uri) == [1]


def test_crash_before_the_marker_leaves_no_version_and_its_number_is_not_reused(gcs_env, tmp_path):
    uri = gcs_env.prefix_uri()

    def die(version):
        raise KeyboardInterrupt(f"killed after uploading {version}")

    with pytest.raises(KeyboardInterrupt):
        remote.publish_version(uri, _staged(tmp_path, "a", "m1"), before_marker=die)
    assert remote.published_versions(uri) == []
    mirror = tmp_path / "mirror"
    assert remote.sync(uri, mirror) == [] and existing_versions(mirror) == []
    assert remote.publish_version(uri, _staged(tmp_path, "b", "m2")) == 2
    assert remote.sync(uri, mirror) == [2]
    assert existing_versions(mirror) == [2]
    assert (mirror / "2" / "saved_model.pb").read_text() == "m2"
    assert (mirror / remote.SOURCE_FILE).read_text().strip() == uri


def test_labels_on_two_mirrors_are_written_through(gcs_env, tmp_path):
    uri = gcs_env.prefix_uri()
    for i in range(3):
        remote.publish_version(uri, _staged(tmp_path, f"s{i}", f"m{i}"))
    one, two = tmp_path / "host1", tmp_path / "host2"    # two mirrors: two machines
    remote.sync(uri, one)
    remote.sync(uri, two)
    labels_lib.promote(one, 2, reason="test")
    labels_lib.promote(two, 3, label="challenger", reason="test")   # from a stale mirror
    remote.sync(uri, one)
    assert labels_lib.read_labels(one) == {"champion": 2, "challenger": 3}
    assert [e["label"] for e in labels_lib.read_audit(one)] == ["champion", "challenger"]
    assert json.loads(gcs_env.read(f"{_prefix(uri)}/labels.json"))["labels"] == {"champion": 2, "challenger": 3}


def test_serve_picks_up_a_version_published_to_the_bucket_at_its_next_poll(gcs_env, tmp_path):
    from helpers import save_small_model

    from driftguard.serving.repository import ModelRepository

    uri = gcs_env.prefix_uri() + "/taxi"
    for i in (1, 2):
        save_small_model(tmp_path / f"m{i}", flipped=i == 2)
    remote.publish_version(uri, tmp_path / "m1")
    mirror = tmp_path / "runs" / "registry-cache" / "taxi"
    remote.sync(uri, mirror)
    repo = ModelRepository(mirror, "taxi", keep=2)
    repo.poll()
    assert sorted(repo.loaded) == [1] and repo.served.version == 1
    remote.publish_version(uri, tmp_path / "m2")       # pushed by another machine
    assert repo.poll()
    assert sorted(repo.loaded) == [1, 2] and repo.served.version == 2


def test_the_dashboard_lists_the_versions_of_the_mirror(gcs_env, tmp_path):
    from driftguard.components.reports.runs import load_versions

    uri = gcs_env.prefix_uri() + "/taxi"
    remote.publish_version(uri, _staged(tmp_path, "a", "m1"))
    remote.sync(uri, tmp_path / "runs" / "registry-cache" / "taxi")
    assert [(v.model, v.version, v.status) for v in load_versions(tmp_path / "runs")] == [("taxi", "1", "serving")]


def test_sync_tree_copies_new_and_changed_objects_and_drops_deleted_ones(gcs_env, tmp_path):
    uri = gcs_env.prefix_uri()
    prefix = _prefix(uri)
    for key, body in (("span-1/data.csv", b"a,b\n1,2\n"), ("span-2/data.csv", b"a,b\n3,4\n")):
        gcs_env.write(f"{prefix}/{key}", body)
    copy = tmp_path / "data-cache"
    assert storage.sync_tree(uri, copy) == (2, 0)
    assert storage.sync_tree(uri, copy) == (0, 0)          # unchanged: a listing only
    gcs_env.write(f"{prefix}/span-2/data.csv", b"a,b\n5,6\n")
    gcs_env.write(f"{prefix}/span-3/data.csv", b"a,b\n7,8\n")
    gcs_env.delete(f"{prefix}/span-1/data.csv")
    assert storage.sync_tree(uri, copy) == (2, 1)
    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.csv"))
    assert files == ["span-2/data.csv", "span-3/data.csv"]
    assert (copy / "span-2" / "data.csv").read_bytes() == b"a,b\n5,6\n"


def test_upload_tree_puts_the_dashboard_last(gcs_proxy, gcs_server, tmp_path):
    folder = tmp_path / "reports"
    (folder / "spans").mkdir(parents=True)
    for name in ("index.html", "spans/span-1.html", "a.css"):
        (folder / name).write_text(name)
    uri = gcs_server.prefix_uri() + "/taxi"
    assert storage.upload_tree(folder, uri) == 3
    assert gcs_server.keys(_prefix(uri)) == sorted(f"{_prefix(uri)}/{n}" for n in ("index.html", "spans/span-1.html",
                                                                                   "a.css"))
    assert gcs_proxy.writes()[-1].name.endswith("/index.html")


def test_preflight_passes_and_leaves_nothing(gcs_env):
    uri = gcs_env.prefix_uri()
    storage.preflight("registry", uri, write=True)
    storage.preflight("data.root", uri)
    assert gcs_env.keys(_prefix(uri)) == []


@pytest.mark.parametrize("uri, words", [
    ("gcs://bucket/x", "gs://bucket/prefix"),
    ("gs://", "not gs://bucket"),
    ("gs://bucket/x/", "not gs://bucket"),
])
def test_unsupported_gcs_uris(uri, words):
    with pytest.raises(storage.StorageError, match="registry") as e:
        storage.check_uri("registry", uri)
    assert words in str(e.value)


def _preflight_error(monkeypatch, env, uri, write=False, setting="registry") -> str:
    for k in ("STORAGE_EMULATOR_HOST", "API_ENDPOINT_OVERRIDE", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    storage.clear_cache()
    try:
        with pytest.raises(storage.StorageError) as e:
            storage.preflight(setting, uri, write=write)
    finally:
        storage.clear_cache()
    assert str(e.value).startswith(f"{setting}: "), str(e.value)
    return str(e.value)


def test_preflight_messages(gcs_server, monkeypatch, tmp_path):
    uri = f"gs://{gcs_server.bucket}/p"
    assert "bucket 'no-such-bucket' does not exist" in _preflight_error(monkeypatch, gcs_server.env(),
                                                                        "gs://no-such-bucket/p")
    msg = _preflight_error(monkeypatch, gcs_server.env(STORAGE_EMULATOR_HOST=f"http://127.0.0.1:{free_port()}"), uri)
    assert "cannot reach the GCS endpoint http://127.0.0.1:" in msg
    # no emulator: Google's default credentials are looked up, and this file is not one
    missing = str(tmp_path / "no-such-key.json")
    msg = _preflight_error(monkeypatch, {"GOOGLE_APPLICATION_CREDENTIALS": missing}, uri)
    assert "no Google credentials" in msg and "GOOGLE_APPLICATION_CREDENTIALS" in msg and missing in msg


def test_preflight_refused_write_and_refused_credentials(gcs_server, monkeypatch):
    """The emulator checks no permission: the proxy answers 403 / 401 where GCS would."""
    from gcs_fixture import RecordingProxy

    proxy = RecordingProxy(gcs_server.url)
    try:
        uri = gcs_server.prefix_uri()
        proxy.refuse("", status=403, method="POST")          # may list, may not create objects
        env = gcs_server.env(STORAGE_EMULATOR_HOST=proxy.url)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        storage.clear_cache()
        storage.preflight("data.root", uri)
        assert "no permission to write under " + uri in _preflight_error(monkeypatch, env, uri, write=True)
        assert gcs_server.keys(_prefix(uri)) == []
        proxy.refuse("", status=403, method="GET")           # may not even list
        assert "refused the credentials for bucket" in _preflight_error(monkeypatch, env, uri, setting="reports")
    finally:
        proxy.close()


def test_preflight_a_key_refused_by_the_token_endpoint(gcs_server, monkeypatch, tmp_path):
    """A service-account key file whose key the token endpoint refuses (a small local stand-in for
    Google's OAuth endpoint answers invalid_grant, as Google does for a deleted key): exit-2
    message naming the setting, never the key."""
    import http.server
    import threading

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    class Token(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}).encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Token)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        key = tmp_path / "key.json"
        key.write_text(json.dumps({
            "type": "service_account", "project_id": "p", "private_key_id": "k1", "private_key": pem,
            "client_email": "driftguard@p.iam.gserviceaccount.com", "client_id": "1",
            "token_uri": f"http://127.0.0.1:{server.server_address[1]}/token"}))
        # the emulator's address as a plain endpoint override: the client then authenticates
        msg = _preflight_error(monkeypatch, {"GOOGLE_APPLICATION_CREDENTIALS": str(key),
                                             "API_ENDPOINT_OVERRIDE": gcs_server.url}, gcs_server.prefix_uri())
        assert "credentials for gs://" in msg and "were refused when getting a token" in msg
        assert "PRIVATE KEY" not in msg and "k1" not in msg
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("values, words", [
    ({"registry": "gcs://bucket-one/m"}, "gs://bucket/prefix"),
    ({"runs": "gs://bucket-one/runs"}, "runs"),
    ({"schemas": "gs://bucket-one/schemas"}, "schemas"),
])
def test_config_refuses_what_gcs_does_not_support(tmp_path, values, words):
    from helpers import taxi_config

    from driftguard.pipeline import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=words.replace(".", r"\.")):
        config_lib.from_dict(taxi_config(**values), tmp_path)


def test_config_paths_of_gs_settings(tmp_path):
    from helpers import taxi_config

    from driftguard.pipeline import config as config_lib

    cfg = config_lib.from_dict(taxi_config(registry="gs://bucket-one/models", reports="gs://bucket-one/reports",
                                           data={"root": "gs://bucket-one/spans"}, runs="runs"), tmp_path)
    assert cfg.registry_uri == "gs://bucket-one/models/taxi"
    assert cfg.model_registry == tmp_path.resolve() / "runs" / "registry-cache" / "taxi"
    assert cfg.data_uri == "gs://bucket-one/spans" and cfg.data_path == tmp_path.resolve() / "runs" / "data-cache"


def test_a_file_over_8_mb_goes_up_and_down_whole(gcs_env, tmp_path):
    """google-cloud-storage uploads files over 8 MiB in resumable sessions (a SavedModel's
    variables can be that large): publish and the mirror's fetch carry one whole."""
    staged = _staged(tmp_path, "big", "m1")
    blob = staged / "variables" / "variables.data-00000-of-00001"
    blob.parent.mkdir()
    blob.write_bytes(bytes(range(256)) * (9 * 4096))       # 9 MiB
    uri = gcs_env.prefix_uri()
    assert remote.publish_version(uri, staged) == 1
    mirror = tmp_path / "mirror"
    assert remote.sync(uri, mirror) == [1]
    assert (mirror / "1" / "variables" / "variables.data-00000-of-00001").read_bytes() == blob.read_bytes()


def test_errors_after_the_preflight_are_oserrors_the_commands_report(gcs_proxy, gcs_server, tmp_path):
    """A read refused during a sync (403) or a store error (503) surfaces as the OSError the
    commands turn into exit 2 (as s3fs's errors do), not as a library traceback."""
    uri = gcs_server.prefix_uri()
    gcs_server.write(f"{_prefix(uri)}/span-1/data.csv", b"a\n1\n")
    gcs_proxy.refuse("/span-1/data.csv", status=403, method="GET")
    with pytest.raises(PermissionError, match="403"):
        storage.sync_tree(uri, tmp_path / "copy")
    gcs_proxy.refuse("/labels.json", status=503, method="POST", times=100)   # retried, then given up
    fs = storage.filesystem(uri)
    fs.retry = None      # the library retries 503 for a minute by default; once is enough here
    with pytest.raises(OSError, match="503"):
        fs.pipe_file(f"{storage.key_of(uri)}/labels.json", b"{}")
