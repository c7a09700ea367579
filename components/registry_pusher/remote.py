"""The model registry in a bucket (``registry: s3://...`` or ``gs://...``): publish once without
rename, the local mirror every reader uses, labels by compare-and-swap. Object-storage access
itself (URIs, file system, preflight, the per-store conditional writes) is
``driftguard.components.storage``; this protocol is the same for every store.

Layout of a registry at ``<uri>`` (``<registry>/<model_name>``)::

    <uri>/.claims/<N>        claimed by one publisher (created only if absent: S3 If-None-Match: *,
                             GCS ifGenerationMatch=0)
    <uri>/<N>/...            the version's files (SavedModel, profile/)
    <uri>/.published/<N>     written LAST, also only if absent: the manifest (every file and its size)
    <uri>/labels.json        label -> version (replaced only if still at the version read: S3
                             If-Match on its ETag, GCS ifGenerationMatch on its generation)
    <uri>/audit.jsonl        every label change

A version exists only once its ``.published/<N>`` marker does: a publisher killed mid-upload
leaves a claim and some files, never a visible version, and the number is not reused.

Readers never read the bucket directly: :func:`sync` copies every published version (immutable,
so each once) and the labels into a local mirror, ``<runs>/registry-cache/<model_name>``, which is
laid out exactly as a local registry; the span check, ``serve`` and ``monitor`` read that folder
with the code they always used. The mirror holds a ``.source`` file naming the bucket, so
``labels.set_labels`` writes label changes through to the bucket (:func:`labels_transaction`).
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import shutil
import socket
import time
import uuid
from typing import Any, Iterator, List, Optional

from driftguard.components.storage import Conflict, StorageError, conditional_writes, filesystem, key_of

log = logging.getLogger(__name__)

CLAIMS = ".claims"
PUBLISHED = ".published"
SOURCE_FILE = ".source"          # in a local mirror: the bucket URI it mirrors
INCOMING = ".incoming"           # in a local mirror: versions being downloaded
LABELS_FILE = "labels.json"      # the same names as components/registry_pusher/labels.py
AUDIT_FILE = "audit.jsonl"


def _numbers(fs, folder: str) -> List[int]:
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def published_versions(uri: str) -> List[int]:
    """The versions whose ``.published`` marker exists (the only ones readers see)."""
    return _numbers(filesystem(uri), f"{key_of(uri)}/{PUBLISHED}")


def _claim(fs, uri: str) -> int:
    """Take the next free version number with a conditional create of ``.claims/<N>``."""
    root = key_of(uri)
    n = (_numbers(fs, f"{root}/{CLAIMS}") or [0])[-1] + 1
    owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}).encode()
    writes = conditional_writes(uri)
    while True:
        try:
            writes.create(f"{root}/{CLAIMS}/{n}", owner)
            return n
        except Conflict:
            n += 1     # another publisher claimed n between our listing and our write


def publish_version(uri: str, staged: os.PathLike, before_marker=None) -> int:
    """Upload a complete staged folder as the next version; return its number. Publish-once
    without rename: the number is claimed by a conditional create, the files are uploaded under
    it, and the ``.published/<N>`` marker (the manifest) is written last, also conditionally.
    ``before_marker``: a test hook called with N after the upload, before the marker."""
    fs = filesystem(uri)
    staged = pathlib.Path(staged)
    files = sorted(p for p in staged.rglob("*") if p.is_file())
    version = _claim(fs, uri)
    root = f"{key_of(uri)}/{version}"
    manifest = []
    for path in files:
        rel = path.relative_to(staged).as_posix()
        fs.put_file(str(path), f"{root}/{rel}")
        manifest.append({"path": rel, "size": path.stat().st_size})
    if before_marker is not None:
        before_marker(version)
    marker = f"{key_of(uri)}/{PUBLISHED}/{version}"
    body = json.dumps({"version": version, "files": manifest}).encode()
    try:
        conditional_writes(uri).create(marker, body)
    except Conflict:
        # the client retried a create whose first answer was lost: the marker there is ours.
        # Anything else is a protocol violation (N was claimed by this publisher): raise.
        try:
            ours = fs.cat_file(marker) == body
        except FileNotFoundError:
            ours = False
        if not ours:
            raise
    log.info("published %s/%d (%d files)", uri, version, len(files))
    return version


# ---------------------------------------------------------------- the local mirror


def mirror_source(registry: os.PathLike) -> Optional[str]:
    """The bucket URI a local folder mirrors (None: a plain local registry)."""
    try:
        return (pathlib.Path(registry) / SOURCE_FILE).read_text().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def _fetch(fs, uri: str, version: int, mirror: pathlib.Path) -> None:
    """Download a published version into ``<mirror>/<version>`` (files into a private folder,
    then one rename: the mirror holds whole versions only)."""
    manifest = json.loads(fs.cat_file(f"{key_of(uri)}/{PUBLISHED}/{version}"))
    incoming = mirror / INCOMING / f"{version}-{uuid.uuid4().hex}"
    try:
        for entry in manifest["files"]:
            target = incoming / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{key_of(uri)}/{version}/{entry['path']}", str(target))
            if target.stat().st_size != entry["size"]:
                raise StorageError(f"{uri}/{version}/{entry['path']}: {target.stat().st_size} bytes, the "
                                   f"manifest says {entry['size']}")
        incoming.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(incoming, mirror / str(version))
        except OSError:
            if not (mirror / str(version)).is_dir():   # else: another process fetched it first
                raise
    finally:
        shutil.rmtree(incoming, ignore_errors=True)


def sync(uri: str, mirror: os.PathLike) -> List[int]:
    """Bring the local mirror up to date: every published version not there yet, and the labels
    and audit trail; return the versions downloaded."""
    fs = filesystem(uri)
    mirror = pathlib.Path(mirror)
    mirror.mkdir(parents=True, exist_ok=True)
    if mirror_source(mirror) != uri:
        (mirror / SOURCE_FILE).write_text(uri + "\n")
    have = {int(p.name) for p in mirror.iterdir() if p.is_dir() and p.name.isdigit()}
    new = [v for v in published_versions(uri) if v not in have]
    for version in new:
        _fetch(fs, uri, version, mirror)
    pull_labels(uri, mirror)
    return new


def refresh(registry: os.PathLike) -> None:
    """A component reading a registry folder: when it is the mirror of a bucket, bring it up to
    date first (the command that started the pipeline did, but an Airflow or KFP task may run on
    a machine whose mirror is older); a plain local registry: nothing."""
    uri = mirror_source(registry)
    if uri:
        sync(uri, registry)


def add_to_mirror(mirror: os.PathLike, version: int, staged: os.PathLike) -> None:
    """A version this process just published: move its staged copy into the mirror."""
    target = pathlib.Path(mirror) / str(version)
    if target.exists():
        shutil.rmtree(staged, ignore_errors=True)
        return
    os.rename(staged, target)


# ---------------------------------------------------------------- labels (compare-and-swap)


def _replace_local(path: pathlib.Path, data: Optional[bytes]) -> None:
    if data is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def pull_labels(uri: str, mirror: os.PathLike) -> Optional[str]:
    """Copy the bucket's labels.json and audit.jsonl into the mirror; return labels.json's
    version (S3's ETag, GCS's generation; None: the bucket has none yet)."""
    fs = filesystem(uri)
    mirror = pathlib.Path(mirror)
    etag, data = None, None
    try:
        etag = conditional_writes(uri).version(f"{key_of(uri)}/{LABELS_FILE}")
        data = fs.cat_file(f"{key_of(uri)}/{LABELS_FILE}")
    except FileNotFoundError:
        pass
    try:
        audit = fs.cat_file(f"{key_of(uri)}/{AUDIT_FILE}")
    except FileNotFoundError:
        audit = None
    _replace_local(mirror / LABELS_FILE, data)
    _replace_local(mirror / AUDIT_FILE, audit)
    return etag


def push_labels(uri: str, mirror: os.PathLike, etag: Optional[str]) -> None:
    """Write the mirror's labels.json to the bucket only if the bucket's is still at version
    ``etag`` (created only if absent when there was none): Conflict otherwise. Then the audit."""
    fs = filesystem(uri)
    mirror = pathlib.Path(mirror)
    if not (mirror / LABELS_FILE).is_file():
        return      # nothing was written (the change was a no-op on a registry without labels)
    body = (mirror / LABELS_FILE).read_bytes()
    path = f"{key_of(uri)}/{LABELS_FILE}"
    writes = conditional_writes(uri)
    if etag is None:
        writes.create(path, body)
    else:
        writes.replace(path, body, etag)
    audit = mirror / AUDIT_FILE
    if audit.is_file():
        # not conditional: the labels' CAS above serializes writers, and each writer uploads the
        # whole trail it appended to (a later writer's copy contains this one's lines)
        fs.pipe_file(f"{key_of(uri)}/{AUDIT_FILE}", audit.read_bytes())


@contextlib.contextmanager
def labels_transaction(registry: os.PathLike, attempts: int = 20) -> Iterator[Any]:
    """For ``labels.set_labels`` on a mirror: yields a callable ``attempt(change)`` that pulls the
    bucket's labels into the mirror, runs ``change()`` (which edits the mirror's labels.json as on
    a local registry) and pushes the result with If-Match; on a conflict it pulls and runs it
    again. Returns what ``change`` returned."""
    uri = mirror_source(registry)

    def attempt(change):
        for i in range(attempts):
            etag = pull_labels(uri, registry)
            result = change()
            try:
                push_labels(uri, registry, etag)
                return result
            except Conflict:
                log.info("labels of %s changed meanwhile; retrying (%d)", uri, i + 1)
                time.sleep(0.05 * (i + 1))
        raise StorageError(f"registry: the labels of {uri} kept changing; gave up after {attempts} attempts")

    yield attempt
