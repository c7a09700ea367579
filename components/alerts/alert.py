"""The alert record: what rules produce, the outbox stores and sinks send."""
from __future__ import annotations

import dataclasses
import datetime
import types
from typing import Any, Dict, Mapping, Optional

SEVERITIES = ("info", "warning", "critical")   # in increasing order


def severity_rank(severity: str) -> int:
    """0 for info, 1 for warning, 2 for critical; ValueError for anything else."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; known: {', '.join(SEVERITIES)}") from None


def utc_now_iso(now: Optional[datetime.datetime] = None) -> str:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.astimezone(datetime.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclasses.dataclass(frozen=True)
class Alert:
    """One alert. ``dedup_key`` identifies it across re-runs: the outbox sends each key once
    per sink, and webhook receivers may dedupe on it (delivery is at-least-once).

    ``labels`` values are strings (Alertmanager's label model); ``values`` carries the numbers
    behind the alert (scores, thresholds) for machine consumers.
    """

    rule: str
    severity: str
    title: str
    summary: str
    labels: Mapping[str, str]
    dedup_key: str
    created_at: str = dataclasses.field(default_factory=utc_now_iso)
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        if "\n" in self.title:
            raise ValueError(f"alert title must be one line, got {self.title!r}")
        # Frozen all the way down: read-only views of private copies.
        object.__setattr__(self, "labels", types.MappingProxyType({str(k): str(v) for k, v in self.labels.items()}))
        object.__setattr__(self, "values", types.MappingProxyType(dict(self.values)))

    def to_dict(self) -> Dict[str, Any]:
        return {"rule": self.rule, "severity": self.severity, "title": self.title,
                "summary": self.summary, "labels": dict(self.labels), "dedup_key": self.dedup_key,
                "created_at": self.created_at, "values": dict(self.values)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Alert":
        return cls(rule=data["rule"], severity=data["severity"], title=data["title"],
                   summary=data["summary"], labels=data.get("labels", {}), dedup_key=data["dedup_key"],
                   created_at=data["created_at"], values=data.get("values", {}))
