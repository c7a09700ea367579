"""`driftguard init` without an example: the template a team fills in for its own model, run as
a newcomer runs it. The data are the Palmer penguins (tests/projects/penguins/data.py: CSV spans
with empty cells); the edits are the template's FILL IN lines only (model.py is left as it is);
the schema is inferred by `driftguard schema infer`, not written by hand.
"""
from __future__ import annotations

import pytest
import yaml

from helpers import run_cli
from project_fixtures import CLASSES, penguin_data

pytestmark = pytest.mark.tfx


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "my-model"
    init = run_cli("init", root, cwd=root.parent)
    assert init.returncode == 0, init.stderr
    penguin_data().write_spans(root / "data", "csv")
    settings = yaml.safe_load((root / "driftguard.yaml").read_text())
    settings.update(model_name="penguins", task="multiclass", classes=CLASSES,
                    first_spans=[1, 2], replay_spans=[3])
    settings["model"]["label"]["column"] = "species"
    settings["evaluation"]["metrics"] = {"SparseCategoricalAccuracy": {"min": 0.5, "baseline_tolerance": 0.05},
                                         "ExampleCount": {}}
    settings["training"].update(train_steps=200, eval_steps=5)
    settings["drift"]["exclude"] = ["year"]          # the span key
    (root / "driftguard.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    infer = run_cli("schema", "infer", "--from-spans", "1,2", cwd=root)
    run = run_cli("run", cwd=root) if infer.returncode == 0 else None
    return {"root": root, "init": init, "infer": infer, "run": run}


def test_init_writes_the_template_and_says_what_to_fill_in(template):
    root, out = template["root"], template["init"].stdout
    assert {p.name for p in root.iterdir()} >= {"driftguard.yaml", "model.py", "README.md", "data", "schemas"}
    assert "FILL IN lines of driftguard.yaml" in out and "driftguard schema infer --from-spans 1,2" in out
    assert not (root / "schemas" / "my_model").exists()    # the placeholder name makes no folder


def test_the_inferred_schema_lets_optional_features_be_empty(template):
    """The spans have empty cells (sex, the four measurements): ExampleGen writes them as a
    feature with no values, so the inferred schema must not require one value there."""
    from driftguard.pipeline.schemas import load_schema

    assert template["infer"].returncode == 0, template["infer"].stderr[-3000:]
    path = template["root"] / "schemas" / "penguins" / "v1" / "schema.pbtxt"
    features = {f.name: f for f in load_schema(path).feature}
    for name in ("sex", "body_mass_g", "bill_length_mm"):
        assert features[name].presence.min_fraction < 1.0
        assert not features[name].value_count.HasField("min"), name
    assert features["island"].presence.min_fraction == 1.0 and features["island"].shape.dim[0].size == 1
    assert list(features["species"].not_in_environment) == ["SERVING"]


def test_the_filled_in_template_trains_gates_and_checks(template):
    run = template["run"]
    assert run is not None and run.returncode == 0, (run.stderr if run else template["infer"].stderr)[-3000:]
    assert "training penguins (multiclass) on span(s) 1, 2" in run.stderr
    assert "candidate blessed: SparseCategoricalAccuracy" in run.stdout, run.stdout
    assert "pushed penguins version 1" in run.stdout
    assert "span  3 |" in run.stdout and "| accuracy 0.9" in run.stdout, run.stdout
    assert "schema anomal" not in run.stdout, run.stdout     # the inferred schema fits span 3
