"""The training pipeline, run for real (LocalDagRunner / BeamDagRunner) on small spans."""
from __future__ import annotations

import json
import pathlib

import pytest

from helpers import make_config, run_cli, runs_of, tree_digest

pytestmark = pytest.mark.tfx


def node_executions(metadata: pathlib.Path, node_id: str, pipeline: str = "taxi-training"):
    """MLMD executions of one pipeline node, oldest first."""
    from driftguard.pipeline.metadata import sqlite_location
    from driftguard.pipeline.runner import open_store

    store = open_store(sqlite_location(metadata))
    ctx = store.get_context_by_type_and_name("node", f"{pipeline}.{node_id}")
    if ctx is None:
        return []
    return sorted(store.get_executions_by_context(ctx.id), key=lambda e: e.id)


def test_the_run_left_no_tfx_package_in_its_temporary_folder(first_push):
    """TFX's Beam executors build a ~50 MB sdist of TFX in a fresh temporary folder at every
    start, never removed; the local runner skips it (pipeline/beam_staging.py)."""
    assert first_push["proc"].returncode == 0
    left = sorted(str(p.relative_to(first_push["tmpdir"])) for p in first_push["tmpdir"].glob("*/build"))
    assert left == [], left


def test_first_run_pushes_version_1_with_profile(first_push):
    proc, registry = first_push["proc"], first_push["registry"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pushed taxi version 1" in proc.stdout
    assert "no blessed baseline yet" in proc.stdout
    version = registry / "1"
    # TF Serving layout: <model>/<version>/saved_model.pb + variables/
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables" / "variables.index").is_file()
    assert sorted(p.name for p in registry.iterdir() if not p.name.startswith(".")) == ["1"]
    assert not any((registry / ".staging").iterdir()), "a staged push was left behind"

    profile = json.loads((version / "profile" / "profile.json").read_text())
    assert profile["spans"] == [1, 2]
    assert profile["schema_version"] == 2
    assert profile["eval_metrics"]["candidate"]["auc"] >= 0.7
    assert profile["eval_metrics"]["candidate"]["example_count"] > 100
    assert "baseline" not in profile["eval_metrics"]
    schema_text = (version / "profile" / "schema.pbtxt").read_text()
    assert 'name: "payment_type"' in schema_text
    # the reference sample keeps each row's split (the eval rows are held out) and the model's
    # predictions on it, scored once at push with the serving signature
    import numpy as np
    import pyarrow.parquet as pq

    sample = pq.read_table(version / "profile" / "reference_sample" / "sample.parquet")
    splits = sample.column("__split__").to_pylist()
    assert set(splits) == {"train", "eval"} and len(splits) == 884 + 1078
    with np.load(version / "profile" / "reference_sample" / "predictions.npz") as p:
        assert str(p["task"]) == "binary" and p["value"].shape == (884 + 1078,)
        assert ((p["value"] >= 0) & (p["value"] <= 1)).all()

    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList()
    stats.ParseFromString((version / profile["training_statistics"]).read_bytes())
    names = sorted(d.name for d in stats.datasets)
    assert names == ["spans 1, 2/eval", "spans 1, 2/train"]     # one ExampleGen reads the window
    assert sum(d.num_examples for d in stats.datasets) == 884 + 1078
    assert {"fare", "payment_type", "tips"} <= {f.path.step[0] for f in stats.datasets[0].features}

    # Every node of the run completed, as recorded in MLMD (not inferred from the runner).
    metadata = runs_of(first_push["config"]) / "metadata.sqlite"
    for node in ("Transform", "Trainer", "Evaluator", "RegistryPusher"):
        states = [e.last_known_state for e in node_executions(metadata, node)]
        assert states and states[0] == 3, (node, states)  # 3 = COMPLETE


def test_pushed_model_serves_predictions(first_push):
    """The registry version is a working SavedModel: raw tf.Examples in, probabilities out."""
    import pandas as pd
    import tensorflow as tf

    assert first_push["proc"].returncode == 0
    model = tf.saved_model.load(str(first_push["registry"] / "1"))
    serve = model.signatures["serving_default"]
    rows = pd.read_csv(pathlib.Path(__file__).parent.parent / "data/taxi/span-3/data.csv").head(50)
    examples = []
    for _, row in rows.drop(columns=["tips"]).iterrows():  # serving requests carry no label
        feats = {}
        for k, v in row.items():
            if pd.isna(v):
                continue
            if isinstance(v, str):
                feats[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
            elif k.startswith("trip_start_") and float(v).is_integer():
                feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
            else:
                feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(v)]))
        examples.append(tf.train.Example(features=tf.train.Features(feature=feats))
                        .SerializeToString())
    probs = serve(examples=tf.constant(examples))["probabilities"].numpy().ravel()
    assert probs.shape == (50,)
    assert ((probs >= 0) & (probs <= 1)).all()
    # The label is learnable: cash trips (no recorded tips) score lower than card trips.
    cash = (rows["payment_type"] == "Cash").to_numpy()
    assert probs[cash].mean() < probs[~cash].mean()


