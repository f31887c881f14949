# collab: `make run` serves the app, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FRONTEND_SOURCES := $(shell find frontend -path frontend/node_modules -prune -o -type f -print 2>/dev/null)

.PHONY: run test lint bench fuzz frontend dist clean system-deps

run: $(VENV)/.installed collab/static/index.html
	$(BIN)/collab migrate
	$(BIN)/collab serve

# The suite spread over TEST_WORKERS processes (pytest-xdist; each starts its own
# PostgreSQL), then the tests marked `timing` one at a time with the machine to
# themselves: beside three busy workers on two cores they measured the machine (a
# server starved of its core for most of a second). TEST_WORKERS=0 runs the first part
# in one process too, as `pytest tests/test_x.py` does.
TEST_WORKERS ?= 4
test: system-deps $(VENV)/.installed-dev collab/static/index.html tests/js/node_modules/.package-lock.json
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not timing"
	$(BIN)/pytest -q -n 0 -m timing

# The hostile-update tests at length: FUZZ_EXAMPLES mutated updates offline, and
# FUZZ_BATCHES batches of them through a real server and a stock JS client.
FUZZ_EXAMPLES ?= 20000
FUZZ_BATCHES ?= 300
fuzz: system-deps $(VENV)/.installed-dev tests/js/node_modules/.package-lock.json
	COLLAB_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q -s -p no:cacheprovider --hypothesis-show-statistics \
		tests/test_yupdate.py -k "any_bytes or mutated"
	COLLAB_FUZZ_EXAMPLES=$(FUZZ_BATCHES) $(BIN)/pytest -q -s -p no:cacheprovider \
		--timeout 3600 tests/test_fuzz.py

# PostgreSQL, Redis, Chromium and Node from Debian's packages, when missing (needs root).
system-deps:
	bash .ci/system-deps

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check collab tests migrations bench
	$(BIN)/ruff format --check collab tests migrations bench
	$(BIN)/mypy

bench: $(VENV)/.installed collab/static/index.html bench/node_modules/.package-lock.json
	bash bench/run

frontend: collab/static/index.html

# The wheel to deploy (see the README), with the built editor and the migrations inside;
# build/ goes first so that no file from an earlier build slips into it.
dist: collab/static/index.html | $(BIN)/python
	rm -rf build dist/collab-*.whl
	$(BIN)/pip wheel -q --no-deps --wheel-dir dist .
	rm -rf build

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund

collab/static/index.html: frontend/node_modules/.package-lock.json $(FRONTEND_SOURCES) collab/closecodes.py collab/docid.py
	cd frontend && npm run build

tests/js/node_modules/.package-lock.json: tests/js/package-lock.json
	cd tests/js && npm ci --no-audit --no-fund

bench/node_modules/.package-lock.json: bench/package-lock.json
	cd bench && npm ci --no-audit --no-fund

clean:
	rm -rf $(VENV) frontend/node_modules bench/node_modules collab/static build dist
