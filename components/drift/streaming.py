r"""Streaming change detectors with a false-alarm budget: a block CUSUM calibrated on a reference sample.

A monitor watches univariate streams whose in-control behaviour is known from a
*reference* sample: the model's 0/1 error on labelled rows, its confidence on the
training sample, a feature. Detectors fed raw records at library defaults alarm on
unchanged data (river's ADWIN, Page-Hinkley and KSWIN alarmed on 5 of 5 unchanged
10,000-record taxi streams); here every detector gets an in-control average run length
``arl0_records`` (records between false alarms) derived from a false-alarm budget
(:func:`budget_split`), and its threshold is computed so the budget holds although the
reference is a finite sample.

Notes
-----
**Statistic.** Records :math:`x_i` pass an optional transform :math:`g` (``"mean"``:
none; ``"rank"``: the reference mid-rank :math:`\hat F(x)`, see below) and are standardized,
:math:`y_i = (g(x_i) - \hat\mu)/\hat\sigma_u`, with the reference mean and an upper
confidence bound :math:`\hat\sigma_u` of its standard deviation. Blocks of ``block`` (``b``)
records give :math:`z_j = \sum_{i \in j} y_i / \sqrt b`, near :math:`N(0, 1)` in control by
the central limit theorem. Two one-sided CUSUMs (Page [1]_) run on the blocks,

.. math:: S_j = \max(0, S_{j-1} + z_j - k_u), \qquad T_j = \max(0, T_{j-1} - z_j - k_u),

and the detector alarms (``"up"`` / ``"down"``) when one exceeds :math:`h`, then restarts
both from 0. The change is estimated to start after the alarming side's last zero
(Hinkley's estimate [2]_), and the mean since then is read off the statistic.

**Threshold.** For a random walk whose increments :math:`X` have mean :math:`m < 0` the
one-sided CUSUM's average run length is, in Siegmund's corrected approximation [3]_,

.. math:: \mathrm{ARL}(h) \approx \frac{e^{\theta h'} - \theta h' - 1}{\theta\,|m|},
          \qquad h' = h + 1.166,

where :math:`\theta \ne 0` solves :math:`\log E\,e^{\theta X} = 0` (Wald's identity; for normal
increments :math:`\theta = -2m` and this is Siegmund's formula). Here
:math:`\log E\,e^{\theta X}` is computed from the *reference's own* distribution
(:math:`b\,K(\theta/\sqrt b) + \theta m`, :math:`K` the empirical cumulant generating function
of the standardized records), so skewed streams (an error rate of 0.1, confidence piled
up near 1) are not treated as normal. The two sides combine as
:math:`1/\mathrm{ARL} = 1/\mathrm{ARL}^+ + 1/\mathrm{ARL}^-` [4]_.

**Finite reference.** The reference mean is off by :math:`\delta \sim N(0, b/n)` in block
units (:math:`n` reference rows): for :math:`n = 2{,}000` and :math:`b = 50` a standard
deviation of 0.16, against :math:`k = 0.5`, which with the textbook threshold shortens the
in-control ARL on one side many times over (Jones, Champ and Rigdon [5]_; measured in
``benchmarks/streaming_calibration.py``). The design therefore

1. widens the reference value to :math:`k_u = k + z\sqrt{b/n}` and inflates the standard
   deviation to :math:`\hat\sigma_u = \hat\sigma(1 + z\sqrt{(\hat\kappa - 1)/(4n)})`
   (:math:`\hat\kappa` the sample kurtosis), with :math:`z = \Phi^{-1}(1 - (1 - g)/3)`, so
   with probability at least :math:`g` (``guarantee``; Bonferroni over the two mean
   bounds and the standard-deviation bound) the detector's *own* in-control rate, given
   its reference, is at most :math:`1/\mathrm{arl0}`: a guaranteed conditional performance
   in the sense of Gandy and Kvaløy [6]_;
2. also requires the *expected* rate over reference samples,
   :math:`E_\delta[1/\mathrm{ARL}^+(\delta) + 1/\mathrm{ARL}^-(\delta)]` (Gauss-Hermite
   quadrature over :math:`\delta`), to be at most :math:`1/\mathrm{arl0}`; this binds for small
   references, where the tail of :math:`\delta` dominates;

and takes the larger of the two thresholds. ``guarantee=None`` plugs the estimates in as
if they were exact (the textbook design, for comparison only).

**Clipping.** Live records are clipped to the reference's range before they count (a
winsorized mean): the design can only know the tails the reference shows, and one
700-dollar fare among 50 records would otherwise move a block mean by 8 block standard
deviations. A new record lies beyond the reference's range with probability about
:math:`1/(n+1)` per side, which the design counts as one pseudo-record at each extreme.

**Arithmetic.** Records are held as integers in units of :math:`2^{-24}` reference
standard deviations (clipped at :math:`\pm 8192`), so block sums and the CUSUM are exact:
feeding a stream in any chunks, with a :meth:`Cusum.state_dict` / :meth:`Cusum.from_state`
round trip in between, gives bit-identical alarms. ``update`` runs the recursion on whole
arrays with :math:`S_j = C_j - \min(-S_0, \min_{i \le j} C_i)`, :math:`C` the cumulative
sum of the increments, restarting after each alarm.

**Rank transform.** ``transform="rank"`` replaces a record by its mid-rank among 999
reference quantiles, :math:`\hat F(x) \in [0, 1]` (0.5 on average in control), the
probability integral transform of the reference. It is bounded, so block means are
near-normal whatever the tails; use it for heavy-tailed streams such as fares (the raw
mean of a fare stream is dominated by rare 700-dollar trips, and its design threshold
with it). ``mean_before`` / ``mean_after_estimate`` are then on the :math:`\hat F` scale.

References
----------
.. [1] E. S. Page, "Continuous inspection schemes", Biometrika 41 (1954), 100-115.
.. [2] D. V. Hinkley, "Inference about the change-point from cumulative sum tests",
   Biometrika 58 (1971), 509-523.
.. [3] D. Siegmund, "Sequential Analysis: Tests and Confidence Intervals", Springer
   (1985), Ch. II and X.
.. [4] D. C. Montgomery, "Introduction to Statistical Quality Control", 6th ed., Wiley
   (2009), Sec. 9.1 (two-sided CUSUM; ARL 168 for k = 1/2, h = 4).
.. [5] L. A. Jones, C. W. Champ and S. E. Rigdon, "The run length distribution of the
   CUSUM with estimated parameters", J. Quality Technology 36 (2004), 95-108.
.. [6] A. Gandy and J. T. Kvaløy, "Guaranteed conditional performance of control charts
   via bootstrap methods", Scand. J. Statist. 40 (2013), 647-668.

Examples
--------
The model's 0/1 error on 10,000 labelled rows (error rate 0.3), then a live stream whose
error rate rises to 0.4 at record 20,000:

>>> rng = np.random.default_rng(7)
>>> det = Cusum.from_reference("error", rng.random(10_000) < 0.3, arl0_records=400_000)
>>> round(det.design.h, 2), round(det.design.k_used, 3)
(7.37, 0.63)
>>> det.update(rng.random(20_000) < 0.3)
[]
>>> alarm, = det.update(rng.random(1_000) < 0.4)
>>> alarm.index_in_stream, alarm.direction, alarm.change_point, round(alarm.mean_after_estimate, 2)
(20500, 'up', 20000, 0.4)
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import numpy as np
from numpy.polynomial.hermite_e import hermegauss
from scipy import special

__all__ = [
    "Alarm", "StreamDetector", "Cusum", "CusumDesign", "Budget", "budget_split", "design_cusum",
    "siegmund_arl", "TRANSFORMS",
]

logger = logging.getLogger(__name__)

TRANSFORMS = ("mean", "rank")
OVERSHOOT = 1.166          # 2 x 0.583 = -2 zeta(1/2)/sqrt(2 pi): Siegmund's overshoot of normal increments
RANK_LEVELS = 1000         # "rank": mid-rank among the reference's 1/1000 ... 999/1000 quantiles
_SCALE = float(2 ** 24)    # fixed point: records in units of 2^-24 reference standard deviations
_CLIP = 8192.0             # |standardized record| cap; keeps int64 block sums and cumulative sums exact
_MAX_SEGMENT = 1 << 18     # blocks per vectorized pass (fewer for large blocks: see Cusum.__init__)
_MAX_BLOCK = 1_000_000     # records per block: a block sum stays below 2^20 * 2^37 = 2^57
_QUADRATURE_NODES = 48     # Gauss-Hermite nodes over the reference mean's error
_CGF_GRID = 64.0           # the design's CGF rounds standardized records to 1/64 (variance change ~2e-5)
_STATE_VERSION = 1


# --- typed results -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Alarm:
    """One alarm of a stream detector.

    Attributes
    ----------
    name : str
        The stream.
    index_in_stream : int
        Records the detector had seen when it alarmed (the alarm fires when a block
        completes, so this is a multiple of the block size).
    direction : {"up", "down"}
        Which side alarmed: the mean rose or fell.
    statistic, threshold : float
        The CUSUM and its threshold h, in standard deviations of a block mean.
    change_point : int
        Estimated 0-based index of the first changed record (the first record after the
        alarming side's last zero: Hinkley's estimate, to a block).
    mean_before : float
        The reference mean (for ``transform="rank"``: 0.5 scale of reference mid-ranks).
    mean_after_estimate : float
        The stream's mean from ``change_point`` to the alarm, same scale.
    """

    name: str
    index_in_stream: int
    direction: str
    statistic: float
    threshold: float
    change_point: int
    mean_before: float
    mean_after_estimate: float

    def to_dict(self) -> Dict[str, Any]:
        """Plain JSON-safe dict of the fields."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class CusumDesign:
    """Everything fixed about a :class:`Cusum`, computed by :func:`design_cusum`.

    ``k`` is the in-control allowance asked for; ``k_used`` = ``k`` plus the reference
    mean's uncertainty is what the CUSUM subtracts. ``predicted_arl0_records`` is the
    expected in-control run length over reference samples; ``..._conditional`` the
    shortest one among references within the ``guarantee`` bounds. Records are clipped
    to the reference's range [``low``, ``high``] (transformed scale) before they count.
    """

    transform: str
    block: int
    k: float
    k_used: float
    h: float
    arl0_records: float
    guarantee: Optional[float]
    n_reference: int
    reference_mean: float
    reference_std: float
    sigma_used: float
    predicted_arl0_records: float
    predicted_arl0_records_conditional: float
    low: float
    high: float
    knots: Tuple[float, ...] = ()

    def to_dict(self) -> Dict[str, Any]:
        out = dataclasses.asdict(self)
        out["knots"] = list(self.knots)
        for key in ("predicted_arl0_records", "predicted_arl0_records_conditional"):
            if not math.isfinite(out[key]):
                out[key] = None  # strict JSON has no Infinity
        return out

    @classmethod
    def from_dict(cls, data: Dict[str, Any], *, stream: str = "?") -> "CusumDesign":
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"stream {stream!r}: saved design lacks {missing}")
        values = {n: data[n] for n in names}
        values["knots"] = tuple(float(v) for v in values["knots"])
        for key in ("predicted_arl0_records", "predicted_arl0_records_conditional"):
            values[key] = math.inf if values[key] is None else float(values[key])
        return cls(**values)


