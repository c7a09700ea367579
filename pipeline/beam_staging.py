"""What Beam's workers get from driftguard: no throw-away TFX package for local workers, and a
check, before any component runs, that remote workers can run driftguard at all.

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

A portable runner (Flink, Spark, PortableRunner) given ``--environment_config`` runs its
workers in that container, which holds driftguard, TFX and their dependencies (the
Dockerfile's ``beam-worker`` target): TFX's package, which would be pip-installed into it at
every worker start, is not built either.

:func:`remote_worker_problem` says, before any component runs, what a runner whose workers run
elsewhere lacks: workers that can import driftguard (its DoFns run there), and paths they can
reach: ``data.root`` and ``pipeline_root`` as object-storage URIs (docs/distributed.md).
"""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence

_DIRECT_RUNNERS = {None, "", "DirectRunner", "direct", "SwitchingDirectRunner", "BundleBasedDirectRunner"}


def _flag(beam_args: Sequence[str], name: str) -> Optional[str]:
    """The value of ``--name`` in ``beam_args`` (either spelling, last one wins), else None."""
    value = None
    args = list(beam_args or ())
    for i, arg in enumerate(args):
        if arg.startswith(f"--{name}="):
            value = arg.split("=", 1)[1]
        elif arg == f"--{name}" and i + 1 < len(args):
            value = args[i + 1]
    return value


def runner_of(beam_args: Sequence[str]) -> str | None:
    """The ``--runner`` named in ``beam_args`` (last one wins, as in argparse), else None."""
    return _flag(beam_args, "runner")


def is_direct(beam_args: Sequence[str]) -> bool:
    return runner_of(beam_args) in _DIRECT_RUNNERS


def _runner_name(beam_args: Sequence[str]) -> str:
    return (runner_of(beam_args) or "").rsplit(".", 1)[-1]


# Flags that give Dataflow's workers driftguard's code (TFX's own test, plus Beam's spellings).
_DATAFLOW_DEPENDENCY_FLAGS = ("sdk_container_image", "worker_harness_container_image", "extra_package",
                              "extra_packages", "setup_file")
_LOCAL_WORKER_ENVIRONMENTS = ("LOOPBACK",)   # the workers are this process: it imports driftguard


def remote_worker_problem(beam_args: Sequence[str], paths: Mapping[str, str]) -> Optional[str]:
    """What keeps a runner whose workers run on other machines from running driftguard's
    pipelines, as one message naming the setting; None when nothing does (a DirectRunner).

    ``paths``: the locations the workers read or write, by setting (``data.root``, ...): a
    local path is refused for Dataflow, whose workers never see this machine's disk."""
    if is_direct(beam_args):
        return None
    runner = _runner_name(beam_args)
    how = "docs/distributed.md"
    if runner in ("DataflowRunner", "TestDataflowRunner"):
        if not any(_flag(beam_args, f) for f in _DATAFLOW_DEPENDENCY_FLAGS):
            return (f"beam_args: --runner={runner} runs workers that must import driftguard: add "
                    f"--beam-arg=--sdk_container_image=IMAGE (the Dockerfile's beam-worker target) or "
                    f"--beam-arg=--extra_package=<driftguard sdist> ({how})")
        local = [setting for setting, where in paths.items() if "://" not in str(where)]
        if local:
            return (f"{', '.join(local)}: --runner={runner} workers cannot reach this machine's disk: set "
                    f"{' and '.join(local)} to object storage (pipeline_root: s3://bucket/prefix; gs:// is "
                    f"not supported yet) ({how})")
        return None
    environment = (_flag(beam_args, "environment_type") or "DOCKER").upper()
    if environment in _LOCAL_WORKER_ENVIRONMENTS or _flag(beam_args, "environment_config"):
        return None
    return (f"beam_args: --runner={runner} starts its workers in Beam's plain SDK container, which lacks "
            f"TFX and driftguard: add --beam-arg=--environment_config=IMAGE (the Dockerfile's beam-worker "
            f"target, with --environment_type=DOCKER) or --beam-arg=--environment_type=LOOPBACK ({how})")


class RunnerError(ValueError):
    """The Beam args name a runner whose workers could not run driftguard (the message says why)."""


def preflight(beam_args: Sequence[str], paths: Mapping[str, str]) -> None:
    """Raise :class:`RunnerError` with :func:`remote_worker_problem`'s message, if any."""
    problem = remote_worker_problem(beam_args, paths)
    if problem:
        raise RunnerError(problem)


def install() -> None:
    """Wrap TFX's dependency step so that a DirectRunner run, or a portable runner's run in a
    given container, builds no package (idempotent)."""
    from tfx.utils import dependency_utils

    original = dependency_utils.make_beam_dependency_flags
    if getattr(original, "_driftguard", False):
        return

    def make_beam_dependency_flags(beam_pipeline_args: List[str]) -> List[str]:
        if is_direct(beam_pipeline_args) or _flag(beam_pipeline_args, "environment_config"):
            return beam_pipeline_args
        return original(beam_pipeline_args)

    make_beam_dependency_flags._driftguard = True
    dependency_utils.make_beam_dependency_flags = make_beam_dependency_flags
