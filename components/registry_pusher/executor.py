"""RegistryPusher executor: blessed model + profile -> ``<registry>/<version>/``, atomically.

Layout of one version (TF Serving reads the numeric folder; it ignores ``profile/``)::

    <registry>/<version>/saved_model.pb
    <registry>/<version>/variables/...
    <registry>/<version>/profile/profile.json          # spans, schema version, metrics, lineage
    <registry>/<version>/profile/schema.pbtxt
    <registry>/<version>/profile/training_statistics/  # TFDV DatasetFeatureStatisticsList
    <registry>/<version>/profile/eval_metrics.json
    <registry>/<version>/profile/reference_sample/     # <= N training rows (Parquet), the drift baseline
    <version>/profile/feature_importance.json  # permutation importance on the labelled held-out rows

A version folder is assembled under ``<registry>/.staging/`` and renamed into place in one
``os.rename``, so a reader (or a crash) never sees a partial version. Pushing the same model
artifact twice finds the existing version and does not create a second one.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
import pathlib
import shutil
import time
from typing import Dict

from tfx.components.evaluator import constants as evaluator_constants
from tfx.dsl.components.base import base_beam_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import path_utils

from driftguard.components import artifact_dirs
from driftguard.components.artifacts import example_spans
from driftguard.components.registry_pusher import spec

from driftguard.components import model_io
from driftguard.components.registry_pusher import remote
from driftguard.components.examples_io import examples_split_patterns, read_sample, sample_examples, write_sample
from driftguard.components.registry_pusher.registry import (
    IMPORTANCE_FILE, PROFILE_DIR, PROFILE_FILE, REFERENCE_SAMPLE_DIR, STATS_FILE, find_pending_of_model,
    find_version_of_model, fsync_tree, hold_for_approval, new_staging_dir, publish_version,
    remove_stale_staging)
from driftguard.components.registry_pusher.labels import label_new_version, pin_champion

# Test-only fault hook (tests/faults/test_kill_during_pipeline.py), documented in the README:
# DRIFTGUARD_FAULT_PAUSE_IN_PUSH=staged:<seconds> sleeps once the version is fully staged, before
# the publishing rename; =published:<seconds> sleeps right after the rename, before TFX records
# the push in MLMD. A test SIGKILLs the process in that window. Unset (production): nothing.
FAULT_PAUSE_ENV = "DRIFTGUARD_FAULT_PAUSE_IN_PUSH"
FAULT_PAUSE_WINDOWS = ("staged", "published")


def fault_pause(window: str, detail: str) -> None:
    value = os.environ.get(FAULT_PAUSE_ENV, "").strip()
    if not value:
        return
    where, _, seconds_text = value.partition(":")
    try:
        seconds = float(seconds_text)
    except ValueError:
        seconds = -1.0
    if where not in FAULT_PAUSE_WINDOWS or seconds < 0:
        raise ValueError(f"{FAULT_PAUSE_ENV} must be <window>:<seconds> with window one of "
                         f"{', '.join(FAULT_PAUSE_WINDOWS)}, got {value!r}")
    if where == window:
        logging.warning("%s: pausing %.1f s %s", FAULT_PAUSE_ENV, seconds, detail)
        time.sleep(seconds)


def is_blessed(blessing) -> bool:
    return (blessing.has_custom_property(evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY)
            and blessing.get_int_custom_property(
                evaluator_constants.ARTIFACT_PROPERTY_BLESSED_KEY)
            == evaluator_constants.BLESSED_VALUE)


def overall_metrics(evaluation_uri: str) -> Dict[str, Dict[str, float]]:
    """Overall-slice metrics per model ('candidate', 'baseline') and their diffs."""
    import tensorflow_model_analysis as tfma

    result: Dict[str, Dict[str, float]] = {}
    for per_slice in tfma.load_metrics(evaluation_uri):
        if per_slice.slice_key.single_slice_keys:
            continue
        for kv in per_slice.metric_keys_and_values:
            which = kv.key.model_name or "candidate"
            if kv.key.is_diff:
                which = f"{which}_diff"
            if kv.value.HasField("double_value"):
                metrics = result.setdefault(which, {})
                if kv.key.name in metrics:
                    raise ValueError(
                        f"evaluation {evaluation_uri} has two overall '{kv.key.name}' metrics "
                        f"for {which}; metric names must be unique (is "
                        f"include_default_metrics off?)")
                metrics[kv.key.name] = kv.value.double_value.value
    return result


def merge_statistics(stats_artifacts, window: str):
    """One DatasetFeatureStatisticsList holding every split of the training window, each
    dataset named ``spans <window>/<split>`` (what TFDV's visualizations show as its name)."""
    from tensorflow_metadata.proto.v0 import statistics_pb2
    from tfx.components.statistics_gen import stats_artifact_utils

    merged = statistics_pb2.DatasetFeatureStatisticsList()
    for artifact in stats_artifacts:
        for split in artifact_utils.decode_split_names(artifact.split_names):
            stats = stats_artifact_utils.load_statistics(artifact, split).proto()
            for dataset in stats.datasets:
                copy = merged.datasets.add()
                copy.CopyFrom(dataset)
                copy.name = f"spans {window}/{split}"
    return merged


def feature_importance(predictor, model_spec, sample, schema_file, primary=None) -> Dict:
    """The version's permutation importance (``driftguard.components.impact.importance``) of the
    schema's serving features on the sample's labelled held-out rows, for every metric of the
    task; ``primary``: the metric the span checks weigh drift with (the config's watched one)."""
    from driftguard.components.impact.importance import permutation_importance

    label = model_io.labels_of(sample, model_spec)
    if label is None:
        return {"status": "not_computed", "note": "no importance: the reference sample has no labels"}
    rows = model_io.held_out_rows(sample)
    features = [f for f in model_io.serving_features(model_io.read_schema(schema_file))
                if f in sample.column_names and f != model_spec.label_column]
    started = time.monotonic()
    importance = permutation_importance(sample.filter(rows), label[rows],
                                        lambda table: predictor.predict_table(table).value, model_spec.task,
                                        features, rows_note=model_io.held_out_note(sample))
    importance["seconds"] = round(time.monotonic() - started, 2)
    if primary in importance.get("metrics", {}):
        importance["primary"] = primary
    logging.info("permutation importance of %d features on %s rows in %.1f s", len(features),
                 importance.get("rows"), importance["seconds"])
    return importance


class Executor(base_beam_executor.BaseBeamExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:
        model = artifact_utils.get_single_instance(input_dict[spec.MODEL_KEY])
        blessing = artifact_utils.get_single_instance(input_dict[spec.MODEL_BLESSING_KEY])
        pushed = artifact_utils.get_single_instance(output_dict[spec.PUSHED_MODEL_KEY])
        registry = pathlib.Path(exec_properties[spec.REGISTRY_DIR_KEY])
        bucket = exec_properties.get(spec.REGISTRY_URI_KEY) or None
        if bucket:
            # an object-storage registry: registry_dir is its local mirror; bring it up to date so
            # a model already published (by this run before a kill, or elsewhere) is found below
            remote.sync(bucket, registry)

        if not is_blessed(blessing):
            logging.warning("model %s is not blessed by the Evaluator; nothing is pushed",
                            model.uri)
            pushed.set_int_custom_property("pushed", 0)
            return

        # A push killed mid-copy leaves its staged folder behind; readers never look in
        # .staging, and the next push on this host removes folders whose process is gone.
        for stale in remove_stale_staging(registry):
            logging.warning("removed %s, left by a push that was killed", stale)
        existing = find_version_of_model(registry, model.uri)
        if existing is not None:
            logging.info("model %s is already version %d; not pushing it again", model.uri,
                         existing)
            self._mark_pushed(pushed, registry, existing, bucket or "")
            return

        approval = bool(int(exec_properties.get(spec.REQUIRE_APPROVAL_KEY) or 0))
        if approval:
            candidate = find_pending_of_model(registry, model.uri)
            if candidate is not None:
                logging.info("model %s already waits for approval as %s", model.uri, candidate)
                self._mark_pending(pushed, candidate)
                return

        registry.mkdir(parents=True, exist_ok=True)
        staged = new_staging_dir(registry)
        try:
            artifact_dirs.copy_tree(path_utils.serving_model_path(model.uri), staged)   # a path or s3://
            profile_dir = staged / PROFILE_DIR
            profile_dir.mkdir()
            self._write_profile(profile_dir, input_dict, exec_properties, model, blessing)
            fsync_tree(staged)
            fault_pause("staged", f"with {staged} staged, before publishing it")
            rollout_mode = exec_properties.get(spec.ROLLOUT_MODE_KEY) or None
            pin_champion(registry, rollout_mode)
            if approval:
                candidate = hold_for_approval(registry, staged)
                logging.info("model %s waits for approval as candidate %s", model.uri, candidate)
                self._mark_pending(pushed, candidate)
                return
            if bucket:
                # no rename in object storage: claim a number, upload, write the marker last
                version = remote.publish_version(bucket, staged)
                remote.add_to_mirror(registry, version, staged)
            else:
                version = publish_version(registry, staged)
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        # The version number is the folder name, decided by the rename; the profile does not
        # repeat it, so nothing has to be rewritten after the rename.
        logging.info("pushed model %s as %s", model.uri, f"{bucket}/{version}" if bucket else registry / str(version))
        # Killed from here on, the version is published but MLMD says the push is RUNNING: the
        # resumed run reuses the same model artifact and find_version_of_model finds it.
        fault_pause("published", f"after publishing {registry / str(version)}")
        # A kill before this line leaves the version unlabelled: the resumed run finds it by model
        # URI and does not label it (it cannot tell a label never written from one moved since).
        version_labels = label_new_version(registry, version, rollout_mode)
        if version_labels:
            logging.info("version %d is labelled %s", version, ", ".join(version_labels))
            pushed.set_string_custom_property("version_labels", ",".join(version_labels))
        self._mark_pushed(pushed, registry, version, bucket or "")

    @staticmethod
    def _mark_pending(pushed, candidate: str) -> None:
        pushed.set_int_custom_property("pushed", 0)
        pushed.set_string_custom_property("pending_candidate", candidate)

    @staticmethod
    def _mark_pushed(pushed, registry: pathlib.Path, version: int, bucket: str = "") -> None:
        pushed.set_int_custom_property("pushed", 1)
        pushed.set_string_custom_property("pushed_destination", f"{bucket}/{version}" if bucket
                                          else str(registry / str(version)))
        pushed.set_int_custom_property("pushed_version", version)

    def _write_profile(self, profile_dir: pathlib.Path, input_dict, exec_properties, model,
                       blessing) -> None:
        schema_uri = artifact_utils.get_single_uri(input_dict[spec.SCHEMA_KEY])
        schema_files = [n for n in fileio.listdir(schema_uri) if n.endswith(".pbtxt")]
        fileio.copy(os.path.join(schema_uri, schema_files[0]), str(profile_dir / "schema.pbtxt"))
        read = example_spans(input_dict[spec.EXAMPLES_KEY])     # the training window
        stats_dir = profile_dir / "training_statistics"
        stats_dir.mkdir()
        merged = merge_statistics(input_dict[spec.STATISTICS_KEY], read.text)
        (stats_dir / STATS_FILE).write_bytes(merged.SerializeToString())
        evaluation_uri = artifact_utils.get_single_uri(input_dict[spec.EVALUATION_KEY])
        metrics = overall_metrics(evaluation_uri)
        (profile_dir / "eval_metrics.json").write_text(json.dumps(metrics, indent=1,
                                                                  sort_keys=True))
        spans = read.spans
        sample_dir = str(profile_dir / REFERENCE_SAMPLE_DIR)
        max_rows = int(exec_properties.get(spec.REFERENCE_MAX_ROWS_KEY) or 100_000)
        with self._make_beam_pipeline() as pipeline:
            # rows tagged with their split: the eval split is held out (model_io.Baseline.held_out)
            write_sample(sample_examples(pipeline, examples_split_patterns(input_dict[spec.EXAMPLES_KEY]),
                                         max_rows), sample_dir)
        sample, sample_summary = read_sample(sample_dir)
        extra = json.loads(exec_properties.get(spec.PROFILE_EXTRA_KEY) or "{}")
        if exec_properties.get(spec.MODEL_SPEC_KEY):
            # The model's outputs on its reference rows, once: every span check and the live
            # monitor compare with them (and calibrate their estimates on the held-out ones).
            model_spec = model_io.ModelSpec.from_json(exec_properties[spec.MODEL_SPEC_KEY])
            predictor = model_io.Predictor(profile_dir.parent, model_spec)
            predictions = predictor.predict_table(sample)
            model_io.write_predictions(sample_dir, predictions)
            importance = feature_importance(predictor, model_spec, sample, profile_dir / "schema.pbtxt",
                                            primary=extra.get("metric"))
            (profile_dir / IMPORTANCE_FILE).write_text(json.dumps(importance, indent=1, sort_keys=True))
        profile = {
            "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "spans": spans,
            "span_labels": [read.label(s) for s in spans],
            "schema_version": int(exec_properties[spec.SCHEMA_VERSION_KEY]),
            "schema_file": f"{PROFILE_DIR}/schema.pbtxt",
            "training_statistics": f"{PROFILE_DIR}/training_statistics/{STATS_FILE}",
            "eval_metrics": metrics,
            "reference_sample": {"dir": f"{PROFILE_DIR}/{REFERENCE_SAMPLE_DIR}",
                                 "rows": sample_summary["rows"],
                                 "sampled_rows": sample_summary["sampled_rows"]},
            "model_artifact": {"id": model.id, "uri": model.uri},
            "blessing_artifact": {"id": blessing.id, "uri": blessing.uri},
            **extra,
        }
        if exec_properties.get(spec.ROLLOUT_MODE_KEY):
            # `driftguard approve` labels a held candidate by the rollout configured at its push
            profile["rollout_mode"] = exec_properties[spec.ROLLOUT_MODE_KEY]
        (profile_dir / PROFILE_FILE).write_text(json.dumps(profile, indent=1, sort_keys=True))
