"""SIGKILL during Trainer, Evaluator and the push: the next run resumes and completes, the
registry never holds a partial version, and the model is pushed exactly once.

One chain of real `driftguard train --spans 1,2` processes on a workspace of its own, each run
in its own process group and killed with SIGKILL (the whole group, Beam workers included):

1. killed while the Trainer runs
2. the rerun resumes (completed steps CACHED); killed while the Evaluator runs
3. the rerun is killed in the push with the version fully staged, before the publishing rename
4. the rerun is killed in the push after the rename, before MLMD records the push
5. the rerun completes, finds version 1 is already this model, and pushes nothing new

Where a step lands is read from MLMD (the target node's execution is RUNNING) and from the
registry folder, never from timing. The push windows are held open by the executor's test-only
hook DRIFTGUARD_FAULT_PAUSE_IN_PUSH (components/registry_pusher/executor.py).

Each test runs the steps up to its own (once per module, in order), so any one of them can be
selected alone with -k. Five TFX processes take ~8 min on 2 cores, over the budget of the default
`make test`: the chain is marked `faults` and runs with `make test-faults`.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import time
from typing import Dict, List, Optional

import pytest

from helpers import DATA, DRIFTGUARD, REPO, make_config, tree_digest, ws_data

PIPELINE = "taxi-training"
PAUSE_ENV = "DRIFTGUARD_FAULT_PAUSE_IN_PUSH"
# A hang guard, not a speed assertion: a run that never reaches its kill point fails here
# with its output instead of blocking the suite.
STEP_DEADLINE_S = 900
SUCCESS = ("COMPLETE", "CACHED")


# ---------------------------------------------------------------------------- MLMD reading

def run_states(metadata: pathlib.Path) -> Dict[str, Dict[str, object]]:
    """{node id: {"state", "id"}} for the newest pipeline run of the training pipeline."""
    from ml_metadata.proto import metadata_store_pb2

    from driftguard.pipeline.metadata import sqlite_location
    from driftguard.pipeline.runner import open_store

    if not metadata.exists():
        return {}
    store = open_store(sqlite_location(metadata))
    pipeline_ctx = store.get_context_by_type_and_name("pipeline", PIPELINE)
    if pipeline_ctx is None:
        return {}
    executions = store.get_executions_by_context(pipeline_ctx.id)
    if not executions:
        return {}
    newest = max(executions, key=lambda e: e.id)
    run_ctx = next(c for c in store.get_contexts_by_execution(newest.id)
                   if store.get_context_types_by_id([c.type_id])[0].name == "pipeline_run")
    states: Dict[str, Dict[str, object]] = {}
    for e in sorted(store.get_executions_by_context(run_ctx.id), key=lambda e: e.id):
        for c in store.get_contexts_by_execution(e.id):
            if c.name.startswith(PIPELINE + ".") and \
                    store.get_context_types_by_id([c.type_id])[0].name == "node":
                states[c.name[len(PIPELINE) + 1:]] = {
                    "state": metadata_store_pb2.Execution.State.Name(e.last_known_state),
                    "id": e.id}
    return states


def output_uri(metadata: pathlib.Path, execution_id: int, key: str) -> Optional[str]:
    from driftguard.pipeline.metadata import sqlite_location
    from driftguard.pipeline.runner import output_artifact

    artifact = output_artifact(sqlite_location(metadata), execution_id, key)
    return None if artifact is None else artifact.uri


def poll_states(metadata: pathlib.Path) -> Dict[str, Dict[str, object]]:
    """run_states, tolerating the moment the writer holds sqlite's lock."""
    try:
        return run_states(metadata)
    except Exception:  # noqa: BLE001 - a read racing the writer; the next poll retries
        return {}


# ---------------------------------------------------------------------------- registry checks

