"""Run the real `driftguard` group in-process (click's runner): `compile`, `trigger`, `submit`.
(A unique module name: tests/helpers.py and other folders' helpers must not collide.)"""
from __future__ import annotations

import pathlib

TESTS_DIR = pathlib.Path(__file__).resolve().parent


def invoke(*args, env=None):
    """Run ``driftguard ARGS`` in-process; return click's Result (exit_code, output)."""
    from click.testing import CliRunner

    from driftguard.cli.main import main

    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
