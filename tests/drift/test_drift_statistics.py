"""Each statistic on hand-computed examples, against scipy.stats where it has one, and the doctests."""
import doctest
import importlib
import math
import pkgutil

import numpy as np
import pytest
from scipy import stats

import driftguard.components.drift as drift
from driftguard.components.drift import (bin_counts, category_bins, chi_square, hellinger, holm, jensen_shannon, ks, linf,
                              missing_rate, normalized_wasserstein, psi, quantile_edges, spearman, unseen_categories,
                              wasserstein)
from driftguard.components.drift._distributions import chi2_sf, fisher_exact_two_sided, ks_two_sample_sf
from driftguard.components.drift.categorical import _unseen_tail
from driftguard.components.drift.numeric import cliffs_delta

# Every module of the package but the click command (cli.py: no examples; tests/drift/test_drift_cli.py
# runs it): each carries doctests, so a module whose examples vanished fails here too.
MODULES = sorted(m.name for m in pkgutil.iter_modules(drift.__path__) if m.name != "cli")


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(f"driftguard.components.drift.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0, f"driftguard.components.drift.{name} has no doctest"
    assert result.failed == 0


# --- histogram distances, by hand ------------------------------------------------------------------

def test_psi_by_hand():
    # p = (.5, .5), q = (.4, .6): (.4-.5) ln(.4/.5) + (.6-.5) ln(.6/.5)
    expected = -0.1 * math.log(0.8) + 0.1 * math.log(1.2)
    assert psi([50, 50], [40, 60], smoothing=0) == pytest.approx(expected, rel=1e-12)
    assert psi([3, 7], [3, 7]) == 0.0
    assert psi([10, 0], [5, 5], smoothing=0) == math.inf


def test_psi_jeffreys_smoothing_by_hand():
    # empty reference bin: p = (10.5/11, 0.5/11), q = (5.5/11, 5.5/11)
    p, q = np.array([10.5, 0.5]) / 11, np.array([5.5, 5.5]) / 11
    assert psi([10, 0], [5, 5]) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)


def test_psi_is_symmetric_and_scale_free():
    assert psi([10, 20, 70], [30, 30, 40]) == pytest.approx(psi([30, 30, 40], [10, 20, 70]))
    assert psi([10, 20, 70], [30, 30, 40], smoothing=0) == pytest.approx(psi([1, 2, 7], [3, 3, 4], smoothing=0))


def test_jensen_shannon_by_hand():
    assert jensen_shannon([1, 0], [0, 1]) == 1.0
    assert jensen_shannon([5, 5], [5, 5]) == 0.0
    # p = (1, 0), q = (.5, .5), m = (.75, .25): 1/2 [ln(4/3)] + 1/2 [.5 ln(2/3) + .5 ln 2], in bits
    nats = 0.5 * math.log(1 / 0.75) + 0.5 * (0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25))
    expected = nats / math.log(2)
    assert jensen_shannon([2, 0], [1, 1]) == pytest.approx(expected, rel=1e-12)
    from scipy.spatial.distance import jensenshannon
    assert jensen_shannon([3, 1, 6], [2, 2, 2]) == pytest.approx(jensenshannon([3, 1, 6], [2, 2, 2], base=2) ** 2)


def test_hellinger_and_linf_by_hand():
    # 1 - (sqrt(.5*.4) + sqrt(.5*.6))
    assert hellinger([50, 50], [40, 60]) == pytest.approx(math.sqrt(1 - math.sqrt(0.2) - math.sqrt(0.3)), rel=1e-12)
    assert hellinger([1, 0], [0, 1]) == 1.0
    assert linf([66, 34], [56, 44]) == pytest.approx(0.10)
    assert linf([1, 1, 2], [1, 1, 2]) == 0.0


def test_chi_square_matches_scipy_and_merges_sparse_bins():
    r = chi_square([50, 50], [40, 60])
    expected = stats.chi2_contingency([[50, 50], [40, 60]], correction=False)
    assert (r.statistic, r.p_value, r.dof) == (pytest.approx(expected[0]), pytest.approx(expected[1]), expected[2])
    assert r.cramers_v == pytest.approx(math.sqrt(expected[0] / 200))
    # 61 sparse categories: small bins are pooled until every expected count is >= 5
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(61, 0.3))
    ref, cur = rng.multinomial(300, p), rng.multinomial(300, p)
    merged = chi_square(ref, cur, ordered=False)
    assert merged.n_bins < 61
    assert chi_square([10, 0, 0], [0, 0, 10], min_expected=0).statistic == 20.0
    assert chi_square([5], [7]).p_value == 1.0


