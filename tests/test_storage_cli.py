"""``registry: s3://bucket/prefix`` through the real CLI, against moto's S3 server on 127.0.0.1
(tests/s3_fixture.py): bad settings exit 2 naming the setting before anything runs, and (tfx)
a training pushes into the bucket and a span check in another project folder reads its profile
from there. The same for ``gs://`` against gcp-storage-emulator (tests/gcs_fixture.py), reusing
the version that training made (no second training)."""
from __future__ import annotations

import json
import shutil

import pytest

from helpers import DATA, REPO, assert_refused_before_work, run_cli, write_config
from s3_fixture import free_port


def _project(tmp_path, name: str, **values):
    folder = tmp_path / name
    folder.mkdir()
    shutil.copytree(REPO / "schemas" / "taxi", folder / "schemas" / "taxi")
    return write_config(folder / "driftguard.json", **{"runs": "runs", "schemas": "schemas", **values})


# the variables of the developer's machine must not decide the outcome
_ISOLATE = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.parametrize("case", ["wrong secret", "missing bucket", "unreachable endpoint", "no credentials",
                                  "gcs scheme", "unknown scheme", "data root bucket missing",
                                  "runs uri"])
def test_bad_object_storage_settings_exit_2_naming_the_setting_before_anything_runs(s3_server, tmp_path, case):
    env = {**s3_server.env(), **_ISOLATE}
    registry, values, setting = s3_server.prefix_uri(), {}, "registry"
    if case == "wrong secret":
        env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret-value"
    elif case == "missing bucket":
        registry = "s3://no-such-bucket/models"
    elif case == "unreachable endpoint":
        env["AWS_ENDPOINT_URL_S3"] = f"http://127.0.0.1:{free_port()}"
    elif case == "no credentials":
        env["AWS_ACCESS_KEY_ID"] = env["AWS_SECRET_ACCESS_KEY"] = ""
    elif case == "gcs scheme":
        registry = "gcs://bucket/models"
    elif case == "unknown scheme":
        registry = "hdfs://namenode/models"
    elif case == "data root bucket missing":
        values, setting = {"data": {"root": "s3://no-such-bucket/data"}}, "data.root: bucket 'no-such-bucket'"
    elif case == "runs uri":
        values, setting = {"runs": f"s3://{s3_server.bucket}/runs"}, "runs"
    config = _project(tmp_path, "p", registry=registry, **values)
    assert_refused_before_work(config, env, setting, [s3_server.secret_key, "wrong-secret-value"],
                               ["serving", "registry-cache", "data-cache", "metadata.sqlite"])
    if registry.startswith(f"s3://{s3_server.bucket}/"):
        assert s3_server.keys(registry.split("/", 3)[3]) == []     # nothing half-written in the bucket


@pytest.fixture(scope="module")
def s3_runs(s3_server, tmp_path_factory):
    """Project ``a`` trains on spans 1, 2 into ``registry: s3://...``; project ``b`` (another
    folder, its own runs and MLMD: another machine) checks span 3 against that registry, its
    spans read from ``data.root: s3://...`` (the taxi spans 1-3 uploaded there)."""
    tmp = tmp_path_factory.mktemp("s3-projects")
    registry, data = s3_server.prefix_uri(), s3_server.prefix_uri() + "/taxi-data"
    client = s3_server.client()
    for span in (1, 2, 3):
        client.upload_file(str(DATA / f"span-{span}" / "data.csv"), s3_server.bucket,
                           f"{data.split('/', 3)[3]}/span-{span}/data.csv")
    env = {**s3_server.env(), **_ISOLATE}
    a = _project(tmp, "a", registry=registry)
    b = _project(tmp, "b", registry=registry, data={"root": data})
    train = run_cli("train", "--spans", "1,2", config=a, env=env)
    check = run_cli("check", "--span", "3", "--json", config=b, env=env)
    return {"a": a, "b": b, "registry": registry, "train": train, "check": check}


@pytest.mark.storage
@pytest.mark.tfx
def test_a_training_pushes_into_the_bucket_and_a_check_elsewhere_reads_its_profile(s3_server, s3_runs):
    train, check = s3_runs["train"], s3_runs["check"]
    assert train.returncode == 0, train.stderr[-3000:]
    prefix = s3_runs["registry"].split("/", 3)[3] + "/taxi"
    keys = s3_server.keys(prefix)
    for key in (".published/1", ".claims/1", "1/saved_model.pb", "1/profile/profile.json",
                "1/profile/reference_sample/sample.parquet"):
        assert f"{prefix}/{key}" in keys, (key, keys)
    # no rollout and a first version: no label is written (the newest version is served), as locally
    assert f"{prefix}/labels.json" not in keys
    for project in ("a", "b"):      # no local registry: the local copies are the mirror's only
        runs = s3_runs[project].parent / "runs"
        assert not (runs / "serving").exists(), sorted(str(p) for p in (runs / "serving").rglob("*"))
    assert check.returncode in (0, 1), check.stderr[-3000:]
    report = json.loads(check.stdout)
    assert report["context"]["baseline_version"] == 1 and report["context"]["baseline_spans"] == [1, 2]
    assert report["context"]["registry"] == f"{s3_runs['registry']}/taxi"
    mirror = s3_runs["b"].parent / "runs" / "registry-cache" / "taxi"
    assert (mirror / "1" / "profile" / "profile.json").is_file()
    assert (mirror / ".source").read_text().strip() == f"{s3_runs['registry']}/taxi"
    # project b's spans came from its s3:// data.root, through its local copy
    copy = s3_runs["b"].parent / "runs" / "data-cache"
    assert (copy / "span-3" / "data.csv").read_bytes() == (DATA / "span-3" / "data.csv").read_bytes()


