"""A click group wired like driftguard.pipeline.cli.main, with the orchestration commands added, so the
tests run `compile`, `trigger` and `submit` end to end before pipeline/cli.py registers them.
(A unique module name: tests/helpers.py and other folders' helpers must not collide.)"""
from __future__ import annotations

import pathlib
from typing import Optional

import click

from driftguard.pipeline.orchestrate.cli import compile_command, submit, trigger

TESTS_DIR = pathlib.Path(__file__).resolve().parent


@click.group()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None)
@click.pass_context
def cli(ctx: click.Context, config_path: Optional[str]) -> None:
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path   # what driftguard.pipeline.cli._load_config reads


cli.add_command(compile_command, "compile")
cli.add_command(trigger, "trigger")
cli.add_command(submit, "submit")


def invoke(*args, env=None):
    """Run the group in-process; return click's Result (exit_code, output)."""
    from click.testing import CliRunner

    return CliRunner().invoke(cli, [str(a) for a in args], env=env, catch_exceptions=False)
