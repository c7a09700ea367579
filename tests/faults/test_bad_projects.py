"""A project's own mistakes are refused before any work, each with exit status 2 and one message
naming the key, file, span or column, and nothing already stored (registry, MLMD, outbox,
state) changes: a model module that is missing or lacks a function, a label column absent from
the training spans, a metric that does not fit the task, a span pattern that matches nothing,
Parquet files of another schema, a file that is not Parquet or TFRecord at all.

The penguins test project (tests/projects/penguins) in CSV and Parquet form; no TensorFlow runs.
"""
from __future__ import annotations

import pathlib
import re

import pytest
import yaml

from helpers import run_cli, tree_digest
from project_fixtures import make_penguins



def _project(root: pathlib.Path, fmt: str = "csv", **changes) -> pathlib.Path:
    root = make_penguins(root, fmt, **changes)
    # something already stored: a registry version, MLMD, an outbox, the state (must not change)
    stored = root / "runs"
    (stored / "serving" / "penguins" / "1" / "profile").mkdir(parents=True)
    (stored / "serving" / "penguins" / "1" / "profile" / "profile.json").write_text('{"spans": [1, 2]}')
    (stored / "metadata.sqlite").write_bytes(b"SQLite format 3\0 (stand-in)")
    (stored / "alerts").mkdir()
    (stored / "alerts" / "outbox.sqlite").write_bytes(b"SQLite format 3\0 (stand-in)")
    (stored / "state.json").write_text('{"spans": []}')
    return root


def _refused(root: pathlib.Path, args, pattern: str):
    before = tree_digest(root)
    proc = run_cli(*args, cwd=root, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and re.search(pattern, proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr
    assert tree_digest(root) == before, "a refused command changed what was stored"
    return proc


@pytest.mark.parametrize("args", [("run",), ("train", "--spans", "1,2"), ("check", "--span", "3")])
def test_a_module_lacking_run_fn_is_named(tmp_path, args):
    root = _project(tmp_path / "p")
    (root / "model.py").write_text((root / "model.py").read_text().replace("def run_fn(", "def train_fn("))
    _refused(root, args, r"error: .*driftguard\.yaml: model\.module: .*model\.py defines no run_fn at its top level")


def test_a_missing_module_file_is_named(tmp_path):
    root = _project(tmp_path / "p", model={"module": "models/species.py"})
    _refused(root, ("train", "--spans", "1,2"),
             r"model\.module: .*models/species\.py does not exist \(relative paths are relative to the project folder")


def test_an_import_path_module_that_does_not_exist_is_named(tmp_path):
    root = _project(tmp_path / "p", model={"module": "penguin_models.species"})
    _refused(root, ("train", "--spans", "1,2"), r"model\.module 'penguin_models\.species': no such module")


def test_a_label_column_absent_from_the_training_spans_is_named(tmp_path):
    root = _project(tmp_path / "p", model={"label": {"key": "species_xf", "column": "penguin_species"}})
    _refused(root, ("train", "--spans", "1,2"),
             r"span 1: .*span-1/data\.csv has no column 'penguin_species' \(model\.label\.column\); its columns: "
             r"species, island")


def test_a_metric_that_does_not_fit_the_task_is_named(tmp_path):
    root = _project(tmp_path / "p", evaluation={"metrics": {"AUC": {"min": 0.7}}})
    _refused(root, ("run",), r"evaluation\.metrics\.AUC: AUC is a metric for binary models; task is multiclass")


def test_a_span_pattern_that_matches_nothing_is_named(tmp_path):
    root = _project(tmp_path / "p", data={"pattern": "{YYYY}/*.csv"}, first_spans=["2007", "2008"],
                    replay_spans=["2009"])
    _refused(root, ("run",), r"data\.pattern '\{YYYY\}/\*\.csv' matches no file under .*/data \(format csv\); "
                             r"span 2007 would be .*/data/2007/\*\.csv")


def test_a_parquet_file_of_another_schema_is_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = _project(tmp_path / "p", "parquet")
    path = root / "data" / "span-3" / "data.parquet"
    table = pq.read_table(path)
    column = table.column("body_mass_g").cast(pa.string())
    pq.write_table(table.set_column(table.column_names.index("body_mass_g"), "body_mass_g", column), path)
    for args in (("check", "--span", "3"), ("data", "validate", "--spans", "3")):
        _refused(root, args, r"span 3: .*span-3/data\.parquet: column 'body_mass_g' is FLOAT in the schema but "
                             r"string in this file \(Parquet\)")


def test_parquet_files_of_one_span_with_different_columns_are_named(tmp_path):
    import pyarrow.parquet as pq

    root = _project(tmp_path / "p", "parquet")
    folder = root / "data" / "span-3"
    table = pq.read_table(folder / "data.parquet")
    pq.write_table(table.drop(["sex"]), folder / "more.parquet")
    _refused(root, ("check", "--span", "3"), r"span 3: .*more\.parquet has different columns than data\.parquet "
                                            r"\(ExampleGen reads the files of a span as one table\): columns only "
                                            r"here: none, missing here: \['sex'\]")


@pytest.mark.parametrize("fmt, name, content, pattern", [
    ("parquet", "data.parquet", b"species,island\nAdelie,Dream\n", r"data\.parquet is not a Parquet file ExampleGen can read"),
    ("tfrecord", "data.tfrecord.gz", b"not a tfrecord at all, just text\n" * 4,
     r"data\.tfrecord\.gz: record 1: bad length checksum; not a TFRecord file"),
])
def test_a_file_that_is_not_what_the_format_says_is_named(tmp_path, fmt, name, content, pattern):
    root = _project(tmp_path / "p", "csv")
    settings = yaml.safe_load((root / "driftguard.yaml").read_text())
    settings["data"]["format"] = fmt
    (root / "driftguard.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    folder = root / "data" / "span-3"
    for f in folder.iterdir():
        f.unlink()
    (folder / name).write_bytes(content)
    _refused(root, ("check", "--span", "3"), r"span 3: .*" + pattern)