# --- budget ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budget:
    """A false-alarm budget split over window tests and stream detectors (:func:`budget_split`)."""

    max_false_per_100k: float
    window_share: float               # false alerts per 100k records given to all window tests
    stream_share: float               # ... and to all stream detectors
    windows_per_100k: float
    alpha_per_window_test: float      # level of each window test (0.0 when there are none)
    arl0_records: float               # in-control ARL of each stream detector (inf when there are none)
    n_window_tests: int
    n_stream_detectors: int

    @property
    def expected_false_per_100k(self) -> float:
        """Expected false alerts per 100,000 unchanged records, summed over every test and detector."""
        windows = self.n_window_tests * self.windows_per_100k * self.alpha_per_window_test
        streams = self.n_stream_detectors * 100_000 / self.arl0_records if self.n_stream_detectors else 0.0
        return windows + streams


def budget_split(max_false_per_100k: float = 1.0, n_window_tests: int = 0, window_step: Optional[int] = None,
                 n_stream_detectors: int = 0, *, stream_share: float = 0.5) -> Budget:
    r"""Split a false-alert budget over window tests and stream detectors.

    Parameters
    ----------
    max_false_per_100k : float
        Expected false alerts per 100,000 unchanged records, all detectors together (B).
    n_window_tests : int
        Tests evaluated on every window (e.g. one per monitored feature), each yielding one
        verdict per window at a level alpha.
    window_step : int
        Records between two window evaluations (a tumbling window's size, or a sliding
        window's step). Required when ``n_window_tests > 0``.
    n_stream_detectors : int
        Streaming detectors (e.g. :class:`Cusum` on the error and confidence streams).
    stream_share : float
        Fraction of B given to the stream detectors when both families are present.

    Returns
    -------
    Budget
        ``alpha_per_window_test`` and ``arl0_records`` (per detector), with the shares.

    Notes
    -----
    Expected counts add whatever the dependence between tests (linearity of
    expectation), so the split is a Bonferroni split of the *expected number* of false
    alerts, :math:`B = B_w + B_s`:

    - window tests: a window of ``step`` records is one test evaluated
      :math:`W = 100{,}000/\mathrm{step}` times per 100,000 records; :math:`m` tests at level
      :math:`\alpha` cost :math:`m W \alpha` expected false alerts, so
      :math:`\alpha = B_w\,\mathrm{step} / (100{,}000\, m)` (capped at 1);
    - stream detectors restart after each alarm, so false alarms form a renewal process
      with rate :math:`1/\mathrm{ARL}_0` per record: :math:`d` detectors cost
      :math:`100{,}000\,d/\mathrm{ARL}_0`, so :math:`\mathrm{ARL}_0 = 100{,}000\,d / B_s`;
    - :math:`B_s = ` ``stream_share`` :math:`\times B` when both families are present,
      otherwise the family present takes all of B.

    Examples
    --------
    One false alert per 100,000 records; 16 feature tests every 1,000 records; error and
    confidence detectors:

    >>> b = budget_split(1.0, n_window_tests=16, window_step=1000, n_stream_detectors=2)
    >>> b.alpha_per_window_test, b.arl0_records, b.expected_false_per_100k
    (0.0003125, 400000.0, 1.0)
    """
    budget = _positive(max_false_per_100k, "max_false_per_100k")
    n_window_tests = _count(n_window_tests, "n_window_tests")
    n_stream_detectors = _count(n_stream_detectors, "n_stream_detectors")
    if n_window_tests == 0 and n_stream_detectors == 0:
        raise ValueError("budget_split: nothing to split: n_window_tests and n_stream_detectors are both 0")
    if not 0.0 < float(stream_share) < 1.0:
        raise ValueError(f"budget_split: stream_share must be in (0, 1), got {stream_share!r}")
    if n_window_tests and n_stream_detectors:
        stream_budget = budget * float(stream_share)
    else:
        stream_budget = budget if n_stream_detectors else 0.0
    window_budget = budget - stream_budget
    windows = 0.0
    alpha = 0.0
    if n_window_tests:
        if window_step is None:
            raise ValueError("budget_split: window_step (records between window evaluations) is required "
                             "when n_window_tests > 0")
        step = _count(window_step, "window_step")
        if step == 0:
            raise ValueError("budget_split: window_step must be a positive number of records, got 0")
        windows = 100_000 / step
        alpha = min(1.0, window_budget / (n_window_tests * windows))
    arl0 = 100_000 * n_stream_detectors / stream_budget if n_stream_detectors else math.inf
    return Budget(max_false_per_100k=budget, window_share=window_budget, stream_share=stream_budget,
                  windows_per_100k=windows, alpha_per_window_test=alpha, arl0_records=arl0,
                  n_window_tests=n_window_tests, n_stream_detectors=n_stream_detectors)


