# Everything runs from .venv, built from the pinned requirements.lock.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
PORT ?= 8000

.PHONY: venv demo test test-postgres lint format compliance bench browser-deps fleet-deps node-deps clean

$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed

demo: venv
	$(VENV)/bin/livegate demo --port $(PORT)

# Debian's chromium for the Playwright tests (they launch /usr/bin/chromium, never a
# `playwright install` download); installed only when missing (needs root).
browser-deps:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "chromium missing: apt-get install chromium (browser tests fail unless LIVEGATE_TEST_NO_BROWSER=1)"; fi; }

# Debian's haproxy for tests/test_fleet.py (PostgreSQL + Redis only), installed when missing
# (needs root). Without it that test fails, unless LIVEGATE_TEST_NO_HAPROXY=1 skips it.
fleet-deps:
	@command -v haproxy >/dev/null 2>&1 || test -x /usr/sbin/haproxy || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null; \
		else echo "haproxy missing: apt-get install haproxy (tests/test_fleet.py needs it)"; fi; }

node-deps:
	@if command -v npm >/dev/null 2>&1 && [ -f tests/node/package.json ]; then \
		cd tests/node && npm ci --no-audit --no-fund --silent; fi

test: venv browser-deps node-deps
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest -q

# The same suite against PostgreSQL and Redis.
test-postgres: venv browser-deps fleet-deps node-deps
	LIVEGATE_TEST_DATABASE_URL=$${LIVEGATE_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
	LIVEGATE_TEST_REDIS_URL=$${LIVEGATE_TEST_REDIS_URL:-redis://127.0.0.1:6379/0} \
	$(VENV)/bin/pytest -q

lint: venv
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(VENV)/bin/mypy

format: venv
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

compliance: venv
	$(VENV)/bin/pytest -q -p tests.compliance_report -m spec -p no:cacheprovider

# What livegate adds to GET /webcast/fetch, measured with wrk (docs/benchmarks.md);
# options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--livegate ../main --json".
bench: venv
	$(PY) bench/webcast_fetch.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) test-artifacts .pytest_cache .mypy_cache .ruff_cache
