# Kupe — the two README commands are `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test serve test lint format bench soak clean local-install alerting-install

$(BIN)/python:
	$(PYTHON) scripts/bootstrap_venv.py $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(STAMP)

install: $(STAMP)

install-test: $(TEST_STAMP)

serve: install
	$(BIN)/kupe serve

# Build the local provider's Kubernetes, etcd and kwok binaries into ~/.cache/kupe (once);
# VERSIONS=1.36,1.37 to choose the minors.
local-install: install
	$(BIN)/kupe local install $(if $(VERSIONS),--versions $(VERSIONS))

# Build Alertmanager (alertmanager + amtool v0.28.1) for tenants' alerting into the same cache.
alerting-install: install
	$(BIN)/kupe local install-alertmanager

lint: install-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy src
	$(BIN)/lint-imports

format: install-test
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# Tests run in parallel workers (each with a PostgreSQL of its own); a file's tests stay on one
# worker, so module-scoped servers start once. The real-cluster tests need the local binaries:
# built into the cache on a fresh machine (20-30 minutes on 2 cores), found there afterwards.
# The run starts some 200 Python processes of the same code (servers, CLIs, workers): with
# PYTHONDONTWRITEBYTECODE set, each would compile Kupe's sources (and pytest rewrite the tests)
# again, so the run writes the bytecode cache.
TEST_WORKERS ?= 4
test: lint local-install alerting-install
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

bench: install-test local-install
	$(BIN)/python bench/run.py
	$(BIN)/python bench/http_bench.py --db both
	$(BIN)/python bench/local_clusters.py

# Mixed workload against a real server; SOAK_ARGS="--minutes 2 --db postgresql" to vary.
soak: install-test
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .kupe .pytest_cache .mypy_cache .ruff_cache
