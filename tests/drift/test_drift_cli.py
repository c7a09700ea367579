"""``driftguard drift`` (components/drift/cli.py) through a subprocess: exit codes, JSON, error messages."""
import json
import pathlib
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
HEAVY = ["tensorflow", "tfx", "apache_beam", "tensorflow_data_validation"]


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "driftguard.components.drift.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def frame(n=400, seed=0, fare_factor=1.0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "fare": np.round(rng.lognormal(2.0, 0.6, n) * fare_factor, 2),
        "trip_miles": np.round(rng.exponential(2.0, n), 1),
        "payment_type": rng.choice(["Cash", "Credit Card"], n, p=[0.65, 0.35]),
    })


@pytest.fixture()
def files(tmp_path):
    ref, same, drifted = tmp_path / "ref.csv", tmp_path / "same.csv", tmp_path / "drifted.csv"
    frame(seed=0).to_csv(ref, index=False)
    frame(seed=1).to_csv(same, index=False)
    frame(seed=2, fare_factor=1.5).to_csv(drifted, index=False)
    return ref, same, drifted


def test_no_drift_exits_0_with_a_table(files):
    ref, same, _ = files
    r = run(ref, same)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].split()[:5] == ["feature", "kind", "method", "score", "threshold"]
    assert lines[-1].startswith("No drift detected in 3 features")
    assert r.stderr == ""


