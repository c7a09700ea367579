"""The rollout decision's statistics (monitoring/rollout.py), without a monitor: the sequential
test keeps its error rates under alpha however often it looks, and decides quickly when the
difference is large."""
from __future__ import annotations

import math

import numpy as np
import pytest

from driftguard.monitoring.rollout import (MIN_PER_VERSION, PROMOTE, ROLLBACK, Losses, Rollout, difference_interval,
                                          look_alpha)

ALPHA, MARGIN, MIN_LABELS, EVERY = 0.05, 0.02, 500, 100


def _run(rng, p_champion, p_challenger, n_labels=4000, share=0.5, alpha=ALPHA, binary=True, noise=None):
    """One rollout fed 100 labels at a time: (action or None, challenger labels at the decision)."""
    r = Rollout(champion=1, challenger=2, mode="canary", since=0)
    for _ in range(n_labels // 100):
        ch = rng.random(100) < share
        if binary:
            losses = (rng.random(100) < np.where(ch, p_challenger, p_champion)).astype(float)
        else:
            losses = np.abs(rng.normal(np.where(ch, p_challenger, p_champion), noise))
        r.add_losses(1, losses[~ch])
        r.add_losses(2, losses[ch])
        d = r.decide(alpha=alpha, margin=MARGIN, min_labels=MIN_LABELS, check_every=EVERY, binary=binary, record=0)
        if d is not None:
            return d["action"], r.losses["challenger"].n
    return None, r.losses["challenger"].n


def test_the_looks_spend_alpha_in_all():
    assert sum(look_alpha(0.01, k) for k in range(1, 200_000)) == pytest.approx(0.01, rel=1e-4)
    assert look_alpha(0.01, 1) == pytest.approx(0.01 * 6 / math.pi ** 2)


def test_an_equal_challenger_is_rarely_rolled_back_however_often_the_test_looks():
    """40 looks; the first one spends 61 % of alpha, and that is where most false rollbacks are."""
    rng = np.random.default_rng(7)
    actions = [_run(rng, 0.1, 0.1)[0] for _ in range(1000)]
    assert actions.count(ROLLBACK) / len(actions) <= ALPHA          # 3.7 % measured with seed 1


def test_looking_at_a_fixed_level_would_roll_back_an_equal_challenger_too_often():
    """The reason for the spending: the same looks at a fixed 5 % each reject far more often."""
    rng = np.random.default_rng(8)
    hits = 0
    for _ in range(400):
        ch, cp = Losses(), Losses()
        for _ in range(40):
            ch.add((rng.random(50) < 0.1).astype(float))
            cp.add((rng.random(50) < 0.1).astype(float))
            if min(ch.n, cp.n) >= MIN_PER_VERSION and difference_interval(ch, cp, ALPHA, True)[1] > 0:
                hits += 1
                break
    assert hits / 400 > 2 * ALPHA


def test_a_challenger_worse_by_the_margin_is_rarely_promoted():
    rng = np.random.default_rng(9)
    actions = [_run(rng, 0.1, 0.1 + MARGIN)[0] for _ in range(400)]
    assert actions.count(PROMOTE) / len(actions) <= ALPHA


def test_a_much_worse_challenger_is_rolled_back_within_a_few_hundred_labels():
    rng = np.random.default_rng(10)
    results = [_run(rng, 0.1, 0.9, share=0.1) for _ in range(50)]         # a flipped model on a 10 % canary
    assert all(action == ROLLBACK for action, _ in results)
    assert max(n for _, n in results) <= 200


def test_a_better_challenger_is_promoted_after_min_labels():
    rng = np.random.default_rng(11)
    results = [_run(rng, 0.15, 0.10) for _ in range(50)]
    assert all(action == PROMOTE for action, _ in results)
    assert min(n for _, n in results) >= MIN_LABELS


def test_regression_losses_use_welch_intervals():
    rng = np.random.default_rng(12)
    assert _run(rng, 1.0, 3.0, binary=False, noise=1.0)[0] == ROLLBACK
    actions = [_run(rng, 1.0, 1.0, binary=False, noise=1.0)[0] for _ in range(200)]
    assert actions.count(ROLLBACK) <= 200 * ALPHA


def test_no_look_before_each_version_has_enough_labels_and_one_decision_only():
    r = Rollout(champion=1, challenger=2, mode="shadow", since=5)
    r.add_losses(2, np.ones(MIN_PER_VERSION))
    r.add_losses(1, np.zeros(MIN_PER_VERSION - 1))
    assert r.decide(alpha=ALPHA, margin=MARGIN, min_labels=1, check_every=1, binary=True, record=9) is None
    r.add_losses(1, np.zeros(1))
    d = r.decide(alpha=ALPHA, margin=MARGIN, min_labels=1, check_every=1, binary=True, record=9)
    assert d["action"] == ROLLBACK and d["id"] == "v1-v2-r5" and "error rate 1 (v2, 30 labels)" in d["reason"]
    r.add_losses(2, np.ones(100))
    assert r.losses["challenger"].n == MIN_PER_VERSION          # decided: no more evidence
    assert r.stream_alarm(2, "error", "up", 10) is None
    assert Rollout.from_dict(r.to_dict()) == r


def test_a_stream_alarm_rolls_back_only_what_speaks_against_the_challenger():
    r = Rollout(champion=1, challenger=2, mode="shadow", since=0)
    assert r.stream_alarm(2, "error", "down", 5) is None                 # fewer errors: no reason
    assert r.stream_alarm(1, "confidence", "down", 6) is None            # the champion's: noted
    assert r.stream_alarm(2, "confidence", "down", 7) is None            # the traffic changed, for both
    d = r.stream_alarm(2, "error", "up", 8)
    assert d["action"] == ROLLBACK and "error rate rose" in d["reason"] and d["record"] == 8
    r2 = Rollout(champion=1, challenger=2, mode="canary", since=0)
    assert r2.stream_alarm(2, "confidence", "up", 9)["action"] == ROLLBACK


def _shadow(rng, p_champion, p_challenger, disagree, n_labels=60_000, alpha=ALPHA):
    """A shadow rollout: both versions judged on the same ids; the challenger's errors differ
    from the champion's on about ``disagree`` of them. Returns (action, labels at the decision)."""
    r = Rollout(champion=1, challenger=2, mode="shadow", since=0)
    worse, better = (disagree + p_challenger - p_champion) / 2, (disagree - p_challenger + p_champion) / 2
    both = (p_champion - better) / (1 - worse - better)       # both wrong, among the concordant ids
    for _ in range(n_labels // 100):
        u, v = rng.random(100), rng.random(100)
        champion = np.where(u < worse, 0.0, np.where(u < worse + better, 1.0, (v < both).astype(float)))
        challenger = np.where(u < worse, 1.0, np.where(u < worse + better, 0.0, champion))
        r.add_paired_losses(champion, challenger)
        r.add_losses(1, champion)
        r.add_losses(2, challenger)
        d = r.decide(alpha=alpha, margin=MARGIN, min_labels=MIN_LABELS, check_every=EVERY, binary=True, record=0)
        if d is not None:
            return d["action"], r.losses["challenger"].n
    return None, r.losses["challenger"].n


def test_shadow_pairs_decide_an_equal_challenger_much_sooner_and_keep_the_level():
    """Similar models err on mostly the same ids (2 % of ids told apart): the pairs see that."""
    rng = np.random.default_rng(13)
    for disagree in (0.2, 0.06):              # the level, where the pairs help least
        noisy = [_shadow(rng, 0.10, 0.10, disagree)[0] for _ in range(300)]
        assert noisy.count(ROLLBACK) / len(noisy) <= ALPHA              # 0.5 % measured at 0.06 and 0.2
    paired = [_shadow(rng, 0.10, 0.10, 0.02) for _ in range(200)]
    assert sum(a == PROMOTE for a, _ in paired) / len(paired) > 0.95
    unpaired = [_run(rng, 0.10, 0.10, n_labels=120_000) for _ in range(100)]      # share 0.5: 60,000 each
    n_paired = np.median([n for a, n in paired if a == PROMOTE])
    n_unpaired = np.median([n for a, n in unpaired if a == PROMOTE])
    assert n_paired < 0.5 * n_unpaired, (n_paired, n_unpaired)


def test_shadow_pairs_roll_back_a_worse_challenger_and_do_not_promote_one_worse_by_the_margin():
    rng = np.random.default_rng(14)
    assert all(_shadow(rng, 0.10, 0.20, 0.12)[0] == ROLLBACK for _ in range(50))
    worse = [_shadow(rng, 0.10, 0.10 + MARGIN, 0.06)[0] for _ in range(300)]
    assert worse.count(PROMOTE) / len(worse) <= ALPHA


def test_paired_interval_with_no_discordant_id_yet_is_wide_not_a_point():
    from driftguard.monitoring.rollout import Paired, paired_interval

    p = Paired()
    p.add(np.zeros(200))
    d, lower, upper = paired_interval(p, 0.001, True)
    assert d == 0 and lower < -0.02 and upper > 0.02          # up to ~4 % discordant ids cannot be ruled out
