"""The installed package: import names, package data, the import graph's rules, `make bench`.

Everything is under ``driftguard.`` (setup.py says why). Run from the repository root,
``import pipeline`` would still work (the working directory is on ``sys.path``), so a forgotten
bare import passes every other test and breaks only an installed driftguard. These tests read
the sources instead.
"""
from __future__ import annotations

import ast
import fnmatch
import pathlib
import re
import subprocess
import os
import sys

from helpers import REPO

FOLDERS = ("cli", "pipeline", "components", "serving", "monitoring", "examples", "tests", "benchmarks", "notebooks")
BARE = {"cli", "pipeline", "components", "serving", "monitoring", "examples", "schemas"}


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


def _setup_arguments() -> dict:
    import runpy
    from unittest import mock

    captured = {}
    with mock.patch("setuptools.setup", lambda **kw: captured.update(kw)), \
            mock.patch.object(sys, "argv", ["setup.py"]):
        runpy.run_path(str(REPO / "setup.py"), run_name="__main__")
    return captured


def test_setup_maps_every_folder_under_the_driftguard_namespace():
    captured = _setup_arguments()
    packages = captured["packages"]
    assert all(p.startswith("driftguard.") for p in packages), packages
    for folder in ("cli", "pipeline", "components", "serving", "monitoring"):
        assert f"driftguard.{folder}" in packages
        assert captured["package_dir"][f"driftguard.{folder}"] == folder
    assert captured["entry_points"]["console_scripts"] == ["driftguard=driftguard.cli.main:main"]


def test_package_data_patterns_match_the_data_files_and_only_them():
    """Every file git tracks in an installed folder is Python or matched by a package_data
    pattern (else an installed driftguard lacks it), and every pattern matches a file."""
    setup = _setup_arguments()
    patterns = setup["package_data"][""]
    folders = sorted({d.split(".")[1] for d in setup["packages"]})
    tracked = subprocess.run(["git", "ls-files", *folders], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    data = [f for f in tracked if not f.endswith(".py") and (REPO / f).exists()]
    unmatched = [f for f in data if not any(fnmatch.fnmatch(pathlib.PurePath(f).name, p) for p in patterns)]
    assert not unmatched, f"data files no package_data pattern ships: {unmatched}"
    unused = [p for p in patterns if not any(fnmatch.fnmatch(pathlib.PurePath(f).name, p) for f in data)]
    assert not unused, f"package_data patterns that match no file: {unused}"


def test_import_contracts_hold():
    """.importlinter: cli above monitoring above serving above pipeline above components (no
    cycle between the folders), examples stand alone, command modules and the CLI plumbing imported by
    command modules only, the loop and the triggers click-free. import-linter reads every
    import statement, those inside functions too."""
    lint = pathlib.Path(sys.executable).with_name("lint-imports")
    proc = subprocess.run([str(lint), "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_COLOR": "1"})
    report = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)   # its colours, even into a pipe
    assert proc.returncode == 0, report
    assert re.search(r"Contracts: \d+ kept, 0 broken", report), report


def test_make_bench_runs_every_benchmark_script():
    """`make bench` runs every script in benchmarks/ that can be run (has a __main__ block)."""
    runnable = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "benchmarks").glob("*.py")
                      if 'if __name__ == "__main__":' in p.read_text())
    assert runnable
    plan = subprocess.run(["make", "-n", "bench"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert plan.returncode == 0, plan.stderr
    [loop] = [line for line in plan.stdout.splitlines() if "for script in" in line]
    assert loop.split(" in ", 1)[1].split(";")[0].split() == runnable
