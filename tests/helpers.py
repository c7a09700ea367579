"""Plain helpers shared by the top-level tests (imported as `helpers`; fixtures live in
conftest.py). A unique module name: tests/drift/ has a conftest.py of its own."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "taxi"
DRIFTGUARD = [sys.executable, "-m", "driftguard.pipeline.cli"]


def run_cli(*args, config=None, env=None, timeout=1800):
    """Run the real `driftguard` CLI in a subprocess; return CompletedProcess."""
    cmd = list(DRIFTGUARD)
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += [str(a) for a in args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
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


def write_config(path: pathlib.Path, **values) -> pathlib.Path:
    path.write_text(json.dumps(values, indent=1))
    return path


# Small and fast training settings for tests: enough to learn the label (AUC ~0.9).
FAST_TRAINING = {"train_steps": 120, "eval_steps": 20, "batch_size": 64}



def make_config(workspace: pathlib.Path, name: str, **overrides) -> pathlib.Path:
    values = {
        "data_root": str(workspace / "data"),
        "schema_root": str(workspace / "schemas" / "taxi"),
        "runs_dir": str(workspace / "runs"),
        "training": dict(FAST_TRAINING),
    }
    for k, v in overrides.items():
        if isinstance(v, dict) and isinstance(values.get(k), dict):
            values[k] = {**values[k], **v}
        else:
            values[k] = v
    return write_config(workspace / f"{name}.json", **values)