def test_worse_candidate_is_not_pushed(first_push, workspace):
    """Trained on shuffled labels: evaluated against blessed v1, not blessed, registry intact."""
    assert first_push["proc"].returncode == 0
    registry = first_push["registry"]
    before = tree_digest(registry)
    cfg = make_config(workspace, "shuffled", training={"window_spans": 1})
    proc = run_cli("train", "--spans", "3", config=cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "candidate NOT blessed" in proc.stdout
    assert "blessed baseline" in proc.stdout and "no blessed baseline" not in proc.stdout
    assert "nothing was pushed; serving stays at version 1" in proc.stdout
    assert tree_digest(registry) == before

    metadata = workspace / "runs" / "metadata.sqlite"
    evals = node_executions(metadata, "Evaluator")
    assert len(evals) == 2
    from driftguard.components.registry_pusher.executor import overall_metrics
    from driftguard.pipeline.metadata import sqlite_location
    from driftguard.pipeline.runner import output_artifact

    evaluation = output_artifact(sqlite_location(metadata), evals[-1].id, "evaluation")
    metrics = overall_metrics(evaluation.uri)
    assert "baseline" in metrics, "the candidate was not compared with the blessed model"
    # The gate's numbers are TFMA's, one per name: candidate - baseline is the recorded diff.
    assert metrics["candidate_diff"]["auc"] == pytest.approx(
        metrics["candidate"]["auc"] - metrics["baseline"]["auc"], abs=1e-6)
    assert metrics["candidate"]["auc"] < 0.7
    blessing = output_artifact(sqlite_location(metadata), evals[-1].id, "blessing")
    assert blessing.custom_properties["blessed"].int_value == 0


def test_change_threshold_rejects_a_worse_model_on_beam_runner(first_push, workspace):
    """Only the change threshold gates here (min_auc 0): an untrained candidate loses to v1.

    Runs on BeamDagRunner, so both runners are exercised.
    """
    assert first_push["proc"].returncode == 0
    registry = first_push["registry"]
    before = tree_digest(registry)
    cfg = make_config(workspace, "untrained", evaluation={"metrics": {"AUC": {"min": 0.0, "baseline_tolerance": 0.01}}},
                      training={"train_steps": 1, "custom_config": {"learning_rate": 1e-6}})
    proc = run_cli("train", "--spans", "1,2", "--runner", "beam", config=cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "runner beam" in proc.stderr
    assert "candidate NOT blessed" in proc.stdout, proc.stdout
    assert "below the baseline" in proc.stdout
    assert tree_digest(registry) == before


def test_bad_spans_stop_before_training_and_name_the_problem(first_push, workspace):
    """Wrong type (span 5): refused before any work, by span, column and line. Missing column
    (span 4) and out-of-domain category (span 6): the AnomalyGate stops the window."""
    assert first_push["proc"].returncode == 0
    registry = first_push["registry"]
    before = tree_digest(registry)
    metadata = workspace / "runs" / "metadata.sqlite"
    transforms_before = len(node_executions(metadata, "Transform"))
    trainers_before = len(node_executions(metadata, "Trainer"))
    executions_before = len(node_executions(metadata, "ExampleGen"))

    cfg = make_config(workspace, "bad", training={"window_spans": 3})
    proc = run_cli("train", "--spans", "4,5,6", config=cfg)
    assert proc.returncode == 2, proc.stdout
    assert "span 5" in proc.stderr and "'trip_start_hour' is INT in the schema but holds text" in proc.stderr
    assert "line 2" in proc.stderr, proc.stderr
    assert len(node_executions(metadata, "ExampleGen")) == executions_before      # no TFX run

    proc = run_cli("train", "--spans", "4,6", config=cfg)
    assert proc.returncode == 2, proc.stdout
    err = proc.stderr
    assert "failed at AnomalyGate" in err
    assert "nothing was pushed" in err
    lines = [ln for ln in err.splitlines() if ln.strip().startswith("spans 4, 6")]
    assert any("'payment_type'" in ln and "missing" in ln.lower() for ln in lines), err
    assert any("'payment_type'" in ln and "Bitcoin" in ln for ln in lines), err
    assert tree_digest(registry) == before
    assert len(node_executions(metadata, "Transform")) == transforms_before
    assert len(node_executions(metadata, "Trainer")) == trainers_before


def test_run_again_on_the_same_spans_does_not_push_a_duplicate(first_push, workspace):
    assert first_push["proc"].returncode == 0
    registry = first_push["registry"]
    before = tree_digest(registry)
    # nothing to replay: `run` must find version 1 and neither train nor push again
    cfg = make_config(workspace, "rerun", first_spans=[1, 2], replay_spans=[])
    proc = run_cli("run", config=cfg)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "serving taxi version 1 (trained on spans 1, 2, schema v2)" in proc.stdout
    assert "no spans to replay" in proc.stdout and "training" not in proc.stdout
    assert tree_digest(registry) == before
