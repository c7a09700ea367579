"""Wall time per component for one training run, and for the whole run, as a table.

Run by hand (not part of the tests):

    .venv/bin/python benchmarks/pipeline_timing.py [--spans 1,2] [--runner local|beam]

It trains the taxi example (its driftguard.yaml, over the committed data/taxi spans) in a fresh
temporary runs folder, then reads each node's wall time from MLMD (execution create -> last update).
"""
from __future__ import annotations

import argparse
import os
import pathlib
import platform
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", default="1,2")
    parser.add_argument("--runner", choices=["local", "beam"], default="local")
    args = parser.parse_args()

    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    t_import = time.monotonic()
    from driftguard.pipeline import config as config_lib
    from driftguard.pipeline import pipeline as pipeline_lib
    from driftguard.pipeline import runner as runner_lib
    from tfx import v1 as _tfx_v1  # noqa: F401  (loads TensorFlow: part of what a user waits for)
    import_s = time.monotonic() - t_import

    from driftguard.pipeline.project import example_config

    with tempfile.TemporaryDirectory(prefix="dg-bench-") as tmp:
        settings = example_config("taxi")
        settings["data"]["root"] = str(pathlib.Path(__file__).resolve().parent.parent / "data" / "taxi")
        settings["runs"] = tmp
        cfg = config_lib.from_dict(settings, tmp)
        spans = cfg.spans.parse_list(args.spans)
        t0 = time.monotonic()
        pipe = pipeline_lib.create_pipeline(cfg, spans)
        result = runner_lib.run(pipe, cfg, args.runner)
        total = time.monotonic() - t0

    print(f"# training run on spans {spans}, runner {args.runner}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"# train_steps={cfg.training.train_steps} eval_steps={cfg.training.eval_steps}")
    print(f"{'component':<34}{'state':<10}{'seconds':>9}")
    print("-" * 53)
    for n in result.nodes:
        secs = f"{n.seconds:9.1f}" if n.seconds is not None else f"{'-':>9}"
        print(f"{n.node_id:<34}{n.state:<10}{secs}")
    print("-" * 53)
    summed = sum(n.seconds or 0 for n in result.nodes)
    print(f"{'sum of components':<44}{summed:9.1f}")
    print(f"{'whole run (incl. orchestration)':<44}{total:9.1f}")
    print(f"{'import tfx + pipeline modules':<44}{import_s:9.1f}")
    if not result.ok:
        sys.exit(f"run did not complete: {[n.node_id for n in result.failed + result.not_run]}")


if __name__ == "__main__":
    main()
