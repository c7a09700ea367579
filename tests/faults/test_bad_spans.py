"""Bad span files are refused before any work starts, with a message naming span, file and
line (or column, or byte offset), by every entry point: `driftguard run`, `train`, `check`,
`data validate` and `schema new-version`. Nothing is created in the runs folder.

The checks themselves are pipeline/spanfiles.py (no TensorFlow): the parametrized cases call
it directly; the CLI cases run the real `driftguard` in a subprocess.
"""
from __future__ import annotations

import json
import pathlib
import re
import shutil
import tracemalloc

import pytest

from helpers import DATA, REPO, run_cli, tree_digest, write_config, ws_data
from driftguard.pipeline import schemas, spanfiles, state

HEADER = "fare,trip_start_hour,payment_type\n"
ROWS = "5.25,7,Cash\n12.0,23,Credit Card\n"


def _span(root: pathlib.Path, span: int, content: bytes, name: str = "data.csv") -> pathlib.Path:
    folder = root / f"span-{span}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


BAD_FILES = [
    ("empty", b"", r"span 1: .*span-1/data\.csv is empty \(0 bytes\)"),
    ("header only", HEADER.encode(), r"span 1: .*data\.csv: has a header but no data rows"),
    ("semicolons", b"fare;trip_start_hour;payment_type\n5.25;7;Cash\n",
     r"data\.csv: line 1 \(the header\) is one column 'fare;trip_start_hour;payment_type': the file looks "
     r"';'-separated; span files must be comma-separated"),
    ("tabs", b"fare\ttrip_start_hour\n5.25\t7\n", r"looks tab-separated"),
    ("ragged row", (HEADER + ROWS + "3.5,9\n" + ROWS).encode(),
     r"data\.csv: line 4 has 2 field\(s\), the header has 3 \(ragged row\)"),
    ("extra field", (HEADER + "1,2,3,4\n").encode(), r"line 2 has 4 field\(s\), the header has 3"),
    ("blank line", (HEADER + ROWS + "\n" + ROWS).encode(), r"line 4 is blank"),
    ("invalid utf-8", (HEADER + ROWS).encode() + b"7.0,3,Caf\xe9\n",
     # 'Caf' starts at byte 66 (header 34 + rows 32); the bad byte is the line's 10th
     r"data\.csv: line 4: invalid UTF-8 at byte offset 75 of the file \(byte 0xe9, column 10 of the line\)"),
    ("byte-order mark", b"\xef\xbb\xbf" + (HEADER + ROWS).encode(), r"starts with a UTF-8 byte-order mark"),
    ("NUL byte", (HEADER + "5.0,1,Ca\0sh\n").encode(), r"line 2 holds a NUL byte \(column 9\)"),
    ("multi-line field", (HEADER + '5.0,1,"Cash\nCard"\n' + ROWS).encode(),
     r"lines 2-3: a quoted field runs over several lines"),
    ("unnamed column", b"fare,,payment_type\n1,2,3\n", r"line 1 \(the header\): column 2 has no name"),
    ("duplicate column", b"fare,fare\n1,2\n", r"column 'fare' appears twice"),
]