def assert_registry_whole(registry: pathlib.Path) -> List[int]:
    """Every <registry>/<n>/ is a complete version; return the version numbers."""
    from driftguard.components.registry_pusher.registry import existing_versions, read_profile

    versions = existing_versions(registry)
    for v in versions:
        d = registry / str(v)
        assert (d / "saved_model.pb").is_file(), f"version {v}: no saved_model.pb"
        assert (d / "variables" / "variables.index").is_file(), f"version {v}: no variables index"
        assert list((d / "variables").glob("variables.data-*")), f"version {v}: no variables data"
        profile = read_profile(registry, v)
        for key in ("schema_file", "training_statistics"):
            assert (d / profile[key]).is_file(), f"version {v}: profile names missing {profile[key]}"
        assert (d / profile["reference_sample"]["dir"] / "sample.parquet").is_file(), \
            f"version {v}: no reference sample"
        assert profile["spans"] == [1, 2] and profile["model_artifact"]["uri"]
    return versions


# ---------------------------------------------------------------------------- the chain

class Chain:
    """Runs the kill chain step by step, once, remembering what each step observed."""

    STEPS = ("trainer", "evaluator", "staged", "published", "final")

    def __init__(self, root: pathlib.Path):
        self.root = root
        data = ws_data(root)
        for s in (1, 2):  # the first 600 trips of the real spans 1-2: 1,200 rows
            (data / f"span-{s}").mkdir(parents=True)
            with open(DATA / f"span-{s}" / "data.csv") as src:
                head = [line for _, line in zip(range(601), src)]
            (data / f"span-{s}" / "data.csv").write_text("".join(head))
        shutil.copytree(REPO / "schemas" / "taxi", root / "schemas" / "taxi")
        # min_auc 0: every candidate is blessed, so the chain reaches the push whatever AUC a
        # few training steps give.
        self.config = make_config(root, "faults",
                                  training={"train_steps": 10, "eval_steps": 5},
                                  evaluation={"metrics": {"AUC": {"min": 0.0}}})
        self.metadata = root / "runs" / "metadata.sqlite"
        self.registry = root / "runs" / "serving" / "taxi"
        self.done: Dict[str, dict] = {}
        self.failed: Optional[str] = None

    # -- processes

    def _start(self, name: str, env: Optional[dict] = None) -> subprocess.Popen:
        out = open(self.root / f"{name}.out", "w")
        err = open(self.root / f"{name}.err", "w")
        cmd = DRIFTGUARD + ["--config", str(self.config), "train", "--spans", "1,2"]
        full_env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
        full_env.update(env or {})
        return subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=err, env=full_env,
                                start_new_session=True)  # own process group: killpg reaches all

    def output(self, name: str) -> str:
        return ((self.root / f"{name}.out").read_text() + "\n--- stderr ---\n"
                + (self.root / f"{name}.err").read_text())

    def _kill_when(self, name: str, proc: subprocess.Popen, reached, what: str) -> dict:
        deadline = time.monotonic() + STEP_DEADLINE_S
        while True:
            states = poll_states(self.metadata)
            if reached(states):
                break
            if proc.poll() is not None:
                raise AssertionError(f"run '{name}' ended (exit {proc.returncode}) before "
                                     f"{what}; MLMD: {states}\n{self.output(name)[-4000:]}")
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise AssertionError(f"run '{name}' did not reach {what} in {STEP_DEADLINE_S} s"
                                     f"\n{self.output(name)[-4000:]}")
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        return run_states(self.metadata)

    # -- steps

    def reach(self, step: str) -> dict:
        """Run every step up to ``step`` (once); return what ``step`` observed."""
        for s in self.STEPS[:self.STEPS.index(step) + 1]:
            if s in self.done:
                continue
            if self.failed:
                pytest.fail(f"step '{s}' needs step '{self.failed}', which failed")
            try:
                self.done[s] = getattr(self, "_" + s)()
            except BaseException:
                self.failed = s
                raise
        return self.done[step]

    def _running(self, node):
        return lambda st: st.get(node, {}).get("state") == "RUNNING"

    def _trainer(self) -> dict:
        proc = self._start("trainer")
        return {"states": self._kill_when("trainer", proc, self._running("Trainer"),
                                          "Trainer RUNNING"), "name": "trainer"}

    def _evaluator(self) -> dict:
        proc = self._start("evaluator")
        return {"states": self._kill_when("evaluator", proc, self._running("Evaluator"),
                                          "Evaluator RUNNING"), "name": "evaluator"}

    def _staged(self) -> dict:
        proc = self._start("staged", env={PAUSE_ENV: "staged:600"})
        staging = self.registry / ".staging"

        def fully_staged(states):
            return (self._running("RegistryPusher")(states) and staging.is_dir()
                    and any((d / "profile" / "profile.json").is_file() for d in staging.iterdir()))

        states = self._kill_when("staged", proc, fully_staged,
                                 "a fully staged version (RegistryPusher paused before publishing)")
        return {"states": states, "name": "staged"}

    def _published(self) -> dict:
        proc = self._start("published", env={PAUSE_ENV: "published:600"})

        def published(states):
            return self._running("RegistryPusher")(states) and (self.registry / "1").is_dir()

        states = self._kill_when("published", proc, published,
                                 "version 1 renamed into place (RegistryPusher paused after it)")
        return {"states": states, "name": "published", "digest": tree_digest(self.registry / "1")}

    def _final(self) -> dict:
        proc = self._start("final")
        proc.wait(timeout=STEP_DEADLINE_S)
        return {"states": run_states(self.metadata), "name": "final",
                "returncode": proc.returncode}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return Chain(tmp_path_factory.mktemp("kill"))


