"""The arithmetic of benchmarks/estimation_quality.py's tables, on a small hand-made state."""
from __future__ import annotations

import importlib.util
import math
import pathlib

import pytest

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "estimation_quality.py"
_spec = importlib.util.spec_from_file_location("estimation_quality", _PATH)
eq = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(eq)


def _row(span, estimated, realized, est_chg, real_chg, serving="v1", n=400, **extra):
    return {"span": span, "span_label": str(span), "metric": "accuracy", "estimated": estimated,
            "realized": realized, "baseline": 0.8, "estimated_reference": 0.82, "estimated_change": est_chg,
            "realized_change": real_chg, "labelled_rows": n, "serving": serving, **extra}


STATE = [
    # span 1: interval holds the realized value; both changes negative
    _row(1, 0.78, 0.80, -0.02, -0.01, estimated_low=0.76, estimated_high=0.81),
    # span 2: interval misses; signs disagree; the span retrains (serving after = v2), scored by v1
    _row(2, 0.70, 0.75, -0.05, 0.01, serving="v2", estimated_low=0.68, estimated_high=0.72,
         estimated_shift_aware=0.74, estimated_shift_aware_low=0.70, estimated_shift_aware_high=0.78),
    # span 3: today's state: no interval, no shift-aware key at all
    _row(3, 0.90, 0.90, 0.00, 0.03, serving="v2"),
    # no realized value yet: not scored against anything
    _row(4, 0.85, None, -0.01, None, serving="v2"),
]


def test_span_rows_errors_changes_and_scoring_version():
    rows = eq.span_rows(STATE)
    assert [r["span"] for r in rows] == ["1", "2", "3"]
    # without a monitor report the scoring version is the one serving before the span's decision
    assert [r["version"] for r in rows] == ["v1", "v1", "v2"]
    r1, r2, r3 = rows
    assert r1["error"] == pytest.approx(0.02) and r2["error"] == pytest.approx(0.05) and r3["error"] == 0
    assert r1["naive_error"] == pytest.approx(0.01) and r1["change_error"] == pytest.approx(0.01)
    assert r2["naive_error"] == pytest.approx(0.01) and r2["change_error"] == pytest.approx(0.06)
    assert (r1["covered"], r2["covered"], r3["covered"]) == (True, False, None)
    assert (r1["sign_agrees"], r2["sign_agrees"], r3["sign_agrees"]) == (True, False, False)
    assert r1["se"] == pytest.approx(math.sqrt(0.8 * 0.2 / 400))      # 0.02
    # shift-aware: level error, change against the realized baseline (0.74 - 0.8) / 0.8 = -7.5 %
    assert r2["sa_error"] == pytest.approx(0.01) and r2["sa_covered"] is True
    assert r2["sa_change"] == pytest.approx(-0.075) and r2["sa_change_error"] == pytest.approx(0.085)
    assert r1["shift_aware"] is None and r1["sa_error"] is None


def test_summary_and_targets():
    rows = eq.span_rows(STATE)
    s = eq.summarize(rows)
    assert s["spans"] == 3
    assert s["level_mae"] == pytest.approx((0.02 + 0.05 + 0) / 3)
    assert s["change_mae"] == pytest.approx((0.01 + 0.06 + 0.03) / 3)
    assert s["naive_mae"] == pytest.approx((0.01 + 0.01 + 0.03) / 3)
    assert s["change_mae_vs_baseline"] == pytest.approx((0.02 + 0.05 + 0) / 3 / 0.8)
    assert s["sign_agreement"] == pytest.approx(1 / 3)
    assert s["coverage"] == pytest.approx(0.5) and s["intervals"] == 2
    se = [math.sqrt(p * (1 - p) / 400) for p in (0.80, 0.75, 0.90)]
    assert s["sampling_error"] == pytest.approx(sum(se) / 3)
    t = s["targets"]
    assert t["level MAE <= sampling error"] == f"missed by {(s['level_mae'] - s['sampling_error']) * 100:.1f} pts"
    assert t["change MAE < naive"] == "missed by 1.67 (% of ref.)"
    assert t["coverage >= 90 %"] == "missed by 40 pts"

    sa = eq.summarize(rows, "shift-aware")
    assert sa["spans"] == 1 and sa["level_mae"] == pytest.approx(0.01) and sa["coverage"] == 1.0
    assert sa["targets"]["coverage >= 90 %"] == "met"
    assert sa["targets"]["change MAE < naive"] == "missed by 7.50 (% of ref.)"


