"""driftguard's executors and readers on artifact folders that may be in object storage (an
``s3://`` pipeline root, components/object_root.py).

driftguard's own components write their outputs (reports, samples, decisions) with ``pathlib``,
pyarrow and Beam's local writes; rather than rewrite each of them for a bucket,
:func:`written_locally` runs an executor's body with each output artifact pointing at a fresh
local folder, then copies that folder to the artifact's real URI (``tfx.dsl.io.fileio``, i.e.
``tf.io.gfile`` with tensorflow-io's plugin) and puts the URI back, so MLMD records the bucket's.
A local pipeline root is left alone: nothing is copied. Readers use :func:`read_text` and
:func:`copy_tree`, which take either.

The folder is written on the machine running the executor, so this suits executors whose Beam
work runs there (DirectRunner, the default); the samples a remote runner's workers write still
need a path they reach (docs/distributed.md).
"""
from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from typing import Iterable, Iterator


def is_remote(uri: str) -> bool:
    return "://" in str(uri)


def _upload(folder: os.PathLike, uri: str) -> int:
    """Copy every file under the local ``folder`` to ``uri`` (overwriting); return the count.

    Through TFX's own ``fileio`` (tf.io.gfile), not ``storage.upload_tree`` (fsspec): an artifact
    folder is TFX's, read back by TFX and the next executors through that same file system, and
    its (possibly empty) folders are made as TFX makes them."""
    from tfx.dsl.io import fileio

    count = 0
    folder = pathlib.Path(folder)
    fileio.makedirs(uri)
    for path in sorted(folder.rglob("*")):
        target = f"{uri}/{path.relative_to(folder).as_posix()}"
        if path.is_dir():
            fileio.makedirs(target)
        else:
            fileio.copy(str(path), target, overwrite=True)
            count += 1
    return count


def copy_tree(source: str, folder: os.PathLike) -> None:
    """Copy the folder ``source`` (a path or an object-storage URI) to the new local ``folder``."""
    if not is_remote(source):
        shutil.copytree(source, folder)
        return
    from tfx.dsl.io import fileio

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True)
    source = source.rstrip("/")
    for directory, _subdirs, files in fileio.walk(source):
        directory = str(directory).rstrip("/")
        rel = directory[len(source):].lstrip("/")
        (folder / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            fileio.copy(f"{directory}/{name}", str(folder / rel / name))


def read_text(uri: str, name: str) -> str:
    """The text of file ``name`` in the artifact folder ``uri`` (a path or a URI)."""
    if not is_remote(uri):
        return (pathlib.Path(uri) / name).read_text()
    from tfx.dsl.io import fileio

    with fileio.open(f"{uri.rstrip('/')}/{name}", "r") as f:
        return f.read()


@contextlib.contextmanager
def written_locally(artifacts: Iterable) -> Iterator[None]:
    """Within the block, each artifact with an object-storage URI has a fresh local folder as
    its URI; after the block succeeds, the folder's files go to the real URI, which is put back.
    On failure nothing is uploaded (TFX discards a failed execution's outputs)."""
    moved = []
    try:
        for artifact in artifacts:
            if is_remote(artifact.uri):
                moved.append((artifact, artifact.uri, tempfile.mkdtemp(prefix="driftguard-artifact-")))
                artifact.uri = moved[-1][2]
        yield
        for artifact, uri, local in moved:
            artifact.uri = uri
            _upload(local, uri)
    finally:
        for artifact, uri, local in moved:
            artifact.uri = uri
            shutil.rmtree(local, ignore_errors=True)