@pytest.mark.parametrize("bad", [[-1, 2], [np.nan, 1], [0, 0], []])
def test_distances_reject_bad_counts(bad):
    for fn in (psi, jensen_shannon, hellinger, linf, chi_square):
        with pytest.raises(ValueError, match="reference counts"):
            fn(bad, [1] * max(len(bad), 1))


def test_distances_reject_mismatched_bins():
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2, 3], [1, 2])


# --- tests on raw values vs scipy -----------------------------------------------------------------

def test_ks_wasserstein_cliffs_match_scipy():
    rng = np.random.default_rng(3)
    x, y = np.round(rng.lognormal(2, 0.6, 300), 1), np.round(rng.lognormal(2.1, 0.6, 400), 1)
    assert ks(x, y).statistic == pytest.approx(stats.ks_2samp(x, y).statistic)
    assert wasserstein(x, y) == pytest.approx(stats.wasserstein_distance(x, y))
    u = stats.mannwhitneyu(y, x).statistic
    assert cliffs_delta(x, y) == pytest.approx(2 * u / (300 * 400) - 1)
    assert normalized_wasserstein(x, y) == pytest.approx(wasserstein(x, y) / np.mean(np.abs(x - np.median(x))))


def test_ks_p_value_is_close_to_exact_and_conservative_in_the_tail():
    rng = np.random.default_rng(1)
    for n, m in [(100, 100), (500, 700), (2000, 2000)]:
        for shift in (0.0, 0.1, 0.2, 0.3):
            x, y = rng.normal(size=n), rng.normal(shift, size=m)
            exact = stats.ks_2samp(x, y, method="exact").pvalue
            ours = ks(x, y).p_value
            assert abs(ours - exact) < 0.02
            if exact < 0.05:
                assert ours >= exact


def test_special_functions_match_scipy():
    assert chi2_sf(7.3, 3) == pytest.approx(stats.chi2.sf(7.3, 3))
    for table in ([[8, 2], [1, 5]], [[0, 500], [3, 497]], [[3000, 97000], [3300, 96700]]):
        (a, b), (c, d) = table
        assert fisher_exact_two_sided(a, b, c, d) == pytest.approx(stats.fisher_exact(table).pvalue, rel=1e-6)
    assert ks_two_sample_sf(0.0, 10, 10) == 1.0


def test_missing_rate():
    r = missing_rate(0, 2000, 200, 2000)
    assert (r.rate_reference, r.rate_current, r.difference) == (0.0, 0.1, 0.1)
    assert r.p_value == pytest.approx(stats.fisher_exact([[0, 2000], [200, 1800]]).pvalue, rel=1e-6)
    with pytest.raises(ValueError, match="missing_reference"):
        missing_rate(-1, 10, 0, 10)


# --- binning ------------------------------------------------------------------------------------------

def test_quantile_edges_sit_between_values_and_dedupe_atoms():
    assert quantile_edges([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], n_bins=5).tolist() == [2.5, 4.5, 6.5, 8.5]
    tips = [0.0] * 68 + list(np.linspace(1, 10, 32))  # 68% zeros
    edges = quantile_edges(tips)
    assert edges[0] == pytest.approx((0 + 1) / 2) and len(edges) < 9
    v = 4.0
    assert quantile_edges([v, v, v]).tolist() == [np.nextafter(v, -np.inf), v]
    assert bin_counts([3.9, 4.0, 4.1], quantile_edges([v, v, v])).tolist() == [1, 1, 1]


def test_tiny_shift_of_an_atom_stays_in_its_bin():
    fares = np.repeat([3.25, 5.45, 6.05, 7.85, 9.65, 12.45, 18.25], 100)
    edges = quantile_edges(fares)
    assert bin_counts(fares, edges).tolist() == bin_counts(fares * 1.003, edges).tolist()


def test_category_bins_pool_rare_and_unseen():
    labels, ref, cur = category_bins({"Cash": 60, "Credit Card": 39, "Dispute": 1},
                                     {"Cash": 50, "Credit Card": 40, "Mobile": 10}, min_share=0.05)
    assert labels == ["Cash", "Credit Card", "__other__"]
    assert ref.tolist() == [60, 39, 1] and cur.tolist() == [50, 40, 10]


# --- unseen categories ----------------------------------------------------------------------------

