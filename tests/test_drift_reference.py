"""Reference strategies (components/drift_detector/reference.py, drift.reference): which spans
a check compares with, resolved from the spans the data holds; no TFX."""
from __future__ import annotations

import pytest

from driftguard.components.drift_detector.reference import (ReferenceConfigError, ReferenceSettings, available_spans,
                                                            describe, resolve_reference, span_files, year_ago)
from driftguard.components.spans import SpanPattern
from driftguard.pipeline import config as config_lib
from helpers import REPO

MONTHS = SpanPattern("{YYYY}-{MM}/*.parquet")
DAYS = SpanPattern("{YYYY}-{MM}-{DD}/*.csv")


def _resolve(strategy, current, available, unit="span", **kw):
    return resolve_reference(ReferenceSettings(strategy, **kw), current, available, unit)


def test_training_window_is_the_default_and_resolves_nothing():
    choice = resolve_reference(ReferenceSettings(), 7, [1, 2, 3, 7], "span")
    assert (choice.strategy, choice.used, choice.spans, choice.fallback) == ("training", "training", (), False)


def test_previous_is_the_newest_span_before_skipping_gaps_and_later_spans():
    assert _resolve("previous", 7, [1, 2, 6, 7, 8, 9]).spans == (6,)
    gap = _resolve("previous", 7, [1, 2, 4, 7])
    assert gap.spans == (4,) and "2 span(s) in between hold no data" in gap.message


def test_previous_of_the_first_span_falls_back_to_the_training_window():
    choice = _resolve("previous", 1, [1, 2, 3])
    assert choice.used == "training" and choice.fallback and choice.spans == ()
    assert "span 1 is the first span the data holds" in choice.message
    assert "compared with the serving model's training window instead" in choice.message


def test_rolling_window_takes_the_n_spans_before_and_says_when_it_is_short():
    assert _resolve("rolling", 9, list(range(1, 12)), spans=3).spans == (6, 7, 8)
    short = _resolve("rolling", 3, [1, 2, 3], spans=4)
    assert short.spans == (1, 2) and not short.fallback and "2 of the 4" in short.message
    first = _resolve("rolling", 1, [1, 2], spans=4)
    assert first.fallback and first.used == "training"


def test_year_ago_on_calendar_spans():
    may_2014 = MONTHS.number("2014-05")
    choice = resolve_reference(ReferenceSettings("year_ago"), may_2014, [MONTHS.number(x) for x in
                               ("2013-04", "2013-05", "2014-04", "2014-05")], MONTHS.unit, label=MONTHS.label)
    assert choice.spans == (MONTHS.number("2013-05"),) and "2013-05" in choice.message
    assert year_ago(SpanPattern("{YYYY}/*").number("2014"), "year") == SpanPattern("{YYYY}/*").number("2013")
    # daily spans: the same calendar date; 29 February compares with 28 February
    leap = DAYS.number("2016-02-29")
    assert DAYS.label(year_ago(leap, "day")) == "2015-02-28"
    assert DAYS.label(year_ago(DAYS.number("2016-03-01"), "day")) == "2015-03-01"


def test_year_ago_on_numbered_spans_needs_a_period():
    assert _resolve("year_ago", 9, range(1, 10), period=4).spans == (5,)
    with pytest.raises(ReferenceConfigError, match="period is needed"):
        year_ago(9, "span")


def test_no_data_a_year_earlier_falls_back_and_names_the_missing_span():
    cur = MONTHS.number("2014-05")
    choice = resolve_reference(ReferenceSettings("year_ago"), cur, [MONTHS.number("2014-04"), cur], MONTHS.unit,
                               label=MONTHS.label)
    assert choice.fallback and choice.used == "training" and choice.wanted == (MONTHS.number("2013-05"),)
    assert "no data a year before span 2014-05 (span 2013-05 is not in the data)" in choice.message
    assert choice.to_dict(MONTHS.label)["missing"] == ["2013-05"]
    # a year before the first span number: nothing to name
    early = _resolve("year_ago", 2, [1, 2], period=4)
    assert early.fallback and early.wanted == ()


def test_describe_says_what_was_used():
    ctx = {"baseline_version": 2, "baseline_span_labels": ["5", "6"]}
    assert describe({"used": "training", "strategy": "training"}, ctx) == "version 2's training window (spans 5, 6)"
    assert describe(_resolve("previous", 8, [7, 8]).to_dict(), ctx) == "the previous span 7"
    assert describe(_resolve("rolling", 8, range(1, 9), spans=2).to_dict(), ctx) == "spans 6, 7 (rolling window)"
    fell = describe(_resolve("previous", 1, [1]).to_dict(), ctx)
    assert fell == "version 2's training window (spans 5, 6), as previous found no reference span"


