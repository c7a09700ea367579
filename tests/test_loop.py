"""The loop as a library (pipeline/loop.py), without TFX: what it says through its Reporter,
its errors, and the rows `driftguard status` reads (runs/state.json, written here as the loop
writes them; tests/test_span_check.py and tests/test_closed_loop.py run the real pipelines)."""
from __future__ import annotations

import json
import logging
import shutil

import pytest
from click.testing import CliRunner

from helpers import REPO, write_config
from driftguard.cli.main import main
from driftguard.pipeline import config, loop, state

REPLAYED_RUNS = REPO / "tests" / "reports" / "fixtures" / "runs"   # v1, v2 and spans 3-8 replayed


class Recorder(loop.Reporter):
    def __init__(self, log_file):
        self.events, self.log_file = [], log_file

    def say(self, text):
        self.events.append(("say", text))

    def note(self, text):
        self.events.append(("note", text))

    def step_log(self, step):
        self.events.append(("step_log", step))
        return self.log_file


@pytest.fixture
def replayed(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(REPLAYED_RUNS, runs)
    return config.load(write_config(tmp_path / "c.json", runs=str(runs)))


def test_replay_says_each_line_through_its_reporter(replayed, tmp_path):
    reporter = Recorder(tmp_path / "run.log")
    assert loop.replay(replayed, [3, 4, 5, 6, 7, 8], reporter=reporter) == []     # every span was done
    kinds = [k for k, _ in reporter.events]
    assert kinds == ["step_log", "say", "say", "say", "say", "say"], reporter.events
    texts = [t for _, t in reporter.events]
    assert texts[:4] == ["run", f"log: {tmp_path / 'run.log'}",
                         "serving taxi version 2 (trained on spans 5, 6, schema v2)",
                         "span(s) 3, 4, 5, 6, 7, 8 were already replayed (runs/state.json); nothing to do"]
    assert texts[4].startswith("\ndone in ") and f"serving:   version 2 -> {replayed.model_registry}" in texts[4]
    assert texts[5] == f"dashboard: {replayed.runs_path / 'reports' / 'index.html'}  (per-span pages beside it)"


def test_the_default_reporter_logs_what_the_loop_says(replayed, caplog):
    """An Airflow task or a KFP component gets the loop's lines in its log, and no log file of ours."""
    with caplog.at_level(logging.INFO, logger="driftguard.pipeline.loop"):
        loop.replay(replayed, [7, 8])
    said = [r.getMessage() for r in caplog.records if r.name == "driftguard.pipeline.loop"]
    assert said[0] == "serving taxi version 2 (trained on spans 5, 6, schema v2)"
    assert "span(s) 7, 8 were already replayed (runs/state.json); nothing to do" in said
    assert not (replayed.runs_path / "logs").exists()


def test_loop_errors_are_plain_and_the_command_prints_them(tmp_path):
    cfg_file = write_config(tmp_path / "c.json", runs=str(tmp_path / "runs"), schema_version=9)
    with pytest.raises(loop.LoopError, match=r"^schema version 9 not found \(config key schema_version\)"):
        loop.replay(config.load(cfg_file))
    with pytest.raises(loop.LoopError, match=r"^schema version 9 not found"):
        loop.train_spans(config.load(cfg_file), [1, 2])
    result = CliRunner().invoke(main, ["--config", str(cfg_file), "run"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: schema version 9 not found (config key schema_version)")
    assert not (tmp_path / "runs").exists()                 # refused before any work


# ---------------------------------------------------------------- status: the span checked last

def _row(span: int, outcome: str) -> dict:
    return {"span": span, "span_label": str(span), "drift": f"DRIFT: fare psi=0.{span}", "outcome": outcome,
            "alert_titles": [f"taxi span {span}: fare"], "blocking_anomalies": 0}


def _status(cfg) -> str:
    result = CliRunner().invoke(main, ["--config", str(cfg), "status"])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_status_follows_run_then_check_then_run(tmp_path):
    runs = tmp_path / "runs"
    cfg = write_config(tmp_path / "c.json", runs=str(runs))
    assert "last span checked: none" in _status(cfg)

    state.record_span(runs, _row(8, "no retraining (no critical alert)"))
    assert "last span checked: 8: DRIFT: fare psi=0.8; no retraining (no critical alert)" in _status(cfg)

    for span in (9, 10, 11):      # `driftguard check --span 9`, 10, 11
        state.record_check(runs, _row(span, "driftguard check: no retraining (no critical alert)"))
    out = _status(cfg)
    assert "last span checked: 11: DRIFT: fare psi=0.11; driftguard check: no retraining" in out, out
    assert "alerts of span 11:\n  taxi span 11: fare" in out
    assert state.checked_spans(runs) == [8]       # `run` still replays 9-11: a check does not train

    state.record_check(runs, _row(9, "driftguard check: no retraining (no critical alert)"))   # checked again
    assert "last span checked: 9: " in _status(cfg)

    state.record_span(runs, _row(9, "retrained on 8,9: pushed v2"))
    assert "last span checked: 9: DRIFT: fare psi=0.9; retrained on 8,9: pushed v2" in _status(cfg)
    info = json.loads(CliRunner().invoke(main, ["--config", str(cfg), "status", "--json"]).stdout)
    assert info["last_span"]["span"] == 9 and info["last_span"]["outcome"] == "retrained on 8,9: pushed v2"
    assert [r["span"] for r in state.load(runs)[state.CHECKS]] == [10, 11, 9]


def test_a_state_file_from_before_checks_were_recorded_still_reads(tmp_path):
    """runs/state.json written before `check` rows existed: the replay's last row."""
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / state.STATE_FILE).write_text(json.dumps({"spans": [_row(7, "a"), _row(8, "b")]}))
    assert state.last_row(runs)["span"] == 8
    assert state.checked_spans(runs) == [7, 8]
