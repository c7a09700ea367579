"""What ``driftguard serve`` is told: :class:`ServeSettings`, checked before anything starts,
and the rule shared with the monitor's metrics endpoint: an address reachable from other
machines needs a bearer token (:func:`is_loopback`)."""
from __future__ import annotations

import dataclasses
import ipaddress
import pathlib
import socket
from typing import Optional

from driftguard.components import model_io
from driftguard.serving import rollout

DEFAULT_PORT = 8501                    # TF Serving's REST port
DEFAULT_MAX_BODY_BYTES = 10 << 20      # 10 MiB


class ServeError(Exception):
    """A setting or registry problem that stops the server from starting."""


@dataclasses.dataclass
class ServeSettings:
    """Everything ``serve`` needs. ``token`` is the bearer token's value (the CLI reads it from
    the environment variable named by ``--token-env``; it never comes from the command line)."""

    registry: pathlib.Path
    model_name: str
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    poll_seconds: float = 5.0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    log_dir: Optional[pathlib.Path] = None     # None: no prediction logs
    log_sample_rate: float = 1.0
    log_max_bytes: int = 64 << 20
    log_max_age_seconds: float = 3600.0
    token: Optional[str] = None
    keep_versions: int = 2
    read_timeout_seconds: float = 30.0         # idle keep-alive connections and slow bodies
    inference_threads: int = 4                 # the thread pool that runs TensorFlow (server.py)
    remembered_ids: int = 1_000_000            # request/instance ids checked for reuse (service.IssuedIds)
    # what the model's output means (task, classes, output name): model_io reads it for /metrics
    model_spec: Optional[model_io.ModelSpec] = None
    # the config's `rollout:` (serving/rollout.py): None (no split), "shadow" or "canary"
    rollout_mode: Optional[str] = None
    canary_share: float = 0.1                  # canary: the share of default-route requests the challenger answers

    def validate(self) -> "ServeSettings":
        checks = [("poll_seconds", self.poll_seconds > 0, "must be > 0"),
                  ("max_body_bytes", self.max_body_bytes >= 1, "must be >= 1"),
                  ("log_sample_rate", 0.0 <= self.log_sample_rate <= 1.0, "must be between 0 and 1"),
                  ("log_max_bytes", self.log_max_bytes >= 1, "must be >= 1"),
                  ("log_max_age_seconds", self.log_max_age_seconds > 0, "must be > 0"),
                  ("keep_versions", self.keep_versions >= 1, "must be >= 1"),
                  ("read_timeout_seconds", self.read_timeout_seconds > 0, "must be > 0"),
                  ("inference_threads", self.inference_threads >= 1, "must be >= 1"),
                  ("remembered_ids", self.remembered_ids >= 2, "must be >= 2"),
                  ("port", 0 <= self.port <= 65535, "must be between 0 and 65535")]
        for name, ok, rule in checks:
            if not ok:
                raise ServeError(f"{name} {rule}, got {getattr(self, name)!r}")
        if self.rollout_mode is not None and self.rollout_mode not in rollout.MODES:
            raise ServeError(f"rollout_mode must be one of {', '.join(rollout.MODES)} (or None: no rollout), "
                             f"got {self.rollout_mode!r}")
        share = self.canary_share
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 < share < 1:
            raise ServeError(f"canary_share must be a number between 0 and 1 (exclusive), got {share!r}")
        if self.token is not None and not self.token:
            raise ServeError("the bearer token is empty")
        if not self.token and not is_loopback(self.host):
            raise ServeError(
                f"refusing to bind {self.host!r} without a bearer token: it is reachable from other "
                "machines. Set a token in an environment variable and pass its name with "
                "--token-env, or bind 127.0.0.1")
        return self


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback address ('' and 0.0.0.0 are not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


