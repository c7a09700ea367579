"""Champion against challenger on the same traffic: the evidence and the rollout decision.

While the registry has a ``challenger`` label beside ``champion`` and the config a ``rollout:``
section, ``driftguard serve`` sends the challenger a copy of every request (shadow) or a stable
share of them (canary), and the monitor compares the two versions here:

* **agreement** (shadow): the share of request ids both versions predicted the same way (the
  same side of the threshold, the same class; for regression the mean absolute difference);
* **realized performance**, when labels arrive: each version's loss on its joined labels (0/1
  error for a classifier, absolute error for regression, as the error streams);
* the **decision**, a sequential test on ``d = challenger's mean loss - champion's``, looked at
  every ``check_every`` new challenger labels (or every 25 % more, when that is more):

  - **rollback** when the challenger is worse with confidence (the lower bound of ``d`` > 0),
    or when the challenger's own error stream detector alarms upwards or its confidence stream
    alarms, and the champion's same stream has not alarmed in that direction during the
    rollout (then the traffic changed, for both);
  - **promote** when it has ``min_labels`` labels and is not worse by more than ``margin`` with
    confidence (the upper bound of ``d`` < ``margin``).

The level. Looking again and again at a growing sample inflates a fixed-level test's error, so
look ``k`` spends ``alpha * 6 / (pi^2 k^2)`` (the spends sum to ``alpha`` over any number of
looks: Bonferroni over looks). Each decision's error is then at most ``alpha`` over the whole
rollout: a challenger no worse than the champion is rolled back by the test with probability at
most ``alpha``, one worse by ``margin`` or more is promoted with probability at most ``alpha``.
``alpha`` is the level the monitor's false-alarm budget gives one window test of the
challenger's lane (``monitor.max_false_alerts_per_100k``): the whole rollout counts as one more
window test. Why hand-written: scipy has no sequential (group-sequential or anytime-valid)
tests, and the confidence-sequence libraries are not in the lock; the spending rule is three
lines and its guarantee needs no asymptotics beyond each look's interval.

Under shadow both versions predict the same ids, and once 30 labelled ids have both
predictions the test is paired (:func:`paired_interval` on the per-id loss differences): the
two versions' errors are mostly on the same ids, so the difference is known much sooner.
Otherwise (canary), each look's interval: for 0/1 losses Newcombe's hybrid score interval for a difference of
proportions (built from each version's Wilson interval; it keeps
its level at small counts and with no errors yet, where the normal interval does not), else
Welch's normal interval on the two means.

Everything here is plain state (:meth:`Rollout.to_dict`), committed with the monitor's batch;
the monitor applies a decision to the registry after the commit (``monitor.py``).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
from scipy import stats

PROMOTE, ROLLBACK = "promote", "rollback"
MIN_PER_VERSION = 30        # labels each version needs before the first look
LOOK_GROWTH = 1.25          # a look at least every 25 % more challenger labels


def look_alpha(alpha: float, k: int) -> float:
    """The level spent at look ``k`` (1, 2, ...): ``alpha * 6 / (pi^2 k^2)``, summing to ``alpha``."""
    return alpha * 6.0 / (math.pi ** 2 * k * k)


@dataclasses.dataclass
class Losses:
    """Running sums of one version's per-record losses."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, losses: np.ndarray) -> None:
        self.n += int(losses.size)
        self.total += float(losses.sum())
        self.squares += float(np.square(losses).sum())

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else float("nan")

    @property
    def variance(self) -> float:
        if self.n < 2:
            return float("nan")
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def _wilson(errors: float, n: int, z: float) -> Tuple[float, float]:
    """Wilson's score interval for an error rate (``binomtest(...).proportion_ci(method="wilson")``
    gives the same bounds, but computes an exact p-value first: ~10 ms a call at 10,000 labels)."""
    p = errors / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def difference_interval(challenger: Losses, champion: Losses, level: float, binary: bool) -> Tuple[float, float, float]:
    """(estimate, lower, upper) of the challenger's mean loss minus the champion's, each bound
    one-sided at ``level`` (a two-sided ``1 - 2 * level`` interval)."""
    z = float(stats.norm.isf(level))
    if binary:       # Newcombe's hybrid score interval from the two Wilson intervals
        p1, p0 = challenger.mean, champion.mean
        l1, u1 = _wilson(challenger.total, challenger.n, z)
        l0, u0 = _wilson(champion.total, champion.n, z)
        d = p1 - p0
        return d, d - math.hypot(p1 - l1, u0 - p0), d + math.hypot(u1 - p1, p0 - l0)
    d = challenger.mean - champion.mean
    se = math.sqrt(challenger.variance / challenger.n + champion.variance / champion.n)
    return d, d - z * se, d + z * se


