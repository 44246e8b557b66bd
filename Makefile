# Two commands on a fresh machine: `make run` and `make test`. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Python 3.12: on PATH, or pyenv's copy when it is installed but not the global version.
PYTHON ?= $(shell for p in python3.12 $$HOME/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do \
	  $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PYTHONDONTWRITEBYTECODE := 1
# The bundled WeCom simulator is mounted for everything make starts (run, test, simulate, bench); a production
# deployment leaves it off.
export WECOM_SIM_ENABLED ?= 1

.PHONY: help install install-dev run test lint fuzz bench migrate seed simulate clean

help:
	@echo "make run     install, migrate, seed demo data, start web + worker + beat + simulator"
	@echo "make test    install test dependencies, lint, check import contracts, run the whole suite"
	@echo "make fuzz    fuzz the API over its OpenAPI schema (schemathesis, >= FUZZ_CASES cases per role) and the callback receiver"
	@echo "make bench   run the benchmarks (BENCH=name for one); writes bench/results.json and the README table"

$(VENV)/.python:
	@test -n "$(PYTHON)" || { echo "error: Python 3.12 not found; install python3.12 or set PYTHON=/path/to/python3.12"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

$(VENV)/.installed: requirements.txt $(VENV)/.python
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(PY) scripts/run.py

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# Parallel test workers (pytest-xdist, whole files per worker): most tests wait on HTTP, workers and browsers, so
# three fit two cores. The longest files go first (tests/conftest.py SLOWEST_FIRST), so none is left running alone
# at the end. Each worker has its own database and Redis db (tests/xdist_isolation.py). 0 = in-process.
PYTEST_WORKERS ?= 3

test: install-dev lint
	$(PY) -m crm.embedded_redis -- $(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

# The full fuzz (README "Fuzzing"): schemathesis over /api/schema/ on a live test server with the simulator, as an
# admin and as a cashier, at least FUZZ_CASES generated cases each, and the callback receiver with malformed input.
# `make test` runs the same tests bounded (a few cases per operation).
FUZZ_CASES ?= 1000
fuzz: install-dev
	FUZZ_CASES=$(FUZZ_CASES) FUZZ_CALLBACK_EXAMPLES=$${FUZZ_CALLBACK_EXAMPLES:-400} \
	  $(PY) -m crm.embedded_redis -- $(PY) -m pytest -n 0 tests/fuzz -s $(PYTEST_ARGS)

bench: install-dev
	$(PY) -m crm.embedded_redis -- $(PY) bench/run.py $(if $(BENCH),--only $(BENCH),)

migrate: install
	$(PY) manage.py migrate --noinput

seed: migrate
	$(PY) manage.py seed_demo

simulate: install
	$(PY) -m crm.embedded_redis -- $(PY) manage.py simulate --customers $${CUSTOMERS:-20} --seed $${SEED:-1} \
	  $(if $(FAULTS),--faults $(FAULTS))

clean:
	rm -rf $(VENV) var/*.sqlite3* var/staticfiles .pytest_cache .ruff_cache
