"""Keep TFX from building a throw-away copy of itself for every Beam component run locally.

TFX's ``BaseBeamExecutor`` calls ``dependency_utils.make_beam_dependency_flags`` when an
executor starts: unless the Beam args already name a dependency (``--setup_file`` ...), it
builds an sdist of TFX (~50 MB, in a fresh ``mkdtemp`` that is never removed) and adds it as
``--extra_package``, for remote Beam workers to install. The DirectRunner stages nothing: its
workers are this process or subprocesses of it, with the same site-packages. So every local
check or training leaked ~50 MB per Beam component in the temporary folder (measured here:
1,559 folders, 75 GB, filling the disk). With a runner that does stage (Dataflow ...), TFX's
behaviour is kept.

No Beam or TFX option turns the build off, so the function is wrapped; :func:`install` is
called by the local runner (``pipeline/runner.py``) and by the Airflow DAG module, in whose
processes the executors run. A Kubeflow task runs in a container that is removed after it.
"""
from __future__ import annotations

from typing import List, Sequence

_DIRECT_RUNNERS = {None, "", "DirectRunner", "direct", "SwitchingDirectRunner", "BundleBasedDirectRunner"}


def runner_of(beam_args: Sequence[str]) -> str | None:
    """The ``--runner`` named in ``beam_args`` (last one wins, as in argparse), else None."""
    runner = None
    args = list(beam_args or ())
    for i, arg in enumerate(args):
        if arg.startswith("--runner="):
            runner = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(args):
            runner = args[i + 1]
    return runner


def install() -> None:
    """Wrap TFX's dependency step so that a DirectRunner run builds no package (idempotent)."""
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    if getattr(original, "_driftguard", False):
        return

    def make_beam_dependency_flags(beam_pipeline_args: List[str]) -> List[str]:
        if runner_of(beam_pipeline_args) in _DIRECT_RUNNERS:
            return beam_pipeline_args
        return original(beam_pipeline_args)

    make_beam_dependency_flags._driftguard = True
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
