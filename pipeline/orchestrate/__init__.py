"""Orchestrators for the driftguard pipelines: Kubeflow Pipelines v2 / Vertex AI (compile),
Airflow 2 (DAG files), and starting their runs (``triggers.py``: Airflow REST, KFP client; the
``compile``, ``trigger`` and ``submit`` commands are in ``cli/orchestrator_commands.py``).

Every path builds its pipelines with ``driftguard.pipeline.pipeline.create_check_pipeline`` and
``create_pipeline`` from the same Config, so the orchestrators run the same components.
"""