def _brute_force_unseen_tail(totals, n_ref, n_cur, observed):
    """P(U >= observed) by enumerating every subset of independent Bernoulli(q_c)."""
    from driftguard.components.drift._distributions import hypergeom_logpmf
    q = [math.exp(float(hypergeom_logpmf(0, n_ref + n_cur, t, n_ref))) for t in totals]
    total = 0.0
    for mask in range(1 << len(totals)):
        bits = [(mask >> i) & 1 for i in range(len(totals))]
        if sum(t for t, b in zip(totals, bits) if b) >= observed:
            total += math.prod(qc if b else 1 - qc for qc, b in zip(q, bits))
    return total


@pytest.mark.parametrize("observed", [1, 3, 5, 8])
def test_unseen_tail_is_exact(observed):
    totals = np.array([1, 1, 2, 3, 5, 40])
    assert _unseen_tail(totals, 30, 25, observed) == pytest.approx(
        _brute_force_unseen_tail(totals.tolist(), 30, 25, observed), rel=1e-9)


def test_unseen_categories_flags_a_new_frequent_value_only():
    ref = {"Cash": 1300, "Credit Card": 680, "No Charge": 15, "Unknown": 5}
    new = unseen_categories(ref, {"Cash": 1240, "Credit Card": 650, "No Charge": 10, "Mobile": 100})
    assert new.share == 0.05 and new.categories == ("Mobile",) and new.p_value < 1e-20
    rare = unseen_categories(ref, {"Cash": 1320, "Credit Card": 660, "No Charge": 19, "Prcard": 1})
    assert rare.share == 0.0005 and rare.p_value > 0.3


# --- multiple testing and correlations --------------------------------------------------------------

def test_holm_matches_hand_computation():
    # sorted p: .01*3 = .03, max(.03, .04*2) = .08, max(.08, .5) = .5
    assert holm([0.5, 0.01, 0.04]).tolist() == pytest.approx([0.5, 0.03, 0.08])


def test_spearman_matches_scipy_with_ties_and_has_right_null_se():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 7, 500).astype(float)
    y = x + rng.integers(0, 5, 500)
    assert spearman(x, y).rho == pytest.approx(stats.spearmanr(x, y).statistic, rel=1e-9)
    r = spearman(rng.normal(size=4000), rng.normal(size=4000))
    assert r.se * math.sqrt(4000) == pytest.approx(1.0, abs=0.05)


def test_fine_chi_square_test_is_bonferroni_combined_and_keeps_coarse_gaps():
    from driftguard.components.drift import compare_numeric
    rng = np.random.default_rng(12)
    ref, cur = np.round(rng.lognormal(1, 1, 3000), 1), np.round(rng.lognormal(1, 1, 3000), 1)
    both = compare_numeric(ref, cur)
    alone = compare_numeric(ref, cur, fine_test_bins=0)
    p20, p50 = (t["p_value"] for t in both.details["chi_square_tests"])
    # with the rank test on the finest bins (the 50 bins, or the 20 bins alone), Bonferroni over all tests
    assert len(alone.details["chi_square_tests"]) == 1 and alone.details["rank_test"]["bins"] <= 20
    assert alone.p_values["chi_square"] == min(1.0, 2 * min(p20, alone.details["rank_test"]["p_value"]))
    assert both.details["rank_test"]["bins"] == both.details["chi_square_tests"][1]["bins"]
    assert both.p_values["chi_square"] == min(1.0, 3 * min(p20, p50, both.details["rank_test"]["p_value"]))
    assert both.scores == alone.scores  # the effect sizes do not change
    # the 50 bins' edges sit in the gaps of the 20-bin grid: a value moved by 0.3% stays in its bin
    fine = quantile_edges(ref, 50, gap_bins=20)
    coarse_grid = np.unique(np.quantile(ref, np.arange(1, 200) / 200, method="inverted_cdf"))
    assert np.all(np.searchsorted(coarse_grid, fine) > 0)
    assert np.array_equal(quantile_edges(ref, 20, gap_bins=20), quantile_edges(ref, 20))


def test_edges_leave_tight_clusters_but_not_atoms_one_unit_apart():
    rng = np.random.default_rng(5)
    # a smooth spread plus a cluster holding 6% of the values within 4 units of 1e-5 (GPS stops at one address)
    spread = np.round(rng.uniform(44.90, 45.05, 9400), 5)
    cluster = np.round(44.9484 + rng.integers(0, 5, 600) * 1e-5, 5)
    values = np.concatenate([spread, cluster])
    for k, gap_bins in [(10, None), (20, None), (50, 20)]:
        edges = quantile_edges(values, k, gap_bins=gap_bins)
        assert not np.any((edges > 44.9484) & (edges < 44.94845)), (k, edges)
        moved = bin_counts(values + 1e-5, edges) - bin_counts(values, edges)
        assert np.abs(moved).max() <= 0.1 * values.size / k, (k, moved)
    hours = rng.integers(0, 24, 5000).astype(float)  # atoms one unit apart: every edge halfway, as before
    assert np.all(np.mod(quantile_edges(hours, 20), 1.0) == 0.5)