# --- run-length approximations ---------------------------------------------------------------------

def _arl(theta, drift, h):
    """One-sided CUSUM ARL (blocks) from the adjustment root ``theta`` and the increment mean ``drift``."""
    theta = np.asarray(theta, dtype=float)
    drift = np.asarray(drift, dtype=float)
    hp = float(h) + OVERSHOOT
    u = theta * hp
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        num = np.expm1(u) - u
        den = -theta * drift
        arl = num / den
    small = np.abs(u) < 1e-6                 # theta -> 0 (drift -> 0): the limit h'^2
    arl = np.where(small, hp * hp, arl)
    arl = np.where(theta == np.inf, np.inf, arl)  # no increment can rise: the walk never crosses
    with np.errstate(divide="ignore"):
        arl = np.where(theta == -np.inf, hp / np.abs(drift), arl)  # no increment can fall: straight up
    return arl


def siegmund_arl(drift, h: float):
    r"""Siegmund's approximation of a one-sided CUSUM's ARL for unit-variance normal increments.

    ``drift`` is the increments' mean (the shift minus k; negative in control).

    .. math:: \mathrm{ARL} = \frac{e^{-2\Delta h'} + 2\Delta h' - 1}{2\Delta^2}, \qquad h' = h + 1.166

    Examples
    --------
    Montgomery's table (k = 1/2): h = 4 gives 336 one-sided (168 two-sided), h = 5 gives 930.

    >>> [round(float(siegmund_arl(-0.5, h))) for h in (4, 5)]
    [338, 938]
    >>> round(float(siegmund_arl(0.5, 5)), 1)   # a one-sigma shift: ~10 blocks
    10.3
    """
    drift = np.asarray(drift, dtype=float)
    return _arl(-2.0 * drift, drift, h)


