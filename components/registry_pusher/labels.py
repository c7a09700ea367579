"""Version labels of a registry (TF Serving's ``version_labels``) and their audit trail.

``<registry>/labels.json`` maps a label to a version number::

    {"labels": {"champion": 3, "challenger": 4}, "revision": 7, "last_change": {...}}

``champion`` is the version served by default; without a champion label the newest version is
(:func:`champion_version`, the behaviour before labels existed). Any other label
(``challenger``, ``canary``) names a version clients can ask for by label. As in TF Serving, a
label must point to an existing version.

Every change appends one JSON line per label to ``<registry>/audit.jsonl`` (who, when, what, why).

Writes: a writer takes an exclusive ``fcntl.flock`` on ``<registry>/.labels.lock``, reads the
file, writes the new one to a temporary file beside it, fsyncs it and ``os.replace``-s it over
``labels.json`` (readers, such as ``driftguard serve``'s poller, take no lock: they see the old
file or the new one, never half of one), then appends the audit lines and fsyncs them. Two
``driftguard promote`` calls at once are serialized by the lock, so neither update is lost.
``flock`` is reliable on a local file system; on NFS it depends on the mount (``local_lock``).

A writer killed between the rename and the audit append leaves a change without its audit
line; ``labels.json`` carries that change as ``last_change``, and the next writer appends the
missing line first (``revision`` tells whether it is missing).

No TensorFlow or TFX import here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import getpass
import json
import logging
import os
import pathlib
import re
import socket
import uuid
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from driftguard.components.registry_pusher import remote
from driftguard.components.registry_pusher.registry import _fsync_dir, existing_versions

log = logging.getLogger(__name__)

LABELS_FILE = "labels.json"
AUDIT_FILE = "audit.jsonl"
LOCK_FILE = ".labels.lock"
CHAMPION = "champion"        # the version served by default
CHALLENGER = "challenger"    # a blessed candidate under a rollout policy (config `rollout:`)
LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")   # starts with a letter: never a version number

# actions recorded in the audit trail
PROMOTE, ROLLBACK, PUSH, PIN = "promote", "rollback", "push", "pin"


class LabelError(ValueError):
    """An unknown version or label, no previous champion, or a corrupt labels file; the
    message names the file, version or label at fault."""


@dataclasses.dataclass(frozen=True)
class LabelChange:
    """One label moved: ``previous`` is the version it pointed to before (None: it did not
    exist; for ``champion``, the newest version that was served by default then)."""

    label: str
    version: Optional[int]      # None: the label was dropped
    previous: Optional[int]
    entry: Dict[str, Any]       # the audit line written


def check_label(label: str) -> str:
    if not isinstance(label, str) or not LABEL_RE.match(label):
        raise LabelError(f"{label!r} is not a valid label: a letter, then up to 63 letters, digits, "
                         f"'_', '.' or '-' (e.g. champion, challenger, canary)")
    return label


# ---------------------------------------------------------------- reading


def _parse(path: pathlib.Path, text: str) -> Dict[str, Any]:
    fix = f"fix or remove {path} (every change is in {path.parent / AUDIT_FILE})"
    try:
        data = json.loads(text)
    except ValueError as e:
        raise LabelError(f"labels file {path} is corrupt (not JSON: {e}); {fix}") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels"), dict):
        raise LabelError(f"labels file {path} is corrupt (no 'labels' mapping); {fix}")
    for label, version in data["labels"].items():
        if not LABEL_RE.match(label):
            raise LabelError(f"labels file {path} is corrupt (bad label name {label!r}); {fix}")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise LabelError(f"labels file {path} is corrupt (label {label!r} -> {version!r}, not a "
                             f"version number); {fix}")
    revision = data.get("revision", 0)
    if isinstance(revision, bool) or not isinstance(revision, int):
        raise LabelError(f"labels file {path} is corrupt (revision {revision!r}); {fix}")
    return data


def _read_state(registry: pathlib.Path) -> Dict[str, Any]:
    path = pathlib.Path(registry) / LABELS_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {"labels": {}, "revision": 0}
    return _parse(path, text)


def read_labels(registry: pathlib.Path) -> Dict[str, int]:
    """``{label: version}``; ``{}`` when the registry has no labels file (LabelError if it is corrupt)."""
    return dict(_read_state(registry)["labels"])


def champion_version(registry: pathlib.Path, labels: Optional[Mapping[str, int]] = None) -> Optional[int]:
    """The version served by default: the ``champion`` label's, else the newest (None: no version)."""
    labels = read_labels(registry) if labels is None else labels
    if CHAMPION in labels:
        return labels[CHAMPION]
    versions = existing_versions(pathlib.Path(registry))
    return versions[-1] if versions else None


