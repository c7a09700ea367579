"""Plain helpers shared by the top-level tests (imported as `helpers`; fixtures live in
conftest.py). A unique module name: tests/drift/ has a conftest.py of its own."""
from __future__ import annotations

import copy
import hashlib
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "taxi"
TAXI = REPO / "examples" / "taxi"
PROJECTS = REPO / "tests" / "projects"
DRIFTGUARD = [sys.executable, "-m", "driftguard.cli"]


def run_cli(*args, config=None, project=None, env=None, timeout=1800, cwd=None):
    """Run the real `driftguard` CLI in a subprocess; return CompletedProcess."""
    cmd = list(DRIFTGUARD)
    if project is not None:
        cmd += ["--project", str(project)]
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, cwd=cwd or REPO, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def tree_digest(root: pathlib.Path) -> dict:
    """{relative path: sha256} of every file under root (empty dict if root is missing)."""
    out = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, mappings key by key (a copy)."""
    out = copy.deepcopy(base)
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


# Small and fast training settings for tests: enough to learn the label (AUC ~0.9).
FAST_TRAINING = {"train_steps": 120, "eval_steps": 20,
                 "custom_config": {"batch_size": 64, "hidden_units": [32, 16], "learning_rate": 0.01}}


def taxi_config(**overrides) -> dict:
    """The taxi example's driftguard.yaml as a dict, with absolute paths to the example's model
    module, the repository's schemas and committed data (so a config file anywhere works), fast
    training settings, then ``overrides`` (merged key by key)."""
    from driftguard.pipeline.project import example_config

    base = example_config("taxi")
    base["data"]["root"] = str(DATA)
    base["training"] = merge(base["training"], FAST_TRAINING)
    return merge(base, overrides)


def write_config(path: pathlib.Path, **values) -> pathlib.Path:
    """A taxi config file at ``path`` (its folder is the project folder) with ``values`` merged in."""
    path = pathlib.Path(path)
    path.write_text(json.dumps(taxi_config(**values), indent=1))
    return path


def ws_data(workspace: pathlib.Path) -> pathlib.Path:
    """The span folder of the session's workspace (a project made by `driftguard init --example taxi`)."""
    return workspace / "data" / "taxi"


def make_config(workspace: pathlib.Path, name: str, **overrides) -> pathlib.Path:
    """``<workspace>/<name>.json``: the taxi config over the workspace's data, schemas and runs."""
    values = {"data": {"root": str(ws_data(workspace))}, "schemas": str(workspace / "schemas"),
              "runs": str(workspace / "runs")}
    return write_config(workspace / f"{name}.json", **merge(values, overrides))


def runs_of(config_path) -> pathlib.Path:
    """The runs folder of a config file (its project's ``runs`` setting, resolved)."""
    from driftguard.pipeline import config as config_lib

    return config_lib.load(config_path).runs_path
