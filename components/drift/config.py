"""Per-feature overrides for :func:`driftguard.components.drift.detect_drift`."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional, Union

from .registry import KINDS, get_method

__all__ = ["FeatureConfig", "as_feature_config"]


@dataclass(frozen=True)
class FeatureConfig:
    """How one feature is judged. ``None`` means "use the default".

    Parameters
    ----------
    method : str, optional
        A name from :data:`driftguard.components.drift.registry.METHODS` (default: ``"psi"``).
    threshold : float, optional
        Threshold on that method's score (default: the method's own).
    kind : {"numeric", "categorical"}, optional
        Force the feature kind, e.g. ``"categorical"`` for integer codes such as
        ``pickup_community_area`` (numbers become labels like ``"8"``).

    Examples
    --------
    >>> FeatureConfig(method="wasserstein", threshold=0.2)
    FeatureConfig(method='wasserstein', threshold=0.2, kind=None)
    >>> FeatureConfig(method="kl")
    Traceback (most recent call last):
    ...
    ValueError: unknown drift method 'kl'; available: psi, jensen_shannon, hellinger, linf, chi_square, wasserstein, ks
    """

    method: Optional[str] = None
    threshold: Optional[float] = None
    kind: Optional[str] = None

    def __post_init__(self):
        if self.kind is not None and self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.method is not None:
            get_method(self.method, self.kind)
        if self.threshold is not None:
            if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                    or not math.isfinite(self.threshold) or self.threshold < 0:
                raise ValueError(f"threshold must be a finite number >= 0, got {self.threshold!r}")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def as_feature_config(value: Union[FeatureConfig, Mapping[str, Any], None]) -> FeatureConfig:
    """Accept a :class:`FeatureConfig`, a plain mapping (from JSON/YAML) or ``None``.

    Examples
    --------
    >>> as_feature_config({"method": "linf", "threshold": 0.1})
    FeatureConfig(method='linf', threshold=0.1, kind=None)
    """
    if value is None:
        return FeatureConfig()
    if isinstance(value, FeatureConfig):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"method", "threshold", "kind"}
        if unknown:
            raise ValueError(f"unknown feature config keys {sorted(unknown)}; allowed: method, threshold, kind")
        return FeatureConfig(**value)
    raise TypeError(f"feature config must be a FeatureConfig or a mapping, got {type(value).__name__}")
