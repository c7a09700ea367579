"""Keys and spec of RegistryPusher, imported by both the component and the executor."""
from tfx import types
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

MODEL_KEY = "model"
MODEL_BLESSING_KEY = "model_blessing"
SCHEMA_KEY = "schema"
STATISTICS_KEY = "statistics"
EVALUATION_KEY = "evaluation"
EXAMPLES_KEY = "examples"
PUSHED_MODEL_KEY = "pushed_model"
REGISTRY_DIR_KEY = "registry_dir"
SCHEMA_VERSION_KEY = "schema_version"
PROFILE_EXTRA_KEY = "profile_extra_json"
REFERENCE_MAX_ROWS_KEY = "reference_max_rows"
REQUIRE_APPROVAL_KEY = "require_approval"
ROLLOUT_MODE_KEY = "rollout_mode"    # config `rollout.mode`: the new version becomes the `challenger` label
REGISTRY_URI_KEY = "registry_uri"    # config `registry` in object storage: registry_dir is then its local mirror
MODEL_SPEC_KEY = "model_spec_json"   # driftguard.components.model_io.ModelSpec: to score the reference sample


class RegistryPusherSpec(types.ComponentSpec):
    PARAMETERS = {
        REGISTRY_DIR_KEY: ExecutionParameter(type=str),
        SCHEMA_VERSION_KEY: ExecutionParameter(type=int),
        PROFILE_EXTRA_KEY: ExecutionParameter(type=str, optional=True),
        # rows of the training window kept as the drift baseline's reference sample
        REFERENCE_MAX_ROWS_KEY: ExecutionParameter(type=int, optional=True),
        # 1: a blessed model waits in <registry>/.pending/ for `driftguard approve`
        REQUIRE_APPROVAL_KEY: ExecutionParameter(type=int, optional=True),
        MODEL_SPEC_KEY: ExecutionParameter(type=str, optional=True),
        # shadow | canary: label a new version `challenger` and leave `champion` where it was
        ROLLOUT_MODE_KEY: ExecutionParameter(type=str, optional=True),
        # s3://bucket/prefix/<model_name>: publish there (components/registry_pusher/remote.py); unset: registry_dir
        REGISTRY_URI_KEY: ExecutionParameter(type=str, optional=True),
    }
    INPUTS = {
        MODEL_KEY: ChannelParameter(type=standard_artifacts.Model),
        MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing),
        SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
        STATISTICS_KEY: ChannelParameter(type=standard_artifacts.ExampleStatistics),
        EVALUATION_KEY: ChannelParameter(type=standard_artifacts.ModelEvaluation),
        EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {PUSHED_MODEL_KEY: ChannelParameter(type=standard_artifacts.PushedModel)}
