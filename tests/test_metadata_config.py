"""The ``metadata:`` section (sqlite | postgresql | mysql) and pipeline/metadata.py's
ConnectionConfig, without a server (tests/test_metadata_postgres.py runs against one)."""
from __future__ import annotations

import pytest

from helpers import taxi_config, write_config
from driftguard.pipeline import config as config_lib
from driftguard.pipeline import metadata

PG = {"kind": "postgresql", "database": "mlmd", "user": "dg", "password_env": "DG_TEST_PW"}


def _cfg(tmp_path, **meta):
    return config_lib.load(write_config(tmp_path / "driftguard.json", runs="runs", metadata=meta))


def test_the_default_is_the_sqlite_file_of_the_runs_folder_as_before(tmp_path):
    from ml_metadata.proto import metadata_store_pb2 as pb
    from tfx import v1 as tfx

    from driftguard.pipeline import pipeline as pipeline_lib

    cfg = config_lib.load(write_config(tmp_path / "driftguard.json", runs="runs"))
    assert cfg.metadata == config_lib.MetadataConfig() and cfg.metadata.kind == "sqlite"
    conn = metadata.connection_config(cfg, readonly=True)
    assert conn.WhichOneof("config") == "sqlite"
    assert conn.sqlite.filename_uri == str(tmp_path.resolve() / "runs" / "metadata.sqlite")
    assert conn.sqlite.connection_mode == pb.SqliteMetadataSourceConfig.READONLY
    # the pipelines' connection is TFX's own sqlite config, byte for byte
    expected = tfx.orchestration.metadata.sqlite_metadata_connection_config(str(cfg.metadata_path))
    assert pipeline_lib.metadata_connection(cfg).SerializeToString() == expected.SerializeToString()
    assert metadata.describe(cfg) == str(cfg.metadata_path)
    assert not metadata.store_exists(cfg)
    metadata.preflight(cfg)   # nothing to reach


def test_postgresql_connection_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DG_TEST_PW", "s3cret-pw")
    cfg = _cfg(tmp_path, **PG, host="db.internal")
    conn = metadata.connection_config(cfg)
    assert conn.WhichOneof("config") == "postgresql"
    p = conn.postgresql
    assert (p.host, p.port, p.dbname, p.user, p.password, p.skip_db_creation) == \
        ("db.internal", "5432", "mlmd", "dg", "s3cret-pw", True)
    assert metadata.describe(cfg) == "postgresql://dg@db.internal:5432/mlmd"
    assert metadata.store_exists(cfg)
    assert "s3cret" not in repr(cfg.to_dict()) and "s3cret" not in str(metadata.location(cfg))
    assert metadata.describe(metadata.from_location(metadata.location(cfg))) == metadata.describe(cfg)


def test_mysql_connection_config(tmp_path, monkeypatch):
    monkeypatch.setenv("DG_TEST_PW", "s3cret-pw")
    cfg = _cfg(tmp_path, **{**PG, "kind": "mysql"}, port=3307)
    conn = metadata.connection_config(cfg)
    assert conn.WhichOneof("config") == "mysql"
    m = conn.mysql
    assert (m.host, m.port, m.database, m.user, m.password, m.skip_db_creation) == \
        ("127.0.0.1", 3307, "mlmd", "dg", "s3cret-pw", True)
    assert metadata.describe(cfg) == "mysql://dg@127.0.0.1:3307/mlmd"
    assert _cfg(tmp_path, **{**PG, "kind": "mysql"}).metadata.server_port == 3306


def test_no_password_env_means_no_password(tmp_path):
    cfg = _cfg(tmp_path, **{**PG, "password_env": ""})
    assert not metadata.connection_config(cfg).postgresql.HasField("password")


@pytest.mark.parametrize("meta, message", [
    ({"kind": "oracle"}, "metadata.kind must be one of sqlite, postgresql, mysql, got 'oracle'"),
    ({**PG, "database": ""}, "metadata.database is required for kind postgresql"),
    ({**PG, "user": ""}, "metadata.user is required for kind postgresql"),
    ({**PG, "database": "a b"}, "metadata.database is required"),
    ({**PG, "host": ""}, "metadata.host must be a host name"),
    ({**PG, "port": 70000}, "metadata.port must be between 0 and 65535"),
    ({**PG, "port": "5432"}, "metadata.port must be an integer"),
    ({**PG, "password_env": "hunter 2!"}, "metadata.password_env must be the NAME of an environment variable"),
    ({"kind": "sqlite", "host": "db"}, "metadata.host applies to kind postgresql or mysql"),
    ({**PG, "passwd": "x"}, "unknown config key 'metadata.passwd'"),
    ({**PG, "password": "hunter2"}, "metadata.password: a password is never read from the config file; .* "
                                    "metadata.password_env"),
])
def test_bad_metadata_sections_name_the_field(tmp_path, meta, message):
    with pytest.raises(config_lib.ConfigError, match=message) as info:
        _cfg(tmp_path, **meta)
    assert "hunter2" not in str(info.value)


def test_an_unset_password_variable_names_the_setting_not_the_value(tmp_path, monkeypatch):
    monkeypatch.delenv("DG_TEST_PW", raising=False)
    cfg = _cfg(tmp_path, **PG)
    with pytest.raises(metadata.MetadataError, match="metadata.password_env: the environment variable "
                                                     "DG_TEST_PW is not set"):
        metadata.connection_config(cfg)
    with pytest.raises(metadata.MetadataError, match="metadata.password_env"):
        metadata.preflight(cfg)


def test_the_example_configs_say_nothing_of_metadata():
    assert "metadata" not in taxi_config()


def test_the_postgres_fixture_fails_rather_than_skips_without_the_binaries(monkeypatch, tmp_path):
    import postgres_fixture

    monkeypatch.setenv("DRIFTGUARD_PG_BIN", str(tmp_path))
    monkeypatch.setattr(postgres_fixture.glob, "glob", lambda pattern: [])
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql"):
        postgres_fixture._bin_dir()