def test_targets_met_and_missing_inputs():
    ok = {"level_mae": 0.005, "sampling_error": 0.009, "change_mae": 0.004, "naive_mae": 0.008, "coverage": 0.9}
    assert set(eq.targets(ok).values()) == {"met"}
    none = {"level_mae": 0.005, "sampling_error": None, "change_mae": None, "naive_mae": None, "coverage": None}
    assert eq.targets(none) == {"level MAE <= sampling error": "n/a (no sampling error)",
                                "change MAE < naive": "n/a", "coverage >= 90 %": "n/a (no interval)"}


def test_report_version_interval_and_mae_sampling_error():
    monitor = {"model_version": 3, "performance": {
        "metric": "mae", "realized": {"mae": 20.0, "rmse": 25.0},
        "estimated_interval": {"mae": [18.0, 23.0]}, "estimated_shift_aware": {"mae": 21.0}}}
    state = [{"span": 5, "metric": "mae", "estimated": 19.0, "realized": 20.0, "baseline": 18.0,
              "realized_change": 0.1, "estimated_change": 0.05, "labelled_rows": 900, "serving": "v4",
              "monitor": monitor}]
    [r] = eq.span_rows(state)
    assert r["version"] == "v3"                       # the report's scoring model, not the serving one
    assert (r["low"], r["high"], r["covered"]) == (18.0, 23.0, True)
    assert r["shift_aware"] == 21.0 and r["sa_low"] is None
    assert r["se"] == pytest.approx(math.sqrt(25.0 ** 2 - 20.0 ** 2) / 30)   # sd of |error| / sqrt(n) = 0.5
    assert eq.sampling_error("auc", 0.9, 900) is None


def test_tables_print_every_span_and_estimator():
    rows = eq.span_rows(STATE)
    spans = eq.span_table(rows)
    assert spans.count("\n| ") == 4 and "[76.0, 81.0]" in spans and "shift-aware" in spans
    summary = eq.summary_table(eq.summaries(rows), "accuracy")
    assert "CBPE/DLE (all spans)" in summary and "shift-aware (scored by v1)" in summary
    assert "50% of 2" in summary


def test_density_ratio_of_the_impact_section_is_a_third_estimator():
    impact = {"metric": "accuracy", "density_ratio": {"estimated": 0.77, "half_width_95": 0.02,
                                                      "relative_change": -0.0375, "reference": 0.8}}
    rows = eq.span_rows([_row(1, 0.78, 0.80, -0.02, -0.01, impact=impact),
                         _row(2, 0.70, 0.75, -0.05, 0.01, impact={"metric": "auc", "density_ratio": {"estimated": 0.6}})])
    r1, r2 = rows
    assert (r1["dr_value"], r1["dr_low"], r1["dr_high"]) == (0.77, pytest.approx(0.75), pytest.approx(0.79))
    assert r1["dr_error"] == pytest.approx(0.03) and r1["dr_covered"] is False
    assert r1["dr_change_error"] == pytest.approx(0.0275) and r1["dr_sign_agrees"] is True
    assert r2["dr_value"] is None                      # another metric's impact is not this estimate
    s = eq.summarize(rows, "density ratio (impact)")
    assert s["spans"] == 1 and s["coverage"] == 0.0 and s["targets"]["coverage >= 90 %"] == "missed by 90 pts"
    assert "density ratio (impact)" in eq.span_table(rows)
