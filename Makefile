# flexledger — two commands for a new user: `make demo` and `make test`.
# Everything else is set up by `make setup`, which both run when needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-stamp

.DEFAULT_GOAL := help
.PHONY: help setup setup-test test demo serve-demo distributed lint bench compile clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-11s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(STAMP) ## Create .venv, install the project with all extras, install the pinned npm chain tools

$(STAMP): pyproject.toml package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

setup-test: setup ## Also install Debian's chromium + chromium-driver (the dashboard's browser tests) when missing
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  echo "installing chromium and chromium-driver (apt)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y --no-install-recommends chromium chromium-driver \
	  || { apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver; }; \
	fi

test: setup-test ## Run the whole test suite (real anvil, MQTT brokers, SQLite, PostgreSQL, Chromium)
	$(VENV)/bin/pytest

demo: setup ## Run a whole market day of the default scenario (50 PODs) on the embedded default
	$(VENV)/bin/flexledger demo

serve-demo: setup ## The small market day with the operator dashboard up during and after it (Ctrl-C ends)
	$(VENV)/bin/flexledger demo --scenario scenarios/small.toml --serve

distributed: setup ## The small day, every actor its own process (on FLEX_RPC_URL, FLEX_DB_URL, FLEX_MQTT_URL if set)
	$(VENV)/bin/flexledger day run --distributed --scenario scenarios/small.toml

lint: setup ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(wildcard flexledger node lightnode scd dso market aggregator audit sim scripts bench)

bench: setup ## Run every benchmark in bench/ (each prints a JSON line last)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

compile: setup ## Recompile contracts/ into node/artifacts/ (committed; nothing at run time needs solc)
	$(PY) scripts/compile_contracts.py

clean: ## Remove the embedded default's state (.flexledger/)
	rm -rf .flexledger
