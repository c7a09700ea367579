"""driftguard: a TFX pipeline that validates every span, detects drift, and pushes only blessed models."""
from setuptools import find_packages, setup

setup(
    name="driftguard",
    version="0.1.0",
    description="End-to-end TFX pipeline with drift detection, gated retraining and alerting.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*", "monitoring", "monitoring.*"]),
    package_data={"pipeline": ["templates/*"], "monitoring": ["*.json"], "components": ["**/*.html", "**/*.j2"]},
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
        "scipy",
        "numpy",
        "pandas",
        "pyarrow",
        "numba",
        "google-crc32c",
    ],
    entry_points={"console_scripts": ["driftguard=pipeline.cli:main"]},
)
