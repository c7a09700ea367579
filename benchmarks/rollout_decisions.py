"""How fast and how right the monitor's rollout decision is (``monitoring/rollout.py``):
simulated rollouts of a challenger against a champion with a 10 % error rate, labels arriving
in batches of 100, the sequential test looking as the monitor does (``check_every`` 100,
``min_labels`` 500, ``margin`` 0.01, ``alpha`` 0.01). Prints, per canary share and challenger
error rate, how often it was rolled back, promoted or left undecided after 200,000 labels, and
the challenger labels at the decision (median); then shadow rollouts, where both versions are
judged on the same ids and the test is paired, for a few shares of ids on which the two
versions' errors differ. Run by hand (seconds)::

    .venv/bin/python benchmarks/rollout_decisions.py [--runs 200]
"""
from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rollout(rng, p_champion: float, p_challenger: float, share: float, *, alpha=0.01, margin=0.01,
            total=200_000, batch=100):
    from driftguard.monitoring.rollout import Rollout

    r = Rollout(champion=1, challenger=2, mode="canary", since=0)
    for _ in range(total // batch):
        ch = rng.random(batch) < share
        loss = (rng.random(batch) < np.where(ch, p_challenger, p_champion)).astype(float)
        r.add_losses(1, loss[~ch])
        r.add_losses(2, loss[ch])
        d = r.decide(alpha=alpha, margin=margin, min_labels=500, check_every=100, binary=True, record=0)
        if d:
            return d["action"], r.losses["challenger"].n
    return None, r.losses["challenger"].n


def shadow(rng, p_champion: float, p_challenger: float, disagree: float, *, alpha=0.01, margin=0.01,
           total=200_000, batch=100):
    """A shadow rollout: both versions judged on the same ids, their errors differing on about
    ``disagree`` of them (the paired test)."""
    from driftguard.monitoring.rollout import Rollout

    r = Rollout(champion=1, challenger=2, mode="shadow", since=0)
    worse, better = (disagree + p_challenger - p_champion) / 2, (disagree - p_challenger + p_champion) / 2
    both = (p_champion - better) / (1 - worse - better)
    for _ in range(total // batch):
        u, v = rng.random(batch), rng.random(batch)
        champion = np.where(u < worse, 0.0, np.where(u < worse + better, 1.0, (v < both).astype(float)))
        challenger = np.where(u < worse, 1.0, np.where(u < worse + better, 0.0, champion))
        r.add_paired_losses(champion, challenger)
        r.add_losses(1, champion)
        r.add_losses(2, challenger)
        d = r.decide(alpha=alpha, margin=margin, min_labels=500, check_every=100, binary=True, record=0)
        if d:
            return d["action"], r.losses["challenger"].n
    return None, r.losses["challenger"].n


def _row(label: str, res, runs: int) -> None:
    count = {a: sum(1 for x, _ in res if x == a) / runs for a in ("rollback", "promote", None)}
    ns = [n for a, n in res if a is not None]
    print(f"{label:<34} {count['rollback']:>12.1%} {count['promote']:>9.1%} {count[None]:>10.1%} "
          f"{(np.median(ns) if ns else float('nan')):>28,.0f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"{'traffic, challenger error':<34} {'rolled back':>12} {'promoted':>9} {'undecided':>10} "
          f"{'labels at decision (median)':>28}")
    for share in (0.5, 0.1):
        for p in (0.9, 0.2, 0.12, 0.10, 0.08):
            _row(f"canary {share:.0%}, {p:.0%}", [rollout(rng, 0.10, p, share) for _ in range(args.runs)], args.runs)
    for disagree in (0.02, 0.06, 0.2):
        for p in (0.12, 0.10, 0.08):
            if abs(p - 0.10) > disagree:
                continue
            _row(f"shadow, {disagree:.0%} of ids differ, {p:.0%}",
                 [shadow(rng, 0.10, p, disagree) for _ in range(args.runs)], args.runs)

if __name__ == "__main__":
    main()
