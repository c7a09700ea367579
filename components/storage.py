"""Object storage (``s3://``) for the model registry, in one place: the file system, the
preflight, publish-once without rename, the local mirror readers use, labels by compare-and-swap.

Why fsspec (s3fs) and not ``tf.io.gfile`` or Beam's file systems: TF 2.16's ``tf.io.gfile`` has
no ``s3://`` without tensorflow-io (whose 0.37.1 crashed this interpreter at exit here) and
neither it nor Beam's ``FileSystems`` can make a *conditional* write; s3fs's
``pipe_file(mode="create")`` is S3's ``If-None-Match: *`` PUT and it passes ``IfMatch`` through,
which is what publish-once and the labels' compare-and-swap need on a store without rename.

Layout of a registry at ``<uri>`` (``<registry>/<model_name>``)::

    <uri>/.claims/<N>        claimed by one publisher (created with If-None-Match: *)
    <uri>/<N>/...            the version's files (SavedModel, profile/)
    <uri>/.published/<N>     written LAST: the manifest (every file and its size)
    <uri>/labels.json        label -> version (replaced with If-Match on its ETag)
    <uri>/audit.jsonl        every label change

A version exists only once its ``.published/<N>`` marker does: a publisher killed mid-upload
leaves a claim and some files, never a visible version, and the number is not reused.

Readers never read the bucket directly: :func:`sync` copies every published version (immutable,
so each once) and the labels into a local mirror, ``<runs>/registry-cache/<model_name>``, which is
laid out exactly as a local registry; the span check, ``serve`` and ``monitor`` read that folder
with the code they always used. The mirror holds a ``.source`` file naming the bucket, so
``labels.set_labels`` writes label changes through to the bucket (:func:`labels_transaction`).

Credentials and the endpoint come from botocore's standard environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``),
never from driftguard.yaml. See docs/storage.md.
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
from typing import Any, Dict, Iterator, List, Optional, Tuple

log = logging.getLogger(__name__)

SUPPORTED_SCHEMES = ("s3",)
# Schemes people write that driftguard does not support, and why (the message of exit 2).
_UNSUPPORTED = {
    "gs": "gs:// would need gcsfs, which is not in requirements.lock and was not tested here",
    "gcs": "gs:// would need gcsfs, which is not in requirements.lock and was not tested here",
}
CLAIMS = ".claims"
PUBLISHED = ".published"
SOURCE_FILE = ".source"          # in a local mirror: the bucket URI it mirrors
INCOMING = ".incoming"           # in a local mirror: versions being downloaded
LABELS_FILE = "labels.json"      # the same names as components/registry_pusher/labels.py
AUDIT_FILE = "audit.jsonl"


class StorageError(ValueError):
    """Object storage cannot be used; the message names the setting (never a secret)."""


class Conflict(Exception):
    """A conditional write lost: someone else wrote the object first."""


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
        raise StorageError(f"{setting}: {uri!r} is not s3://bucket[/prefix] (no empty part, no trailing /)")


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
    if key not in _FS:
        import s3fs

        config: Dict[str, Any] = {}
        if quick:
            config = {"connect_timeout": 5, "read_timeout": 10, "retries": {"max_attempts": 1}}
        # no listing cache: another publisher's new version must be seen by the next listing
        _FS[key] = s3fs.S3FileSystem(use_listings_cache=False, skip_instance_cache=True,
                                     config_kwargs=config)
    return _FS[key]


def _strip(uri: str) -> str:
    return str(uri).split("://", 1)[1]


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or "AWS S3"


def preflight(setting: str, uri: str, write: bool = False) -> None:
    """Reach the bucket once before any component runs: StorageError naming ``setting`` for an
    unsupported scheme, no credentials, an unreachable endpoint, a missing bucket, wrong
    credentials (the secret is never part of the message). ``write``: also create (and delete) a
    probe object under ``<uri>/.driftguard-preflight/``, so a key allowed to read but not to write
    fails here rather than at the push."""
    check_uri(setting, uri)
    from botocore import exceptions as bx

    bucket, endpoint = bucket_of(uri), _endpoint()
    try:
        fs = filesystem(uri, quick=True)
        fs.call_s3("head_bucket", Bucket=bucket)
        fs.call_s3("list_objects_v2", Bucket=bucket, Prefix=_strip(uri).partition("/")[2], MaxKeys=1)
        if write:
            probe = f"{_strip(uri)}/.driftguard-preflight/{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"
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


# ---------------------------------------------------------------- publishing


def _numbers(fs, folder: str) -> List[int]:
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False)]
    except FileNotFoundError:
        return []
    return sorted(int(n) for n in names if n.isdigit())


def published_versions(uri: str) -> List[int]:
    """The versions whose ``.published`` marker exists (the only ones readers see)."""
    return _numbers(filesystem(uri), f"{_strip(uri)}/{PUBLISHED}")


def _claim(fs, uri: str) -> int:
    """Take the next free version number with a conditional create of ``.claims/<N>``."""
    root = _strip(uri)
    n = (_numbers(fs, f"{root}/{CLAIMS}") or [0])[-1] + 1
    owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}).encode()
    while True:
        try:
            fs.pipe_file(f"{root}/{CLAIMS}/{n}", owner, mode="create")
            return n
        except FileExistsError:
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
    root = f"{_strip(uri)}/{version}"
    manifest = []
    for path in files:
        rel = path.relative_to(staged).as_posix()
        fs.put_file(str(path), f"{root}/{rel}")
        manifest.append({"path": rel, "size": path.stat().st_size})
    if before_marker is not None:
        before_marker(version)
    fs.pipe_file(f"{_strip(uri)}/{PUBLISHED}/{version}",
                 json.dumps({"version": version, "files": manifest}).encode(), mode="create")
    log.info("published %s/%d (%d files)", uri, version, len(files))
    return version


def upload_tree(folder: os.PathLike, uri: str, last: str = "index.html") -> int:
    """Copy every file under ``folder`` to ``uri`` (overwriting), ``last`` after all the others
    (the dashboard: it links to the span pages, which are there when it is); return the count.
    For derived files (reports), rebuilt from the runs folder at will: not atomic as a whole."""
    fs = filesystem(uri)
    folder = pathlib.Path(folder)
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: (p.name == last, str(p)))
    for path in files:
        fs.put_file(str(path), f"{_strip(uri)}/{path.relative_to(folder).as_posix()}")
    return len(files)


SYNC_MANIFEST = ".driftguard-sync.json"    # in a local copy of a bucket prefix: {file: ETag}


def sync_tree(uri: str, folder: os.PathLike) -> Tuple[int, int]:
    """Make ``folder`` a copy of every object under ``uri`` (the spans of ``data.root``): download
    the objects that are new or whose ETag changed (each into a temporary file, then renamed),
    delete the files this copy made whose object is gone; return (downloaded, deleted). Spans are
    written once, so after the first run a sync is one listing."""
    fs = filesystem(uri)
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path = folder / SYNC_MANIFEST
    try:
        had = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        had = {}
    root = _strip(uri).rstrip("/")
    found = fs.find(root, detail=True)
    now: Dict[str, str] = {}
    downloaded = 0
    for key, info in sorted(found.items()):
        if info.get("type") == "directory" or key.endswith("/"):
            continue
        rel = key[len(root) + 1:]
        if not rel or any(part in ("", ".", "..") for part in rel.split("/")):
            continue
        etag = str(info.get("ETag") or info.get("size"))
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
    manifest = json.loads(fs.cat_file(f"{_strip(uri)}/{PUBLISHED}/{version}"))
    incoming = mirror / INCOMING / f"{version}-{uuid.uuid4().hex}"
    try:
        for entry in manifest["files"]:
            target = incoming / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(f"{_strip(uri)}/{version}/{entry['path']}", str(target))
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
    """Copy the bucket's labels.json and audit.jsonl into the mirror; return labels.json's ETag
    (None: the bucket has none yet)."""
    fs = filesystem(uri)
    mirror = pathlib.Path(mirror)
    etag, data = None, None
    try:
        info = fs.info(f"{_strip(uri)}/{LABELS_FILE}")
        etag = info.get("ETag")
        data = fs.cat_file(f"{_strip(uri)}/{LABELS_FILE}")
    except FileNotFoundError:
        pass
    try:
        audit = fs.cat_file(f"{_strip(uri)}/{AUDIT_FILE}")
    except FileNotFoundError:
        audit = None
    _replace_local(mirror / LABELS_FILE, data)
    _replace_local(mirror / AUDIT_FILE, audit)
    return etag


def push_labels(uri: str, mirror: os.PathLike, etag: Optional[str]) -> None:
    """Write the mirror's labels.json to the bucket only if the bucket's is still the one of
    ``etag`` (If-Match; If-None-Match when there was none): Conflict otherwise. Then the audit."""
    fs = filesystem(uri)
    mirror = pathlib.Path(mirror)
    if not (mirror / LABELS_FILE).is_file():
        return      # nothing was written (the change was a no-op on a registry without labels)
    body = (mirror / LABELS_FILE).read_bytes()
    path = f"{_strip(uri)}/{LABELS_FILE}"
    try:
        if etag is None:
            fs.pipe_file(path, body, mode="create")
        else:
            fs.pipe_file(path, body, IfMatch=etag)
    except FileExistsError:
        raise Conflict(path) from None
    except OSError as e:
        if "pre-condition" in str(e) or "PreconditionFailed" in repr(e):   # s3fs's text for S3's 412
            raise Conflict(path) from None
        raise
    audit = mirror / AUDIT_FILE
    if audit.is_file():
        # not conditional: the labels' CAS above serializes writers, and each writer uploads the
        # whole trail it appended to (a later writer's copy contains this one's lines)
        fs.pipe_file(f"{_strip(uri)}/{AUDIT_FILE}", audit.read_bytes())


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
