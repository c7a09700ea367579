"""driftguard.components.drift_detector.compare and its HTML page, on plain Arrow tables (no TFX run)."""
from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from driftguard.components.drift_detector.compare import compare_span, headline, no_baseline_report, serving_features
from driftguard.components.drift_detector.html import render_html
from helpers import DATA, REPO


@pytest.fixture(scope="module")
def schema():
    return text_format.Parse((REPO / "schemas/taxi/v1/schema.pbtxt").read_text(), schema_pb2.Schema())


@pytest.fixture(scope="module")
def window():
    return pa.concat_tables([pacsv.read_csv(DATA / f"span-{s}" / "data.csv") for s in (1, 2)])


def test_serving_features_leave_out_label_and_deprecated(schema):
    names = serving_features(schema)
    assert "tips" not in names                  # not_in_environment: SERVING
    assert "pickup_census_tract" not in names   # lifecycle_stage: DEPRECATED
    assert {"fare", "payment_type", "company", "trip_start_hour"} <= set(names)


def test_resample_of_the_window_does_not_drift_and_keeps_every_score(schema, window):
    rng = np.random.default_rng(5)
    current = window.take(pa.array(rng.integers(0, window.num_rows, 1500)))
    report = compare_span(window, current, serving_features(schema), exclude=["trip_start_timestamp"])
    assert report["drift_detected"] is False and headline(report) == "no drift"
    assert set(report["features"]) == set(serving_features(schema)) - {"trip_start_timestamp"}
    assert all("psi" in f["scores"] for f in report["features"].values())
    assert report["not_compared"] == {"trip_start_timestamp": "excluded by configuration"}


def test_gone_feature_type_change_and_new_feature(schema, window):
    current = window.drop(["payment_type"])
    hours = pa.array([f"{h}h" for h in current.column("trip_start_hour").to_pylist()])
    current = current.set_column(current.column_names.index("trip_start_hour"), "trip_start_hour", hours)
    current = current.append_column("surge", pa.array(np.ones(current.num_rows)))
    report = compare_span(window, current, serving_features(schema))
    assert report["drift_detected"] is True
    assert report["features"]["payment_type"]["reasons"] == ["missing_rate"]
    assert report["type_changes"] == {"trip_start_hour": "number in the reference, text in this span"}
    assert "trip_start_hour" not in report["features"]
    assert report["new_features"] == ["surge"]
    line = headline(report)
    assert "payment_type missing_rate_difference=1" in line and "trip_start_hour type changed" in line


def test_html_page_is_self_contained_and_escapes_names(schema, window):
    fare = pa.array(np.asarray(window.column("fare").to_pylist(), dtype=float) * 1.3)
    current = window.set_column(window.column_names.index("fare"), "fare", fare)
    current = current.append_column("<script>x</script>", pa.array(np.ones(current.num_rows)))
    report = compare_span(window, current, serving_features(schema), context={"span": 9, "baseline_version": 2,
                                                                               "baseline_spans": [1, 2],
                                                                               "schema_version": 1})
    html = render_html(report)
    assert re.search(r'id="verdict" class="verdict drift">DRIFT: fare psi=', html)
    assert "compared with model version 2" in html and "<b>fare</b>" in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html  # the new feature is listed, escaped
    assert "<script>" not in html and not re.search(r"https?://", html)


def test_no_baseline_report_is_explicit():
    report = no_baseline_report("/x/registry", {"span": 3})
    assert report["status"] == "no_baseline" and report["drift_detected"] is False
    assert "no baseline" in headline(report)
    assert "there is no baseline profile" in render_html(report)


def _scale_where(table, column, factor, where_column, value):
    hit = np.asarray(table.column(where_column).to_pylist(), dtype=object) == value
    values = np.asarray(table.column(column).to_pylist(), dtype=float)
    return table.set_column(table.column_names.index(column), column,
                            pa.array(np.where(hit, np.round(values * factor, 2), values)))


def test_slices_find_a_shift_in_one_payment_type_and_alerts_name_the_slice(schema, window):
    """drift.slices: the span's report has a slices block, the headline, the page and the alert
    name the slice; the whole span is tested at the rest of alpha (weighted Bonferroni)."""
    from driftguard.components.alerts import rules
    from driftguard.components.alerts.config import parse_alerts_config

    rng = np.random.default_rng(8)
    current = _scale_where(window.take(pa.array(rng.integers(0, window.num_rows, 4000))), "fare", 1.3,
                           "payment_type", "Credit Card")
    report = compare_span(window, current, serving_features(schema), exclude=["trip_start_timestamp"],
                          slices=[["payment_type"]], min_slice_rows=200, slice_alpha_share=0.5)
    sl = report["slices"]
    assert sl["drifted_slices"][0] == "payment_type=Credit Card" and report["drift_detected"] is True
    assert sl["alpha"] == pytest.approx(0.005) and sl["alpha_per_slice"] == pytest.approx(0.005 / sl["tested"])
    assert report["settings"]["alpha"] == pytest.approx(0.005)            # the whole span: the other half
    assert report["settings"]["multivariate_alpha"] == pytest.approx(0.005)
    [card] = [s for s in sl["slices"] if s["name"] == "payment_type=Credit Card"]
    assert card["drifted_features"][0] == "fare" and card["features"]["fare"]["drifted"] is True
    assert "slice payment_type=Credit Card" in headline(report)
    assert "payment_type=Credit Card" in sl["table"] and "DRIFT: fare" in sl["table"]
    page = render_html(report)
    assert 'id="slices"' in page and "payment_type=Credit Card" in page
    # with the monitor's performance per slice, the page shows it under the slices
    perf = {"metric": "accuracy", "alpha": 0.01, "min_rows": 200, "tested": 1, "alpha_per_slice": 0.01,
            "test": "Fisher's exact on errors", "worse_slices": ["payment_type=Cash"], "skipped": [],
            "slices": [{"name": "payment_type=Cash", "key": {"payment_type": "Cash"}, "realized": 0.81,
                        "baseline": 0.9, "relative_change": -0.1, "p_value": 0.001, "p_value_adjusted": 0.001,
                        "worse": True, "rows": {"reference_held_out": 400, "current": 700}}]}
    page = render_html(report, {"status": "monitored", "task": "binary", "performance_slices": perf})
    assert 'id="slice-performance"' in page and "WORSE" in page and "-10.0%" in page

    alerts = rules.evaluate(parse_alerts_config(None), model="taxi", span=9, drift_report=report)
    [slice_alert] = [a for a in alerts if a.rule == "slice_drift" and "Credit Card" in a.title]
    assert slice_alert.title.startswith("taxi span 9: drift in slice payment_type=Credit Card: fare psi=")
    assert slice_alert.dedup_key == "taxi/span-9/slice_drift/payment_type=Credit Card"
    assert slice_alert.labels["slice"] == "payment_type=Credit Card" and slice_alert.severity == "warning"