def read_audit(registry: pathlib.Path) -> List[Dict[str, Any]]:
    """The audit trail's entries, oldest first. A line that is not JSON is the torn write of a
    writer killed mid-append: it is skipped with a warning (the next writer re-appends that change
    from ``labels.json``'s ``last_change``, see ``_repair_audit``)."""
    path = pathlib.Path(registry) / AUDIT_FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    entries = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict):
            log.warning("%s line %d is not an audit entry (a torn write?); skipped", path, i + 1)
            continue
        entries.append(entry)
    return entries


def champion_history(entries: List[Dict[str, Any]]) -> List[int]:
    """The champions in order as a stack (a rollback pops): the last one is the current champion,
    the one before it what ``rollback`` returns to. A first change records the version that was
    served by default before it (``previous``) as the bottom of the stack."""
    stack: List[int] = []
    for e in entries:
        if e.get("label") != CHAMPION:
            continue
        if e.get("action") == ROLLBACK:
            if stack and stack[-1] == e.get("previous"):
                stack.pop()
            if not stack or stack[-1] != e["version"]:
                stack.append(e["version"])
            continue
        if not stack and e.get("previous") is not None:
            stack.append(e["previous"])
        if not stack or stack[-1] != e["version"]:
            stack.append(e["version"])
    return stack


# ---------------------------------------------------------------- writing


@contextlib.contextmanager
def _locked(registry: pathlib.Path) -> Iterator[None]:
    registry.mkdir(parents=True, exist_ok=True)
    fd = os.open(registry / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)     # releases the lock


def _write_atomically(path: pathlib.Path, text: str) -> None:
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _append_audit(registry: pathlib.Path, entries: List[Dict[str, Any]]) -> None:
    if not entries:
        return
    path = registry / AUDIT_FILE
    data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data        # after a torn line: start a line of our own
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def _repair_audit(registry: pathlib.Path, state: Dict[str, Any]) -> None:
    """Append the audit lines of the last change when a writer was killed before writing them."""
    last = state.get("last_change") or []
    if not last:
        return
    entries = read_audit(registry)
    logged = max((e.get("revision", 0) for e in entries), default=0)
    if logged < state.get("revision", 0):
        _append_audit(registry, [dict(e, recovered=True) for e in last])


def set_labels(registry: pathlib.Path, labels: Mapping[str, int], *, action: str, reason: str,
               who: Optional[str] = None, expect: Optional[Mapping[str, Optional[int]]] = None,
               remove: Sequence[str] = (), extra: Optional[Mapping[str, Any]] = None) -> List[LabelChange]:
    """Point each label of ``labels`` at its version and drop the labels of ``remove`` in one
    atomic write, with one audit line per label that moved (a dropped one has version None);
    return the changes (labels already there, or already absent, are left out).

    ``expect``: ``{label: version or None}`` each label must hold now (compare-and-swap under the
    lock; LabelError when another writer moved it first). ``extra``: fields added to each audit
    line (the monitor's decision id)."""
    registry = pathlib.Path(registry)
    for label in [*labels, *remove]:
        check_label(label)
    args = (registry, labels, action, reason, who, expect, remove, extra)
    with _locked(registry):
        if remote.mirror_source(registry):
            # a local mirror of an object-storage registry: the change is made on the bucket's
            # current labels and written back with If-Match, retried when another writer won
            with remote.labels_transaction(registry) as attempt:
                return attempt(lambda: _set_labels_locked(*args))
        return _set_labels_locked(*args)


def _set_labels_locked(registry, labels, action, reason, who, expect, remove, extra) -> List[LabelChange]:
    state = _read_state(registry)
    _repair_audit(registry, state)
    current = dict(state["labels"])
    versions = existing_versions(registry)
    for label, version in (expect or {}).items():
        if current.get(label) != version:
            raise LabelError(f"label {label!r} of {registry} moved meanwhile (now "
                             f"{current.get(label)}, expected {version}); nothing was changed")
    for label, version in labels.items():
        if isinstance(version, bool) or not isinstance(version, int) or version not in versions:
            have = ", ".join(map(str, versions)) or "none"
            raise LabelError(f"version {version} does not exist in {registry} (versions: {have}); "
                             f"label {label!r} must point to an existing version")
    default = versions[-1] if versions else None
    revision = state.get("revision", 0) + 1
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    changes, entries = [], []
    for label, version in labels.items():
        previous = current.get(label, default if label == CHAMPION else None)
        if current.get(label) == version:
            continue
        entry = {"time": stamp, "who": who or _who(), "action": action, "label": label,
                 "version": version, "previous": previous, "reason": reason, "revision": revision}
        if label == CHAMPION and CHAMPION not in current:
            entry["previous_implicit"] = True     # the newest version, served by default
        entry.update(extra or {})
        current[label] = version
        entries.append(entry)
        changes.append(LabelChange(label, version, previous, entry))
    for label in remove:
        if label not in current or label in labels:
            continue
        entry = {"time": stamp, "who": who or _who(), "action": action, "label": label, "version": None,
                 "previous": current.pop(label), "reason": reason, "revision": revision, **(extra or {})}
        entries.append(entry)
        changes.append(LabelChange(label, None, entry["previous"], entry))
    if not entries:
        return []
    new_state = {"labels": dict(sorted(current.items())), "revision": revision, "last_change": entries}
    _write_atomically(registry / LABELS_FILE, json.dumps(new_state, indent=1, sort_keys=True) + "\n")
    _append_audit(registry, entries)
    return changes


