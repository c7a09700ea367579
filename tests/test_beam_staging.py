"""TFX's ephemeral package is not built for the DirectRunner (it leaked ~50 MB per component)."""
import glob
import os
import tempfile

from driftguard.pipeline import beam_staging


def _ephemeral_dirs():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "tmp*", "build", "tfx")))


def test_runner_of_reads_both_spellings_and_the_last_wins():
    assert beam_staging.runner_of([]) is None
    assert beam_staging.runner_of(["--direct_num_workers=2"]) is None
    assert beam_staging.runner_of(["--runner=DataflowRunner"]) == "DataflowRunner"
    assert beam_staging.runner_of(["--runner", "DataflowRunner", "--runner=DirectRunner"]) == "DirectRunner"


def test_a_direct_run_builds_nothing_and_another_runner_keeps_tfxs_step(monkeypatch):
    from tfx.utils import dependency_utils

    built = []
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags",
                        lambda args: built.append(list(args)) or args + ["--extra_package=x.tar.gz"])
    beam_staging.install()
    beam_staging.install()        # idempotent: one wrapper
    before = _ephemeral_dirs()
    args = ["--direct_num_workers=1"]
    assert dependency_utils.make_beam_dependency_flags(args) == args
    assert dependency_utils.make_beam_dependency_flags(args + ["--runner=DirectRunner"]) == \
        args + ["--runner=DirectRunner"]
    assert built == [] and _ephemeral_dirs() == before
    assert dependency_utils.make_beam_dependency_flags(["--runner=DataflowRunner"])[-1] == "--extra_package=x.tar.gz"
    assert built == [["--runner=DataflowRunner"]]


# ---- remote workers: what a runner whose workers run elsewhere needs (docs/distributed.md)

LOCAL = {"data.root": "/data/taxi", "pipeline_root": "/proj/runs/pipelines"}
BUCKETS = {"data.root": "s3://b/data", "pipeline_root": "s3://b/pipelines"}


def test_direct_runners_need_nothing():
    for args in ([], ["--direct_num_workers=2"], ["--runner=DirectRunner"], ["--runner", "direct"]):
        assert beam_staging.remote_worker_problem(args, LOCAL) is None


def test_dataflow_needs_workers_that_import_driftguard_then_bucket_paths():
    problem = beam_staging.remote_worker_problem(["--runner=DataflowRunner"], BUCKETS)
    assert problem.startswith("beam_args: --runner=DataflowRunner") and "--sdk_container_image" in problem
    image = ["--runner=DataflowRunner", "--sdk_container_image=r/driftguard-worker:1"]
    assert beam_staging.remote_worker_problem(image, BUCKETS) is None
    assert beam_staging.remote_worker_problem(["--runner", "DataflowRunner", "--extra_package", "dg.tar.gz"],
                                              BUCKETS) is None
    problem = beam_staging.remote_worker_problem(image, {**BUCKETS, "pipeline_root": "/proj/runs/pipelines"})
    assert problem.startswith("pipeline_root: ") and "set pipeline_root to object storage" in problem


def test_portable_runners_need_a_container_or_loopback():
    for runner in ("FlinkRunner", "SparkRunner", "PortableRunner",
                   "apache_beam.runners.portability.flink_runner.FlinkRunner"):
        problem = beam_staging.remote_worker_problem([f"--runner={runner}"], LOCAL)
        assert "--environment_config=IMAGE" in problem and runner.rsplit(".", 1)[-1] in problem
        assert beam_staging.remote_worker_problem(
            [f"--runner={runner}", "--environment_type=DOCKER", "--environment_config=r/dg-worker:1"], LOCAL) is None
        assert beam_staging.remote_worker_problem([f"--runner={runner}", "--environment_type=loopback"], LOCAL) is None


def test_a_portable_run_in_a_given_container_builds_no_tfx_package(monkeypatch):
    from tfx.utils import dependency_utils

    built = []
    monkeypatch.setattr(dependency_utils, "make_beam_dependency_flags",
                        lambda args: built.append(list(args)) or args + ["--extra_package=x.tar.gz"])
    beam_staging.install()
    args = ["--runner=FlinkRunner", "--environment_type=DOCKER", "--environment_config=r/dg-worker:1"]
    assert dependency_utils.make_beam_dependency_flags(args) == args and built == []
    assert dependency_utils.make_beam_dependency_flags(["--runner=FlinkRunner"])[-1] == "--extra_package=x.tar.gz"


def test_the_cli_refuses_a_runner_its_workers_could_not_run_before_any_component(tmp_path):
    from helpers import run_cli, write_config

    config = write_config(tmp_path / "driftguard.json", runs=str(tmp_path / "runs"))
    result = run_cli("check", "--span", "3", "--beam-arg=--runner=DataflowRunner", config=config, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "beam_args: --runner=DataflowRunner" in result.stderr and "--sdk_container_image" in result.stderr
    result = run_cli("check", "--span", "3", "--beam-arg=--runner=DataflowRunner",
                     "--beam-arg=--sdk_container_image=r/dg-worker:1", config=config, timeout=300)
    assert result.returncode == 2 and "data.root, pipeline_root: --runner=DataflowRunner workers cannot reach" in result.stderr
    assert not (tmp_path / "runs" / "pipelines").exists()      # nothing ran
