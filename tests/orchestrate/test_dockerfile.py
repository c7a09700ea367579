"""The Dockerfile builds on the TFX image of the locked TFX version (no docker engine here)."""
from __future__ import annotations

import re

from helpers import REPO


def test_dockerfile_uses_the_locked_tfx_version():
    lock = re.search(r"^tfx==(\S+)$", (REPO / "requirements.lock").read_text(), re.M).group(1)
    text = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)$", text, re.M).group(1)
    assert base == f"gcr.io/tfx-oss-public/tfx:{lock}"
    assert f"'{lock}'" in text   # the build re-checks the base image's tfx version


def test_dockerfile_installs_every_package_the_compiled_spec_imports():
    text = (REPO / "Dockerfile").read_text()
    for folder in ("cli/", "pipeline/", "components/", "serving/", "monitoring/", "examples/", "schemas/"):   # setup.py's FOLDERS
        assert f"COPY {folder} {folder}" in text
    assert "pip install --no-cache-dir --no-deps ." in text
    from driftguard.pipeline.orchestrate.kubeflow import TFX_VERSION
    assert TFX_VERSION in text
