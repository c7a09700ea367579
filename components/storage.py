"""Object storage (``s3://``, ``gs://``), in one place: which URIs are supported, the file system,
the preflight that reaches a bucket before any component runs, the conditional writes, and
copying a folder to or from a bucket prefix (reports out, spans in). The model registry's
protocol on top of it (publish once without rename, the local mirror, labels by
compare-and-swap) is ``driftguard.components.registry_pusher.remote``.

Why fsspec (s3fs) and not ``tf.io.gfile`` or Beam's file systems: TF 2.16's ``tf.io.gfile`` has
no ``s3://`` without tensorflow-io (whose 0.37.1 crashed this interpreter at exit here) and
neither it nor Beam's ``FileSystems`` can make a *conditional* write; s3fs's
``pipe_file(mode="create")`` is S3's ``If-None-Match: *`` PUT and it passes ``IfMatch`` through,
which is what publish-once and the labels' compare-and-swap need on a store without rename.

``gs://`` goes through google-cloud-storage instead (``storage_gcs``: gcsfs does not fit the
lock), behind the same few fsspec method names; :func:`conditional_writes` is the one place the
two stores differ for the registry's protocol (S3's ``If-None-Match``/``If-Match`` on an ETag,
GCS's ``ifGenerationMatch`` on a generation).

Credentials and the endpoint come from each store's standard environment, never from
driftguard.yaml: botocore's (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``,
``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``) and Google's (``GOOGLE_APPLICATION_CREDENTIALS``
or application-default credentials; ``STORAGE_EMULATOR_HOST`` for an emulator). See
docs/storage.md.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import pathlib
import socket
import uuid
from typing import Any, Callable, Dict, Optional, Tuple

log = logging.getLogger(__name__)

SUPPORTED_SCHEMES = ("s3", "gs")
# Schemes people write that driftguard does not support, and why (the message of exit 2).
_UNSUPPORTED = {
    "gcs": "write Google Cloud Storage URIs as gs://bucket/prefix",
}


class StorageError(ValueError):
    """Object storage cannot be used; the message names the setting (never a secret)."""


class Conflict(Exception):
    """A conditional write lost (the store answered 412): someone else wrote the object first."""


def is_uri(path: Any) -> bool:
    return "://" in str(path)


def scheme_of(uri: str) -> str:
    return str(uri).split("://", 1)[0].lower()


def check_uri(setting: str, uri: str) -> None:
    """``s3://bucket[/prefix]``, or StorageError naming ``setting``."""
    scheme = scheme_of(uri)
    if scheme in _UNSUPPORTED:
        raise StorageError(f"{setting}: {uri!r}: {_UNSUPPORTED[scheme]}; supported: "
                           f"{', '.join(s + '://' for s in SUPPORTED_SCHEMES)} (docs/storage.md)")
    if scheme not in SUPPORTED_SCHEMES:
        raise StorageError(f"{setting}: the URI scheme {scheme + '://'!r} is not supported; a local folder or "
                           f"{', '.join(s + '://bucket/prefix' for s in SUPPORTED_SCHEMES)} (docs/storage.md)")
    rest = str(uri).split("://", 1)[1]
    bucket = rest.split("/", 1)[0]
    if not bucket or rest.endswith("/") or "//" in rest:
        raise StorageError(f"{setting}: {uri!r} is not {scheme}://bucket[/prefix] (no empty part, no trailing /)")


def bucket_of(uri: str) -> str:
    return str(uri).split("://", 1)[1].split("/", 1)[0]


# ---------------------------------------------------------------- the file system

_FS: Dict[Tuple[str, bool], Any] = {}


def clear_cache() -> None:
    """Forget the file systems made so far (their credentials and endpoint were read from the
    environment when they were made)."""
    _FS.clear()
    try:
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()
    except ImportError:
        pass


