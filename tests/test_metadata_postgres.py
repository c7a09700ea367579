"""``metadata: {kind: postgresql}`` against a real PostgreSQL server on 127.0.0.1
(tests/postgres_fixture.py: Debian's postgresql package, started once per session).

One training and two span checks (two projects, two model names) share one database; bad
settings exit 2 before any component runs, naming the setting and never the password.
"""
from __future__ import annotations

import shutil

import pytest

from helpers import REPO, assert_refused_before_work, run_cli, write_config
from postgres_fixture import PASSWORD_ENV, free_port


def _project(tmp_path, name: str, model_name: str, meta: dict):
    """A taxi project in ``tmp_path/name`` whose model is ``model_name`` (schemas are per model
    name: the repository's taxi schemas, copied under that name)."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copytree(REPO / "schemas" / "taxi", folder / "schemas" / model_name)
    return write_config(folder / "driftguard.json", model_name=model_name, runs="runs", schemas="schemas",
                        metadata=meta)


def _store(postgres):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    conn = pb.ConnectionConfig()
    p = conn.postgresql
    p.host, p.port, p.dbname, p.user, p.password = ("127.0.0.1", str(postgres.port), postgres.database,
                                                    postgres.user, postgres.password)
    p.skip_db_creation = True
    return metadata_store.MetadataStore(conn)


def _pipeline_executions(store, pipeline_name: str) -> list:
    ctx = store.get_context_by_type_and_name("pipeline", pipeline_name)
    return [] if ctx is None else store.get_executions_by_context(ctx.id)


@pytest.fixture(scope="module")
def shared_db_runs(postgres, tmp_path_factory):
    """Project ``a`` (model taxi) trains on spans 1, 2 and checks span 3; project ``b`` (model
    taxib, no model yet) checks span 3: all three runs in the one PostgreSQL database."""
    tmp = tmp_path_factory.mktemp("pg-projects")
    a = _project(tmp, "a", "taxi", postgres.metadata())
    b = _project(tmp, "b", "taxib", postgres.metadata())
    train = run_cli("train", "--spans", "1,2", config=a, env=postgres.env)
    check_a = run_cli("check", "--span", "3", "--json", config=a, env=postgres.env)
    check_b = run_cli("check", "--span", "3", "--json", config=b, env=postgres.env)
    return {"a": a, "b": b, "train": train, "check_a": check_a, "check_b": check_b}


@pytest.mark.storage
@pytest.mark.tfx
def test_a_training_and_a_check_record_their_executions_in_postgresql(postgres, shared_db_runs):
    train, check = shared_db_runs["train"], shared_db_runs["check_a"]
    assert train.returncode == 0, train.stderr[-3000:]
    assert "pushed" in train.stdout.lower() or "version 1" in train.stdout, train.stdout
    assert check.returncode in (0, 1), check.stderr[-3000:]
    runs = shared_db_runs["a"].parent / "runs"
    assert not (runs / "metadata.sqlite").exists(), "sqlite store created despite metadata.kind postgresql"
    assert (runs / "serving" / "taxi" / "1").is_dir()
    store = _store(postgres)
    training = _pipeline_executions(store, "taxi-training")
    checks = _pipeline_executions(store, "taxi-check")
    assert len(training) >= 6 and len(checks) >= 4, (len(training), len(checks))
    states = {e.last_known_state for e in training + checks}
    assert states <= {3, 5}, states      # COMPLETE or CACHED, nothing left RUNNING or FAILED


@pytest.mark.storage
@pytest.mark.tfx
def test_two_projects_sharing_the_database_do_not_interfere(postgres, shared_db_runs):
    check_b = shared_db_runs["check_b"]
    assert check_b.returncode in (0, 1), check_b.stderr[-3000:]
    store = _store(postgres)
    a_ids = {e.id for e in _pipeline_executions(store, "taxi-check")}
    b_ids = {e.id for e in _pipeline_executions(store, "taxib-check")}
    assert a_ids and b_ids and not a_ids & b_ids
    assert not _pipeline_executions(store, "taxib-training")
    status_a = run_cli("status", config=shared_db_runs["a"], env=postgres.env)
    status_b = run_cli("status", config=shared_db_runs["b"], env=postgres.env)
    assert status_a.returncode == 0 and status_b.returncode == 0, status_a.stderr + status_b.stderr
    assert "serving:  taxi version 1" in status_a.stdout, status_a.stdout
    assert "serving:  nothing yet" in status_b.stdout, status_b.stdout
    assert not (shared_db_runs["b"].parent / "runs" / "serving" / "taxib").exists() or \
        not any(p.name.isdigit() for p in (shared_db_runs["b"].parent / "runs" / "serving" / "taxib").iterdir())


@pytest.mark.parametrize("case", ["unreachable port", "wrong password", "missing database", "unset password env",
                                  "unknown user"])
def test_bad_database_settings_exit_2_naming_the_setting_before_anything_runs(postgres, tmp_path, case):
    meta, env, setting = postgres.metadata(), dict(postgres.env), None
    if case == "unreachable port":
        meta["port"], setting = free_port(), "metadata.host / metadata.port"
    elif case == "wrong password":
        env[PASSWORD_ENV], setting = "not-" + postgres.password, "metadata.password_env"
    elif case == "missing database":
        meta["database"], setting = "no_such_db", "metadata.database"
    elif case == "unset password env":
        meta["password_env"], setting = "DRIFTGUARD_TEST_NO_SUCH_VARIABLE", "metadata.password_env"
    elif case == "unknown user":
        meta["user"], setting = "nobody_here", "metadata."
    config = _project(tmp_path, "p", "taxi", meta)
    assert_refused_before_work(config, env, setting, [postgres.password, env[PASSWORD_ENV]],
                               ["serving", "metadata.sqlite"], timeout=120)
