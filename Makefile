# The two set-up commands are `make run` and `make test`; both install what they need first.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The deploy/ checks' tools (kubectl, kubernetes-validate, check-jsonschema, checkov) live in a
# virtualenv of their own: checkov's dependencies clash with the app's pins.
DEPLOY_VENV  := .venv-deploy
DEPLOY_STAMP := $(DEPLOY_VENV)/.installed

.PHONY: run test lint bench schemas token clean

$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(DEPLOY_STAMP): deploy/requirements-checks.lock
	@test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/pip install --quiet --disable-pip-version-check -r deploy/requirements-checks.lock
	@touch $(DEPLOY_STAMP)

## run: start the embedded stack (Postgres, Kafka-protocol broker, S3) and all four services
run: $(STAMP)
	$(BIN)/python -m bwc.devstack.run

## test: lint, then the whole suite against real Postgres, broker and S3 (on free ports),
## and the offline checks of deploy/ (tests/deploy, tools from .venv-deploy)
test: lint $(DEPLOY_STAMP)
	$(BIN)/python -m pytest

## lint: ruff and mypy (strict)
lint: $(STAMP)
	$(BIN)/ruff check bwc services tests
	$(BIN)/mypy bwc services

## bench: throughput and memory of the ingest path, measured side by side; the audit chain
## (events per second from outbox to chained row, verify speed over 1,000,000 entries)
bench: $(STAMP)
	$(BIN)/python -m tests.bench.ingest_bench
	$(BIN)/python -m tests.bench.audit_bench

## schemas: regenerate the JSON Schemas of the events in docs/events/
schemas: $(STAMP)
	$(BIN)/bwc schemas --out docs/events

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) var .pytest_cache .mypy_cache .ruff_cache