def filesystem(uri: str, quick: bool = False):
    """The fsspec file system of ``uri``; ``quick``: short timeouts and no retries (preflight)."""
    key = (scheme_of(uri), quick)
    if key not in _FS and key[0] == "gs":
        from driftguard.components.storage_gcs import GCSFileSystem

        _FS[key] = GCSFileSystem(quick=quick)
    if key not in _FS:
        import s3fs

        config: Dict[str, Any] = {}
        if quick:
            config = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 1}}
        # no listing cache: another publisher's new version must be seen by the next listing
        _FS[key] = s3fs.S3FileSystem(use_listings_cache=False, skip_instance_cache=True,
                                     config_kwargs=config)
    return _FS[key]


def key_of(uri: str) -> str:
    """``bucket/prefix`` of ``s3://bucket/prefix``: the path fsspec takes."""
    return str(uri).split("://", 1)[1]


# ---------------------------------------------------------------- conditional writes


class _S3Writes:
    """S3's conditional writes through s3fs: ``If-None-Match: *`` and ``If-Match: <ETag>``."""

    def __init__(self, fs):
        self.fs = fs

    def version(self, path: str) -> str:
        return self.fs.info(path)["ETag"]

    def create(self, path: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(path, data, mode="create")
        except FileExistsError:     # s3fs's translation of 412 on If-None-Match
            raise Conflict(path) from None

    def replace(self, path: str, data: bytes, version: str) -> None:
        try:
            self.fs.pipe_file(path, data, IfMatch=version)
        except OSError as e:
            if "pre-condition" in str(e) or "PreconditionFailed" in repr(e):   # s3fs's text for S3's 412
                raise Conflict(path) from None
            raise


class _GCSWrites:
    """GCS's conditional writes: ``ifGenerationMatch=0`` and ``ifGenerationMatch=<generation>``."""

    def __init__(self, fs):
        self.fs = fs
        self.create, self.replace = fs.create, fs.replace

    def version(self, path: str) -> str:
        return self.fs.info(path)["version"]


def conditional_writes(uri: str):
    """The conditional writes of ``uri``'s store, the same three calls for every scheme:
    ``version(path)`` (an object's current version: S3's ETag, GCS's generation;
    FileNotFoundError when absent), ``create(path, data)`` (only if absent) and
    ``replace(path, data, version)`` (only if still at ``version``); both raise
    :class:`Conflict` when the store refuses (412)."""
    fs = filesystem(uri)
    return _GCSWrites(fs) if scheme_of(uri) == "gs" else _S3Writes(fs)


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def _probe_key(uri: str) -> str:
    return f"{key_of(uri)}/.driftguard-preflight/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"


def preflight(setting: str, uri: str, write: bool = False) -> None:
    """Reach the bucket once before any component runs: StorageError naming ``setting`` for an
    unsupported scheme, no credentials, an unreachable endpoint, a missing bucket, wrong
    credentials (the secret is never part of the message). ``write``: also create (and delete) a
    probe object under ``<uri>/.driftguard-preflight/``, so a key allowed to read but not to write
    fails here rather than at the push."""
    check_uri(setting, uri)
    if scheme_of(uri) == "gs":
        from driftguard.components import storage_gcs

        storage_gcs.preflight(setting, uri, key_of(uri), _probe_key(uri) if write else None)
        return
    from botocore import exceptions as bx

    bucket, endpoint = bucket_of(uri), _endpoint()
    try:
        fs = filesystem(uri, quick=True)
        fs.call_s3("head_bucket", Bucket=bucket)
        fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=key_of(uri).partition("/")[2], MaxKeys=1)
        if write:
            probe = _probe_key(uri)
            fs.pipe_file(probe, b"", mode="create")
            with contextlib.suppress(OSError):     # a bucket that forbids deletes keeps an empty probe
                fs.rm_file(probe)
    except bx.NoCredentialsError:
        raise StorageError(f"{setting}: no S3 credentials for {uri} (set AWS_ACCESS_KEY_ID and "
                           f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, in the environment)") from None
    except bx.ProfileNotFound as e:
        raise StorageError(f"{setting}: the AWS profile {e.kwargs.get('profile')!r} (AWS_PROFILE) does not "
                           f"exist, so there are no credentials for {uri}") from None
    except (bx.EndpointConnectionError, bx.ConnectTimeoutError, bx.ReadTimeoutError) as e:
        raise StorageError(f"{setting}: cannot reach the S3 endpoint {endpoint} for {uri} "
                           f"({type(e).__name__}; AWS_ENDPOINT_URL_S3 sets the endpoint)") from None
    except bx.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket") or status == 404:
            raise StorageError(f"{setting}: bucket {bucket!r} does not exist at {endpoint} (create it first; "
                               f"driftguard does not create buckets)") from None
        if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch") or status == 403:
            raise StorageError(f"{setting}: {endpoint} refused the credentials for bucket {bucket!r} "
                               f"(wrong AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or no permission)") from None
        raise StorageError(f"{setting}: {uri}: S3 error {code or status}") from None
    except bx.BotoCoreError as e:     # any other client-side failure: its class names it, no secret
        raise StorageError(f"{setting}: cannot use {uri} at {endpoint}: {type(e).__name__}") from None
    except FileNotFoundError:     # s3fs's translation of S3's 404 / NoSuchBucket
        raise StorageError(f"{setting}: bucket {bucket!r} does not exist at {endpoint} (create it first; "
                           f"driftguard does not create buckets)") from None
    except PermissionError:       # s3fs's translation of S3's 403 (InvalidAccessKeyId, SignatureDoesNotMatch...)
        raise StorageError(f"{setting}: {endpoint} refused the credentials for bucket {bucket!r} "
                           f"(wrong AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or no permission"
                           f"{' to write under ' + uri if write else ''})") from None
    except OSError as e:   # aiohttp/botocore errors s3fs passes on as OSError
        raise StorageError(f"{setting}: cannot use {uri} at {endpoint}: {type(e).__name__}") from None



