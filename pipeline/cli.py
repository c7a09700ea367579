"""``driftguard``: the command line.

Exit status everywhere: 0 success, 2 error (message on stderr). ``driftguard drift`` adds 1
for "drift detected". Heavy imports (TensorFlow, TFX) happen inside the commands that need
them, so ``--help`` and ``driftguard drift`` start fast.
"""
from __future__ import annotations

import datetime
import logging
import os
import pathlib
import re
import sys
import time
import warnings
from typing import List, Optional, Sequence

import click

from pipeline import config as config_lib

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")   # TFT needs Keras 2 (tf_keras)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TF C++ start-up chatter (CUDA probes)


class DriftguardError(click.ClickException):
    """An error the user can act on: printed as 'error: ...' on stderr, exit status 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def _load_config(ctx: click.Context, overrides: Optional[dict] = None) -> config_lib.Config:
    path = ctx.obj.get("config_path") if ctx.obj else None
    try:
        return config_lib.load(path, overrides)
    except config_lib.ConfigError as e:
        raise DriftguardError(str(e)) from None


class _ProgressHandler(logging.Handler):
    """Echoes TFX's 'Component X is running/finished' lines as a compact progress log."""

    _RE = re.compile(r"Component (\S+) is (running|finished)\.")

    def __init__(self):
        super().__init__(level=logging.INFO)
        self._started = {}

    def emit(self, record: logging.LogRecord) -> None:
        m = self._RE.search(record.getMessage())
        if not m:
            return
        node, what = m.groups()
        if what == "running":
            self._started[node] = time.monotonic()
        else:
            took = time.monotonic() - self._started.get(node, time.monotonic())
            click.echo(f"  {node:<32} done   {took:6.1f} s", err=True)


def _setup_logging(runs_path: pathlib.Path, command: str, verbose: bool) -> pathlib.Path:
    """Full logs go to runs/logs/<time>-<command>.log; the console gets progress only."""
    log_dir = runs_path / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = log_dir / f"{stamp}-{command}.log"
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    fh = logging.FileHandler(log_path)
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(fh)
    root.setLevel(logging.INFO)
    if verbose:
        sh = logging.StreamHandler(sys.stderr)
        sh.setLevel(logging.INFO)
        root.addHandler(sh)
    else:
        root.addHandler(_ProgressHandler())
    # TensorFlow attaches its own stderr handler when it is imported before the root logger
    # has one; route its records to the log file like everything else, whatever the order.
    tf_logger = logging.getLogger("tensorflow")
    tf_logger.handlers.clear()
    tf_logger.propagate = True
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    logging.captureWarnings(True)
    try:
        from absl import logging as absl_logging
        absl_logging.use_python_logging(quiet=True)
        absl_logging.set_verbosity(absl_logging.INFO)
    except ImportError:
        pass
    return log_path


def _parse_spans(text: str) -> List[int]:
    try:
        return config_lib.parse_spans(text)
    except config_lib.ConfigError as e:
        raise DriftguardError(str(e)) from None


def _check_spans_exist(spans: Sequence[int], data_root: pathlib.Path) -> None:
    from pipeline import data

    try:
        have = set(data.available_spans(data_root))
    except FileNotFoundError as e:
        raise DriftguardError(f"{e}; run `driftguard data prepare` or point data_root at "
                              f"a folder of span-<N>/ folders") from None
    missing = [s for s in spans if s not in have]
    if missing:
        raise DriftguardError(
            f"span(s) {', '.join(map(str, missing))} not found under {data_root} "
            f"(available: {', '.join(map(str, sorted(have))) or 'none'})")
    for s in spans:
        if not any(p.is_file() for p in (data_root / f"span-{s}").iterdir()):
            raise DriftguardError(f"span {s}: folder {data_root / f'span-{s}'} has no data files")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              envvar="DRIFTGUARD_CONFIG",
              help="YAML or JSON config file (default: built-in defaults; env DRIFTGUARD_CONFIG).")