def test_slices_of_an_undrifted_span_raise_no_slice_alert(schema, window):
    from driftguard.components.alerts import rules
    from driftguard.components.alerts.config import parse_alerts_config

    rng = np.random.default_rng(9)
    current = window.take(pa.array(rng.integers(0, window.num_rows, 4000)))
    report = compare_span(window, current, serving_features(schema), exclude=["trip_start_timestamp"],
                          slices=[["payment_type"], ["trip_start_hour"]])
    assert report["slices"]["tested"] >= 2 and report["slices"]["drift_detected"] is False
    # an hour holds ~80 of the window's rows: too few to test, and said so
    assert any(k["name"].startswith("trip_start_hour=") and "fewer than 200" in k["reason"]
               for k in report["slices"]["skipped"])
    assert report["drift_detected"] is False and headline(report) == "no drift"
    alerts = rules.evaluate(parse_alerts_config(None), model="taxi", span=9, drift_report=report)
    assert [a for a in alerts if a.rule == "slice_drift"] == []


def test_a_slice_feature_in_neither_table_is_named(schema, window):
    with pytest.raises(ValueError, match="drift.slices names paymenttype, a feature in neither"):
        compare_span(window, window, serving_features(schema), slices=[["paymenttype"]])


def test_reference_strategy_is_named_in_headline_and_page(schema, window):
    rng = np.random.default_rng(5)
    current = window.take(pa.array(rng.integers(0, window.num_rows, 1500)))
    report = compare_span(window, current, serving_features(schema), exclude=["trip_start_timestamp"],
                          context={"span": 8, "span_label": "8", "baseline_version": 1})
    report["reference"] = {"strategy": "previous", "used": "previous", "spans": [7], "span_labels": ["7"],
                           "fallback": False, "message": "the previous span 7"}
    assert headline(report) == "no drift [vs the previous span 7]"
    assert 'id="reference"' in render_html(report) and "the previous span 7" in render_html(report)
    report["reference"] = {"strategy": "year_ago", "used": "training", "spans": [1, 2], "span_labels": ["1", "2"],
                           "fallback": True, "message": "no data a year before span 8 (span 4 is not in the data); "
                                                        "compared with the serving model's training window instead"}
    assert headline(report).endswith("[vs version 1's training window, as year_ago found no reference span]")
    assert "no data a year before span 8" in render_html(report)
    report["reference"] = {"strategy": "training", "used": "training", "spans": [1, 2]}
    assert headline(report) == "no drift"          # the default says nothing more than before
def test_joint_shift_reaches_the_report_the_headline_and_the_page(schema, window):
    """Trips of the latest months moved into mid-week afternoons: no marginal moves, the classifier sees it."""
    rng = np.random.default_rng(3)
    rows = rng.permutation(window.num_rows)  # two disjoint halves (rows in both tables would blind the classifier)
    reference, current = window.take(pa.array(rows[:rows.size // 2])), window.take(pa.array(rows[rows.size // 2:]))
    hour, day, month = (np.asarray(current.column(c).to_pylist()) for c in
                        ("trip_start_hour", "trip_start_day", "trip_start_month"))
    segment = np.flatnonzero((hour >= 10) & (hour <= 19) & (day >= 2) & (day <= 6))  # ~40% of the rows
    top = np.lexsort((rng.random(month.size), month))[-segment.size:]
    a, b = np.setdiff1d(segment, top), rng.permutation(np.setdiff1d(top, segment))
    for name, values in (("trip_start_hour", hour), ("trip_start_day", day)):
        moved = values.copy()
        moved[a], moved[b] = values[b], values[a]
        current = current.set_column(current.column_names.index(name), name, pa.array(moved))
    report = compare_span(reference, current, serving_features(schema), exclude=["trip_start_timestamp"])
    assert report["drifted_features"] == [] and report["drift_detected"] is True
    cls = report["classifier"]
    assert cls["drifted"] is True and cls["auc"] > 0.55
    assert {"trip_start_hour", "trip_start_month"} <= set(cls["explanation"]["separating_features"])
    assert "classifier AUC" in headline(report)
    html = render_html(report)
    assert 'id="classifier"' in html and 'id="classifier-segments"' in html
    assert re.search(r"trip_start_month &gt;= \d+", html)
