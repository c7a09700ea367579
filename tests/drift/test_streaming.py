"""Streaming CUSUM detectors: exact restarts, the false-alarm budget, detection delay, bad input.

Streams are drawn with seeded numpy generators from known distributions (the benchmark
``benchmarks/streaming_calibration.py`` does the same on the real taxi trips).
"""
import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import special

from driftguard.components.drift.streaming import (Alarm, Cusum, StreamDetector, _MidRank, budget_split, design_cusum,
                                        siegmund_arl)


def bernoulli(rng, p, n):
    return (rng.random(n) < p).astype(float)


def poisson_upper(lam: float, tail: float = 1e-4) -> int:
    """Smallest c with P(Poisson(lam) > c) <= tail."""
    c = int(lam)
    while special.pdtrc(c, lam) > tail:  # pdtrc(c, lam) = P(X > c)
        c += 1
    return c


def naive_cusum(det: Cusum, x: np.ndarray):
    """The textbook recursion, one block at a time in Python floats: the reference for update()."""
    d = det.design
    b = d.block
    up = down = 0.0
    up_zero = down_zero = -1
    alarms = []
    for j in range(x.size // b):
        z = (x[j * b:(j + 1) * b].mean() - d.reference_mean) / (d.sigma_used / math.sqrt(b))
        up, down = max(0.0, up + z - d.k_used), max(0.0, down - z - d.k_used)
        up_zero, down_zero = (j if up == 0 else up_zero), (j if down == 0 else down_zero)
        if up > d.h or down > d.h:
            side = "up" if up > d.h else "down"
            alarms.append(((j + 1) * b, side, ((up_zero if side == "up" else down_zero) + 1) * b))
            up = down = 0.0
            up_zero = down_zero = j
    return alarms


# --- the recursion and its persistence ---------------------------------------------------------------

@pytest.fixture(scope="module")
def changing_stream():
    rng = np.random.default_rng(11)
    parts = [bernoulli(rng, 0.3, 60_000), bernoulli(rng, 0.45, 3_000), bernoulli(rng, 0.3, 40_000),
             bernoulli(rng, 0.15, 3_000), bernoulli(rng, 0.3, 10_007)]
    return np.concatenate(parts)


def make_detector(transform="mean", arl0=20_000):
    return Cusum.from_reference("error", bernoulli(np.random.default_rng(5), 0.3, 10_000), arl0_records=arl0,
                                transform=transform)


def test_update_matches_the_textbook_recursion(changing_stream):
    det = make_detector()
    alarms = det.update(changing_stream)
    expected = naive_cusum(det, changing_stream)
    assert [(a.index_in_stream, a.direction, a.change_point) for a in alarms] == expected
    # both changes were found, in their direction, with a change point close to the truth
    assert any(a.direction == "up" and 60_000 <= a.index_in_stream <= 61_000
               and abs(a.change_point - 60_000) <= 300 for a in alarms)
    assert any(a.direction == "down" and 103_000 <= a.index_in_stream <= 104_000 for a in alarms)
    up = next(a for a in alarms if a.direction == "up" and a.index_in_stream >= 60_000)
    assert up.mean_after_estimate == pytest.approx(0.45, abs=0.06)
    assert up.mean_before == pytest.approx(det.design.reference_mean)
    assert up.statistic > up.threshold == det.design.h
    assert det.n_records == changing_stream.size and det.n_alarms == len(alarms)


@pytest.mark.parametrize("transform", ["mean", "rank"])
def test_chunks_and_restarts_give_identical_alarms(changing_stream, transform):
    whole = make_detector(transform)
    expected = whole.update(changing_stream)
    assert len(expected) >= 2

    rng = np.random.default_rng(3)
    cuts = np.sort(rng.choice(changing_stream.size, 400, replace=False))
    det, got, start = make_detector(transform), [], 0
    for i, cut in enumerate([*cuts, changing_stream.size]):
        got += det.update(changing_stream[start:cut].tolist() if i % 5 == 0 else changing_stream[start:cut])
        start = cut
        if i % 3 == 0:  # a restart: through JSON text, as the monitor stores it
            det = Cusum.from_state("error", json.loads(json.dumps(det.state_dict(), allow_nan=False)))
    assert got == expected                      # bit-identical, statistics and estimates included
    assert det.state_dict() == whole.state_dict()
    assert det.n_records == changing_stream.size


def test_state_restores_through_the_base_class_and_rejects_mismatches():
    det = make_detector()
    det.update(np.ones(75))
    state = det.state_dict()
    again = StreamDetector.from_state("error", state)
    assert isinstance(again, Cusum) and again.n_records == 75 and again.statistics == det.statistics
    with pytest.raises(ValueError, match="belongs to stream 'error'"):
        Cusum.from_state("confidence", state)
    with pytest.raises(ValueError, match="kind 'adwin'"):
        StreamDetector.from_state("error", {**state, "kind": "adwin"})
    with pytest.raises(ValueError, match="version 99"):
        Cusum.from_state("error", {**state, "version": 99})
    with pytest.raises(ValueError, match="'partial_count' must be an integer"):
        Cusum.from_state("error", {**state, "state": {**state["state"], "partial_count": None}})


def test_alarm_restarts_the_detector_and_drift_detected_follows_the_last_update():
    det = make_detector()
    alarms = det.update(bernoulli(np.random.default_rng(1), 0.6, 2_000))
    assert len(alarms) >= 2 and det.drift_detected           # a sustained change alarms again
    assert all(isinstance(a, Alarm) and a.direction == "up" for a in alarms)
    first, second = alarms[:2]
    assert second.change_point >= first.index_in_stream         # the fresh CUSUM starts after the alarm
    det.update(np.zeros(0))
    assert not det.drift_detected
    assert json.loads(json.dumps(alarms[0].to_dict()))["name"] == "error"


def test_rank_transform_is_the_mid_rank_among_the_knots():
    rng = np.random.default_rng(4)
    knots = np.sort(np.r_[rng.integers(0, 20, 300).astype(float), 5.0 + np.spacing(5.0), rng.random(50)])
    x = np.r_[knots, rng.uniform(-1, 21, 5_000), rng.integers(-1, 22, 500), np.nextafter(knots, -np.inf)]
    below_plus_upto = np.searchsorted(knots, x, "left") + np.searchsorted(knots, x, "right")
    np.testing.assert_array_equal(np.rint(_MidRank(knots)(x) * 2 * knots.size), below_plus_upto)


def test_records_beyond_the_reference_range_count_as_its_extremes():
    ref = np.random.default_rng(6).gamma(2.0, 1.0, 5_000)
    det = Cusum.from_reference("fare", ref, arl0_records=100_000)
    assert (det.design.low, det.design.high) == (ref.min(), ref.max())
    clipped = Cusum.from_reference("fare", ref, arl0_records=100_000)
    det.update(np.full(120, 1e6))
    clipped.update(np.full(120, ref.max()))
    assert det.state_dict() == clipped.state_dict()


# --- the threshold --------------------------------------------------------------------------------

def test_siegmund_matches_montgomerys_table():
    # Montgomery, Table 9.3 (k = 1/2, two-sided): h = 4 -> 168, h = 5 -> 465 (one-sided 336, 930)
    assert float(siegmund_arl(-0.5, 4.0)) / 2 == pytest.approx(168, rel=0.02)
    assert float(siegmund_arl(-0.5, 5.0)) / 2 == pytest.approx(465, rel=0.02)


def test_design_for_a_normal_reference_is_siegmunds_normal_design():
    y = np.random.default_rng(0).standard_normal(400_000)
    y = (y - y.mean()) / y.std(ddof=1)
    d = design_cusum(y, block=50, k=0.5, arl0_records=50 * 2_000, guarantee=None)
    two_sided = float(siegmund_arl(-0.5, d["h"])) / 2
    assert two_sided == pytest.approx(2_000, rel=0.01)
    assert d["k_used"] == 0.5 and d["sigma_inflation"] == 1.0


def test_finite_reference_widens_the_allowance_and_threshold():
    ref = bernoulli(np.random.default_rng(2), 0.3, 2_000)
    plug_in = Cusum.from_reference("e", ref, arl0_records=100_000, guarantee=None).design
    guarded = Cusum.from_reference("e", ref, arl0_records=100_000).design
    assert guarded.k_used == pytest.approx(0.5 + special.ndtri(1 - 0.1 / 3) * math.sqrt(50 / 2_000))
    assert guarded.predicted_arl0_records_conditional >= 100_000 * (1 - 1e-6)
    assert guarded.predicted_arl0_records >= 100_000
    assert guarded.sigma_used > guarded.reference_std == plug_in.reference_std


def _false_alarms(det: Cusum, rng, draw, records: int, chunk: int = 500_000) -> int:
    return sum(len(det.update(draw(rng, min(chunk, records - i)))) for i in range(0, records, chunk))


@pytest.mark.parametrize("stream, transform", [("error", "mean"), ("gamma", "mean"), ("gamma", "rank")])
def test_unchanged_stream_stays_within_the_budget(stream, transform):
    """2,000,000 unchanged records, budget 5 per 100,000 (arl0 20,000): at most the Poisson 1e-4 tail of 100."""
    def draw(rng, n):
        return bernoulli(rng, 0.3, n) if stream == "error" else rng.gamma(2.0, 1.0, n)

    rng = np.random.default_rng(2024)
    arl0, records = 20_000, 2_000_000
    det = Cusum.from_reference(stream, draw(rng, 200_000), arl0_records=arl0, transform=transform)
    allowed = poisson_upper(records / arl0)                     # 100 expected at the budget -> 139
    state = rng.bit_generator.state
    observed = _false_alarms(det, rng, draw, records)
    assert observed <= allowed

    # the same stream with h halved alarms far more often: the check can fail
    halved = Cusum(stream, dataclasses.replace(det.design, h=det.design.h / 2))
    rng.bit_generator.state = state
    assert _false_alarms(halved, rng, draw, records) > 5 * allowed


def test_small_references_keep_the_budget_where_the_plug_in_design_breaks_it():
    """40 references of 2,000 rows, 50,000 records each: expected count over references <= budget."""
    arl0, records, refs = 20_000, 50_000, 40
    allowed = refs * records / arl0                               # 100 at the budget
    counts = {}
    for guarantee in (0.9, None):
        rng = np.random.default_rng(77)
        total = 0
        for _ in range(refs):
            det = Cusum.from_reference("error", bernoulli(rng, 0.3, 2_000), arl0_records=arl0, guarantee=guarantee)
            total += _false_alarms(det, rng, lambda r, n: bernoulli(r, 0.3, n), records)
        counts[guarantee] = total
    assert counts[0.9] <= allowed
    assert counts[None] > 1.5 * allowed                        # estimates plugged in as if exact


# --- detection -----------------------------------------------------------------------------------

def _delays(rng, reference, draw_before, draw_after, trials: int, arl0: float):
    delays = []
    for _ in range(trials):
        det = Cusum.from_reference("s", reference(rng), arl0_records=arl0)
        change = 5_000 + int(rng.integers(0, 50))              # not aligned with the blocks
        det.update(draw_before(rng, change))
        after = [a for a in det.update(draw_after(rng, 3_000)) if a.index_in_stream > change]
        delays.append((after[0].index_in_stream - change, after[0].direction) if after else (math.inf, None))
    return delays


def test_error_rate_up_ten_points_is_caught_within_1000_records():
    arl0 = budget_split(1.0, n_window_tests=16, window_step=1_000, n_stream_detectors=2).arl0_records
    delays = _delays(np.random.default_rng(8), lambda r: bernoulli(r, 0.30, 10_000),
                     lambda r, n: bernoulli(r, 0.30, n), lambda r, n: bernoulli(r, 0.40, n), 100, arl0)
    caught = [d for d, side in delays if d <= 1_000 and side == "up"]
    assert len(caught) >= 95


def test_confidence_mean_shift_of_a_quarter_std_is_caught_within_1000_records():
    sd = math.sqrt(8 * 2 / (10 ** 2 * 11))                       # Beta(8, 2): mean 0.8
    arl0 = budget_split(1.0, n_window_tests=16, window_step=1_000, n_stream_detectors=2).arl0_records
    delays = _delays(np.random.default_rng(9), lambda r: r.beta(8, 2, 10_000), lambda r, n: r.beta(8, 2, n),
                     lambda r, n: r.beta(8, 2, n) - 0.25 * sd, 100, arl0)
    caught = [d for d, side in delays if d <= 1_000 and side == "down"]
    assert len(caught) >= 95


# --- the budget split ----------------------------------------------------------------------------

def test_budget_split_arithmetic():
    b = budget_split(1.0, n_window_tests=16, window_step=1_000, n_stream_detectors=2)
    assert b.windows_per_100k == 100
    assert b.alpha_per_window_test == pytest.approx(0.5 * 1_000 / (100_000 * 16))
    assert b.arl0_records == pytest.approx(400_000)
    assert b.expected_false_per_100k == pytest.approx(1.0)

    streams_only = budget_split(2.0, n_stream_detectors=4)
    assert streams_only.arl0_records == pytest.approx(200_000) and streams_only.alpha_per_window_test == 0.0
    windows_only = budget_split(1.0, n_window_tests=5, window_step=10_000)
    assert windows_only.alpha_per_window_test == pytest.approx(1.0 * 10_000 / (100_000 * 5))
    assert windows_only.arl0_records == math.inf and windows_only.expected_false_per_100k == pytest.approx(1.0)
    skewed = budget_split(1.0, n_window_tests=1, window_step=500, n_stream_detectors=1, stream_share=0.8)
    assert skewed.arl0_records == pytest.approx(125_000)
    assert skewed.alpha_per_window_test == pytest.approx(0.2 * 500 / 100_000)
    assert budget_split(10.0, n_window_tests=1, window_step=1_000_000).alpha_per_window_test == 1.0  # capped


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_false_per_100k=0, n_stream_detectors=1), "max_false_per_100k must be a finite number > 0"),
    (dict(max_false_per_100k=1), "nothing to split"),
    (dict(max_false_per_100k=1, n_window_tests=3), "window_step .* is required"),
    (dict(max_false_per_100k=1, n_window_tests=3, window_step=0), "window_step must be a positive"),
    (dict(max_false_per_100k=1, n_stream_detectors=-1), "n_stream_detectors must be an integer >= 0"),
    (dict(max_false_per_100k=1, n_stream_detectors=1, n_window_tests=1, window_step=10, stream_share=1.0),
     "stream_share must be in"),
])
def test_budget_split_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        budget_split(**kwargs)


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("reference, kwargs, message", [
    (np.full(500, 0.2), {}, r"stream 'conf': the reference is constant \(0.2 in all 500 values\)"),
    (np.r_[np.full(499, 3.0), 3.0], dict(transform="rank"), "stream 'conf': the reference is constant"),
    (np.random.default_rng(0).random(99), {}, "stream 'conf': the reference holds 99 value.*fewer than 2 blocks"),
    (np.r_[np.random.default_rng(0).random(200), np.nan], {}, r"stream 'conf': the reference holds 1 non-finite"),
    (["a", "b"] * 100, {}, "stream 'conf': reference values must be numbers"),
    (np.ones((100, 2)), {}, "stream 'conf': reference values must be one-dimensional"),
    (np.random.default_rng(0).random(200), dict(transform="median"), "transform 'median' is not one of"),
    (np.random.default_rng(0).random(200), dict(block=0), r"block must be an integer in \[1, 1,000,000\]"),
    (np.random.default_rng(0).random(200), dict(k=-1.0), "k must be a finite number >= 0"),
    (np.random.default_rng(0).random(200), dict(arl0_records=40), "arl0_records must be .* above the block"),
    (np.random.default_rng(0).random(200), dict(guarantee=1.0), r"guarantee must be in \(0, 1\)"),
])
def test_bad_references_are_named(reference, kwargs, message):
    kwargs = {"arl0_records": 100_000, **kwargs}
    with pytest.raises(ValueError, match=message):
        Cusum.from_reference("conf", reference, **kwargs)


def test_bad_records_are_named_and_leave_the_detector_unchanged():
    det = make_detector()
    det.update(np.zeros(30))
    before = det.state_dict()
    with pytest.raises(ValueError, match=r"stream 'error': record 32 is nan"):
        det.update([0.0, 1.0, math.nan, 1.0])
    with pytest.raises(ValueError, match="stream 'error': stream values must be numbers"):
        det.update(["x"])
    assert det.state_dict() == before
