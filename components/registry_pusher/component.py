"""RegistryPusher component: wiring only."""
import json
from typing import Any, Dict, Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from driftguard.components.registry_pusher import executor
from driftguard.components.registry_pusher.spec import RegistryPusherSpec


class RegistryPusher(base_beam_component.BaseBeamComponent):
    """Copies a blessed model to ``<registry_dir>/<version>/`` (TF Serving layout) atomically.

    Beside the SavedModel, ``<version>/profile/`` holds what drift checks compare new data
    against: the training statistics, the schema (and its version), the evaluation metrics
    and the spans the model was trained on, and a uniform sample of at most
    ``reference_max_rows`` training rows (``reference_sample/``), which the DriftDetector
    compares new spans with. Unblessed models are never pushed.
    """

    SPEC_CLASS = RegistryPusherSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel,
                 schema: types.BaseChannel, statistics: types.BaseChannel,
                 evaluation: types.BaseChannel, examples: types.BaseChannel,
                 registry_dir: str, schema_version: int,
                 profile_extra: Optional[Dict[str, Any]] = None,
                 reference_max_rows: int = 100_000, require_approval: bool = False, model_spec=None,
                 rollout_mode: Optional[str] = None, registry_uri: Optional[str] = None):
        super().__init__(spec=RegistryPusherSpec(
            model=model, model_blessing=model_blessing, schema=schema, statistics=statistics,
            evaluation=evaluation, examples=examples, registry_dir=str(registry_dir),
            schema_version=int(schema_version),
            profile_extra_json=json.dumps(profile_extra or {}, sort_keys=True),
            reference_max_rows=int(reference_max_rows),
            require_approval=int(bool(require_approval)),
            model_spec_json=model_spec.to_json() if model_spec is not None else None,
            rollout_mode=rollout_mode or None,
            registry_uri=registry_uri or None,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel)))
