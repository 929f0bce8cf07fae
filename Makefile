# Loupe: the two commands a newcomer needs are `make demo` and `make test`.
SHELL := /bin/bash
# uv from PATH, else the copy `make env` installs with pip (python3 -m uv works either way).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
export UV_LINK_MODE ?= copy
SOURCES := schemas/src runtime/src deploy/local/src $(wildcard services/*/src) bench/src demo/src

.PHONY: env system demo stack-up stack-down test test-unit chaos lint schemas

## env: make sure uv exists, then create .venv with every workspace member (locked versions).
env:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5" \
		|| python3 -m pip install --quiet --user --break-system-packages "uv>=0.5"
	$(UV) sync --all-packages --locked

## system: install what the real stack needs (redis-server, kcat, prometheus, chromium; Kafka jars).
system: env
	$(UV) run --no-sync loupe stack install

## demo: the main job on the local embedded stack.
demo: system
	$(UV) run --no-sync loupe demo

stack-up: system
	$(UV) run --no-sync loupe stack up

stack-down:
	$(UV) run --no-sync loupe stack down

## test: the whole suite (unit, integration against real Kafka + Redis, e2e in headless Chromium).
test: system lint
	$(UV) run --no-sync pytest

test-unit: env
	$(UV) run --no-sync pytest tests/unit

## chaos: the long system test in full (ten broker restarts under load; the suite runs one).
chaos: system
	LOUPE_CHAOS_BROKER_RESTARTS=10 $(UV) run --no-sync pytest -s tests/integration/router/test_router_broker_restart.py

## lint: ruff (lint + format) everywhere, mypy on every member (strict on schemas).
lint: env
	$(UV) run --no-sync ruff check .
	$(UV) run --no-sync ruff format --check .
	$(UV) run --no-sync mypy $(SOURCES)

schemas: env
	$(UV) run --no-sync python -m loupe.schemas.jsonschema
