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
