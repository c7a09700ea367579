"""Session fixtures of the projects other than the taxi example (imported by conftest.py):
`penguins` (multi-class, CSV spans, `driftguard run`) and `flights` (regression, monthly
Parquet spans, `driftguard init --example flights` then `driftguard run`), with their helpers."""
from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import pytest
import yaml

from helpers import PROJECTS, run_cli

PENGUINS = PROJECTS / "penguins"
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def penguin_data():
    spec = importlib.util.spec_from_file_location("penguins_data", PENGUINS / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_penguins(root: pathlib.Path, fmt: str = "csv", **changes) -> pathlib.Path:
    """The penguins project copied to ``root`` with its spans written in ``fmt``; each of
    ``changes`` replaces a top-level key, or updates it when both are sections (dicts)."""
    root.mkdir(parents=True)
    for name in ("driftguard.yaml", "model.py"):
        shutil.copy(PENGUINS / name, root / name)
    shutil.copytree(PENGUINS / "schemas", root / "schemas")
    penguin_data().write_spans(root / "data", fmt)
    settings = yaml.safe_load((root / "driftguard.yaml").read_text())
    settings["data"]["format"] = fmt
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(settings.get(key), dict):
            settings[key].update(value)
        else:
            settings[key] = value
    (root / "driftguard.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    return root


def make_penguins_package(root: pathlib.Path, fmt: str = "csv", **changes) -> pathlib.Path:
    """:func:`make_penguins` with ``model.module`` given as an import path instead of a file:
    model.py moved to ``penguin_models/species.py`` (a package of the team's, found from the
    project folder)."""
    root = make_penguins(root, fmt, model={"module": "penguin_models.species",
                                           "label": {"key": "species_xf", "column": "species"}}, **changes)
    (root / "penguin_models").mkdir()
    (root / "penguin_models" / "__init__.py").write_text("")
    (root / "model.py").rename(root / "penguin_models" / "species.py")
    return root


def monitor_of(runs: pathlib.Path, span: int) -> dict:
    found = [json.loads(p.read_text()) for p in runs.glob("pipelines/*-check/PredictionMonitor/*/*/monitor.json")]
    [monitor] = [m for m in found if m["span"] == span]
    return monitor


@pytest.fixture(scope="session")
def penguins(tmp_path_factory):
    """`driftguard run` in the penguins project: version 1 on 2007-2008, then 2009 checked. Its
    model module is given as an import path (:func:`make_penguins_package`), so this one training
    also covers that form of ``model.module``; the file form (``model.py``) trains in the taxi,
    flights and template projects."""
    root = make_penguins_package(tmp_path_factory.mktemp("penguins") / "project")
    proc = run_cli("run", cwd=root)
    return {"root": root, "proc": proc, "runs": root / "runs"}


def _shrink_flights(root: pathlib.Path, months, every: int) -> None:
    """Keep ``months`` of the flights spans, every ``every``-th flight of each (small, fast spans)."""
    import pyarrow.parquet as pq

    data = root / "data" / "flights"
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        if folder.name not in months:
            shutil.rmtree(folder)
            continue
        path = folder / "flights.parquet"
        table = pq.read_table(path)
        pq.write_table(table.take(list(range(0, table.num_rows, every))), path)


@pytest.fixture(scope="session")
def flights(tmp_path_factory):
    """`driftguard init --example flights` outside the checkout, spans shrunk to every 20th flight
    of 2013-01 and 2013-03, training shortened; then `driftguard run`: version 1 on January, March
    checked."""
    root = tmp_path_factory.mktemp("flights") / "project"
    init = run_cli("init", root, "--example", "flights", cwd=root.parent)
    assert init.returncode == 0, init.stderr
    _shrink_flights(root, {"2013-01", "2013-03"}, every=20)
    settings = yaml.safe_load((root / "driftguard.yaml").read_text())
    settings.update(first_spans=["2013-01"], replay_spans=["2013-03"])
    settings["training"].update(window_spans=1, train_steps=300, eval_steps=10)
    (root / "driftguard.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    proc = run_cli("run", cwd=root)
    return {"root": root, "proc": proc, "runs": root / "runs", "settings": settings}


def flights_span(label: str) -> int:
    from driftguard.components.spans import SpanPattern

    return SpanPattern("{YYYY}-{MM}/*.parquet").number(label)