@click.pass_context
def main(ctx: click.Context, config_path: Optional[str]) -> None:
    """driftguard: validate every data span, detect drift, retrain and push only blessed models.

    \b
    Start here:
      driftguard run                      the main job on the embedded default
      driftguard train --spans 1-2        train on spans 1 and 2, push if blessed
      driftguard check --span 5           validate span 5 and compare it with the serving model
      driftguard drift REF.csv CUR.csv    compare two tables for drift
    """
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


def _runner_option(f):
    return click.option("--runner", type=click.Choice(["local", "beam"]), default=None,
                        help="TFX runner (default: the config's runner, 'local').")(f)


def _beam_arg_option(f):
    return click.option(
        "--beam-arg", "beam_args", multiple=True, metavar="ARG",
        help="Extra Beam pipeline argument, repeatable (e.g. --beam-arg=--direct_num_workers=2)."
    )(f)


def _verbose_option(f):
    return click.option("-v", "--verbose", is_flag=True,
                        help="Stream TFX's full log to stderr instead of a progress list.")(f)


def _check_schema(cfg: config_lib.Config) -> None:
    """The configured schema version exists and parses, before any pipeline work starts."""
    from pipeline import schemas

    if not cfg.schema_file.is_file():
        raise DriftguardError(f"schema version {cfg.schema_version} not found: "
                              f"{cfg.schema_file} does not exist")
    try:
        schemas.load_schema(cfg.schema_file)
    except schemas.SchemaVersionError as e:
        raise DriftguardError(str(e)) from None


def train_spans(cfg: config_lib.Config, spans: Sequence[int], *, runner: Optional[str] = None,
                data_root: Optional[pathlib.Path] = None, verbose: bool = False):
    """Run the training pipeline on ``spans``; print a summary; return the RunResult."""
    from pipeline import pipeline as pipeline_lib
    from pipeline import runner as runner_lib

    data_root = pathlib.Path(data_root or cfg.data_path)
    _check_spans_exist(spans, data_root)
    _check_schema(cfg)
    log_path = _setup_logging(cfg.runs_path, "train", verbose)
    click.echo(f"training on span(s) {', '.join(map(str, spans))} from {data_root} "
               f"(schema v{cfg.schema_version}, runner {runner or cfg.runner})", err=True)
    t0 = time.monotonic()
    pipe = pipeline_lib.create_pipeline(cfg, spans, data_root=str(data_root))
    result = runner_lib.run(pipe, cfg, runner)
    elapsed = time.monotonic() - t0
    _print_summary(cfg, result, elapsed, log_path)
    return result


def _print_summary(cfg: config_lib.Config, result, elapsed: float, log_path) -> None:
    from pipeline import runner as runner_lib

    failed = result.first_error()
    if failed is not None:
        raise DriftguardError(
            f"the training pipeline failed at {failed.node_id}:\n"
            f"{runner_lib.short_error(failed.error)}\n"
            f"(nothing was pushed; full log: {log_path})")
    if result.not_run or result.runner_error:
        names = ", ".join(n.node_id for n in result.not_run) or "all components"
        cause = f": {result.runner_error}" if result.runner_error else ""
        raise DriftguardError(f"the training pipeline did not complete{cause}\n"
                              f"(components not run: {names}; full log: {log_path})")
    click.echo(f"pipeline completed in {elapsed:.0f} s; full log: {log_path}")
    evaluation = _evaluation_text(cfg, result)
    version = pushed_version(cfg, result)
    if version is None:
        click.echo(f"candidate NOT blessed by the Evaluator: {evaluation}\n"
                   f"nothing was pushed; serving stays at {_serving_version_text(cfg)}")
        return
    click.echo(f"candidate blessed: {evaluation}\n"
               f"pushed {cfg.model_name} version {version} -> {cfg.model_registry / str(version)}")


