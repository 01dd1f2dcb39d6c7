# The two set-up commands are `make run` and `make test`; both install what they need first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench schemas token clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

## run: start the embedded stack (Postgres, Kafka-protocol broker, S3) and all four services
run: $(STAMP)
	$(BIN)/python -m bwc.devstack.run

## test: lint, then the whole suite against real Postgres, broker and S3 (on free ports)
test: lint
	$(BIN)/python -m pytest

## lint: ruff and mypy (strict)
lint: $(STAMP)
	$(BIN)/ruff check bwc services tests
	$(BIN)/mypy bwc services

## bench: throughput and memory of the ingest path, measured side by side
bench: $(STAMP)
	$(BIN)/python -m tests.bench.ingest_bench

## schemas: regenerate the JSON Schemas of the events in docs/events/
schemas: $(STAMP)
	$(BIN)/bwc schemas --out docs/events

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
