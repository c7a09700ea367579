# driftguard — the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
UV    := $(VENV)/bin/uv
STAMP := $(VENV)/.driftguard-installed
UV_VERSION := 0.13.9
PYTEST_ARGS ?=

.PHONY: setup system-deps demo demo-flights test test-airflow test-faults test-fast lock bench clean help

help:
	@echo "make demo   set up .venv and run the main job (driftguard run) on the taxi example project (demo/taxi)"
	@echo "make demo-flights   the same on the NYC flights 2013 example (regression, demo/flights)"
	@echo "make test   set up .venv and run the test suite"
	@echo "make setup  only create/refresh .venv from requirements.lock (seconds when nothing changed)"
	@echo "make lock   re-resolve requirements.in into requirements.lock (needs network to PyPI)"
	@echo "make bench  run every benchmark in benchmarks/ (print tables; over an hour; BENCH=benchmarks/x.py for one)"

setup: $(STAMP)

# The stamp is rebuilt only when the lock, setup.py or a top-level package (whose installed name
# the editable install maps) changed, so a second `make setup` is instant.
# --no-deps: the lock is complete; installs never resolve, so every machine gets the same stack.
# --compile-bytecode: .pyc files written once at install (~1 min); without them, a shell with
# PYTHONDONTWRITEBYTECODE=1 compiles TF and TFX from source at every import (measured here:
# importing tfx + the pipeline took 53 s without, 22 s with; every CLI test pays it).
$(STAMP): requirements.lock setup.py $(wildcard */__init__.py)
	@set -e; \
	if [ ! -x $(PY) ] || ! $(PY) -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then \
	  py=$$(.ci/find-python); \
	  echo "creating $(VENV) with $$py"; \
	  rm -rf $(VENV); "$$py" -m venv $(VENV); \
	fi; \
	if ! $(UV) --version 2>/dev/null | grep -q "$(UV_VERSION)"; then \
	  $(PY) -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"; \
	fi; \
	$(UV) pip install --quiet --python $(PY) --no-deps --compile-bytecode -r requirements.lock; \
	$(UV) pip install --quiet --python $(PY) --no-deps --no-build-isolation -e .; \
	$(PY) -c 'import driftguard.cli.main, driftguard.examples.taxi' ; \
	echo "compiling the monitor's log decoding loops (numba, cached in monitoring/__pycache__: ~1 min the first time)"; \
	$(PY) -c 'import driftguard.monitoring.logreader as r; r.compile_kernels()' ; \
	touch $@; \
	echo "$(VENV) is ready ($$($(PY) --version))"

# The taxi example project, made once by `driftguard init` (as a user makes one), then its
# replay; a second `make demo` finds every span replayed and returns at once.
DEMO := demo/taxi
demo: setup
	@test -f $(DEMO)/driftguard.yaml || $(VENV)/bin/driftguard init $(DEMO) --example taxi
	cd $(DEMO) && ../../$(VENV)/bin/driftguard run

# The NYC flights 2013 example (regression, monthly Parquet spans): ~12 min on 2 cores.
demo-flights: setup
	@test -f demo/flights/driftguard.yaml || $(VENV)/bin/driftguard init demo/flights --example flights
	cd demo/flights && ../../$(VENV)/bin/driftguard run

# Headless Chromium renders the HTML reports in the tests; a PostgreSQL server (its binaries:
# tests/postgres_fixture.py starts its own on 127.0.0.1) holds MLMD in tests/test_metadata_postgres.py.
# (The object-storage tests' servers, moto_server (S3) and gcp-storage-emulator (GCS), come from
# requirements.lock: tests/s3_fixture.py and tests/gcs_fixture.py start them on 127.0.0.1; nothing
# to install here.)
# Debian's packages, installed only when missing (root or sudo).
system-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (the report tests open the pages in headless Chromium)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql (the MLMD-on-PostgreSQL tests start a server on 127.0.0.1)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: setup system-deps
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The span check and training pipelines run through real Airflow DAGs (dag.test(), sqlite
# metadata DB in a temporary AIRFLOW_HOME): ~9 min on 2 cores, so not part of `make test`
# (which stays under ~30 min); .ci/run runs both.
test-airflow: setup
	$(VENV)/bin/python -m pytest -m airflow $(PYTEST_ARGS)

# SIGKILL during Trainer, Evaluator and the push, then resume (tests/faults/
# test_kill_during_pipeline.py): five real `driftguard train` processes, ~8 min on 2 cores.
test-faults: setup
	$(VENV)/bin/python -m pytest -m faults $(PYTEST_ARGS)

# End to end against real servers on 127.0.0.1 (tests/test_metadata_postgres.py,
# tests/test_storage_cli.py, tests/test_pipeline_root_s3.py): trainings and checks with MLMD on
# PostgreSQL and the registry, spans and pipeline root in S3 / GCS emulators, ~8 min on 2 cores;
# their fast refusal tests stay in `make test`. .ci/run runs this suite beside `make test`.
test-storage: setup system-deps
	$(VENV)/bin/python -m pytest -m storage $(PYTEST_ARGS)

# Only the pure, fast tests (no TFX run): handy while editing.
test-fast: setup
	$(VENV)/bin/python -m pytest -m "not tfx" $(PYTEST_ARGS)

lock: setup
	$(UV) pip compile --quiet --no-header --python-version 3.10 requirements.in -o requirements.lock
	sed -i '1i # Generated by `make lock` (uv pip compile --python-version 3.10 requirements.in). Do not edit by hand.' requirements.lock

# Every script in benchmarks/, one after the other, each with its defaults (its docstring says
# what it measures and how long it takes: over an hour in all on 2 cores). serve_throughput and
# serving_monitor serve the demo's registry (demo/taxi/runs/serving/taxi), so the demo runs first.
# One of them: make bench BENCH=benchmarks/drift_speed.py (extra flags: run the script itself).
BENCH ?= $(sort $(wildcard benchmarks/*.py))
bench: demo
	@set -e; for script in $(BENCH); do echo "== $$script"; $(PY) $$script; done

clean:
	rm -rf demo runs .pytest_cache
