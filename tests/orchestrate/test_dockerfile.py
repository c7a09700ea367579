"""The Dockerfile builds on the TFX image of the locked TFX version (no docker engine here)."""
from __future__ import annotations

import re

from helpers import REPO


def test_dockerfile_uses_the_locked_tfx_version():
    lock = re.search(r"^tfx==(\S+)$", (REPO / "requirements.lock").read_text(), re.M).group(1)
    text = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)(?: AS \S+)?$", text, re.M).group(1)
    assert base == f"gcr.io/tfx-oss-public/tfx:{lock}"
    assert f"'{lock}'" in text   # the build re-checks the base image's tfx version


def test_dockerfile_installs_every_package_the_compiled_spec_imports():
    text = (REPO / "Dockerfile").read_text()
    for folder in ("cli/", "pipeline/", "components/", "serving/", "monitoring/", "examples/", "schemas/"):   # setup.py's FOLDERS
        assert f"COPY {folder} {folder}" in text
    assert "pip install --no-cache-dir --no-deps ." in text
    from driftguard.pipeline.orchestrate.kubeflow import TFX_VERSION
    assert TFX_VERSION in text


def test_the_beam_worker_target_boots_the_locked_beam_release():
    lock = re.search(r"^apache-beam==(\S+)$", (REPO / "requirements.lock").read_text(), re.M).group(1)
    text = (REPO / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M)
    assert (f"apache/beam_python3.10_sdk:{lock}", "beam-sdk") in stages
    assert ("driftguard", "beam-worker") in stages
    assert stages[-1] == ("driftguard", "")          # `docker build .` is still the Kubeflow image
    assert f"ARG BEAM_VERSION={lock}" in text        # the build re-checks the image's Beam release
    assert 'ENTRYPOINT ["/opt/apache/beam/boot"]' in text
