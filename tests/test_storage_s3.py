"""The object-storage registry (components/storage.py, components/registry_pusher/remote.py) against moto's S3 server on 127.0.0.1
(tests/s3_fixture.py): publish-once without rename, what a crash leaves, the local mirror, the
labels' compare-and-swap, the preflight's messages."""
from __future__ import annotations

import json
import pathlib
import threading

import pytest

from driftguard.components import storage
from driftguard.components.registry_pusher import remote
from driftguard.components.registry_pusher import labels as labels_lib
from driftguard.components.registry_pusher.registry import existing_versions


def _staged(tmp_path: pathlib.Path, name: str, payload: str) -> pathlib.Path:
    d = tmp_path / name
    (d / "profile").mkdir(parents=True)
    (d / "saved_model.pb").write_text(payload)
    (d / "profile" / "profile.json").write_text(json.dumps({"model_artifact": {"uri": payload}}))
    return d


def test_publish_claims_numbers_and_marks_last(s3_env, tmp_path):
    uri = s3_env.prefix_uri()
    assert remote.published_versions(uri) == []
    assert remote.publish_version(uri, _staged(tmp_path, "a", "m1")) == 1
    assert remote.publish_version(uri, _staged(tmp_path, "b", "m2")) == 2
    assert remote.published_versions(uri) == [1, 2]
    prefix = uri.split("/", 3)[3]
    keys = s3_env.keys(prefix)
    assert f"{prefix}/.published/2" in keys and f"{prefix}/2/saved_model.pb" in keys
    manifest = json.loads(s3_env.client().get_object(Bucket=s3_env.bucket, Key=f"{prefix}/.published/1")["Body"].read())
    assert sorted(f["path"] for f in manifest["files"]) == ["profile/profile.json", "saved_model.pb"]


def test_racing_publishers_get_distinct_versions_and_overwrite_nothing(s3_env, tmp_path):
    uri = s3_env.prefix_uri()
    staged = [_staged(tmp_path, f"s{i}", f"model-{i}") for i in range(6)]
    got, errors = [], []
    barrier = threading.Barrier(len(staged))

    def push(d):
        try:
            barrier.wait()
            got.append((remote.publish_version(uri, d), d.name))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=push, args=(d,)) for d in staged]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    assert sorted(v for v, _ in got) == [1, 2, 3, 4, 5, 6]
    mirror = tmp_path / "mirror"
    remote.sync(uri, mirror)
    for version, name in got:   # each version holds exactly its own publisher's files
        assert (mirror / str(version) / "saved_model.pb").read_text() == f"model-{name[1:]}"


def test_crash_before_the_marker_leaves_no_version_and_its_number_is_not_reused(s3_env, tmp_path):
    uri = s3_env.prefix_uri()

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


def test_labels_on_a_mirror_are_written_through_with_compare_and_swap(s3_env, tmp_path):
    uri = s3_env.prefix_uri()
    for i in range(3):
        remote.publish_version(uri, _staged(tmp_path, f"s{i}", f"m{i}"))
    one, two = tmp_path / "host1", tmp_path / "host2"    # two mirrors: two machines
    remote.sync(uri, one)
    remote.sync(uri, two)
    labels_lib.promote(one, 2, reason="test")
    # host2's mirror is stale; its write still starts from the bucket's labels (CAS), so nothing is lost
    labels_lib.promote(two, 3, label="challenger", reason="test")
    remote.sync(uri, one)
    assert labels_lib.read_labels(one) == {"champion": 2, "challenger": 3}
    assert [e["label"] for e in labels_lib.read_audit(one)] == ["champion", "challenger"]


def test_concurrent_label_writers_lose_no_update(s3_env, tmp_path):
    uri = s3_env.prefix_uri()
    for i in range(4):
        remote.publish_version(uri, _staged(tmp_path, f"s{i}", f"m{i}"))
    mirrors = [tmp_path / f"host{i}" for i in range(4)]
    for m in mirrors:
        remote.sync(uri, m)
    errors = []

    def label(i):
        try:
            labels_lib.promote(mirrors[i], i + 1, label=f"l{i}", reason="race")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=label, args=(i,)) for i in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    remote.sync(uri, mirrors[0])
    assert labels_lib.read_labels(mirrors[0]) == {f"l{i}": i + 1 for i in range(4)}


@pytest.mark.parametrize("uri, words", [
    ("ftp://bucket/x", "not supported"),
    ("s3://", "not s3://bucket"),
])
def test_unsupported_uris(uri, words):
    with pytest.raises(storage.StorageError, match="registry") as e:
        storage.check_uri("registry", uri)
    assert words in str(e.value)


