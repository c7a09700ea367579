"""The installed import names: everything is under ``driftguard.`` (setup.py says why).

Run from the repository root, ``import pipeline`` would still work (the working directory is on
``sys.path``), so a forgotten bare import passes every other test and breaks only an installed
driftguard. This test reads the sources instead.
"""
from __future__ import annotations

import ast
import pathlib

from helpers import REPO

FOLDERS = ("pipeline", "components", "monitoring", "examples", "tests", "benchmarks", "notebooks")
BARE = {"pipeline", "components", "monitoring", "examples", "schemas"}


def _sources():
    for folder in FOLDERS:
        yield from sorted((REPO / folder).rglob("*.py"))


def test_no_module_imports_a_bare_top_level_name():
    offenders = []
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in BARE:
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
    assert not offenders, "bare imports (use driftguard.<name>):\n" + "\n".join(offenders)


def test_setup_maps_every_folder_under_the_driftguard_namespace():
    import runpy
    import sys
    from unittest import mock

    captured = {}
    with mock.patch("setuptools.setup", lambda **kw: captured.update(kw)), \
            mock.patch.object(sys, "argv", ["setup.py"]):
        runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    packages = captured["packages"]
    assert all(p.startswith("driftguard.") for p in packages), packages
    for folder in ("pipeline", "components", "monitoring"):
        assert f"driftguard.{folder}" in packages
        assert captured["package_dir"][f"driftguard.{folder}"] == folder
    assert captured["entry_points"]["console_scripts"] == ["driftguard=driftguard.pipeline.cli:main"]