def test_settings_are_checked_and_errors_name_the_key():
    for settings, unit, match in [
        (ReferenceSettings("latest"), "span", r"drift\.reference\.strategy must be one of training, previous"),
        (ReferenceSettings("previous", spans=3), "span", r"drift\.reference\.spans is the length of a rolling"),
        (ReferenceSettings("rolling", spans=0), "span", r"drift\.reference\.spans must be an integer in 1\.\.64"),
        (ReferenceSettings("year_ago"), "span", r"drift\.reference\.period is needed for strategy year_ago"),
        (ReferenceSettings("year_ago", period=12), "month", r"drift\.reference\.period applies to plain numbered"),
        (ReferenceSettings("previous", period=4), "span", r"drift\.reference\.period \(spans per year\) is for"),
    ]:
        with pytest.raises(ReferenceConfigError, match=match):
            settings.validate("drift.reference", unit)
    ReferenceSettings("year_ago").validate("drift.reference", "month")      # calendar spans know their year


def _config(tmp_path, drift, pattern=None):
    import yaml

    data = yaml.safe_load((REPO / "examples/taxi/driftguard.yaml").read_text())
    data["drift"] = {**(data.get("drift") or {}), **drift}
    if pattern:
        data["data"] = {**data["data"], "pattern": pattern}
        data.pop("first_spans", None), data.pop("replay_spans", None)
    return config_lib._from_mapping(config_lib.Config, data).validate()


def test_config_reads_reference_and_slices(tmp_path):
    cfg = _config(tmp_path, {"reference": {"strategy": "rolling", "spans": 3}, "slices": [["payment_type"]],
                             "min_slice_rows": 300})
    assert cfg.drift.reference == ReferenceSettings("rolling", spans=3)
    assert cfg.drift.slices == (("payment_type",),) and cfg.drift.min_slice_rows == 300
    assert _config(tmp_path, {}).drift.reference == ReferenceSettings()          # default: training window
    with pytest.raises(config_lib.ConfigError, match=r"^drift\.reference\.period is needed"):
        _config(tmp_path, {"reference": {"strategy": "year_ago"}})               # span-{SPAN}: no calendar
    assert _config(tmp_path, {"reference": {"strategy": "year_ago"}},
                   pattern="{YYYY}-{MM}/*.csv").drift.reference.strategy == "year_ago"
    with pytest.raises(config_lib.ConfigError, match=r"unknown config key 'drift\.reference\.window'"):
        _config(tmp_path, {"reference": {"strategy": "rolling", "window": 3}})
    with pytest.raises(config_lib.ConfigError, match=r"drift\.slices\[0\] must be a non-empty list"):
        _config(tmp_path, {"slices": [[]]})
    with pytest.raises(config_lib.ConfigError, match=r"drift\.min_slice_rows must be between"):
        _config(tmp_path, {"min_slice_rows": 1})
    with pytest.raises(config_lib.ConfigError, match=r"drift\.slice_alpha_share must be between"):
        _config(tmp_path, {"slice_alpha_share": 0})


def test_spans_and_files_on_disk(tmp_path):
    for s in (1, 2, 4):
        (tmp_path / f"span-{s}").mkdir()
        (tmp_path / f"span-{s}" / "data.csv").write_text("a\n1\n")
    assert available_spans(tmp_path, "span-{SPAN}/*", ["span-{SPAN}/*"]) == [1, 2, 4]
    assert available_spans(tmp_path / "none", "span-{SPAN}/*", []) == []
    assert span_files(tmp_path, "span-{SPAN}/*", [], [2, 4]) == [str(tmp_path / "span-2" / "data.csv"),
                                                               str(tmp_path / "span-4" / "data.csv")]
    with pytest.raises(ValueError, match=r"reference span 3: no file matches .*span-3/\*"):
        span_files(tmp_path, "span-{SPAN}/*", [], [3])


def test_doctests():
    import doctest

    from driftguard.components.drift_detector import reference

    result = doctest.testmod(reference)
    assert result.attempted > 0 and result.failed == 0


def test_the_loop_resolves_the_reference_before_any_work(tmp_path):
    """`driftguard check` resolves drift.reference up front (to validate the reference spans'
    files and say what it compares with), as the DriftDetector does when it runs."""
    from driftguard.pipeline import loop

    for s in (1, 2, 5):
        (tmp_path / f"span-{s}").mkdir()
        (tmp_path / f"span-{s}" / "data.csv").write_text("a\n1\n")
    cfg = _config(tmp_path, {"reference": {"strategy": "rolling", "spans": 2}})
    choice = loop.reference_choice(cfg, 5, data_root=tmp_path)
    assert choice.spans == (1, 2) and choice.message == "the 2 spans before span 5 (1, 2)"
    assert loop.reference_choice(_config(tmp_path, {}), 5, data_root=tmp_path).spans == ()
