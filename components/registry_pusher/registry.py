"""The model registry's layout on disk, without TensorFlow or TFX imports.

``<registry>/<version>/`` holds a SavedModel (what TF Serving loads) and ``profile/``; new
versions are assembled under ``<registry>/.staging/`` and published with one ``os.rename``.
"""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any, Dict, List, Optional

PROFILE_DIR = "profile"
PROFILE_FILE = "profile.json"
STAGING_DIR = ".staging"
STATS_FILE = "FeatureStats.pb"
REFERENCE_SAMPLE_DIR = "reference_sample"  # sample.parquet + sample_summary.json (components.examples_io)


def existing_versions(registry: pathlib.Path) -> List[int]:
    if not registry.is_dir():
        return []
    return sorted(int(p.name) for p in registry.iterdir() if p.is_dir() and p.name.isdigit())


def read_profile(registry: pathlib.Path, version: int) -> Dict[str, Any]:
    return json.loads((registry / str(version) / PROFILE_DIR / PROFILE_FILE).read_text())


def find_version_of_model(registry: pathlib.Path, model_uri: str) -> Optional[int]:
    for v in existing_versions(registry):
        try:
            if read_profile(registry, v).get("model_artifact", {}).get("uri") == model_uri:
                return v
        except (OSError, ValueError):
            continue
    return None


def fsync_tree(root: pathlib.Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(root)


def _fsync_dir(path: pathlib.Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish_version(registry: pathlib.Path, staged: pathlib.Path) -> int:
    """Rename a complete staged folder to the next free version number; return it."""
    while True:
        version = (existing_versions(registry) or [0])[-1] + 1
        target = registry / str(version)
        try:
            os.rename(staged, target)  # atomic; fails if another push took this number
        except OSError:
            if target.exists():
                continue
            raise
        _fsync_dir(registry)
        return version
