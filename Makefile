# Everything a newcomer needs: `make run` and `make test` set themselves up from scratch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run up test lint format unit integration faults e2e bench bench-feedback bench-simulate bench-retention clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Run the whole stack on embedded PostgreSQL and broker (Ctrl-C stops it).
run: install
	$(BIN)/tierflow demo

up: install
	$(BIN)/tierflow up

## Lint, type-check and run every test tier against real infrastructure.
# The same steps as scripts/test, the README's command for a machine without make.
test: lint
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

unit: install
	$(BIN)/pytest tests/unit

integration: install
	$(BIN)/pytest tests/integration

faults: install
	$(BIN)/pytest tests/faults

e2e: install
	$(BIN)/pytest tests/e2e

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis

## Benchmarks: raw consume, raw upsert and end-to-end scoring, measured side by side.
bench: install
	$(BIN)/python -m bench.scoring

bench-feedback: install
	$(BIN)/python -m bench.feedback

bench-simulate: install
	$(BIN)/python -m bench.simulate

bench-retention: install
	$(BIN)/python -m bench.retention