def test_preflight_messages(s3_server, monkeypatch):
    def check(env, uri=None):
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE",
                  "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
            monkeypatch.delenv(k, raising=False)
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        storage.clear_cache()
        with pytest.raises(storage.StorageError) as e:
            storage.preflight("registry", uri or f"s3://{s3_server.bucket}/p")
        assert s3_server.secret_key not in str(e.value) and "wrong-secret" not in str(e.value)
        return str(e.value)

    good = s3_server.env()
    assert "wrong AWS_ACCESS_KEY_ID" in check({**good, "AWS_SECRET_ACCESS_KEY": "wrong-secret"})
    assert "does not exist" in check(good, "s3://no-such-bucket/p")
    assert "cannot reach" in check({**good, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{_closed_port()}"})
    assert "no S3 credentials" in check({k: v for k, v in good.items() if not k.startswith("AWS_SECRET")
                                          and k != "AWS_ACCESS_KEY_ID"})
    storage.clear_cache()


def _closed_port() -> int:
    from s3_fixture import free_port

    return free_port()


def test_preflight_passes(s3_env):
    storage.preflight("registry", s3_env.prefix_uri())


def test_the_dashboard_lists_the_versions_of_the_mirror(s3_env, tmp_path):
    from driftguard.components.reports.runs import load_versions

    uri = s3_env.prefix_uri() + "/taxi"
    remote.publish_version(uri, _staged(tmp_path, "a", "m1"))
    remote.sync(uri, tmp_path / "runs" / "registry-cache" / "taxi")
    assert [(v.model, v.version, v.status) for v in load_versions(tmp_path / "runs")] == [("taxi", "1", "serving")]


@pytest.mark.parametrize("values, words", [
    ({"registry": "/srv/models"}, "registry must be an object-storage URI"),
    ({"registry": "s3://bucket-one/m", "retrain": {"require_approval": True}}, "retrain.require_approval"),
    ({"data": {"root": "hdfs://bucket-one/data"}}, "data.root"),
    ({"runs": "s3://bucket-one/runs"}, "runs"),
    ({"schemas": "gs://bucket-one/schemas"}, "schemas"),
])
def test_config_refuses_what_object_storage_does_not_support(tmp_path, values, words):
    from helpers import taxi_config

    from driftguard.pipeline import config as config_lib

    with pytest.raises(config_lib.ConfigError, match=words.replace(".", r"\.")):
        config_lib.from_dict(taxi_config(**values), tmp_path)


def test_sync_tree_copies_new_and_changed_objects_and_drops_deleted_ones(s3_env, tmp_path):
    uri = s3_env.prefix_uri()
    prefix = uri.split("/", 3)[3]
    client = s3_env.client()
    for key, body in (("span-1/data.csv", b"a,b\n1,2\n"), ("span-2/data.csv", b"a,b\n3,4\n")):
        client.put_object(Bucket=s3_env.bucket, Key=f"{prefix}/{key}", Body=body)
    copy = tmp_path / "data-cache"
    assert storage.sync_tree(uri, copy) == (2, 0)
    assert storage.sync_tree(uri, copy) == (0, 0)          # unchanged: a listing only
    client.put_object(Bucket=s3_env.bucket, Key=f"{prefix}/span-2/data.csv", Body=b"a,b\n5,6\n")
    client.put_object(Bucket=s3_env.bucket, Key=f"{prefix}/span-3/data.csv", Body=b"a,b\n7,8\n")
    client.delete_object(Bucket=s3_env.bucket, Key=f"{prefix}/span-1/data.csv")
    assert storage.sync_tree(uri, copy) == (2, 1)
    files = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*.csv"))
    assert files == ["span-2/data.csv", "span-3/data.csv"]
    assert (copy / "span-2" / "data.csv").read_bytes() == b"a,b\n5,6\n"


def test_config_paths_of_an_s3_registry(tmp_path):
    from helpers import taxi_config

    from driftguard.pipeline import config as config_lib

    cfg = config_lib.from_dict(taxi_config(registry="s3://bucket-one/models", runs="runs"), tmp_path)
    assert cfg.registry_uri == "s3://bucket-one/models/taxi"
    assert cfg.model_registry == tmp_path.resolve() / "runs" / "registry-cache" / "taxi"
    local = config_lib.from_dict(taxi_config(runs="runs"), tmp_path)
    assert local.registry_uri == "" and local.model_registry == tmp_path.resolve() / "runs" / "serving" / "taxi"
    data = config_lib.from_dict(taxi_config(data={"root": "s3://bucket-one/spans"}, runs="runs"), tmp_path)
    assert data.data_uri == "s3://bucket-one/spans" and data.data_path == tmp_path.resolve() / "runs" / "data-cache"


def test_serve_picks_up_a_version_published_to_the_bucket_at_its_next_poll(s3_env, tmp_path):
    from helpers import save_small_model

    from driftguard.serving.repository import ModelRepository

    uri = s3_env.prefix_uri() + "/taxi"
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


def test_a_read_only_key_fails_the_registry_preflight_but_may_read_data(s3_server, monkeypatch):
    import boto3

    iam = boto3.client("iam", endpoint_url=s3_server.url, region_name=s3_server.region,
                       aws_access_key_id=s3_server.access_key, aws_secret_access_key=s3_server.secret_key)
    iam.create_user(UserName="reader")
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:Get*", "s3:List*", "s3:Head*"],
                                                 "Resource": "*"}]}))
    for k, v in s3_server.env(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"]).items():
        monkeypatch.setenv(k, v)
    storage.clear_cache()
    try:
        uri = s3_server.prefix_uri()
        storage.preflight("data.root", uri)                  # reading is allowed
        with pytest.raises(storage.StorageError, match="no permission to write under") as e:
            storage.preflight("registry", uri, write=True)
        assert key["SecretAccessKey"] not in str(e.value) and str(e.value).startswith("registry: ")
        assert s3_server.keys(uri.split("/", 3)[3]) == []
    finally:
        storage.clear_cache()
