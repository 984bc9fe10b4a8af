# Two commands on a bare machine (python3 and make): `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: run test install lint schema bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Start everything (embedded PostgreSQL + Redis, migrations, demo data, API and worker)
run: install
	$(BIN)/ledgerline run

## Run the test suite (real embedded PostgreSQL and Redis, no mocks)
test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check api schema workers tests bench
	$(BIN)/mypy

## Regenerate the committed SDL after a schema change
schema: install
	$(BIN)/ledgerline schema > schema.graphql

bench: install
	$(BIN)/python bench/dashboard.py

clean:
	rm -rf $(VENV) .ledgerline .pytest_cache .mypy_cache .ruff_cache