def _cgf_support(y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Standardized reference records as (support, probabilities), rounded to a 1/64 grid, mean exactly 0."""
    grid, counts = np.unique(np.round(y * _CGF_GRID), return_counts=True)
    support = grid / _CGF_GRID
    prob = counts / counts.sum()
    return support - float(prob @ support), prob


def _adjustment_roots(support: np.ndarray, prob: np.ndarray, block: int, drift: np.ndarray) -> np.ndarray:
    r"""Non-zero roots :math:`\theta` of :math:`b K(\theta/\sqrt b) + \theta\,m = 0`, one per drift m.

    Hand-written Newton iteration, vectorized over the drifts: the function is convex with a
    root at 0, so started beyond the other root (where it is positive) Newton converges to
    it monotonically; ``scipy.optimize.newton``'s array mode has no such safeguard.
    """
    drift = np.asarray(drift, dtype=float)
    sb = math.sqrt(block)
    log_p = np.log(prob)

    def value_and_slope(theta):
        t = (theta / sb)[:, None] * support[None, :] + log_p[None, :]
        top = t.max(axis=1, keepdims=True)
        w = np.exp(t - top)
        total = w.sum(axis=1)
        cgf = np.log(total) + top[:, 0]
        slope = (w @ support) / total
        return block * cgf + theta * drift, sb * slope + drift

    theta = -2.0 * drift                       # the root for normal increments
    # the root exists when an increment can go against the drift: beyond the largest
    # (smallest) possible block increment the function is linear with the wrong sign
    reachable = np.where(drift < 0, sb * support.max() + drift > 0, sb * support.min() + drift < 0)
    theta[drift == 0.0] = 0.0
    theta = np.where((drift != 0.0) & ~reachable, np.where(drift < 0, np.inf, -np.inf), theta)
    active = np.isfinite(theta) & (theta != 0.0)
    for _ in range(200):                       # start beyond the root: double while still <= 0
        val, _slope = value_and_slope(np.where(active, theta, 1.0))
        low = active & (val <= 0.0)
        if not low.any():
            break
        theta = np.where(low, 2.0 * theta, theta)
    for _ in range(200):
        if not active.any():
            break
        val, slope = value_and_slope(np.where(active, theta, 1.0))
        step = np.where(active, val / np.where(active, slope, 1.0), 0.0)
        theta = theta - step
        active &= np.abs(step) > 1e-12 * np.maximum(1.0, np.abs(theta))
    return theta


def _side_rates(support, prob, block, k_used, deltas):
    """Adjustment roots and drifts of both sides for reference-mean errors ``deltas``."""
    up_drift = deltas - k_used
    down_drift = -deltas - k_used
    up_theta = _adjustment_roots(support, prob, block, up_drift)
    down_theta = _adjustment_roots(-support[::-1], prob[::-1], block, down_drift)
    return up_theta, up_drift, down_theta, down_drift


def _rate(sides, h, weights=None):
    """False alarms per block of a two-sided CUSUM, averaged with ``weights`` (or per delta)."""
    up_theta, up_drift, down_theta, down_drift = sides
    with np.errstate(divide="ignore"):
        rate = 1.0 / _arl(up_theta, up_drift, h) + 1.0 / _arl(down_theta, down_drift, h)
    return rate if weights is None else float(weights @ rate)


def design_cusum(standardized_reference, *, block: int = 50, k: float = 0.5, arl0_records: float,
                 guarantee: Optional[float] = 0.9, n_reference: Optional[int] = None,
                 stream: str = "?") -> Dict[str, float]:
    """Reference value and threshold of a two-sided block CUSUM (see the module notes).

    Parameters
    ----------
    standardized_reference : array
        Reference records after the transform, standardized to mean 0 and variance 1;
        their distribution (not just the normal one) sets the run lengths. Live records
        are clipped to the reference's range, so its extremes are counted once more.
    block, k, arl0_records, guarantee
        As in :meth:`Cusum.from_reference`.
    n_reference : int, optional
        Rows the reference mean and deviation were estimated from (default: its length).

    Returns
    -------
    dict
        ``k_used``, ``h``, ``sigma_inflation`` (the factor on the reference standard
        deviation), ``predicted_arl0_records`` (expected over references) and
        ``predicted_arl0_records_conditional`` (worst case within the guarantee).
    """
    from scipy.optimize import brentq  # only when designing: keeps `import driftguard.components.drift` fast

    y = np.asarray(standardized_reference, dtype=float)
    n = int(n_reference if n_reference is not None else y.size)
    target = block / float(arl0_records)              # false alarms per block allowed
    # a future record falls beyond the reference's range with probability about 1/(n+1) per
    # side (exchangeability) and is clipped to it: one pseudo-record at each extreme
    support, prob = _cgf_support(np.concatenate([y, [y.min(), y.max()]]))
    if guarantee is None:
        z = 0.0
        deltas, weights = np.zeros(1), np.ones(1)
        bounds = np.zeros(1)
    else:
        z = float(special.ndtri(1.0 - (1.0 - guarantee) / 3.0))
        s = math.sqrt(block / n)
        nodes, weights = hermegauss(_QUADRATURE_NODES)
        deltas, weights = s * nodes, weights / math.sqrt(2.0 * math.pi)
        bounds = np.array([-z * s, z * s])
    width = float(bounds.max())
    kurtosis = float(np.mean(y ** 4))
    inflation = 1.0 + z * math.sqrt(max(kurtosis - 1.0, 0.0) / (4.0 * n))
    k_used = float(k) + width
    marginal = _side_rates(support, prob, block, k_used, deltas)
    worst = _side_rates(support, prob, block, k_used, bounds)

    def excess(h, which):
        rate = _rate(marginal, h, weights) if which == "marginal" else float(_rate(worst, h).max())
        return math.log(max(rate, 1e-300)) - math.log(target)

    thresholds = []
    for which in ("marginal", "conditional"):
        high = 8.0
        while excess(high, which) > 0.0:
            high *= 2.0
            if high > 1e6:
                raise ValueError(f"stream {stream!r}: no CUSUM threshold reaches arl0_records={arl0_records}")
        thresholds.append(0.0 if excess(0.0, which) <= 0.0 else brentq(excess, 0.0, high, args=(which,),
                                                                       xtol=1e-9))
    h = max(thresholds)
    rate_marginal = _rate(marginal, h, weights)
    rate_conditional = float(_rate(worst, h).max())
    return {
        "k_used": k_used, "h": float(h), "sigma_inflation": inflation,
        "predicted_arl0_records": block / rate_marginal if rate_marginal > 0 else math.inf,
        "predicted_arl0_records_conditional": block / rate_conditional if rate_conditional > 0 else math.inf,
    }


# --- detectors -------------------------------------------------------------------------------------

class StreamDetector:
    """Base of the streaming detectors: river's shape (``update`` then ``drift_detected``).

    Subclasses set ``kind`` and implement ``update``, ``state_dict`` and ``_from_state``.
    """

    kind: ClassVar[str] = ""
    _kinds: ClassVar[Dict[str, type]] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind:
            StreamDetector._kinds[cls.kind] = cls

    name: str

    def update(self, values) -> List[Alarm]:  # pragma: no cover - interface
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    @classmethod
    def from_state(cls, name: str, state: Dict[str, Any]) -> "StreamDetector":
        """Rebuild a detector saved with :meth:`state_dict` (any kind, or this class's own)."""
        if not isinstance(state, dict):
            raise ValueError(f"stream {name!r}: a saved detector state must be a dict, got {type(state).__name__}")
        kind = state.get("kind")
        target = cls._kinds.get(kind) if cls is StreamDetector else cls
        if target is None or (cls is not StreamDetector and kind != cls.kind):
            raise ValueError(f"stream {name!r}: saved state is of kind {kind!r}; "
                             f"expected {cls.kind or sorted(cls._kinds)!r}")
        saved = state.get("name")
        if saved is not None and saved != name:
            raise ValueError(f"stream {name!r}: saved state belongs to stream {saved!r}")
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"stream {name!r}: saved state version {state.get('version')!r}, "
                             f"this code reads version {_STATE_VERSION}")
        return target._from_state(name, state)

    @classmethod
    def _from_state(cls, name, state):  # pragma: no cover - interface
        raise NotImplementedError


class Cusum(StreamDetector):
    """Two-sided block CUSUM with a threshold set for an in-control ARL (module notes).

    Build it with :meth:`from_reference`; feed it with :meth:`update`; persist it with
    :meth:`state_dict` / :meth:`from_state`. ``Cusum(name, design)`` builds one from an
    explicit :class:`CusumDesign` (e.g. ``dataclasses.replace(d.design, h=...)``).
    """

    kind = "cusum"

    def __init__(self, name: str, design: CusumDesign):
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stream detector needs a non-empty name, got {name!r}")
        self.name = name
        if design.transform not in TRANSFORMS:
            raise ValueError(f"stream {name!r}: transform {design.transform!r} is not one of {TRANSFORMS}")
        if design.transform == "rank" and not design.knots:
            raise ValueError(f"stream {name!r}: transform 'rank' needs the reference knots")
        if not (isinstance(design.block, int) and 1 <= design.block <= _MAX_BLOCK):
            raise ValueError(f"stream {name!r}: block must be an integer in [1, {_MAX_BLOCK:,}], "
                             f"got {design.block!r}")
        if not (design.h > 0 and math.isfinite(design.h) and design.sigma_used > 0
                and math.isfinite(design.sigma_used) and design.k_used >= 0 and math.isfinite(design.k_used)):
            raise ValueError(f"stream {name!r}: invalid design h={design.h!r}, k_used={design.k_used!r}, "
                             f"sigma_used={design.sigma_used!r}")
        self.design = design
        self._rank = _MidRank(np.asarray(design.knots, dtype=float)) if design.transform == "rank" else None
        self._factor = _SCALE / design.sigma_used
        root_b = math.sqrt(design.block)
        self._k_int = int(round(design.k_used * root_b * _SCALE))
        self._h_int = int(math.floor(design.h * root_b * _SCALE))
        # cumulative sums of a segment stay below 2^62: |increment| <= block * 2^37 + k_int
        self._segment = int(min(_MAX_SEGMENT, 2 ** 62 // (design.block * 2 ** 37 + self._k_int + 1)))
        self._low = max(-_CLIP, (design.low - design.reference_mean) / design.sigma_used) * _SCALE
        self._high = min(_CLIP, (design.high - design.reference_mean) / design.sigma_used) * _SCALE
        self._reset_state()

    def _reset_state(self):
        self.n_records = 0
        self.n_alarms = 0
        self._blocks = 0               # completed blocks
        self._partial_sum = 0          # fixed-point sum of the records of the open block
        self._partial_count = 0
        self._up = 0                   # fixed-point CUSUM statistics
        self._down = 0
        self._up_zero = -1             # last block where each statistic was 0 (-1: before the stream)
        self._down_zero = -1
        self._last: List[Alarm] = []

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_reference(cls, name: str, reference_values, *, arl0_records: float, block: int = 50,
                       k: float = 0.5, transform: str = "mean", guarantee: Optional[float] = 0.9) -> "Cusum":
        """Design a detector from a reference sample of the stream.

        Parameters
        ----------
        name : str
            The stream, named in alarms and errors.
        reference_values : array of numbers
            In-control records (e.g. 0/1 errors of labelled rows, confidences on the
            training sample). At least ``2 * block`` finite values, not all equal.
        arl0_records : float
            Wanted in-control average run length in records (``budget_split(...).arl0_records``).
        block : int
            Records per block (50: block means of a 0.3 error rate have skewness 0.12).
        k : float
            In-control allowance in standard deviations of a block mean; detects fastest
            a shift of about ``2 * k_used``.
        transform : {"mean", "rank"}
            Monitor the mean of the values, or of their reference mid-ranks (heavy tails).
        guarantee : float in (0, 1) or None
            Probability over the reference sample that this detector's own rate holds
            (module notes); ``None`` treats the reference estimates as exact.
        """
        if transform not in TRANSFORMS:
            raise ValueError(f"stream {name!r}: transform {transform!r} is not one of {TRANSFORMS}")
        if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or not 1 <= block <= _MAX_BLOCK:
            raise ValueError(f"stream {name!r}: block must be an integer in [1, {_MAX_BLOCK:,}], got {block!r}")
        block = int(block)
        if not (isinstance(k, (int, float, np.floating)) and math.isfinite(k) and k >= 0):
            raise ValueError(f"stream {name!r}: k must be a finite number >= 0, got {k!r}")
        if not (isinstance(arl0_records, (int, float, np.number)) and math.isfinite(arl0_records)
                and arl0_records > block):
            raise ValueError(f"stream {name!r}: arl0_records must be a finite number of records above the block "
                             f"size {block}, got {arl0_records!r}")
        if guarantee is not None and not 0.0 < float(guarantee) < 1.0:
            raise ValueError(f"stream {name!r}: guarantee must be in (0, 1) or None, got {guarantee!r}")
        x = _as_values(reference_values, name, "reference")
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"stream {name!r}: the reference holds {int(bad.sum())} non-finite value(s) "
                             f"(first at position {first}: {x[first]!r})")
        if x.size < 2 * block:
            raise ValueError(f"stream {name!r}: the reference holds {x.size} value(s), fewer than 2 blocks of "
                             f"{block}; need at least {2 * block}")
        knots: Tuple[float, ...] = ()
        if transform == "rank":
            levels = np.arange(1, RANK_LEVELS) / RANK_LEVELS
            knots_arr = np.quantile(x, levels, method="inverted_cdf")
            knots = tuple(float(v) for v in knots_arr)
            g = _MidRank(knots_arr)(x)
        else:
            g = x
        mean = float(np.mean(g))
        std = float(np.std(g, ddof=1))
        if not std > 0.0 or std < 1e-12 * max(1.0, abs(mean)):
            raise ValueError(f"stream {name!r}: the reference is constant ({x[0]!r} in all {x.size} values); "
                             "a change cannot be scaled against a zero standard deviation")
        y = (g - mean) / std
        d = design_cusum(y, block=block, k=float(k), arl0_records=float(arl0_records), guarantee=guarantee,
                         stream=name)
        design = CusumDesign(
            transform=transform, block=block, k=float(k), k_used=d["k_used"], h=d["h"],
            arl0_records=float(arl0_records), guarantee=None if guarantee is None else float(guarantee),
            n_reference=int(x.size), reference_mean=mean, reference_std=std,
            sigma_used=std * d["sigma_inflation"], predicted_arl0_records=d["predicted_arl0_records"],
            predicted_arl0_records_conditional=d["predicted_arl0_records_conditional"],
            low=float(g.min()), high=float(g.max()), knots=knots)
        logger.debug("stream %s: CUSUM k_used=%.3f h=%.3f for arl0=%s records", name, design.k_used, design.h,
                     arl0_records)
        return cls(name, design)

    # -- streaming -----------------------------------------------------------------------------

    @property
    def drift_detected(self) -> bool:
        """Whether the last :meth:`update` alarmed."""
        return bool(self._last)

    @property
    def statistics(self) -> Tuple[float, float]:
        """Current (up, down) CUSUM values in block standard deviations (for metrics)."""
        unit = math.sqrt(self.design.block) * _SCALE
        return self._up / unit, self._down / unit

    def update(self, values) -> List[Alarm]:
        """Feed records (any array-like of numbers, or one number); return the alarms they raised.

        Vectorized: one pass of numpy operations over the records and a cumulative-sum pass
        over the completed blocks. Non-finite values raise ``ValueError`` naming the record,
        and leave the detector unchanged.
        """
        x = _as_values(values, self.name, "stream")
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.argmax(bad))
            raise ValueError(f"stream {self.name!r}: record {self.n_records + first} is {x[first]!r}; "
                             "NaN and infinite values cannot be monitored (drop or impute them first)")
        self._last = []
        if x.size == 0:
            return []
        q = self._fixed_point(x)
        b = self.design.block
        need = b - self._partial_count
        self.n_records += int(x.size)
        if q.size < need:
            self._partial_sum += int(q.sum())
            self._partial_count += int(q.size)
            return []
        n_full = (q.size - need) // b
        sums = np.empty(1 + n_full, dtype=np.int64)
        sums[0] = self._partial_sum + int(q[:need].sum())
        body = q[need:need + n_full * b]
        if n_full:
            sums[1:] = body.reshape(n_full, b).sum(axis=1)
        tail = q[need + n_full * b:]
        self._partial_sum = int(tail.sum())
        self._partial_count = int(tail.size)
        self._last = self._run_blocks(sums)
        self.n_alarms += len(self._last)
        return list(self._last)

    def _fixed_point(self, x: np.ndarray) -> np.ndarray:
        d = self.design
        if d.transform == "rank":
            g = self._rank(x)
        else:
            g = x
        y = (g - d.reference_mean) * self._factor
        np.minimum(y, self._high, out=y)
        np.maximum(y, self._low, out=y)
        return np.rint(y, out=y).astype(np.int64)

    def _run_blocks(self, sums: np.ndarray) -> List[Alarm]:
        alarms: List[Alarm] = []
        k, h = self._k_int, self._h_int
        n = sums.size
        pos, seg = 0, min(1024, self._segment)
        while pos < n:
            end = min(n, pos + seg)
            inc = sums[pos:end] - k
            up = _walk(inc, self._up)
            down = _walk(-inc - 2 * k, self._down)
            hit = (up > h) | (down > h)
            first = int(np.argmax(hit))
            if hit[first]:
                block = self._blocks + pos + first
                side = up if up[first] > h else down
                alarms.append(self._alarm(block, "up" if side is up else "down", side, first))
                self._up = self._down = 0
                self._up_zero = self._down_zero = block
                pos += first + 1
                seg = min(64, self._segment)  # after an alarm, look ahead a little, then further
                continue
            self._up, self._down = int(up[-1]), int(down[-1])
            self._up_zero = self._last_zero(up, self._blocks + pos, self._up_zero)
            self._down_zero = self._last_zero(down, self._blocks + pos, self._down_zero)
            pos = end
            seg = min(4 * seg, self._segment)
        self._blocks += n
        return alarms

    @staticmethod
    def _last_zero(walk: np.ndarray, offset: int, previous: int) -> int:
        zeros = np.flatnonzero(walk == 0)
        return offset + int(zeros[-1]) if zeros.size else previous

    def _alarm(self, block: int, direction: str, walk: np.ndarray, at: int) -> Alarm:
        d = self.design
        start = block - at                                     # absolute index of walk[0]
        previous = self._up_zero if direction == "up" else self._down_zero
        zero = self._last_zero(walk[:at + 1], start, previous)
        n_blocks = block - zero
        stat = int(walk[at])
        total = stat + n_blocks * self._k_int                  # fixed-point sum of the records since `zero`
        if direction == "down":
            total = -total
        mean_after = d.reference_mean + d.sigma_used * total / (n_blocks * d.block * _SCALE)
        unit = math.sqrt(d.block) * _SCALE
        return Alarm(name=self.name, index_in_stream=(block + 1) * d.block, direction=direction,
                     statistic=stat / unit, threshold=d.h, change_point=(zero + 1) * d.block,
                     mean_before=d.reference_mean, mean_after_estimate=float(mean_after))

    # -- persistence ---------------------------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """JSON-safe dict: the design and the position (records, open block, statistics)."""
        return {
            "kind": self.kind, "version": _STATE_VERSION, "name": self.name,
            "design": self.design.to_dict(),
            "state": {"n_records": self.n_records, "n_alarms": self.n_alarms, "blocks": self._blocks,
                      "partial_sum": self._partial_sum, "partial_count": self._partial_count,
                      "up": self._up, "down": self._down, "up_zero": self._up_zero,
                      "down_zero": self._down_zero},
        }

    @classmethod
    def _from_state(cls, name: str, state: Dict[str, Any]) -> "Cusum":
        for key in ("design", "state"):
            if not isinstance(state.get(key), dict):
                raise ValueError(f"stream {name!r}: saved state lacks its {key!r} section")
        det = cls(name, CusumDesign.from_dict(state["design"], stream=name))
        saved = state["state"]
        fields = {"n_records": "n_records", "n_alarms": "n_alarms", "blocks": "_blocks",
                  "partial_sum": "_partial_sum", "partial_count": "_partial_count", "up": "_up", "down": "_down",
                  "up_zero": "_up_zero", "down_zero": "_down_zero"}
        for key, attr in fields.items():
            value = saved.get(key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"stream {name!r}: saved state field {key!r} must be an integer, got {value!r}")
            setattr(det, attr, value)
        if not 0 <= det._partial_count < det.design.block or det._up < 0 or det._down < 0:
            raise ValueError(f"stream {name!r}: saved state is inconsistent (partial_count {det._partial_count}, "
                             f"block {det.design.block}, up {det._up}, down {det._down})")
        return det

    def __repr__(self) -> str:
        d = self.design
        return (f"Cusum({self.name!r}, transform={d.transform!r}, block={d.block}, k_used={d.k_used:.3f}, "
                f"h={d.h:.3f}, arl0_records={d.arl0_records:g}, n_records={self.n_records})")


# --- helpers ---------------------------------------------------------------------------------------

def _walk(increments: np.ndarray, start: int) -> np.ndarray:
    """``S_j = max(0, S_{j-1} + x_j)`` from ``S_{-1} = start``, as ``C_j - min(-start, min_{i<=j} C_i)``."""
    c = np.cumsum(increments)
    low = np.minimum.accumulate(c)
    np.minimum(low, -start, out=low)
    return c - low


class _MidRank:
    """Mid-rank among sorted knots, ``(#knots < x + #knots <= x) / (2 * #knots)`` in [0, 1].

    One binary search instead of two (left and right): the search runs over the distinct
    knots interleaved with their next floats, ``[u0, u0+, u1, u1+, ...]``, so position
    2m+1 means "equal to u_m" and 2m+2 "between u_m and u_m+1", each with a precomputed value.
    """

    def __init__(self, knots: np.ndarray):
        distinct, counts = np.unique(knots, return_counts=True)
        upto = np.cumsum(counts)
        self._bounds = np.empty(2 * distinct.size)
        self._bounds[0::2] = distinct
        self._bounds[1::2] = np.nextafter(distinct, np.inf)
        twice = np.empty(2 * distinct.size + 1, dtype=np.int64)   # #below + #up-to, per position
        twice[0] = 0
        twice[1::2] = 2 * upto - counts
        twice[2::2] = 2 * upto
        self._values = twice * (0.5 / knots.size)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._values[np.searchsorted(self._bounds, x, side="right")]


def _as_values(values, name: str, what: str) -> np.ndarray:
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"stream {name!r}: {what} values must be numbers ({err})") from None
    if x.ndim > 1:
        raise ValueError(f"stream {name!r}: {what} values must be one-dimensional, got shape {x.shape}")
    return np.atleast_1d(x).copy() if x.ndim == 0 else x


def _positive(value, what: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"budget_split: {what} must be a number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"budget_split: {what} must be a finite number > 0, got {value!r}")
    return v


def _count(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"budget_split: {what} must be an integer >= 0, got {value!r}")
    return int(value)