# ---------------------------------------------------------------- copying folders


def upload_tree(folder: os.PathLike, uri: str, last: str = "index.html") -> int:
    """Copy every file under ``folder`` to ``uri`` (overwriting), ``last`` after all the others
    (the dashboard: it links to the span pages, which are there when it is); return the count.
    For derived files (reports), rebuilt from the runs folder at will: not atomic as a whole."""
    fs = filesystem(uri)
    folder = pathlib.Path(folder)
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name == last, str(p)))
    for path in files:
        fs.put_file(str(path), f"{key_of(uri)}/{path.relative_to(folder).as_posix()}")
    return len(files)


SYNC_MANIFEST = ".driftguard-sync.json"    # in a local copy of a bucket prefix: {file: ETag}


def sync_tree(uri: str, folder: os.PathLike,
              select: Optional[Callable[[str], bool]] = None) -> Tuple[int, int]:
    """Make ``folder`` a copy of every object under ``uri`` (the spans of ``data.root``): download
    the objects that are new or whose ETag changed (each into a temporary file, then renamed),
    delete the files this copy made whose object is gone; return (downloaded, deleted). (A GCS
    object's "ETag" here is its generation.) Spans are
    written once, so after the first run a sync is one listing.

    ``select(relative_path)``: copy only the objects it accepts (a relative path is
    ``a/b/file`` below ``uri``); the others are listed, never downloaded (the small files the
    reports read out of an object-storage ``pipeline_root``, not its examples or models)."""
    fs = filesystem(uri)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / SYNC_MANIFEST
    try:
        had = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        had = {}
    root = key_of(uri).rstrip("/")
    found = fs.find(root, detail=True)
    now: Dict[str, str] = {}
    downloaded = 0
    for key, info in sorted(found.items()):
        if info.get("type") == "directory" or key.endswith("/"):
            continue
        rel = key[len(root) + 1:]
        if not rel or any(part in ("", ".", "..") for part in rel.split("/")):
            continue
        if select is not None and not select(rel):
            continue
        etag = str(info.get("ETag") or info.get("version") or info.get("size"))
        now[rel] = etag
        target = folder / rel
        if had.get(rel) == etag and target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            fs.get_file(key, str(tmp))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        downloaded += 1
    deleted = 0
    for rel in set(had) - set(now):
        with contextlib.suppress(FileNotFoundError):
            (folder / rel).unlink()
            deleted += 1
    tmp = folder / f".{SYNC_MANIFEST}.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(now, sort_keys=True))
    os.replace(tmp, manifest_path)
    return downloaded, deleted