def test_drift_exits_1_and_json_has_the_contract_shape(files):
    ref, _, drifted = files
    r = run(ref, drifted, "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    assert report["drift_detected"] is True
    assert set(report["features"]) == {"fare", "trip_miles", "payment_type"}
    for f in report["features"].values():
        assert {"method", "score", "threshold", "p_value", "drifted"} <= set(f)
        assert isinstance(f["drifted"], bool) and "psi" in f["scores"]
    assert report["features"]["fare"]["drifted"] is True
    assert isinstance(report["multivariate"], dict) and "drifted" in report["multivariate"]


def test_text_output_lists_drifted_first(files):
    ref, _, drifted = files
    r = run(ref, drifted)
    assert r.returncode == 1
    assert r.stdout.splitlines()[2].startswith("fare ") and "DRIFT" in r.stdout.splitlines()[2]
    assert "DRIFT DETECTED: 1 of 3 features drifted" in r.stdout


def test_parquet_and_csv_mix(tmp_path, files):
    ref, _, _ = files
    cur = tmp_path / "cur.parquet"
    frame(seed=1).iloc[5:].to_parquet(cur)  # non-default index: pandas stores it, the CLI drops it
    r = run(ref, cur, "--json")
    assert r.returncode == 0, r.stderr
    assert set(json.loads(r.stdout)["features"]) == {"fare", "trip_miles", "payment_type"}


def test_exclude_option(files):
    ref, _, drifted = files
    r = run(ref, drifted, "--exclude", "fare", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["excluded"] == ["fare"]


def _error(r, *fragments):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    for fragment in fragments:
        assert fragment in r.stderr, (fragment, r.stderr)


def test_missing_file(files, tmp_path):
    ref, _, _ = files
    _error(run(ref, tmp_path / "nope.csv"), "nope.csv", "does not exist")


def test_different_columns_are_drift_naming_both(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    frame(seed=1).rename(columns={"trip_miles": "miles"}).to_csv(cur, index=False)
    proc = run(ref, cur)
    assert proc.returncode == 1, proc.stderr
    rows = {ln.split()[0]: ln for ln in proc.stdout.splitlines() if ln.strip()}
    assert "DRIFT" in rows["trip_miles"] and "no such column in the current table" in rows["trip_miles"]
    assert "DRIFT" in rows["miles"] and "no such column in the reference table" in rows["miles"]


def test_files_sharing_no_column_are_refused(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    cur.write_text("a,b\n1,2\n3,4\n")
    _error(run(ref, cur), f"reference file '{ref}'", f"current file '{cur}'", "only in the reference",
           "['a', 'b'] only in the current")


def test_numeric_in_one_file_text_in_the_other(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    bad = frame(seed=1).astype({"fare": object})
    bad.loc[7, "fare"] = "twelve"
    bad.to_csv(cur, index=False)
    _error(run(ref, cur), str(ref), str(cur), "column 'fare' is numeric in the reference table but text in the current")


def test_empty_table(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    cur.write_text("fare,trip_miles,payment_type\n")
    _error(run(ref, cur), f"current file '{cur}'", "no rows")


def test_empty_file(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    cur.write_text("")
    _error(run(cur, ref), "reference file", str(cur), "cannot read")


def test_a_column_that_stopped_arriving_is_drift_naming_it(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    frame(seed=1).assign(trip_miles=None).to_csv(cur, index=False)      # the header stays, no value
    gone = tmp_path / "gone.csv"
    frame(seed=1).drop(columns=["trip_miles"]).to_csv(gone, index=False)  # the column itself is gone
    for path, why in ((cur, "no value at all in the current data"), (gone, "no such column in the current table")):
        proc = run(ref, path)
        assert proc.returncode == 1, proc.stderr
        row = next(ln for ln in proc.stdout.splitlines() if ln.startswith("trip_miles"))
        assert "DRIFT" in row and "0.0% -> 100.0%" in row and why in row, proc.stdout


def test_infinite_values(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.csv"
    bad = frame(seed=1)
    bad.loc[3, "fare"] = np.inf
    bad.to_csv(cur, index=False)
    _error(run(cur, ref), f"reference file '{cur}'", "column 'fare'", "infinite")


def test_unsupported_extension(files, tmp_path):
    ref, _, _ = files
    cur = tmp_path / "cur.txt"
    cur.write_text("a\n1\n")
    _error(run(ref, cur), "current file", "cur.txt", "unsupported file type")


@pytest.mark.parametrize("suffix, flags, light", [(".csv", [], False), (".parquet", [], False),
                                                   (".csv", ["--no-classifier"], True),
                                                   (".parquet", ["--no-classifier"], True)])
def test_cli_imports_neither_tensorflow_nor_pandas(files, tmp_path, suffix, flags, light):
    """The start-up budget depends on it: TensorFlow takes seconds to import. The domain classifier brings
    scikit-learn, scipy.stats and (through scikit-learn's categorical preprocessing) pandas, about a second
    in all; ``--no-classifier`` imports none of them."""
    ref, same, _ = files
    if suffix == ".parquet":
        same = tmp_path / "same.parquet"
        frame(seed=1).to_parquet(same)
    heavy = HEAVY + (["pandas", "sklearn"] if light else [])
    code = (
        "import sys\n"
        "from driftguard.components.drift.cli import main\n"
        f"try:\n    main([{str(ref)!r}, {str(same)!r}, '--json', *{flags!r}])\n"
        "except SystemExit as e:\n    code = e.code\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r}))\n"
        "print('RESULT', code, heavy, 'scipy.stats' in sys.modules, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert f"RESULT 0 [] {not light}" in r.stderr, r.stderr


def test_importing_the_package_does_not_import_tensorflow_tfx_or_beam():
    code = (
        "import sys\n"
        "import driftguard.components.drift as d\n"
        "d.detect_drift({'x': [1.0, 2.0, 3.0] * 20, 'c': ['a', 'b', 'c'] * 20},"
        " {'x': [1.0, 2.0, 4.0] * 20, 'c': ['a', 'b', 'b'] * 20})\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_command_registers_on_a_click_group(files):
    import click
    from click.testing import CliRunner

    from driftguard.components.drift.cli import drift

    @click.group()
    def driftguard():
        pass

    driftguard.add_command(drift)
    ref, same, drifted = files
    assert drift.name == "drift"
    assert CliRunner().invoke(driftguard, ["drift", str(ref), str(same)]).exit_code == 0
    assert CliRunner().invoke(driftguard, ["drift", str(ref), str(drifted)]).exit_code == 1
