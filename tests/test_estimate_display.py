"""Where the estimate's interval and the shift-aware estimate are shown: the CLI row of a span,
the span's drift report page (no TFX)."""
from driftguard.components.drift_detector.compare import no_baseline_report
from driftguard.components.drift_detector.html import render_html
from driftguard.pipeline.loop import metric_text

PERF = {"task": "binary", "metric": "accuracy", "realized": {"accuracy": 0.914}, "baseline": {"accuracy": 0.896},
        "estimated": {"accuracy": 0.894}, "estimated_reference": {"accuracy": 0.906},
        "estimated_interval": {"accuracy": [0.877, 0.911]},
        "estimated_shift_aware": {"accuracy": 0.889}, "estimated_shift_aware_interval": {"accuracy": [0.869, 0.909]},
        "shift_aware": {"method": "shift-aware ...", "effective_sample_size": 412.0},
        "estimator": "CBPE (isotonic one-vs-rest calibration on held-out reference rows)"}


def test_the_cli_row_shows_the_interval_and_the_shift_aware_estimate():
    row = {"model_status": "monitored", "task": "binary", "metric": "accuracy", "realized": 0.914,
           "realized_change": 0.02, "baseline": 0.896, "estimated": 0.894, "estimated_change": -0.013,
           "estimated_low": 0.877, "estimated_high": 0.911, "estimated_shift_aware": 0.889,
           "estimated_shift_aware_low": 0.869, "estimated_shift_aware_high": 0.909}
    text = metric_text(row)
    assert "estimated 0.894 [0.877, 0.911] (-1.3%)" in text
    assert "shift-aware 0.889 [0.869, 0.909]" in text
    # a row of an earlier driftguard (no interval) reads as before
    old = {k: v for k, v in row.items() if "low" not in k and "high" not in k and "shift" not in k}
    assert metric_text(old).endswith("estimated 0.894 (-1.3%)")


def test_the_span_page_shows_the_interval_and_the_shift_aware_estimate():
    report = {**no_baseline_report("/x/registry", {"span": 3}), "status": "compared", "features": {},
              "rows": {"reference": {"rows": 100, "sampled_rows": 100}, "current": {"rows": 100, "sampled_rows": 100}}}
    page = render_html(report,
                       {"status": "monitored", "task": "binary", "performance": PERF})
    assert "95 % interval 87.7% to 91.1%" in page
    assert "shift-aware 88.9% (86.9% to 90.9%), ESS 412" in page