def test_binned_rank_test_is_mann_whitney_on_the_binned_values():
    from driftguard.components.drift.numeric import binned_rank_test
    rng = np.random.default_rng(8)
    a, b = rng.integers(0, 7, 300), rng.integers(1, 8, 200)
    expected = stats.mannwhitneyu(b, a, use_continuity=False, method="asymptotic")
    got = binned_rank_test(np.bincount(a, minlength=8), np.bincount(b, minlength=8))
    assert got.p_value == pytest.approx(expected.pvalue, rel=1e-9) and got.statistic > 0
    assert binned_rank_test([0, 7], [0, 3]) == (0.0, 1.0)  # every value in one bin


def test_rank_test_adds_power_for_a_location_shift(monkeypatch):
    from driftguard.components.drift import compare_numeric, numeric
    rng = np.random.default_rng(21)
    with_rank, without = [], []
    for _ in range(20):  # a score moving by a fifth of its spread, 1,000 rows per side
        ref, cur = np.round(rng.normal(50, 10, 1000), 1), np.round(rng.normal(52, 10, 1000), 1)
        with_rank.append(compare_numeric(ref, cur).p_values["chi_square"])
        monkeypatch.setattr(numeric, "RANK_TEST", False)
        without.append(compare_numeric(ref, cur).p_values["chi_square"])
        monkeypatch.setattr(numeric, "RANK_TEST", True)
    level = 0.01 / 16  # Holm's first step over 16 checks
    assert sum(p <= level for p in with_rank) >= sum(p <= level for p in without) + 5, (with_rank, without)


def test_winsorized_t_test_matches_scipy_on_the_clipped_values():
    from driftguard.components.drift.numeric import winsorized_t_test
    rng = np.random.default_rng(11)
    x = np.round(rng.standard_t(3, 700), 1)  # heavy tails and ties
    y = np.round(rng.standard_t(3, 500) + 0.2, 1)
    values, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
    ref, cur = np.bincount(inverse[:x.size], minlength=values.size), np.bincount(inverse[x.size:], minlength=values.size)
    pooled = np.sort(np.concatenate([x, y]))
    k = int(0.1 * pooled.size)
    low, high = pooled[k], pooled[pooled.size - 1 - k]
    expected = stats.ttest_ind(np.clip(y, low, high), np.clip(x, low, high), equal_var=False)
    got = winsorized_t_test(values, ref, cur, 0.1)
    assert got.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert got.p_value == pytest.approx(expected.pvalue, rel=1e-7)
    clipped = np.clip(pooled, low, high)
    assert got.shift == pytest.approx((np.clip(y, low, high).mean() - np.clip(x, low, high).mean()) / clipped.std(ddof=1))
    assert winsorized_t_test([1.0, 2.0], [5, 0], [3, 0]).p_value == 1.0  # every value equal
    with pytest.raises(ValueError, match="share"):
        winsorized_t_test([1.0], [2], [2], 0.5)


@pytest.mark.parametrize("shape", ["heavy-tailed on a grid", "three atoms", "zero-inflated"])
def test_winsorized_t_test_holds_its_level_on_tied_and_skewed_data(shape):
    """Clipping points from the pooled sample: a t-test on a transform that ignores which sample a value came
    from, so its level holds with atoms at the clipping points (a trimmed-mean test assumes none)."""
    from driftguard.components.drift.numeric import winsorized_t_test
    rng = np.random.default_rng(5)

    def draw(n):
        if shape == "heavy-tailed on a grid":
            return np.round(rng.standard_t(2, n), 1)
        if shape == "three atoms":
            return rng.choice([0.0, 1.0, 2.0], n, p=[0.1, 0.8, 0.1])  # the clipping points fall on the atoms
        return np.where(rng.random(n) < 0.6, 0.0, rng.lognormal(1, 1.5, n))

    p = []
    for _ in range(2000):
        x, y = draw(300), draw(200)
        values, inverse = np.unique(np.concatenate([x, y]), return_inverse=True)
        p.append(winsorized_t_test(values, np.bincount(inverse[:300], minlength=values.size),
                                   np.bincount(inverse[300:], minlength=values.size)).p_value)
    rate = np.mean(np.array(p) <= 0.05)
    # 2,000 trials, a standard error of 0.005: never above 5% + 3 se, and not much below (measured 3.4-5.2%)
    assert 0.02 <= rate <= 0.065, rate
