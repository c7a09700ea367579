# driftguard's image for Kubeflow Pipelines v2 / Vertex AI (and any container runner):
# the TFX 1.16 image (TensorFlow, TFX, TFDV, TFMA, Beam, the KFP v2 entrypoint) plus this
# project, installed as a package so every executor path in the compiled spec
# (components.<name>.executor.Executor, driftguard.pipeline.taxi_model.run_fn) imports.
#
#   docker build -t REGISTRY/driftguard:tfx-1.16.0 .
#   docker push REGISTRY/driftguard:tfx-1.16.0
#   driftguard compile --target kubeflow --output build/kfp --image REGISTRY/driftguard:tfx-1.16.0
#
# The TFX version must match requirements.lock (tfx==1.16.0); tests/orchestrate checks it.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# Keras 2 (tf_keras) for Transform/Trainer, as in pipeline/cli.py; quiet TF start-up.
ENV TF_USE_LEGACY_KERAS=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /driftguard

# Dependencies first (a layer that changes only with the lock): the image already carries the
# TFX stack; install only what it lacks from the pinned versions (never upgrade TFX's pins).
COPY requirements.lock setup.py ./
RUN python -c "import tfx, sys; v = tfx.__version__; sys.exit(0 if v == '1.16.0' else 'base image has tfx ' + v)" \
 && grep -E '^(tf-keras|jinja2|click|scipy|pyyaml)==' requirements.lock > /tmp/extra.txt \
 && pip install --no-cache-dir --no-deps -r /tmp/extra.txt

# The project: packages, the versioned schemas and the demo data (relative config paths
# resolve against /driftguard).
COPY pipeline/ pipeline/
COPY components/ components/
COPY schemas/ schemas/
COPY data/ data/
RUN pip install --no-cache-dir --no-deps . \
 && python -c "import driftguard.pipeline.cli, driftguard.pipeline.taxi_model, driftguard.components.drift_detector.executor, \
driftguard.components.prediction_monitor.executor, driftguard.components.retrain_gate.executor, \
driftguard.components.anomaly_gate.executor, driftguard.components.registry_pusher.executor"

# KubeflowV2DagRunner sets each task's command (python -m tfx.orchestration.kubeflow.v2.container
# .kubeflow_v2_run_executor); run by hand the image is the driftguard CLI.
ENTRYPOINT ["driftguard"]
CMD ["--help"]
