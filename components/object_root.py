"""The TFX pipeline root on object storage (``pipeline_root: s3://bucket/prefix``): what
TensorFlow and Beam need to read and write artifacts there, in every process that touches them.

Who touches the pipeline root, and through what:

- TFX itself (``tfx.dsl.io.fileio``), Transform, Trainer (``SavedModel``), TFMA's model loading
  and TFDV's schema and statistics files: ``tf.io.gfile``. TF 2.16 has no ``s3://`` of its own;
  tensorflow-io's file-system plugin provides it. Only that plugin (``libtensorflow_io_plugins.so``)
  is loaded, with ``tf.experimental.register_filesystem_plugin``; driftguard never imports
  ``tensorflow_io`` (TFMA does, when it is installed, which registers the same plugin).
- Beam's reads and writes (ExampleGen's TFRecords, StatisticsGen, the Evaluator's outputs):
  Beam's own S3 file system (``apache_beam.io.aws``, boto3), which reads botocore's standard
  environment (``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL_S3``) like the rest of driftguard.

Credentials and the endpoint therefore come from the same environment as for the registry
(docs/storage.md); tensorflow-io's S3 client does not read ``AWS_ENDPOINT_URL_S3`` or
``AWS_DEFAULT_REGION``, so :func:`register` copies them to its own variables (``S3_ENDPOINT``,
``AWS_REGION``) unless they are set.

**Exit.** Once the plugin has talked to S3, the interpreter aborts at exit ("pure virtual method
called", status 134, measured here with tensorflow-io 0.37.1 and TF 2.16.2, whether tensorflow_io
is imported or only its plugin registered; a process that loaded the plugin without using it
exits normally). The command line therefore ends such a process with :func:`exit_now` (flush the
streams and the log files, then ``os._exit`` with the command's status).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import pathlib
import sys
from typing import MutableMapping, Optional

from driftguard.components import storage

log = logging.getLogger(__name__)

SUPPORTED_SCHEMES = ("s3",)
PLUGIN = ("python", "ops", "libtensorflow_io_plugins.so")     # inside the tensorflow_io package
_UNSUPPORTED = {
    "gs": "TF 2.16 and Beam reach gs:// natively, but TF's own GCS file system has no endpoint "
          "setting, so no GCS emulator could stand in for it here and it was never run",
}


class ObjectRootError(storage.StorageError):
    """The pipeline root cannot be used; the message names the setting (never a secret)."""


def check_uri(setting: str, uri: str) -> None:
    """``s3://bucket[/prefix]``, or :class:`ObjectRootError` naming ``setting``."""
    scheme = storage.scheme_of(uri)
    if scheme in ("gs", "gcs"):
        raise ObjectRootError(f"{setting}: {uri!r}: not supported yet ({_UNSUPPORTED['gs']}); supported: "
                              f"a local folder or s3://bucket/prefix (docs/storage.md)")
    if scheme not in SUPPORTED_SCHEMES:
        raise ObjectRootError(f"{setting}: the URI scheme {scheme + '://'!r} is not supported; a local folder "
                              f"or s3://bucket/prefix (docs/storage.md)")
    try:
        storage.check_uri(setting, uri)
    except storage.StorageError as e:
        raise ObjectRootError(str(e)) from None


def plugin_path() -> Optional[pathlib.Path]:
    """tensorflow-io's file-system plugin, found without importing ``tensorflow_io``; None when
    tensorflow-io is not installed."""
    spec = importlib.util.find_spec("tensorflow_io")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = pathlib.Path(list(spec.submodule_search_locations)[0]).joinpath(*PLUGIN)
    return path if path.is_file() else None


def tensorflow_io_environment(environ: MutableMapping[str, str]) -> None:
    """Give tensorflow-io's S3 client the endpoint and region of botocore's variables
    (``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` -> ``S3_ENDPOINT``, ``AWS_DEFAULT_REGION`` ->
    ``AWS_REGION``), without overriding its own variables when they are set."""
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint and not environ.get("S3_ENDPOINT"):
        environ["S3_ENDPOINT"] = endpoint
    if environ.get("AWS_DEFAULT_REGION") and not environ.get("AWS_REGION"):
        environ["AWS_REGION"] = environ["AWS_DEFAULT_REGION"]


def preflight(uri: str, setting: str = "pipeline_root") -> None:
    """Before any component runs: the scheme, tensorflow-io's plugin on disk (not loaded yet: that
    imports TensorFlow), and the bucket reached with a write probe (``storage.preflight``)."""
    check_uri(setting, uri)
    if plugin_path() is None:
        raise ObjectRootError(f"{setting}: {uri} needs tensorflow-io's S3 file system for TensorFlow, and "
                              f"tensorflow-io is not installed (it is in requirements.lock: make setup)")
    storage.preflight(setting, uri, write=True)


_registered = False


def registered() -> bool:
    """Whether this process loaded the plugin (then it must end through :func:`exit_now`)."""
    return _registered


def register(uri: str, setting: str = "pipeline_root") -> None:
    """Make ``uri``'s scheme readable and writable by ``tf.io.gfile`` (and so by TFX) in this
    process; idempotent, and nothing for a local path. :class:`ObjectRootError` naming
    ``setting`` when tensorflow-io is missing or its plugin does not load."""
    global _registered
    if not storage.is_uri(uri):
        return
    check_uri(setting, uri)
    tensorflow_io_environment(os.environ)
    if _registered:
        return
    path = plugin_path()
    if path is None:
        raise ObjectRootError(f"{setting}: {uri} needs tensorflow-io's S3 file system for TensorFlow, and "
                              f"tensorflow-io is not installed (it is in requirements.lock: make setup)")
    import tensorflow as tf

    scheme = storage.scheme_of(uri)
    # TFMA imports tensorflow_io when it is installed (tensorflow_model_analysis/utils/model_util.py),
    # which registers the same plugin: then the scheme is there already
    if scheme not in tf.io.gfile.get_registered_schemes():
        try:
            tf.experimental.register_filesystem_plugin(str(path))
        except Exception as e:  # noqa: BLE001 - TF raises its own status errors
            raise ObjectRootError(f"{setting}: tensorflow-io's file-system plugin {path} did not load: "
                                  f"{type(e).__name__}: {e}") from None
    if scheme not in tf.io.gfile.get_registered_schemes():
        raise ObjectRootError(f"{setting}: tensorflow-io's plugin {path} did not register {scheme}://")
    _registered = True
    log.info("registered tensorflow-io's file systems (%s) for %s", path, uri)


def exit_now(code: int) -> None:
    """End the process with ``code`` without running C++ static destructors (they abort once
    tensorflow-io's S3 client was used, above): flush Python's streams and the log files first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed stream has nothing left to lose
            pass
    os._exit(code)