def assert_resumed(chain: Chain, step: dict, completed: List[str]) -> None:
    """The run resumed the killed one: it said so, and ``completed`` nodes succeeded in it."""
    text = chain.output(step["name"])
    assert "the previous training run was interrupted" in text and "resuming it" in text, text[-3000:]
    states = step["states"]
    for node in completed:
        assert states[node]["state"] in SUCCESS, (node, states)
    cached = [n for n, s in states.items() if s["state"] == "CACHED"]
    assert {"ExampleGen", "StatisticsGen", "Transform"} <= set(cached), states


# ---------------------------------------------------------------------------- tests

def test_only_staging_of_dead_processes_on_this_host_is_removed(tmp_path):
    """What a killed push leaves in .staging is removed; a live push's folder is kept."""
    import socket
    import sys

    from driftguard.components.registry_pusher.registry import (existing_versions, new_staging_dir,
                                                     remove_stale_staging)

    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                            capture_output=True, text=True, check=True)
    host = socket.gethostname()
    staging = tmp_path / ".staging"
    dead = staging / f"{host}--{int(exited.stdout)}--a1"
    alive = staging / f"{host}--{os.getppid()}--b2"      # pytest's parent: running
    mine = new_staging_dir(tmp_path)                       # this process, mid-push
    elsewhere = staging / f"other-host--{int(exited.stdout)}--c3"  # cannot check: kept
    for d in (dead, alive, mine, elsewhere):
        (d / "variables").mkdir(parents=True)
        (d / "saved_model.pb").write_bytes(b"partial")
    assert existing_versions(tmp_path) == []  # readers never see staged folders
    assert remove_stale_staging(tmp_path) == [dead]
    assert sorted(p.name for p in staging.iterdir()) == sorted(
        [alive.name, mine.name, elsewhere.name])


@pytest.mark.tfx
@pytest.mark.faults
def test_killed_in_trainer_leaves_no_version(chain):
    step = chain.reach("trainer")
    assert step["states"]["Trainer"]["state"] == "RUNNING", step["states"]  # killed in it
    assert step["states"]["Transform"]["state"] == "COMPLETE"
    assert "Evaluator" not in step["states"]
    assert assert_registry_whole(chain.registry) == []


