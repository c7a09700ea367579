"""``gs://`` for ``registry``, ``reports`` and ``data.root``: the few file operations driftguard
makes on a bucket (the same names and meanings as the fsspec methods ``storage`` calls on s3fs),
GCS's conditional writes, and the preflight's GCS errors, over google-cloud-storage's JSON API.

Why google-cloud-storage and not gcsfs: every gcsfs that accepts the lock's fsspec 2026.9.0
(2026.4.0 on) needs google-cloud-storage>=3.9, which apache-beam[gcp] 2.59 and kfp 2.5 exclude
(<3); the older ones pin an older fsspec exactly (s3fs pins this one). google-cloud-storage
2.19.0 is already in the lock (through Beam), and its ``if_generation_match`` is GCS's
conditional write: ``0`` creates only when the object is absent (S3's ``If-None-Match: *``), a
generation replaces only that generation (S3's ``If-Match: <etag>``); GCS answers 412 otherwise.

Credentials come from Google's standard environment only (``GOOGLE_APPLICATION_CREDENTIALS``,
``gcloud auth application-default login``, a VM's service account; ``STORAGE_EMULATOR_HOST``
points the client at an emulator, without credentials), never from driftguard.yaml.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Dict, List, Optional, Tuple

from driftguard.components.storage import Conflict, StorageError

# preflight: fail fast (connect, read) and never retry; otherwise the library's defaults (60 s,
# retries with backoff; a conditional write is retried only because it is conditional)
_QUICK_TIMEOUT = (5, 10)


def endpoint() -> str:
    """Where the client sends its requests (for messages)."""
    return (os.environ.get("STORAGE_EMULATOR_HOST") or os.environ.get("API_ENDPOINT_OVERRIDE")
            or "storage.googleapis.com")


def _split(path: str) -> Tuple[str, str]:
    bucket, _, key = str(path).partition("/")
    return bucket, key


class GCSFileSystem:
    """The subset of fsspec's file-system interface driftguard uses (``ls``, ``find``, ``info``,
    ``cat_file``, ``pipe_file``, ``get_file``, ``put_file``, ``rm_file``), on ``bucket/key``
    paths, plus the two conditional writes (:meth:`create`, :meth:`replace`). An object's
    ``version`` (``info()["version"]``) is its generation. Missing objects raise
    FileNotFoundError, as in fsspec."""

    version_key = "generation"

    def __init__(self, quick: bool = False):
        from google.api_core.retry import Retry
        from google.cloud import storage as gcs
        from google.cloud.storage.retry import DEFAULT_RETRY

        # project=None: object operations need no project, so ADC without one is enough
        self.client = gcs.Client(project=None)
        self.timeout: Any = _QUICK_TIMEOUT if quick else 60
        self.retry: Optional[Retry] = None if quick else DEFAULT_RETRY

    def _blob(self, path: str):
        bucket, key = _split(path)
        return self.client.bucket(bucket).blob(key)

    @contextlib.contextmanager
    def _errors(self, path: str):
        """GCS's errors as the OSErrors fsspec raises (the callers handle OSError, as for s3fs):
        404 FileNotFoundError, 401/403 PermissionError, any other answer OSError."""
        from google.api_core import exceptions as gx
        from google.auth import exceptions as ax

        try:
            yield
        except gx.NotFound:
            raise FileNotFoundError(path) from None
        except (gx.Unauthorized, gx.Forbidden) as e:
            raise PermissionError(f"{path}: GCS answered {e.code} (credentials or permission)") from None
        except gx.GoogleAPICallError as e:
            raise OSError(f"{path}: GCS answered {e.code}") from None
        except ax.GoogleAuthError as e:    # no credentials, or a token refused
            raise PermissionError(f"{path}: {type(e).__name__} (Google credentials)") from None

    def _list(self, path: str, delimiter: Optional[str] = None, max_results: Optional[int] = None):
        bucket, key = _split(path)
        return self.client.list_blobs(bucket, prefix=f"{key}/" if key else "", delimiter=delimiter,
                                      max_results=max_results, timeout=self.timeout, retry=self.retry)

    def ls(self, path: str, detail: bool = False) -> List[str]:
        """The names right below ``path`` (objects and "folders"), as ``bucket/key``."""
        bucket, _ = _split(path)
        with self._errors(path):
            pages = self._list(path, delimiter="/")
            names = [f"{bucket}/{blob.name}" for blob in pages]
            names += [f"{bucket}/{prefix.rstrip('/')}" for prefix in pages.prefixes]
        return sorted(names)

    def find(self, path: str, detail: bool = True) -> Dict[str, Dict[str, Any]]:
        """Every object below ``path``, ``bucket/key`` -> {type, size, version}."""
        bucket, _ = _split(path)
        with self._errors(path):
            return {f"{bucket}/{blob.name}": {"type": "file", "size": blob.size, "version": str(blob.generation)}
                    for blob in self._list(path)}

    def info(self, path: str) -> Dict[str, Any]:
        blob = self._blob(path)
        with self._errors(path):
            blob.reload(timeout=self.timeout, retry=self.retry)
        return {"type": "file", "size": blob.size, "version": str(blob.generation)}

    def cat_file(self, path: str) -> bytes:
        with self._errors(path):
            return self._blob(path).download_as_bytes(timeout=self.timeout, retry=self.retry)

    def get_file(self, path: str, local: str) -> None:
        with self._errors(path):
            self._blob(path).download_to_filename(local, timeout=self.timeout, retry=self.retry)

    def put_file(self, local: str, path: str) -> None:
        with self._errors(path):
            self._blob(path).upload_from_filename(local, timeout=self.timeout, retry=self.retry)

    def pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
        if mode == "create":
            self.create(path, data)
        else:
            with self._errors(path):
                self._blob(path).upload_from_string(data, timeout=self.timeout, retry=self.retry)

    def rm_file(self, path: str) -> None:
        with self._errors(path):
            self._blob(path).delete(timeout=self.timeout, retry=self.retry)

    # ---- conditional writes (GCS's preconditions: ifGenerationMatch)

    def _conditional(self, path: str, data: bytes, generation: int) -> None:
        from google.api_core import exceptions as gx

        with self._errors(path):
            try:
                self._blob(path).upload_from_string(data, if_generation_match=generation,
                                                    timeout=self.timeout, retry=self.retry)
            except gx.PreconditionFailed:     # 412: the object exists / is not that generation any more
                raise Conflict(path) from None

    def create(self, path: str, data: bytes) -> None:
        """Write ``path`` only if no object is there (``ifGenerationMatch=0``): Conflict otherwise."""
        self._conditional(path, data, 0)

    def replace(self, path: str, data: bytes, version: str) -> None:
        """Write ``path`` only if its generation is still ``version``: Conflict otherwise."""
        self._conditional(path, data, int(version))


def preflight(setting: str, uri: str, prefix: str, probe: Optional[str]) -> None:
    """Reach the bucket of ``uri`` once (one listing of ``prefix``, at most one object; with
    ``probe``, also create and delete that object), or StorageError naming ``setting``: no
    credentials, wrong credentials, an unreachable endpoint, a missing bucket, no permission."""
    import requests
    from google.api_core import exceptions as gx
    from google.auth import exceptions as ax

    bucket, where = _split(prefix)[0], endpoint()
    try:
        fs = GCSFileSystem(quick=True)
        list(fs._list(prefix, max_results=1))
        if probe:
            fs.create(probe, b"")
            with contextlib.suppress(OSError, gx.GoogleAPICallError):   # a bucket that forbids deletes keeps it
                fs.rm_file(probe)
    except ax.DefaultCredentialsError as e:
        named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
        why = (f"GOOGLE_APPLICATION_CREDENTIALS names {named!r}, which is missing or not a credentials file"
               if named else "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run "
               "`gcloud auth application-default login`; STORAGE_EMULATOR_HOST for an emulator")
        raise StorageError(f"{setting}: no Google credentials for {uri} ({why}; {type(e).__name__})") from None
    except ax.RefreshError:
        raise StorageError(f"{setting}: the Google credentials for {uri} were refused when getting a token "
                           f"(a wrong or revoked key in GOOGLE_APPLICATION_CREDENTIALS or the ADC)") from None
    except (ax.TransportError, requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
        raise StorageError(f"{setting}: cannot reach the GCS endpoint {where} for {uri} ({type(e).__name__}; "
                           f"STORAGE_EMULATOR_HOST sets an emulator's address)") from None
    except (gx.NotFound, FileNotFoundError):
        raise StorageError(f"{setting}: bucket {bucket!r} does not exist at {where} (create it first; "
                           f"driftguard does not create buckets)") from None
    except (gx.Unauthorized, gx.Forbidden, PermissionError):
        raise StorageError(f"{setting}: {where} refused the credentials for bucket {bucket!r} (wrong "
                           f"GOOGLE_APPLICATION_CREDENTIALS / ADC, or no permission"
                           f"{' to write under ' + uri if probe else ''})") from None
    except Conflict:    # a probe name is unique: only a store that ignores ifGenerationMatch=0 ... or a bug
        raise StorageError(f"{setting}: {uri}: the preflight's probe object already existed") from None
    except gx.GoogleAPICallError as e:
        raise StorageError(f"{setting}: {uri}: GCS error {e.code} at {where}") from None
    except (ax.GoogleAuthError, OSError) as e:
        raise StorageError(f"{setting}: cannot use {uri} at {where}: {type(e).__name__}") from None
