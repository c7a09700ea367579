"""Who answers a default-route predict request while the registry has a ``challenger`` label
and ``rollout:`` is configured: the pure routing rule, kept apart from HTTP and TensorFlow so
it can be tested (and reproduced by a client or the monitor) on its own.

* ``shadow``: the champion answers; the challenger also predicts on the same examples and its
  outputs go to the prediction log only.
* ``canary``: the challenger answers the requests whose client request id falls in the first
  ``canary_share`` of the hash space (:func:`canary_bucket`), the champion the rest. The same
  client id always gets the same answerer.

Requests pinned to a version or a label (``/versions/<v>``, ``/labels/<l>``) are never routed
here: they get what they ask for.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Generic, Optional, TypeVar

SHADOW, CANARY = "shadow", "canary"
MODES = (SHADOW, CANARY)
CHAMPION, CHALLENGER = "champion", "challenger"    # the roles (and the registry's label names)

V = TypeVar("V")


def canary_bucket(request_id: str) -> float:
    """The request id's place in [0, 1): the first 8 bytes of sha256(``request_id`` as UTF-8)
    as a big-endian unsigned integer, divided by 2**64. Stable across processes and machines."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


@dataclasses.dataclass(frozen=True)
class Route(Generic[V]):
    """Who answers (``answer``, in role ``role``) and who predicts in the shadow (``shadow``,
    or None). ``role`` is None when no rollout is active: the champion answers, as without one."""

    answer: V
    shadow: Optional[V] = None
    role: Optional[str] = None


def route(mode: Optional[str], canary_share: float, request_id: str, champion: V,
          challenger: Optional[V]) -> Route[V]:
    """The route of a default-route request. ``challenger`` is None when there is none to use
    (no label, the champion's own version, not loaded); ``request_id`` is the id the client sent
    (or the one made for a request without one), before any rewrite."""
    if mode is None or challenger is None:
        return Route(champion)
    if mode == SHADOW:
        return Route(champion, shadow=challenger, role=CHAMPION)
    if mode == CANARY:
        if canary_bucket(request_id) < canary_share:
            return Route(challenger, role=CHALLENGER)
        return Route(champion, role=CHAMPION)
    raise ValueError(f"unknown rollout mode {mode!r} (one of {', '.join(MODES)})")