@pytest.mark.parametrize("case, content, message", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_span_file_is_named_with_its_line(tmp_path, case, content, message):
    _span(tmp_path, 1, content)
    with pytest.raises(spanfiles.SpanFileError, match=message):
        spanfiles.validate_spans(tmp_path, [1])


def test_good_span_passes_and_is_fingerprinted(tmp_path):
    path = _span(tmp_path, 1, (HEADER + ROWS).encode())
    [info] = spanfiles.validate_spans(tmp_path, [1])
    assert info.rows == 2 and info.columns == ("fare", "trip_start_hour", "payment_type")
    import hashlib

    assert info.files[0].sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_committed_spans_pass_and_match_their_manifest():
    """Every real span passes (schema v2 types included) and hashes as spans.json says."""
    types = spanfiles.schema_column_types(schemas.load_schema(REPO / "schemas/taxi/v2/schema.pbtxt"))
    infos = spanfiles.validate_spans(DATA, range(1, 17), column_types=types)
    manifest = {r["span"]: r for r in json.loads((DATA / "spans.json").read_text())}
    for info in infos:
        assert info.rows == manifest[info.span]["rows"]
        assert info.files[0].sha256 == manifest[info.span]["sha256"]


def test_a_100_mb_line_fails_at_the_cap_without_reading_it(tmp_path):
    path = _span(tmp_path, 1, (HEADER + ROWS).encode())
    with open(path, "ab") as f:            # line 4: 100 MB with no newline
        chunk = b"9" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
    tracemalloc.start()
    try:
        with pytest.raises(spanfiles.SpanFileError,
                           match=r"data\.csv: line 4 is longer than 1,048,576 bytes \(stopped reading there\)"):
            spanfiles.validate_spans(tmp_path, [1])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\n100 MB line: peak Python memory while validating {peak / 1e6:.1f} MB")
    assert peak < 10e6, f"validation held {peak / 1e6:.0f} MB: it read the long line into memory"


@pytest.fixture
def text_hours(tmp_path):
    import pandas as pd

    q3 = pd.read_csv(DATA / "span-3" / "data.csv")
    (tmp_path / "data" / "span-5").mkdir(parents=True)
    q3.assign(trip_start_hour=q3["trip_start_hour"].map(lambda h: f"{h}h")).to_csv(
        tmp_path / "data" / "span-5" / "data.csv", index=False)
    return tmp_path


def test_text_in_a_numeric_column_names_the_column(text_hours):
    types = spanfiles.schema_column_types(schemas.load_schema(REPO / "schemas/taxi/v2/schema.pbtxt"))
    with pytest.raises(spanfiles.SpanFileError,
                       match=r"span 5: .*data\.csv: column 'trip_start_hour' is INT in the schema but holds "
                             r"text: line 2 has '\d+h' \(1,126 of 1,126 values are not integers\)"):
        spanfiles.validate_spans(text_hours / "data", [5], column_types=types)


def test_data_validate_rejects_text_in_a_numeric_column(text_hours):
    cfg = write_config(text_hours / "c.json", data={"root": str(text_hours / "data")},
                       runs=str(text_hours / "runs"))
    proc = run_cli("data", "validate", config=cfg)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "span  5  FAILED" in proc.stdout
    assert re.search(r"column 'trip_start_hour' is INT in the schema but holds text", proc.stderr), proc.stderr
    assert not (text_hours / "runs").exists()


def test_files_of_one_span_must_share_a_header(tmp_path):
    _span(tmp_path, 1, (HEADER + ROWS).encode(), "a.csv")
    _span(tmp_path, 1, b"fare,payment_type,trip_start_hour\n1,Cash,3\n", "b.csv")
    with pytest.raises(spanfiles.SpanFileError, match=r"b\.csv has a different header than a\.csv"):
        spanfiles.validate_spans(tmp_path, [1])


def test_missing_and_empty_span_folders(tmp_path):
    _span(tmp_path, 2, (HEADER + ROWS).encode())
    with pytest.raises(spanfiles.SpanFileError, match=r"span\(s\) 3, 4 not found under .* \(data.pattern "
                                                      r"'span-\{SPAN\}/\*'; available: 2\)"):
        spanfiles.validate_spans(tmp_path, [2, 3, 4])
    (tmp_path / "span-5").mkdir()
    with pytest.raises(spanfiles.SpanFileError, match=r"span 5: folder .*span-5 has no data files"):
        spanfiles.validate_spans(tmp_path, [2, 5])
    (tmp_path / "span-2" / "nested").mkdir()
    with pytest.raises(spanfiles.SpanFileError, match=r"span 2: .*nested is a folder"):
        spanfiles.validate_spans(tmp_path, [2])


# ---------------------------------------------------------------- every entry point, via the CLI

ENTRY_POINTS = [
    ("run",), ("train", "--spans", "1"), ("check", "--span", "1"), ("data", "validate"),
    ("schema", "new-version", "--from-span", "1"),
]


@pytest.fixture
def ragged_workspace(tmp_path):
    _span(tmp_path / "data", 1, (HEADER + ROWS + "3.5,9\n").encode())
    cfg = write_config(tmp_path / "c.json", data={"root": str(tmp_path / "data")}, runs=str(tmp_path / "runs"),
                       schemas=str(REPO / "schemas"), first_spans=[1], replay_spans=[])
    return tmp_path, cfg


@pytest.mark.parametrize("args", ENTRY_POINTS, ids=[" ".join(a[:2]) for a in ENTRY_POINTS])
def test_every_entry_point_refuses_a_bad_span_before_any_work(ragged_workspace, args):
    root, cfg = ragged_workspace
    before = tree_digest(root / "data")
    proc = run_cli(*args, config=cfg, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(r"span 1: .*span-1/data\.csv: line 4 has 2 field\(s\), the header has 3", proc.stderr), \
        proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (root / "runs").exists(), "a refused span must not create the runs folder"
    assert tree_digest(root / "data") == before


# ------------------------------------------------------------- a span that changed after use

@pytest.fixture
def used_span(tmp_path):
    """Span 1 recorded as used in the runs folder (what `train`/`check` record), then edited."""
    data = tmp_path / "data"
    shutil.copytree(DATA / "span-1", data / "span-1")
    runs = tmp_path / "runs"
    [info] = spanfiles.validate_spans(data, [1])
    state.record_fingerprints(runs, {1: info.fingerprint()}, "check")
    cfg = write_config(tmp_path / "c.json", data={"root": str(data)}, runs=str(runs),
                       first_spans=[1], replay_spans=[])
    return tmp_path, cfg


def test_unchanged_span_is_accepted_by_data_validate(used_span):
    root, cfg = used_span
    proc = run_cli("data", "validate", config=cfg, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "span  1  ok" in proc.stdout and "(same as used in the runs folder)" in proc.stdout


@pytest.mark.parametrize("args", ENTRY_POINTS[:4], ids=[" ".join(a[:2]) for a in ENTRY_POINTS[:4]])
def test_a_changed_span_is_refused_naming_it(used_span, args):
    root, cfg = used_span
    path = root / "data" / "span-1" / "data.csv"
    lines = path.read_text().splitlines(True)
    lines[5] = lines[5].replace(",", ",1", 1)            # one value of one row changed
    path.write_text("".join(lines))
    state_before = (root / "runs" / "state.json").read_bytes()
    proc = run_cli(*args, config=cfg, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(r"span 1 changed since this runs folder used it \(check at [0-9T:+-]+\): data\.csv "
                     r"\(sha256 f5cda8a896cd -> [0-9a-f]{12}\)", proc.stderr), proc.stderr
    assert (root / "runs" / "state.json").read_bytes() == state_before
    assert not (root / "runs" / "logs").exists()         # refused before any work (no log, no pipeline)


@pytest.mark.tfx
def test_training_records_the_spans_it_used(first_push, workspace):
    """The real `driftguard train` of the session recorded spans 1 and 2 with their sha256."""
    assert first_push["proc"].returncode == 0, first_push["proc"].stderr[-2000:]
    recorded = state.span_fingerprints(workspace / "runs")
    for s in (1, 2):
        [info] = spanfiles.validate_spans(ws_data(workspace), [s])
        assert recorded[str(s)]["sha256"] == info.sha256
        assert recorded[str(s)]["command"] in ("train", "check", "run")