@pytest.mark.tfx
@pytest.mark.faults
def test_rerun_resumes_and_killed_in_evaluator_leaves_no_version(chain):
    step = chain.reach("evaluator")
    assert_resumed(chain, step, ["Transform", "Trainer"])
    assert step["states"]["Trainer"]["state"] == "COMPLETE"  # trained anew: run 1 never finished
    assert step["states"]["Evaluator"]["state"] == "RUNNING", step["states"]
    assert "RegistryPusher" not in step["states"]
    assert assert_registry_whole(chain.registry) == []


@pytest.mark.tfx
@pytest.mark.faults
def test_killed_in_push_before_publish_leaves_only_ignored_staging(chain):
    from driftguard.components.registry_pusher.registry import existing_versions

    step = chain.reach("staged")
    assert_resumed(chain, step, ["Trainer", "Evaluator"])
    # The model the previous run trained is reused, not retrained.
    assert step["states"]["Trainer"]["state"] == "CACHED", step["states"]
    assert step["states"]["RegistryPusher"]["state"] == "RUNNING"
    assert assert_registry_whole(chain.registry) == []
    leftovers = list((chain.registry / ".staging").iterdir())
    assert len(leftovers) == 1 and (leftovers[0] / "saved_model.pb").is_file()
    assert existing_versions(chain.registry) == []  # readers never see the staged copy


@pytest.mark.tfx
@pytest.mark.faults
def test_killed_after_publish_rename_leaves_one_whole_version(chain):
    step = chain.reach("published")
    assert_resumed(chain, step, ["Trainer"])
    assert step["states"]["RegistryPusher"]["state"] == "RUNNING", step["states"]
    assert assert_registry_whole(chain.registry) == [1]
    # The killed push's staged folder is gone: this push removed it before staging its own.
    assert list((chain.registry / ".staging").iterdir()) == []


@pytest.mark.tfx
@pytest.mark.faults
def test_final_rerun_completes_and_the_model_is_pushed_exactly_once(chain):
    from driftguard.components.registry_pusher.registry import read_profile

    evaluator_step = chain.reach("evaluator")
    published = chain.reach("published")
    step = chain.reach("final")
    text = chain.output("final")
    assert step["returncode"] == 0, text[-4000:]
    assert "resuming it" in text
    assert "pushed taxi version 1" in text, text[-3000:]
    # MLMD, not the exit code, says the run completed: every node COMPLETE or CACHED.
    expected = {"ExampleGen", "StatisticsGen", "ExampleValidator", "ImportSchemaGen", "AnomalyGate",
                "Transform", "Trainer", "latest_blessed_model_resolver",
                "Evaluator", "RegistryPusher"}
    states = step["states"]
    assert set(states) == expected, states
    assert all(s["state"] in SUCCESS for s in states.values()), states
    pusher_id = states["RegistryPusher"]["id"]
    from driftguard.pipeline.runner import output_artifact

    from driftguard.pipeline.metadata import sqlite_location

    store = sqlite_location(chain.metadata)
    pushed = output_artifact(store, pusher_id, "pushed_model")
    assert pushed.custom_properties["pushed"].int_value == 1
    assert pushed.custom_properties["pushed_version"].int_value == 1

    # Exactly one version, untouched since the killed push published it, holding the model
    # the Trainer of run 2 trained (every later run reused it).
    assert assert_registry_whole(chain.registry) == [1]
    assert tree_digest(chain.registry / "1") == published["digest"]
    model_uri = output_uri(chain.metadata, evaluator_step["states"]["Trainer"]["id"], "model")
    assert read_profile(chain.registry, 1)["model_artifact"]["uri"] == model_uri
    assert list((chain.registry / ".staging").iterdir()) == []
    # Nothing is left to resume: the next run would start afresh.
    from driftguard.pipeline.runner import interrupted_nodes

    assert interrupted_nodes(store, PIPELINE) == []
    assert json.loads((chain.registry / "1" / "profile" / "profile.json").read_text())["spans"] == [1, 2]
