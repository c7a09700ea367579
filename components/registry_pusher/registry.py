"""The model registry's layout on disk, without TensorFlow or TFX imports.

``<registry>/<version>/`` holds a SavedModel (what TF Serving loads) and ``profile/``; new
versions are assembled under ``<registry>/.staging/`` and published with one ``os.rename``.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import uuid
from typing import Any, Dict, List, Optional

PROFILE_DIR = "profile"
PROFILE_FILE = "profile.json"
STAGING_DIR = ".staging"
STATS_FILE = "FeatureStats.pb"
REFERENCE_SAMPLE_DIR = "reference_sample"  # sample.parquet + sample_summary.json (driftguard.components.examples_io)
IMPORTANCE_FILE = "feature_importance.json"  # permutation importance (driftguard.components.impact.importance)


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


def new_staging_dir(registry: pathlib.Path) -> pathlib.Path:
    """A fresh folder path under ``<registry>/.staging/`` named ``<host>--<pid>--<random>``, so a
    later push can tell whether the process that staged it is still alive."""
    root = registry / STAGING_DIR
    root.mkdir(parents=True, exist_ok=True)
    return root / f"{socket.gethostname()}--{os.getpid()}--{uuid.uuid4().hex}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    return True


def remove_stale_staging(registry: pathlib.Path) -> List[pathlib.Path]:
    """Delete staged folders left by a push that died before publishing; return them.

    Only folders staged on this host by a process that no longer exists are removed: a push
    in progress (here or on another host sharing the registry) keeps its folder. Readers never
    look inside ``.staging`` either way.
    """
    root = registry / STAGING_DIR
    if not root.is_dir():
        return []
    host = socket.gethostname()
    removed = []
    for path in root.iterdir():
        parts = path.name.rsplit("--", 2)
        if len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        if int(parts[1]) != os.getpid() and not _pid_alive(int(parts[1])):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


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


PENDING_DIR = ".pending"    # blessed candidates waiting for a human decision
REJECTED_DIR = ".rejected"  # candidates a human rejected (kept for the record)
_CANDIDATE_RE = re.compile(r"^c[0-9]+$")


class ApprovalError(ValueError):
    """Unknown candidate id, or a name that would leave the registry folder."""


def pending_candidates(registry: pathlib.Path) -> List[str]:
    root = registry / PENDING_DIR
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if _CANDIDATE_RE.match(p.name)), key=lambda n: int(n[1:]))


def hold_for_approval(registry: pathlib.Path, staged: pathlib.Path) -> str:
    """Move a complete staged version to ``.pending/c<N>`` (atomic rename); return the candidate id."""
    root = registry / PENDING_DIR
    root.mkdir(parents=True, exist_ok=True)
    taken = set(pending_candidates(registry))
    rejected = registry / REJECTED_DIR
    if rejected.is_dir():
        taken |= {p.name for p in rejected.iterdir()}
    n = 1 + max([int(c[1:]) for c in taken if _CANDIDATE_RE.match(c)] or [0])
    while True:
        target = root / f"c{n}"
        try:
            os.rename(staged, target)
        except OSError:
            if target.exists():
                n += 1
                continue
            raise
        _fsync_dir(root)
        return target.name


def _candidate_dir(registry: pathlib.Path, candidate: str) -> pathlib.Path:
    if not _CANDIDATE_RE.match(candidate or ""):
        raise ApprovalError(f"{candidate!r} is not a candidate id (they look like c1, c2, ...; "
                            f"see `driftguard status`)")
    path = registry / PENDING_DIR / candidate
    if not path.is_dir():
        have = ", ".join(pending_candidates(registry)) or "none"
        raise ApprovalError(f"no pending candidate {candidate} in {registry} (pending: {have})")
    return path


def approve_candidate(registry: pathlib.Path, candidate: str) -> int:
    """Publish a pending candidate as the next version (the same atomic rename as a push), and
    label it as the pusher would have (``labels.label_new_version``) under the rollout its profile
    records (``rollout_mode``, written when the config had a ``rollout:`` section at its push)."""
    from driftguard.components.registry_pusher import labels

    path = _candidate_dir(registry, candidate)
    try:
        rollout_mode = json.loads((path / PROFILE_DIR / PROFILE_FILE).read_text()).get("rollout_mode")
    except (OSError, ValueError):
        rollout_mode = None
    try:
        labels.pin_champion(registry, rollout_mode, who="driftguard approve")
    except labels.LabelError as e:
        raise ApprovalError(f"{candidate} is not published: {e}") from None
    version = publish_version(registry, path)
    try:
        labels.label_new_version(registry, version, rollout_mode, who="driftguard approve")
    except labels.LabelError as e:
        raise ApprovalError(f"{candidate} is published as version {version}, but not labelled: {e}") from None
    return version


def reject_candidate(registry: pathlib.Path, candidate: str) -> pathlib.Path:
    path = _candidate_dir(registry, candidate)
    target = registry / REJECTED_DIR / candidate
    target.parent.mkdir(exist_ok=True)
    os.rename(path, target)
    return target


def find_pending_of_model(registry: pathlib.Path, model_uri: str) -> Optional[str]:
    for candidate in pending_candidates(registry):
        try:
            profile = json.loads((registry / PENDING_DIR / candidate / PROFILE_DIR / PROFILE_FILE).read_text())
        except (OSError, ValueError):
            continue
        if profile.get("model_artifact", {}).get("uri") == model_uri:
            return candidate
    return None


def read_candidate_profile(registry: pathlib.Path, candidate: str) -> Dict[str, Any]:
    return json.loads((_candidate_dir(registry, candidate) / PROFILE_DIR / PROFILE_FILE).read_text())
