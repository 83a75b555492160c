# The one task runner: the README's commands and CI call these targets verbatim.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: setup assets demo example browser test unit integration check bench kafka-up kafka-down clean

setup: $(VENV)/.installed assets

## make assets: the dashboard's charting library, from the npm registry (build time only)
assets: dashboards/static/vendor/chart.umd.min.js

dashboards/static/vendor/chart.umd.min.js: dashboards/web/package-lock.json
	cd dashboards/web && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	mkdir -p dashboards/static/vendor
	cp dashboards/web/node_modules/chart.js/dist/chart.umd.min.js $@

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

## make demo: broker + worker + realistic traffic, then the ClickHouse summary
demo: setup
	$(BIN)/doublelock demo

## make example: the example web app (SDK + middleware) against a local worker
example: setup
	$(BIN)/python -m examples.webapp

## make browser: Debian's chromium, for the example app's browser test
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) sh -c 'apt-get install -y -q --no-install-recommends chromium \
	  || { apt-get update -q && apt-get install -y -q --no-install-recommends chromium; }'; }
	@/usr/bin/chromium --version

## make test: every test, unit and integration, against the real broker and chdb
test: setup browser
	$(BIN)/doublelock kafka up
	$(BIN)/python -m pytest

unit: setup
	$(BIN)/python -m pytest tests/unit

integration: setup browser
	$(BIN)/doublelock kafka up
	$(BIN)/python -m pytest tests/integration

## make check: lint and types
check: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

## make bench: throughput and latency figures (prints them; asserts nothing)
bench: setup
	$(BIN)/doublelock kafka up
	$(BIN)/python -m bench.decide_core
	$(BIN)/python -m bench.worker_roundtrip
	$(BIN)/python -m bench.sdk_pending
	$(BIN)/python -m bench.dashboard_queries

kafka-up: setup
	$(BIN)/doublelock kafka up

kafka-down: setup
	$(BIN)/doublelock kafka down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache test-output