def promote(registry: pathlib.Path, version: int, *, label: str = CHAMPION, reason: str,
            who: Optional[str] = None) -> Optional[LabelChange]:
    """Point ``label`` at ``version`` (``driftguard promote``); None when it already does."""
    changes = set_labels(registry, {check_label(label): version}, action=PROMOTE, reason=reason, who=who)
    return changes[0] if changes else None


def rollback(registry: pathlib.Path, *, reason: str, who: Optional[str] = None) -> LabelChange:
    """Point ``champion`` back at the previous champion of the audit trail (``driftguard rollback``)."""
    registry = pathlib.Path(registry)
    current = read_labels(registry).get(CHAMPION)
    history = champion_history(read_audit(registry))
    while history and history[-1] == current:
        history.pop()
    if current is None or not history:
        raise LabelError(f"no previous champion of {registry} in its audit trail {registry / AUDIT_FILE} "
                         f"(champion: {current if current is not None else 'no label, the newest version'}); "
                         f"nothing to roll back to (driftguard promote <version> sets one)")
    target = history[-1]
    if target not in existing_versions(registry):
        raise LabelError(f"the previous champion, version {target}, no longer exists in {registry}; "
                         f"promote a version explicitly")
    # compare-and-swap: a promote between our read and our write makes this rollback fail, not
    # silently roll back a champion nobody looked at
    changes = set_labels(registry, {CHAMPION: target}, action=ROLLBACK, reason=reason, who=who,
                         expect={CHAMPION: current})
    return changes[0]


# ---------------------------------------------------------------- a new version (RegistryPusher, approve)


def pin_champion(registry: pathlib.Path, rollout_mode: Optional[str], who: str = "registry_pusher") -> None:
    """Before a version is published: with a rollout, pin ``champion`` to the version served now
    (the newest) when no label says which it is, so the new version never becomes the default,
    not even for one poll of ``driftguard serve``. Reads the labels file in any case, so a corrupt
    one fails the push before anything is published (LabelError names the file)."""
    current = read_labels(registry)
    versions = existing_versions(pathlib.Path(registry))
    if not rollout_mode or CHAMPION in current or not versions:
        return
    try:
        set_labels(registry, {CHAMPION: versions[-1]}, action=PIN, who=who, expect={CHAMPION: None},
                   reason=f"rollout {rollout_mode}: the served version is pinned before a new version is published")
    except LabelError:
        if CHAMPION not in read_labels(registry):
            raise
        # someone promoted a champion meanwhile: it stays


def label_new_version(registry: pathlib.Path, version: int, rollout_mode: Optional[str],
                      who: str = "registry_pusher") -> List[str]:
    """After ``version`` was published (by the pusher, or ``driftguard approve``): label it and
    return its labels, sorted.

    With a rollout (``rollout_mode`` shadow | canary) it becomes ``challenger`` and ``champion``
    stays where it was (the first version of a registry becomes the champion: nothing else can be
    served). Without one, the new version is what is served, as before labels existed: when a
    ``champion`` label exists it moves to the new version; when none does, nothing is written
    (the newest version is served by default)."""
    champion = read_labels(registry).get(CHAMPION)
    if rollout_mode and champion is not None and champion != version:
        set_labels(registry, {CHALLENGER: version}, action=PUSH, who=who,
                   reason=f"blessed candidate; rollout {rollout_mode}: challenger, champion stays version {champion}")
    elif rollout_mode and champion is None:
        set_labels(registry, {CHAMPION: version}, action=PUSH, who=who, expect={CHAMPION: None},
                   reason=f"rollout {rollout_mode}: the registry's first version is the champion")
    elif champion is not None and champion != version:
        set_labels(registry, {CHAMPION: version}, action=PUSH, who=who, expect={CHAMPION: champion},
                   reason="blessed candidate, no rollout configured: served at once")
    return sorted(k for k, v in read_labels(registry).items() if v == version)


def resolve(registry: pathlib.Path, label_or_version: str) -> int:
    """A version number from ``'3'`` or a label (``'challenger'``), naming the label when unknown."""
    text = str(label_or_version)
    if text.isdigit():
        return int(text)
    labels = read_labels(registry)
    if text not in labels:
        raise LabelError(f"label {text!r} does not exist in {pathlib.Path(registry) / LABELS_FILE} "
                         f"(labels: {', '.join(sorted(labels)) or 'none'})")
    return labels[text]