@dataclasses.dataclass
class Paired(Losses):
    """Running sums of per-id loss differences (challenger - champion) of shadowed, labelled ids;
    for 0/1 losses also the discordant counts: ``worse`` (only the challenger wrong) and
    ``better`` (only the champion wrong)."""

    worse: int = 0
    better: int = 0

    def add(self, differences: np.ndarray) -> None:
        super().add(differences)
        self.worse += int(np.count_nonzero(differences > 0.5))
        self.better += int(np.count_nonzero(differences < -0.5))


def paired_interval(p: Paired, level: float, binary: bool) -> Tuple[float, float, float]:
    """(estimate, lower, upper) of the mean per-id loss difference, each bound one-sided at
    ``level``. For 0/1 losses ``d = r (2 pi - 1)``, with ``r`` the discordant share and ``pi``
    the share of discordant ids where the challenger is the wrong one: each gets a Wilson
    interval at ``level / 2`` (Bonferroni), and the bounds of ``d`` are the extremes over both
    (no discordant id yet: ``pi`` is anywhere in [0, 1]). Else a normal interval on the
    differences."""
    d = p.mean
    if binary:
        z = float(stats.norm.isf(level / 2))
        m = p.worse + p.better
        r_low, r_high = _wilson(m, p.n, z)
        pi_low, pi_high = _wilson(p.worse, m, z) if m else (0.0, 1.0)
        low, high = 2 * pi_low - 1, 2 * pi_high - 1
        return d, low * (r_high if low < 0 else r_low), high * (r_high if high > 0 else r_low)
    z = float(stats.norm.isf(level))
    se = math.sqrt(p.variance / p.n)
    return d, d - z * se, d + z * se


