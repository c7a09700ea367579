"""A project is a folder: ``driftguard.yaml``, the model module, ``schemas/``, the data, ``runs/``.

::

    my-project/              driftguard init my-project [--example taxi|flights]
      driftguard.yaml        data, model module, task, metrics, drift/alerts/retrain/monitor settings
      model.py               preprocessing_fn + run_fn (TFX's module_file convention)
      schemas/<model>/vN/    curated schema versions
      data/                  the spans (or data.root pointing elsewhere)
      runs/                  MLMD, registry, reports, outbox, state, logs (written by driftguard)

Every command finds its project as git finds ``.git``: ``--project DIR``, else the working
directory or the nearest folder above it holding ``driftguard.yaml``. The installed package
holds no project state.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import pathlib
import shutil
import tempfile
from typing import Dict, List, Optional

from driftguard.pipeline import config as config_lib

PROJECT_FILE = "driftguard.yaml"
EXAMPLES = ("taxi", "flights")
_TEMPLATE_FILES = ("driftguard.yaml", "model.py", "README.md")


class ProjectError(config_lib.ConfigError):
    """No project where one was looked for, or a project folder that cannot be created."""


def find(start: Optional[os.PathLike] = None) -> pathlib.Path:
    """The nearest folder at or above ``start`` (default: the working directory) holding
    ``driftguard.yaml``."""
    here = pathlib.Path(start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    raise ProjectError(f"no {PROJECT_FILE} in {here} or any folder above it: run `driftguard init DIR` "
                       f"(or `driftguard init DIR --example taxi`) to create a project, or pass --project DIR")


def load(project: Optional[os.PathLike] = None, config_file: Optional[os.PathLike] = None,
         overrides: Optional[Dict] = None) -> config_lib.Config:
    """The project's config: ``config_file`` if given (its folder is the project), else
    ``<project>/driftguard.yaml``, else the one :func:`find` finds."""
    if config_file is not None:
        return config_lib.load(config_file, overrides)
    if project is not None:
        folder = pathlib.Path(project)
        if not folder.is_dir():
            raise ProjectError(f"--project {folder}: no such folder")
        if not (folder / PROJECT_FILE).is_file():
            raise ProjectError(f"--project {folder}: no {PROJECT_FILE} in it (create one with `driftguard init {folder}`)")
    else:
        folder = find()
    return config_lib.load(folder / PROJECT_FILE, overrides)


def example_config(example: str) -> Dict:
    """An example's driftguard.yaml as a dict, with its model module and schemas as absolute
    paths into the installed package: a config file written anywhere runs the example's model
    (benchmarks and tests point its ``data.root`` and ``runs`` where they like)."""
    if example not in EXAMPLES:
        raise ProjectError(f"no example {example!r} (examples: {', '.join(EXAMPLES)})")
    settings = config_lib.read_file(_example_dir(example) / PROJECT_FILE)
    settings["model"]["module"] = str(_example_dir(example) / settings["model"]["module"])
    settings["schemas"] = str(_schemas_dir())
    return settings


# ---------------------------------------------------------------- driftguard init


@dataclasses.dataclass
class InitResult:
    project: pathlib.Path
    example: Optional[str]
    files: List[pathlib.Path]
    data_rows: int = 0
    spans: int = 0


def _example_dir(name: str) -> pathlib.Path:
    module = importlib.import_module(f"driftguard.examples.{name}")
    return pathlib.Path(module.__file__).parent


def _schemas_dir() -> pathlib.Path:
    spec = importlib.util.find_spec("driftguard.schemas")
    if spec is None or not spec.submodule_search_locations:
        raise ProjectError("the installed driftguard lacks its example schemas (driftguard.schemas)")
    return pathlib.Path(list(spec.submodule_search_locations)[0])


def init(directory: os.PathLike, example: Optional[str] = None) -> InitResult:
    """Write a working project into ``directory`` (new or empty): an example's config, model
    module, curated schemas and data, or (no example) a template to fill in.

    Written into a temporary folder beside the target and renamed into place, so a failure
    (disk full, data writer error) leaves nothing half-made, and an existing project is never
    overwritten.
    """
    target = pathlib.Path(directory).resolve()
    if example is not None and example not in EXAMPLES:
        raise ProjectError(f"--example {example!r}: no such example (examples: {', '.join(EXAMPLES)})")
    if target.exists():
        if not target.is_dir():
            raise ProjectError(f"{target} exists and is not a folder")
        if (target / PROJECT_FILE).exists():
            raise ProjectError(f"{target} already holds a project ({PROJECT_FILE}); nothing was changed")
        if any(target.iterdir()):
            raise ProjectError(f"{target} is not empty; init writes into a new or empty folder")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}-init-", dir=target.parent))
    try:
        result = _write(staging, example)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)   # mkdtemp's folder is private (0700); a project is not
        if target.exists():
            target.rmdir()               # empty (checked above)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.project = target
    result.files = [target / f.relative_to(staging) for f in result.files]
    return result


def _write(folder: pathlib.Path, example: Optional[str]) -> InitResult:
    files: List[pathlib.Path] = []
    source = _example_dir(example or "template")
    for name in _TEMPLATE_FILES:
        src = source / name
        if src.is_file():
            shutil.copyfile(src, folder / name)
            files.append(folder / name)
    cfg = config_lib.read_file(folder / PROJECT_FILE)
    model = cfg.get("model_name", "model")
    schemas = _schemas_dir() / model
    if example is not None and schemas.is_dir():
        for version in sorted(schemas.iterdir()):
            if version.is_dir() and (version / "schema.pbtxt").is_file():
                dest = folder / "schemas" / model / version.name
                dest.mkdir(parents=True)
                shutil.copyfile(version / "schema.pbtxt", dest / "schema.pbtxt")
                files.append(dest / "schema.pbtxt")
    else:
        # the template's model_name is a placeholder: `schema infer` makes schemas/<model_name>/v1
        (folder / "schemas").mkdir()
    result = InitResult(folder, example, files)
    data_root = folder / (cfg.get("data") or {}).get("root", "data")
    if example is not None:
        writer = importlib.import_module(f"driftguard.examples.{example}.data")
        manifest = writer.write_spans(data_root)
        result.spans = len(manifest)
        result.data_rows = sum(int(r.get("rows", 0)) for r in manifest)
    else:
        data_root.mkdir(parents=True, exist_ok=True)
    (folder / ".gitignore").write_text("runs/\n")
    return result
