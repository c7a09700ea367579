"""Versioned schemas: curated v1, and `schema new-version` that never edits a version in place."""
from __future__ import annotations

import hashlib
import shutil

import pytest

from helpers import REPO, run_cli, write_config


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_v1_is_curated_not_just_inferred():
    from driftguard.pipeline.schemas import load_schema

    schema = load_schema(REPO / "schemas/taxi/v1/schema.pbtxt")
    assert list(schema.default_environment) == ["TRAINING", "SERVING"]
    feats = {f.name: f for f in schema.feature}
    assert list(feats["tips"].not_in_environment) == ["SERVING"]  # no label at serving
    assert feats["trip_start_hour"].int_domain.min == 0
    assert feats["trip_start_hour"].int_domain.max == 23
    assert feats["fare"].presence.min_fraction == 1.0
    assert feats["company"].presence.min_count == 0           # optional
    assert feats["company"].distribution_constraints.min_domain_mass == pytest.approx(0.9)
    assert feats["payment_type"].skew_comparator.infinity_norm.threshold > 0
    assert feats["fare"].skew_comparator.jensen_shannon_divergence.threshold > 0
    domains = {d.name: list(d.value) for d in schema.string_domain}
    assert "Cash" in domains["payment_type"]


def test_new_version_writes_v2_and_leaves_v1_byte_for_byte(tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO / "schemas/taxi/v1", schemas / "taxi" / "v1")  # only v1: the next version is v2
    data = tmp_path / "data" / "span-7"
    data.mkdir(parents=True)
    # A span with a new payment type: the new version must accept it.
    text = (REPO / "data/taxi/span-3/data.csv").read_text().replace(",Cash,", ",Mobile,", 400)
    (data / "data.csv").write_text(text)
    cfg = write_config(tmp_path / "c.json", schemas=str(schemas), schema_version=1,
                       data={"root": str(tmp_path / "data")}, runs=str(tmp_path / "runs"))
    v1 = schemas / "taxi" / "v1" / "schema.pbtxt"
    before = _sha(v1)

    proc = run_cli("schema", "new-version", "--from-span", "7", config=cfg, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '+  value: "Mobile"' in proc.stdout          # the diff is printed
    assert "wrote v2" in proc.stdout
    assert _sha(v1) == before
    v2 = (schemas / "taxi" / "v2" / "schema.pbtxt").read_text()
    assert v2.startswith("# driftguard schema v2: v1 updated so that span 7 conforms")
    assert 'value: "Mobile"' in v2
    assert 'not_in_environment: "SERVING"' in v2        # curation carried over

    # Same span again: it conforms to v2 now, so no v3 appears.
    proc = run_cli("schema", "new-version", "--from-span", "7", config=cfg, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already conforms to v2" in proc.stdout
    assert not (schemas / "taxi" / "v3").exists()
    assert _sha(v1) == before

    listing = run_cli("schema", "list", config=cfg)
    assert "v1" in listing.stdout and "v2" in listing.stdout and "(in use)" in listing.stdout


def test_existing_version_is_never_overwritten(tmp_path):
    from driftguard.pipeline.schemas import SchemaVersionError, _write_new_dir

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "schema.pbtxt").write_text("original")
    with pytest.raises(SchemaVersionError, match="already exists"):
        _write_new_dir(tmp_path / "v2", "replacement")
    assert (tmp_path / "v2" / "schema.pbtxt").read_text() == "original"


def test_unknown_schema_version_is_rejected_before_work(tmp_path):
    cfg = write_config(tmp_path / "c.json", schema_version=9, runs=str(tmp_path / "runs"))
    proc = run_cli("train", "--spans", "1", config=cfg)
    assert proc.returncode == 2
    assert "schema version 9 not found" in proc.stderr
    assert "schemas/taxi/v9/schema.pbtxt" in proc.stderr
    assert not (tmp_path / "runs" / "metadata.sqlite").exists()