@pytest.mark.storage
@pytest.mark.tfx
def test_a_label_set_on_one_machine_is_in_the_bucket_and_seen_by_the_other(s3_server, s3_runs):
    env = {**s3_server.env(), **_ISOLATE}
    promote = run_cli("promote", "1", "--label", "canary", "--reason", "e2e", config=s3_runs["b"], env=env, timeout=300)
    assert promote.returncode == 0, promote.stderr[-3000:]
    prefix = s3_runs["registry"].split("/", 3)[3] + "/taxi"
    body = s3_server.client().get_object(Bucket=s3_server.bucket, Key=f"{prefix}/labels.json")["Body"].read()
    assert json.loads(body)["labels"] == {"canary": 1}
    status = run_cli("status", "--json", config=s3_runs["a"], env=env, timeout=300)
    assert status.returncode == 0, status.stderr[-3000:]
    mirror_a = s3_runs["a"].parent / "runs" / "registry-cache" / "taxi"
    assert json.loads((mirror_a / "labels.json").read_text())["labels"] == {"canary": 1}
    assert [e["label"] for e in map(json.loads, (mirror_a / "audit.jsonl").read_text().splitlines())] == ["canary"]


def test_report_copies_the_dashboard_to_the_reports_uri(s3_server, tmp_path):
    env = {**s3_server.env(), **_ISOLATE}
    reports = s3_server.prefix_uri()
    config = _project(tmp_path, "p", reports=reports)
    (config.parent / "runs").mkdir()
    proc = run_cli("report", config=config, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"copied to {reports}/taxi/" in proc.stdout, proc.stdout
    keys = s3_server.keys(reports.split("/", 3)[3])
    local = sorted(p.relative_to(config.parent / "runs" / "reports").as_posix()
                   for p in (config.parent / "runs" / "reports").rglob("*") if p.is_file())
    assert "index.html" in local
    assert keys == sorted(f"{reports.split('/', 3)[3]}/taxi/{name}" for name in local)


def test_a_missing_reports_bucket_exits_2_naming_reports(s3_server, tmp_path):
    env = {**s3_server.env(), **_ISOLATE}
    config = _project(tmp_path, "p", reports="s3://no-such-bucket/reports")
    proc = run_cli("check", "--span", "3", config=config, env=env, timeout=300)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().startswith("error: reports: bucket 'no-such-bucket' does not exist"), proc.stderr


@pytest.mark.storage
@pytest.mark.tfx
def test_the_dashboard_of_a_check_against_the_bucket_is_copied_to_the_bucket(s3_server, s3_runs):
    env = {**s3_server.env(), **_ISOLATE}
    config = s3_runs["b"]
    data = json.loads(config.read_text())
    data["reports"] = reports = s3_server.prefix_uri()
    config.write_text(json.dumps(data))
    proc = run_cli("report", config=config, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    key = f"{reports.split('/', 3)[3]}/taxi/index.html"
    assert key in s3_server.keys(reports.split("/", 3)[3])
    html = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read().decode()
    assert html == (config.parent / "runs" / "reports" / "index.html").read_text()


# ---------------------------------------------------------------- gs:// (gcp-storage-emulator)

# no emulator and no Google credentials anywhere: the developer's own ADC must not decide the outcome
_GS_NO_CREDENTIALS = {"STORAGE_EMULATOR_HOST": "", "GOOGLE_APPLICATION_CREDENTIALS": "",
                      "CLOUDSDK_CONFIG": "/nonexistent", "NO_GCE_CHECK": "true"}


@pytest.mark.parametrize("case", ["missing bucket", "unreachable endpoint", "no credentials",
                                  "data root bucket missing", "reports bucket missing", "runs uri"])
def test_bad_gs_settings_exit_2_naming_the_setting_before_anything_runs(gcs_server, tmp_path, case):
    env = {**gcs_server.env(), **_ISOLATE}
    registry, values, setting = gcs_server.prefix_uri(), {}, "registry"
    if case == "missing bucket":
        registry, setting = "gs://no-such-bucket/models", "registry: bucket 'no-such-bucket' does not exist"
    elif case == "unreachable endpoint":
        env["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{free_port()}"
        setting = "registry: cannot reach the GCS endpoint"
    elif case == "no credentials":
        env.update(_GS_NO_CREDENTIALS)
        setting = "registry: no Google credentials"
    elif case == "data root bucket missing":
        values, setting = {"data": {"root": "gs://no-such-bucket/data"}}, "data.root: bucket 'no-such-bucket'"
    elif case == "reports bucket missing":
        values, setting = {"reports": "gs://no-such-bucket/reports"}, "reports: bucket 'no-such-bucket'"
    elif case == "runs uri":
        values, setting = {"runs": f"gs://{gcs_server.bucket}/runs"}, "runs"
    config = _project(tmp_path, "p", registry=registry, **values)
    assert_refused_before_work(config, env, setting, [], ["serving", "registry-cache", "data-cache", "metadata.sqlite"])
    if registry.startswith(f"gs://{gcs_server.bucket}/"):
        assert gcs_server.keys(registry.split("/", 3)[3]) == []     # nothing half-written in the bucket


def test_report_copies_the_dashboard_to_a_gs_reports_uri(gcs_server, tmp_path):
    env = {**gcs_server.env(), **_ISOLATE}
    reports = gcs_server.prefix_uri()
    config = _project(tmp_path, "p", reports=reports)
    (config.parent / "runs").mkdir()
    proc = run_cli("report", config=config, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"copied to {reports}/taxi/" in proc.stdout, proc.stdout
    local = sorted(p.relative_to(config.parent / "runs" / "reports").as_posix()
                   for p in (config.parent / "runs" / "reports").rglob("*") if p.is_file())
    assert "index.html" in local
    assert gcs_server.keys(reports.split("/", 3)[3]) == sorted(f"{reports.split('/', 3)[3]}/taxi/{n}" for n in local)


@pytest.fixture(scope="module")
def gs_runs(s3_runs, gcs_server, tmp_path_factory):
    """The version project ``a`` trained (its mirror holds it whole, as the pusher staged it)
    published into a ``gs://`` registry, and the taxi spans 1-3 uploaded to a ``gs://``
    data.root; project ``c`` (its own runs, MLMD and empty mirror) checks span 3 against them."""
    from driftguard.components import storage
    from driftguard.components.registry_pusher import remote

    assert s3_runs["train"].returncode == 0, s3_runs["train"].stderr[-3000:]
    tmp = tmp_path_factory.mktemp("gs-projects")
    registry, data = gcs_server.prefix_uri(), gcs_server.prefix_uri() + "/taxi-data"
    for span in (1, 2, 3):
        gcs_server.write(f"{data.split('/', 3)[3]}/span-{span}/data.csv",
                         (DATA / f"span-{span}" / "data.csv").read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STORAGE_EMULATOR_HOST", gcs_server.url)
        storage.clear_cache()
        version = s3_runs["a"].parent / "runs" / "registry-cache" / "taxi" / "1"
        assert remote.publish_version(f"{registry}/taxi", version) == 1
    storage.clear_cache()
    env = {**gcs_server.env(), **_ISOLATE}
    c = _project(tmp, "c", registry=registry, data={"root": data})
    check = run_cli("check", "--span", "3", "--json", config=c, env=env)
    return {"c": c, "registry": registry, "check": check, "env": env}


@pytest.mark.storage
@pytest.mark.tfx
def test_a_check_reads_its_profile_and_spans_from_gs_and_labels_go_back(gcs_server, gs_runs):
    check, c, env = gs_runs["check"], gs_runs["c"], gs_runs["env"]
    assert check.returncode in (0, 1), check.stderr[-3000:]
    report = json.loads(check.stdout)
    assert report["context"]["baseline_version"] == 1 and report["context"]["registry"] == f"{gs_runs['registry']}/taxi"
    mirror = c.parent / "runs" / "registry-cache" / "taxi"
    assert (mirror / "1" / "profile" / "profile.json").is_file()
    assert (mirror / ".source").read_text().strip() == f"{gs_runs['registry']}/taxi"
    copy = c.parent / "runs" / "data-cache"
    assert (copy / "span-3" / "data.csv").read_bytes() == (DATA / "span-3" / "data.csv").read_bytes()
    assert not (c.parent / "runs" / "serving").exists()
    promote = run_cli("promote", "1", "--label", "canary", "--reason", "e2e", config=c, env=env, timeout=300)
    assert promote.returncode == 0, promote.stderr[-3000:]
    prefix = gs_runs["registry"].split("/", 3)[3] + "/taxi"
    assert json.loads(gcs_server.read(f"{prefix}/labels.json"))["labels"] == {"canary": 1}
    assert [json.loads(line)["label"] for line in gcs_server.read(f"{prefix}/audit.jsonl").decode().splitlines()] == ["canary"]
