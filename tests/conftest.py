"""Shared fixtures. Expensive TFX runs happen once per session and are shared by tests."""
from __future__ import annotations

import os
import secrets
import shutil

import pytest

from helpers import DATA, FAST_TRAINING, REPO, merge, run_cli, ws_data

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """The taxi example project made by `driftguard init` outside the checkout, as a user makes
    it, with crafted spans in place of the real ones from 2013Q3 on:

    span 1, 2: real taxi data (2013Q1, 2013Q2)            -> train version 1
    span 3:    real 2013Q3 with tips shuffled across rows  -> a deliberately worse candidate
    span 4:    real 2013Q3 without the payment_type column
    span 5:    real 2013Q3 with trip_start_hour as text
    span 6:    real 2013Q3 with 30 % of payment_type = 'Bitcoin' (outside the domain)
    span 7:    1,000 rows drawn (with replacement) from spans 1-2: no drift by construction
    span 8:    span 7 with every fare 25 % higher: drift in one feature

    Its driftguard.yaml trains fast (tests/helpers.FAST_TRAINING): `first_push` runs in it.
    """
    import pandas as pd
    import yaml

    root = tmp_path_factory.mktemp("ws")
    assert not str(root).startswith(str(REPO)), "the workspace must lie outside the checkout"
    proc = run_cli("init", root, "--example", "taxi", cwd=root.parent)
    assert proc.returncode == 0, proc.stderr
    data = ws_data(root)
    for s in range(3, 17):
        shutil.rmtree(data / f"span-{s}")
    q3 = pd.read_csv(DATA / "span-3" / "data.csv")
    variants = {
        3: q3.assign(tips=q3["tips"].sample(frac=1.0, random_state=7).to_numpy()),
        4: q3.drop(columns=["payment_type"]),
        5: q3.assign(trip_start_hour=q3["trip_start_hour"].map(lambda h: f"{h}h")),
        6: q3.assign(payment_type=[("Bitcoin" if i % 10 < 3 else p)
                                   for i, p in enumerate(q3["payment_type"])]),
    }
    window = pd.concat([pd.read_csv(data / f"span-{s}" / "data.csv") for s in (1, 2)])
    same = window.sample(n=1000, replace=True, random_state=11)
    variants[7] = same
    variants[8] = same.assign(fare=(same["fare"] * 1.25).round(2))
    for s, df in variants.items():
        (data / f"span-{s}").mkdir(parents=True)
        df.to_csv(data / f"span-{s}" / "data.csv", index=False)
    project = root / "driftguard.yaml"
    settings = yaml.safe_load(project.read_text())
    settings["training"] = merge(settings["training"], FAST_TRAINING)
    project.write_text(yaml.safe_dump(settings, sort_keys=False))
    return root


# Secrets in the environment of the session's training run, under the names the alert sinks
# read (random per session): tests/faults/test_secrets_scan.py looks for them in everything the
# run left behind. Port 9 (discard): nothing is ever sent to these URLs.
SECRET_ENV = {
    "DRIFTGUARD_WEBHOOK_URL": f"http://127.0.0.1:9/hooks/dgsecret{secrets.token_hex(8)}",
    "DRIFTGUARD_WEBHOOK_SECRET": f"dgsecret{secrets.token_hex(8)}",
    "DRIFTGUARD_SLACK_URL": f"http://127.0.0.1:9/services/T0/B0/dgsecret{secrets.token_hex(8)}",
    "DRIFTGUARD_ALERTMANAGER_URL": f"http://alerts:dgsecret{secrets.token_hex(8)}@127.0.0.1:9",
    "SMTP_PASSWORD": f"dgsecret{secrets.token_hex(8)}",
}


@pytest.fixture(scope="session")
def first_push(workspace, tmp_path_factory):
    """`driftguard train --spans 1,2` in the workspace project: the first training run, which
    pushes version 1 (the project's own model.py, found from the working directory). Its
    temporary folder (TMPDIR) is its own, for the test of what TFX leaves there."""
    tmp = tmp_path_factory.mktemp("first-push-tmpdir")
    proc = run_cli("train", "--spans", "1,2", env={**SECRET_ENV, "TMPDIR": str(tmp)}, cwd=workspace / "data")
    return {"config": workspace / "driftguard.yaml", "proc": proc, "tmpdir": tmp,
            "registry": workspace / "runs" / "serving" / "taxi", "secret_env": dict(SECRET_ENV)}


from project_fixtures import flights, penguins  # noqa: E402,F401  (session fixtures of the other projects)
from postgres_fixture import postgres  # noqa: E402,F401  (a real PostgreSQL server, for metadata: postgresql)
from s3_fixture import s3_env, s3_server  # noqa: E402,F401  (moto's S3 server on 127.0.0.1, for object storage)
from gcs_fixture import gcs_env, gcs_proxy, gcs_server  # noqa: E402,F401  (a GCS emulator on 127.0.0.1, for gs://)