def pushed_version(cfg: config_lib.Config, result) -> Optional[int]:
    """The registry version the RegistryPusher of this run published, or None."""
    from pipeline import runner as runner_lib

    pusher = result.node("RegistryPusher")
    artifact = runner_lib.output_artifact(str(cfg.metadata_path), pusher.execution_id,
                                          "pushed_model")
    if artifact is None or artifact.custom_properties["pushed"].int_value != 1:
        return None
    return int(artifact.custom_properties["pushed_version"].int_value)


def _evaluation_text(cfg: config_lib.Config, result) -> str:
    """'AUC 0.612 (baseline 0.947); failed: AUC >= 0.70' from the run's TFMA output."""
    from components.registry_pusher.executor import overall_metrics
    from pipeline import runner as runner_lib

    node = result.node("Evaluator")
    artifact = runner_lib.output_artifact(str(cfg.metadata_path), node.execution_id,
                                          "evaluation")
    if artifact is None:
        return "no evaluation was recorded"
    metrics = overall_metrics(artifact.uri)
    cand = metrics.get("candidate", {}).get("auc")
    base = metrics.get("baseline", {}).get("auc")
    text = f"AUC {cand:.3f}" if cand is not None else "AUC n/a"
    text += f" (blessed baseline {base:.3f})" if base is not None else " (no blessed baseline yet)"
    e = cfg.evaluation
    text += f"; thresholds: AUC >= {e.min_auc:.2f}"
    if base is not None:
        text += f" and at most {e.max_auc_drop:.3f} below the baseline"
    return text


def _serving_version_text(cfg: config_lib.Config) -> str:
    from components.registry_pusher.registry import existing_versions

    versions = existing_versions(cfg.model_registry)
    return f"version {versions[-1]}" if versions else "no version (registry empty)"


@main.command()
@_runner_option
@_beam_arg_option
@_verbose_option
@click.pass_context
def run(ctx: click.Context, runner: Optional[str], beam_args, verbose: bool) -> None:
    """The main job on the embedded default (sqlite MLMD, files under runs/).

    For now: trains on the config's first spans and pushes version 1 when blessed.
    """
    from components.registry_pusher.registry import existing_versions, read_profile

    cfg = _load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    spans = sorted(int(s) for s in cfg.first_spans)
    profiles = {v: read_profile(cfg.model_registry, v)
                for v in existing_versions(cfg.model_registry)}
    done = [v for v, p in profiles.items()
            if p.get("spans") == spans and p.get("schema_version") == cfg.schema_version]
    if done:
        click.echo(f"{cfg.model_name} version {done[-1]} was already trained on span(s) "
                   f"{', '.join(map(str, spans))} with schema v{cfg.schema_version}; "
                   f"nothing to do.\n(to train again anyway: driftguard train --spans "
                   f"{','.join(map(str, spans))})")
    else:
        train_spans(cfg, spans, runner=runner, verbose=verbose)
    click.echo(f"registry: {cfg.model_registry}\nMLMD:     {cfg.metadata_path}")