@dataclasses.dataclass
class Rollout:
    """One rollout: ``challenger`` against ``champion`` since record ``since``, and its decision."""

    champion: int
    challenger: int
    mode: str
    since: int                                   # the monitor's record count when it started
    losses: Dict[str, Losses] = dataclasses.field(default_factory=lambda: {"champion": Losses(), "challenger": Losses()})
    looks: int = 0
    next_look: int = 0                           # challenger labels at the next look
    last_look: Dict[str, Any] = dataclasses.field(default_factory=dict)
    pairs: int = 0                               # shadow: ids both versions predicted
    agree: int = 0
    abs_difference: float = 0.0
    decision: Optional[Dict[str, Any]] = None    # {"id", "action", "reason", "record", "status", ...}
    champion_alarms: Dict[str, List[str]] = dataclasses.field(default_factory=dict)   # stream -> directions
    paired: Paired = dataclasses.field(default_factory=Paired)     # shadow: both versions' losses per id

    def role(self, version: int) -> Optional[str]:
        return "challenger" if version == self.challenger else "champion" if version == self.champion else None

    # -- evidence

    def add_losses(self, version: int, losses: np.ndarray) -> None:
        role = self.role(version)
        if role is not None and self.decision is None and losses.size:
            self.losses[role].add(np.asarray(losses, dtype=np.float64))

    def add_paired_losses(self, champion: np.ndarray, challenger: np.ndarray) -> None:
        """Both versions' losses on the same labelled ids (shadow)."""
        if self.decision is None and champion.size:
            self.paired.add(np.asarray(challenger, np.float64) - np.asarray(champion, np.float64))

    def add_pairs(self, champion: np.ndarray, challenger: np.ndarray, task: str, threshold: float) -> None:
        """Predictions of the two versions for the same request ids (shadow)."""
        ok = np.isfinite(champion) & np.isfinite(challenger)
        a, b = champion[ok], challenger[ok]
        self.pairs += int(a.size)
        if task == "binary":
            self.agree += int(np.count_nonzero((a > threshold) == (b > threshold)))
        elif task == "multiclass":
            self.agree += int(np.count_nonzero(a == b))
        self.abs_difference += float(np.abs(a - b).sum())

    # -- the decision

    def decide(self, *, alpha: float, margin: float, min_labels: int, check_every: int, binary: bool,
               record: int) -> Optional[Dict[str, Any]]:
        """Look when the challenger has ``check_every`` more labels; return the new decision, if any."""
        if self.decision is not None:
            return None
        ch, cp = self.losses["challenger"], self.losses["champion"]
        if min(ch.n, cp.n) < MIN_PER_VERSION or ch.n < self.next_look:
            return None
        self.looks += 1
        # looks every check_every labels, then every 25 % more: the looks up to n labels grow
        # like log(n), so the level spent on each (alpha / k^2) shrinks slowly on a long rollout
        self.next_look = max(ch.n + check_every, int(ch.n * LOOK_GROWTH))
        level = look_alpha(alpha, self.looks)
        paired = self.paired.n >= MIN_PER_VERSION
        d, lower, upper = paired_interval(self.paired, level, binary) if paired else \
            difference_interval(ch, cp, level, binary)
        self.last_look = {"look": self.looks, "level": level, "difference": d, "lower": lower, "upper": upper,
                          "paired": self.paired.n if paired else 0,
                          "challenger_loss": ch.mean, "champion_loss": cp.mean, "labels": [cp.n, ch.n]}
        what = "error rate" if binary else "mean absolute error"
        facts = (f"{what} {ch.mean:.4g} (v{self.challenger}, {ch.n} labels) vs {cp.mean:.4g} (v{self.champion}, "
                 f"{cp.n} labels): difference {d:+.4g}{f' paired on {self.paired.n} ids' if paired else ''}, "
                 f"one-sided bounds [{lower:+.4g}, {upper:+.4g}] at level {level:.2g} (look {self.looks})")
        if lower > 0:
            return self._decide(ROLLBACK, f"challenger worse: {facts}", record)
        if ch.n >= min_labels and upper < margin:
            return self._decide(PROMOTE, f"challenger not worse by {margin:g}: {facts}", record)
        return None

    def stream_alarm(self, version: int, stream: str, direction: str, record: int) -> Optional[Dict[str, Any]]:
        """``version``'s ``stream`` detector (error or confidence) alarmed at ``record``.

        The challenger's alarm rolls it back, unless it says nothing against the challenger: an
        error rate going down, or a change the champion's same stream alarmed on first in the
        same direction during this rollout (the traffic changed, not the challenger; its loss
        against the champion's is the sequential test's to judge)."""
        if version == self.champion:
            self.champion_alarms.setdefault(stream, []).append(direction)
            return None
        if version != self.challenger or self.decision is not None:
            return None
        if (stream == "error" and direction != "up") or direction in self.champion_alarms.get(stream, ()):
            return None
        what = "error rate rose" if stream == "error" else f"{stream} went {direction}"
        return self._decide(ROLLBACK, f"challenger's {what} (its CUSUM detector alarmed at record {record}; the "
                                      f"champion's did not)", record)

    @property
    def decision_id(self) -> str:
        """Names the rollout (a pair of versions from a record on) in the state, alerts and audit trail."""
        return f"v{self.champion}-v{self.challenger}-r{self.since}"

    def _decide(self, action: str, reason: str, record: int) -> Dict[str, Any]:
        self.decision = {"id": self.decision_id, "action": action,
                         "reason": reason, "record": record, "status": "pending",
                         "champion": self.champion, "challenger": self.challenger}
        return self.decision

    # -- what is shown and stored

    def summary(self) -> Dict[str, Any]:
        return {"champion": self.champion, "challenger": self.challenger, "mode": self.mode, "since": self.since,
               "labels": {r: x.n for r, x in self.losses.items()},
               "loss": {r: (x.mean if x.n else None) for r, x in self.losses.items()},
               "looks": self.looks, "last_look": dict(self.last_look), "pairs": self.pairs,
               "paired_labels": self.paired.n,
               "agreement": self.agree / self.pairs if self.pairs else None,
               "mean_abs_difference": self.abs_difference / self.pairs if self.pairs else None,
               "decision": dict(self.decision) if self.decision else None}

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Rollout":
        d = dict(d)
        d["losses"] = {r: Losses(**x) for r, x in d["losses"].items()}
        d["paired"] = Paired(**d.get("paired", {}))
        return cls(**d)