@main.command()
@click.option("--spans", "spans_text", required=True, metavar="SPANS",
              help="Span numbers to train on, e.g. '3', '1,2' or '1-4' (oldest first).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=None, help="Folder of span-<N>/ folders (default: the config's data_root).")
@_runner_option
@_beam_arg_option
@_verbose_option
@click.pass_context
def train(ctx: click.Context, spans_text: str, data_root: Optional[pathlib.Path],
          runner: Optional[str], beam_args, verbose: bool) -> None:
    """Run the training pipeline on SPANS; push the model only if TFMA blesses it."""
    cfg = _load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    spans = _parse_spans(spans_text)
    if len(spans) > cfg.training.window_spans:
        raise DriftguardError(
            f"{len(spans)} spans given but training.window_spans is {cfg.training.window_spans}; "
            f"pass at most {cfg.training.window_spans} spans or raise the window in the config")
    train_spans(cfg, spans, runner=runner, data_root=data_root, verbose=verbose)


def check_span(cfg: config_lib.Config, span: int, *, runner: Optional[str] = None,
               data_root: Optional[pathlib.Path] = None, verbose: bool = False):
    """Run the span-check pipeline on ``span``; return ``(report dict, report folder)``."""
    import json

    from components.drift_detector import spec as detector_spec
    from pipeline import pipeline as pipeline_lib
    from pipeline import runner as runner_lib

    data_root = pathlib.Path(data_root or cfg.data_path)
    _check_spans_exist([span], data_root)
    _check_schema(cfg)
    log_path = _setup_logging(cfg.runs_path, f"check-span{span}", verbose)
    click.echo(f"checking span {span} from {data_root} (schema v{cfg.schema_version}, "
               f"baseline: {_serving_version_text(cfg)})", err=True)
    pipe = pipeline_lib.create_check_pipeline(cfg, span, data_root=str(data_root))
    result = runner_lib.run(pipe, cfg, runner)
    failed = result.first_error()
    if failed is not None:
        raise DriftguardError(f"the span check of span {span} failed at {failed.node_id}:\n"
                              f"{runner_lib.short_error(failed.error)}\n(full log: {log_path})")
    if result.not_run or result.runner_error:
        names = ", ".join(n.node_id for n in result.not_run) or "all components"
        raise DriftguardError(f"the span check of span {span} did not complete "
                              f"(not run: {names}; full log: {log_path})")
    node = result.node("DriftDetector")
    artifact = runner_lib.output_artifact(str(cfg.metadata_path), node.execution_id, "drift_report")
    report_dir = pathlib.Path(artifact.uri)
    report = json.loads((report_dir / detector_spec.REPORT_JSON).read_text())
    return report, report_dir


def _print_check(report: dict, report_dir: pathlib.Path, span: int) -> None:
    from components.drift_detector.compare import headline

    ctx = report.get("context", {})
    if report.get("status") == "no_baseline":
        click.echo(f"span {span}: {headline(report)}")
    else:
        click.echo(f"span {span} vs version {ctx.get('baseline_version')} (trained on spans "
                   f"{', '.join(map(str, ctx.get('baseline_spans') or []))}): {headline(report)}")
        if report.get("table"):
            click.echo(report["table"])
        for name, what in report.get("type_changes", {}).items():
            click.echo(f"type change: {name}: {what}")
        for name, items in report.get("skew", {}).items():
            for item in items:
                click.echo(f"skew: {name}: {item['type']}: {item['description']}")
    anomalies = report.get("anomalies", [])
    if anomalies:
        from components.anomaly_gate.executor import format_record

        click.echo(f"schema anomalies ({len(anomalies)}):")
        for record in anomalies:
            click.echo(f"  {record['severity']}: {format_record(record)}")
    click.echo(f"report: {report_dir / 'report.html'}")


@main.command()
@click.option("--span", "span", type=int, required=True, help="The span number to check.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=pathlib.Path),
              default=None, help="Folder of span-<N>/ folders (default: the config's data_root).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@_runner_option
@_beam_arg_option
@_verbose_option
@click.pass_context
def check(ctx: click.Context, span: int, data_root: Optional[pathlib.Path], as_json: bool,
          runner: Optional[str], beam_args, verbose: bool) -> None:
    """Check one span: schema anomalies, skew and drift against the serving model's profile.

    Exit status: 0 nothing found, 1 drift or schema anomalies, 2 error.
    """
    import json

    cfg = _load_config(ctx)
    if beam_args:
        cfg = cfg.replace(beam_args=tuple(cfg.beam_args) + tuple(beam_args))
    if span < 0:
        raise DriftguardError(f"--span must be a span number >= 0, got {span}")
    report, report_dir = check_span(cfg, span, runner=runner, data_root=data_root, verbose=verbose)
    if as_json:
        click.echo(json.dumps({**report, "report_dir": str(report_dir)}, sort_keys=True))
    else:
        _print_check(report, report_dir, span)
    if report.get("drift_detected") or report.get("anomalies"):
        ctx.exit(1)


@main.command()
@click.option("--target", type=click.Choice(["kubeflow", "airflow"]), required=True,
              help="Orchestrator to compile for.")
@click.option("--output", type=click.Path(file_okay=False), default=None,
              help="Output folder for the pipeline spec or DAG files.")
def compile(target: str, output: Optional[str]) -> None:  # noqa: A001 (the command's name)
    """Write the pipeline spec (Kubeflow v2) or DAG files (Airflow)."""
    raise DriftguardError(f"compile --target {target} is not available in this version yet "
                          f"(tracked in the orchestration issue); use `driftguard run` or "
                          f"`driftguard train` with --runner local|beam")


@main.group()
def schema() -> None:
    """Versioned schemas under schemas/<model>/v<N>/ (never edited in place)."""


@schema.command("list")
@click.pass_context
def schema_list(ctx: click.Context) -> None:
    """List the schema versions and which one the config uses."""
    from pipeline import schemas

    cfg = _load_config(ctx)
    root = cfg.schema_file.parent.parent
    versions = schemas.list_versions(root)
    if not versions:
        raise DriftguardError(f"no schema versions under {root}")
    for v in versions:
        mark = "  (in use)" if v == cfg.schema_version else ""
        click.echo(f"v{v}  {schemas.schema_path(root, v)}{mark}")


@schema.command("new-version")
@click.option("--from-span", "span", required=True, type=int,
              help="Span whose data the new version must accept.")
@click.option("--dry-run", is_flag=True, help="Show the diff without writing a version.")
@click.pass_context
def schema_new_version(ctx: click.Context, span: int, dry_run: bool) -> None:
    """Infer from span N (starting from the latest version), print the diff, write v(N+1)."""
    from pipeline import schemas

    cfg = _load_config(ctx)
    _check_spans_exist([span], cfg.data_path)
    _setup_logging(cfg.runs_path, "schema", verbose=False)
    root = cfg.schema_file.parent.parent
    try:
        result = schemas.new_version_from_span(root, cfg.data_path, span, write=not dry_run)
    except schemas.SchemaVersionError as e:
        raise DriftguardError(str(e)) from None
    if not result.diff:
        click.echo(f"span {span} already conforms to v{result.base_version}; "
                   f"no new version written")
        return
    click.echo(result.diff, nl=False)
    if result.path is None:
        click.echo(f"(dry run: v{result.version} not written)")
    else:
        click.echo(f"wrote v{result.version}: {result.path}\n"
                   f"(v{result.base_version} is unchanged; set schema_version: {result.version} "
                   f"in the config to use it)")


@main.group()
def data() -> None:
    """The taxi data spans under data/."""


@data.command("prepare")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="Output folder (default: the config's data_root).")
@click.pass_context
def data_prepare(ctx: click.Context, out: Optional[pathlib.Path]) -> None:
    """Split the taxi CSV shipped in the tfx wheel into quarterly spans."""
    from pipeline import data as data_lib

    cfg = _load_config(ctx)
    target = out or cfg.data_path
    try:
        manifest = data_lib.write_taxi_spans(target)
    except FileNotFoundError as e:
        raise DriftguardError(str(e)) from None
    for row in manifest:
        click.echo(f"span {row['span']:>2}  {row['period']}  {row['rows']:>5} rows")
    click.echo(f"wrote {len(manifest)} spans under {target}")


def _register_drift_command() -> None:
    try:
        from components.drift.cli import drift
    except ImportError:  # pragma: no cover - only while the drift package is absent
        return
    main.add_command(drift, "drift")


_register_drift_command()

if __name__ == "__main__":
    main()
